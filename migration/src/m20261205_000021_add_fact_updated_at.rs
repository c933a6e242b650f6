//! Facts change after all: an erasure blanks their text and external ids, the
//! retention job their text, a merge and an unmerge move them between customers. A
//! warehouse that pulls `updated_since` and upserts by id must see those changes, so
//! interactions, touchpoints and feedback get an `updated_at` (their `created_at` until
//! they first change), stamped by every write that changes them, and the export's
//! keyset index moves from `(created_at, id)` to `(updated_at, id)` (one index per
//! table either way, so ingest pays nothing more).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::dsl::{IndexDef, create_indexes, drop_indexes, execute_all};

const TABLES: [&str; 3] = ["interactions", "touchpoints", "feedback"];

const BY_CREATION: &[IndexDef] = &[
    ("ix_interactions_created_at_id", "interactions", &["created_at", "id"]),
    ("ix_touchpoints_created_at_id", "touchpoints", &["created_at", "id"]),
    ("ix_feedback_created_at_id", "feedback", &["created_at", "id"]),
];

const BY_CHANGE: &[IndexDef] = &[
    ("ix_interactions_updated_at_id", "interactions", &["updated_at", "id"]),
    ("ix_touchpoints_updated_at_id", "touchpoints", &["updated_at", "id"]),
    ("ix_feedback_updated_at_id", "feedback", &["updated_at", "id"]),
];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == DatabaseBackend::Postgres;
        let mut statements = Vec::new();
        for table in TABLES {
            if postgres {
                statements.push(format!("ALTER TABLE {table} ADD COLUMN updated_at timestamptz"));
                statements.push(format!("UPDATE {table} SET updated_at = created_at"));
                statements.push(format!("ALTER TABLE {table} ALTER COLUMN updated_at SET NOT NULL"));
                // A replica of the previous version, still running during a rolling
                // deploy, inserts without the column: its rows are stamped now.
                statements.push(format!("ALTER TABLE {table} ALTER COLUMN updated_at SET DEFAULT now()"));
            } else {
                // SQLite adds a NOT NULL column only with a constant default; every row
                // then gets its creation time.
                statements.push(format!(
                    "ALTER TABLE {table} ADD COLUMN updated_at timestamp_with_timezone_text NOT NULL \
                     DEFAULT '1970-01-01 00:00:00+00:00'"
                ));
                statements.push(format!("UPDATE {table} SET updated_at = created_at"));
            }
        }
        execute_all(manager, statements).await?;
        drop_indexes(manager, BY_CREATION).await?;
        create_indexes(manager, BY_CHANGE).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_indexes(manager, BY_CHANGE).await?;
        create_indexes(manager, BY_CREATION).await?;
        for table in TABLES {
            manager.alter_table(Table::alter().table(table).drop_column("updated_at").to_owned()).await?;
        }
        Ok(())
    }
}
