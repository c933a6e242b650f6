//! Spikes found in event time (`api/src/alerts/spikes.rs`): an episode is a run of
//! spiking windows of one scope, found whenever its mentions arrive — live, late or in
//! a backfill — so its alert records what it is about and when it happened, not only
//! when it was raised:
//!
//! - `scope` (`channel:twitter`, `topic:<id>`, `inbox:<name>`) and the episode's
//!   event-time span `window_start`/`window_end`, indexed by scope so a run finds the
//!   episode a spiking window belongs to instead of raising it again;
//! - `backfill`: found long after it happened (history loaded later), recorded
//!   without paging anyone.
//!
//! `detector_cursors` holds how far each detector has read the facts' change stamps
//! (`updated_at`), so a restart or a replica taking over evaluates exactly the windows
//! that received facts since. Inbox is a scope, and its history check reads the
//! scope's first message through `(inbox, occurred_at)`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::dsl::*;

const ALERT_COLUMNS: [&str; 4] = ["scope", "window_start", "window_end", "backfill"];
const INDEXES: &[IndexDef] = &[
    ("ix_alerts_scope_window_end", "alerts", &["scope", "window_end"]),
    ("ix_interactions_inbox_occurred_at", "interactions", &["inbox", "occurred_at"]),
];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [string_len_null("scope", 300), ts_null("window_start"), ts_null("window_end"), {
            let mut c = boolean("backfill");
            c.default(false);
            c
        }];
        // One column per statement: SQLite alters a table one change at a time.
        for mut column in columns {
            manager.alter_table(Table::alter().table("alerts").add_column(&mut column).to_owned()).await?;
        }
        // Spike alerts raised before carry their scope from now on, so the detector
        // can close their episodes (a topic's on PostgreSQL; SQLite keeps ids as
        // bytes, and such an alert is left for a person to resolve).
        let mut scopes = vec![
            "UPDATE alerts SET scope = 'channel:' || channel \
             WHERE kind = 'negative_spike' AND topic_id IS NULL AND channel IS NOT NULL"
                .to_owned(),
        ];
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            scopes.push(
                "UPDATE alerts SET scope = 'topic:' || CAST(topic_id AS TEXT) \
                 WHERE kind = 'negative_spike' AND topic_id IS NOT NULL"
                    .to_owned(),
            );
        }
        // Their span is unknown: the time they were raised stands for it.
        scopes.push(
            "UPDATE alerts SET window_start = raised_at, window_end = raised_at \
             WHERE kind = 'negative_spike' AND window_start IS NULL"
                .to_owned(),
        );
        execute_all(manager, scopes).await?;
        create_all(
            manager,
            vec![
                TableDef::new("detector_cursors")
                    .col(string_len("name", 64))
                    .col(ts("position"))
                    .primary_key(&["name"]),
            ],
        )
        .await?;
        create_indexes(manager, INDEXES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_indexes(manager, INDEXES).await?;
        drop_all(manager, &["detector_cursors"]).await?;
        for column in ALERT_COLUMNS {
            manager.alter_table(Table::alter().table("alerts").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
