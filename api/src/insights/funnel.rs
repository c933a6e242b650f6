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
//! [`runs`]: super::runs

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use super::rollups;
use super::runs::Source;
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
    let rows = txn.query_all_raw(statement(backend, req, source, journey.stages.len()).statement(backend)).await?;
    txn.commit().await?;
    // group → ordinal → (reached, median estimate)
    let mut by_group: BTreeMap<Option<String>, BTreeMap<i64, (i64, Estimate)>> = BTreeMap::new();
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
