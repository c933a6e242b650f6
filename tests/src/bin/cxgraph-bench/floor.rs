//! The raw-SQL floor: the very statements a request made the server send, with their
//! values, replayed straight to PostgreSQL by the same clients with no HTTP, no
//! GraphQL and no JSON. The statements are captured from an in-process server on the
//! same database (its `DbStats` keeps a copy while asked), one request at a time, for
//! a sample of each workload's requests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cxgraph::startup::Application;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::load::{Job, Maker, http_sender};
use cxgraph_tests::process::{ADMIN_EMAIL, ADMIN_PASSWORD};

/// An in-process server whose statements can be captured.
pub struct Recorder {
    state: cxgraph::state::AppState,
    send: crate::load::Sender,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Recorder {
    pub async fn start(database_url: &str) -> anyhow::Result<Recorder> {
        let mut settings = cxgraph_tests::test_settings(database_url);
        settings.admin_email = ADMIN_EMAIL.into();
        settings.admin_password = Some(ADMIN_PASSWORD.into());
        // It only records statements: its background jobs (sweeper, insights job,
        // rollup refresher) would run beside the measured server's and double their
        // load on every measurement. They run once at its start, then hourly.
        settings.sla_sweep_interval = 3600;
        settings.insights_job_interval = 3600;
        settings.rollup_interval = 3600;
        settings.retention_interval = 604_800;
        let (app, _) = Application::build(settings).await.context("starting the recording server")?;
        let state = app.state().clone();
        let base = format!("http://{}", app.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let token = crate::login(&client, &base).await?;
        let send = http_sender(client, base, Some(token));
        Ok(Recorder { state, send, stop: Some(stop) })
    }

    /// The statements of `samples` requests drawn from `make` (fewer when the
    /// requests are slow: sampling stops after ten seconds, with at least three).
    pub async fn capture(&self, make: &Maker, samples: usize) -> anyhow::Result<Vec<Vec<Statement>>> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut captured = Vec::new();
        let started = std::time::Instant::now();
        for n in 0..samples {
            if n >= 3 && started.elapsed() > Duration::from_secs(10) {
                break;
            }
            self.state.db_stats().start_capture();
            let answer = (self.send)(make(&mut rng)).await;
            let statements = self.state.db_stats().take_capture();
            answer.map_err(|e| anyhow::anyhow!("a sampled request failed: {e}"))?;
            captured.push(statements);
        }
        Ok(captured)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A pool as large as the server's (16 connections by default).
pub async fn pool(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    // The server's own rule for the URL (no TLS to a server on this host).
    let mut options = sea_orm::ConnectOptions::new(cxgraph::db::effective_url(database_url));
    options.max_connections(16).acquire_timeout(Duration::from_secs(5)).sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// Whether the server vacuums by itself (`autovacuum`). A CI configuration may turn it
/// off; then dead rows pile up under the workloads' updates (the sweeper's partial
/// index alone held 51,000 dead entries after a few runs: 67 ms a sweep, 0.07 ms
/// after a `VACUUM`), which no production server would leave.
pub async fn autovacuum_on(db: &DatabaseConnection) -> bool {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), "SHOW autovacuum")).await;
    let setting = row.ok().flatten().and_then(|r| r.try_get::<String>("", "autovacuum").ok());
    setting.is_none_or(|v| v == "on")
}

/// `VACUUM ANALYZE` of the whole database: what autovacuum would have done by now,
/// before a workload is measured.
pub async fn vacuum(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("VACUUM (ANALYZE)").await.context("vacuuming in autovacuum's place")?;
    Ok(())
}

/// Replays one sampled request's statements, in order, as one job.
pub fn replay(db: DatabaseConnection, samples: Vec<Vec<Statement>>) -> Job {
    let samples = Arc::new(samples);
    Arc::new(move |rng: &mut ChaCha8Rng| {
        let db = db.clone();
        let samples = Arc::clone(&samples);
        let pick = rng.gen_range(0..samples.len().max(1));
        Box::pin(async move {
            let Some(statements) = samples.get(pick) else { return Err("no statements captured".into()) };
            for statement in statements {
                db.query_all_raw(statement.clone()).await.map_err(|e| format!("replay: {e}"))?;
            }
            Ok(1)
        })
    })
}

/// `EXPLAIN ANALYZE` of each statement of one sampled request, as text: what a
/// reader checks when a workload is slower than its floor suggests.
pub async fn explain(db: &DatabaseConnection, statements: &[Statement]) -> String {
    let mut out = String::new();
    for statement in statements {
        let mut explained = statement.clone();
        explained.sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", statement.sql);
        out.push_str(&statement.sql);
        out.push('\n');
        match db.query_all_raw(explained).await {
            Ok(rows) => {
                for row in rows {
                    if let Ok(line) = row.try_get_by_index::<String>(0) {
                        out.push_str("    ");
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
            }
            Err(e) => out.push_str(&format!("    (not explained: {e})\n")),
        }
        out.push('\n');
    }
    out
}
