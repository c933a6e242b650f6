//! Rollups for the insights: feedback and interaction sums per channel per UTC hour
//! and per UTC day, so a year of weekly NPS reads a few thousand pre-summed rows
//! instead of every response.
//!
//! A rollup row is only trusted while no fact of its hour changed since it was
//! computed. Triggers, not the application, record every change: each insert, each
//! delete and each update of a column a rollup sums appends the fact's hour to
//! `rollup_dirty` (`hour` = whole hours since 1970 UTC), in the writer's own
//! transaction, so no write path can forget it. The refresher job recomputes dirty
//! hours from the facts and deletes exactly the marks it saw; readers read dirty hours
//! from the facts and the rest from the rollups (see `api/src/insights/rollups.rs`).
//! Marks are append-only rows, so writers never wait on one another for them.
//!
//! The tables are written as SQL per backend: composite keys and triggers are beyond
//! the schema builder, and the triggers differ (PostgreSQL marks once per statement
//! from its transition table; SQLite once per row).

use crate::dsl::{drop_triggers, execute_all};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The facts rolled up, and the columns whose change makes an hour dirty.
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("feedback", "feedback", &["occurred_at", "channel", "kind", "score", "sentiment_score", "sentiment_label"]),
    ("interactions", "interactions", &["occurred_at", "channel", "direction", "sentiment_score", "sentiment_label"]),
];

const FEEDBACK_SUMS: &str = "responses BIGINT NOT NULL, promoters BIGINT NOT NULL, passives BIGINT NOT NULL, \
    detractors BIGINT NOT NULL, csat_n BIGINT NOT NULL, csat_sat BIGINT NOT NULL, csat_sum BIGINT NOT NULL, \
    csat_sq BIGINT NOT NULL, ces_n BIGINT NOT NULL, ces_sum BIGINT NOT NULL, ces_sq BIGINT NOT NULL";
const INTERACTION_SUMS: &str = "inbound BIGINT NOT NULL, outbound BIGINT NOT NULL";
const SENTIMENT_SUMS: &str = "s_n BIGINT NOT NULL, s_sum DOUBLE PRECISION NOT NULL, \
    s_sq DOUBLE PRECISION NOT NULL, s_neg BIGINT NOT NULL";

pub(crate) fn tables(backend: DatabaseBackend) -> Vec<String> {
    let id = match backend {
        DatabaseBackend::Postgres => "id BIGSERIAL PRIMARY KEY",
        _ => "id INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    let rollup = |name: &str, sums: &str| {
        // `hours` is 1 for an hour row and 24 for a day row; `start_hour` is where it
        // starts, in whole hours since 1970 UTC.
        format!(
            "CREATE TABLE {name} (hours SMALLINT NOT NULL, start_hour BIGINT NOT NULL, channel VARCHAR(24) NOT NULL, \
             {sums}, {SENTIMENT_SUMS}, PRIMARY KEY (hours, start_hour, channel))"
        )
    };
    vec![
        format!("CREATE TABLE rollup_dirty ({id}, family VARCHAR(24) NOT NULL, hour BIGINT NOT NULL)"),
        "CREATE INDEX ix_rollup_dirty_family_hour ON rollup_dirty (family, hour)".into(),
        rollup("feedback_rollups", FEEDBACK_SUMS),
        rollup("interaction_rollups", INTERACTION_SUMS),
    ]
}

pub(crate) fn postgres_triggers() -> Vec<String> {
    let mut sql = vec![
        // One function for every family: the family is the trigger's argument, and the
        // transition tables it reads are the ones the firing event has.
        "CREATE FUNCTION rollup_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF TG_OP IN ('INSERT', 'UPDATE') THEN \
             INSERT INTO rollup_dirty (family, hour) \
             SELECT DISTINCT TG_ARGV[0], FLOOR(EXTRACT(EPOCH FROM occurred_at) / 3600)::BIGINT FROM new_rows; \
           END IF; \
           IF TG_OP IN ('UPDATE', 'DELETE') THEN \
             INSERT INTO rollup_dirty (family, hour) \
             SELECT DISTINCT TG_ARGV[0], FLOOR(EXTRACT(EPOCH FROM occurred_at) / 3600)::BIGINT FROM old_rows; \
           END IF; \
           RETURN NULL; \
         END $$"
            .to_string(),
    ];
    for (family, table, _) in FAMILIES {
        for (event, referencing) in [
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ] {
            let lower = event.to_lowercase();
            sql.push(format!(
                "CREATE TRIGGER {table}_rollup_{lower} AFTER {event} ON {table} REFERENCING {referencing} \
                 FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_dirty('{family}')"
            ));
        }
    }
    sql
}

pub(crate) fn sqlite_triggers() -> Vec<String> {
    let mark = |family: &str, row: &str| {
        format!(
            "INSERT INTO rollup_dirty (family, hour) \
             VALUES ('{family}', CAST(strftime('%s', {row}.occurred_at) AS INTEGER) / 3600);"
        )
    };
    let mut sql = Vec::new();
    for (family, table, columns) in FAMILIES {
        let (new, old) = (mark(family, "NEW"), mark(family, "OLD"));
        sql.push(format!("CREATE TRIGGER {table}_rollup_insert AFTER INSERT ON {table} BEGIN {new} END"));
        sql.push(format!(
            "CREATE TRIGGER {table}_rollup_update AFTER UPDATE OF {} ON {table} BEGIN {old} {new} END",
            columns.join(", ")
        ));
        sql.push(format!("CREATE TRIGGER {table}_rollup_delete AFTER DELETE ON {table} BEGIN {old} END"));
    }
    sql
}

/// Facts stored before the rollups existed (or kept): every hour that holds one is dirty.
pub(crate) async fn mark_every_hour(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (family, table, _) in FAMILIES {
        let hour = match manager.get_database_backend() {
            DatabaseBackend::Postgres => "FLOOR(EXTRACT(EPOCH FROM occurred_at) / 3600)::BIGINT",
            _ => "CAST(strftime('%s', occurred_at) AS INTEGER) / 3600",
        };
        db.execute_unprepared(&format!(
            "INSERT INTO rollup_dirty (family, hour) SELECT DISTINCT '{family}', {hour} FROM {table}"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let triggers = match backend {
            DatabaseBackend::Postgres => postgres_triggers(),
            _ => sqlite_triggers(),
        };
        execute_all(manager, tables(backend).into_iter().chain(triggers).collect()).await?;
        mark_every_hour(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables: Vec<&str> = FAMILIES.iter().map(|(_, table, _)| *table).collect();
        drop_triggers(manager, &tables, "rollup", &["rollup_mark_dirty"]).await?;
        let drops =
            ["interaction_rollups", "feedback_rollups", "rollup_dirty"].map(|t| format!("DROP TABLE IF EXISTS {t}"));
        execute_all(manager, drops.to_vec()).await
    }
}
