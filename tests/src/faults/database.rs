//! The database failing under a running API: restarted (`pg_ctl stop -m immediate`,
//! as a crash) or frozen (SIGSTOP on every server process, as a hung host), on a
//! PostgreSQL server the suite owns. Clients ingest with idempotency keys and read
//! throughout; a batch is retried until acknowledged, as a connector would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Ledger, Outcome, Scale, Target, batch_ids, check_ledger, count_graphql, deliver};
use crate::{Backend, OwnedPostgres, TestApp};

const WRITERS: usize = 4;
const READERS: usize = 2;
const BATCH: usize = 20;
const READ: &str = "query($id: ID!) { customer(id: $id) { id interactions(first: 5) { edges { cursor } } } }";

/// Clients that write and read until told to stop.
struct Load {
    done: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ledger: Arc<Mutex<Ledger>>,
    /// The slowest answer any client waited for.
    slowest: Arc<Mutex<Duration>>,
}

impl Load {
    fn start(target: &Target, customer: &str, prefix: &str) -> Load {
        let done = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        let mut tasks = Vec::new();
        for client in 0..WRITERS {
            let (t, customer, prefix, ledger, done) =
                (target.clone(), customer.to_owned(), prefix.to_owned(), Arc::clone(&ledger), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                let mut batch = 0;
                while !done.load(Ordering::Relaxed) {
                    deliver(&t, &customer, &batch_ids(&prefix, client, batch, BATCH), &ledger, false).await;
                    batch += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        for _ in 0..READERS {
            let (t, customer, ledger, done, slowest) =
                (target.clone(), customer.to_owned(), Arc::clone(&ledger), Arc::clone(&done), Arc::clone(&slowest));
            tasks.push(tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer = t.graphql(READ, json!({ "id": customer })).await;
                    let took = started.elapsed();
                    {
                        let mut s = slowest.lock().expect("slowest");
                        *s = (*s).max(took);
                    }
                    count_graphql(&ledger, answer, false);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        Load { done, tasks, ledger, slowest }
    }

    async fn stop(self) -> (Ledger, Duration) {
        self.done.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("client task");
        }
        let slowest = *self.slowest.lock().expect("slowest");
        (std::mem::take(&mut *self.ledger.lock().expect("ledger")), slowest)
    }
}

/// How long until `{ me { email } }` answers again (bounded by `limit`).
async fn recovery(target: &Target, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok((200, body)) = target.graphql("{ me { email } }", json!({})).await
            && !body.contains("\"errors\"")
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn setup(
    configure: impl FnOnce(&mut cxgraph::config::Settings),
) -> (Arc<OwnedPostgres>, TestApp, Target, String) {
    let pg = Arc::new(tokio::task::spawn_blocking(OwnedPostgres::start).await.expect("PostgreSQL starts"));
    let app = TestApp::spawn_with(&Backend::Postgres(pg.url()), configure).await;
    let target = Target::login(&app.url(""), crate::ADMIN_EMAIL, crate::ADMIN_PASSWORD).await;
    let customer = target.create_customer("Fault customer").await;
    (pg, app, target, customer)
}

/// PostgreSQL killed and restarted several times under load: every failure clean,
/// recovery within seconds, and the database holds exactly the acknowledged events.
pub async fn restart(scale: Scale) -> Outcome {
    let started = Instant::now();
    let restarts = scale.pick(3, 20);
    let mut outcome = Outcome::new("database restarted under load", "postgres");
    let (pg, app, target, customer) = setup(|s| s.db_acquire_timeout = 1).await;
    let prefix = "restart-";
    let load = Load::start(&target, &customer, prefix);
    let mut recoveries = Vec::new();
    for _ in 0..restarts {
        tokio::time::sleep(scale.pick(Duration::from_millis(700), Duration::from_secs(3))).await;
        let down = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || down.crash()).await.expect("crash");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let up = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || up.resume()).await.expect("restart");
        match recovery(&target, Duration::from_secs(15)).await {
            Some(took) => recoveries.push(took),
            None => outcome.violations.push("no recovery within 15 s of a restart".into()),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ledger, _) = load.stop().await;
    if ledger.clean_failures.is_empty() {
        outcome.violations.push("the restarts were not felt: no attempt failed".into());
    }
    check_ledger(&app.db, prefix, &ledger, &mut outcome).await;
    outcome.absorb(ledger);
    let slowest = recoveries.iter().max().copied().unwrap_or_default();
    if slowest > Duration::from_secs(10) {
        outcome.violations.push(format!("slowest recovery {slowest:?} (limit 10 s)"));
    }
    outcome.load = format!("{WRITERS} ingest clients ({BATCH}-event batches), {READERS} customer-360 readers");
    outcome.faults = format!("{restarts} × `pg_ctl stop -m immediate`, 1 s down");
    outcome.notes.push(format!("slowest recovery {:.1} s", slowest.as_secs_f64()));
    outcome.elapsed = started.elapsed();
    app.stop().await;
    outcome
}

/// PostgreSQL frozen (SIGSTOP) for longer than the pool timeout under load: requests
/// fail fast and clearly (`UNAVAILABLE` or `TIMEOUT` within the request timeout, never
/// a hang), `/readyz` turns red, and everything recovers after SIGCONT with nothing
/// lost or doubled.
pub async fn freeze(scale: Scale) -> Outcome {
    const ACQUIRE: u64 = 1;
    const REQUEST_TIMEOUT: u64 = 3;
    let started = Instant::now();
    let freezes = scale.pick(2, 10);
    let frozen_for = scale.pick(Duration::from_secs(5), Duration::from_secs(15));
    let mut outcome = Outcome::new("database frozen under load", "postgres");
    let (pg, app, target, customer) = setup(|s| {
        s.db_acquire_timeout = ACQUIRE;
        s.request_timeout = REQUEST_TIMEOUT;
    })
    .await;
    let prefix = "freeze-";
    let load = Load::start(&target, &customer, prefix);
    let mut recoveries = Vec::new();
    let mut readyz_red = Duration::ZERO;
    for _ in 0..freezes {
        tokio::time::sleep(scale.pick(Duration::from_millis(700), Duration::from_secs(3))).await;
        pg.freeze();
        let frozen_at = Instant::now();
        // Readiness: red, and said so within the acquire timeout and a margin.
        tokio::time::sleep(Duration::from_secs(ACQUIRE)).await;
        let asked = Instant::now();
        let ready = target.client.get(format!("{}/readyz", target.base)).send().await;
        let took = asked.elapsed();
        readyz_red = readyz_red.max(took);
        match ready {
            Ok(r) if r.status().as_u16() == 503 => {}
            Ok(r) => outcome.violations.push(format!("/readyz answered {} while the database was frozen", r.status())),
            Err(e) => outcome.violations.push(format!("/readyz did not answer while frozen: {e}")),
        }
        if took > Duration::from_secs(ACQUIRE + 2) {
            outcome.violations.push(format!("/readyz took {took:?} to say the database was frozen"));
        }
        tokio::time::sleep(frozen_for.saturating_sub(frozen_at.elapsed())).await;
        pg.thaw();
        match recovery(&target, Duration::from_secs(15)).await {
            Some(took) => recoveries.push(took),
            None => outcome.violations.push("no recovery within 15 s of SIGCONT".into()),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ledger, slowest_answer) = load.stop().await;
    if ledger.clean_failures.is_empty() {
        outcome.violations.push("the freezes were not felt: no attempt failed".into());
    }
    // Nothing waits longer than the request timeout and a margin for the answer.
    if slowest_answer > Duration::from_secs(REQUEST_TIMEOUT + 2) {
        outcome.violations.push(format!("a read waited {slowest_answer:?} (request timeout {REQUEST_TIMEOUT} s)"));
    }
    check_ledger(&app.db, prefix, &ledger, &mut outcome).await;
    outcome.absorb(ledger);
    let slowest = recoveries.iter().max().copied().unwrap_or_default();
    outcome.load = format!("{WRITERS} ingest clients ({BATCH}-event batches), {READERS} customer-360 readers");
    outcome.faults = format!(
        "{freezes} × SIGSTOP for {} s (pool timeout {ACQUIRE} s, request timeout {REQUEST_TIMEOUT} s)",
        frozen_for.as_secs()
    );
    outcome.notes.push(format!("slowest answer while frozen {:.1} s", slowest_answer.as_secs_f64()));
    outcome.notes.push(format!("/readyz red in {:.1} s", readyz_red.as_secs_f64()));
    outcome.notes.push(format!("slowest recovery {:.1} s", slowest.as_secs_f64()));
    outcome.elapsed = started.elapsed();
    app.stop().await;
    outcome
}
