//! SLA clocks on conversations.
//!
//! - `pending_since`: the resolution clock pauses while a conversation waits on the
//!   customer; on leaving `pending` the resolution due time moves on by the pause.
//! - `next_due_at`: the due time of the clock that is running now (first response until
//!   we answer, then resolution; null when resolved, closed or paused), kept by every
//!   write, so the agent queue sorts by it and the breach sweeper finds overdue work
//!   through an index instead of recomputing it per row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["pending_since", "next_due_at"] {
            manager
                .alter_table(
                    Table::alter().table("conversations").add_column(timestamp_with_time_zone_null(column)).to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_conversations_status_next_due_at")
                    .table("conversations")
                    .col("status")
                    .col("next_due_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_conversations_next_due_at")
                    .table("conversations")
                    .col("next_due_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["ix_conversations_status_next_due_at", "ix_conversations_next_due_at"] {
            manager.drop_index(Index::drop().name(index).table("conversations").to_owned()).await?;
        }
        for column in ["next_due_at", "pending_since"] {
            manager.alter_table(Table::alter().table("conversations").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
