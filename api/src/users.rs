//! Staff users: creation (from the CLI, the first-start bootstrap and later the admin
//! API) and look-ups. E-mails are stored trimmed and lower-cased so that log-in is not
//! case-sensitive.

use chrono::Utc;
use entity::enums::Role;
use entity::user;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use crate::auth::password;
use crate::error::{AppError, AppResult, FieldError};

/// What it takes to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub password: String,
}

/// Normalises an e-mail for storage and look-up; `None` if it cannot be an address.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 320;
    plausible.then_some(email)
}

/// Creates a user; fixable problems come back as [`AppError::Invalid`].
pub async fn create(db: &impl ConnectionTrait, new: NewUser) -> AppResult<user::Model> {
    let mut errors = Vec::new();
    let email = normalize_email(&new.email);
    if email.is_none() {
        errors.push(FieldError::new(&["input", "email"], "INVALID", "is not a valid e-mail address"));
    }
    if let Err(msg) = password::check_strength(&new.password) {
        errors.push(FieldError::new(&["input", "password"], "TOO_WEAK", msg));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    if find_by_email(db, &email).await?.is_some() {
        return Err(AppError::invalid(&["input", "email"], "TAKEN", "a user with this e-mail already exists"));
    }
    let now = Utc::now();
    let display_name = new
        .display_name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    let model = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        display_name: Set(display_name),
        password_hash: Set(password::hash(new.password).await?),
        role: Set(new.role),
        team_id: Set(None),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        last_login_at: Set(None),
    };
    match model.insert(db).await {
        Ok(created) => Ok(created),
        // A concurrent request (or replica) created the same e-mail first.
        Err(e) if crate::db::is_unique_violation(&e) => {
            Err(AppError::invalid(&["input", "email"], "TAKEN", "a user with this e-mail already exists"))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find().filter(user::Column::Email.eq(email)).one(db).await?)
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

pub async fn count(db: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(user::Entity::find().count(db).await?)
}

/// A change of a staff user's access, made by an admin.
#[derive(Debug, Clone)]
pub struct AccessChange {
    pub email: String,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Changes a user's role or whether they may work, in one transaction with its audit
/// entry and the [`crate::auth::revocation::ACCESS_CHANGED`] event: the user's access
/// tokens follow within seconds on every replica, and a deactivation also revokes
/// every refresh token (no new session can start). The last active admin can be
/// neither deactivated nor demoted, or nobody could undo it.
pub async fn change_access(
    db: &sea_orm::DatabaseConnection,
    sessions: &crate::auth::sessions::SessionConfig,
    actor: crate::audit::Actor<'_>,
    change: AccessChange,
) -> AppResult<user::Model> {
    let not_found = || AppError::invalid(&["input", "email"], "NOT_FOUND", "no user has this e-mail");
    let email = normalize_email(&change.email).ok_or_else(not_found)?;
    let txn = crate::db::begin_write(db).await?;
    // The active admins are locked first, always in the same order, so that two admins
    // demoting each other at once cannot both see the other still there (PostgreSQL;
    // SQLite's writers already take turns).
    let admins: Vec<Uuid> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Role.eq(Role::Admin))
        .filter(user::Column::Active.eq(true))
        .order_by_asc(user::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(&txn)
        .await?;
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(not_found)?;
    let role = change.role.unwrap_or(found.role);
    let active = change.active.unwrap_or(found.active);
    let loses_admin = admins.contains(&found.id) && (role != Role::Admin || !active);
    if loses_admin && admins.len() <= 1 {
        return Err(AppError::invalid(
            &["input"],
            "LAST_ADMIN",
            "the last active admin cannot be deactivated or demoted",
        ));
    }
    let now = Utc::now();
    let before = (found.role, found.active);
    let mut model: user::ActiveModel = found.into();
    model.role = Set(role);
    model.active = Set(active);
    model.updated_at = Set(now);
    let updated = model.update(&txn).await?;
    if !active {
        entity::refresh_token::Entity::update_many()
            .col_expr(entity::refresh_token::Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
            .filter(entity::refresh_token::Column::UserId.eq(updated.id))
            .filter(entity::refresh_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
    }
    let changes = serde_json::json!({
        "role": { "from": before.0.to_value(), "to": role.to_value() },
        "active": { "from": before.1, "to": active },
    });
    crate::audit::record(&txn, actor, "changeUserAccess", "user", Some(updated.id), changes).await?;
    crate::auth::revocation::announce(&txn, updated.id).await?;
    txn.commit().await?;
    sessions.access.forget(updated.id);
    Ok(updated)
}
