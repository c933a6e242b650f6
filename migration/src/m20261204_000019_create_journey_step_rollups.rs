//! The funnel's rollup: how many kept journey steps (`journey_steps`, migration 15)
//! each journey has per UTC entry day, and per UTC week (Monday to Sunday), stage and
//! duration bucket of the time from the previous stage.
//!
//! A quarter's funnel read its 93,000 steps and sorted their durations per request
//! (38 ms an execution on the Xeon benchmark machine; the design's bar is 20 ms). A
//! rollup of counts answers "how many reached each stage" exactly, but an exact median
//! cannot be summed; a histogram can. Durations fall into logarithmic buckets,
//! [`PER_OCTAVE`] to each doubling (bucket widths of 9 %), so the median is read from
//! the merged histogram: interpolated inside its bucket, its 95 % interval widened to
//! whole buckets so it still holds the exact order statistics. The bucket bounds live in
//! `duration_buckets`, written here from [`bucket_bounds`]; the API maps a value to
//! its bucket with the same bounds, so SQL and Rust can never bucket a value apart.
//!
//! A row's `grain` is 1 (its `entry_day` is that day) or 7 (the week starting on its
//! `entry_day`): a quarter is a dozen weeks and a few days, 3,800 rows on the
//! benchmark's data instead of its days' 14,000 (a week holds fewer buckets than its
//! seven days apart), and its read 2.7 ms instead of 9 (EXPLAIN ANALYZE).
//!
//! The rollup is kept equal to `GROUP BY` over `journey_steps` at every commit: the
//! only writer of the steps (the journey-runs refresh) takes a chunk's old steps out
//! of it and adds the new ones in the same transaction. Customers are never deleted,
//! so no cascade takes steps behind its back; a deleted journey's rows cascade with
//! its steps. This migration builds it from the steps already kept, and indexes the
//! steps by when they were reached for the funnel's correction of steps reached
//! after its window.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::dsl::{epoch_units, execute_all};

/// Buckets to each doubling of a duration.
pub const PER_OCTAVE: i32 = 8;
/// Doublings above one second the buckets cover (2^31 s is 68 years).
const OCTAVES: i32 = 31;

/// `(bucket, low, high)`: bucket 0 is `[0, 1)` second; bucket `k ≥ 1` is
/// `[2^((k−1)/8), 2^(k/8))` seconds; the last one is open-ended.
pub fn bucket_bounds() -> Vec<(i32, f64, f64)> {
    let edge = |k: i32| 2f64.powf(f64::from(k) / f64::from(PER_OCTAVE));
    let last = OCTAVES * PER_OCTAVE;
    let mut bounds = vec![(0, 0.0, 1.0)];
    for k in 1..=last {
        bounds.push((k, edge(k - 1), if k == last { f64::MAX } else { edge(k) }));
    }
    bounds
}

/// The bucket of the duration `seconds` (NULL: -1), one index probe a value.
fn bucket_of(seconds: &str) -> String {
    format!(
        "COALESCE((SELECT b.bucket FROM duration_buckets b WHERE b.low <= {seconds} \
         ORDER BY b.low DESC LIMIT 1), -1)"
    )
}

/// The Monday starting the week of day `day` (days since 1970, a Thursday; from
/// 1970 on, so `%` needs no care for negatives).
fn week_of(day: &str) -> String {
    format!("({day} - ({day} + 3) % 7)")
}

/// `INSERT … SELECT` adding `sign` × the steps of `journey_steps s` that match a
/// condition into the rollup, at both grains: the text before the condition (SQL
/// over `s`) and the text after it.
pub fn fold_steps(backend: DatabaseBackend, sign: i32) -> (String, String) {
    let week = week_of("k.entry_day");
    let head = format!(
        "INSERT INTO journey_step_rollups (journey_id, grain, entry_day, ordinal, bucket, n) \
         SELECT k.journey_id, g.grain, CASE WHEN g.grain = 7 THEN {week} ELSE k.entry_day END, k.ordinal, k.bucket, \
           {sign} * COUNT(*) \
         FROM (SELECT s.journey_id, {day} AS entry_day, s.ordinal, {bucket} AS bucket \
           FROM journey_steps s WHERE ",
        day = epoch_units(backend, "s.entered_at", 86_400),
        bucket = bucket_of("s.seconds"),
    );
    let tail = format!(
        ") k \
         CROSS JOIN (SELECT 1 AS grain UNION ALL SELECT 7) g \
         WHERE TRUE GROUP BY k.journey_id, g.grain, CASE WHEN g.grain = 7 THEN {week} ELSE k.entry_day END, \
           k.ordinal, k.bucket \
         ON CONFLICT (journey_id, grain, entry_day, ordinal, bucket) \
         DO UPDATE SET n = journey_step_rollups.n + excluded.n"
    );
    (head, tail)
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let uuid = if backend == DatabaseBackend::Postgres { "UUID" } else { "uuid_text" };
        let mut sql = vec![
            "CREATE TABLE duration_buckets (bucket INTEGER NOT NULL PRIMARY KEY, \
             low DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL)"
                .to_owned(),
            "CREATE UNIQUE INDEX ix_duration_buckets_low ON duration_buckets (low, bucket)".to_owned(),
            format!(
                "CREATE TABLE journey_step_rollups (journey_id {uuid} NOT NULL, grain INTEGER NOT NULL, \
                 entry_day BIGINT NOT NULL, ordinal INTEGER NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL, \
                 PRIMARY KEY (journey_id, grain, entry_day, ordinal, bucket), \
                 FOREIGN KEY (journey_id) REFERENCES journeys (id) ON DELETE CASCADE)"
            ),
        ];
        // The funnel reads a window's rows from the index alone (the benchmark's
        // quarter in day rows, 14,000: 6.7 → 4.6 ms a read).
        sql.push(if backend == DatabaseBackend::Postgres {
            "CREATE INDEX ix_journey_step_rollups_days ON journey_step_rollups (journey_id, grain, entry_day) \
             INCLUDE (ordinal, bucket, n)"
                .to_owned()
        } else {
            "CREATE INDEX ix_journey_step_rollups_days ON journey_step_rollups \
             (journey_id, grain, entry_day, ordinal, bucket, n)"
                .to_owned()
        });
        // Rows a refresh emptied, which it deletes after every chunk: without this
        // the delete scanned the whole table each time (133,000 rows for a year of
        // the benchmark's data, 30 ms; 0.1 ms with it).
        sql.push(
            "CREATE INDEX ix_journey_step_rollups_empty ON journey_step_rollups (journey_id) WHERE n = 0".to_owned(),
        );
        // The funnel's one unbounded correction: steps of the window's days reached
        // after it (none for a window ending now).
        sql.push(if backend == DatabaseBackend::Postgres {
            "CREATE INDEX ix_journey_steps_reached ON journey_steps (journey_id, reached_at) \
             INCLUDE (entered_at, ordinal, seconds, customer_id)"
                .to_owned()
        } else {
            "CREATE INDEX ix_journey_steps_reached ON journey_steps \
             (journey_id, reached_at, entered_at, ordinal, seconds, customer_id)"
                .to_owned()
        });
        let values: Vec<String> = bucket_bounds().iter().map(|(k, lo, hi)| format!("({k}, {lo:e}, {hi:e})")).collect();
        sql.push(format!("INSERT INTO duration_buckets (bucket, low, high) VALUES {}", values.join(", ")));
        let (head, tail) = fold_steps(backend, 1);
        sql.push(format!("{head}TRUE{tail}"));
        if backend == DatabaseBackend::Postgres {
            // Plans read the new table as empty until autovacuum's first pass: a
            // quarter's funnel sorted its 3,800 rows (14 ms) instead of hashing them.
            sql.push("ANALYZE journey_step_rollups".to_owned());
        }
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_all(
            manager,
            vec![
                "DROP INDEX ix_journey_steps_reached".to_owned(),
                "DROP TABLE journey_step_rollups".to_owned(),
                "DROP TABLE duration_buckets".to_owned(),
            ],
        )
        .await
    }
}
