//! Command line and settings, in one documented clap struct.
//!
//! Every setting is a flag and a `CXGRAPH_*` environment variable (besides the
//! conventional `DATABASE_URL`), so `cxgraph --help` is the complete reference and the
//! README's table mirrors it. Values are parsed, not validated later: a bad value stops
//! start-up with one clear line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use entity::enums::Role;

/// cxgraph: one GraphQL API for customers, interactions, journeys and feedback.
#[derive(Debug, Parser)]
#[command(name = "cxgraph", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default): migrate, load demo data into an empty database, listen.
    Serve,
    /// Apply or revert database migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Load the generated dataset (demo or benchmark sized) into the database.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL) served by this build.
    Schema,
    /// Manage staff users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage API tokens for partners and connectors.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print its secret once.
    Create {
        /// Who or what it is for.
        #[arg(long)]
        name: String,
        /// A scope, e.g. `interactions:write` (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Days until it expires (none: until revoked).
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Limit it to a channel, e.g. `twitter` (repeat for several; none: every channel).
        #[arg(long = "channel")]
        channels: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// Revert the last `steps` migrations.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Number of customers to generate.
    #[arg(long, default_value_t = 300)]
    pub customers: u32,
    /// Interactions (messages) in all; default six per customer. Activity is skewed:
    /// most customers write rarely, a few write a lot.
    #[arg(long)]
    pub interactions: Option<u64>,
    /// Journey touchpoints in all; default three per customer.
    #[arg(long)]
    pub touchpoints: Option<u64>,
    /// Feedback (survey answers, mentions, reviews) in all; default 0.6 per customer.
    #[arg(long)]
    pub feedback: Option<u64>,
    /// Random seed: the same seed gives the same dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for SeedArgs {
    fn default() -> Self {
        Self { customers: 300, interactions: None, touchpoints: None, feedback: None, seed: 42 }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a staff user. The password comes from --password or CXGRAPH_USER_PASSWORD.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long, env = "CXGRAPH_USER_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Manager,
    Agent,
    Analyst,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Manager => Role::Manager,
            RoleArg::Agent => Role::Agent,
            RoleArg::Analyst => Role::Analyst,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default for the embedded demo).
    Pretty,
    /// One JSON object per line (the default with PostgreSQL).
    Json,
}

/// Whether to load the demo dataset into an empty database at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoData {
    /// On the embedded SQLite database only.
    Auto,
    Always,
    Never,
}

/// Every runtime setting. Durations are whole seconds.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Database to use: `sqlite://path?mode=rwc` (embedded, the default) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://cxgraph.db?mode=rwc", global = true)]
    pub database_url: String,

    /// A read replica for the heavy reads (insights and the BI export); unset, they
    /// use the primary. Not migrated by cxgraph: it follows the primary.
    #[arg(long, env = "DATABASE_READ_URL", global = true)]
    pub database_read_url: Option<String>,

    /// Address to listen on.
    #[arg(long, env = "CXGRAPH_BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: SocketAddr,

    /// Address of the Prometheus `/metrics` listener, apart from the API port so it is
    /// not exposed with it; `off` disables it. Failing to bind it is a warning, not fatal.
    #[arg(long, env = "CXGRAPH_METRICS_BIND", default_value = "127.0.0.1:9464", value_parser = metrics_bind, global = true)]
    pub metrics_bind: MetricsBind,

    /// HMAC key for access tokens (at least 32 bytes). Required with PostgreSQL; the
    /// embedded demo generates a random one (sessions then end at restart).
    #[arg(long, env = "CXGRAPH_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// Earlier JWT secrets, comma-separated, still accepted for verification during a
    /// key rotation (tokens name their key by `kid`).
    #[arg(long, env = "CXGRAPH_JWT_PREVIOUS_SECRETS", hide_env_values = true, global = true)]
    pub jwt_previous_secrets: Option<String>,

    /// Access token lifetime in seconds.
    #[arg(long, env = "CXGRAPH_ACCESS_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(30..=86_400), global = true)]
    pub access_token_ttl: u64,

    /// Longest a session's checked state (user active, session not revoked) is
    /// trusted, in seconds, should the event bus that announces changes stall.
    #[arg(long, env = "CXGRAPH_SESSION_CHECK_TTL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub session_check_ttl: u64,

    /// Refresh token lifetime in seconds.
    #[arg(long, env = "CXGRAPH_REFRESH_TOKEN_TTL", default_value_t = 30 * 86_400, value_parser = clap::value_parser!(u64).range(60..=365 * 86_400), global = true)]
    pub refresh_token_ttl: u64,

    /// E-mail of the admin account created on an empty database.
    #[arg(long, env = "CXGRAPH_ADMIN_EMAIL", default_value = "admin@cxgraph.local", global = true)]
    pub admin_email: String,

    /// Password of that admin account; a random one is generated and printed once if unset.
    #[arg(long, env = "CXGRAPH_ADMIN_PASSWORD", hide_env_values = true, global = true)]
    pub admin_password: Option<String>,

    /// Load the demo dataset into an empty database at start-up.
    #[arg(long, env = "CXGRAPH_DEMO_DATA", value_enum, default_value_t = DemoData::Auto, global = true)]
    pub demo_data: DemoData,

    /// Maximum number of pooled database connections.
    #[arg(long, env = "CXGRAPH_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// Seconds to wait for a pooled connection before failing with UNAVAILABLE.
    #[arg(long, env = "CXGRAPH_DB_ACQUIRE_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub db_acquire_timeout: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CXGRAPH_BODY_LIMIT", default_value_t = 2 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024), global = true)]
    pub body_limit: u64,

    /// Seconds before a request is abandoned with 503 `TIMEOUT`.
    #[arg(long, env = "CXGRAPH_REQUEST_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub request_timeout: u64,

    /// A persisted-query manifest (JSON: Apollo's manifest, or an object of id →
    /// document): clients may send `extensions.persistedQuery.sha256Hash` instead of
    /// the text.
    #[arg(long, env = "CXGRAPH_PERSISTED_QUERIES", global = true)]
    pub persisted_queries: Option<std::path::PathBuf>,

    /// Allow-list mode: only documents in the manifest run (others get
    /// `PERSISTED_QUERY_REQUIRED`).
    #[arg(long, env = "CXGRAPH_PERSISTED_QUERIES_ONLY", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub persisted_queries_only: bool,

    /// Serve GraphQL introspection (GraphiQL needs it). Default: on with SQLite (the
    /// demo and development), off with PostgreSQL (production).
    #[arg(long, env = "CXGRAPH_INTROSPECTION", action = clap::ArgAction::Set, global = true)]
    pub introspection: Option<bool>,

    /// "Did you mean …?" suggestions in validation errors (they reveal field names
    /// even with introspection off). Default: as introspection.
    #[arg(long, env = "CXGRAPH_SUGGESTIONS", action = clap::ArgAction::Set, global = true)]
    pub suggestions: Option<bool>,

    /// Remove personal text (message bodies, subjects, comments) older than this many
    /// days; unset keeps it.
    #[arg(long, env = "CXGRAPH_RETENTION_TEXT_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500), global = true)]
    pub retention_text_days: Option<u32>,

    /// Seconds between two runs of the retention job.
    #[arg(long, env = "CXGRAPH_RETENTION_INTERVAL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800), global = true)]
    pub retention_interval: u64,

    /// Seconds between two runs of the SLA sweeper (breaches and at-risk alerts).
    #[arg(long, env = "CXGRAPH_SLA_SWEEP_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub sla_sweep_interval: u64,

    /// Requests a minute each user or API token may make (a burst of as many); 0 turns
    /// the limit off. Counted per replica.
    #[arg(long, env = "CXGRAPH_RATE_LIMIT", default_value_t = 1200, global = true)]
    pub rate_limit: u32,

    /// Query-cost points each user or API token may spend per hour (a field costs 1, a
    /// page of N costs N times what is selected under it); every answer reports the
    /// cost, what remains and the reset time in `extensions.cost`. 0 turns it off.
    /// Counted per replica.
    #[arg(long, env = "CXGRAPH_COST_BUDGET", default_value_t = 1_000_000, global = true)]
    pub cost_budget: u64,

    /// Most WebSocket (subscription) connections open at once in this process; beyond
    /// it an upgrade is refused with 503 `UNAVAILABLE`. 0 means no limit.
    #[arg(long, env = "CXGRAPH_WS_MAX_CONNECTIONS", default_value_t = 1_000, global = true)]
    pub ws_max_connections: usize,

    /// Most WebSocket connections one user or API token may hold open in this process;
    /// beyond it `connection_init` is refused with `RATE_LIMITED`. 0 means no limit.
    #[arg(long, env = "CXGRAPH_WS_MAX_PER_CALLER", default_value_t = 16, global = true)]
    pub ws_max_per_caller: usize,

    /// WebSocket connections one client address may hold open before they have
    /// authenticated (from the upgrade to an accepted `connection_init`); beyond it the
    /// upgrade is refused with 429 `RATE_LIMITED`. 0 means no limit.
    #[arg(long, env = "CXGRAPH_WS_MAX_PENDING_PER_ADDRESS", default_value_t = 8, global = true)]
    pub ws_max_pending_per_address: usize,

    /// Seconds a new WebSocket has to send an authenticated `connection_init` before it
    /// is closed (4408). Sockets not yet authenticated are also capped at a quarter of
    /// `CXGRAPH_WS_MAX_CONNECTIONS` in all.
    #[arg(long, env = "CXGRAPH_WS_INIT_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub ws_init_timeout: u64,

    /// Anonymous requests a minute one client address may make (no credentials, or
    /// credentials refused; a burst of as many): log-ins, refreshes, refusals. 0 turns
    /// the limit off. Counted per replica.
    #[arg(long, env = "CXGRAPH_ANONYMOUS_RATE_LIMIT", default_value_t = 120, global = true)]
    pub anonymous_rate_limit: u32,

    /// A header, set by a reverse proxy every request passes through, that names the
    /// client's address: `x-forwarded-for` (its last address, the one the proxy
    /// appended, is taken) or `x-real-ip`, say. Unset, the client is the connection's
    /// peer. Set it only behind such a proxy: otherwise a client names any address it
    /// likes and escapes the per-address limits.
    #[arg(long, env = "CXGRAPH_CLIENT_IP_HEADER", value_parser = header_name, global = true)]
    pub client_ip_header: Option<axum::http::HeaderName>,

    /// Origins whose pages may call the API from a browser (CORS), comma-separated,
    /// each exactly `scheme://host[:port]`. Unset: none, and no CORS headers are sent.
    /// Credentials are bearer tokens, never cookies, so an allowed origin gains nothing
    /// its user's token does not already give.
    #[arg(long, env = "CXGRAPH_CORS_ORIGINS", value_delimiter = ',', value_parser = origin, global = true)]
    pub cors_origins: Vec<axum::http::HeaderValue>,

    /// Seconds between two runs of the insight jobs: topic re-tagging and the
    /// negative-sentiment spike detector.
    #[arg(long, env = "CXGRAPH_INSIGHTS_JOB_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub insights_job_interval: u64,

    /// Seconds between two refreshes of the insight rollups (hourly and daily sums)
    /// and of the journey runs the funnel reads.
    /// Answers are exact either way; a shorter interval keeps more of them on the
    /// rollups' fast path.
    #[arg(long, env = "CXGRAPH_ROLLUP_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub rollup_interval: u64,

    /// Minutes per bucket of the spike detector: its windows slide by this much, and a
    /// burst is seen at most this late. Must divide a day.
    #[arg(long, env = "CXGRAPH_SPIKE_STEP_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1440), global = true)]
    pub spike_step_minutes: u32,

    /// Width, in minutes, of the window the spike detector counts negative mentions in
    /// (a whole number of steps).
    #[arg(long, env = "CXGRAPH_SPIKE_WINDOW_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080), global = true)]
    pub spike_window_minutes: u32,

    /// Days of history a window is compared with (the same window on each day).
    #[arg(long, env = "CXGRAPH_SPIKE_HISTORY_DAYS", default_value_t = 28, value_parser = clap::value_parser!(u32).range(1..=365), global = true)]
    pub spike_history_days: u32,

    /// Days a channel, topic or inbox must have been heard of before it can alert.
    #[arg(long, env = "CXGRAPH_SPIKE_MIN_HISTORY_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=365), global = true)]
    pub spike_min_history_days: u32,

    /// How unlikely a window's count must be, under its expected law, to spike.
    #[arg(long, env = "CXGRAPH_SPIKE_SIGNIFICANCE", default_value_t = 1e-5, value_parser = probability, global = true)]
    pub spike_significance: f64,

    /// Fewest negative mentions in a window that can make a spike.
    #[arg(long, env = "CXGRAPH_SPIKE_MIN_COUNT", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub spike_min_count: u32,

    /// The least over-dispersion (α of the variance μ + αμ²) the detector assumes.
    #[arg(long, env = "CXGRAPH_SPIKE_MIN_DISPERSION", default_value_t = 0.05, value_parser = positive_number, global = true)]
    pub spike_min_dispersion: f64,

    /// Minutes after its end beyond which a found episode is a backfill: recorded,
    /// not paged.
    #[arg(long, env = "CXGRAPH_SPIKE_BACKFILL_AFTER_MINUTES", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub spike_backfill_after_minutes: u32,

    /// Page backfilled episodes as well (events, webhooks, priority lift).
    #[arg(long, env = "CXGRAPH_SPIKE_PAGE_BACKFILL", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub spike_page_backfill: bool,

    /// When a spike is raised, lift open conversations on its channel (or mentioning
    /// its topic) to HIGH priority.
    #[arg(long, env = "CXGRAPH_SPIKE_RAISE_PRIORITY", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub spike_raise_priority: bool,

    /// A running SLA clock due within this many minutes raises an "at risk" alert.
    #[arg(long, env = "CXGRAPH_SLA_AT_RISK_MINUTES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1440), global = true)]
    pub sla_at_risk_minutes: u32,

    /// Milliseconds before a failed webhook is tried again; doubles each attempt.
    #[arg(long, env = "CXGRAPH_WEBHOOK_RETRY_BASE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000), global = true)]
    pub webhook_retry_base_ms: u64,

    /// Hours a failing webhook delivery is retried before it is given up.
    #[arg(long, env = "CXGRAPH_WEBHOOK_GIVE_UP_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720), global = true)]
    pub webhook_give_up_hours: u32,

    /// Consecutive failed attempts after which a webhook endpoint is disabled.
    #[arg(long, env = "CXGRAPH_WEBHOOK_DISABLE_AFTER", default_value_t = 50, value_parser = clap::value_parser!(i32).range(1..=10_000), global = true)]
    pub webhook_disable_after: i32,

    /// Log format; defaults to pretty on SQLite and JSON on PostgreSQL.
    #[arg(long, env = "CXGRAPH_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,

    /// OTLP/HTTP collector base URL (spans go to `<url>/v1/traces`); unset, no traces
    /// are exported.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,

    /// OTLP encoding: `http/protobuf` (default) or `http/json`.
    #[arg(long = "otlp-protocol", env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "http/protobuf", value_parser = ["http/protobuf", "http/json"], global = true)]
    pub otlp_protocol: String,

    /// `service.name` of exported traces.
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME", default_value = "cxgraph", global = true)]
    pub otel_service_name: String,

    /// Log filter in `tracing` syntax, e.g. `info,cxgraph=debug`.
    #[arg(long, env = "CXGRAPH_LOG", default_value = "info,sqlx=warn", global = true)]
    pub log: String,
}

impl Settings {
    /// Settings for tests and tools: every default, on the given database.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let cli = Cli::parse_from(["cxgraph"]);
        Self { database_url: database_url.into(), ..cli.settings }
    }

    /// The JWT key, if one is configured (an empty variable counts as unset).
    pub fn jwt_secret(&self) -> Option<&str> {
        self.jwt_secret.as_deref().filter(|s| !s.is_empty())
    }

    /// The admin password, if one is configured (an empty variable counts as unset).
    pub fn admin_password(&self) -> Option<&str> {
        self.admin_password.as_deref().filter(|s| !s.is_empty())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn session_check_ttl(&self) -> Duration {
        Duration::from_secs(self.session_check_ttl)
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl)
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(if self.is_sqlite() { LogFormat::Pretty } else { LogFormat::Json })
    }

    /// Whether introspection is served: as configured, else on SQLite only.
    pub fn introspection(&self) -> bool {
        self.introspection.unwrap_or(self.is_sqlite())
    }

    /// Whether validation errors suggest names: as configured, else as introspection.
    pub fn suggestions(&self) -> bool {
        self.suggestions.unwrap_or(self.introspection())
    }

    pub fn load_demo_data(&self) -> bool {
        match self.demo_data {
            DemoData::Auto => self.is_sqlite(),
            DemoData::Always => true,
            DemoData::Never => false,
        }
    }
}

/// A finite number above zero (for thresholds).
fn header_name(s: &str) -> Result<axum::http::HeaderName, String> {
    axum::http::HeaderName::from_bytes(s.trim().as_bytes()).map_err(|_| format!("{s:?} is not a header name"))
}

/// An origin as a browser sends it: `http(s)://host[:port]`, no path, no wildcard.
fn origin(s: &str) -> Result<axum::http::HeaderValue, String> {
    let s = s.trim();
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '*', '?', '#', ' ']) => {
            axum::http::HeaderValue::from_str(s).map_err(|_| format!("{s:?} is not an origin"))
        }
        _ => Err(format!("{s:?} is not an origin (scheme://host[:port], no path or wildcard)")),
    }
}

fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 0.5 => Ok(v),
        _ => Err(format!("{s:?} is not a probability above 0 and below 0.5")),
    }
}

fn positive_number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number above zero")),
    }
}

/// Where `/metrics` listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsBind(pub Option<SocketAddr>);

fn metrics_bind(s: &str) -> Result<MetricsBind, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsBind(None));
    }
    s.parse().map(|a| MetricsBind(Some(a))).map_err(|_| format!("{s:?} is not an address (host:port) or `off`"))
}
