//! Rollups kept by deltas instead of dirty hours.
//!
//! Migration 13 marked the hour of every changed fact dirty, and the refresher
//! recomputed each dirty hour from all of its facts. Under steady ingest the current
//! hour is always dirty, so every refresh re-read the whole hour (300,000 messages,
//! 1.3 s of PostgreSQL every five seconds in the ingest benchmark) and every reader
//! took that hour from the facts. The cost grew with the hour's volume, not with what
//! changed.
//!
//! Now the triggers write what a change adds and takes away: each statement that
//! inserts, updates or deletes facts appends, per (hour, channel), the sums of its new
//! rows and the negated sums of its old rows to `{family}_rollup_deltas`, in the
//! writer's own transaction (append-only rows: writers never wait on one another).
//! The refresher folds pending deltas into the hour and day rows and deletes the ones
//! it folded; a reader adds the deltas still pending to the rows it reads, in one
//! snapshot, so an answer is the facts' answer at every moment. The work of both is
//! proportional to what changed.
//!
//! The sums here are the same as the insights' aggregates over the facts
//! (`api/src/insights/metrics.rs`); the e2e test `rollups_answer_exactly_what_the_facts_answer`
//! holds the two to the same answers. Hours that were still dirty become deltas
//! (their facts' sums less their stale hour rows), so nothing is recomputed twice.

use crate::dsl::{drop_triggers, epoch_units, execute_all};
use crate::m20261202_000013_create_insight_rollups as marks;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A family of facts: its table, its rollups, and each summed column with the
/// per-fact expression it sums (the fact aliased `x`).
struct Family {
    name: &'static str,
    table: &'static str,
    rollups: &'static str,
    deltas: &'static str,
    sums: &'static [(&'static str, &'static str)],
    /// Columns whose update changes a sum (SQLite's update trigger watches these).
    watched: &'static [&'static str],
}

const SENTIMENT: [(&str, &str); 4] = [
    ("s_n", "CASE WHEN x.sentiment_score IS NOT NULL THEN 1 ELSE 0 END"),
    ("s_sum", "COALESCE(x.sentiment_score, 0)"),
    ("s_sq", "COALESCE(x.sentiment_score * x.sentiment_score, 0)"),
    ("s_neg", "CASE WHEN x.sentiment_label = 'negative' THEN 1 ELSE 0 END"),
];

const FEEDBACK: Family = Family {
    name: "feedback",
    table: "feedback",
    rollups: "feedback_rollups",
    deltas: "feedback_rollup_deltas",
    sums: &[
        ("responses", "1"),
        ("promoters", "CASE WHEN x.kind = 'nps' AND x.score >= 9 THEN 1 ELSE 0 END"),
        ("passives", "CASE WHEN x.kind = 'nps' AND x.score IN (7, 8) THEN 1 ELSE 0 END"),
        ("detractors", "CASE WHEN x.kind = 'nps' AND x.score <= 6 THEN 1 ELSE 0 END"),
        ("csat_n", "CASE WHEN x.kind = 'csat' THEN 1 ELSE 0 END"),
        ("csat_sat", "CASE WHEN x.kind = 'csat' AND x.score >= 4 THEN 1 ELSE 0 END"),
        ("csat_sum", "CASE WHEN x.kind = 'csat' THEN COALESCE(x.score, 0) ELSE 0 END"),
        ("csat_sq", "CASE WHEN x.kind = 'csat' THEN COALESCE(x.score * x.score, 0) ELSE 0 END"),
        ("ces_n", "CASE WHEN x.kind = 'ces' THEN 1 ELSE 0 END"),
        ("ces_sum", "CASE WHEN x.kind = 'ces' THEN COALESCE(x.score, 0) ELSE 0 END"),
        ("ces_sq", "CASE WHEN x.kind = 'ces' THEN COALESCE(x.score * x.score, 0) ELSE 0 END"),
        SENTIMENT[0],
        SENTIMENT[1],
        SENTIMENT[2],
        SENTIMENT[3],
    ],
    watched: &["occurred_at", "channel", "kind", "score", "sentiment_score", "sentiment_label"],
};

const INTERACTIONS: Family = Family {
    name: "interactions",
    table: "interactions",
    rollups: "interaction_rollups",
    deltas: "interaction_rollup_deltas",
    sums: &[
        ("inbound", "CASE WHEN x.direction = 'inbound' THEN 1 ELSE 0 END"),
        ("outbound", "CASE WHEN x.direction = 'outbound' THEN 1 ELSE 0 END"),
        SENTIMENT[0],
        SENTIMENT[1],
        SENTIMENT[2],
        SENTIMENT[3],
    ],
    watched: &["occurred_at", "channel", "direction", "sentiment_score", "sentiment_label"],
};

const FAMILIES: [&Family; 2] = [&FEEDBACK, &INTERACTIONS];

fn hour(backend: DatabaseBackend, column: &str) -> String {
    epoch_units(backend, column, 3600)
}

impl Family {
    fn columns(&self) -> String {
        self.sums.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    }

    fn is_float(column: &str) -> bool {
        matches!(column, "s_sum" | "s_sq")
    }

    /// The delta table: the rollup's sums per (hour, channel), any sign.
    fn create(&self, backend: DatabaseBackend) -> Vec<String> {
        let id = match backend {
            DatabaseBackend::Postgres => "id BIGSERIAL PRIMARY KEY",
            _ => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        let sums: Vec<String> = self
            .sums
            .iter()
            .map(|(c, _)| format!("{c} {} NOT NULL", if Self::is_float(c) { "DOUBLE PRECISION" } else { "BIGINT" }))
            .collect();
        vec![
            format!(
                "CREATE TABLE {} ({id}, start_hour BIGINT NOT NULL, channel VARCHAR(24) NOT NULL, {})",
                self.deltas,
                sums.join(", ")
            ),
            format!("CREATE INDEX ix_{0}_start_hour ON {0} (start_hour)", self.deltas),
        ]
    }

    /// `INSERT` of the sums of `source` (aliased `x`) per (hour, channel), negated when
    /// `sign` is `-`.
    fn insert_sums(&self, backend: DatabaseBackend, source: &str, sign: &str) -> String {
        let sums: Vec<String> = self.sums.iter().map(|(_, e)| format!("{sign}SUM({e})")).collect();
        format!(
            "INSERT INTO {} (start_hour, channel, {}) SELECT {}, x.channel, {} FROM {source} x GROUP BY 1, 2",
            self.deltas,
            self.columns(),
            hour(backend, "x.occurred_at"),
            sums.join(", ")
        )
    }

    /// PostgreSQL: one function and three statement-level triggers reading the
    /// transition tables.
    fn postgres_triggers(&self) -> Vec<String> {
        let (new, old) = (
            self.insert_sums(DatabaseBackend::Postgres, "new_rows", ""),
            self.insert_sums(DatabaseBackend::Postgres, "old_rows", "-"),
        );
        let mut sql = vec![format!(
            "CREATE FUNCTION {table}_rollup_delta() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF TG_OP IN ('INSERT', 'UPDATE') THEN {new}; END IF; \
               IF TG_OP IN ('UPDATE', 'DELETE') THEN {old}; END IF; \
               RETURN NULL; \
             END $$",
            table = self.table
        )];
        for (event, referencing) in [
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ] {
            sql.push(format!(
                "CREATE TRIGGER {table}_rollup_delta_{lower} AFTER {event} ON {table} REFERENCING {referencing} \
                 FOR EACH STATEMENT EXECUTE FUNCTION {table}_rollup_delta()",
                table = self.table,
                lower = event.to_lowercase()
            ));
        }
        sql
    }

    /// SQLite: a delta row per changed fact.
    fn sqlite_triggers(&self) -> Vec<String> {
        let row = |alias: &str, sign: &str| {
            let sums: Vec<String> =
                self.sums.iter().map(|(_, e)| format!("{sign}({})", e.replace("x.", &format!("{alias}.")))).collect();
            format!(
                "INSERT INTO {} (start_hour, channel, {}) VALUES ({}, {alias}.channel, {});",
                self.deltas,
                self.columns(),
                hour(DatabaseBackend::Sqlite, &format!("{alias}.occurred_at")),
                sums.join(", ")
            )
        };
        let (new, old, table) = (row("NEW", ""), row("OLD", "-"), self.table);
        vec![
            format!("CREATE TRIGGER {table}_rollup_delta_insert AFTER INSERT ON {table} BEGIN {new} END"),
            format!(
                "CREATE TRIGGER {table}_rollup_delta_update AFTER UPDATE OF {} ON {table} BEGIN {old} {new} END",
                self.watched.join(", ")
            ),
            format!("CREATE TRIGGER {table}_rollup_delta_delete AFTER DELETE ON {table} BEGIN {old} END"),
        ]
    }

    /// Hours still marked dirty become deltas: their facts' sums less their hour rows.
    fn dirty_to_deltas(&self, backend: DatabaseBackend) -> String {
        let dirty = format!("SELECT hour FROM rollup_dirty WHERE family = '{}'", self.name);
        let facts: Vec<String> = self.sums.iter().map(|(c, e)| format!("{e} AS {c}")).collect();
        let stale: Vec<String> = self.sums.iter().map(|(c, _)| format!("-{c} AS {c}")).collect();
        let sums: Vec<String> = self.sums.iter().map(|(c, _)| format!("SUM({c})")).collect();
        let hr = hour(backend, "x.occurred_at");
        format!(
            "INSERT INTO {deltas} (start_hour, channel, {columns}) SELECT start_hour, channel, {sums} FROM (\
             SELECT {hr} AS start_hour, x.channel AS channel, {facts} FROM {table} x WHERE {hr} IN ({dirty}) \
             UNION ALL SELECT start_hour, channel, {stale} FROM {rollups} WHERE hours = 1 AND start_hour IN ({dirty})\
             ) d GROUP BY start_hour, channel",
            deltas = self.deltas,
            columns = self.columns(),
            sums = sums.join(", "),
            facts = facts.join(", "),
            table = self.table,
            stale = stale.join(", "),
            rollups = self.rollups,
        )
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let tables: Vec<&str> = FAMILIES.iter().map(|f| f.table).collect();
        drop_triggers(manager, &tables, "rollup", &["rollup_mark_dirty"]).await?;
        let mut sql = Vec::new();
        for family in FAMILIES {
            sql.extend(family.create(backend));
            sql.push(family.dirty_to_deltas(backend));
            sql.extend(match backend {
                DatabaseBackend::Postgres => family.postgres_triggers(),
                _ => family.sqlite_triggers(),
            });
        }
        sql.push("DROP TABLE rollup_dirty".into());
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let tables: Vec<&str> = FAMILIES.iter().map(|f| f.table).collect();
        let functions: Vec<String> = tables.iter().map(|t| format!("{t}_rollup_delta")).collect();
        let functions: Vec<&str> = functions.iter().map(String::as_str).collect();
        drop_triggers(manager, &tables, "rollup_delta", &functions).await?;
        let mut sql: Vec<String> = FAMILIES.iter().map(|f| format!("DROP TABLE {}", f.deltas)).collect();
        // Back to dirty marks, with every hour that holds a fact marked (as migration
        // 13 left a database it found with facts).
        sql.extend(marks::tables(backend).into_iter().filter(|t| t.contains("rollup_dirty")));
        sql.extend(match backend {
            DatabaseBackend::Postgres => marks::postgres_triggers(),
            _ => marks::sqlite_triggers(),
        });
        execute_all(manager, sql).await?;
        marks::mark_every_hour(manager).await
    }
}
