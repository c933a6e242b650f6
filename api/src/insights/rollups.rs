//! Rollups: feedback and interaction sums per channel per UTC hour and per UTC day,
//! so a year of weekly figures reads a few thousand pre-summed rows, not every fact.
//!
//! The rollups are a cache that is never wrong, rather than one that is usually right:
//! triggers (migration 16) append, in the writer's transaction, what each statement
//! adds to and takes from every (hour, channel) — the sums of its new facts and the
//! negated sums of its old ones — to the family's delta table. [`refresh`] folds
//! pending deltas into the hour and day rows and deletes exactly the deltas it folded,
//! in one transaction; a reader, inside one snapshot, adds the deltas still pending to
//! the rows it reads. So an answer equals the one the facts alone would give, at every
//! moment, and a late-arriving event (an import of last year) is simply one more delta.
//! Both the refresher's work and a reader's extra work are proportional to what
//! changed, not to the volume of the hours it changed (migration 16 says what the
//! dirty-hour scheme before it cost under steady ingest).
//!
//! [`plan`] cuts each time bucket into pieces: whole UTC days (day rows), other whole
//! hours (hour rows), and the minutes before the first and after the last whole hour,
//! read from the facts. Buckets in any time zone work; a zone whose midnight is not a
//! UTC midnight just uses hour rows.
//!
//! Only questions the rollups can answer use them: grouped by nothing but channel and
//! bucket, filtered by nothing but channel (segments change, topics are re-tagged,
//! teams are reassigned; those stay with the facts).

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, IsolationLevel, QueryResult,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use super::buckets::Range;
use super::metrics::{Dimension, Request};
use super::sql::Sql;
use crate::error::AppResult;

/// A family of facts and its rollup table.
#[derive(Debug)]
pub struct Rollup {
    /// The family's name.
    pub family: &'static str,
    pub table: &'static str,
    /// The pending changes the triggers append (see the module comment).
    pub deltas: &'static str,
    /// The facts, aliased as the aggregates expect.
    pub facts: &'static str,
    /// The summed columns, in the order the family's aggregates produce them.
    pub columns: &'static [&'static str],
}

impl Rollup {
    /// The SQL summing this family's facts into [`Rollup::columns`] (the same sums
    /// the facts-only answers use).
    pub fn aggregates(&self) -> String {
        if self.family == FEEDBACK.family {
            super::metrics::feedback_aggregates()
        } else {
            super::metrics::interaction_aggregates()
        }
    }

    fn is_integer(column: &str) -> bool {
        !matches!(column, "s_sum" | "s_sq")
    }
}

pub const FEEDBACK: Rollup = Rollup {
    family: "feedback",
    table: "feedback_rollups",
    deltas: "feedback_rollup_deltas",
    facts: "feedback f",
    columns: &[
        "responses",
        "promoters",
        "passives",
        "detractors",
        "csat_n",
        "csat_sat",
        "csat_sum",
        "csat_sq",
        "ces_n",
        "ces_sum",
        "ces_sq",
        "s_n",
        "s_sum",
        "s_sq",
        "s_neg",
    ],
};

pub const INTERACTIONS: Rollup = Rollup {
    family: "interactions",
    table: "interaction_rollups",
    deltas: "interaction_rollup_deltas",
    facts: "interactions i",
    columns: &["inbound", "outbound", "s_n", "s_sum", "s_sq", "s_neg"],
};

const HOUR: i64 = 3600;
const DAY: i64 = 24;

/// Whole hours since 1970 UTC of the hour holding `t`.
pub fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(HOUR)
}

/// The start of hour `hour` since 1970 UTC.
pub fn start_of(hour: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(hour * HOUR, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The first whole hour starting at or after `t`.
fn ceil_hour(t: DateTime<Utc>) -> i64 {
    let h = hour_of(t);
    if start_of(h) == t { h } else { h + 1 }
}

/// Whether the rollups can answer `req`.
pub fn answers(req: &Request) -> bool {
    req.group_by.iter().all(|d| *d == Dimension::Channel)
        && req.filter.segments.is_none()
        && req.filter.topic_ids.is_none()
        && req.filter.team_ids.is_none()
        && req.from.timestamp() >= 0
}

/// A part of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Rollup rows of `grain` hours (1 or 24) starting in hours `[from, to)`.
    Rollup { bucket: usize, grain: i64, from: i64, to: i64 },
    /// Facts in `[start, end)`.
    Facts { bucket: usize, range: Range },
}

/// Cuts each `(bucket, range)` into pieces (see the module comment). Adjacent pieces
/// of one kind are merged, so a week is a handful.
pub fn plan(buckets: &[(usize, Range)]) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut push = |piece: Piece| {
        if let Some(last) = pieces.last_mut() {
            match (last, piece) {
                (
                    Piece::Rollup { bucket: b1, grain: g1, to: t1, .. },
                    Piece::Rollup { bucket: b2, grain: g2, from: f2, to: t2 },
                ) if *b1 == b2 && *g1 == g2 && *t1 == f2 => {
                    *t1 = t2;
                    return;
                }
                (Piece::Facts { bucket: b1, range: r1 }, Piece::Facts { bucket: b2, range: r2 })
                    if *b1 == b2 && r1.end == r2.start =>
                {
                    r1.end = r2.end;
                    return;
                }
                _ => {}
            }
        }
        pieces.push(piece);
    };
    for &(bucket, range) in buckets {
        if range.start >= range.end {
            continue;
        }
        let (first, last) = (ceil_hour(range.start), hour_of(range.end));
        if first >= last {
            push(Piece::Facts { bucket, range });
            continue;
        }
        if range.start < start_of(first) {
            push(Piece::Facts { bucket, range: Range { start: range.start, end: start_of(first) } });
        }
        let mut h = first;
        while h < last {
            if h.rem_euclid(DAY) == 0 && h + DAY <= last {
                push(Piece::Rollup { bucket, grain: DAY, from: h, to: h + DAY });
                h += DAY;
            } else {
                push(Piece::Rollup { bucket, grain: 1, from: h, to: h + 1 });
                h += 1;
            }
        }
        if start_of(last) < range.end {
            push(Piece::Facts { bucket, range: Range { start: start_of(last), end: range.end } });
        }
    }
    pieces
}

/// The rollup rows of `pieces`, plus the deltas pending in their hours, summed per
/// bucket (`bk`) and, when grouped by it, channel (`d_channel`), under the same column
/// names as the facts' aggregates.
pub async fn read(
    db: &impl ConnectionTrait,
    rollup: &Rollup,
    req: &Request,
    pieces: &[Piece],
) -> AppResult<Vec<QueryResult>> {
    let by_channel = req.group_by.contains(&Dimension::Channel);
    // The pieces as a `VALUES` list (PostgreSQL plans a 50-way `UNION ALL` in 5 ms).
    let values: Vec<String> = pieces
        .iter()
        .filter_map(|piece| match *piece {
            Piece::Rollup { bucket, grain, from, to } => {
                Some(format!("(CAST({bucket} AS BIGINT), {grain}, {from}, {to})"))
            }
            Piece::Facts { .. } => None,
        })
        .collect();
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let columns = rollup.columns.join(", ");
    let mut sql = Sql::new();
    sql.push("WITH p (bk, grain, lo, hi) AS (VALUES ").push(&values.join(", ")).push(") SELECT x.bk AS bk");
    if by_channel {
        sql.push(", x.channel AS d_channel");
    }
    for c in rollup.columns {
        if Rollup::is_integer(c) {
            sql.push(&format!(", CAST(SUM(x.{c}) AS BIGINT) AS {c}"));
        } else {
            sql.push(&format!(", SUM(x.{c}) AS {c}"));
        }
    }
    sql.push(&format!(" FROM (SELECT p.bk, r.channel, {}", prefixed("r", rollup.columns)));
    let within = "r.hours = p.grain AND r.start_hour >= p.lo AND r.start_hour < p.hi";
    if db.get_database_backend() == DatabaseBackend::Postgres {
        // Each piece one range read of the primary key: as a join, PostgreSQL hashed
        // on `hours` and filtered every rollup row against every piece (43 ms for a
        // year on the benchmark dataset, 5 ms this way). `OFFSET 0` keeps the planner
        // from flattening the LATERAL subquery back into that join.
        sql.push(&format!(" FROM p CROSS JOIN LATERAL (SELECT hours, start_hour, channel, {columns} FROM "));
        sql.push(rollup.table).push(" r WHERE ").push(within).push(" OFFSET 0) r");
    } else {
        sql.push(" FROM p JOIN ").push(rollup.table).push(" r ON ").push(within);
    }
    // What the refresher has not folded yet: a delta belongs to the piece of its hour.
    sql.push(&format!(" UNION ALL SELECT p.bk, d.channel, {} FROM p JOIN ", prefixed("d", rollup.columns)));
    sql.push(rollup.deltas).push(" d ON d.start_hour >= p.lo AND d.start_hour < p.hi) x");
    if let Some(channels) = &req.filter.channels {
        sql.push(" WHERE x.channel IN ").bind_list(channels.iter().map(sea_orm::ActiveEnum::to_value));
    }
    sql.push(if by_channel { " GROUP BY x.bk, x.channel" } else { " GROUP BY x.bk" });
    Ok(db.query_all_raw(sql.statement(db.get_database_backend())).await?)
}

/// `a.c1, a.c2, …`
fn prefixed(alias: &str, columns: &[&str]) -> String {
    columns.iter().map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

/// Most deltas one refresh transaction folds.
const CHUNK: i64 = 100_000;

/// Folds up to [`CHUNK`] pending deltas of each family into the hour and day rows and
/// deletes them, in one transaction; returns how many it folded (0 when none were
/// pending, or when another replica holds the refresh).
async fn refresh_chunk(db: &DatabaseConnection) -> AppResult<u64> {
    let backend = db.get_database_backend();
    let Some(txn) = refresh_transaction(db, 4_242_001).await? else {
        return Ok(0);
    };
    let mut folded = 0;
    for rollup in [&FEEDBACK, &INTERACTIONS] {
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT MIN(id) AS lo, MAX(id) AS hi FROM {}", rollup.deltas),
            ))
            .await?;
        let bounds: Option<(Option<i64>, Option<i64>)> = match row {
            Some(r) => Some((r.try_get("", "lo")?, r.try_get("", "hi")?)),
            None => None,
        };
        let Some((Some(lo), Some(hi))) = bounds else {
            continue;
        };
        let upto = hi.min(lo.saturating_add(CHUNK - 1));
        fold(&txn, rollup, upto).await?;
        let mut sql = Sql::new();
        sql.push(&format!("DELETE FROM {} WHERE id <= ", rollup.deltas)).bind(upto);
        folded += txn.execute_raw(sql.statement(backend)).await?.rows_affected();
    }
    txn.commit().await?;
    Ok(folded)
}

/// Adds the deltas up to id `upto` to the hour rows and the day rows they fall in.
async fn fold(db: &impl ConnectionTrait, rollup: &Rollup, upto: i64) -> AppResult<()> {
    let columns = rollup.columns.join(", ");
    let sums = rollup.columns.iter().map(|c| format!("SUM({c}) AS {c}")).collect::<Vec<_>>().join(", ");
    let added = rollup
        .columns
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}", table = rollup.table))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = Sql::new();
    // `WHERE true` before `ON CONFLICT`: SQLite would read the clause as part of the
    // join otherwise.
    sql.push(&format!(
        "INSERT INTO {table} (hours, start_hour, channel, {columns}) SELECT hours, start_hour, channel, {columns} \
         FROM (SELECT 1 AS hours, start_hour, channel, {sums} FROM {deltas} WHERE id <= ",
        table = rollup.table,
        deltas = rollup.deltas,
    ));
    sql.bind(upto).push(&format!(
        " GROUP BY start_hour, channel UNION ALL SELECT {DAY} AS hours, (start_hour / {DAY}) * {DAY} AS start_hour, \
         channel, {sums} FROM {deltas} WHERE id <= ",
        deltas = rollup.deltas,
    ));
    sql.bind(upto).push(&format!(
        " GROUP BY (start_hour / {DAY}) * {DAY}, channel) f WHERE true \
         ON CONFLICT (hours, start_hour, channel) DO UPDATE SET {added}"
    ));
    db.execute_raw(sql.statement(db.get_database_backend())).await?;
    Ok(())
}

/// A refresher's transaction: a snapshot on PostgreSQL (the marks it deletes are
/// exactly those its recompute saw) holding the advisory lock `lock` (one refresher at
/// a time across replicas; `None` when another holds it); the write lock from the
/// start on SQLite (one writer at a time anyway).
pub(super) async fn refresh_transaction(
    db: &DatabaseConnection,
    lock: i64,
) -> AppResult<Option<sea_orm::DatabaseTransaction>> {
    let backend = db.get_database_backend();
    let txn = db
        .begin_with_options(TransactionOptions {
            isolation_level: (backend == DatabaseBackend::Postgres).then_some(IsolationLevel::RepeatableRead),
            access_mode: None,
            sqlite_transaction_mode: (backend == DatabaseBackend::Sqlite).then_some(SqliteTransactionMode::Immediate),
        })
        .await?;
    if backend == DatabaseBackend::Postgres {
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT pg_try_advisory_xact_lock({lock}) AS locked"),
            ))
            .await?;
        if !row.map(|r| r.try_get::<bool>("", "locked")).transpose()?.unwrap_or(false) {
            return Ok(None);
        }
    }
    Ok(Some(txn))
}

/// Folds until nothing is pending (or `max_chunks` chunks ran); returns the deltas
/// folded.
pub async fn refresh(db: &DatabaseConnection, max_chunks: usize) -> AppResult<u64> {
    let mut total = 0;
    for _ in 0..max_chunks {
        let n = refresh_chunk(db).await?;
        total += n;
        if n == 0 {
            break;
        }
    }
    Ok(total)
}

/// The refresher job: every `interval`, the pending deltas, then the marked journey
/// runs (`super::runs`).
pub fn spawn_refresher(db: DatabaseConnection, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(interval, move || {
        let db = db.clone();
        async move {
            match refresh(&db, 100).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deltas = n, "insight rollups refreshed"),
                Err(e) => tracing::warn!(error = e.message(), "insight rollup refresh failed; retrying next interval"),
            }
            match super::runs::refresh(&db, 100).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(marks = n, "journey runs refreshed"),
                Err(e) => tracing::warn!(error = e.message(), "journey run refresh failed; retrying next interval"),
            }
        }
    })
}

/// A transaction whose reads all see one snapshot: read-only REPEATABLE READ on
/// PostgreSQL, a read transaction on SQLite (WAL gives it a snapshot).
pub async fn snapshot(db: &DatabaseConnection) -> AppResult<sea_orm::DatabaseTransaction> {
    Ok(match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await?
        }
        _ => db.begin().await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn range(a: &str, b: &str) -> Range {
        Range { start: utc(a), end: utc(b) }
    }

    #[test]
    fn a_week_is_whole_days_with_ragged_edges_from_the_facts() {
        let week = range("2026-11-23T10:30:00Z", "2026-11-30T00:00:00Z");
        let pieces = plan(&[(3, week)]);
        let h = hour_of(utc("2026-11-23T11:00:00Z"));
        let day = hour_of(utc("2026-11-24T00:00:00Z"));
        assert_eq!(
            pieces,
            vec![
                Piece::Facts { bucket: 3, range: range("2026-11-23T10:30:00Z", "2026-11-23T11:00:00Z") },
                Piece::Rollup { bucket: 3, grain: 1, from: h, to: day },
                Piece::Rollup { bucket: 3, grain: 24, from: day, to: day + 6 * 24 },
            ]
        );
    }

    #[test]
    fn less_than_an_hour_and_zones_off_the_hour_come_from_the_facts() {
        let short = range("2026-11-24T10:05:00Z", "2026-11-24T10:55:00Z");
        assert_eq!(plan(&[(0, short)]), vec![Piece::Facts { bucket: 0, range: short }]);
        // A Kolkata day (UTC+05:30) starts at 18:30Z: half-hours at both ends.
        let day = range("2026-11-23T18:30:00Z", "2026-11-24T18:30:00Z");
        let pieces = plan(&[(1, day)]);
        assert_eq!(
            pieces.first(),
            Some(&Piece::Facts { bucket: 1, range: range("2026-11-23T18:30:00Z", "2026-11-23T19:00:00Z") })
        );
        assert_eq!(
            pieces.last(),
            Some(&Piece::Facts { bucket: 1, range: range("2026-11-24T18:00:00Z", "2026-11-24T18:30:00Z") })
        );
        assert_eq!(pieces.len(), 3, "{pieces:?}");
    }
}
