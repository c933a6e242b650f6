//! The journey funnel: of the runs that entered a journey in a window (see [`runs`]
//! for what a run is: one pass of a customer through the journey), how many went on
//! to each later stage, in order, before the window's end; conversion and drop-off
//! per stage; and the median time from the previous stage.
//!
//! Counting runs, not customers, is what makes the funnel keepable: a run's steps
//! depend on its own customer's touchpoints alone, so they are walked once and kept
//! (`journey_steps`), and a quarter's funnel reads its runs' steps, already walked
//! (93,000 rows for a quarter of the benchmark's Purchase journey), instead of
//! pivoting every touchpoint of the quarter per request. (The earlier definition, each customer's
//! first time at each stage within the window, depended on where the window began,
//! so nothing could be kept for it.) Grouping and filtering by channel use the run's
//! entry channel (that of the touchpoint that began it); by segment, the customer's
//! segment now.
//!
//!
//! An unsplit, unfiltered funnel reads one step further removed: the rollup of the
//! kept steps per entry week or day, stage and duration bucket (migration 19), 3,800
//! rows for the benchmark's quarter, corrected by the steps it cannot tell apart (see [`rolled`]).
//! Counts stay exact; the median time comes from the merged histogram, within its
//! bucket (9 %) of the exact one and with an interval that still holds the exact
//! interval. A split or filtered funnel sorts the exact durations of its steps.
//!
//! [`runs`]: super::runs

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait, DatabaseConnection, QueryResult};
use uuid::Uuid;

use super::rollups;
use super::runs::{self, Scope, Source};
use super::sql::{self, Sql};
use super::stats::{self, Estimate};
use crate::error::{AppError, AppResult};
use crate::journeys::config::{self, Journey};

/// What the funnel is split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunnelGroup {
    Segment,
    Channel,
}

/// One funnel question.
#[derive(Debug, Clone)]
pub struct Request {
    pub journey_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: Option<FunnelGroup>,
    pub channels: Option<Vec<Channel>>,
    pub segments: Option<Vec<String>>,
}

/// One stage of one group's funnel.
#[derive(Debug, Clone)]
pub struct Step {
    pub stage_id: Uuid,
    pub stage_name: String,
    pub position: i32,
    pub reached: i64,
    /// Reached this stage, of those who reached the previous one (percent).
    pub conversion_from_previous: Estimate,
    /// Reached this stage, of those who entered (percent).
    pub conversion_from_start: Estimate,
    /// Reached the previous stage but not this one.
    pub drop_off: i64,
    /// Median seconds from the previous stage, with its interval.
    pub time_from_previous: Estimate,
}

/// The funnel of one group: the segment, or the entry channel's code (`group` none
/// when not grouped, or for customers without a segment).
#[derive(Debug, Clone)]
pub struct GroupFunnel {
    pub group: Option<String>,
    pub steps: Vec<Step>,
}

/// The funnel of a journey.
#[derive(Debug, Clone)]
pub struct Funnel {
    pub journey: Journey,
    pub groups: Vec<GroupFunnel>,
}

/// Walks the journey's funnel.
pub async fn run(db: &DatabaseConnection, req: &Request) -> AppResult<Funnel> {
    if req.from >= req.to {
        return Err(AppError::invalid(&["range", "to"], "INVALID", "must be after `from`"));
    }
    let journey = config::find(db, req.journey_id).await?.ok_or(AppError::NotFound("journey"))?;
    let backend = db.get_database_backend();
    if journey.stages.is_empty() {
        return Ok(Funnel { journey, groups: Vec::new() });
    }
    // The marks and the steps in one snapshot, so a refresh in between cannot make a
    // run count twice or not at all.
    let txn = rollups::snapshot(db).await?;
    let source = Source::of(&txn, req.journey_id).await?;
    let by_group = match whole_days(req, source) {
        Some(days) => {
            let histogram = rolled(&txn, req, source, days).await?;
            let stages: BTreeMap<i64, (i64, Estimate)> =
                histogram.into_iter().map(|(k, h)| (k, h.reached_and_median())).collect();
            // No runs, no group (as the exact answer has no rows).
            let any = stages.values().any(|s| s.0 != 0);
            if any { BTreeMap::from([(None, stages)]) } else { BTreeMap::new() }
        }
        None => {
            let rows =
                txn.query_all_raw(statement(backend, req, source, journey.stages.len()).statement(backend)).await?;
            exact(rows)?
        }
    };
    txn.commit().await?;
    let groups = by_group
        .into_iter()
        .map(|(group, counts)| {
            let entered = counts.get(&1).map_or(0, |c| c.0);
            let mut previous = entered;
            let steps = journey
                .stages
                .iter()
                .enumerate()
                .map(|(i, stage)| {
                    let ordinal = i64::try_from(i).unwrap_or(0) + 1;
                    let (reached, median) = counts.get(&ordinal).copied().unwrap_or((0, Estimate::empty(0)));
                    let step = Step {
                        stage_id: stage.id,
                        stage_name: stage.name.clone(),
                        position: stage.position,
                        reached,
                        conversion_from_previous: if i == 0 {
                            stats::percent(reached, entered)
                        } else {
                            stats::percent(reached, previous)
                        },
                        conversion_from_start: stats::percent(reached, entered),
                        drop_off: if i == 0 { 0 } else { previous - reached },
                        time_from_previous: median,
                    };
                    previous = reached;
                    step
                })
                .collect();
            GroupFunnel { group, steps }
        })
        .collect();
    Ok(Funnel { journey, groups })
}

/// Per group, per stage ordinal: runs reached and the median time from the previous stage.
type Counts = BTreeMap<Option<String>, BTreeMap<i64, (i64, Estimate)>>;

/// The exact answer's rows ([`statement`]) by group and stage.
fn exact(rows: Vec<QueryResult>) -> AppResult<Counts> {
    let mut by_group: Counts = BTreeMap::new();
    for row in rows {
        let g: Option<String> = row.try_get("", "g")?;
        let ordinal: i64 = row.try_get("", "ordinal")?;
        let cell = by_group.entry(g).or_default().entry(ordinal).or_insert((0, Estimate::empty(0)));
        // A row holds the count of a (group, stage), its median, or both.
        if let Some(reached) = row.try_get::<Option<i64>>("", "reached")? {
            cell.0 = reached;
        }
        if let Some(n) = row.try_get::<Option<i64>>("", "n")? {
            let get = |c: &str| row.try_get::<Option<f64>>("", c);
            cell.1 = stats::percentile(n, get("med")?, get("med_lo")?, get("med_hi")?);
        }
    }
    Ok(by_group)
}

const DAY: i64 = 86_400;

/// The window's whole UTC days `[first, end)` when the rollup can answer: an unsplit,
/// unfiltered funnel (segments change and the rollup has no channel), with kept steps
/// to read (not a journey whose stages just changed) and at least one whole day.
fn whole_days(req: &Request, source: Source) -> Option<(i64, i64)> {
    let unsplit = req.group_by.is_none() && req.channels.is_none() && req.segments.is_none();
    let first = req.from.timestamp().div_euclid(DAY) + i64::from(req.from.timestamp().rem_euclid(DAY) != 0);
    let end = req.to.timestamp().div_euclid(DAY);
    (unsplit && source != Source::Walked && first < end).then_some((first, end))
}

fn day_start(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(day * DAY, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A stage's durations, counted per bucket (`-1`: none, the first stage's).
#[derive(Debug, Default)]
struct Histogram(BTreeMap<i32, i64>);

/// The duration buckets' `(bucket, low, high)`, as migration 19 wrote them.
fn bounds() -> &'static [(i32, f64, f64)] {
    static BOUNDS: std::sync::OnceLock<Vec<(i32, f64, f64)>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(migration::funnel_rollup::bucket_bounds)
}

/// The bucket of a duration in seconds, as `duration_buckets` picks it (the last
/// whose low bound is at most the value; -1 for none).
pub fn duration_bucket(seconds: f64) -> i32 {
    let at = bounds().partition_point(|b| b.1 <= seconds);
    at.checked_sub(1).and_then(|i| bounds().get(i)).map_or(-1, |b| b.0)
}

impl Histogram {
    fn add(&mut self, bucket: i32, n: i64) {
        *self.0.entry(bucket).or_default() += n;
    }

    /// Runs that reached the stage, and the median duration: the order statistics at
    /// the exact answer's ranks ([`sql::array_quantile`]), each found in its bucket;
    /// the median interpolated geometrically inside it, the interval's ends widened to
    /// their buckets' bounds so the exact statistics lie inside it.
    fn reached_and_median(&self) -> (i64, Estimate) {
        let reached = self.0.values().sum();
        let timed: Vec<(i32, i64)> =
            self.0.iter().filter(|(b, n)| **b >= 0 && **n > 0).map(|(b, n)| (*b, *n)).collect();
        let n: i64 = timed.iter().map(|t| t.1).sum();
        if n == 0 {
            return (reached, Estimate::empty(0));
        }
        let at = 0.5 * n as f64;
        let half = (stats::rank_band_sq(0.5) * n as f64).sqrt();
        let rank = |r: f64| (r as i64).clamp(1, n);
        // The bucket holding rank `r` and the rank's place inside it (1…count).
        let find = |r: i64| {
            let mut before = 0;
            for &(b, c) in &timed {
                if r <= before + c {
                    return (b, r - before, c);
                }
                before += c;
            }
            timed.last().map_or((0, 1, 1), |t| (t.0, 1, 1))
        };
        let bound = |b: i32| bounds().iter().find(|x| x.0 == b).map_or((0.0, 0.0), |x| (x.1, x.2));
        let (b, j, c) = find(rank(at.ceil()));
        let (lo, hi) = bound(b);
        let share = (j as f64 - 0.5) / c as f64;
        let value = if hi == f64::MAX {
            lo
        } else if lo <= 0.0 {
            hi * share
        } else {
            lo * (hi / lo).powf(share)
        };
        let low = bound(find(rank((at - half).ceil())).0).0;
        let high = bound(find(rank((at + half).floor())).0);
        let high = if high.1 == f64::MAX { high.0 } else { high.1 };
        (reached, stats::percentile(n, Some(value), Some(low), Some(high)))
    }
}

/// The funnel from the rollup (see [`whole_days`] for when): the whole days' counts per
/// stage and bucket (whole weeks from week rows), corrected by the few kept steps the
/// rollup cannot tell apart — steps of those days reached at or after the window's
/// end, steps of customers whose runs are being re-walked (their walked steps added
/// instead) — plus the partial days at the window's edges, read from the steps.
async fn rolled(
    txn: &impl ConnectionTrait,
    req: &Request,
    source: Source,
    (first, end): (i64, i64),
) -> AppResult<BTreeMap<i64, Histogram>> {
    let backend = txn.get_database_backend();
    let mut by_stage: BTreeMap<i64, Histogram> = BTreeMap::new();
    // Whole weeks (Monday to Sunday) from week rows, the days around them from day rows.
    let monday = |day: i64| day - (day + 3).rem_euclid(7);
    let (w0, w1) = (monday(first + 6), monday(end));
    let ranges = if w0 < w1 { vec![(1, first, w0), (7, w0, w1), (1, w1, end)] } else { vec![(1, first, end)] };
    let mut q = Sql::new();
    q.push("SELECT CAST(r.ordinal AS BIGINT) AS ordinal, r.bucket, CAST(SUM(r.n) AS BIGINT) AS n FROM (");
    for (i, (grain, from, to)) in ranges.into_iter().filter(|r| r.1 < r.2).enumerate() {
        q.push(if i == 0 { "" } else { " UNION ALL " });
        q.push("SELECT x.ordinal, x.bucket, x.n FROM journey_step_rollups x WHERE x.journey_id = ")
            .bind(req.journey_id);
        q.push(&format!(" AND x.grain = {grain} AND x.entry_day >= {from} AND x.entry_day < {to}"));
    }
    q.push(") r GROUP BY r.ordinal, r.bucket");
    for row in txn.query_all_raw(q.statement(backend)).await? {
        let bucket: i32 = row.try_get("", "bucket")?;
        by_stage.entry(row.try_get("", "ordinal")?).or_default().add(bucket, row.try_get("", "n")?);
    }
    let rows =
        txn.query_all_raw(corrections(backend, req, source, (day_start(first), day_start(end))).statement(backend));
    for row in rows.await? {
        let sign: i64 = row.try_get("", "sign")?;
        let bucket = row.try_get::<Option<f64>>("", "seconds")?.map_or(-1, duration_bucket);
        by_stage.entry(row.try_get("", "ordinal")?).or_default().add(bucket, sign);
    }
    Ok(by_stage)
}

/// The steps that correct the rollup's whole days `[start, end)`, as `(ordinal,
/// seconds, sign)` rows (see [`rolled`]).
fn corrections(
    backend: sea_orm::DatabaseBackend,
    req: &Request,
    source: Source,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Sql {
    let j = req.journey_id;
    let mixed = source == Source::Mixed;
    let marked = |q: &mut Sql| {
        q.push("k.customer_id IN (SELECT d.customer_id FROM journey_steps_dirty d WHERE d.journey_id = ")
            .bind(j)
            .push(" AND d.customer_id IS NOT NULL)");
    };
    let mut q = Sql::new();
    if mixed {
        q.push("WITH ").append(runs::walk(backend, Scope::MarkedIn(j))).push(" ");
    }
    const PICK: &str = "SELECT CAST(k.ordinal AS BIGINT) AS ordinal, k.seconds";
    // The edges' kept steps reached in the window.
    q.push(&format!("{PICK}, CAST(1 AS BIGINT) AS sign FROM journey_steps k WHERE k.journey_id = ")).bind(j);
    q.push(" AND ((k.entered_at >= ").bind(req.from).push(" AND k.entered_at < ").bind(start);
    q.push(") OR (k.entered_at >= ").bind(end).push(" AND k.entered_at < ").bind(req.to);
    q.push(")) AND k.reached_at < ").bind(req.to);
    if mixed {
        q.push(" AND NOT ");
        marked(&mut q);
    }
    // The whole days' steps reached after the window.
    q.push(&format!(" UNION ALL {PICK}, CAST(-1 AS BIGINT) AS sign FROM journey_steps k WHERE k.journey_id = "))
        .bind(j);
    q.push(" AND k.reached_at >= ").bind(req.to);
    q.push(" AND k.entered_at >= ").bind(start).push(" AND k.entered_at < ").bind(end);
    if mixed {
        q.push(" AND NOT ");
        marked(&mut q);
        // The whole days' kept steps of re-walked customers, and their walked steps.
        q.push(&format!(" UNION ALL {PICK}, CAST(-1 AS BIGINT) AS sign FROM journey_steps k WHERE k.journey_id = "))
            .bind(j);
        q.push(" AND k.entered_at >= ").bind(start).push(" AND k.entered_at < ").bind(end).push(" AND ");
        marked(&mut q);
        q.push(" UNION ALL SELECT CAST(w.ordinal AS BIGINT) AS ordinal, w.seconds, CAST(1 AS BIGINT) AS sign");
        q.push(" FROM walked w WHERE w.entered_at >= ").bind(req.from);
        q.push(" AND w.entered_at < ").bind(req.to).push(" AND w.reached_at < ").bind(req.to);
    }
    q
}

/// The funnel's statement over the steps of runs entered in the window ([`Source`]):
/// a step counts when it was reached before the window's end (a run's steps are in
/// time order, so the funnel stays closed). On PostgreSQL one aggregate per group
/// counts each stage's steps and sorts their seconds from the previous stage into an
/// array for the median ([`sql::array_quantile`]); SQLite, without arrays, ranks them.
fn statement(backend: sea_orm::DatabaseBackend, req: &Request, source: Source, stages: usize) -> Sql {
    let mut q = source.steps(backend, req.journey_id, req.from, req.to);
    let (group, join) = match req.group_by {
        None => ("CAST(NULL AS VARCHAR(200))", ""),
        Some(FunnelGroup::Segment) => ("cu.segment", " JOIN customers cu ON cu.id = s.customer_id"),
        Some(FunnelGroup::Channel) => ("s.entry_channel", ""),
    };
    q.push(", filtered AS (SELECT ").push(group).push(" AS g, CAST(s.ordinal AS BIGINT) AS ordinal, s.seconds AS v");
    q.push(" FROM steps s").push(join).push(" WHERE s.reached_at < ").bind(req.to);
    if let Some(channels) = &req.channels {
        q.push(" AND s.entry_channel IN ").bind_list(channels.iter().map(|c| c.to_value()));
    }
    if let Some(segments) = &req.segments {
        q.push(" AND s.customer_id IN (SELECT c.id FROM customers c WHERE c.segment IN ")
            .bind_list(segments.iter().cloned())
            .push(")");
    }
    q.push(")");
    if backend == sea_orm::DatabaseBackend::Postgres {
        // One aggregate per group with a count and a sorted array per stage (FILTER),
        // unpivoted by a VALUES list: grouping by (group, stage) instead sorted every
        // step by stage first (30 of 85 ms for a quarter of the benchmark dataset).
        q.push(" SELECT s.g, x.ordinal, x.reached, x.n, ").push(&sql::array_quantile("x.a", "x.n", 0.5, "med"));
        q.push(" FROM (SELECT g");
        for k in 1..=stages {
            q.push(&format!(", COUNT(*) FILTER (WHERE ordinal = {k}) AS r{k}"));
            if k > 1 {
                q.push(&format!(
                    ", NULLIF(COUNT(v) FILTER (WHERE ordinal = {k}), 0) AS n{k}, \
                     ARRAY_AGG(v ORDER BY v) FILTER (WHERE ordinal = {k} AND v IS NOT NULL) AS a{k}"
                ));
            }
        }
        q.push(" FROM filtered GROUP BY g) s CROSS JOIN LATERAL (VALUES ");
        for k in 1..=stages {
            q.push(&if k == 1 {
                "(CAST(1 AS BIGINT), s.r1, CAST(NULL AS BIGINT), CAST(NULL AS DOUBLE PRECISION[]))".to_owned()
            } else {
                format!(", (CAST({k} AS BIGINT), s.r{k}, s.n{k}, s.a{k})")
            });
        }
        q.push(") AS x(ordinal, reached, n, a)");
        return q;
    }
    q.push(&format!(
        ", ranked AS (SELECT g, ordinal, v, ROW_NUMBER() OVER (PARTITION BY g, ordinal ORDER BY v) AS rn, \
           COUNT(*) OVER (PARTITION BY g, ordinal) AS n FROM filtered WHERE v IS NOT NULL) \
         SELECT g, ordinal, COUNT(*) AS reached, CAST(NULL AS BIGINT) AS n, CAST(NULL AS DOUBLE PRECISION) AS med, \
           CAST(NULL AS DOUBLE PRECISION) AS med_lo, CAST(NULL AS DOUBLE PRECISION) AS med_hi \
         FROM filtered GROUP BY g, ordinal \
         UNION ALL SELECT g, ordinal, CAST(NULL AS BIGINT) AS reached, MAX(n) AS n, {} \
         FROM ranked GROUP BY g, ordinal",
        sql::ranked_quantile(0.5, "med")
    ));
    q
}
