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

/// Which audit entries to list. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub operation: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor_user_id: Option<Uuid>,
    pub actor_token_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub from: Option<chrono::DateTime<Utc>>,
    pub to: Option<chrono::DateTime<Utc>>,
}

/// Audit entries, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    f: &AuditFilter,
    page: &crate::pagination::PageRequest,
) -> AppResult<crate::pagination::Page<audit_entry::Model>> {
    use crate::pagination::{Sort, SortKey};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut q = audit_entry::Entity::find();
    if let Some(v) = &f.operation {
        q = q.filter(audit_entry::Column::Operation.eq(v.clone()));
    }
    if let Some(v) = &f.target_type {
        q = q.filter(audit_entry::Column::TargetType.eq(v.clone()));
    }
    if let Some(v) = &f.target_id {
        q = q.filter(audit_entry::Column::TargetId.eq(v.clone()));
    }
    if let Some(v) = f.actor_user_id {
        q = q.filter(audit_entry::Column::ActorUserId.eq(v));
    }
    if let Some(v) = f.actor_token_id {
        q = q.filter(audit_entry::Column::ActorTokenId.eq(v));
    }
    if let Some(v) = &f.request_id {
        q = q.filter(audit_entry::Column::RequestId.eq(v.clone()));
    }
    if let Some(v) = f.from {
        q = q.filter(audit_entry::Column::OccurredAt.gte(v));
    }
    if let Some(v) = f.to {
        q = q.filter(audit_entry::Column::OccurredAt.lt(v));
    }
    let sort = Sort { column: audit_entry::Column::OccurredAt, id: audit_entry::Column::Id, ascending: false };
    crate::pagination::fetch(db, q, sort, page, 100, |e| SortKey::Time(Some(e.occurred_at)), |e| e.id).await
}
