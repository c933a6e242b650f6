//! Sentiment labels follow the schema's thresholds (issue #27): NEGATIVE below −0.25,
//! POSITIVE above 0.25, NEUTRAL between. Labels stored before were cut at ±0.1, so a
//! "not great, not terrible" of 0.15 was POSITIVE; every stored label is recomputed
//! here from its stored score, so history and new facts mean the same thing.
//!
//! Only rows whose label changes are written, and their change stamp (`updated_at`)
//! moves as for any change: a warehouse pulling `updatedSince` receives the new
//! labels, insights recompute the hours (the rollup triggers mark them dirty in this
//! same transaction), and the spike detector judges again the windows whose counts
//! changed (episodes it finds in old history are recorded as backfill, paging nobody).
//! The scores themselves stay as the analyser of their day computed them (re-scoring
//! text needs the analyser, not SQL). A replica of the previous version still running
//! during a rolling upgrade writes labels by the old thresholds until it is replaced.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::ChronoUtc;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

/// The label of `sentiment_score`, as `api/src/sentiment.rs` defines it.
const LABEL: &str = "CASE WHEN sentiment_score < -0.25 THEN 'negative' \
    WHEN sentiment_score > 0.25 THEN 'positive' ELSE 'neutral' END";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        let stamp = if backend == DatabaseBackend::Postgres { "$1" } else { "?" };
        let now = ChronoUtc::now();
        for table in ["interactions", "feedback"] {
            let sql = format!(
                "UPDATE {table} SET sentiment_label = {LABEL}, updated_at = {stamp} WHERE sentiment_score IS NOT NULL \
                 AND (sentiment_label IS NULL OR sentiment_label <> {LABEL})"
            );
            db.execute_raw(Statement::from_sql_and_values(backend, sql, [now.into()])).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The old labels are not kept; going down leaves the labels as they are (they
        // are still valid labels, by the thresholds the schema states).
        Ok(())
    }
}
