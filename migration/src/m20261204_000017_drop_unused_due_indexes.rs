//! Drops the indexes on `first_response_due_at` and `resolution_due_at`.
//!
//! Migration 3 made them for an SLA sweeper that searched each clock's due time;
//! since migration 7 the sweeper, the queue's due-time sort and its `dueWithinMinutes`
//! filter all read `next_due_at` (the running clock's due time), and no statement
//! filters or sorts on either column. Every message that continues a conversation
//! rewrites its row, and each index costs an entry per rewrite: 17 indexes became 15.

use crate::dsl::{IndexDef, create_indexes, drop_indexes};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UNUSED: &[IndexDef] = &[
    ("ix_conversations_first_response_due_at", "conversations", &["first_response_due_at"]),
    ("ix_conversations_resolution_due_at", "conversations", &["resolution_due_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_indexes(manager, UNUSED).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, UNUSED).await
    }
}
