//! Grouped metrics: NPS, CSAT, CES, sentiment, volume, first-response and resolution
//! times, SLA compliance — by any of channel, touchpoint, stage, segment, topic and
//! team, optionally per time bucket, computed in SQL.
//!
//! Three families of facts answer them, each with one grouped statement:
//! - **feedback** (NPS / CSAT / CES / comment sentiment), dated by `occurred_at`;
//! - **interactions** (inbound volume, message sentiment), dated by `occurred_at`;
//! - **conversations** (opened, SLA compliance, and first-response / resolution time
//!   percentiles with their order-statistic intervals), dated by `opened_at`.
//!
//! Feedback and interaction sums come from the hourly and daily [`rollups`] when the
//! question allows (grouped and filtered by channel at most), topped up from the facts
//! for the hours the rollups do not cover; every question is answered in one snapshot.
//!
//! A family is only queried when a requested metric needs it, and only where the
//! grouping applies to it: touchpoints and stages are properties of feedback (its
//! touchpoint, or the stage its survey follows), so grouped by them the interaction and
//! conversation metrics are "not applicable" rather than silently mixed in. A topic
//! dimension counts a fact once per topic it mentions (a message about billing and
//! delivery is in both cells).

use std::collections::BTreeMap;
use std::ops::AddAssign;

use chrono::{DateTime, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait, DatabaseBackend, DatabaseConnection, QueryResult};
use uuid::Uuid;

use super::buckets::Range;
use super::rollups::{self, Piece, Rollup};
use super::sql::{self, Sql};
use super::stats::{self, Estimate};
use crate::error::{AppError, AppResult};

/// Most cells one query may answer.
pub const MAX_CELLS: usize = 10_000;

/// What a cell can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    Channel,
    Touchpoint,
    Stage,
    Segment,
    Topic,
    Team,
}

impl Dimension {
    fn alias(self) -> &'static str {
        match self {
            Dimension::Channel => "d_channel",
            Dimension::Touchpoint => "d_touchpoint",
            Dimension::Stage => "d_stage",
            Dimension::Segment => "d_segment",
            Dimension::Topic => "d_topic",
            Dimension::Team => "d_team",
        }
    }
}

/// Facts included; every list given must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub channels: Option<Vec<Channel>>,
    pub segments: Option<Vec<String>>,
    pub topic_ids: Option<Vec<Uuid>>,
    pub team_ids: Option<Vec<Uuid>>,
}

/// Which families of facts to query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Families {
    pub feedback: bool,
    pub interactions: bool,
    pub conversations: bool,
}

impl Families {
    pub const ALL: Families = Families { feedback: true, interactions: true, conversations: true };
}

/// One insights question.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: Vec<Dimension>,
    /// Time buckets, when the answer is a series.
    pub buckets: Option<Vec<Range>>,
    pub filter: Filter,
    pub families: Families,
}

/// The coordinates of a cell; `None` for a dimension not grouped by, or for facts
/// without a value there (e.g. feedback not linked to any team).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub bucket: Option<usize>,
    pub channel: Option<Channel>,
    pub touchpoint: Option<String>,
    pub stage_id: Option<Uuid>,
    pub segment: Option<String>,
    pub topic_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
}

/// Sums behind a mean: count, sum, sum of squares.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: i64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    fn add(&mut self, o: &Moments) {
        self.n += o.n;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
    }

    pub fn mean(&self) -> Estimate {
        stats::mean(self.n, self.sum, self.sum_sq)
    }
}

/// Sentiment sums: scores in [-1, 1] and how many were negative.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sentiment {
    pub scores: Moments,
    pub negative: i64,
}

impl Sentiment {
    fn add(&mut self, o: &Sentiment) {
        self.scores.add(&o.scores);
        self.negative += o.negative;
    }

    pub fn negative_percent(&self) -> Estimate {
        stats::percent(self.negative, self.scores.n)
    }
}

/// Feedback sums of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FeedbackFacts {
    pub responses: i64,
    pub promoters: i64,
    pub passives: i64,
    pub detractors: i64,
    pub csat: Moments,
    pub csat_satisfied: i64,
    pub ces: Moments,
    pub sentiment: Sentiment,
}

impl AddAssign for FeedbackFacts {
    fn add_assign(&mut self, o: FeedbackFacts) {
        self.responses += o.responses;
        self.promoters += o.promoters;
        self.passives += o.passives;
        self.detractors += o.detractors;
        self.csat.add(&o.csat);
        self.csat_satisfied += o.csat_satisfied;
        self.ces.add(&o.ces);
        self.sentiment.add(&o.sentiment);
    }
}

impl FeedbackFacts {
    pub fn nps(&self) -> Estimate {
        stats::nps(self.promoters, self.passives, self.detractors)
    }
    /// Share of CSAT answers of 4 or 5.
    pub fn csat_satisfied(&self) -> Estimate {
        stats::percent(self.csat_satisfied, self.csat.n)
    }
}

/// Interaction sums of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InteractionFacts {
    pub inbound: i64,
    pub outbound: i64,
    pub sentiment: Sentiment,
}

impl AddAssign for InteractionFacts {
    fn add_assign(&mut self, o: InteractionFacts) {
        self.inbound += o.inbound;
        self.outbound += o.outbound;
        self.sentiment.add(&o.sentiment);
    }
}

/// A percentile family of one duration: median and p90 with their intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Durations {
    pub n: i64,
    pub median: Estimate,
    pub p90: Estimate,
}

/// Conversation figures of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConversationFacts {
    pub opened: i64,
    /// Conversations with an SLA whose outcome is known (resolved, or breached).
    pub sla_decided: i64,
    /// Of those, resolved with neither target breached.
    pub sla_met: i64,
    pub first_response: Durations,
    pub resolution: Durations,
}

impl ConversationFacts {
    pub fn sla_compliance(&self) -> Estimate {
        stats::percent(self.sla_met, self.sla_decided)
    }
}

/// One cell of the answer.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub key: Key,
    pub feedback: FeedbackFacts,
    pub interactions: InteractionFacts,
    pub conversations: ConversationFacts,
}

impl Cell {
    /// Sentiment of feedback comments and inbound messages together.
    pub fn sentiment(&self) -> Sentiment {
        let mut s = self.feedback.sentiment;
        s.add(&self.interactions.sentiment);
        s
    }
}

/// The answer: cells in bucket and key order, and which families the grouping allowed.
#[derive(Debug, Clone)]
pub struct Report {
    pub cells: Vec<Cell>,
    pub applicable: Families,
}

/// Families that can answer a grouping.
pub fn applicable(group_by: &[Dimension]) -> Families {
    let per_feedback_only = group_by.iter().any(|d| matches!(d, Dimension::Touchpoint | Dimension::Stage));
    Families { feedback: true, interactions: !per_feedback_only, conversations: !per_feedback_only }
}

/// The tables and expressions of one family.
struct Family {
    from: &'static str,
    time: &'static str,
    channel: &'static str,
    customer: &'static str,
}

const FEEDBACK: Family =
    Family { from: "feedback f", time: "f.occurred_at", channel: "f.channel", customer: "f.customer_id" };
const INTERACTIONS: Family =
    Family { from: "interactions i", time: "i.occurred_at", channel: "i.channel", customer: "i.customer_id" };
const CONVERSATIONS: Family =
    Family { from: "conversations cv", time: "cv.opened_at", channel: "cv.channel", customer: "cv.customer_id" };

fn dim_expr(family: &Family, d: Dimension) -> &'static str {
    match (family.from, d) {
        (_, Dimension::Channel) => family.channel,
        (_, Dimension::Segment) => "c.segment",
        (_, Dimension::Touchpoint) => "t.name",
        (_, Dimension::Stage) => "COALESCE(t.stage_id, sv.stage_id)",
        ("feedback f", Dimension::Topic) => "ft.topic_id",
        ("interactions i", Dimension::Topic) => "it.topic_id",
        (_, Dimension::Topic) => "ct.topic_id",
        (_, Dimension::Team) => "cv.team_id",
    }
}

/// `SELECT <dims>, <bucket>, <aggregates> FROM … WHERE …`, up to GROUP BY.
fn base(family: &Family, req: &Request, aggregates: &str) -> Sql {
    let mut sql = Sql::new();
    sql.push("SELECT ");
    for d in &req.group_by {
        sql.push(dim_expr(family, *d)).push(" AS ").push(d.alias()).push(", ");
    }
    sql.push(if req.buckets.is_some() { "b.idx AS bk, " } else { "CAST(0 AS BIGINT) AS bk, " });
    sql.push(aggregates).push(" FROM ").push(family.from);
    let wants = |d: Dimension| req.group_by.contains(&d);
    if wants(Dimension::Segment) || req.filter.segments.is_some() {
        sql.push(" JOIN customers c ON c.id = ").push(family.customer);
    }
    let team = wants(Dimension::Team) || req.filter.team_ids.is_some();
    match family.from {
        "feedback f" => {
            if wants(Dimension::Touchpoint) || wants(Dimension::Stage) {
                sql.push(" LEFT JOIN touchpoints t ON t.id = f.touchpoint_id");
            }
            if wants(Dimension::Stage) {
                sql.push(" LEFT JOIN surveys sv ON sv.id = f.survey_id");
            }
            if wants(Dimension::Topic) {
                sql.push(" JOIN feedback_topics ft ON ft.feedback_id = f.id");
            }
            if team {
                sql.push(" LEFT JOIN interactions fi ON fi.id = f.interaction_id");
                sql.push(" LEFT JOIN conversations cv ON cv.id = fi.conversation_id");
            }
        }
        "interactions i" => {
            if wants(Dimension::Topic) {
                sql.push(" JOIN interaction_topics it ON it.interaction_id = i.id");
            }
            if team {
                sql.push(" LEFT JOIN conversations cv ON cv.id = i.conversation_id");
            }
        }
        _ => {
            if wants(Dimension::Topic) {
                // A conversation is about every topic one of its messages mentions.
                sql.push(
                    " JOIN (SELECT DISTINCT i2.conversation_id, it2.topic_id FROM interaction_topics it2 \
                     JOIN interactions i2 ON i2.id = it2.interaction_id WHERE i2.occurred_at >= ",
                )
                .bind(req.from)
                .push(") ct ON ct.conversation_id = cv.id");
            }
        }
    }
    if let Some(ranges) = &req.buckets {
        sql.push(" JOIN ");
        sql::bucket_table(&mut sql, ranges);
        sql.push(" b ON ").push(family.time).push(" >= b.start_at AND ").push(family.time).push(" < b.end_at");
    }
    sql.push(" WHERE ").push(family.time).push(" >= ").bind(req.from);
    sql.push(" AND ").push(family.time).push(" < ").bind(req.to);
    if let Some(ranges) = req.buckets.as_deref().filter(|r| !covers(r, req.from, req.to)) {
        // Scattered buckets (what the rollups leave to the facts): say so in the WHERE
        // clause, so the time index reads just them and not the whole range.
        sql.push(if ranges.is_empty() { " AND (1 = 0" } else { " AND (" });
        for (i, r) in ranges.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { " OR (" });
            sql.push(family.time).push(" >= ").bind(r.start).push(" AND ").push(family.time).push(" < ").bind(r.end);
            sql.push(")");
        }
        sql.push(")");
    }
    if let Some(channels) = &req.filter.channels {
        sql.push(" AND ").push(family.channel).push(" IN ").bind_list(channels.iter().map(|c| c.to_value()));
    }
    if let Some(segments) = &req.filter.segments {
        sql.push(" AND c.segment IN ").bind_list(segments.iter().cloned());
    }
    if let Some(teams) = &req.filter.team_ids {
        sql.push(" AND cv.team_id IN ").bind_list(teams.iter().copied());
    }
    if let Some(topics) = &req.filter.topic_ids {
        sql.push(match family.from {
            "feedback f" => {
                " AND EXISTS (SELECT 1 FROM feedback_topics x WHERE x.feedback_id = f.id AND x.topic_id IN "
            }
            "interactions i" => {
                " AND EXISTS (SELECT 1 FROM interaction_topics x WHERE x.interaction_id = i.id AND x.topic_id IN "
            }
            _ => {
                " AND EXISTS (SELECT 1 FROM interactions x JOIN interaction_topics y ON y.interaction_id = x.id \
                 WHERE x.conversation_id = cv.id AND y.topic_id IN "
            }
        })
        .bind_list(topics.iter().copied())
        .push(")");
    }
    sql
}

/// Whether `ranges` tile `[from, to)` without a gap.
fn covers(ranges: &[Range], from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    ranges.first().is_some_and(|r| r.start <= from)
        && ranges.last().is_some_and(|r| r.end >= to)
        && ranges.windows(2).all(|w| w[0].end >= w[1].start)
}

fn group_by(sql: &mut Sql, req: &Request) {
    sql.push(" GROUP BY ");
    let n = req.group_by.len() + 1;
    sql.push(&(1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    sql.push(" LIMIT ").push(&(MAX_CELLS + 1).to_string());
}

fn key_of(row: &QueryResult, req: &Request) -> AppResult<Key> {
    let mut key = Key::default();
    if req.buckets.is_some() {
        let bk: i64 = row.try_get("", "bk")?;
        key.bucket = usize::try_from(bk).ok();
    }
    for d in &req.group_by {
        let alias = d.alias();
        match d {
            Dimension::Channel => {
                let v: Option<String> = row.try_get("", alias)?;
                key.channel = v.map(|v| Channel::try_from_value(&v)).transpose()?;
            }
            Dimension::Touchpoint => key.touchpoint = row.try_get("", alias)?,
            Dimension::Stage => key.stage_id = row.try_get("", alias)?,
            Dimension::Segment => key.segment = row.try_get("", alias)?,
            Dimension::Topic => key.topic_id = row.try_get("", alias)?,
            Dimension::Team => key.team_id = row.try_get("", alias)?,
        }
    }
    Ok(key)
}

fn int(row: &QueryResult, col: &str) -> AppResult<i64> {
    Ok(row.try_get::<Option<i64>>("", col)?.unwrap_or(0))
}

fn float(row: &QueryResult, col: &str) -> AppResult<f64> {
    Ok(row.try_get::<Option<f64>>("", col)?.unwrap_or(0.0))
}

fn too_many(rows: usize) -> AppResult<()> {
    if rows > MAX_CELLS {
        return Err(AppError::invalid(
            &["groupBy"],
            "TOO_MANY_CELLS",
            format!("the answer has more than {MAX_CELLS} cells; group by less or narrow the range"),
        ));
    }
    Ok(())
}

const SENTIMENT_AGGREGATES: &str = "COUNT({p}.sentiment_score) AS s_n, SUM({p}.sentiment_score) AS s_sum, \
    SUM({p}.sentiment_score * {p}.sentiment_score) AS s_sq, \
    SUM(CASE WHEN {p}.sentiment_label = 'negative' THEN 1 ELSE 0 END) AS s_neg";

fn sentiment_of(row: &QueryResult) -> AppResult<Sentiment> {
    Ok(Sentiment {
        scores: Moments { n: int(row, "s_n")?, sum: float(row, "s_sum")?, sum_sq: float(row, "s_sq")? },
        negative: int(row, "s_neg")?,
    })
}

/// The sums behind the feedback metrics, in the order of [`rollups::FEEDBACK`]'s columns.
pub(crate) fn feedback_aggregates() -> String {
    format!(
        "COUNT(*) AS responses, \
         SUM(CASE WHEN f.kind = 'nps' AND f.score >= 9 THEN 1 ELSE 0 END) AS promoters, \
         SUM(CASE WHEN f.kind = 'nps' AND f.score IN (7, 8) THEN 1 ELSE 0 END) AS passives, \
         SUM(CASE WHEN f.kind = 'nps' AND f.score <= 6 THEN 1 ELSE 0 END) AS detractors, \
         SUM(CASE WHEN f.kind = 'csat' THEN 1 ELSE 0 END) AS csat_n, \
         SUM(CASE WHEN f.kind = 'csat' AND f.score >= 4 THEN 1 ELSE 0 END) AS csat_sat, \
         SUM(CASE WHEN f.kind = 'csat' THEN f.score ELSE 0 END) AS csat_sum, \
         SUM(CASE WHEN f.kind = 'csat' THEN f.score * f.score ELSE 0 END) AS csat_sq, \
         SUM(CASE WHEN f.kind = 'ces' THEN 1 ELSE 0 END) AS ces_n, \
         SUM(CASE WHEN f.kind = 'ces' THEN f.score ELSE 0 END) AS ces_sum, \
         SUM(CASE WHEN f.kind = 'ces' THEN f.score * f.score ELSE 0 END) AS ces_sq, {}",
        SENTIMENT_AGGREGATES.replace("{p}", "f")
    )
}

/// The sums behind the interaction metrics, in the order of [`rollups::INTERACTIONS`]'s
/// columns. Message sentiment is scored on inbound messages only, so its sums need no
/// filter.
pub(crate) fn interaction_aggregates() -> String {
    format!(
        "SUM(CASE WHEN i.direction = 'inbound' THEN 1 ELSE 0 END) AS inbound, \
         SUM(CASE WHEN i.direction = 'outbound' THEN 1 ELSE 0 END) AS outbound, {}",
        SENTIMENT_AGGREGATES.replace("{p}", "i")
    )
}

fn feedback_facts(row: &QueryResult) -> AppResult<FeedbackFacts> {
    Ok(FeedbackFacts {
        responses: int(row, "responses")?,
        promoters: int(row, "promoters")?,
        passives: int(row, "passives")?,
        detractors: int(row, "detractors")?,
        csat: Moments {
            n: int(row, "csat_n")?,
            sum: int(row, "csat_sum")? as f64,
            sum_sq: int(row, "csat_sq")? as f64,
        },
        csat_satisfied: int(row, "csat_sat")?,
        ces: Moments { n: int(row, "ces_n")?, sum: int(row, "ces_sum")? as f64, sum_sq: int(row, "ces_sq")? as f64 },
        sentiment: sentiment_of(row)?,
    })
}

fn interaction_facts(row: &QueryResult) -> AppResult<InteractionFacts> {
    Ok(InteractionFacts {
        inbound: int(row, "inbound")?,
        outbound: int(row, "outbound")?,
        sentiment: sentiment_of(row)?,
    })
}

/// The grouped sums of one family straight from the facts.
async fn grouped<T: Default + AddAssign>(
    db: &impl ConnectionTrait,
    req: &Request,
    family: &Family,
    aggregates: &str,
    facts: fn(&QueryResult) -> AppResult<T>,
    out: &mut BTreeMap<Key, T>,
    rekey: impl Fn(Key) -> Key,
) -> AppResult<()> {
    let mut sql = base(family, req, aggregates);
    group_by(&mut sql, req);
    let rows = db.query_all_raw(sql.statement(db.get_database_backend())).await?;
    too_many(rows.len())?;
    for row in rows {
        *out.entry(rekey(key_of(&row, req)?)).or_default() += facts(&row)?;
    }
    Ok(())
}

/// Most pieces read from the facts before the rollups are not worth it (hourly buckets
/// in a zone off the hour, say): then the whole question goes to the facts.
const MAX_FACT_PIECES: usize = 200;

/// A family's sums per cell: from the rollups (and their pending deltas) where they can
/// answer, with the minutes they do not cover (ragged edges) from the facts; else from
/// the facts.
async fn sums<T: Default + AddAssign>(
    db: &impl ConnectionTrait,
    req: &Request,
    family: &Family,
    rollup: &Rollup,
    facts: fn(&QueryResult) -> AppResult<T>,
) -> AppResult<BTreeMap<Key, T>> {
    let aggregates = rollup.aggregates();
    let mut out = BTreeMap::new();
    if !rollups::answers(req) {
        grouped(db, req, family, &aggregates, facts, &mut out, |k| k).await?;
        return Ok(out);
    }
    let clip = |r: &Range| Range { start: r.start.max(req.from), end: r.end.min(req.to) };
    let buckets: Vec<(usize, Range)> = match &req.buckets {
        Some(ranges) => ranges.iter().map(clip).enumerate().collect(),
        None => vec![(0, Range { start: req.from, end: req.to })],
    };
    let pieces = rollups::plan(&buckets);
    let (owners, ranges): (Vec<usize>, Vec<Range>) = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Facts { bucket, range } => Some((*bucket, *range)),
            Piece::Rollup { .. } => None,
        })
        .unzip();
    if ranges.len() > MAX_FACT_PIECES {
        grouped(db, req, family, &aggregates, facts, &mut out, |k| k).await?;
        return Ok(out);
    }
    for row in rollups::read(db, rollup, req, &pieces).await? {
        *out.entry(key_of(&row, req)?).or_default() += facts(&row)?;
    }
    if !ranges.is_empty() {
        let bucketed = req.buckets.is_some();
        let edges = Request { buckets: Some(ranges), ..req.clone() };
        let rekey = |mut k: Key| {
            k.bucket = if bucketed { k.bucket.and_then(|i| owners.get(i).copied()) } else { None };
            k
        };
        grouped(db, &edges, family, &aggregates, facts, &mut out, rekey).await?;
    }
    too_many(out.len())?;
    Ok(out)
}

async fn feedback(db: &impl ConnectionTrait, req: &Request, cells: &mut BTreeMap<Key, Cell>) -> AppResult<()> {
    for (key, facts) in sums(db, req, &FEEDBACK, &rollups::FEEDBACK, feedback_facts).await? {
        cells.entry(key).or_default().feedback = facts;
    }
    Ok(())
}

async fn interactions(db: &impl ConnectionTrait, req: &Request, cells: &mut BTreeMap<Key, Cell>) -> AppResult<()> {
    for (key, facts) in sums(db, req, &INTERACTIONS, &rollups::INTERACTIONS, interaction_facts).await? {
        cells.entry(key).or_default().interactions = facts;
    }
    Ok(())
}

async fn conversations(db: &impl ConnectionTrait, req: &Request, cells: &mut BTreeMap<Key, Cell>) -> AppResult<()> {
    let backend = db.get_database_backend();
    let aggregates = "COUNT(*) AS opened, \
        SUM(CASE WHEN cv.sla_policy_id IS NOT NULL AND (cv.resolved_at IS NOT NULL OR cv.first_response_breached \
            OR cv.resolution_breached) THEN 1 ELSE 0 END) AS sla_decided, \
        SUM(CASE WHEN cv.sla_policy_id IS NOT NULL AND cv.resolved_at IS NOT NULL AND NOT cv.first_response_breached \
            AND NOT cv.resolution_breached THEN 1 ELSE 0 END) AS sla_met";
    let mut sql = base(&CONVERSATIONS, req, aggregates);
    group_by(&mut sql, req);
    let rows = db.query_all_raw(sql.statement(backend)).await?;
    too_many(rows.len())?;
    for row in rows {
        let cell = cells.entry(key_of(&row, req)?).or_default();
        cell.conversations.opened = int(&row, "opened")?;
        cell.conversations.sla_decided = int(&row, "sla_decided")?;
        cell.conversations.sla_met = int(&row, "sla_met")?;
    }
    for (key, kind, durations) in percentiles(db, req).await? {
        let cell = cells.entry(key).or_default();
        if kind == FIRST_RESPONSE {
            cell.conversations.first_response = durations;
        } else {
            cell.conversations.resolution = durations;
        }
    }
    Ok(())
}

/// The `k` of first-response rows in [`percentiles`] (resolution rows are 2).
const FIRST_RESPONSE: i64 = 1;

/// Median and p90 of first-response and of resolution time per cell, nearest-rank,
/// with the distribution-free 95% interval of each (the order statistics at ranks
/// `n·q ± z·√(n·q(1−q))`): one statement, one row per (cell, `k`).
///
/// PostgreSQL sorts each cell's values once into an array (`array_agg … ORDER BY`)
/// and picks the ranks by index; SQLite numbers the rows with `ROW_NUMBER()`. On a
/// quarter of the benchmark dataset the two window passes took 600 ms per duration
/// and the arrays 170 ms for both (EXPLAIN ANALYZE, with the covering index of
/// migration 14 under either).
async fn percentiles(db: &impl ConnectionTrait, req: &Request) -> AppResult<Vec<(Key, i64, Durations)>> {
    let backend = db.get_database_backend();
    let dims: Vec<&str> = req.group_by.iter().map(|d| d.alias()).collect();
    let cell = dims.iter().copied().chain(["bk"]).collect::<Vec<_>>().join(", ");
    let first_response = sql::seconds_between(backend, "cv.first_response_at", "cv.opened_at");
    let resolution = sql::seconds_between(backend, "cv.resolved_at", "cv.opened_at");
    let mut sql = Sql::new();
    sql.push("WITH base AS (");
    sql.append(base(&CONVERSATIONS, req, &format!("{first_response} AS fr, {resolution} AS rs")));
    sql.push(") SELECT ").push(&cell).push(", k");
    let quantiles = [("med", 0.5_f64), ("p90", 0.9)];
    if backend == DatabaseBackend::Postgres {
        sql.push(", n");
        for (name, q) in quantiles {
            sql.push(", ").push(&sql::array_quantile("a", "n", q, name));
        }
        sql.push(" FROM (SELECT ").push(&cell).push(", COUNT(fr) AS n_fr, ");
        sql.push("ARRAY_AGG(fr ORDER BY fr) FILTER (WHERE fr IS NOT NULL) AS a_fr, COUNT(rs) AS n_rs, ");
        sql.push("ARRAY_AGG(rs ORDER BY rs) FILTER (WHERE rs IS NOT NULL) AS a_rs FROM base GROUP BY ").push(&cell);
        sql.push(&format!(
            ") s CROSS JOIN LATERAL (VALUES (CAST({FIRST_RESPONSE} AS BIGINT), s.n_fr, s.a_fr), (CAST(2 AS BIGINT), s.n_rs, s.a_rs)) AS x(k, n, a) \
             WHERE n > 0"
        ));
    } else {
        sql.push(", MAX(n) AS n");
        for (name, q) in quantiles {
            sql.push(", ").push(&sql::ranked_quantile(q, name));
        }
        let partition = format!("{cell}, k");
        sql.push(" FROM (SELECT ").push(&partition).push(", v, ROW_NUMBER() OVER (PARTITION BY ").push(&partition);
        sql.push(" ORDER BY v) AS rn, COUNT(*) OVER (PARTITION BY ").push(&partition).push(") AS n FROM (");
        sql.push(&format!("SELECT {cell}, {FIRST_RESPONSE} AS k, fr AS v FROM base WHERE fr IS NOT NULL "));
        sql.push(&format!("UNION ALL SELECT {cell}, 2 AS k, rs AS v FROM base WHERE rs IS NOT NULL"));
        sql.push(") u) ranked GROUP BY ").push(&partition);
    }
    let rows = db.query_all_raw(sql.statement(backend)).await?;
    too_many(rows.len())?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let n = int(&row, "n")?;
        let get = |c: &str| row.try_get::<Option<f64>>("", c);
        let estimate = |name: &str| -> AppResult<Estimate> {
            Ok(stats::percentile(n, get(name)?, get(&format!("{name}_lo"))?, get(&format!("{name}_hi"))?))
        };
        let durations = Durations { n, median: estimate("med")?, p90: estimate("p90")? };
        out.push((key_of(&row, req)?, int(&row, "k")?, durations));
    }
    Ok(out)
}

/// Answers one insights question, every family read in one snapshot (the rollups and
/// their pending deltas must agree).
pub async fn run(db: &DatabaseConnection, req: &Request) -> AppResult<Report> {
    if req.from >= req.to {
        return Err(AppError::invalid(&["range", "to"], "INVALID", "must be after `from`"));
    }
    let snapshot = rollups::snapshot(db).await?;
    let allowed = applicable(&req.group_by);
    if db.get_database_backend() == DatabaseBackend::Postgres
        && rollups::answers(req)
        && !(req.families.conversations && allowed.conversations)
    {
        // Every statement of a rollup answer reads a few hundred rows; starting
        // parallel workers for them cost more than the reads (about 10 ms each,
        // measured on the benchmark dataset).
        snapshot.execute_unprepared("SET LOCAL max_parallel_workers_per_gather = 0").await?;
    }
    let report = answer(&snapshot, req).await?;
    snapshot.commit().await?;
    Ok(report)
}

async fn answer(db: &impl ConnectionTrait, req: &Request) -> AppResult<Report> {
    let allowed = applicable(&req.group_by);
    let mut cells = BTreeMap::new();
    if req.families.feedback && allowed.feedback {
        feedback(db, req, &mut cells).await?;
    }
    if req.families.interactions && allowed.interactions {
        interactions(db, req, &mut cells).await?;
    }
    if req.families.conversations && allowed.conversations {
        conversations(db, req, &mut cells).await?;
    }
    too_many(cells.len())?;
    let cells = cells.into_iter().map(|(key, mut cell)| {
        cell.key = key;
        cell
    });
    Ok(Report { cells: cells.collect(), applicable: allowed })
}
