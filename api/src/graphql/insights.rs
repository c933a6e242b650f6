//! Insights over GraphQL: grouped and bucketed metrics, the channel comparison, topic
//! drivers and journey funnels. Every figure is an `Estimate` with its sample size,
//! 95% margin of error and a `lowSample` flag.
//!
//! Only the fact families the selection needs are queried (a request for NPS alone
//! never touches conversations): the resolver looks ahead at the selected fields.
//! Names of topics, teams and stages in the cells come from one small lookup each,
//! made only when grouped by them. Everything here reads from the replica when
//! `DATABASE_READ_URL` is set.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{journey_stage, team, topic};
use sea_orm::{ActiveEnum, EntityTrait};
use uuid::Uuid;

use super::enums::{BrandSide, Channel};
use super::journeys::Journey;
use super::types::{capped, context, id, parse_id, within_channel_limit};
use crate::error::AppError;
use crate::insights::brands;
use crate::insights::buckets;
use crate::insights::drivers;
use crate::insights::funnel::{self, FunnelGroup};
use crate::insights::metrics::{self, Dimension, Families, Filter};
use crate::insights::stats;

/// Default sample size below which a figure is flagged `lowSample`.
const DEFAULT_MIN_SAMPLE: i32 = 30;

/// A half-open time range `[from, to)`.
#[derive(InputObject, Clone, Copy)]
pub struct InsightRange {
    /// First instant included.
    from: DateTime<Utc>,
    /// First instant excluded.
    to: DateTime<Utc>,
}

/// What cells are grouped by.
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
#[graphql(remote = "crate::insights::metrics::Dimension")]
pub enum InsightDimension {
    /// Channel of the fact.
    Channel,
    /// Touchpoint name a piece of feedback follows (feedback metrics only).
    Touchpoint,
    /// Journey stage: the feedback's touchpoint's stage, else its survey's (feedback
    /// metrics only).
    Stage,
    /// Customer segment.
    Segment,
    /// Topic mentioned (a fact mentioning two topics is in both cells).
    Topic,
    /// Team of the conversation (feedback: through its linked interaction).
    Team,
}

/// Width of a time bucket, in the query's time zone.
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
#[graphql(remote = "crate::insights::buckets::Bucket")]
pub enum TimeBucket {
    /// Clock hours.
    Hour,
    /// Calendar days (local midnight to midnight; 23 or 25 hours on DST days).
    Day,
    /// ISO weeks, Monday to Monday.
    Week,
    /// Calendar months.
    Month,
}

/// Facts included; every list given must match.
#[derive(InputObject, Default)]
pub struct InsightFilter {
    /// Any of these channels (a channel-limited token is held to its channels).
    channels: Option<Vec<Channel>>,
    /// Any of these customer segments.
    segments: Option<Vec<String>>,
    /// Facts mentioning any of these topics.
    topic_ids: Option<Vec<ID>>,
    /// Facts of conversations of any of these teams.
    team_ids: Option<Vec<ID>>,
}

fn ids(values: Option<Vec<ID>>, field: &[&str]) -> Result<Option<Vec<Uuid>>, AppError> {
    match capped(values, field)? {
        Some(v) => Ok(Some(v.iter().map(|i| parse_id(i, field)).collect::<Result<_, _>>()?)),
        None => Ok(None),
    }
}

impl InsightFilter {
    fn into_domain(self, ctx: &Context<'_>) -> Result<Filter, AppError> {
        let (_, principal) = context(ctx)?;
        let channels = capped(self.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect());
        Ok(Filter {
            channels: within_channel_limit(principal, channels),
            segments: capped(self.segments, &["filter", "segments"])?,
            topic_ids: ids(self.topic_ids, &["filter", "topicIds"])?,
            team_ids: ids(self.team_ids, &["filter", "teamIds"])?,
        })
    }
}

/// A figure with its uncertainty.
#[derive(SimpleObject, Clone, Copy)]
pub struct Estimate {
    /// The figure; null without data.
    value: Option<f64>,
    /// How many answers, messages or conversations it rests on.
    sample_size: i32,
    /// Half-width of the 95% interval (normal approximation; order statistics for
    /// percentiles). Null when it cannot be computed (no data, or one value).
    margin_of_error: Option<f64>,
    /// Lower end of the 95% interval.
    low: Option<f64>,
    /// Upper end of the 95% interval.
    high: Option<f64>,
    /// True when the sample is smaller than the query's `minSampleSize`: too small to
    /// trust.
    low_sample: bool,
}

fn estimate(e: stats::Estimate, min: i64) -> Estimate {
    Estimate {
        value: e.value,
        sample_size: i32::try_from(e.sample_size).unwrap_or(i32::MAX),
        margin_of_error: e.margin,
        low: e.low,
        high: e.high,
        low_sample: e.low_sample(min),
    }
}

/// A count as a GraphQL `Int` (saturating).
pub(super) fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Net Promoter Score: % promoters (9–10) − % detractors (0–6), from −100 to 100.
#[derive(SimpleObject)]
pub struct NpsFigure {
    /// The score; its margin uses the variance of the promoter − detractor difference.
    score: Estimate,
    /// Answers of 9 or 10.
    promoters: i32,
    /// Answers of 7 or 8.
    passives: i32,
    /// Answers of 0 to 6.
    detractors: i32,
}

fn nps(p: i64, pa: i64, d: i64, min: i64) -> NpsFigure {
    NpsFigure {
        score: estimate(stats::nps(p, pa, d), min),
        promoters: count(p),
        passives: count(pa),
        detractors: count(d),
    }
}

/// Customer satisfaction (1–5).
#[derive(SimpleObject)]
pub struct CsatFigure {
    /// Percent of answers that are 4 or 5.
    satisfied_percent: Estimate,
    /// Mean answer.
    mean: Estimate,
}

/// Sentiment of what customers wrote (scores from −1 to 1).
#[derive(SimpleObject)]
pub struct SentimentFigure {
    /// Mean score.
    mean: Estimate,
    /// Percent labelled negative.
    negative_percent: Estimate,
}

/// A duration's distribution, in seconds (nearest-rank percentiles).
#[derive(SimpleObject)]
pub struct DurationFigure {
    /// Median, with a distribution-free 95% interval.
    median: Estimate,
    /// 90th percentile, with a distribution-free 95% interval.
    p90: Estimate,
}

/// Names of the things cells are keyed by.
#[derive(Default)]
struct Names {
    topics: HashMap<Uuid, String>,
    teams: HashMap<Uuid, String>,
    stages: HashMap<Uuid, String>,
}

/// One cell: its coordinates and every metric. A metric is null when the grouping
/// does not apply to it (touchpoint and stage group feedback only); otherwise it is
/// an estimate, with sample size 0 when the cell has no such facts.
pub struct InsightCell {
    cell: metrics::Cell,
    bucket: Option<buckets::Range>,
    applicable: Families,
    min: i64,
    topic_name: Option<String>,
    team_name: Option<String>,
    stage_name: Option<String>,
}

#[Object]
impl InsightCell {
    /// Start of the time bucket (when bucketed).
    async fn bucket_start(&self) -> Option<DateTime<Utc>> {
        self.bucket.map(|b| b.start)
    }
    /// End of the time bucket, excluded (when bucketed).
    async fn bucket_end(&self) -> Option<DateTime<Utc>> {
        self.bucket.map(|b| b.end)
    }
    /// Channel (when grouped by channel).
    async fn channel(&self) -> Option<Channel> {
        self.cell.key.channel.map(Into::into)
    }
    /// Touchpoint name (when grouped by touchpoint; null for feedback without one).
    async fn touchpoint(&self) -> Option<&str> {
        self.cell.key.touchpoint.as_deref()
    }
    /// Journey stage (when grouped by stage).
    async fn stage_id(&self) -> Option<ID> {
        self.cell.key.stage_id.map(id)
    }
    /// Journey stage name.
    async fn stage_name(&self) -> Option<&str> {
        self.stage_name.as_deref()
    }
    /// Customer segment (when grouped by segment).
    async fn segment(&self) -> Option<&str> {
        self.cell.key.segment.as_deref()
    }
    /// Topic (when grouped by topic).
    async fn topic_id(&self) -> Option<ID> {
        self.cell.key.topic_id.map(id)
    }
    /// Topic name.
    async fn topic_name(&self) -> Option<&str> {
        self.topic_name.as_deref()
    }
    /// Team (when grouped by team; null for facts without one).
    async fn team_id(&self) -> Option<ID> {
        self.cell.key.team_id.map(id)
    }
    /// Team name.
    async fn team_name(&self) -> Option<&str> {
        self.team_name.as_deref()
    }
    /// Feedback received (survey answers and unsolicited).
    async fn feedback_count(&self) -> Option<i32> {
        self.applicable.feedback.then_some(count(self.cell.feedback.responses))
    }
    /// Net Promoter Score.
    async fn nps(&self) -> Option<NpsFigure> {
        let f = &self.cell.feedback;
        self.applicable.feedback.then(|| nps(f.promoters, f.passives, f.detractors, self.min))
    }
    /// Customer satisfaction.
    async fn csat(&self) -> Option<CsatFigure> {
        let f = &self.cell.feedback;
        self.applicable.feedback.then(|| CsatFigure {
            satisfied_percent: estimate(f.csat_satisfied(), self.min),
            mean: estimate(f.csat.mean(), self.min),
        })
    }
    /// Customer effort score: mean answer (1–7, higher is easier).
    async fn ces(&self) -> Option<Estimate> {
        self.applicable.feedback.then(|| estimate(self.cell.feedback.ces.mean(), self.min))
    }
    /// Sentiment of feedback comments and inbound messages (comments only when grouped
    /// by touchpoint or stage).
    async fn sentiment(&self) -> SentimentFigure {
        let s = if self.applicable.interactions { self.cell.sentiment() } else { self.cell.feedback.sentiment };
        SentimentFigure {
            mean: estimate(s.scores.mean(), self.min),
            negative_percent: estimate(s.negative_percent(), self.min),
        }
    }
    /// Inbound messages, posts, calls and e-mails received.
    async fn volume(&self) -> Option<i32> {
        self.applicable.interactions.then_some(count(self.cell.interactions.inbound))
    }
    /// Outbound replies sent.
    async fn outbound(&self) -> Option<i32> {
        self.applicable.interactions.then_some(count(self.cell.interactions.outbound))
    }
    /// Conversations opened.
    async fn conversations_opened(&self) -> Option<i32> {
        self.applicable.conversations.then_some(count(self.cell.conversations.opened))
    }
    /// Time from a conversation opening to our first reply (conversations opened in the
    /// cell and answered).
    async fn first_response_time(&self) -> Option<DurationFigure> {
        let d = &self.cell.conversations.first_response;
        self.applicable
            .conversations
            .then(|| DurationFigure { median: estimate(d.median, self.min), p90: estimate(d.p90, self.min) })
    }
    /// Time from a conversation opening to its resolution (resolved ones).
    async fn resolution_time(&self) -> Option<DurationFigure> {
        let d = &self.cell.conversations.resolution;
        self.applicable
            .conversations
            .then(|| DurationFigure { median: estimate(d.median, self.min), p90: estimate(d.p90, self.min) })
    }
    /// Percent of conversations under an SLA, with a known outcome (resolved or
    /// breached), that met both targets.
    async fn sla_compliance(&self) -> Option<Estimate> {
        self.applicable.conversations.then(|| estimate(self.cell.conversations.sla_compliance(), self.min))
    }
}

/// One time bucket of a series.
#[derive(SimpleObject)]
pub struct InsightBucket {
    /// First instant.
    start: DateTime<Utc>,
    /// First instant of the next bucket.
    end: DateTime<Utc>,
}

/// The answer to `insights`.
#[derive(SimpleObject)]
pub struct InsightReport {
    /// Every bucket of the range (cells exist only where there are facts).
    buckets: Vec<InsightBucket>,
    /// Non-empty cells, in bucket order.
    cells: Vec<InsightCell>,
    /// The sample size below which figures are flagged `lowSample`.
    min_sample_size: i32,
}

/// Which families the selected fields of a cell need.
fn families_for(field: async_graphql::Lookahead<'_>) -> Families {
    let any = |names: &[&str]| names.iter().any(|n| field.field(n).exists());
    Families {
        feedback: any(&["feedbackCount", "nps", "csat", "ces", "sentiment"]),
        interactions: any(&["volume", "outbound", "sentiment"]),
        conversations: any(&["conversationsOpened", "firstResponseTime", "resolutionTime", "slaCompliance"]),
    }
}

async fn names(db: &sea_orm::DatabaseConnection, group_by: &[Dimension]) -> Result<Names, AppError> {
    let mut names = Names::default();
    if group_by.contains(&Dimension::Topic) {
        names.topics = topic::Entity::find().all(db).await?.into_iter().map(|t| (t.id, t.name)).collect();
    }
    if group_by.contains(&Dimension::Team) {
        names.teams = team::Entity::find().all(db).await?.into_iter().map(|t| (t.id, t.name)).collect();
    }
    if group_by.contains(&Dimension::Stage) {
        names.stages = journey_stage::Entity::find().all(db).await?.into_iter().map(|s| (s.id, s.name)).collect();
    }
    Ok(names)
}

fn min_sample(value: i32) -> Result<i64, AppError> {
    if !(1..=1_000_000).contains(&value) {
        return Err(AppError::invalid(&["minSampleSize"], "OUT_OF_RANGE", "must be 1 to 1,000,000"));
    }
    Ok(i64::from(value))
}

/// How topic drivers are ranked.
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
#[graphql(remote = "crate::insights::drivers::Ranking")]
pub enum DriverRanking {
    /// Most negative mentions first.
    NegativeVolume,
    /// Most harmful NPS impact first.
    NpsImpact,
}

/// A topic's weight on the customer experience.
pub struct TopicDriver {
    driver: drivers::Driver,
    min: i64,
}

#[Object]
impl TopicDriver {
    /// The topic.
    async fn topic_id(&self) -> ID {
        id(self.driver.topic_id)
    }
    /// Its name.
    async fn topic_name(&self) -> &str {
        &self.driver.topic_name
    }
    /// Tagged feedback and inbound messages in the range.
    async fn mentions(&self) -> i32 {
        count(self.driver.mentions)
    }
    /// Of those, labelled negative.
    async fn negative_mentions(&self) -> i32 {
        count(self.driver.negative_mentions)
    }
    /// Percent of mentions that are negative.
    async fn negative_share(&self) -> Estimate {
        estimate(self.driver.negative_share(), self.min)
    }
    /// NPS of customers who mentioned the topic in the range.
    async fn nps_with_topic(&self) -> NpsFigure {
        let c = self.driver.with_topic;
        nps(c.promoters, c.passives, c.detractors, self.min)
    }
    /// NPS of the other customers who answered.
    async fn nps_without_topic(&self) -> NpsFigure {
        let c = self.driver.without_topic;
        nps(c.promoters, c.passives, c.detractors, self.min)
    }
    /// NPS with minus NPS without (negative: the topic drags NPS down); its margin
    /// combines both samples' variances. The sample size is the smaller side's.
    async fn nps_impact(&self) -> Estimate {
        estimate(self.driver.nps_impact(), self.min)
    }
}

/// One brand's mentions in a range.
pub struct BrandFigure {
    brand: brands::Brand,
    share_of_voice: stats::Estimate,
    min: i64,
}

#[Object]
impl BrandFigure {
    /// The brand (a topic with a side).
    async fn brand_id(&self) -> ID {
        id(self.brand.id)
    }
    /// Its name.
    async fn name(&self) -> &str {
        &self.brand.name
    }
    /// Ours or a competitor's.
    async fn side(&self) -> BrandSide {
        self.brand.side.into()
    }
    /// Feedback and inbound messages mentioning it in the range.
    async fn mentions(&self) -> i32 {
        count(self.brand.volume.mentions)
    }
    /// Of those, labelled negative.
    async fn negative_mentions(&self) -> i32 {
        count(self.brand.volume.negative)
    }
    /// Percent of its mentions that are negative.
    async fn negative_share(&self) -> Estimate {
        estimate(self.brand.volume.negative_share(), self.min)
    }
    /// Percent of all brand mentions that are about it.
    async fn share_of_voice(&self) -> Estimate {
        estimate(self.share_of_voice, self.min)
    }
}

/// Our brands beside our competitors' in a range.
pub struct BrandComparison {
    comparison: brands::Comparison,
    min: i64,
}

#[Object]
impl BrandComparison {
    /// Every brand on the watch list, ours first, then by mentions.
    async fn brands(&self) -> Vec<BrandFigure> {
        let c = &self.comparison;
        c.brands
            .iter()
            .map(|b| BrandFigure { brand: b.clone(), share_of_voice: c.share_of_voice(b), min: self.min })
            .collect()
    }
    /// Percent of the mentions of any of our brands that are negative (a fact naming
    /// two of them counts once).
    async fn our_negative_share(&self) -> Estimate {
        estimate(self.comparison.ours.negative_share(), self.min)
    }
    /// The same for our competitors, pooled.
    async fn competitors_negative_share(&self) -> Estimate {
        estimate(self.comparison.competitors.negative_share(), self.min)
    }
    /// Ours minus theirs, in percentage points (negative: we are talked about less
    /// badly); a margin that spans 0 means no difference can be told. The margin
    /// treats the sides as independent samples; a fact naming both sides is in both,
    /// so where many do, it is approximate.
    async fn negative_share_gap(&self) -> Estimate {
        estimate(self.comparison.gap(), self.min)
    }
}

/// What a funnel is split by.
#[derive(Enum, Copy, Clone, PartialEq, Eq)]
#[graphql(remote = "crate::insights::funnel::FunnelGroup")]
pub enum FunnelGroupBy {
    /// The customer's segment.
    Segment,
    /// The channel each run entered on (its first touchpoint's).
    Channel,
}

/// Which runs a funnel counts.
#[derive(InputObject, Default)]
pub struct FunnelFilter {
    /// Runs that entered on any of these channels.
    channels: Option<Vec<Channel>>,
    /// Runs of customers in any of these segments.
    segments: Option<Vec<String>>,
}

/// One stage of a funnel.
pub struct FunnelStep {
    step: funnel::Step,
    min: i64,
}

#[Object]
impl FunnelStep {
    /// The stage.
    async fn stage_id(&self) -> ID {
        id(self.step.stage_id)
    }
    /// Its name.
    async fn stage_name(&self) -> &str {
        &self.step.stage_name
    }
    /// Its position in the journey (0 first).
    async fn position(&self) -> i32 {
        self.step.position
    }
    /// Runs that reached it before the range's end, having reached every earlier stage
    /// before it.
    async fn reached(&self) -> i32 {
        count(self.step.reached)
    }
    /// Percent of those who reached the previous stage (100 for the first stage).
    async fn conversion_from_previous(&self) -> Estimate {
        estimate(self.step.conversion_from_previous, self.min)
    }
    /// Percent of those who entered the funnel.
    async fn conversion_from_start(&self) -> Estimate {
        estimate(self.step.conversion_from_start, self.min)
    }
    /// Runs that reached the previous stage but not this one.
    async fn drop_off(&self) -> i32 {
        count(self.step.drop_off)
    }
    /// Median seconds from the previous stage, with a distribution-free 95% interval.
    /// An unsplit, unfiltered funnel spanning whole UTC days reads the durations from
    /// a histogram of buckets 9% wide: the median is interpolated inside its bucket
    /// and the interval widened to whole buckets (it still holds the exact one); split
    /// or filtered funnels, and windows under a day, sort the exact durations.
    async fn time_from_previous(&self) -> Estimate {
        estimate(self.step.time_from_previous, self.min)
    }
}

/// The funnel of one group.
pub struct FunnelGroupResult {
    group: funnel::GroupFunnel,
    by: Option<FunnelGroup>,
    min: i64,
}

#[Object(name = "FunnelGroup")]
impl FunnelGroupResult {
    /// The segment (when split by segment; null for customers without one).
    async fn segment(&self) -> Option<&str> {
        (self.by == Some(FunnelGroup::Segment)).then_some(self.group.group.as_deref()).flatten()
    }
    /// The entry channel (when split by channel).
    async fn channel(&self) -> Option<Channel> {
        if self.by != Some(FunnelGroup::Channel) {
            return None;
        }
        let code = self.group.group.as_ref()?;
        entity::enums::Channel::try_from_value(code).ok().map(Into::into)
    }
    /// Runs that entered (began at the first stage) in the range.
    async fn entered(&self) -> i32 {
        self.group.steps.first().map_or(0, |s| count(s.reached))
    }
    /// Every stage, first to last.
    async fn steps(&self) -> Vec<FunnelStep> {
        self.group.steps.iter().map(|s| FunnelStep { step: s.clone(), min: self.min }).collect()
    }
}

/// A journey's funnel.
#[derive(SimpleObject)]
pub struct JourneyFunnel {
    /// The journey.
    journey: Journey,
    /// One funnel per group (one in all when not split).
    groups: Vec<FunnelGroupResult>,
}

#[derive(Default)]
pub struct InsightQuery;

#[Object]
impl InsightQuery {
    /// Metrics grouped by any of channel, touchpoint, stage, segment, topic and team,
    /// optionally per time bucket in a time zone. Every figure carries its sample size
    /// and 95% margin of error.
    #[allow(clippy::too_many_arguments)]
    async fn insights(
        &self,
        ctx: &Context<'_>,
        range: InsightRange,
        group_by: Option<Vec<InsightDimension>>,
        bucket: Option<TimeBucket>,
        #[graphql(desc = "IANA zone the buckets follow; UTC when absent.")] time_zone: Option<String>,
        #[graphql(default)] filter: InsightFilter,
        #[graphql(default_with = "DEFAULT_MIN_SAMPLE")] min_sample_size: i32,
    ) -> Result<InsightReport> {
        let (state, _) = context(ctx)?;
        let min = min_sample(min_sample_size)?;
        let mut dims: Vec<Dimension> = group_by.unwrap_or_default().into_iter().map(Into::into).collect();
        dims.sort();
        dims.dedup();
        if dims.len() > 3 {
            return Err(AppError::invalid(&["groupBy"], "TOO_MANY", "group by at most 3 dimensions").into());
        }
        let ranges = match bucket {
            Some(b) => Some(buckets::ranges(
                buckets::zone(time_zone.as_deref().unwrap_or("UTC"))?,
                b.into(),
                range.from,
                range.to,
            )?),
            None => None,
        };
        let families = families_for(ctx.look_ahead().field("cells"));
        let request = metrics::Request {
            from: range.from,
            to: range.to,
            group_by: dims.clone(),
            buckets: ranges.clone(),
            filter: filter.into_domain(ctx)?,
            families,
        };
        let report = metrics::run(state.read_db(), &request).await?;
        let names = names(state.read_db(), &dims).await?;
        let ranges = ranges.unwrap_or_default();
        let cells = report
            .cells
            .into_iter()
            .map(|cell| InsightCell {
                bucket: cell.key.bucket.and_then(|i| ranges.get(i).copied()),
                topic_name: cell.key.topic_id.and_then(|t| names.topics.get(&t).cloned()),
                team_name: cell.key.team_id.and_then(|t| names.teams.get(&t).cloned()),
                stage_name: cell.key.stage_id.and_then(|s| names.stages.get(&s).cloned()),
                applicable: report.applicable,
                min,
                cell,
            })
            .collect();
        Ok(InsightReport {
            buckets: ranges.iter().map(|r| InsightBucket { start: r.start, end: r.end }).collect(),
            cells,
            min_sample_size,
        })
    }

    /// The same metrics side by side for every channel (those the filter and the
    /// caller's token allow), including channels without any facts.
    async fn channel_comparison(
        &self,
        ctx: &Context<'_>,
        range: InsightRange,
        #[graphql(default)] filter: InsightFilter,
        #[graphql(default_with = "DEFAULT_MIN_SAMPLE")] min_sample_size: i32,
    ) -> Result<Vec<InsightCell>> {
        let (state, _) = context(ctx)?;
        let min = min_sample(min_sample_size)?;
        let filter = filter.into_domain(ctx)?;
        let channels: Vec<entity::enums::Channel> = match &filter.channels {
            Some(c) => c.clone(),
            None => <entity::enums::Channel as sea_orm::Iterable>::iter().collect(),
        };
        let request = metrics::Request {
            from: range.from,
            to: range.to,
            group_by: vec![Dimension::Channel],
            buckets: None,
            filter,
            families: families_for(ctx.look_ahead()),
        };
        let report = metrics::run(state.read_db(), &request).await?;
        let mut by_channel: HashMap<_, _> =
            report.cells.into_iter().filter_map(|c| Some((c.key.channel?, c))).collect();
        Ok(channels
            .into_iter()
            .map(|channel| {
                let mut cell = by_channel.remove(&channel).unwrap_or_default();
                cell.key.channel = Some(channel);
                InsightCell {
                    cell,
                    bucket: None,
                    applicable: report.applicable,
                    min,
                    topic_name: None,
                    team_name: None,
                    stage_name: None,
                }
            })
            .collect())
    }

    /// Topics ranked by negative mentions or by NPS impact (NPS of customers who
    /// mention the topic vs those who do not), every topic included.
    async fn topic_drivers(
        &self,
        ctx: &Context<'_>,
        range: InsightRange,
        #[graphql(default)] filter: FunnelFilter,
        #[graphql(default_with = "DriverRanking::NegativeVolume")] order_by: DriverRanking,
        #[graphql(default_with = "DEFAULT_MIN_SAMPLE")] min_sample_size: i32,
    ) -> Result<Vec<TopicDriver>> {
        let (state, principal) = context(ctx)?;
        let min = min_sample(min_sample_size)?;
        let channels =
            capped(filter.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect());
        let request = drivers::Request {
            from: range.from,
            to: range.to,
            channels: within_channel_limit(principal, channels),
            segments: capped(filter.segments, &["filter", "segments"])?,
        };
        let ranked = drivers::run(state.read_db(), &request, order_by.into()).await?;
        Ok(ranked.into_iter().map(|driver| TopicDriver { driver, min }).collect())
    }

    /// Our brands and our competitors side by side: mentions, negative share and share
    /// of voice per brand, and the gap between the sides' negative shares, each with
    /// its margin.
    async fn brand_comparison(
        &self,
        ctx: &Context<'_>,
        range: InsightRange,
        #[graphql(default)] filter: FunnelFilter,
        #[graphql(default_with = "DEFAULT_MIN_SAMPLE")] min_sample_size: i32,
    ) -> Result<BrandComparison> {
        let (state, principal) = context(ctx)?;
        let min = min_sample(min_sample_size)?;
        let channels =
            capped(filter.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect());
        let request = drivers::Request {
            from: range.from,
            to: range.to,
            channels: within_channel_limit(principal, channels),
            segments: capped(filter.segments, &["filter", "segments"])?,
        };
        let comparison = brands::compare(state.read_db(), &request).await?;
        Ok(BrandComparison { comparison, min })
    }

    /// A journey's funnel in a range: runs (passes of a customer through the
    /// journey) entered in the range reaching each stage in order, conversion and
    /// drop-off per stage, median time between stages.
    async fn journey_funnel(
        &self,
        ctx: &Context<'_>,
        journey_id: ID,
        range: InsightRange,
        group_by: Option<FunnelGroupBy>,
        #[graphql(default)] filter: FunnelFilter,
        #[graphql(default_with = "DEFAULT_MIN_SAMPLE")] min_sample_size: i32,
    ) -> Result<JourneyFunnel> {
        let (state, principal) = context(ctx)?;
        let min = min_sample(min_sample_size)?;
        let channels =
            capped(filter.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect());
        let by: Option<FunnelGroup> = group_by.map(Into::into);
        let request = funnel::Request {
            journey_id: parse_id(&journey_id, &["journeyId"])?,
            from: range.from,
            to: range.to,
            group_by: by,
            channels: within_channel_limit(principal, channels),
            segments: capped(filter.segments, &["filter", "segments"])?,
        };
        let result = funnel::run(state.read_db(), &request).await?;
        Ok(JourneyFunnel {
            journey: Journey(result.journey),
            groups: result.groups.into_iter().map(|group| FunnelGroupResult { group, by, min }).collect(),
        })
    }
}
