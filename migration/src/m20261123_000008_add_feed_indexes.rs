//! Indexes for the filters of the interaction feed (social listening: public posts,
//! negative sentiment, inbound only) and of the agent queue (priority).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[(&str, &str, &[&str])] = &[
    ("ix_interactions_visibility_occurred_at", "interactions", &["visibility", "occurred_at"]),
    ("ix_interactions_sentiment_label_occurred_at", "interactions", &["sentiment_label", "occurred_at"]),
    ("ix_interactions_direction_occurred_at", "interactions", &["direction", "occurred_at"]),
    ("ix_conversations_priority_next_due_at", "conversations", &["priority", "next_due_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            let mut index = Index::create().name(*name).table(*table).to_owned();
            for c in *columns {
                index.col(*c);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager.drop_index(Index::drop().name(*name).table(*table).to_owned()).await?;
        }
        Ok(())
    }
}
