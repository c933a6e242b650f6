//! The SLA sweeper: marks breaches and raises "at risk" and "breached" alerts, exactly
//! once per conversation and clock, however many API replicas run it.
//!
//! Set-based, and it works through a backlog. Each round is one transaction over up
//! to [`BATCH`] conversations: one statement finds them, one marks them, one inserts
//! their alerts, one reads which inserts this round won, one writes their events.
//!
//! - *Breached*: overdue conversations whose running clock is not marked breached yet.
//!   The mark takes them out of the candidates, so the next round reaches the next
//!   ones (a sweep that retried the oldest overdue conversations every time, as this
//!   one once did, never reached a breach past the first batch). They are locked
//!   `FOR UPDATE SKIP LOCKED` on PostgreSQL: a replica sweeping at the same time takes
//!   other rows, and an ingest holding a conversation is never waited for (and never
//!   deadlocked with); a skipped row is swept next time.
//! - *At risk*: conversations due within the warning window, read page by page in due
//!   order; those whose alert exists already are left out before anything is written,
//!   so a quiet sweep writes nothing.
//!
//! Exactly-once comes from the alerts' unique `dedupe_key`
//! (`sla_breached:first_response:<conversation>`): every replica may try the insert,
//! `ON CONFLICT DO NOTHING` lets one win, and only the winner counts it and emits its
//! event. Breach candidates come from a partial index on `next_due_at` that holds
//! only the running, unmarked conversations (migration 18), so the overdue ones
//! marked long ago are not read again every sweep; at-risk ones from the
//! `(status, next_due_at)` index.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use entity::enums::{AlertSeverity, AlertStatus, ConversationStatus};
use entity::{alert, conversation};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::db;
use crate::error::AppResult;
use crate::events::{self, Bus, NewEvent};

/// Conversations handled per round (one transaction).
pub const BATCH: u64 = 500;

/// Most rounds of each kind in one sweep; a larger backlog goes on at the next sweep.
const ROUNDS: usize = 20;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub at_risk_raised: u64,
    pub breaches_raised: u64,
}

fn clock(c: &conversation::Model) -> &'static str {
    if c.first_response_at.is_none() { "first_response" } else { "resolution" }
}

const RUNNING: [ConversationStatus; 2] = [ConversationStatus::Open, ConversationStatus::Pending];

/// Inserts the alerts whose dedupe key is free, and the `sla.alert` event of each one
/// this call inserted, in the caller's transaction; answers how many it inserted.
async fn raise_all(
    txn: &impl ConnectionTrait,
    conversations: &[conversation::Model],
    alerts: Vec<alert::ActiveModel>,
) -> AppResult<u64> {
    if alerts.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = alerts.iter().map(|a| *a.id.as_ref()).collect();
    let kinds: Vec<String> = alerts.iter().map(|a| a.kind.as_ref().clone()).collect();
    db::insert_all(txn, alerts, Some(OnConflict::column(alert::Column::DedupeKey).do_nothing().to_owned())).await?;
    // This transaction's own rows: those whose keys were free.
    let won: HashSet<Uuid> = alert::Entity::find()
        .select_only()
        .column(alert::Column::Id)
        .filter(alert::Column::Id.is_in(ids.clone()))
        .into_tuple()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let events =
        conversations.iter().zip(ids).zip(kinds).filter(|((_, id), _)| won.contains(id)).map(|((c, id), kind)| {
            NewEvent {
                event_type: "sla.alert",
                aggregate_type: "alert",
                aggregate_id: id,
                customer_id: Some(c.customer_id),
                channel: Some(c.channel),
                payload: json!({ "kind": kind, "conversationId": c.id }),
            }
        });
    events::emit_all(txn, events.collect()).await?;
    Ok(won.len() as u64)
}

fn sla_alert(
    c: &conversation::Model,
    kind: &str,
    severity: AlertSeverity,
    title: String,
    now: DateTime<Utc>,
) -> alert::ActiveModel {
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
            json!({ "clock": clock(c), "dueAt": c.next_due_at, "customerId": c.customer_id, "priority": c.priority }),
        ),
        dedupe_key: Set(dedupe_key(c, kind)),
        raised_at: Set(now),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
        ..Default::default()
    }
}

fn dedupe_key(c: &conversation::Model, kind: &str) -> String {
    format!("{kind}:{}:{}", clock(c), c.id)
}

/// One round of breaches: marks up to `batch` overdue, unmarked conversations and
/// raises their alerts. Answers (conversations marked, alerts raised).
async fn breach_round(db: &DatabaseConnection, now: DateTime<Utc>, batch: u64) -> AppResult<(u64, u64)> {
    use conversation::Column as C;
    let txn = db::begin_write(db).await?;
    let overdue = conversation::Entity::find()
        // The partial index's own condition, in its literals (see migration 18).
        .filter(Expr::cust(migration::UNSWEPT_CONVERSATIONS))
        .filter(C::NextDueAt.lt(now))
        .order_by_asc(C::NextDueAt)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&txn)
        .await?;
    if overdue.is_empty() {
        txn.rollback().await?;
        return Ok((0, 0));
    }
    // The running clock's flag: the first response's while it has not come.
    let first = C::FirstResponseAt.is_null();
    conversation::Entity::update_many()
        .col_expr(
            C::FirstResponseBreached,
            Expr::case(first.clone(), true).finally(Expr::col(C::FirstResponseBreached)).into(),
        )
        .col_expr(C::ResolutionBreached, Expr::case(first, Expr::col(C::ResolutionBreached)).finally(true).into())
        .filter(C::Id.is_in(overdue.iter().map(|c| c.id)))
        .exec(&txn)
        .await?;
    let alerts = overdue
        .iter()
        .map(|c| {
            let what = if c.first_response_at.is_none() { "First response" } else { "Resolution" };
            let title = format!("{what} SLA breached on {:?} conversation", c.channel);
            sla_alert(c, "sla_breached", AlertSeverity::Critical, title, now)
        })
        .collect();
    let raised = raise_all(&txn, &overdue, alerts).await?;
    txn.commit().await?;
    Ok((overdue.len() as u64, raised))
}

/// One page of the at-risk window after `after` (due time, id), in due order: raises
/// the alerts not raised before. Answers the page's last (due time, id), `None` when
/// the window is done, and the alerts raised.
async fn at_risk_page(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    window: Duration,
    after: Option<(DateTime<Utc>, Uuid)>,
    batch: u64,
) -> AppResult<(Option<(DateTime<Utc>, Uuid)>, u64)> {
    use conversation::Column as C;
    let mut query = conversation::Entity::find()
        .filter(C::Status.is_in(RUNNING))
        .filter(C::NextDueAt.gte(now))
        .filter(C::NextDueAt.lt(now + window));
    if let Some((due, id)) = after {
        query = query.filter(Condition::any().add(C::NextDueAt.gt(due)).add(C::NextDueAt.eq(due).and(C::Id.gt(id))));
    }
    let page = query.order_by_asc(C::NextDueAt).order_by_asc(C::Id).limit(batch).all(db).await?;
    let next = match page.last() {
        Some(last) if page.len() as u64 == batch => last.next_due_at.map(|due| (due, last.id)),
        _ => None,
    };
    let keys: Vec<String> = page.iter().map(|c| dedupe_key(c, "sla_at_risk")).collect();
    let raised_before: HashSet<String> = if keys.is_empty() {
        HashSet::new()
    } else {
        alert::Entity::find()
            .select_only()
            .column(alert::Column::DedupeKey)
            .filter(alert::Column::DedupeKey.is_in(keys.clone()))
            .into_tuple()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let fresh: Vec<conversation::Model> =
        page.into_iter().zip(keys).filter(|(_, key)| !raised_before.contains(key)).map(|(c, _)| c).collect();
    if fresh.is_empty() {
        return Ok((next, 0));
    }
    let alerts = fresh
        .iter()
        .map(|c| {
            let minutes = c.next_due_at.map_or(0, |d| (d - now).num_minutes());
            let what = if c.first_response_at.is_none() { "First response" } else { "Resolution" };
            let title = format!("{what} due in {minutes} min on {:?} conversation", c.channel);
            sla_alert(c, "sla_at_risk", AlertSeverity::Warning, title, now)
        })
        .collect();
    let txn = db::begin_write(db).await?;
    let raised = raise_all(&txn, &fresh, alerts).await?;
    txn.commit().await?;
    Ok((next, raised))
}

/// One sweep at `now`: conversations whose running clock is due within `at_risk`
/// get an at-risk alert; overdue ones are marked breached and get a breach alert.
pub async fn sweep(db: &DatabaseConnection, now: DateTime<Utc>, at_risk: Duration) -> AppResult<SweepReport> {
    sweep_in_rounds_of(db, now, at_risk, BATCH).await
}

/// [`sweep`] with `batch` conversations per round (tests use small rounds).
pub async fn sweep_in_rounds_of(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    at_risk: Duration,
    batch: u64,
) -> AppResult<SweepReport> {
    let mut report = SweepReport::default();
    for _ in 0..ROUNDS {
        let (marked, raised) = breach_round(db, now, batch).await?;
        report.breaches_raised += raised;
        if marked < batch {
            break;
        }
    }
    let mut after = None;
    for _ in 0..ROUNDS {
        let (next, raised) = at_risk_page(db, now, at_risk, after, batch).await?;
        report.at_risk_raised += raised;
        match next {
            Some(n) => after = Some(n),
            None => break,
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
