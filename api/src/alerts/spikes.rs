//! Early warning: spikes of negative mentions per channel, topic, brand and inbox,
//! found in **event time**.
//!
//! Mentions are counted in the fixed buckets (`step`) they *happened* in
//! ([`mentions`]). Each run asks the facts' change stamps which buckets received
//! mentions since the last run (the cursor in `detector_cursors`, read with a margin
//! for writes that committed late) and evaluates every sliding window (`window`, a
//! whole number of buckets) that holds one of them, in time order — the live window,
//! and as well any window of the past that a connector catching up or a backfill
//! filled in. Each window is judged against the same window on the previous days
//! ([`baseline`]: seasonal, robust, over-dispersed); it spikes when it holds at least
//! `min_count` mentions, the scope has `min_history_days` of history, and the
//! observed count is at most `significance` likely under the expected law.
//!
//! Alerts are per **episode**: a spiking window overlapping an episode of its scope
//! (or following an open one) extends it; otherwise it raises one `negative_spike`
//! alert with the episode's span (`window_start`/`window_end`), its lag and the
//! evidence — or, for a competitor's brand, one `opportunity` alert (their unhappy
//! customers are a moment to reach out, not our crisis: it lifts none of our
//! conversations). An open episode resolves when a window wholly after it is calm (under
//! `min_count`, or more likely than the square root of the significance: hysteresis,
//! so a hovering volume does not flap). An episode found more than `backfill_after`
//! after it ended is recorded as `backfill`, resolved or not, but pages nobody (no
//! event, no priority lift) unless `page_backfill`.
//!
//! One detector runs at a time across replicas: the run is one write transaction,
//! holding an advisory lock on PostgreSQL (a replica finding it taken skips its turn)
//! and the write lock on SQLite; the dedupe key (scope and first window) backs it up.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use entity::alert;
use entity::enums::{AlertSeverity, AlertStatus, Channel, ConversationStatus, Priority};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    TransactionSession, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::baseline::{self, Expectation};
pub use super::mentions::Scope;
use super::mentions::{self, Counts, Grid, Tally};
use crate::db;
use crate::error::AppResult;
use crate::events::{self, Bus, NewEvent};
use crate::feedback::topics::Side;
use crate::insights::sql::Sql;

/// The alert kind of a spike.
pub const KIND: &str = "negative_spike";
/// The alert kind of a competitor's spike: their unhappy customers, a moment to reach
/// out (it pages like a spike, but lifts none of our conversations).
pub const OPPORTUNITY: &str = "opportunity";
/// Most conversations one spike lifts to HIGH priority.
const MAX_LIFTED: u64 = 500;
/// The cursor's name in `detector_cursors`.
const CURSOR: &str = "negative_spikes";
/// The advisory lock one run holds on PostgreSQL.
const LOCK: i64 = 4_242_003;
/// How far back a run judges windows: a backfill older than a year is stored but
/// raises nothing (what a run costs is bounded by this, not by the oldest fact,
/// which may be from 1970).
const HORIZON_DAYS: i64 = 366;
/// Most days of windows judged with one read of the counts (a backfill of a year is
/// read a week at a time: memory stays bounded).
const CHUNK_DAYS: i64 = 7;

/// The detector's settings (README, "Early warning", says what each changes).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Bucket width: windows slide by this much.
    pub step: Duration,
    /// Window width, a whole number of steps.
    pub window: Duration,
    /// Days of history a window is compared with.
    pub history_days: u32,
    /// Days a scope must have been heard of before it can alert.
    pub min_history_days: u32,
    /// How unlikely (under the expected law) a window must be to spike.
    pub significance: f64,
    /// Fewest mentions in a window that can spike.
    pub min_count: u32,
    /// The least over-dispersion assumed.
    pub min_dispersion: f64,
    /// An episode found this long after it ended is a backfill.
    pub backfill_after: Duration,
    /// Page backfilled episodes too.
    pub page_backfill: bool,
    /// Lift open conversations of a spiking channel, topic or inbox to HIGH.
    pub raise_priority: bool,
    /// Change stamps are taken before their transaction commits: a run reads this far
    /// behind its cursor so a write that committed late is still seen (windows read
    /// twice are judged twice, to the same verdict). Five minutes; the evaluation, which
    /// writes and runs in one task, sets none.
    pub margin: Duration,
}

impl Params {
    /// The defaults, as documented.
    pub fn standard() -> Self {
        Self {
            step: Duration::minutes(15),
            window: Duration::minutes(60),
            history_days: 28,
            min_history_days: 7,
            significance: 1e-5,
            min_count: 8,
            min_dispersion: 0.05,
            backfill_after: Duration::hours(2),
            page_backfill: false,
            raise_priority: false,
            margin: Duration::minutes(5),
        }
    }

    /// Why these settings cannot work together, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let (step, window) = (self.step.num_seconds(), self.window.num_seconds());
        if step <= 0 || 86_400 % step != 0 {
            return Err("the spike step must divide a day into whole minutes".into());
        }
        if window < step || window % step != 0 {
            return Err("the spike window must be a whole number of steps".into());
        }
        if !(self.min_dispersion > 0.0 && self.min_dispersion <= baseline::MAX_DISPERSION) {
            return Err(format!(
                "the spike minimum dispersion must be above 0 and at most {}",
                baseline::MAX_DISPERSION
            ));
        }
        if self.min_history_days > self.history_days {
            return Err("the spike minimum history cannot exceed the history".into());
        }
        Ok(())
    }

    fn grid(&self) -> Grid {
        Grid { seconds: self.step.num_seconds().max(1) }
    }

    /// Buckets per window and per day.
    fn widths(&self) -> (i64, i64) {
        let step = self.step.num_seconds().max(1);
        ((self.window.num_seconds() / step).max(1), 86_400 / step)
    }
}

/// One window of one scope, judged.
#[derive(Debug, Clone)]
struct Verdict {
    observed: u32,
    expected: Expectation,
    p: f64,
    /// How far the day before ran above its usual level (1: not at all).
    level: f64,
}

/// A spiking window: its span in event time, the run's clock and its verdict.
struct Spike<'a> {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    verdict: &'a Verdict,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub raised: u32,
    pub resolved: u32,
    pub lifted: u64,
    /// Windows judged (scopes × windows with enough mentions, or an open episode).
    pub judged: u64,
    /// Alerts recorded as backfill (not paged).
    pub backfilled: u32,
    /// Of the alerts raised, `opportunity` alerts (a competitor's spike).
    pub opportunities: u32,
}

/// A detector: its settings and what it has learnt of scopes' histories (when each
/// was first heard of, kept once older than the whole history, when it can no longer
/// change the verdicts).
pub struct Detector {
    params: Params,
    seen: HashMap<Scope, DateTime<Utc>>,
    /// Counts read by earlier runs, and the wall time of this detector's last run,
    /// from which it knows which of them changed since.
    tally: Tally,
    tallied_at: Option<DateTime<Utc>>,
    /// When the tally was last read from scratch: once an hour, so changes no change
    /// stamp announces (topic links re-tagged or deleted) are seen within the hour.
    tally_read_at: Option<DateTime<Utc>>,
    /// What the topics and brands were when the tally was read (see [`topic_state`]).
    topics: Option<String>,
    /// Topics and brands whose history is being re-tagged: judged, but a new episode
    /// of theirs is held until the re-tagging is done (then their windows since the
    /// request are judged again).
    retagging: HashMap<Uuid, DateTime<Utc>>,
}

/// One run at `now` with a fresh detector (see [`Detector::run`]).
pub async fn detect(db: &DatabaseConnection, now: DateTime<Utc>, params: &Params) -> AppResult<Report> {
    Detector::new(*params).run(db, now).await
}

impl Detector {
    pub fn new(params: Params) -> Self {
        Self {
            params,
            seen: HashMap::new(),
            tally: Tally::default(),
            tallied_at: None,
            tally_read_at: None,
            topics: None,
            retagging: Default::default(),
        }
    }

    /// One run: judges every window that received mentions since the last run (its
    /// end at most the bucket after `now`'s) and the live one; raises, extends and
    /// resolves episodes. An empty report when another replica holds the run.
    pub async fn run(&mut self, db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Report> {
        let backend = db.get_database_backend();
        if backend != sea_orm::DatabaseBackend::Postgres {
            // SQLite has one writer: the run reads without holding it, and each raise,
            // extension or resolution is its own short write transaction (a backfill's
            // judging must not lock ingest out).
            return self.run_on(db, now).await;
        }
        let txn = db::begin_write(db).await?;
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT pg_try_advisory_xact_lock({LOCK}) AS locked"),
            ))
            .await?;
        if !row.map(|r| r.try_get::<bool>("", "locked")).transpose()?.unwrap_or(false) {
            return Ok(Report::default());
        }
        let report = self.run_on(&txn, now).await?;
        txn.commit().await?;
        Ok(report)
    }

    async fn run_on<C: ConnectionTrait + TransactionTrait>(
        &mut self,
        txn: &C,
        now: DateTime<Utc>,
    ) -> AppResult<Report> {
        // The cursor is the wall clock (the facts' stamps are), `now` the event clock.
        let wall = Utc::now();
        let grid = self.params.grid();
        let (width, _) = self.params.widths();
        let last = grid.bucket(now) + 1;
        let since = match read_cursor(txn).await? {
            Some(cursor) => cursor - self.params.margin,
            None => now - self.params.window,
        };
        let mut ends = BTreeSet::from([last]);
        let touched = mentions::touched(txn, grid, since).await?;
        let horizon = grid.bucket(now - Duration::days(HORIZON_DAYS));
        for b in touched.iter().filter(|b| **b >= horizon) {
            ends.extend((b + 1..=b + width).filter(|e| *e <= last));
        }
        // What changed since this detector's own last run (another replica may have
        // moved the shared cursor since) is read afresh.
        match self.tallied_at {
            Some(at) if at - self.params.margin < since => {
                self.tally.forget(&mentions::touched(txn, grid, at - self.params.margin).await?);
            }
            Some(_) => self.tally.forget(&touched),
            None => self.tally = Tally::default(),
        }
        if self.tally_read_at.is_none_or(|at| wall - at > Duration::hours(1)) {
            self.tally = Tally::default();
            self.tally_read_at = Some(wall);
        }
        // A topic or brand changed (keywords, handles, side, a re-tagging finished, one
        // deleted): counts read before may be filed under the wrong scope or miss links
        // no change stamp announces, so they are read afresh — a brand made of an old
        // topic is judged on its whole history, not on zeros.
        let (fingerprint, retagging) = topic_state(txn).await?;
        if self.topics.as_ref() != Some(&fingerprint) {
            self.tally = Tally::default();
            self.tally_read_at = Some(wall);
            self.seen.clear();
            self.topics = Some(fingerprint);
        }
        // A re-tagging finished: the windows since it was asked for are judged again
        // (episodes held meanwhile are raised now; the rest come to the same verdicts).
        for (id, asked) in &self.retagging {
            if !retagging.contains_key(id) {
                let from = grid.bucket((*asked).min(now)).max(horizon);
                ends.extend((from + 1..=last).filter(|e| *e <= last));
            }
        }
        self.retagging = retagging;
        let mut episodes: Vec<alert::Model> = alert::Entity::find()
            .filter(alert::Column::Kind.is_in([KIND, OPPORTUNITY]))
            .filter(alert::Column::WindowEnd.gte(grid.start(ends.first().copied().unwrap_or(last) - 2 * width)))
            .all(txn)
            .await?;
        episodes.extend(
            alert::Entity::find()
                .filter(alert::Column::Kind.is_in([KIND, OPPORTUNITY]))
                .filter(alert::Column::Status.ne(AlertStatus::Resolved))
                .all(txn)
                .await?
                .into_iter()
                .filter(|open| !episodes.iter().any(|e| e.id == open.id))
                .collect::<Vec<_>>(),
        );
        let mut report = Report::default();
        let ends: Vec<i64> = ends.into_iter().collect();
        let (_, day) = self.params.widths();
        let chunk = CHUNK_DAYS * day;
        let mut from = 0;
        while from < ends.len() {
            let to = ends[from..].iter().position(|e| *e > ends[from] + chunk).map_or(ends.len(), |n| from + n);
            let ranges = self.ranges(&ends[from..to]);
            self.tally.drop_before(ranges.first().map_or(i64::MIN, |r| r.0));
            self.tally.fill(txn, grid, &ranges).await?;
            let tally = std::mem::take(&mut self.tally);
            for e in &ends[from..to] {
                let judged = self.judge(txn, tally.counts(), *e, now, &mut episodes, &mut report).await;
                if let Err(e) = judged {
                    self.tallied_at = None;
                    return Err(e);
                }
            }
            self.tally = tally;
            from = to;
        }
        write_cursor(txn, wall).await?;
        self.tallied_at = Some(wall);
        Ok(report)
    }

    /// The bucket ranges the windows ending at `ends` and their histories cover: the
    /// windows, the day before them (its level) and the history of both.
    fn ranges(&self, ends: &[i64]) -> Vec<(i64, i64)> {
        let (width, day) = self.params.widths();
        let history = i64::from(self.params.history_days) + 1;
        mentions::merge(ends.iter().map(|e| (e - 2 * width - day - history * day, *e)).collect())
    }

    /// Judges each scope's window ending at bucket `end`.
    async fn judge<C: ConnectionTrait + TransactionTrait>(
        &mut self,
        txn: &C,
        counts: &Counts,
        end: i64,
        now: DateTime<Utc>,
        episodes: &mut Vec<alert::Model>,
        report: &mut Report,
    ) -> AppResult<()> {
        let grid = self.params.grid();
        let (width, _) = self.params.widths();
        let (start_at, end_at) = (grid.start(end - width), grid.start(end).min(now));
        for (scope, buckets) in counts {
            let observed: u32 = buckets.range(end - width..end).map(|(_, n)| *n).sum();
            let key = scope.key();
            let open =
                episodes.iter().position(|a| a.scope.as_deref() == Some(&key) && a.status != AlertStatus::Resolved);
            if observed < self.params.min_count && open.is_none() {
                continue;
            }
            report.judged += 1;
            let verdict = self.verdict(txn, scope, buckets, end, observed).await?;
            let spiking =
                verdict.as_ref().is_some_and(|v| observed >= self.params.min_count && v.p <= self.params.significance);
            if spiking {
                let Some(v) = verdict else { continue };
                let overlapping = episodes.iter().position(|a| {
                    a.scope.as_deref() == Some(&key)
                        && a.window_start.is_some_and(|s| s < end_at)
                        && a.window_end.is_some_and(|e| e > start_at)
                });
                // An open episode this window follows (it starts within one window of
                // the episode's end): the same incident going on. A window far before or
                // after it (history loaded later) is an episode of its own.
                let window = self.params.window;
                let follows = open.filter(|at| {
                    let a = &episodes[*at];
                    a.window_start.is_some_and(|s| s <= start_at) && a.window_end.is_none_or(|e| start_at <= e + window)
                });
                match overlapping.or(follows) {
                    Some(at) if episodes[at].status != AlertStatus::Resolved => {
                        let spike = Spike { start: start_at, end: end_at, now, verdict: &v };
                        self.extend(txn, &mut episodes[at], scope, &spike, report).await?;
                    }
                    Some(_) => {}
                    // A history half re-tagged reads as quiet: a new episode of a
                    // topic being re-tagged waits for the re-tagging.
                    None if matches!(scope, Scope::Topic(t) | Scope::Brand(t) if self.retagging.contains_key(t)) => {}
                    None => {
                        let spike = Spike { start: start_at, end: end_at, now, verdict: &v };
                        let raised = self.raise(txn, scope, &spike, report).await?;
                        if let Some(a) = raised {
                            episodes.push(a);
                        }
                    }
                }
                continue;
            }
            let calm = observed < self.params.min_count
                || verdict.as_ref().is_none_or(|v| v.p > self.params.significance.sqrt());
            if let Some(at) = open.filter(|_| calm) {
                let page = self.params.page_backfill;
                report.resolved += u32::from(settle(txn, &mut episodes[at], start_at, now, page).await?);
            }
        }
        // An open episode whose scope had no mention at all in what was read is calm.
        let heard: std::collections::HashSet<String> = counts.keys().map(Scope::key).collect();
        for episode in episodes.iter_mut() {
            let silent = episode.scope.as_ref().is_some_and(|k| !heard.contains(k));
            if silent && episode.status != AlertStatus::Resolved {
                let page = self.params.page_backfill;
                report.resolved += u32::from(settle(txn, episode, start_at, now, page).await?);
            }
        }
        Ok(())
    }

    /// The window's verdict; `None` when the scope's history is too short.
    async fn verdict(
        &mut self,
        txn: &impl ConnectionTrait,
        scope: &Scope,
        buckets: &std::collections::BTreeMap<i64, u32>,
        end: i64,
        observed: u32,
    ) -> AppResult<Option<Verdict>> {
        let grid = self.params.grid();
        let Some(first) = self.first_seen(txn, scope, grid.start(end)).await? else {
            return Ok(None);
        };
        let Some((daily, weekday)) = self.samples(buckets, end, first) else {
            return Ok(None);
        };
        let floor = self.params.min_dispersion;
        let Some(mut expected) = baseline::expect(&daily, &weekday, floor) else {
            return Ok(None);
        };
        let mut p = expected.upper_tail(u64::from(observed));
        let mut level = 1.0;
        if p <= self.params.significance {
            // Before calling it a spike, look at the whole day before: how clumpy the
            // scope is (pooled over the day's windows), and whether it has run above
            // its usual level all day (a new normal, or a slow ramp): then expect that
            // much more.
            let (day_level, alpha) = self.day_before(buckets, end, first);
            if let Some(better) = baseline::expect(&daily, &weekday, floor.max(alpha)) {
                expected = better;
            }
            level = day_level.max(1.0);
            expected.mean *= level;
            p = expected.upper_tail(u64::from(observed));
        }
        Ok(Some(Verdict { observed, p, expected, level }))
    }

    /// The window's counts on each previous day since `first` (`daily`) and on the
    /// same weekday (`weekday`); `None` when that history is shorter than the minimum.
    fn samples(
        &self,
        buckets: &std::collections::BTreeMap<i64, u32>,
        end: i64,
        first: DateTime<Utc>,
    ) -> Option<(Vec<f64>, Vec<f64>)> {
        let grid = self.params.grid();
        let (width, day) = self.params.widths();
        let (mut daily, mut weekday) = (Vec::new(), Vec::new());
        for d in 1..=i64::from(self.params.history_days) {
            let (a, b) = (end - width - d * day, end - d * day);
            if grid.start(a) < first {
                break;
            }
            let n: u32 = buckets.range(a..b).map(|(_, n)| *n).sum();
            daily.push(f64::from(n));
            if d % 7 == 0 {
                weekday.push(f64::from(n));
            }
        }
        (daily.len() >= self.params.min_history_days as usize).then_some((daily, weekday))
    }

    /// The day before the window ending at `end`, window by window: how far above its
    /// seasonal expectation the scope ran, and the over-dispersion pooled over those
    /// windows' histories. The level is a ratio of sums over the day's windows with the
    /// four of most excess left out: a burst of a few hours does not lift it, a whole
    /// day at a new level (a new normal, a slow ramp) does, and quiet night windows
    /// weigh as little as they hold.
    fn day_before(&self, buckets: &std::collections::BTreeMap<i64, u32>, end: i64, first: DateTime<Utc>) -> (f64, f64) {
        let (width, day) = self.params.widths();
        let (mut windows, mut histories) = (Vec::new(), Vec::new());
        for k in 0..(day / width).max(1) {
            let e = end - width - k * width;
            let Some((daily, weekday)) = self.samples(buckets, e, first) else { continue };
            let Some(expected) = baseline::expect(&daily, &weekday, 0.0) else { continue };
            let observed: u32 = buckets.range(e - width..e).map(|(_, n)| *n).sum();
            windows.push((f64::from(observed), expected.mean));
            histories.push(daily);
        }
        let pooled: Vec<&[f64]> = histories.iter().map(Vec::as_slice).collect();
        let alpha = baseline::dispersion(&pooled).min(baseline::MAX_DISPERSION);
        windows.sort_by(|a, b| (a.0 - a.1).total_cmp(&(b.0 - b.1)));
        let kept = &windows[..windows.len().saturating_sub(4)];
        let (observed, expected) = kept.iter().fold((0.0, 0.0), |(o, e), w| (o + w.0, e + w.1));
        ((observed + 1.0) / (expected + 1.0), alpha)
    }

    /// When the scope was first heard of. Remembered once older than the history of the
    /// window at `at`, and used only for windows whose history lies wholly after it: an
    /// import of older history cannot change their verdicts, while a window of that
    /// older history asks the database again.
    async fn first_seen(
        &mut self,
        txn: &impl ConnectionTrait,
        scope: &Scope,
        at: DateTime<Utc>,
    ) -> AppResult<Option<DateTime<Utc>>> {
        let horizon = at - Duration::days(i64::from(self.params.history_days) + 1);
        if let Some(first) = self.seen.get(scope).filter(|f| **f <= horizon) {
            return Ok(Some(*first));
        }
        let first = mentions::first_seen(txn, scope).await?;
        if let Some(f) = first.filter(|f| *f < horizon) {
            self.seen.insert(scope.clone(), f);
        }
        Ok(first)
    }

    /// Raises a new episode's alert (or, when another run raised it first, returns that
    /// one); `None` when there is nothing to raise about.
    async fn raise<C: ConnectionTrait + TransactionTrait>(
        &self,
        conn: &C,
        scope: &Scope,
        spike: &Spike<'_>,
        report: &mut Report,
    ) -> AppResult<Option<alert::Model>> {
        let (start, end, now, v) = (spike.start, spike.end, spike.now, spike.verdict);
        let p = &self.params;
        let backfill = now - end > p.backfill_after;
        let (channel, topic_id, about, kind) = match scope {
            Scope::Channel(c) => (Some(*c), None, format!("{c:?}"), KIND),
            Scope::Topic(t) | Scope::Brand(t) => match entity::topic::Entity::find_by_id(*t).one(conn).await? {
                Some(topic) if Side::of(&topic) == Some(Side::Competitor) => {
                    (None, Some(*t), format!("competitor {}", topic.name), OPPORTUNITY)
                }
                Some(topic) => (None, Some(*t), topic.name, KIND),
                // Deleted since its mentions were counted: nothing to raise about.
                None => return Ok(None),
            },
            Scope::Inbox(i) => (None, None, format!("inbox {i}"), KIND),
        };
        let severity = if kind == OPPORTUNITY {
            AlertSeverity::Info
        } else if v.p <= p.significance * p.significance {
            AlertSeverity::Critical
        } else {
            AlertSeverity::Warning
        };
        let (low, high) = v.expected.interval(0.9);
        let row = alert::Model {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            severity,
            status: AlertStatus::Open,
            title: format!(
                "Negative mentions spiking on {about}: {} in {} min from {} UTC (usually {low}–{high})",
                v.observed,
                p.window.num_minutes(),
                start.format("%Y-%m-%d %H:%M"),
            ),
            channel,
            topic_id,
            conversation_id: None,
            details: evidence(v, p, start, end, now),
            dedupe_key: format!("{kind}:{}:{}", scope.key(), start.timestamp()),
            raised_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            scope: Some(scope.key()),
            window_start: Some(start),
            window_end: Some(end),
            backfill,
        };
        let txn = db::begin_write(conn).await?;
        let inserted = alert::Entity::insert(sea_orm::IntoActiveModel::into_active_model(row.clone()))
            .on_conflict(OnConflict::column(alert::Column::DedupeKey).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            // Another run raised it first: its alert is the episode the windows after
            // this one extend.
            txn.rollback().await?;
            let key = alert::Column::DedupeKey.eq(row.dedupe_key.clone());
            return Ok(alert::Entity::find().filter(key).one(conn).await?);
        }
        report.raised += 1;
        report.opportunities += u32::from(kind == OPPORTUNITY);
        report.backfilled += u32::from(backfill);
        if !backfill || p.page_backfill {
            self.page(&txn, &row, scope, report).await?;
        }
        txn.commit().await?;
        Ok(Some(row))
    }

    /// Pages an episode: `alert.raised` (subscribers, webhooks) and, when set, the
    /// lift of the scope's open conversations.
    async fn page(
        &self,
        txn: &impl ConnectionTrait,
        episode: &alert::Model,
        scope: &Scope,
        report: &mut Report,
    ) -> AppResult<()> {
        let since = episode.window_start.unwrap_or(episode.raised_at);
        // A competitor's crisis is not ours: none of our conversations is lifted.
        let ours = episode.kind == KIND;
        let lifted = if self.params.raise_priority && ours { lift(txn, scope, since).await? } else { 0 };
        report.lifted += lifted;
        let payload = json!({ "kind": episode.kind, "scope": scope.key(), "count": episode.details["count"],
            "lifted": lifted, "windowStart": episode.window_start, "windowEnd": episode.window_end,
            "backfill": episode.backfill });
        let event = NewEvent {
            event_type: "alert.raised",
            aggregate_type: "alert",
            aggregate_id: episode.id,
            customer_id: None,
            channel: episode.channel,
            payload,
        };
        events::emit(txn, event).await?;
        Ok(())
    }

    /// An episode goes on: its span covers the window `[start, end)`, its peak is kept,
    /// and a backfilled episode that reaches the present (an incident still going on
    /// when its late mentions arrived) becomes live and pages.
    async fn extend<C: ConnectionTrait + TransactionTrait>(
        &self,
        conn: &C,
        episode: &mut alert::Model,
        scope: &Scope,
        spike: &Spike<'_>,
        report: &mut Report,
    ) -> AppResult<()> {
        let (start, end, now, v) = (spike.start, spike.end, spike.now, spike.verdict);
        let new_start = episode.window_start.map_or(start, |s| s.min(start));
        let new_end = episode.window_end.map_or(end, |e| e.max(end));
        let peak = episode.details["peak"].as_u64().unwrap_or(0).max(u64::from(v.observed));
        let goes_live = episode.backfill && now - end <= self.params.backfill_after;
        let unchanged = Some(new_start) == episode.window_start
            && Some(new_end) == episode.window_end
            && Some(peak) == episode.details["peak"].as_u64();
        if unchanged && !goes_live {
            return Ok(());
        }
        episode.window_start = Some(new_start);
        episode.window_end = Some(new_end);
        episode.details["peak"] = json!(peak);
        let txn = db::begin_write(conn).await?;
        let mut update = alert::Entity::update_many()
            .col_expr(alert::Column::WindowStart, sea_orm::sea_query::Expr::value(new_start))
            .col_expr(alert::Column::WindowEnd, sea_orm::sea_query::Expr::value(new_end))
            .col_expr(alert::Column::Details, sea_orm::sea_query::Expr::value(episode.details.clone()));
        if goes_live {
            update = update.col_expr(alert::Column::Backfill, sea_orm::sea_query::Expr::value(false));
        }
        let changed = update.filter(alert::Column::Id.eq(episode.id)).exec(&txn).await?.rows_affected;
        if goes_live && changed == 1 {
            episode.backfill = false;
            if !self.params.page_backfill {
                self.page(&txn, episode, scope, report).await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }
}

/// What an alert says of its window: observed, expected and its usual range, the
/// alarm line, how unlikely, and the settings it was judged with.
fn evidence(
    v: &Verdict,
    p: &Params,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let (low, high) = v.expected.interval(0.9);
    json!({
        "count": v.observed,
        "peak": v.observed,
        "expected": (v.expected.mean * 100.0).round() / 100.0,
        "usualLow": low,
        "usualHigh": high,
        "alarmAt": v.expected.line(p.significance),
        "pValue": v.p,
        "dispersion": (v.expected.dispersion * 1000.0).round() / 1000.0,
        "model": v.expected.model.name(),
        "level": (v.level * 100.0).round() / 100.0,
        "historyDays": v.expected.days,
        "windowStart": start,
        "windowEnd": end,
        "lagSeconds": (now - end).num_seconds().max(0),
        "windowMinutes": p.window.num_minutes(),
        "significance": p.significance,
    })
}

/// Resolves an open episode judged calm in the window starting at `start`, if that
/// window lies wholly after the episode; true when it did.
async fn settle<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    episode: &mut alert::Model,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    page_backfill: bool,
) -> AppResult<bool> {
    let after = episode.window_end.is_none_or(|e| start >= e);
    if !after || !resolve(conn, episode, now, page_backfill).await? {
        return Ok(false);
    }
    episode.status = AlertStatus::Resolved;
    Ok(true)
}

async fn read_cursor(txn: &impl ConnectionTrait) -> AppResult<Option<DateTime<Utc>>> {
    let mut sql = Sql::new();
    sql.push("SELECT position FROM detector_cursors WHERE name = ").bind(CURSOR);
    let row = txn.query_one_raw(sql.statement(txn.get_database_backend())).await?;
    Ok(row.map(|r| r.try_get::<DateTime<Utc>>("", "position")).transpose()?)
}

async fn write_cursor(txn: &impl ConnectionTrait, at: DateTime<Utc>) -> AppResult<()> {
    let mut sql = Sql::new();
    sql.push("INSERT INTO detector_cursors (name, position) VALUES (").bind(CURSOR).push(", ").bind(at);
    sql.push(") ON CONFLICT (name) DO UPDATE SET position = excluded.position");
    txn.execute_raw(sql.statement(txn.get_database_backend())).await?;
    Ok(())
}

/// The topics and brands as the detector's counts depend on them: a fingerprint of
/// what decides which scope a fact counts for (ids, sides, keywords, handles, pending
/// re-taggings; not names or clocks, so a rename costs no re-read and replicas' clocks
/// do not matter), and the topics whose re-tagging is pending, with when it was asked.
async fn topic_state(db: &impl ConnectionTrait) -> AppResult<(String, HashMap<Uuid, DateTime<Utc>>)> {
    use std::hash::{Hash, Hasher};
    let mut topics = entity::topic::Entity::find().all(db).await?;
    topics.sort_by_key(|t| t.id);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut pending = HashMap::new();
    for t in &topics {
        let retagging = crate::feedback::topics::retag_pending_for(t);
        (t.id, &t.brand, t.keywords.to_string(), t.handles.as_ref().map(ToString::to_string), retagging)
            .hash(&mut hasher);
        if retagging && let Some(asked) = t.retag_requested_at {
            pending.insert(t.id, asked);
        }
    }
    Ok((format!("{}:{:x}", topics.len(), hasher.finish()), pending))
}

/// Lifts the scope's open conversations to HIGH priority (each with a
/// `conversation.updated` event); for a topic, those with a message about it since the
/// episode began.
async fn lift(txn: &impl ConnectionTrait, scope: &Scope, since: DateTime<Utc>) -> AppResult<u64> {
    use entity::conversation;
    let mut q = conversation::Entity::find()
        .select_only()
        .columns([conversation::Column::Id, conversation::Column::CustomerId, conversation::Column::Channel])
        .filter(conversation::Column::Status.is_in([ConversationStatus::Open, ConversationStatus::Pending]))
        .filter(conversation::Column::Priority.is_in([Priority::Low, Priority::Normal]))
        .limit(MAX_LIFTED);
    q = match scope {
        Scope::Channel(c) => q.filter(conversation::Column::Channel.eq(*c)),
        Scope::Inbox(i) => q.filter(conversation::Column::Inbox.eq(i.clone())),
        Scope::Topic(t) | Scope::Brand(t) => {
            let mut about = Sql::new();
            about.push(
                "SELECT DISTINCT i.conversation_id FROM interactions i JOIN interaction_topics it ON it.interaction_id = i.id \
                 WHERE i.conversation_id IS NOT NULL AND it.topic_id = ",
            );
            about.bind(*t).push(" AND i.occurred_at >= ").bind(since).push(&format!(" LIMIT {MAX_LIFTED}"));
            let mut ids = Vec::new();
            for row in txn.query_all_raw(about.statement(txn.get_database_backend())).await? {
                ids.push(row.try_get::<Uuid>("", "conversation_id")?);
            }
            q.filter(conversation::Column::Id.is_in(ids))
        }
    };
    let rows: Vec<(Uuid, Uuid, Channel)> = q.into_tuple().all(txn).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    conversation::Entity::update_many()
        .col_expr(conversation::Column::Priority, sea_orm::sea_query::Expr::value(Priority::High.to_value()))
        .col_expr(conversation::Column::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(conversation::Column::Id.is_in(rows.iter().map(|r| r.0)))
        .exec(txn)
        .await?;
    for (id, customer_id, channel) in &rows {
        events::emit(txn, crate::interactions::conversations::updated_event(*id, *customer_id, *channel)).await?;
    }
    Ok(rows.len() as u64)
}

/// Closes an episode; true when this call closed it. A backfilled episode closes as
/// quietly as it was raised (unless backfills page).
async fn resolve<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    episode: &alert::Model,
    now: DateTime<Utc>,
    page_backfill: bool,
) -> AppResult<bool> {
    let txn = db::begin_write(conn).await?;
    let done = alert::Entity::update_many()
        .col_expr(alert::Column::Status, sea_orm::sea_query::Expr::value(AlertStatus::Resolved.to_value()))
        .col_expr(alert::Column::ResolvedAt, sea_orm::sea_query::Expr::value(now))
        .filter(alert::Column::Id.eq(episode.id))
        .filter(alert::Column::Status.ne(AlertStatus::Resolved))
        .exec(&txn)
        .await?;
    if done.rows_affected == 1 && (!episode.backfill || page_backfill) {
        let event = NewEvent {
            event_type: "alert.resolved",
            aggregate_type: "alert",
            aggregate_id: episode.id,
            customer_id: None,
            channel: episode.channel,
            payload: json!({ "kind": episode.kind, "by": "detector" }),
        };
        events::emit(&txn, event).await?;
    }
    txn.commit().await?;
    Ok(done.rows_affected == 1)
}

/// Runs the detector every `interval` in the background, the first time one interval
/// after start (a server starting has nothing new to judge yet), waking subscribers
/// when it raised or resolved something.
pub fn spawn_detector(
    db: DatabaseConnection,
    bus: Bus,
    interval: std::time::Duration,
    params: Params,
) -> tokio::task::JoinHandle<()> {
    let detector = std::sync::Arc::new(tokio::sync::Mutex::new(Detector::new(params)));
    let mut started = false;
    crate::jobs::every(interval, move || {
        let (db, bus, detector) = (db.clone(), bus.clone(), detector.clone());
        let first = !std::mem::replace(&mut started, true);
        async move {
            if first {
                return;
            }
            let mut detector = detector.lock().await;
            match detector.run(&db, Utc::now()).await {
                Ok(r) if r.raised == 0 && r.resolved == 0 => {}
                Ok(r) => {
                    bus.wake();
                    crate::metrics::get().alerts_raised(KIND, u64::from(r.raised - r.opportunities));
                    crate::metrics::get().alerts_raised(OPPORTUNITY, u64::from(r.opportunities));
                    tracing::info!(
                        raised = r.raised,
                        resolved = r.resolved,
                        backfilled = r.backfilled,
                        lifted = r.lifted,
                        "spike detector"
                    );
                }
                Err(e) => tracing::warn!(error = e.message(), "spike detection failed; retrying next interval"),
            }
        }
    })
}
