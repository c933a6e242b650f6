//! The brand watch list (issue #27): our brands and our competitors, watched like
//! topics. A brand *is* a topic with a side: it is matched by the same keywords at
//! ingest, its links live in the same link tables, re-tagging after an edit is the
//! same job and spikes of its negative mentions are found by the same detector, so
//! none of that is written twice. What a brand adds:
//!
//! - `brand`: `ours` or `competitor` (`NULL` for a plain topic);
//! - `handles`: the brand's accounts (`@acmecare`, a number, an address), matched as
//!   words in a text and, for a message, against the inbox that received it (a direct
//!   message to our account is about us even when it names nobody).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one change at a time.
        for mut column in [string_len_null("brand", 16), json_binary_null("handles")] {
            manager.alter_table(Table::alter().table("topics").add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["brand", "handles"] {
            manager.alter_table(Table::alter().table("topics").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
