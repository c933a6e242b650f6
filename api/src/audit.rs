//! The audit log: who (user and/or token) did what to which record, when, from which
//! request. Entries are written with the caller's connection, which for a change is its
//! transaction, so the entry exists exactly when the change does. `changes` names the
//! fields that changed, never their values: the log must hold no secret and no personal
//! data (it outlives an erasure).

use chrono::Utc;
use entity::audit_entry;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::AppResult;

/// The caller of a change and the request it came in.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub principal: &'a Principal,
    pub request_id: Option<&'a str>,
}

impl<'a> Actor<'a> {
    pub fn new(principal: &'a Principal, request_id: Option<&'a str>) -> Self {
        Self { principal, request_id }
    }
}

/// Writes one audit entry.
pub async fn record(
    db: &impl ConnectionTrait,
    actor: Actor<'_>,
    operation: &str,
    target_type: &str,
    target_id: Option<Uuid>,
    changes: Value,
) -> AppResult<()> {
    let (user, token) = match actor.principal {
        Principal::User(u) => (Some(u.id), None),
        Principal::Token(t) => (None, Some(t.id)),
        Principal::Anonymous(_) => (None, None),
    };
    audit_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        occurred_at: Set(Utc::now()),
        actor_user_id: Set(user),
        actor_token_id: Set(token),
        operation: Set(operation.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id.map(|id| id.to_string())),
        changes: Set(changes),
        request_id: Set(actor.request_id.map(str::to_owned)),
    }
    .insert(db)
    .await?;
    Ok(())
}
