//! `cxgraph-bench`: the benchmark runner. Seeds (once) a PostgreSQL database at the
//! chosen scale, starts the release server as its own process, drives each workload
//! with concurrent clients on loopback (warm-up, then three timed runs), replays the
//! same SQL without the API as the floor, drives PostGraphile on the same database
//! as the peer, and writes `BENCHMARKS.md`. `--smoke` runs it all on a tiny dataset
//! in seconds, so CI keeps the runner from rotting. README: "Benchmarks".

mod floor;
mod load;
mod peer;
mod report;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::load::{Job, Maker, Pace, Run, http_job, http_sender};
use crate::report::{Measure, Report, Row};
use crate::workloads::Dataset;
use cxgraph_tests::process::{self as server, Server};

#[derive(Debug, Parser)]
#[command(about = "Measures cxgraph against raw SQL and PostGraphile on one PostgreSQL database")]
struct Args {
    /// PostgreSQL server (any database; the benchmark creates and keeps its own).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Database the dataset lives in (re-used while its size matches).
    #[arg(long, default_value = "cxbench")]
    database: String,
    #[arg(long, default_value_t = 100_000)]
    customers: u32,
    #[arg(long, default_value_t = 2_000_000)]
    interactions: u64,
    #[arg(long, default_value_t = 500_000)]
    feedback: u64,
    #[arg(long, default_value_t = 1_000_000)]
    touchpoints: u64,
    /// Seconds of each timed run.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Timed runs per workload (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Concurrent clients for the request/response workloads.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Concurrent clients sending ingest batches.
    #[arg(long, default_value_t = 4)]
    ingest_clients: usize,
    /// The server binary (default: build `cxgraph` with this runner's profile and use it).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where to write the results.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Drop and seed the dataset again even when its size matches.
    #[arg(long)]
    reseed: bool,
    /// Skip PostGraphile (it needs npm and the registry).
    #[arg(long)]
    no_peer: bool,
    /// Write `EXPLAIN ANALYZE` of one sampled request's statements per read workload
    /// to this file.
    #[arg(long)]
    explain: Option<PathBuf>,
    /// Run only the workloads whose names contain one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A tiny dataset and one-second runs: checks that every part works.
    #[arg(long)]
    smoke: bool,
}

impl Args {
    fn apply_smoke(&mut self) {
        if self.smoke {
            self.database = "cxbench_smoke".into();
            self.customers = 300;
            self.interactions = 3_000;
            self.feedback = 600;
            self.touchpoints = 1_200;
            self.duration = 1;
            self.warmup = 0;
            self.repeats = 1;
            self.clients = 4;
        }
    }
}

/// Logs in as the benchmark's admin; answers the access token.
pub async fn login(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let query = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) \
                 { session { accessToken } userErrors { message } } }";
    let body: serde_json::Value = client
        .post(format!("{base}/graphql"))
        .json(&serde_json::json!({ "query": query, "variables": { "e": server::ADMIN_EMAIL, "p": server::ADMIN_PASSWORD } }))
        .send()
        .await?
        .json()
        .await?;
    body["data"]["login"]["session"]["accessToken"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("log-in failed: {body}"))
}

/// Where the server's log lines go (appended): `$TMPDIR/cxgraph-bench-server.log`.
pub fn server_log() -> PathBuf {
    std::env::temp_dir().join("cxgraph-bench-server.log")
}

fn with_database(url: &str, database: &str) -> String {
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => format!("{url}/{database}"),
    }
}

/// The server binary: `--server-bin`, or `cxgraph` built with this runner's profile.
fn server_bin(args: &Args) -> anyhow::Result<PathBuf> {
    match &args.server_bin {
        Some(bin) if !bin.exists() => bail!("no server binary at {}", bin.display()),
        Some(bin) => Ok(bin.clone()),
        None => {
            eprintln!("building the server …");
            server::server_binary()
        }
    }
}

/// Seeds the benchmark database unless it already holds a dataset of this size;
/// answers how long seeding took (None when it was re-used).
async fn prepare(args: &Args, bin: &std::path::Path, url: &str) -> anyhow::Result<Option<Duration>> {
    let admin = Database::connect(&args.postgres).await.context("connecting to PostgreSQL")?;
    let exists = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{}'", args.database.replace('\'', "")),
        ))
        .await?
        .is_some();
    if exists && !args.reseed {
        let db = Database::connect(url).await?;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT (SELECT count(*) FROM customers) AS c, (SELECT count(*) FROM users) AS u",
            ))
            .await
            .ok()
            .flatten();
        let customers: i64 = row.as_ref().and_then(|r| r.try_get("", "c").ok()).unwrap_or(-1);
        let users: i64 = row.as_ref().and_then(|r| r.try_get("", "u").ok()).unwrap_or(0);
        db.close().await?;
        if customers == i64::from(args.customers) && users > 0 {
            eprintln!("re-using database {} ({customers} customers)", args.database);
            return Ok(None);
        }
    }
    let quoted = format!("\"{}\"", args.database.replace('"', ""));
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {quoted}")).await?;
    admin.close().await?;
    eprintln!(
        "seeding {} customers, {} interactions, {} feedback, {} touchpoints…",
        args.customers, args.interactions, args.feedback, args.touchpoints
    );
    let started = Instant::now();
    server::command(bin, url, &["migrate", "up"])?;
    let (c, i, f, t) = (
        args.customers.to_string(),
        args.interactions.to_string(),
        args.feedback.to_string(),
        args.touchpoints.to_string(),
    );
    let out = server::command(
        bin,
        url,
        &["seed", "--customers", &c, "--interactions", &i, "--feedback", &f, "--touchpoints", &t],
    )?;
    let took = started.elapsed();
    eprintln!("{} in {:.0} s", out.trim(), took.as_secs_f64());
    Ok(Some(took))
}

/// What the workloads draw on.
async fn dataset(url: &str) -> anyhow::Result<Dataset> {
    let db = Database::connect(url).await?;
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id::text AS id FROM customers WHERE merged_into_id IS NULL ORDER BY md5(id::text) LIMIT 20000",
        ))
        .await?;
    let customers = rows.iter().filter_map(|r| r.try_get::<String>("", "id").ok()).collect::<Vec<_>>();
    let journey = db
        .query_one_raw(Statement::from_string(backend, "SELECT id::text AS id FROM journeys WHERE name = 'Purchase'"))
        .await?
        .and_then(|r| r.try_get::<String>("", "id").ok())
        .context("the dataset has no Purchase journey")?;
    let export = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT min(occurred_at) AS t, count(*) AS n FROM \
             (SELECT occurred_at FROM feedback ORDER BY occurred_at DESC LIMIT 100000) AS newest",
        ))
        .await?
        .context("no feedback")?;
    db.close().await?;
    if customers.is_empty() {
        bail!("the dataset has no customers");
    }
    Ok(Dataset {
        customers,
        purchase_journey: journey,
        now: chrono::Utc::now(),
        export_from: export.try_get("", "t")?,
        export_rows: u64::try_from(export.try_get::<i64>("", "n")?).unwrap_or(0),
    })
}

/// Warm-up, then `repeats` timed runs; answers the median run by throughput and the
/// server's CPU and peak memory over the timed runs.
async fn measure(args: &Args, job: &Job, clients: usize, pace: Pace, pid: Option<u32>) -> Measure {
    if args.warmup > 0 {
        load::run(job, clients, Duration::from_secs(args.warmup), pace, 1).await;
    }
    if let Some(pid) = pid {
        server::reset_peak(pid);
    }
    let before = pid.map(server::usage);
    let mut runs: Vec<Run> = Vec::new();
    for repeat in 0..args.repeats.max(1) {
        runs.push(load::run(job, clients, Duration::from_secs(args.duration), pace, 2 + repeat as u64).await);
    }
    let after = pid.map(server::usage);
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    let first_error = runs.iter().find_map(|r| r.first_error.clone());
    let throughputs: Vec<f64> = runs.iter().map(Run::throughput).collect();
    runs.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
    let median = runs.swap_remove(runs.len() / 2);
    let cpu_per_request = match (before, after) {
        (Some(b), Some(a)) if requests > 0 => {
            Some((a.cpu.saturating_sub(b.cpu)).as_secs_f64() * 1000.0 / requests as f64)
        }
        _ => None,
    };
    if let Some(e) = &first_error {
        eprintln!("  ! {errors} failed; first: {e}");
    }
    Measure {
        throughput: median.throughput(),
        units_per_second: median.units_per_second(),
        throughputs,
        p50: median.quantile_ms(0.50),
        p95: median.quantile_ms(0.95),
        p99: median.quantile_ms(0.99),
        errors,
        first_error,
        cpu_ms_per_request: cpu_per_request,
        peak_rss_mib: after.map(|a| a.peak_rss_kib as f64 / 1024.0),
        rss_growth_mib: before.zip(after).map(|(b, a)| a.peak_rss_kib.saturating_sub(b.peak_rss_kib) as f64 / 1024.0),
    }
}

struct Workload {
    name: &'static str,
    make: Maker,
    clients: usize,
    /// A fixed request rate at which latency is also measured (the design's bars).
    rate: Option<f64>,
    /// Replayed as raw SQL (reads only).
    floor: bool,
    /// The PostGraphile query maker, for what it can express.
    peer: Option<Maker>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.apply_smoke();
    let bin = server_bin(&args)?;
    let url = with_database(&args.postgres, &args.database);
    let seed_time = prepare(&args, &bin, &url).await?;

    // Cold start: three fresh starts against the seeded database; the median counts.
    let mut starts = Vec::new();
    for _ in 0..3 {
        let s = Server::start(&bin, &url, &server_log()).await?;
        starts.push(s.cold_start);
    }
    starts.sort();
    let server = Server::start(&bin, &url, &server_log()).await?;
    let idle = server::usage(server.pid());
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).tcp_nodelay(true).build()?;
    let token = login(&client, &server.base).await?;
    let data = Arc::new(dataset(&url).await?);
    let send = http_sender(client.clone(), server.base.clone(), Some(token));

    let peer = if args.no_peer {
        None
    } else {
        peer::Peer::start(&url).await.map_err(|e| eprintln!("PostGraphile not run: {e:#}")).ok()
    };

    let c = args.clients;
    let scale = if args.smoke { 0.01 } else { 1.0 };
    let workloads = vec![
        Workload {
            name: "customer by id (few fields)",
            make: workloads::customer_by_id(&data),
            clients: c,
            rate: None,
            floor: true,
            peer: Some(peer::customer_by_id(&data)),
        },
        Workload {
            name: "customer 360",
            make: workloads::customer_360(&data),
            clients: c,
            rate: Some(2500.0 * scale),
            floor: true,
            peer: Some(peer::customer_360(&data)),
        },
        Workload {
            name: "agent queue (50 due first)",
            make: workloads::queue(),
            clients: c,
            rate: None,
            floor: true,
            peer: Some(peer::queue()),
        },
        Workload {
            name: "insights: NPS + CSAT by channel by week, 1 year",
            make: workloads::insights(&data),
            clients: 4,
            rate: Some(200.0 * scale),
            floor: true,
            peer: None,
        },
        Workload {
            name: "channel comparison, 1 quarter",
            make: workloads::channel_comparison(&data),
            clients: 4,
            rate: None,
            floor: true,
            peer: None,
        },
        Workload {
            name: "journey funnel, 1 quarter",
            make: workloads::funnel(&data),
            clients: 4,
            rate: None,
            floor: true,
            peer: None,
        },
        Workload {
            name: "batch ingest (100/batch, 10% repeats)",
            make: workloads::ingest(&data),
            clients: args.ingest_clients,
            rate: None,
            floor: false,
            peer: None,
        },
        Workload {
            name: "CSV export of feedback",
            make: workloads::export(&data),
            clients: 1,
            rate: None,
            floor: false,
            peer: None,
        },
        Workload {
            name: "mixed (80% reads, 20% writes)",
            make: workloads::mixed(&data),
            clients: c,
            rate: Some(1500.0 * scale),
            floor: false,
            peer: None,
        },
    ];

    let workloads: Vec<Workload> = workloads
        .into_iter()
        .filter(|w| args.only.is_empty() || args.only.iter().any(|o| w.name.contains(o.as_str())))
        .collect();
    let recorder = floor::Recorder::start(&url).await?;
    let raw_pool = floor::pool(&url).await?;
    let autovacuum = floor::autovacuum_on(&raw_pool).await;
    let mut rows = Vec::new();
    let mut explained = String::new();
    for w in workloads {
        eprintln!("{} …", w.name);
        if !autovacuum {
            floor::vacuum(&raw_pool).await?;
        }
        let job = http_job(send.clone(), w.make.clone());
        let api = measure(&args, &job, w.clients, Pace::Closed, Some(server.pid())).await;
        // Open-loop clients: enough of them that the schedule, not a client, waits.
        let at_rate = match w.rate {
            Some(rate) => Some((rate, measure(&args, &job, 64, Pace::Rate(rate), Some(server.pid())).await)),
            None => None,
        };
        let floor = if w.floor {
            let samples = recorder.capture(&w.make, if args.smoke { 5 } else { 200 }).await?;
            if let Some(first) = samples.first() {
                explained.push_str(&format!("## {}\n\n{}", w.name, floor::explain(&raw_pool, first).await));
            }
            let statements = samples.iter().map(Vec::len).sum::<usize>() as f64 / samples.len().max(1) as f64;
            Some((
                measure(&args, &floor::replay(raw_pool.clone(), samples), w.clients, Pace::Closed, None).await,
                statements,
            ))
        } else {
            None
        };
        let peer_measure = match (&peer, &w.peer) {
            (Some(p), Some(make)) => Some(
                measure(&args, &http_job(p.sender(&client), make.clone()), w.clients, Pace::Closed, Some(p.pid()))
                    .await,
            ),
            _ => None,
        };
        eprintln!(
            "  cxgraph {:.0}/s p99 {:.1} ms{}{}",
            api.throughput,
            api.p99,
            floor.as_ref().map_or(String::new(), |(f, _)| format!("; raw SQL {:.0}/s", f.throughput)),
            peer_measure
                .as_ref()
                .map_or(String::new(), |p| format!("; PostGraphile {:.0}/s p99 {:.1} ms", p.throughput, p.p99)),
        );
        rows.push(Row { name: w.name, clients: w.clients, api, at_rate, floor, peer: peer_measure });
    }
    drop(recorder);
    if let Some(path) = &args.explain {
        std::fs::write(path, &explained).with_context(|| format!("writing {}", path.display()))?;
    }
    let report = Report {
        args_line: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        server_bin: bin
            .iter()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<PathBuf>()
            .display()
            .to_string(),
        autovacuum,
        customers: args.customers,
        interactions: args.interactions,
        feedback: args.feedback,
        touchpoints: args.touchpoints,
        seed_time,
        export_rows: data.export_rows,
        cold_start_median: starts[starts.len() / 2],
        idle_rss_mib: idle.peak_rss_kib as f64 / 1024.0,
        duration: args.duration,
        warmup: args.warmup,
        repeats: args.repeats,
        peer_version: peer.as_ref().map(|p| p.version.clone()),
        rows,
    };
    let text = report.render();
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    println!("{text}");
    let failed: u64 = report.rows.iter().map(|r| r.api.errors).sum();
    if failed > 0 {
        bail!("{failed} requests to cxgraph failed (see the table)");
    }
    Ok(())
}
