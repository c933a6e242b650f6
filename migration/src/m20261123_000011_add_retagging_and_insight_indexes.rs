//! Re-tagging is a job, not a migration: changing a topic's keywords stamps
//! `retag_requested_at`; the background tagger re-tags the history in chunks and then
//! copies the stamp to `retagged_at`, so a restart (or a second replica) simply runs it
//! again. Also the indexes the insights, the spike detector and the BI export use:
//! feedback by kind and customer (NPS drivers), negative facts by channel and time (the
//! detector's sliding window), and every exported table by its change time and id (the
//! export's keyset and `updated_since`).

use crate::dsl::{IndexDef, create_indexes, drop_indexes};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[IndexDef] = &[
    ("ix_feedback_kind_customer_id", "feedback", &["kind", "customer_id"]),
    (
        "ix_interactions_sentiment_label_channel_occurred_at",
        "interactions",
        &["sentiment_label", "channel", "occurred_at"],
    ),
    ("ix_feedback_sentiment_label_occurred_at", "feedback", &["sentiment_label", "occurred_at"]),
    ("ix_customers_updated_at_id", "customers", &["updated_at", "id"]),
    ("ix_conversations_updated_at_id", "conversations", &["updated_at", "id"]),
    ("ix_interactions_created_at_id", "interactions", &["created_at", "id"]),
    ("ix_touchpoints_created_at_id", "touchpoints", &["created_at", "id"]),
    ("ix_feedback_created_at_id", "feedback", &["created_at", "id"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in ["retag_requested_at", "retagged_at"] {
            manager
                .alter_table(
                    Table::alter().table("topics").add_column(timestamp_with_time_zone_null(column)).to_owned(),
                )
                .await?;
        }
        create_indexes(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_indexes(manager, INDEXES).await?;
        for column in ["retagged_at", "retag_requested_at"] {
            manager.alter_table(Table::alter().table("topics").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
