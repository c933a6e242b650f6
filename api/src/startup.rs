//! Building and running the application: connect, migrate, bootstrap, listen.
//!
//! The same [`Application`] serves `cxgraph serve` and the test harness (which binds
//! port 0 and reads the real address back), so tests exercise exactly what runs in
//! production.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use entity::enums::Role;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use tokio::net::TcpListener;

use crate::auth::jwt::JwtKeys;
use crate::auth::secret;
use crate::auth::sessions::SessionConfig;
use crate::config::{SeedArgs, Settings};
use crate::customers::privacy::{RetentionPolicy, spawn_retention};
use crate::dataset::{self, SeedReport};
use crate::error::AppError;
use crate::events::webhooks::{self, WebhookConfig};
use crate::graphql::persisted::PersistedQueries;
use crate::interactions::sweeper::spawn_sweeper;
use crate::state::{AppState, DbStats};
use crate::users::{self, NewUser};
use crate::{db, http};

/// What start-up did that the operator must hear about once.
#[derive(Debug, Default)]
pub struct Bootstrap {
    /// The admin account created on an empty database, with its password when cxgraph
    /// generated it (shown once, never stored in clear).
    pub admin_created: Option<(String, Option<String>)>,
    /// The demo dataset, when it was loaded.
    pub demo_data: Option<SeedReport>,
    /// A random JWT key was generated (embedded demo only): sessions end at restart.
    pub ephemeral_jwt_secret: bool,
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// The `/metrics` listener, apart from the API.
    metrics: Option<TcpListener>,
    state: AppState,
    /// The pool for background jobs (not counted in `DbStats`).
    jobs_db: DatabaseConnection,
}

/// Settings of the flat-baseline detector, gone with it: set, they would be silently
/// ignored, so start-up names their replacement instead.
const RETIRED_SPIKE_SETTINGS: [(&str, &str); 2] = [
    ("CXGRAPH_SPIKE_THRESHOLD", "CXGRAPH_SPIKE_SIGNIFICANCE"),
    ("CXGRAPH_SPIKE_BASELINE_WINDOWS", "CXGRAPH_SPIKE_HISTORY_DAYS"),
];

/// The spike detector's settings, refused at start when they cannot work together.
fn spike_params(settings: &Settings) -> anyhow::Result<crate::alerts::spikes::Params> {
    for (old, new) in RETIRED_SPIKE_SETTINGS {
        if std::env::var_os(old).is_some() {
            anyhow::bail!("{old} is no longer read: the spike detector now uses {new} (see README, Early warning)");
        }
    }
    let params = crate::alerts::spikes::Params {
        step: chrono::Duration::minutes(i64::from(settings.spike_step_minutes)),
        window: chrono::Duration::minutes(i64::from(settings.spike_window_minutes)),
        history_days: settings.spike_history_days,
        min_history_days: settings.spike_min_history_days,
        significance: settings.spike_significance,
        min_count: settings.spike_min_count,
        min_dispersion: settings.spike_min_dispersion,
        backfill_after: chrono::Duration::minutes(i64::from(settings.spike_backfill_after_minutes)),
        page_backfill: settings.spike_page_backfill,
        raise_priority: settings.spike_raise_priority,
        ..crate::alerts::spikes::Params::standard()
    };
    params.check().map_err(anyhow::Error::msg)?;
    Ok(params)
}

/// Chooses the JWT key: the configured one, or a random one for the embedded demo.
fn jwt_keys(settings: &Settings) -> anyhow::Result<(JwtKeys, bool)> {
    let (secret, ephemeral) = match settings.jwt_secret() {
        Some(s) => (s.to_owned(), false),
        None if settings.is_sqlite() => (secret::random_password() + &secret::random_password(), true),
        None => anyhow::bail!("CXGRAPH_JWT_SECRET must be set (at least 32 bytes) when DATABASE_URL is not SQLite"),
    };
    let previous: Vec<&[u8]> = settings
        .jwt_previous_secrets
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::as_bytes)
        .collect();
    let keys = JwtKeys::with_previous(secret.as_bytes(), &previous, settings.access_token_ttl())
        .map_err(anyhow::Error::msg)?;
    Ok((keys, ephemeral))
}

/// Opens and migrates the database named by the settings.
pub async fn open_database(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = db::connect(settings).await.map_err(|e| anyhow::anyhow!("cannot open database: {e}"))?;
    db::migrate_exclusively(settings).await.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    Ok(db)
}

fn app_error(context: &str, err: AppError) -> anyhow::Error {
    match err {
        AppError::Internal(e) => e.context(context.to_owned()),
        other => anyhow::anyhow!("{context}: {}", other.message()),
    }
}

/// Creates the first admin and the demo data on an empty database.
pub async fn bootstrap(db: &DatabaseConnection, settings: &Settings) -> anyhow::Result<Bootstrap> {
    let mut report = Bootstrap::default();
    if users::count(db).await.map_err(|e| app_error("counting users", e))? == 0 {
        let (password, generated) = match settings.admin_password() {
            Some(p) => (p.to_owned(), false),
            None => (secret::random_password(), true),
        };
        let new = NewUser {
            email: settings.admin_email.clone(),
            display_name: Some("Administrator".into()),
            role: Role::Admin,
            password: password.clone(),
        };
        match users::create(db, new).await {
            Ok(admin) => report.admin_created = Some((admin.email, generated.then_some(password))),
            // Another replica starting at the same moment created it first.
            Err(AppError::Invalid(errors)) if errors.iter().any(|e| e.code == "TAKEN") => {}
            Err(e) => return Err(app_error("creating the admin account", e)),
        }
    }
    let empty = entity::customer::Entity::find().count(db).await.context("counting customers")? == 0;
    if settings.load_demo_data() && empty {
        let seeded =
            dataset::generate(db, &SeedArgs::default()).await.map_err(|e| app_error("loading demo data", e))?;
        report.demo_data = Some(seeded);
    }
    Ok(report)
}

impl Application {
    /// Connects, migrates, bootstraps and binds; does not serve yet.
    pub async fn build(settings: Settings) -> anyhow::Result<(Application, Bootstrap)> {
        spike_params(&settings)?;
        let (keys, ephemeral) = jwt_keys(&settings)?;
        let persisted = PersistedQueries::load(settings.persisted_queries.as_deref(), settings.persisted_queries_only)?;
        let listener =
            TcpListener::bind(settings.bind).await.with_context(|| format!("cannot listen on {}", settings.bind))?;
        let mut db = open_database(&settings).await?;
        // Background jobs have a pool of their own on PostgreSQL (see
        // `db::connect_background`), on SQLite a clone made before the statement
        // counters are installed: `DbStats` counts what requests cost.
        let jobs_db = db::connect_background(&settings, &db)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the background jobs' pool: {e}"))?;
        let db_stats = DbStats::install(&mut db);
        let mut report = bootstrap(&db, &settings).await?;
        report.ephemeral_jwt_secret = ephemeral;
        let sessions = SessionConfig::new(keys, settings.refresh_token_ttl(), settings.session_check_ttl());
        let metrics = match settings.metrics_bind.0 {
            Some(addr) => match TcpListener::bind(addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot listen for /metrics; serving without it");
                    None
                }
            },
            None => None,
        };
        let read_db = match &settings.database_read_url {
            Some(url) => {
                let replica = Settings { database_url: url.clone(), ..settings.clone() };
                let mut read =
                    db::connect(&replica).await.map_err(|e| anyhow::anyhow!("cannot open the read replica: {e}"))?;
                let counted = db_stats.clone();
                read.set_metric_callback(move |info| {
                    counted.count();
                    crate::metrics::get().statement(info.elapsed, info.failed);
                });
                Some(read)
            }
            None => None,
        };
        let state = AppState::with_replica(db, read_db, sessions, settings, db_stats, persisted);
        Ok((Application { listener, metrics, state, jobs_db }, report))
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The `/metrics` listener's address, when it listens.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let settings = self.state.settings();
        let mut jobs = Vec::new();
        // The sentiment model trains on first use: now, off the request path.
        jobs.push(tokio::task::spawn_blocking(|| {
            crate::sentiment::analyse("");
        }));
        if let Some(days) = settings.retention_text_days {
            let policy = RetentionPolicy { text_days: days };
            let interval = std::time::Duration::from_secs(settings.retention_interval);
            jobs.push(spawn_retention(self.jobs_db.clone(), policy, interval));
        }
        jobs.push(self.state.sessions().access.follow(self.state.bus()));
        jobs.extend(self.state.bus().start(self.jobs_db.clone(), &settings.database_url).await);
        jobs.push(spawn_sweeper(
            self.jobs_db.clone(),
            self.state.bus().clone(),
            std::time::Duration::from_secs(settings.sla_sweep_interval),
            chrono::Duration::minutes(i64::from(settings.sla_at_risk_minutes)),
        ));
        let webhooks = WebhookConfig {
            retry_base: std::time::Duration::from_millis(settings.webhook_retry_base_ms),
            give_up_after: chrono::Duration::hours(i64::from(settings.webhook_give_up_hours)),
            disable_after: settings.webhook_disable_after,
            timeout: std::time::Duration::from_secs(10),
        };
        jobs.push(webhooks::spawn_worker(self.jobs_db.clone(), self.state.bus(), webhooks));
        let insights_interval = std::time::Duration::from_secs(settings.insights_job_interval);
        jobs.push(crate::feedback::topics::spawn_retagger(self.jobs_db.clone(), insights_interval));
        jobs.push(crate::insights::rollups::spawn_refresher(
            self.jobs_db.clone(),
            std::time::Duration::from_secs(settings.rollup_interval),
        ));
        let spikes = spike_params(settings).unwrap_or_else(|_| crate::alerts::spikes::Params::standard());
        jobs.push(crate::alerts::spikes::spawn_detector(
            self.jobs_db.clone(),
            self.state.bus().clone(),
            insights_interval,
            spikes,
        ));
        let router = http::router(self.state.clone());
        // The metrics listener stops with the API (it holds the pool too).
        let (stop_metrics, stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = self.metrics.map(|listener| {
            let app = http::metrics_router(self.state.clone());
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stopped.await;
                };
                axum::serve(listener, app).with_graceful_shutdown(stopped).await
            })
        });
        // On the signal: subscriptions complete, new connections stop, in-flight
        // requests finish.
        let bus = self.state.bus().clone();
        let shutdown = async move {
            shutdown.await;
            bus.close();
        };
        // With the peer's address on each request: the per-address limits need it.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await;
        let _ = stop_metrics.send(());
        if let Some(task) = metrics {
            let _ = task.await;
        }
        // Background jobs stop between units of work' transactions or roll back.
        for job in jobs {
            job.abort();
        }
        served?;
        self.state.db().clone().close().await.ok();
        Ok(())
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
