//! The journey funnel: of the customers who entered a journey in a window (reached its
//! first stage), how many went on to each later stage, in order; conversion and
//! drop-off per stage; and the median time from the previous stage.
//!
//! A customer counts at stage k when, within the window, they reached stages 1…k
//! each for the first time no earlier than the one before (an ordered, closed funnel:
//! skipping a stage or going back in time stops them there). Grouping by segment uses
//! the customer's segment; by channel, the channel of their first touchpoint at the
//! first stage. One statement, shaped by the journey's stages: the window's
//! touchpoints pivot into one row per customer with the first time at each stage (a
//! hash aggregate: sorting every touchpoint by customer and stage cost seconds on a
//! quarter of the benchmark data) → how far each got in order → counts and
//! nearest-rank medians per (group, stage).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait};
use uuid::Uuid;

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
pub async fn run(db: &impl ConnectionTrait, req: &Request) -> AppResult<Funnel> {
    if req.from >= req.to {
        return Err(AppError::invalid(&["range", "to"], "INVALID", "must be after `from`"));
    }
    let journey = config::find(db, req.journey_id).await?.ok_or(AppError::NotFound("journey"))?;
    let backend = db.get_database_backend();
    let stages: Vec<Uuid> = journey.stages.iter().map(|s| s.id).collect();
    if stages.is_empty() {
        return Ok(Funnel { journey, groups: Vec::new() });
    }
    let rows = db.query_all_raw(statement(backend, req, &stages).statement(backend)).await?;
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

/// The funnel's one statement. `firsts` pivots the window's touchpoints into one row
/// per customer holding the first time at each stage (`t1…tN`, one hash aggregate, no
/// sort of the touchpoints) and how far they got in order (`level`). On PostgreSQL one
/// aggregate over those rows then counts each stage and sorts each stage's seconds
/// from the previous one into an array for its median ([`sql::array_quantile`]): the
/// earlier unpivot into (customer, stage) rows, ranked with window functions, was half
/// the statement's 600 ms on a quarter of the benchmark dataset. SQLite, without
/// arrays, unpivots and ranks.
fn statement(backend: sea_orm::DatabaseBackend, req: &Request, stages: &[Uuid]) -> Sql {
    let mut q = Sql::new();
    let window = |q: &mut Sql| {
        q.push(" WHERE t.journey_id = ").bind(req.journey_id);
        q.push(" AND t.occurred_at >= ").bind(req.from).push(" AND t.occurred_at < ").bind(req.to);
        if let Some(channels) = &req.channels {
            q.push(" AND t.channel IN ").bind_list(channels.iter().map(|c| c.to_value()));
        }
        if let Some(segments) = &req.segments {
            q.push(" AND t.customer_id IN (SELECT c.id FROM customers c WHERE c.segment IN ")
                .bind_list(segments.iter().cloned())
                .push(")");
        }
    };
    // MATERIALIZED: inlined, the pivot ran once per stage of what reads it.
    q.push("WITH firsts AS MATERIALIZED (SELECT p.*, CASE WHEN p.t1 IS NULL THEN 0");
    for k in 2..=stages.len() {
        q.push(&format!(" WHEN p.t{k} IS NULL OR p.t{k} < p.t{} THEN {}", k - 1, k - 1));
    }
    q.push(&format!(" ELSE {} END AS level FROM (SELECT t.customer_id", stages.len()));
    for (i, stage) in stages.iter().enumerate() {
        q.push(", MIN(CASE WHEN t.stage_id = ").bind(*stage).push(&format!(" THEN t.occurred_at END) AS t{}", i + 1));
    }
    q.push(" FROM touchpoints t");
    window(&mut q);
    q.push(" GROUP BY t.customer_id) p)");
    // The entry channel: that of the customer's first touchpoint at the first stage in
    // the window (ties by id), read only when the funnel is split by it.
    let (group, join) = match req.group_by {
        None => ("CAST(NULL AS VARCHAR(200))", ""),
        Some(FunnelGroup::Segment) => ("cu.segment", " JOIN customers cu ON cu.id = r.customer_id"),
        Some(FunnelGroup::Channel) => ("e.channel", " JOIN entries e ON e.customer_id = r.customer_id AND e.k = 1"),
    };
    if req.group_by == Some(FunnelGroup::Channel) {
        q.push(
            ", entries AS (SELECT t.customer_id, t.channel, \
             ROW_NUMBER() OVER (PARTITION BY t.customer_id ORDER BY t.occurred_at, t.id) AS k FROM touchpoints t",
        );
        window(&mut q);
        q.push(" AND t.stage_id = ").bind(stages.first().copied().unwrap_or_default()).push(")");
    }
    // Seconds from the previous stage to stage k.
    let seconds = |k: usize| sql::seconds_between(backend, &format!("r.t{k}"), &format!("r.t{}", k - 1));
    if backend == sea_orm::DatabaseBackend::Postgres {
        q.push(" SELECT s.g, x.ordinal, x.reached, x.n, ").push(&sql::array_quantile("x.a", "x.n", 0.5, "med"));
        q.push(" FROM (SELECT ").push(group).push(" AS g");
        for k in 1..=stages.len() {
            q.push(&format!(", COUNT(*) FILTER (WHERE r.level >= {k}) AS r{k}"));
            if k > 1 {
                let v = seconds(k);
                q.push(&format!(", ARRAY_AGG({v} ORDER BY {v}) FILTER (WHERE r.level >= {k}) AS a{k}"));
            }
        }
        q.push(" FROM firsts r").push(join).push(" WHERE r.level >= 1 GROUP BY 1) s CROSS JOIN LATERAL (VALUES ");
        for k in 1..=stages.len() {
            q.push(&if k == 1 {
                "(CAST(1 AS BIGINT), s.r1, CAST(NULL AS BIGINT), CAST(NULL AS DOUBLE PRECISION[]))".to_owned()
            } else {
                format!(", (CAST({k} AS BIGINT), s.r{k}, NULLIF(s.r{k}, 0), s.a{k})")
            });
        }
        q.push(") AS x(ordinal, reached, n, a)");
        return q;
    }
    q.push(", ordinals AS (");
    for k in 1..=stages.len() {
        q.push(&format!("{}SELECT CAST({k} AS BIGINT) AS ordinal", if k == 1 { "" } else { " UNION ALL " }));
    }
    let mut v = String::from("CAST(NULL AS DOUBLE PRECISION)");
    if stages.len() > 1 {
        v = String::from("CASE o.ordinal");
        for k in 2..=stages.len() {
            v.push_str(&format!(" WHEN {k} THEN {}", seconds(k)));
        }
        v.push_str(" END");
    }
    // `reached`: one narrow row per (customer, stage reached). Counts come from all of
    // them; only rows with a time from the previous stage are ranked for medians.
    q.push("), reached AS MATERIALIZED (SELECT ").push(group).push(" AS g, o.ordinal, ").push(&v);
    q.push(" AS v FROM firsts r JOIN ordinals o ON o.ordinal <= r.level").push(join);
    q.push(&format!(
        "), ranked AS (SELECT g, ordinal, v, ROW_NUMBER() OVER (PARTITION BY g, ordinal ORDER BY v) AS rn, \
           COUNT(*) OVER (PARTITION BY g, ordinal) AS n FROM reached WHERE v IS NOT NULL) \
         SELECT g, ordinal, COUNT(*) AS reached, CAST(NULL AS BIGINT) AS n, CAST(NULL AS DOUBLE PRECISION) AS med, \
           CAST(NULL AS DOUBLE PRECISION) AS med_lo, CAST(NULL AS DOUBLE PRECISION) AS med_hi \
         FROM reached GROUP BY g, ordinal \
         UNION ALL SELECT g, ordinal, CAST(NULL AS BIGINT) AS reached, MAX(n) AS n, {} \
         FROM ranked GROUP BY g, ordinal",
        sql::ranked_quantile(0.5, "med")
    ));
    q
}
