//! A partial index on `next_due_at` of the conversations the SLA sweeper still has
//! to look at: running (open or pending) with their running clock not yet marked
//! breached.
//!
//! The sweeper asks for the overdue ones among them every 30 seconds. Through
//! `(status, next_due_at)` it walked every overdue running conversation, breached
//! and marked long ago included, to find the few that are not: 87,629 rows and
//! 600 ms a sweep on the benchmark dataset, for one row. The partial index holds
//! only the unmarked ones, so a quiet sweep reads nothing. [`UNSWEPT`] is the one
//! text of the condition: PostgreSQL uses a partial index only for a query whose
//! condition implies the index's, and a bound parameter (`first_response_breached =
//! $1`) proves nothing, so the sweeper spells it with these literals.

use sea_orm_migration::prelude::*;

/// Running conversations whose running clock is not marked breached (the first
/// response's while it has not come, then the resolution's).
pub const UNSWEPT: &str = "status IN ('open', 'pending') AND \
    ((first_response_at IS NULL AND NOT first_response_breached) \
    OR (first_response_at IS NOT NULL AND NOT resolution_breached))";

const NAME: &str = "ix_conversations_unswept_next_due_at";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = format!("CREATE INDEX {NAME} ON conversations (next_due_at) WHERE {UNSWEPT}");
        manager.get_connection().execute_unprepared(&sql).await.map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Alias::new("conversations")).to_owned()).await
    }
}
