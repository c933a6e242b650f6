//! The early-warning evaluation: labelled synthetic episodes, written as the facts
//! ingest writes and judged by the real detector on a real database, run by run as
//! time passes, scored for recall, time to detect and false alarms.
//!
//! Each seed is a world of six weeks on eleven channels (each channel one series, so
//! they are independent): quiet series with a daily and weekly rhythm at several
//! volumes, series with bursts of several sizes and lengths, a slow three-day ramp, a
//! two-day gap in the data, and bursts that arrive late (a connector catching up). The
//! first two weeks are history loaded at once (a backfill); from then on mentions
//! arrive as they happen and the detector runs every `--cadence-minutes` of simulated
//! time. Scoring covers weeks 3–6.
//!
//! `cargo run --release -p cxgraph-tests --bin cxgraph-spike-eval -- --seeds 1,2,3`
//! (tuning) and `--seeds 101,102,103` (held out): the README's table.

use chrono::{DateTime, Duration, Utc};
use cxgraph::alerts::spikes::{self, Params};
use cxgraph_tests::streams::{self, Mention, Rhythm, Streams};
use cxgraph_tests::{Backend, TestApp};
use entity::alert;
use entity::enums::Channel;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// What a series is, for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Quiet,
    Bursts,
    Ramp,
    Gap,
    Late,
    /// A competitor's brand on a shared channel, with incidents of its own.
    Competitor,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Quiet => "quiet, daily and weekly rhythm",
            Kind::Bursts => "bursts on a rhythm",
            Kind::Ramp => "slow three-day ramp (×3)",
            Kind::Gap => "two-day gap in the data",
            Kind::Late => "bursts arriving 1–3 h late",
            Kind::Competitor => "a competitor's incidents (opportunity alerts)",
        }
    }
}

/// A labelled burst: `extra` mentions over `minutes` from `start`.
#[derive(Debug, Clone, Copy)]
struct Burst {
    channel: Channel,
    start: DateTime<Utc>,
    extra: u32,
    minutes: i64,
    /// About the competitor (an opportunity), not about us.
    competitor: bool,
}

/// One series of a world.
struct Series {
    channel: Channel,
    kind: Kind,
    per_hour: f64,
}

const WEEKS: i64 = 6;
const HISTORY_DAYS: i64 = 14;

fn world() -> Vec<Series> {
    use Channel::*;
    let s = |channel, kind, per_hour| Series { channel, kind, per_hour };
    vec![
        s(Phone, Kind::Quiet, 0.3),
        s(Email, Kind::Quiet, 1.0),
        s(Chat, Kind::Quiet, 3.0),
        s(Sms, Kind::Quiet, 8.0),
        s(Whatsapp, Kind::Bursts, 0.5),
        s(Twitter, Kind::Bursts, 2.0),
        s(Facebook, Kind::Bursts, 5.0),
        s(Instagram, Kind::Ramp, 2.0),
        s(Review, Kind::Gap, 2.0),
        s(InPerson, Kind::Late, 1.0),
        s(Web, Kind::Late, 3.0),
        // On the same channel as one of our bursty series: its incidents must raise
        // opportunities, and no crisis on Twitter.
        s(Twitter, Kind::Competitor, 1.0),
    ]
}

/// What a world wrote and when, and the bursts it holds.
struct Plan {
    /// `(arrives, mention)`: live mentions arrive when they happen, late ones later.
    mentions: Vec<(DateTime<Utc>, Mention)>,
    bursts: Vec<Burst>,
    /// Where scoring starts.
    scored: DateTime<Utc>,
    /// The competitor's brand (a topic with a side).
    competitor: uuid::Uuid,
}

fn plan(seed: u64, start: DateTime<Utc>) -> Plan {
    let mut streams = Streams::new(seed);
    let end = start + Duration::weeks(WEEKS);
    let scored = start + Duration::days(HISTORY_DAYS);
    let (mut mentions, mut bursts) = (Vec::new(), Vec::new());
    let competitor = uuid::Uuid::from_u128(0xC0_4E_7E_u128 << 64 | u128::from(seed));
    for series in world() {
        let about = (series.kind == Kind::Competitor).then_some(competitor);
        let mention = |at| Mention { topic: about, ..Mention::on(series.channel, at) };
        let rhythm = Rhythm { per_hour: series.per_hour, evening: 3.0, weekend: 0.6, clumping: 0.3 };
        let ramp_start = scored + Duration::days(7);
        let gap = (scored + Duration::days(5), scored + Duration::days(7));
        let scale = move |t: DateTime<Utc>| match series.kind {
            Kind::Ramp if t > ramp_start => 1.0 + 2.0 * ((t - ramp_start).num_minutes() as f64 / 4320.0).min(1.0),
            Kind::Gap if t >= gap.0 && t < gap.1 => 0.0,
            _ => 1.0,
        };
        for at in streams.quiet(&rhythm, start, end, scale) {
            mentions.push((at, mention(at)));
        }
        if matches!(series.kind, Kind::Bursts | Kind::Late | Kind::Competitor) {
            // Three bursts a week in the scored weeks, of 20 to 60 extra mentions over
            // 15 to 60 minutes, at any hour (the evening peak included).
            for week in 0..WEEKS - 2 {
                for (n, (extra, minutes)) in [(20, 60), (30, 30), (60, 45), (20, 15), (25, 30)].into_iter().enumerate()
                {
                    if (n as i64 + week + seed as i64) % 5 >= 3 {
                        continue;
                    }
                    let day = scored + Duration::weeks(week) + Duration::days(n as i64 + 1);
                    // The competitor's incidents half a day from ours.
                    let shift = if series.kind == Kind::Competitor { 12 } else { 0 };
                    let hour = (seed as i64 * 7 + week * 5 + n as i64 * 11 + shift) % 24;
                    let burst_start = day + Duration::hours(hour) + Duration::minutes((seed as i64 * 13) % 60);
                    let delay = if series.kind == Kind::Late {
                        Duration::minutes(60 + (seed as i64 * 37 + n as i64 * 53) % 120)
                    } else {
                        Duration::zero()
                    };
                    for at in streams.burst(burst_start, extra, minutes) {
                        mentions.push((at + delay, mention(at)));
                    }
                    let competitor = about.is_some();
                    bursts.push(Burst { channel: series.channel, start: burst_start, extra, minutes, competitor });
                }
            }
        }
    }
    mentions.sort_by_key(|(arrives, _)| *arrives);
    Plan { mentions, bursts, scored, competitor }
}

/// One world's alerts, after running it.
async fn run(seed: u64, params: &Params, cadence: Duration, backend: &Backend) -> (Plan, Vec<alert::Model>, f64) {
    let start: DateTime<Utc> = "2026-01-05T00:00:00Z".parse().expect("a time");
    let plan = plan(seed, start);
    let app = TestApp::spawn_with(backend, |s| s.insights_job_interval = 3600).await;
    let db = &app.db;
    let customer = cxgraph_tests::insert_customer(db, None).await;
    let now = Utc::now();
    let brand = entity::topic::Model {
        id: plan.competitor,
        name: "Zed Parcels".into(),
        keywords: serde_json::json!(["zed parcels"]),
        created_at: now,
        updated_at: now,
        retag_requested_at: None,
        retagged_at: None,
        brand: Some("competitor".into()),
        handles: None,
    };
    sea_orm::ActiveModelTrait::insert(sea_orm::IntoActiveModel::into_active_model(brand), db).await.expect("the brand");
    let scored = start + Duration::days(HISTORY_DAYS);
    let (history, live): (Vec<_>, Vec<_>) = plan.mentions.iter().partition(|(arrives, _)| *arrives < scored);
    streams::write(db, customer, &history.into_iter().map(|(_, m)| m.clone()).collect::<Vec<_>>()).await;
    let mut detector = spikes::Detector::new(*params);
    let clock = std::time::Instant::now();
    detector.run(db, scored).await.expect("the backfill judged");
    let mut next = 0;
    let mut now = scored;
    let end = start + Duration::weeks(WEEKS);
    let mut runs = 0u32;
    while now < end {
        now += cadence;
        let arrived: Vec<Mention> = live[next..].iter().take_while(|(a, _)| *a < now).map(|(_, m)| m.clone()).collect();
        next += arrived.len();
        streams::write(db, customer, &arrived).await;
        detector.run(db, now).await.expect("a detector run");
        runs += 1;
    }
    let per_run = clock.elapsed().as_secs_f64() * 1000.0 / f64::from(runs.max(1));
    if std::env::var("SPIKE_EVAL_VERBOSE").is_ok() {
        use sea_orm::ConnectionTrait;
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT strftime('%H', occurred_at) AS h, COUNT(*) AS n, MIN(occurred_at) AS sample FROM interactions \
                 WHERE channel = 'sms' GROUP BY 1 ORDER BY 1",
            ))
            .await
            .expect("hours");
        for r in rows {
            let (h, n, sample): (Option<String>, i64, String) =
                (r.try_get("", "h").ok(), r.try_get("", "n").unwrap_or(0), r.try_get("", "sample").unwrap_or_default());
            eprintln!("sms hour {h:?}: {:.2} a day ({sample})", n as f64 / (WEEKS * 7) as f64);
        }
    }
    let kinds = [spikes::KIND, spikes::OPPORTUNITY];
    let alerts = alert::Entity::find().filter(alert::Column::Kind.is_in(kinds)).all(db).await.expect("alerts");
    app.stop().await;
    (plan, alerts, per_run)
}

#[derive(Default)]
struct Score {
    series: u32,
    bursts: u32,
    caught: u32,
    in_one_window: u32,
    detect_minutes: Vec<i64>,
    false_alarms: u32,
    /// Bursts caught, but found so late they were recorded as backfill (not paged).
    caught_as_backfill: u32,
    /// For the competitor: crisis alerts (ours) during its incidents that none of our
    /// own bursts explains.
    false_crises: u32,
}

/// A row of the table: a kind of series at one volume (negatives an hour by day).
type Row = (Kind, String);

fn row(series: &Series) -> Row {
    (series.kind, format!("{}", series.per_hour))
}

fn score(plan: &Plan, alerts: &[alert::Model], params: &Params, scores: &mut [(Row, Score)]) {
    // Weeks 3–6: the first two weeks are the history everything is judged against.
    let from = plan.scored;
    let scored = alerts.iter().filter(|a| a.window_start.is_some_and(|w| w >= from));
    for series in world() {
        let competitor = series.kind == Kind::Competitor;
        let (key, kind) = if competitor {
            (format!("brand:{}", plan.competitor), spikes::OPPORTUNITY)
        } else {
            (format!("channel:{}", sea_orm::ActiveEnum::to_value(&series.channel)), spikes::KIND)
        };
        let Some((_, s)) = scores.iter_mut().find(|(k, _)| *k == row(&series)) else { continue };
        s.series += 1;
        let mine: Vec<&alert::Model> =
            scored.clone().filter(|a| a.scope.as_deref() == Some(&key) && a.kind == kind).collect();
        let bursts: Vec<&Burst> =
            plan.bursts.iter().filter(|b| b.channel == series.channel && b.competitor == competitor).collect();
        for b in &bursts {
            s.bursts += 1;
            let end = b.start + Duration::minutes(b.minutes);
            let hit = mine
                .iter()
                .filter(|a| a.window_start.is_some_and(|w| w < end) && a.window_end.is_some_and(|w| w > b.start))
                .min_by_key(|a| a.raised_at);
            if hit.is_none() && std::env::var("SPIKE_EVAL_VERBOSE").is_ok() {
                eprintln!("missed: {key} at {} ({} min, {} extra)", b.start, b.minutes, b.extra);
            }
            if let Some(a) = hit {
                s.caught += 1;
                s.caught_as_backfill += u32::from(a.backfill);
                let minutes = (a.raised_at - b.start).num_minutes();
                s.detect_minutes.push(minutes);
                if a.raised_at <= b.start + params.window.max(Duration::minutes(b.minutes)) + params.step {
                    s.in_one_window += 1;
                }
            }
        }
        if competitor {
            let overlaps = |a: &alert::Model, b: &Burst| {
                let end = b.start + Duration::minutes(b.minutes);
                a.window_start.is_some_and(|w| w < end) && a.window_end.is_some_and(|w| w > b.start)
            };
            s.false_crises += scored
                .clone()
                .filter(|a| a.kind == spikes::KIND)
                .filter(|a| bursts.iter().any(|b| overlaps(a, b)))
                .filter(|a| !plan.bursts.iter().any(|b| !b.competitor && overlaps(a, b)))
                .count() as u32;
        }
        for a in &mine {
            let explained = bursts.iter().any(|b| {
                let end = b.start + Duration::minutes(b.minutes);
                a.window_start.is_some_and(|w| w < end) && a.window_end.is_some_and(|w| w > b.start)
            });
            if !explained {
                s.false_alarms += 1;
                if std::env::var("SPIKE_EVAL_VERBOSE").is_ok() {
                    eprintln!("false alarm: {key} {:?}–{:?} {}", a.window_start, a.window_end, a.details);
                }
            }
        }
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seeds: Vec<u64> =
        arg("--seeds").unwrap_or_else(|| "1".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let cadence = Duration::minutes(arg("--cadence-minutes").and_then(|s| s.parse().ok()).unwrap_or(5));
    let backend = match std::env::var(cxgraph_tests::POSTGRES_ENV) {
        Ok(url) if arg("--postgres").is_some() || std::env::args().any(|a| a == "--postgres") => Backend::Postgres(url),
        _ => Backend::Sqlite,
    };
    // Writes and runs take turns in this one task: no write commits behind a run.
    let mut params = Params { margin: Duration::zero(), ..Params::standard() };
    if let Some(p) = arg("--significance").and_then(|s| s.parse().ok()) {
        params.significance = p;
    }
    if let Some(n) = arg("--min-count").and_then(|s| s.parse().ok()) {
        params.min_count = n;
    }
    if let Some(d) = arg("--min-dispersion").and_then(|s| s.parse().ok()) {
        params.min_dispersion = d;
    }
    let mut scores: Vec<(Row, Score)> = world().iter().map(|s| (row(s), Score::default())).collect();
    let mut per_run = Vec::new();
    for seed in &seeds {
        let (plan, alerts, ms) = run(*seed, &params, cadence, &backend).await;
        per_run.push(ms);
        score(&plan, &alerts, &params, &mut scores);
        eprintln!("seed {seed}: {} alerts, {ms:.1} ms a run", alerts.len());
    }
    let weeks = WEEKS - HISTORY_DAYS / 7;
    println!(
        "Seeds {seeds:?}, {} backend, detector every {} min of simulated time; settings: step {} min, window {} min, \
         history {} d (min {} d), significance {}, min count {}, min dispersion {}.\n",
        backend.name(),
        cadence.num_minutes(),
        params.step.num_minutes(),
        params.window.num_minutes(),
        params.history_days,
        params.min_history_days,
        params.significance,
        params.min_count,
        params.min_dispersion
    );
    println!(
        "| series | negatives an hour by day | channel-weeks | bursts | caught | of them as backfill (not paged) | within one window | time to detect (median / max, min) | false alarms | per channel-month |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for ((kind, volume), s) in &mut scores {
        let channel_weeks = i64::from(s.series) * weeks;
        s.detect_minutes.sort_unstable();
        let median = s.detect_minutes.get(s.detect_minutes.len() / 2).map_or("–".into(), |m| m.to_string());
        let max = s.detect_minutes.last().map_or("–".into(), |m| m.to_string());
        let per_month = f64::from(s.false_alarms) / (channel_weeks as f64 / (30.0 / 7.0));
        println!(
            "| {} | {volume} | {channel_weeks} | {} | {} | {} | {} | {median} / {max} | {} | {per_month:.2} |",
            kind.name(),
            s.bursts,
            s.caught,
            s.caught_as_backfill,
            s.in_one_window,
            s.false_alarms
        );
    }
    let false_crises: u32 = scores.iter().map(|(_, s)| s.false_crises).sum();
    println!(
        "\nCrisis alerts (ours) raised during the competitor's incidents, explained by none of ours: {false_crises}."
    );
    let mean = per_run.iter().sum::<f64>() / per_run.len().max(1) as f64;
    println!("\nDetector run, mean over the simulated weeks: {mean:.1} ms.");
}
