//! Writing events to the outbox, inside the caller's transaction.

use chrono::Utc;
use entity::enums::Channel;
use entity::outbox_event;
use sea_orm::{ActiveModelTrait, ActiveValue::NotSet, ConnectionTrait, DatabaseBackend, Set, Statement};
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

/// Version of every event's payload shape.
pub const EVENT_VERSION: i32 = 1;

/// Records an event in the caller's transaction (and, on PostgreSQL, queues a
/// `NOTIFY` that is delivered when that transaction commits).
pub async fn emit(db: &impl ConnectionTrait, event: NewEvent) -> AppResult<()> {
    outbox_event::ActiveModel {
        position: NotSet,
        id: Set(Uuid::now_v7()),
        event_type: Set(event.event_type.to_owned()),
        version: Set(EVENT_VERSION),
        aggregate_type: Set(event.aggregate_type.to_owned()),
        aggregate_id: Set(event.aggregate_id),
        customer_id: Set(event.customer_id),
        channel: Set(event.channel.map(|c| sea_orm::ActiveEnum::to_value(&c))),
        payload: Set(event.payload),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        let notify = format!("NOTIFY {NOTIFY_CHANNEL}");
        db.execute_raw(Statement::from_string(DatabaseBackend::Postgres, notify)).await?;
    }
    Ok(())
}
