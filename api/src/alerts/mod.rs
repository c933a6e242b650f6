//! Alerts: early warnings (SLA at risk or breached, from the SLA sweeper; negative
//! sentiment spikes, from [`spikes`]), raised once, read by staff, acknowledged and
//! resolved by a person (a spike's episode also resolves itself when volume returns).

pub mod baseline;
pub mod explain;
pub mod mentions;
pub mod spikes;

use chrono::Utc;
use entity::alert;
use entity::enums::AlertStatus;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::pagination::{self, Page, PageRequest, Sort, SortKey};

/// One alert by id.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<alert::Model>> {
    Ok(alert::Entity::find_by_id(id).one(db).await?)
}

/// Alerts, newest first, optionally by status and kind.
/// `channels`: a token's channel limit (`None`: all); a limited caller sees the alerts
/// of its channels only, not those about every channel at once.
pub async fn list(
    db: &impl ConnectionTrait,
    status: Option<AlertStatus>,
    kind: Option<String>,
    channels: Option<&[entity::enums::Channel]>,
    page: &PageRequest,
) -> AppResult<Page<alert::Model>> {
    let mut query = alert::Entity::find();
    if let Some(channels) = channels {
        query = query.filter(alert::Column::Channel.is_in(channels.iter().copied()));
    }
    if let Some(s) = status {
        query = query.filter(alert::Column::Status.eq(s));
    }
    if let Some(k) = kind {
        query = query.filter(alert::Column::Kind.eq(k));
    }
    let sort = Sort { column: alert::Column::RaisedAt, id: alert::Column::Id, ascending: false };
    pagination::fetch(db, query, sort, page, 100, |a| SortKey::Time(Some(a.raised_at)), |a| a.id).await
}

/// Whether a caller limited to `channels` (`None`: all) may see `alert` (see [`list`]).
pub fn visible_within(
    alert: &alert::Model,
    channels: Option<&std::collections::BTreeSet<entity::enums::Channel>>,
) -> bool {
    channels.is_none_or(|allowed| alert.channel.is_some_and(|c| allowed.contains(&c)))
}

/// Marks an alert as seen by the calling user.
pub async fn acknowledge(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<alert::Model> {
    let txn = db::begin_write(db).await?;
    let found = find(&txn, id).await?.ok_or(AppError::NotFound("alert"))?;
    if found.status != AlertStatus::Open {
        return Err(AppError::invalid(&["input", "alertId"], "ALREADY_ACKNOWLEDGED", "the alert is not open"));
    }
    let mut a = found.into_active_model();
    a.status = Set(AlertStatus::Acknowledged);
    a.acknowledged_at = Set(Some(Utc::now()));
    a.acknowledged_by = Set(actor.principal.user().map(|u| u.id));
    let updated = a.update(&txn).await?;
    audit::record(&txn, actor, "acknowledgeAlert", "alert", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Closes an alert by hand (open or acknowledged).
pub async fn resolve(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<alert::Model> {
    let txn = db::begin_write(db).await?;
    let found = find(&txn, id).await?.ok_or(AppError::NotFound("alert"))?;
    if found.status == AlertStatus::Resolved {
        return Err(AppError::invalid(&["input", "alertId"], "ALREADY_RESOLVED", "the alert is resolved"));
    }
    let mut a = found.into_active_model();
    a.status = Set(AlertStatus::Resolved);
    a.resolved_at = Set(Some(Utc::now()));
    let updated = a.update(&txn).await?;
    audit::record(&txn, actor, "resolveAlert", "alert", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(updated)
}
