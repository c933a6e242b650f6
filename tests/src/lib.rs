//! The end-to-end test harness: the real cxgraph application on a random port, with a
//! fresh database of its own, spoken to over real HTTP.
//!
//! Every database test runs on each backend returned by [`backends`]: SQLite always (a
//! new file in a temporary directory), PostgreSQL whenever
//! `CXGRAPH_TEST_POSTGRES_URL` names a server (a new database per test, created here and
//! dropped when the [`TestApp`] is dropped, even if the test panicked). Under CI
//! (`CI` set) the PostgreSQL URL is required, so a CI run can never quietly skip it.
//! Logs are printed only with `TEST_LOG` set.

pub mod faults;
pub mod process;
pub mod streams;

use std::net::SocketAddr;
use std::sync::Once;

use cxgraph::config::{DemoData, LogFormat, Settings};
use cxgraph::startup::{Application, Bootstrap};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Environment variable naming the PostgreSQL server for tests (any database on it).
pub const POSTGRES_ENV: &str = "CXGRAPH_TEST_POSTGRES_URL";
/// The JWT key test servers sign with.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A database backend under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The backends every database test must run on.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => out.push(Backend::Postgres(url)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{POSTGRES_ENV} must be set under CI: every database test runs on PostgreSQL too")
        }
        _ => {}
    }
    out
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let settings = Settings::for_database("sqlite::memory:");
            let _ = cxgraph::telemetry::init("info,cxgraph=debug,sqlx=warn", LogFormat::Pretty, &settings);
        }
    });
}

/// A fresh, empty database on one backend; dropped with the value.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("cxgraph.db");
                TestDatabase { url: format!("sqlite://{}?mode=rwc", path.display()), _dir: Some(dir), postgres: None }
            }
            Backend::Postgres(server) => {
                let name = format!("cxgraph_test_{}", Uuid::now_v7().simple());
                let admin = Database::connect(server.as_str()).await.expect("connect to the PostgreSQL test server");
                admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
                admin.close().await.ok();
                TestDatabase { url: with_database(server, &name), _dir: None, postgres: Some((server.clone(), name)) }
            }
        }
    }

    /// The files of a SQLite database (the file and its write-ahead log), for tests of
    /// what is left on disk; `None` on PostgreSQL.
    pub fn sqlite_files(&self) -> Option<[std::path::PathBuf; 2]> {
        let path = self.url.strip_prefix("sqlite://")?.split('?').next()?;
        Some([path.into(), format!("{path}-wal").into()])
    }

    /// The same database, for a second server (dropped by its owner only).
    pub fn shared(&self) -> TestDatabase {
        TestDatabase { url: self.url.clone(), _dir: None, postgres: None }
    }

    pub async fn connect(&self) -> DatabaseConnection {
        cxgraph::db::connect(&Settings::for_database(&self.url)).await.expect("connect to test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a database drop needs its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = Database::connect(server.as_str()).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Settings of a test server on `database_url`: port 0, fixed keys, known admin, no
/// demo data unless a test asks.
pub fn test_settings(database_url: &str) -> Settings {
    let mut s = Settings::for_database(database_url);
    s.bind = "127.0.0.1:0".parse().expect("address");
    s.jwt_secret = Some(JWT_SECRET.into());
    s.admin_email = ADMIN_EMAIL.into();
    s.admin_password = Some(ADMIN_PASSWORD.into());
    s.demo_data = DemoData::Never;
    s.db_max_connections = 5;
    // Tests hammer one admin from one address; the limits have tests of their own.
    s.rate_limit = 0;
    s.anonymous_rate_limit = 0;
    s.cost_budget = 0;
    s.metrics_bind = cxgraph::config::MetricsBind(Some("127.0.0.1:0".parse().expect("address")));
    s
}

/// The log-in document the harness sends (a persisted-query manifest must list it).
pub const LOGIN: &str = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { \
                         session { accessToken refreshToken } userErrors { code } } }";

/// A running server with its own database.
pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    /// Where `/metrics` listens.
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    /// A separate connection for assertions on what was stored.
    pub db: DatabaseConnection,
    pub settings: Settings,
    pub bootstrap: Bootstrap,
    /// The server's shared state (its pool, its statement counters).
    pub state: cxgraph::state::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the server is gone.
    pub database: TestDatabase,
}

impl TestApp {
    pub async fn spawn(backend: &Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with settings adjusted by `configure`.
    pub async fn spawn_with(backend: &Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let database = TestDatabase::create(backend).await;
        Self::spawn_on(backend, database, configure).await
    }

    /// A second server (another replica) on the same database as `self`.
    pub async fn spawn_replica(&self) -> TestApp {
        self.spawn_replica_with(|_| {}).await
    }

    /// Another replica on the same database, with settings adjusted by `configure`.
    pub async fn spawn_replica_with(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_on(&self.backend, self.database.shared(), configure).await
    }

    async fn spawn_on(backend: &Backend, database: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
        init_logs();
        let mut settings = test_settings(&database.url);
        configure(&mut settings);
        let (app, bootstrap) = Application::build(settings.clone()).await.expect("application starts");
        let addr = app.local_addr().expect("bound address");
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            backend: backend.clone(),
            addr,
            metrics_addr,
            client: reqwest::Client::new(),
            db: database.connect().await,
            settings,
            bootstrap,
            state,
            shutdown: Some(tx),
            server: Some(server),
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL document; returns the JSON body (whatever the status).
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut req = self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request sent");
        resp.json().await.expect("JSON body")
    }

    /// POSTs an NDJSON body to `/ingest/interactions`; returns the answer's text and
    /// its lines (the status must be 200).
    pub async fn ingest_ndjson(&self, token: &str, body: Vec<u8>) -> (String, Vec<Value>) {
        let resp = self
            .client
            .post(self.url("/ingest/interactions"))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.expect("answer");
        let lines = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        (text, lines)
    }

    /// Logs in; returns `session { accessToken refreshToken }` or panics.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let body = self.graphql(LOGIN, json!({ "e": email, "p": password }), None).await;
        let session = &body["data"]["login"]["session"];
        assert!(session.is_object(), "[{}] login failed: {body}", self.backend.name());
        Session {
            access: session["accessToken"].as_str().unwrap_or_default().to_owned(),
            refresh: session["refreshToken"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Logs in as the bootstrap admin.
    pub async fn login_admin(&self) -> Session {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a user with `role` directly through the service; returns its e-mail and password.
    pub async fn create_user(&self, role: entity::enums::Role) -> (String, String) {
        let email = format!("{:?}-{}@example.com", role, Uuid::now_v7().simple()).to_lowercase();
        let password = "a-long-enough-password".to_owned();
        let new =
            cxgraph::users::NewUser { email: email.clone(), display_name: None, role, password: password.clone() };
        cxgraph::users::create(&self.db, new).await.map_err(|e| e.message()).expect("user created");
        (email, password)
    }

    /// Creates an API token as `admin`; `input` is the `createApiToken` input object as
    /// GraphQL text (`{name: "bi", scopes: [INSIGHTS_READ]}`). Returns its secret.
    pub async fn api_token(&self, admin: &str, input: &str) -> String {
        let body = self
            .graphql(&format!("mutation {{ createApiToken(input: {input}) {{ secret }} }}"), json!({}), Some(admin))
            .await;
        body["data"]["createApiToken"]["secret"].as_str().unwrap_or_else(|| panic!("a token: {body}")).to_owned()
    }

    /// Stops the server gracefully (in-flight requests finish).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran cleanly");
        }
    }
}

impl TestApp {
    /// Runs a GraphQL document and returns its body and the number of SQL statements
    /// the server sent for it.
    pub async fn graphql_counting(&self, query: &str, variables: Value, token: Option<&str>) -> (Value, u64) {
        let before = self.state.db_stats().statements();
        let body = self.graphql(query, variables, token).await;
        (body, self.state.db_stats().statements() - before)
    }
}

/// A GraphQL subscription over a WebSocket (`graphql-transport-ws`).
pub struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// A first event that arrived while start-up watched for a refusal.
    early: Option<Value>,
}

impl Subscription {
    /// Connects, authenticates with `token` in `connection_init`, and subscribes.
    /// Returns the first non-ack message instead when the server refuses: the errors
    /// of a refused subscription, or `{"type": "closed", "code", "reason"}` when the
    /// server closed the socket at `connection_init`.
    pub async fn start(app: &TestApp, token: Option<&str>, query: &str) -> Result<Subscription, Value> {
        Self::start_at(&app.addr.to_string(), token, query).await
    }

    /// As [`Subscription::start`], on the server at `host:port`.
    pub async fn start_at(host: &str, token: Option<&str>, query: &str) -> Result<Subscription, Value> {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
        let mut request = format!("ws://{host}/graphql").into_client_request().expect("request");
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connects");
        let init = match token {
            Some(t) => json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {t}") } }),
            None => json!({ "type": "connection_init", "payload": {} }),
        };
        socket.send(Message::Text(init.to_string().into())).await.expect("send init");
        let ack = next_json(&mut socket).await;
        if ack["type"] == "closed" {
            return Err(ack);
        }
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
        socket.send(Message::Text(subscribe.to_string().into())).await.expect("send subscribe");
        let mut sub = Subscription { socket, early: None };
        // A refused subscription answers at once (an `error`, or a `next` carrying the
        // errors); an accepted one is silent until its first event.
        match tokio::time::timeout(std::time::Duration::from_millis(300), next_json(&mut sub.socket)).await {
            Ok(msg) if msg["type"] == "error" => Err(msg["payload"].clone()),
            Ok(msg) if msg["type"] == "next" && msg["payload"]["errors"].is_array() => {
                Err(msg["payload"]["errors"].clone())
            }
            Ok(msg) if msg["type"] == "next" => {
                sub.early = Some(msg);
                Ok(sub)
            }
            Ok(msg) => panic!("unexpected message before any event: {msg}"),
            Err(_) => Ok(sub),
        }
    }

    /// The next message of any type (`next`, `complete`, `error`, or `closed` when the
    /// socket ends), waiting at most `secs`.
    pub async fn next_message(&mut self, secs: u64) -> Option<Value> {
        if let Some(early) = self.early.take() {
            return Some(early);
        }
        tokio::time::timeout(std::time::Duration::from_secs(secs), next_json(&mut self.socket)).await.ok()
    }

    /// The payload of the next `next` message, waiting at most `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<Value> {
        let msg = self.next_message(secs).await?;
        assert_eq!(msg["type"], "next", "{msg}");
        Some(msg["payload"].clone())
    }
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t)
                    .unwrap_or_else(|e| panic!("not a JSON message ({e}): {}", &t[..t.len().min(300)]));
                if v["type"] == "ping" || v["type"] == "pong" {
                    continue;
                }
                return v;
            }
            Some(Ok(Message::Close(frame))) => {
                return json!({ "type": "closed", "code": frame.as_ref().map(|f| u16::from(f.code)),
                    "reason": frame.as_ref().map(|f| f.reason.to_string()) });
            }
            Some(Ok(_)) => continue,
            other => return json!({ "type": "closed", "error": format!("{other:?}") }),
        }
    }
}

/// Tokens of a logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
}

/// The `extensions.code` of the first error in a GraphQL response.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// Runs `test` against a fresh server on every backend, stopping each afterwards.
pub async fn on_each_backend(test: impl AsyncFn(&TestApp)) {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        test(&app).await;
        app.stop().await;
    }
}

/// A PostgreSQL server this process owns (its own data directory and port), for tests
/// that stop and restart the database under a running API. Uses the server binaries
/// installed with PostgreSQL (`pg_config --bindir`); as root it runs them as the
/// `postgres` user (PostgreSQL refuses to run as root).
pub struct OwnedPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    pub port: u16,
}

impl OwnedPostgres {
    fn run(&self, program: &str, args: &[&str]) {
        run_as_postgres(&self.bin.join(program), args);
    }

    /// Initialises a cluster and starts it on a free port.
    pub fn start() -> OwnedPostgres {
        let bindir = std::process::Command::new("pg_config").arg("--bindir").output().expect("pg_config runs");
        let bin = std::path::PathBuf::from(String::from_utf8_lossy(&bindir.stdout).trim());
        let dir = tempfile::tempdir().expect("temporary directory");
        if is_root() {
            let status = std::process::Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status();
            assert!(status.is_ok_and(|s| s.success()), "chown the data directory to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let pg = OwnedPostgres { dir, bin, port };
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        pg.resume();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    /// Kills it the way a crash would (`-m immediate`).
    pub fn crash(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// Freezes every process of the server (SIGSTOP): connections stay open and
    /// accepted, nothing answers, as with a hung host or a stalled disk.
    pub fn freeze(&self) {
        for pid in self.processes() {
            signal(pid, "STOP");
        }
    }

    /// Wakes a frozen server (SIGCONT).
    pub fn thaw(&self) {
        for pid in self.processes().into_iter().rev() {
            signal(pid, "CONT");
        }
    }

    /// The postmaster first, then its children.
    fn processes(&self) -> Vec<u32> {
        let pidfile = std::fs::read_to_string(self.dir.path().join("data").join("postmaster.pid")).unwrap_or_default();
        let Some(postmaster) = pidfile.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) else {
            return Vec::new();
        };
        let children = std::process::Command::new("pgrep").args(["-P", &postmaster.to_string()]).output();
        let mut pids = vec![postmaster];
        if let Ok(out) = children {
            pids.extend(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        pids
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnedPostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            std::process::Command::new(pg_ctl)
        };
        let _ = cmd.args(["-D", &self.data(), "-m", "immediate", "stop"]).output();
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_as_postgres(program: &std::path::Path, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    let out = cmd.args(args).output().expect("PostgreSQL tool runs");
    assert!(out.status.success(), "{} {args:?} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
}

/// Inserts a bare customer straight into the database, for tests that build facts
/// directly (insights, alerts, exports); returns its id.
/// Inserts a topic matched by its lowercased name, already tagged (nothing to
/// re-tag); a brand on the watch list when `brand` (`ours` / `competitor`) is given.
pub async fn insert_topic(db: &DatabaseConnection, name: &str, brand: Option<&str>) -> Uuid {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};
    let now = chrono::Utc::now();
    entity::topic::Model {
        id: Uuid::now_v7(),
        name: name.into(),
        keywords: json!([name.to_lowercase()]),
        created_at: now,
        updated_at: now,
        retag_requested_at: None,
        retagged_at: None,
        brand: brand.map(str::to_owned),
        handles: None,
    }
    .into_active_model()
    .insert(db)
    .await
    .expect("topic inserted")
    .id
}

pub async fn insert_customer(db: &DatabaseConnection, segment: Option<&str>) -> Uuid {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};
    let now = chrono::Utc::now();
    entity::customer::Model {
        id: Uuid::now_v7(),
        display_name: Some("Test customer".into()),
        segment: segment.map(str::to_owned),
        attributes: json!({}),
        merged_into_id: None,
        erased_at: None,
        last_contact_at: None,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .insert(db)
    .await
    .expect("customer inserted")
    .id
}

/// An open, normal-priority conversation with no team, SLA or clocks, opened at `at`:
/// tests change what they need with struct update syntax.
pub fn open_conversation(
    customer_id: Uuid,
    channel: entity::enums::Channel,
    at: chrono::DateTime<chrono::Utc>,
) -> entity::conversation::Model {
    entity::conversation::Model {
        id: Uuid::now_v7(),
        customer_id,
        channel,
        inbox: None,
        status: entity::enums::ConversationStatus::Open,
        priority: entity::enums::Priority::Normal,
        subject: None,
        team_id: None,
        assignee_id: None,
        sla_policy_id: None,
        routing_rule_id: None,
        tags: json!([]),
        opened_at: at,
        last_message_at: at,
        first_response_due_at: None,
        resolution_due_at: None,
        first_response_at: None,
        resolved_at: None,
        closed_at: None,
        first_response_breached: false,
        resolution_breached: false,
        pending_since: None,
        next_due_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// A transaction of a test's own, standing for a concurrent writer: it runs `first`
/// on `id`, and holds what that locked until [`Writer::finish`].
pub struct Writer {
    txn: sea_orm::DatabaseTransaction,
    backend: sea_orm::DatabaseBackend,
}

impl Writer {
    pub async fn start(app: &TestApp, first: &str, id: Uuid) -> Writer {
        use sea_orm::{SqliteTransactionMode, TransactionTrait};
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let txn = app.db.begin_with_options(options).await.unwrap();
        let writer = Writer { txn, backend: app.db.get_database_backend() };
        writer.run(first, id).await.unwrap();
        writer
    }

    pub async fn run(&self, sql: &str, id: Uuid) -> Result<u64, sea_orm::DbErr> {
        let sql =
            if self.backend == sea_orm::DatabaseBackend::Postgres { sql.replacen('?', "$1", 1) } else { sql.into() };
        Ok(self
            .txn
            .execute_raw(sea_orm::Statement::from_sql_and_values(self.backend, sql, [id.into()]))
            .await?
            .rows_affected())
    }

    pub async fn finish(self) -> Result<(), sea_orm::DbErr> {
        self.txn.commit().await
    }
}

/// Returns once `n` sessions wait on a row lock (PostgreSQL); SQLite shows no waits,
/// so there it gives the requests a moment to reach the database.
pub async fn until_waiting(app: &TestApp, n: i64) {
    let backend = app.db.get_database_backend();
    if backend != sea_orm::DatabaseBackend::Postgres {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        return;
    }
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                   AND datname = current_database()";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let row = app.db.query_one_raw(sea_orm::Statement::from_string(backend, waiting)).await.unwrap().unwrap();
        if row.try_get::<i64>("", "n").unwrap() >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "fewer than {n} requests ever waited for the writer");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
