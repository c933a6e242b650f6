//! The SLA sweeper: marks breaches and raises "at risk" and "breached" alerts, exactly
//! once per conversation and clock, however many API replicas run it.
//!
//! Exactly-once comes from the alerts' unique `dedupe_key`
//! (`sla_breached:first_response:<conversation>`): every replica may try the insert,
//! `ON CONFLICT DO NOTHING` lets one win, and only the winner counts it as raised. The
//! breach flags are set with a conditional `UPDATE`, so repeating it changes nothing.
//! Candidates come from the `(status, next_due_at)` index.

use chrono::{DateTime, Duration, Utc};
use entity::enums::{AlertSeverity, AlertStatus, ConversationStatus};
use entity::{alert, conversation};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::json;
use uuid::Uuid;

use crate::db;
use crate::error::AppResult;
use crate::events::{self, Bus, NewEvent};

/// Conversations looked at per sweep and kind (the rest wait for the next sweep).
const BATCH: u64 = 500;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub at_risk_raised: u64,
    pub breaches_raised: u64,
}

fn clock(c: &conversation::Model) -> &'static str {
    if c.first_response_at.is_none() { "first_response" } else { "resolution" }
}

/// Inserts an alert unless its dedupe key exists, with its `sla.alert` event in the
/// same transaction; true when this call raised it.
async fn raise(db: &DatabaseConnection, c: &conversation::Model, a: alert::ActiveModel) -> AppResult<bool> {
    let txn = db::begin_write(db).await?;
    let id = *a.id.as_ref();
    let kind = a.kind.as_ref().clone();
    let inserted = alert::Entity::insert(a)
        .on_conflict(OnConflict::column(alert::Column::DedupeKey).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
    if inserted == 1 {
        let event = NewEvent {
            event_type: "sla.alert",
            aggregate_type: "alert",
            aggregate_id: id,
            customer_id: Some(c.customer_id),
            channel: Some(c.channel),
            payload: json!({ "kind": kind, "conversationId": c.id }),
        };
        events::emit(&txn, event).await?;
    }
    txn.commit().await?;
    Ok(inserted == 1)
}

fn sla_alert(
    c: &conversation::Model,
    kind: &str,
    severity: AlertSeverity,
    title: String,
    now: DateTime<Utc>,
) -> alert::ActiveModel {
    let clock = clock(c);
    alert::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.to_owned()),
        severity: Set(severity),
        status: Set(AlertStatus::Open),
        title: Set(title),
        channel: Set(Some(c.channel)),
        topic_id: Set(None),
        conversation_id: Set(Some(c.id)),
        details: Set(
            json!({ "clock": clock, "dueAt": c.next_due_at, "customerId": c.customer_id, "priority": c.priority }),
        ),
        dedupe_key: Set(format!("{kind}:{clock}:{}", c.id)),
        raised_at: Set(now),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
    }
}

/// One sweep at `now`: conversations whose running clock is due within `at_risk`
/// get an at-risk alert; overdue ones are marked breached and get a breach alert.
pub async fn sweep(db: &DatabaseConnection, now: DateTime<Utc>, at_risk: Duration) -> AppResult<SweepReport> {
    let mut report = SweepReport::default();
    let running = [ConversationStatus::Open, ConversationStatus::Pending];
    let overdue = conversation::Entity::find()
        .filter(conversation::Column::Status.is_in(running))
        .filter(conversation::Column::NextDueAt.lt(now))
        .order_by_asc(conversation::Column::NextDueAt)
        .limit(BATCH)
        .all(db)
        .await?;
    for c in overdue {
        let first = c.first_response_at.is_none();
        let (flag, already) = if first {
            (conversation::Column::FirstResponseBreached, c.first_response_breached)
        } else {
            (conversation::Column::ResolutionBreached, c.resolution_breached)
        };
        if !already {
            conversation::Entity::update_many()
                .col_expr(flag, Expr::value(true))
                .filter(conversation::Column::Id.eq(c.id))
                .filter(flag.eq(false))
                .exec(db)
                .await?;
        }
        let what = if first { "First response" } else { "Resolution" };
        let title = format!("{what} SLA breached on {:?} conversation", c.channel);
        if raise(db, &c, sla_alert(&c, "sla_breached", AlertSeverity::Critical, title, now)).await? {
            report.breaches_raised += 1;
        }
    }
    let soon = conversation::Entity::find()
        .filter(conversation::Column::Status.is_in(running))
        .filter(conversation::Column::NextDueAt.gte(now))
        .filter(conversation::Column::NextDueAt.lt(now + at_risk))
        .order_by_asc(conversation::Column::NextDueAt)
        .limit(BATCH)
        .all(db)
        .await?;
    for c in soon {
        let minutes = c.next_due_at.map_or(0, |d| (d - now).num_minutes());
        let what = if c.first_response_at.is_none() { "First response" } else { "Resolution" };
        let title = format!("{what} due in {minutes} min on {:?} conversation", c.channel);
        if raise(db, &c, sla_alert(&c, "sla_at_risk", AlertSeverity::Warning, title, now)).await? {
            report.at_risk_raised += 1;
        }
    }
    Ok(report)
}

/// Runs the sweeper every `interval` until the process ends.
pub fn spawn_sweeper(
    db: DatabaseConnection,
    bus: Bus,
    interval: std::time::Duration,
    at_risk: Duration,
) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(interval, move || {
        let (db, bus) = (db.clone(), bus.clone());
        async move {
            match sweep(&db, Utc::now(), at_risk).await {
                Ok(r) if r == SweepReport::default() => {}
                Ok(r) => {
                    bus.wake();
                    crate::metrics::get().alerts_raised("sla_breached", r.breaches_raised);
                    crate::metrics::get().alerts_raised("sla_at_risk", r.at_risk_raised);
                    tracing::info!(at_risk = r.at_risk_raised, breached = r.breaches_raised, "SLA alerts raised");
                }
                Err(e) => tracing::warn!(error = e.message(), "SLA sweep failed; retrying next interval"),
            }
        }
    })
}
