//! API tokens for partners and connectors.
//!
//! A token reads `cxt_<prefix>_<secret>`: the `cxt_` type prefix lets secret scanners
//! spot a leaked one, the 8-hex-digit prefix finds the row (and is shown in listings),
//! and only the SHA-256 of the whole token is stored. The secret is returned once, at
//! creation. Revocation and expiry take effect on the next request (every request
//! looks the token up); `last_used_at` is written at most once a minute per token.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use entity::api_token;
use entity::enums::Channel;
use rand::RngCore;
use rand::rngs::OsRng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{AuthFailure, Scope, TokenPrincipal, secret};
use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};

/// Type prefix of API tokens ("cxgraph token").
pub const TOKEN_PREFIX: &str = "cxt";

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `None`: every channel.
    pub channels: Option<Vec<Channel>>,
}

/// A created token and its secret (shown once).
pub struct CreatedToken {
    pub token: api_token::Model,
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken").field("token", &self.token.id).finish_non_exhaustive()
    }
}

fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    let set: BTreeSet<Scope> = scopes.iter().copied().collect();
    set.into_iter().map(Scope::as_str).collect()
}

/// Creates a token; the secret is in the result and nowhere else.
pub async fn create(db: &DatabaseConnection, actor: Actor<'_>, new: NewToken) -> AppResult<CreatedToken> {
    let mut errors = Vec::new();
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new(&["input", "name"], "INVALID", "must be 1 to 200 characters"));
    }
    if new.scopes.is_empty() {
        errors.push(FieldError::new(&["input", "scopes"], "REQUIRED", "give at least one scope"));
    }
    if new.expires_at.is_some_and(|e| e <= Utc::now()) {
        errors.push(FieldError::new(&["input", "expiresAt"], "IN_PAST", "must be in the future"));
    }
    if new.channels.as_ref().is_some_and(Vec::is_empty) {
        errors.push(FieldError::new(&["input", "channels"], "EMPTY", "omit it for every channel, or name some"));
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let mut prefix_bytes = [0u8; 4];
    OsRng.fill_bytes(&mut prefix_bytes);
    let prefix: String = prefix_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let body = secret::generate(&format!("{TOKEN_PREFIX}_{prefix}"));
    let txn = db::begin_write(db).await?;
    let token = api_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        prefix: Set(prefix),
        secret_hash: Set(body.hash),
        scopes: Set(json!(scope_names(&new.scopes))),
        channels: Set(new.channels.map(|c| json!(c))),
        created_by: Set(actor.principal.user().map(|u| u.id)),
        created_at: Set(Utc::now()),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        last_used_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(&txn, actor, "createApiToken", "api_token", Some(token.id), json!({ "scopes": token.scopes }))
        .await?;
    txn.commit().await?;
    Ok(CreatedToken { token, secret: body.secret })
}

/// Every token, newest first (no secrets: only their hashes exist).
pub async fn list(db: &DatabaseConnection) -> AppResult<Vec<api_token::Model>> {
    Ok(api_token::Entity::find().order_by_desc(api_token::Column::CreatedAt).all(db).await?)
}

/// Revokes a token; effective on its next request.
pub async fn revoke(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<api_token::Model> {
    let txn = db::begin_write(db).await?;
    let token = api_token::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound("API token"))?;
    let mut active: api_token::ActiveModel = token.into();
    active.revoked_at = Set(Some(Utc::now()));
    let token = active.update(&txn).await?;
    audit::record(&txn, actor, "revokeApiToken", "api_token", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(token)
}

/// Checks a presented token: the principal it stands for, or why not.
pub async fn authenticate(db: &DatabaseConnection, presented: &str) -> Result<TokenPrincipal, AuthFailure> {
    let rest = presented.strip_prefix(TOKEN_PREFIX).and_then(|r| r.strip_prefix('_')).ok_or(AuthFailure::Invalid)?;
    let (prefix, _) = rest.split_once('_').ok_or(AuthFailure::Invalid)?;
    let token = api_token::Entity::find()
        .filter(api_token::Column::Prefix.eq(prefix))
        .one(db)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "token lookup failed");
            AuthFailure::Unchecked
        })?
        .ok_or(AuthFailure::Invalid)?;
    if !constant_time_eq(secret::hash(presented).as_bytes(), token.secret_hash.as_bytes()) || token.revoked_at.is_some()
    {
        return Err(AuthFailure::Invalid);
    }
    let now = Utc::now();
    if token.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthFailure::Expired);
    }
    if token.last_used_at.is_none_or(|t| now - t > Duration::minutes(1)) {
        let db = db.clone();
        let id = token.id;
        // Best effort, off the request path; the condition keeps it to once a minute.
        tokio::spawn(async move {
            let _ = api_token::Entity::update_many()
                .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
                .filter(api_token::Column::Id.eq(id))
                .filter(
                    Condition::any()
                        .add(api_token::Column::LastUsedAt.is_null())
                        .add(api_token::Column::LastUsedAt.lt(now - Duration::minutes(1))),
                )
                .exec(&db)
                .await;
        });
    }
    let scopes = serde_json::from_value::<Vec<String>>(token.scopes.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Scope::parse(s))
        .collect();
    let channels = token.channels.clone().and_then(|c| serde_json::from_value::<BTreeSet<Channel>>(c).ok());
    Ok(TokenPrincipal { id: token.id, scopes, channels })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
