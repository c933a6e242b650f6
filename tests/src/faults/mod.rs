//! The fault-and-load suite: scenarios that break something under load (the
//! database restarted or frozen, the API killed, SQLite hammered by writers, a long
//! mixed soak, generated and random input) and judge what the clients saw.
//!
//! Each scenario is one function taking a [`Scale`] and answering an [`Outcome`]:
//! what load was held, what faults were injected, what was acknowledged, lost and
//! duplicated, how memory and file descriptors drifted, and every violation of the
//! promise found. `cargo test` runs the short scale and asserts no violations
//! (`tests/tests/faults.rs`); `cxgraph-faults` runs the long scale and writes the
//! results table (README: "Reliability under faults").
//!
//! The promise is judged from the outside: a client ledger of every event sent and
//! acknowledged, checked against the database afterwards; every failure a client
//! sees must be a clean answer (`503` with `UNAVAILABLE` or `TIMEOUT`), never another
//! 5xx, a hang, or internals in the body.

pub mod crash;
pub mod database;
pub mod fuzz;
pub mod hostile;
pub mod soak;
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

/// How long and how hard a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Seconds per scenario: the CI version.
    Short,
    /// Minutes per scenario: the version whose results are published.
    Long,
}

impl Scale {
    /// `short` in the short suite, `long` in the long one.
    pub fn pick<T>(self, short: T, long: T) -> T {
        match self {
            Scale::Short => short,
            Scale::Long => long,
        }
    }
}

/// What a scenario held, injected and found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub scenario: String,
    pub backend: String,
    /// The load held, in words ("4 ingest clients, 20-event batches, 1 reader").
    pub load: String,
    /// The faults injected, in words ("3 × pg_ctl stop -m immediate").
    pub faults: String,
    pub elapsed: Duration,
    /// Requests answered successfully.
    pub ok: u64,
    /// Requests that failed cleanly (by kind), during the faults.
    pub clean_failures: BTreeMap<String, u64>,
    /// Events the clients had acknowledged (`None` where the scenario writes none).
    pub acknowledged: Option<usize>,
    pub lost: Option<usize>,
    pub duplicated: Option<usize>,
    /// Resident memory and open descriptors after warm-up and at the end.
    pub drift: Option<Drift>,
    /// Other measured facts worth a column ("slowest recovery 1.2 s").
    pub notes: Vec<String>,
    /// Every broken promise; empty when the scenario passed.
    pub violations: Vec<String>,
}

/// Resource use of the server process after warm-up and at the end of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drift {
    pub rss_after_warmup_kib: u64,
    pub rss_end_kib: u64,
    pub fds_after_warmup: usize,
    pub fds_end: usize,
}

impl Outcome {
    pub fn new(scenario: &str, backend: &str) -> Outcome {
        Outcome { scenario: scenario.into(), backend: backend.into(), ..Default::default() }
    }

    /// Panics with every violation (the short suite's assertion).
    pub fn assert_kept(&self) {
        eprintln!("{}", self.summary());
        assert!(self.violations.is_empty(), "{} on {}: {:#?}", self.scenario, self.backend, self.violations);
    }

    /// One line for logs.
    pub fn summary(&self) -> String {
        let failed: u64 = self.clean_failures.values().sum();
        let mut s = format!(
            "{} ({}): {:.0?}, {} ok, {} clean failures",
            self.scenario, self.backend, self.elapsed, self.ok, failed
        );
        if let (Some(a), Some(l), Some(d)) = (self.acknowledged, self.lost, self.duplicated) {
            s += &format!(", {a} acknowledged, {l} lost, {d} duplicated");
        }
        if let Some(d) = self.drift {
            s += &format!(
                ", RSS {} → {} KiB, fds {} → {}",
                d.rss_after_warmup_kib, d.rss_end_kib, d.fds_after_warmup, d.fds_end
            );
        }
        for n in &self.notes {
            s += &format!(", {n}");
        }
        s
    }

    /// Folds a ledger's counts in.
    fn absorb(&mut self, ledger: Ledger) {
        self.ok += ledger.ok;
        for (k, v) in ledger.clean_failures {
            *self.clean_failures.entry(k).or_default() += v;
        }
        self.violations.extend(ledger.unclean);
    }
}

/// A server and the admin token to speak to it with.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Target {
    /// Logs in with a password; panics when the server refuses.
    pub async fn login(base: &str, email: &str, password: &str) -> Target {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client");
        let query = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) \
                     { session { accessToken } userErrors { message } } }";
        let body: Value = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": query, "variables": { "e": email, "p": password } }))
            .send()
            .await
            .expect("log-in request")
            .json()
            .await
            .expect("log-in answer");
        let token = body["data"]["login"]["session"]["accessToken"].as_str().expect("an access token").to_owned();
        Target { client, base: base.to_owned(), token }
    }

    /// Sends a GraphQL document; answers the HTTP status and the body (text).
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<(u16, String), reqwest::Error> {
        let response = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .timeout(Duration::from_secs(20))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Creates a customer; answers its id.
    pub async fn create_customer(&self, name: &str) -> String {
        let (_, body) = self
            .graphql(
                "mutation($n: String!) { createCustomer(input: {displayName: $n}) { customer { id } } }",
                json!({ "n": name }),
            )
            .await
            .expect("createCustomer answered");
        let body: Value = serde_json::from_str(&body).expect("JSON");
        body["data"]["createCustomer"]["customer"]["id"].as_str().expect("customer id").to_owned()
    }
}

/// How a request ended, from the client's side.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// A failure the promise allows: `503 UNAVAILABLE`/`TIMEOUT`, or no answer at all
    /// while the server is known to be down.
    Clean(String),
    /// A broken promise, with what was seen.
    Unclean(String),
}

/// Judges a GraphQL answer: success, a clean failure, or a broken promise (another
/// status, another code, or text that looks like internals).
pub fn judge_graphql(status: u16, body: &str) -> Answer {
    if leaks_internals(body) {
        return Answer::Unclean(format!("{status}: internals in the body: {}", clip(body)));
    }
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = parsed["errors"][0]["extensions"]["code"].as_str();
    match (status, code) {
        (200, None) if !parsed["data"].is_null() => Answer::Ok,
        (200 | 503, Some(c @ ("UNAVAILABLE" | "TIMEOUT"))) => Answer::Clean(format!("{status} {c}")),
        _ => Answer::Unclean(format!("{status}: {}", clip(body))),
    }
}

/// Whether a response body carries text only internals would: SQL, driver or panic
/// messages, source paths.
pub fn leaks_internals(body: &str) -> bool {
    const MARKERS: [&str; 9] = [
        "SELECT ",
        "INSERT ",
        "sqlx",
        "sea_orm",
        "panicked",
        "RUST_BACKTRACE",
        ".rs:",
        "database is locked",
        "SQLSTATE",
    ];
    MARKERS.iter().any(|m| body.contains(m))
}

fn clip(text: &str) -> &str {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What the clients saw, shared between them.
#[derive(Default)]
pub struct Ledger {
    /// External ids of the events sent.
    pub sent: BTreeSet<String>,
    /// External ids of the events the server acknowledged.
    pub acknowledged: BTreeSet<String>,
    pub ok: u64,
    pub clean_failures: BTreeMap<String, u64>,
    pub unclean: Vec<String>,
}

impl Ledger {
    /// Counts one judged answer (the callers judge it: `judge_graphql`, `judge_ingest`,
    /// and a dropped connection as clean only while the server may be down).
    pub fn count(&mut self, answer: Answer) {
        match answer {
            Answer::Ok => self.ok += 1,
            Answer::Clean(kind) => *self.clean_failures.entry(kind).or_default() += 1,
            Answer::Unclean(what) => self.unclean.push(what),
        }
    }
}

/// Sends one batch of events to `/ingest/interactions` until the server acknowledges
/// every line, as a connector would (bounded: two minutes, then a violation).
/// A connection that fails is clean only when `down_expected` says the server may be
/// down.
pub async fn deliver(target: &Target, customer: &str, ids: &[String], ledger: &Mutex<Ledger>, down_expected: bool) {
    ledger.lock().expect("ledger").sent.extend(ids.iter().cloned());
    let body: String = ids
        .iter()
        .map(|id| {
            json!({ "channel": "CHAT", "direction": "INBOUND", "externalId": id, "customerId": customer,
                "body": "Where is my parcel? It is late again." })
            .to_string()
                + "\n"
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let sent = target
            .client
            .post(format!("{}/ingest/interactions", target.base))
            .bearer_auth(&target.token)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let acknowledged = status == 200
                    && text.lines().count() == ids.len()
                    && text.lines().all(|l| l.contains("\"created\"") || l.contains("\"duplicate\""));
                if acknowledged {
                    let mut l = ledger.lock().expect("ledger");
                    l.ok += 1;
                    l.acknowledged.extend(ids.iter().cloned());
                    return;
                }
                judge_ingest(status, &text)
            }
            Err(e) if down_expected => Answer::Clean(format!("no answer ({})", error_kind(&e))),
            Err(e) => Answer::Unclean(format!("no answer: {e}")),
        };
        ledger.lock().expect("ledger").count(answer);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ledger
        .lock()
        .expect("ledger")
        .unclean
        .push(format!("a batch of {} was not acknowledged in two minutes", ids.len()));
}

/// Judges an ingest answer that was not a full acknowledgement.
fn judge_ingest(status: u16, text: &str) -> Answer {
    if leaks_internals(text) {
        return Answer::Unclean(format!("{status}: internals in the body: {}", clip(text)));
    }
    if status == 503 && (text.contains("UNAVAILABLE") || text.contains("TIMEOUT")) {
        return Answer::Clean(format!("{status} unavailable"));
    }
    // A 200 whose lines were refused as unavailable: the batch is retried whole.
    if status == 200
        && text.lines().all(|l| l.contains("UNAVAILABLE") || l.contains("created") || l.contains("duplicate"))
    {
        return Answer::Clean("200 lines unavailable".into());
    }
    Answer::Unclean(format!("{status}: {}", clip(text)))
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "refused"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "reset"
    }
}

/// Compares the stored events whose external id starts with `prefix` with the
/// ledger: answers (lost, duplicated) and records each discrepancy as a violation.
pub async fn check_ledger(db: &DatabaseConnection, prefix: &str, ledger: &Ledger, outcome: &mut Outcome) {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    "SELECT external_id, count(*) AS n FROM interactions WHERE external_id LIKE $1 GROUP BY external_id"
                }
                _ => {
                    "SELECT external_id, count(*) AS n FROM interactions WHERE external_id LIKE ? GROUP BY external_id"
                }
            },
            [format!("{prefix}%").into()],
        ))
        .await
        .expect("stored events read");
    let mut stored = BTreeSet::new();
    let mut duplicated = 0usize;
    for row in rows {
        let id: String = row.try_get("", "external_id").expect("external_id");
        let n: i64 = row.try_get("", "n").expect("count");
        duplicated += usize::try_from(n - 1).unwrap_or(0);
        stored.insert(id);
    }
    let lost: Vec<&String> = ledger.acknowledged.difference(&stored).collect();
    let unsent: Vec<&String> = stored.difference(&ledger.sent).collect();
    if !lost.is_empty() {
        outcome.violations.push(format!(
            "{} acknowledged events lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    if duplicated > 0 {
        outcome.violations.push(format!("{duplicated} events stored more than once"));
    }
    if !unsent.is_empty() {
        outcome.violations.push(format!("{} events stored that no client sent", unsent.len()));
    }
    let unacknowledged = ledger.sent.len() - ledger.acknowledged.len();
    if unacknowledged > 0 {
        outcome.violations.push(format!("{unacknowledged} events sent were never acknowledged"));
    }
    outcome.acknowledged = Some(ledger.acknowledged.len());
    outcome.lost = Some(lost.len());
    outcome.duplicated = Some(duplicated);
}

/// A scenario's own server process on a fresh database, logged in as admin.
pub struct Spawned {
    pub database: crate::TestDatabase,
    pub bin: std::path::PathBuf,
    pub log: std::path::PathBuf,
    pub port: u16,
    pub server: crate::process::Server,
    pub target: Target,
}

impl Spawned {
    /// Builds (if needed) and starts the server for scenario `name` on `backend`.
    pub async fn start(backend: &crate::Backend, name: &str) -> Spawned {
        Self::start_with(backend, name, &[]).await
    }

    /// As [`Spawned::start`], with extra environment for the server.
    pub async fn start_with(backend: &crate::Backend, name: &str, env: &[(&str, &str)]) -> Spawned {
        use crate::process;
        let database = crate::TestDatabase::create(backend).await;
        let bin =
            tokio::task::spawn_blocking(process::server_binary).await.expect("build task").expect("server binary");
        let log = server_log(&format!("{name}-{}", backend.name()));
        let port = process::free_port().expect("free port");
        let server = process::Server::start_on(&bin, &database.url, &log, port, env).await.expect("server starts");
        let target = Target::login(&server.base, process::ADMIN_EMAIL, process::ADMIN_PASSWORD).await;
        Spawned { database, bin, log, port, server, target }
    }

    /// Starts the server again on the same port (after a kill).
    pub async fn restart(&mut self) {
        let server = crate::process::Server::start_on(&self.bin, &self.database.url, &self.log, self.port, &[]).await;
        self.server = server.expect("server restarts");
    }

    /// Checks the ledger against what the database holds and folds the counts into
    /// the outcome; answers how many requests succeeded.
    pub async fn settle(&self, prefix: &str, ledger: &Mutex<Ledger>, outcome: &mut Outcome) -> u64 {
        let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
        let db = self.database.connect().await;
        check_ledger(&db, prefix, &ledger, outcome).await;
        db.close().await.ok();
        let ok = ledger.ok;
        outcome.absorb(ledger);
        ok
    }
}

/// A fresh log file for a scenario's server: `$TMPDIR/cxgraph-faults-<name>.log`,
/// emptied first so that what is read back is this run's.
pub fn server_log(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cxgraph-faults-{name}.log"));
    let _ = std::fs::remove_file(&path);
    path
}

/// The external ids of batch `batch` of client `client` in a run tagged `prefix`.
pub fn batch_ids(prefix: &str, client: usize, batch: usize, size: usize) -> Vec<String> {
    (0..size).map(|e| format!("{prefix}{client}-{batch}-{e}")).collect()
}

/// Every answer a scenario's clients count goes through here, so the rules are one.
pub fn count_graphql(ledger: &Mutex<Ledger>, sent: Result<(u16, String), reqwest::Error>, down_expected: bool) {
    let answer = match sent {
        Ok((status, body)) => judge_graphql(status, &body),
        Err(e) if down_expected => Answer::Clean(format!("no answer ({})", error_kind(&e))),
        Err(e) => Answer::Unclean(format!("no answer: {e}")),
    };
    ledger.lock().expect("ledger").count(answer);
}
