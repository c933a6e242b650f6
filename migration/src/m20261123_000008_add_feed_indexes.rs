//! Indexes for the filters of the interaction feed (social listening: public posts,
//! negative sentiment, inbound only) and of the agent queue (priority).

use crate::dsl::{IndexDef, create_indexes, drop_indexes};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[IndexDef] = &[
    ("ix_interactions_visibility_occurred_at", "interactions", &["visibility", "occurred_at"]),
    ("ix_interactions_sentiment_label_occurred_at", "interactions", &["sentiment_label", "occurred_at"]),
    ("ix_interactions_direction_occurred_at", "interactions", &["direction", "occurred_at"]),
    ("ix_conversations_priority_next_due_at", "conversations", &["priority", "next_due_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_indexes(manager, INDEXES).await
    }
}
