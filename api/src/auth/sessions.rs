//! Log-in sessions: access token + rotating refresh token.
//!
//! Every refresh token belongs to a family started by one log-in. Using a token marks
//! it used (a conditional `UPDATE … WHERE used_at IS NULL`, so two concurrent uses
//! cannot both win) and issues the next one in the family. Presenting a token that was
//! already used means it was copied: the whole family is revoked and the caller must
//! log in again (OAuth 2.0 Security BCP, refresh token rotation).
//!
//! Log-ins (failed ones too), refreshes, reuse and log-outs are audited in the same
//! transaction as the change they make, naming the user by id only.

use chrono::{DateTime, Utc};
use entity::{refresh_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use std::sync::Arc;

use super::jwt::JwtKeys;
use super::revocation::{self, AccessCache};
use super::{Principal, UserPrincipal, password, secret};
use crate::audit::{self, Actor};
use crate::error::{AppError, AppResult};
use crate::users;

/// Prefix of refresh tokens ("cxgraph refresh").
pub const REFRESH_PREFIX: &str = "cxr";

/// What a successful log-in or refresh hands to the client.
#[derive(Debug)]
pub struct Session {
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
    pub user: user::Model,
}

/// Settings of the session service.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub keys: JwtKeys,
    pub refresh_ttl: std::time::Duration,
    /// What this process knows of sessions' state; told of the changes made here.
    pub access: Arc<AccessCache>,
}

impl SessionConfig {
    /// `check_ttl`: the longest a session's checked state is trusted (see
    /// [`revocation`]).
    pub fn new(keys: JwtKeys, refresh_ttl: std::time::Duration, check_ttl: std::time::Duration) -> Self {
        SessionConfig { keys, refresh_ttl, access: Arc::new(AccessCache::new(check_ttl)) }
    }
}

/// Checks e-mail and password; `Ok(None)` for wrong credentials (never says which).
pub async fn login(
    db: &DatabaseConnection,
    config: &SessionConfig,
    email: &str,
    password_attempt: String,
    request_id: Option<&str>,
) -> AppResult<Option<Session>> {
    let found = match users::normalize_email(email) {
        Some(email) => users::find_by_email(db, &email).await?,
        None => None,
    };
    let stored_hash = found.as_ref().filter(|u| u.active).map(|u| u.password_hash.clone());
    let verified = password::verify(password_attempt.clone(), stored_hash).await?;
    let target = found.as_ref().map(|u| u.id);
    let Some(user) = found.filter(|_| verified) else {
        // Audited for both causes alike (the same work either way): the target is the
        // user when the e-mail is known, never the e-mail itself.
        let anonymous = Principal::Anonymous(None);
        let actor = Actor::new(&anonymous, request_id);
        audit::record(db, actor, "login", "user", target, json!({ "outcome": "failed" })).await?;
        return Ok(None);
    };
    // Hashes made with older parameters are upgraded while we hold the password.
    let rehashed =
        if password::needs_rehash(&user.password_hash) { Some(password::hash(password_attempt).await?) } else { None };
    let txn = crate::db::begin_write(db).await?;
    let rehashed_now = rehashed.is_some();
    let mut active = user.into_active_model();
    active.last_login_at = Set(Some(Utc::now()));
    if let Some(hash) = rehashed {
        active.password_hash = Set(hash);
    }
    let user = active.update(&txn).await?;
    let who = Principal::User(UserPrincipal { id: user.id, role: user.role });
    let changes = json!({ "outcome": "succeeded", "fields": if rehashed_now { vec!["lastLoginAt", "passwordHash"] } else { vec!["lastLoginAt"] } });
    audit::record(&txn, Actor::new(&who, request_id), "login", "user", Some(user.id), changes).await?;
    let session = start_in_family(&txn, config, user, Uuid::now_v7()).await?;
    txn.commit().await?;
    Ok(Some(session))
}

/// Exchanges a refresh token for a new session in the same family.
pub async fn refresh(
    db: &DatabaseConnection,
    config: &SessionConfig,
    presented: &str,
    request_id: Option<&str>,
) -> AppResult<Session> {
    let invalid = || AppError::unauthenticated("refresh token invalid or expired");
    let hash = secret::hash(presented);
    let txn = crate::db::begin_write(db).await?;
    let Some(token) = refresh_token::Entity::find().filter(refresh_token::Column::TokenHash.eq(hash)).one(&txn).await?
    else {
        return Err(invalid());
    };
    let now = Utc::now();
    if token.revoked_at.is_some() || token.expires_at <= now {
        return Err(invalid());
    }
    let claimed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(token.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let owner = users::find(&txn, token.user_id).await?;
    let who = owner
        .as_ref()
        .map_or(Principal::Anonymous(None), |u| Principal::User(UserPrincipal { id: u.id, role: u.role }));
    if claimed.rows_affected != 1 {
        revoke_family(&txn, token.family_id, now).await?;
        let changes = json!({ "outcome": "reused", "revoked": "family" });
        audit::record(&txn, Actor::new(&who, request_id), "refreshToken", "user", Some(token.user_id), changes).await?;
        revocation::announce(&txn, token.user_id).await?;
        txn.commit().await?;
        config.access.forget(token.user_id);
        tracing::warn!(family = %token.family_id, user = %token.user_id, "refresh token reused; family revoked");
        return Err(AppError::unauthenticated("refresh token already used; every session of this log-in is revoked"));
    }
    let user = owner.filter(|u| u.active).ok_or_else(invalid)?;
    let changes = json!({ "outcome": "rotated" });
    audit::record(&txn, Actor::new(&who, request_id), "refreshToken", "user", Some(user.id), changes).await?;
    let session = start_in_family(&txn, config, user, token.family_id).await?;
    txn.commit().await?;
    Ok(session)
}

/// Ends sessions of the calling user: the family of the given refresh token, or all of
/// them with `everywhere`. Returns how many refresh tokens were revoked.
pub async fn logout(
    db: &DatabaseConnection,
    config: &SessionConfig,
    principal: &Principal,
    presented: Option<&str>,
    everywhere: bool,
    request_id: Option<&str>,
) -> AppResult<u64> {
    let user = principal.user().ok_or_else(|| AppError::forbidden("only users have sessions"))?;
    let now = Utc::now();
    let mut update = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user.id))
        .filter(refresh_token::Column::RevokedAt.is_null());
    if !everywhere {
        let Some(presented) = presented else {
            return Err(AppError::invalid(
                &["input", "refreshToken"],
                "REQUIRED",
                "give the refresh token to end, or set everywhere: true",
            ));
        };
        let family = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(secret::hash(presented)))
            .filter(refresh_token::Column::UserId.eq(user.id))
            .one(db)
            .await?
            .map(|t| t.family_id);
        let Some(family) = family else { return Ok(0) };
        update = update.filter(refresh_token::Column::FamilyId.eq(family));
    }
    let txn = crate::db::begin_write(db).await?;
    let revoked = update.exec(&txn).await?.rows_affected;
    let changes = json!({ "everywhere": everywhere, "revoked": revoked });
    audit::record(&txn, Actor::new(principal, request_id), "logout", "user", Some(user.id), changes).await?;
    revocation::announce(&txn, user.id).await?;
    txn.commit().await?;
    config.access.forget(user.id);
    Ok(revoked)
}

async fn revoke_family(db: &impl ConnectionTrait, family: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn start_in_family(
    db: &impl ConnectionTrait,
    config: &SessionConfig,
    user: user::Model,
    family_id: Uuid,
) -> AppResult<Session> {
    let now = Utc::now();
    let refresh_expires_at = now + chrono::Duration::from_std(config.refresh_ttl).map_err(AppError::internal)?;
    let new = secret::generate(REFRESH_PREFIX);
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        family_id: Set(family_id),
        token_hash: Set(new.hash),
        created_at: Set(now),
        expires_at: Set(refresh_expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    let (access_token, access_token_expires_at) = config.keys.issue(user.id, user.role, family_id)?;
    Ok(Session {
        access_token,
        access_token_expires_at,
        refresh_token: new.secret,
        refresh_token_expires_at: refresh_expires_at,
        user,
    })
}
