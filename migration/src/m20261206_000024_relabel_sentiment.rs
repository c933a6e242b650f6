//! Sentiment labels follow the schema's thresholds (issue #27): NEGATIVE below −0.25,
//! POSITIVE above 0.25, NEUTRAL between. Labels stored before were cut at ±0.1, so a
//! "not great, not terrible" of 0.15 was POSITIVE; every stored label is recomputed
//! here from its stored score, so history and new facts mean the same thing.
//!
//! Only rows whose label changes are written. The rollup triggers mark their hours
//! dirty in this same transaction, so insights recompute them; the change stamps
//! (`updated_at`) are left alone, so the spike detector does not re-judge a year of
//! history because a definition moved. The scores themselves stay as the analyser of
//! their day computed them (re-scoring text needs the analyser, not SQL).

use sea_orm_migration::prelude::*;

use crate::dsl::execute_all;

/// The label of `sentiment_score`, as `api/src/sentiment.rs` defines it.
const LABEL: &str = "CASE WHEN sentiment_score < -0.25 THEN 'negative' \
    WHEN sentiment_score > 0.25 THEN 'positive' ELSE 'neutral' END";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = ["interactions", "feedback"]
            .into_iter()
            .map(|table| {
                format!(
                    "UPDATE {table} SET sentiment_label = {LABEL} WHERE sentiment_score IS NOT NULL \
                     AND (sentiment_label IS NULL OR sentiment_label <> {LABEL})"
                )
            })
            .collect();
        execute_all(manager, statements).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The old labels are not kept; going down leaves the labels as they are (they
        // are still valid labels, by the thresholds the schema states).
        Ok(())
    }
}
