//! The journey funnel: of the customers who entered a journey in a window (reached its
//! first stage), how many went on to each later stage, in order; conversion and
//! drop-off per stage; and the median time from the previous stage.
//!
//! A customer counts at stage k when, within the window, they reached stages 1…k
//! each for the first time no earlier than the one before (an ordered, closed funnel:
//! skipping a stage or going back in time stops them there). Grouping by segment uses
//! the customer's segment; by channel, the channel of their first touchpoint at the
//! first stage. One statement: first times per (customer, stage) → order check with
//! window functions → counts and nearest-rank medians per (group, stage).

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
    let customers_join = req.segments.is_some();
    let mut q = Sql::new();
    q.push("WITH stages AS (SELECT id, ROW_NUMBER() OVER (ORDER BY position) AS ordinal FROM journey_stages WHERE journey_id = ")
        .bind(req.journey_id)
        .push(
            "), scope AS (SELECT t.customer_id, t.stage_id, t.channel, t.occurred_at, \
             ROW_NUMBER() OVER (PARTITION BY t.customer_id, t.stage_id ORDER BY t.occurred_at, t.id) AS k FROM touchpoints t",
        );
    if customers_join {
        q.push(" JOIN customers c ON c.id = t.customer_id");
    }
    q.push(" WHERE t.journey_id = ").bind(req.journey_id);
    q.push(" AND t.occurred_at >= ").bind(req.from).push(" AND t.occurred_at < ").bind(req.to);
    if let Some(channels) = &req.channels {
        q.push(" AND t.channel IN ").bind_list(channels.iter().map(|c| c.to_value()));
    }
    if let Some(segments) = &req.segments {
        q.push(" AND c.segment IN ").bind_list(segments.iter().cloned());
    }
    // The first touchpoint per (customer, stage); its channel at the first stage is the
    // customer's entry channel.
    q.push(
        "), ordered AS (SELECT f.customer_id, s.ordinal, f.occurred_at AS at, \
           ROW_NUMBER() OVER (PARTITION BY f.customer_id ORDER BY s.ordinal) AS rn, \
           LAG(f.occurred_at) OVER (PARTITION BY f.customer_id ORDER BY s.ordinal) AS prev_at, \
           FIRST_VALUE(f.channel) OVER (PARTITION BY f.customer_id ORDER BY s.ordinal) AS entry_channel \
           FROM scope f JOIN stages s ON s.id = f.stage_id WHERE f.k = 1), \
         flagged AS (SELECT customer_id, ordinal, at, prev_at, entry_channel, \
           SUM(CASE WHEN ordinal = rn AND (prev_at IS NULL OR at >= prev_at) THEN 0 ELSE 1 END) \
             OVER (PARTITION BY customer_id ORDER BY ordinal ROWS UNBOUNDED PRECEDING) AS breaks FROM ordered), ",
    );
    let (group, join) = match req.group_by {
        None => ("CAST(NULL AS VARCHAR(200))", ""),
        Some(FunnelGroup::Segment) => ("cu.segment", " JOIN customers cu ON cu.id = r.customer_id"),
        Some(FunnelGroup::Channel) => ("r.entry_channel", ""),
    };
    let seconds = sql::seconds_between(backend, "r.at", "r.prev_at");
    q.push(&format!(
        "reached AS (SELECT {group} AS g, r.ordinal, {seconds} AS v FROM flagged r{join} WHERE r.breaks = 0), \
         ranked AS (SELECT g, ordinal, v, \
           ROW_NUMBER() OVER (PARTITION BY g, ordinal ORDER BY CASE WHEN v IS NULL THEN 1 ELSE 0 END, v) AS rn, \
           COUNT(v) OVER (PARTITION BY g, ordinal) AS n FROM reached) \
         SELECT g, ordinal, COUNT(*) AS reached, MAX(n) AS n, \
           MIN(CASE WHEN v IS NOT NULL AND rn >= 0.5 * n THEN v END) AS med, \
           MIN(CASE WHEN v IS NOT NULL AND rn <= 0.5 * n + 1 AND (0.5 * n - rn) * (0.5 * n - rn) <= {band:.6} * n THEN v END) AS med_lo, \
           MAX(CASE WHEN v IS NOT NULL AND rn >= 0.5 * n AND (rn - 0.5 * n) * (rn - 0.5 * n) <= {band:.6} * n THEN v END) AS med_hi \
         FROM ranked GROUP BY g, ordinal",
        band = stats::rank_band_sq(0.5)
    ));
    let rows = db.query_all_raw(q.statement(backend)).await?;
    // group → ordinal → (reached, median estimate)
    let mut by_group: BTreeMap<Option<String>, BTreeMap<i64, (i64, Estimate)>> = BTreeMap::new();
    for row in rows {
        let g: Option<String> = row.try_get("", "g")?;
        let ordinal: i64 = row.try_get("", "ordinal")?;
        let reached: i64 = row.try_get("", "reached")?;
        let n: i64 = row.try_get::<Option<i64>>("", "n")?.unwrap_or(0);
        let get = |c: &str| row.try_get::<Option<f64>>("", c);
        let median = stats::percentile(n, get("med")?, get("med_lo")?, get("med_hi")?);
        by_group.entry(g).or_default().insert(ordinal, (reached, median));
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
