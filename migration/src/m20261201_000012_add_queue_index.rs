//! The agent queue asks for the open conversations of one channel, soonest due first
//! (`status = … AND channel = … ORDER BY next_due_at, id LIMIT 51`). With only
//! `(status, next_due_at)` PostgreSQL walked every open conversation in due order and
//! threw away the other channels' (measured on the benchmark dataset); with the
//! channel in the key it reads the page and stops.

use crate::dsl::{IndexDef, create_indexes, drop_indexes};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[IndexDef] =
    &[("ix_conversations_status_channel_next_due_at_id", "conversations", &["status", "channel", "next_due_at", "id"])];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_indexes(manager, INDEXES).await
    }
}
