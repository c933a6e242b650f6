//! A partial index of the negative inbound messages by time, with their ids: what the
//! spike detector's per-topic count reads every minute (`api/src/alerts/spikes.rs`,
//! `topic_negatives`) before joining the messages to their topic links.
//!
//! Through `(sentiment_label, occurred_at)` it fetched each negative message of the
//! last 25 hours from the table to check its direction and take its id: 65,000
//! messages on 10,000 heap pages, 365 ms of the statement's 660–800 ms on the
//! benchmark dataset (one core, as background jobs run). This index answers that part
//! from the index alone (5–6 ms; the statement 220 ms, the rest is the join to the
//! links). PostgreSQL uses a partial index only when the query's condition implies
//! the index's, so the detector spells both conditions as literals.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

const NAME: &str = "ix_interactions_negative_inbound_occurred_at";
const NEGATIVE_INBOUND: &str = "sentiment_label = 'negative' AND direction = 'inbound'";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = if manager.get_database_backend() == DatabaseBackend::Postgres {
            format!("CREATE INDEX {NAME} ON interactions (occurred_at) INCLUDE (id) WHERE {NEGATIVE_INBOUND}")
        } else {
            // SQLite has no INCLUDE: the id as a second key column covers the same.
            format!("CREATE INDEX {NAME} ON interactions (occurred_at, id) WHERE {NEGATIVE_INBOUND}")
        };
        manager.get_connection().execute_unprepared(&sql).await.map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Alias::new("interactions")).to_owned()).await
    }
}
