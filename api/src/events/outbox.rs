//! Writing events to the outbox, inside the caller's transaction.

use chrono::Utc;
use entity::enums::Channel;
use entity::outbox_event;
use sea_orm::{ActiveValue::NotSet, ConnectionTrait, DatabaseBackend, Set, Statement};
use serde_json::Value;
use uuid::Uuid;

use crate::error::AppResult;

/// The PostgreSQL channel the dispatchers `LISTEN` on.
pub const NOTIFY_CHANNEL: &str = "cxgraph_events";

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Past-tense type, e.g. `interaction.received`.
    pub event_type: &'static str,
    pub aggregate_type: &'static str,
    pub aggregate_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub channel: Option<Channel>,
    /// Ids and codes only: no personal data.
    pub payload: Value,
}

/// A customer event (`customer.created`, `customer.merged`, `customer.erased`).
pub fn customer_event(event_type: &'static str, customer_id: Uuid, payload: Value) -> NewEvent {
    NewEvent {
        event_type,
        aggregate_type: "customer",
        aggregate_id: customer_id,
        customer_id: Some(customer_id),
        channel: None,
        payload,
    }
}

/// Version of every event's payload shape.
pub const EVENT_VERSION: i32 = 1;

/// Records an event in the caller's transaction (and, on PostgreSQL, queues a
/// `NOTIFY` that is delivered when that transaction commits).
pub async fn emit(db: &impl ConnectionTrait, event: NewEvent) -> AppResult<()> {
    Ok(emit_all(db, vec![event]).await?)
}

/// Writes several events in the caller's transaction with one statement (one
/// `NOTIFY` on PostgreSQL).
pub async fn emit_all(db: &impl ConnectionTrait, events: Vec<NewEvent>) -> Result<(), sea_orm::DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = events.into_iter().map(|event| outbox_event::ActiveModel {
        position: NotSet,
        id: Set(Uuid::now_v7()),
        event_type: Set(event.event_type.to_owned()),
        version: Set(EVENT_VERSION),
        aggregate_type: Set(event.aggregate_type.to_owned()),
        aggregate_id: Set(event.aggregate_id),
        customer_id: Set(event.customer_id),
        channel: Set(event.channel.map(|c| sea_orm::ActiveEnum::to_value(&c))),
        payload: Set(event.payload),
        created_at: Set(now),
    });
    crate::db::insert_all(db, rows.collect(), None).await?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let notify = format!("NOTIFY {NOTIFY_CHANNEL}");
        db.execute_raw(Statement::from_string(DatabaseBackend::Postgres, notify)).await?;
    }
    Ok(())
}

/// A page of the outbox for a consumer catching up: events after `after` (a
/// position), of the given types, on the given channels (events without a channel
/// always pass), oldest first.
///
/// On PostgreSQL positions are handed out at insert and transactions commit in any
/// order, so a cursor could pass a position whose transaction has not committed yet.
/// The feed therefore serves only events older than [`super::bus::GAP_WAIT`] there;
/// subscriptions are the real-time path. SQLite commits one writer at a time, in order.
pub async fn catch_up(
    db: &impl ConnectionTrait,
    after: i64,
    types: &[String],
    channels: Option<&[Channel]>,
    limit: u64,
) -> AppResult<(Vec<outbox_event::Model>, bool)> {
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let mut query = outbox_event::Entity::find().filter(outbox_event::Column::Position.gt(after));
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let settle = chrono::Duration::from_std(super::bus::GAP_WAIT).unwrap_or_default();
        query = query.filter(outbox_event::Column::CreatedAt.lt(Utc::now() - settle));
    }
    query = query.filter(outbox_event::Column::EventType.is_in(types.iter().cloned()));
    if let Some(channels) = channels {
        let names: Vec<String> = channels.iter().map(sea_orm::ActiveEnum::to_value).collect();
        query = query.filter(
            Condition::any()
                .add(outbox_event::Column::Channel.is_null())
                .add(outbox_event::Column::Channel.is_in(names)),
        );
    }
    let mut rows = query.order_by_asc(outbox_event::Column::Position).limit(limit + 1).all(db).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((rows, more))
}
