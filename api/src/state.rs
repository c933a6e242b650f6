//! What every request shares: the database pool, session keys, settings and the
//! statement counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::DatabaseConnection;

use crate::auth::cost_budget::CostBudget;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::sessions::SessionConfig;
use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::events::Bus;
use crate::graphql::persisted::PersistedQueries;
use crate::http::SocketCounts;

/// Shared application state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    /// The read replica, when configured.
    read_db: Option<DatabaseConnection>,
    sessions: SessionConfig,
    settings: Settings,
    db_stats: Arc<DbStats>,
    bus: Bus,
    login_throttle: LoginThrottle,
    rate_limiter: RateLimiter,
    cost_budget: CostBudget,
    sockets: Arc<SocketCounts>,
    persisted: PersistedQueries,
}

/// Counters of the statements the application sent, fed by sea-orm's metric callback.
/// Cheap (a relaxed atomic add per statement); the N+1 tests read it, and each
/// statement's time also goes to the process's `/metrics`. It can also keep a copy of
/// each statement while asked to: the benchmark replays what a request sent, with its
/// values, as the raw-SQL floor (one relaxed load per statement when not capturing).
#[derive(Debug, Default)]
pub struct DbStats {
    statements: AtomicU64,
    capturing: AtomicBool,
    captured: Mutex<Vec<sea_orm::Statement>>,
}

impl DbStats {
    /// Counts one statement.
    pub fn count(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// Statements sent so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Starts keeping a copy of every statement sent (dropping earlier copies).
    pub fn start_capture(&self) {
        self.captured.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.capturing.store(true, Ordering::SeqCst);
    }

    /// Stops keeping copies and answers the statements sent since `start_capture`.
    pub fn take_capture(&self) -> Vec<sea_orm::Statement> {
        self.capturing.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Installs the counters on a connection.
    pub fn install(db: &mut DatabaseConnection) -> Arc<DbStats> {
        let stats = Arc::new(DbStats::default());
        let counter = Arc::clone(&stats);
        db.set_metric_callback(move |info| {
            counter.statements.fetch_add(1, Ordering::Relaxed);
            if counter.capturing.load(Ordering::Relaxed) {
                counter.captured.lock().unwrap_or_else(PoisonError::into_inner).push(info.statement.clone());
            }
            crate::metrics::get().statement(info.elapsed, info.failed);
        });
        stats
    }
}

impl AppState {
    /// State over a connection whose statements are counted in `db_stats`.
    pub fn new(db: DatabaseConnection, sessions: SessionConfig, settings: Settings, db_stats: Arc<DbStats>) -> Self {
        Self::with_replica(db, None, sessions, settings, db_stats, PersistedQueries::default())
    }

    /// State with a read replica for insights and exports.
    pub fn with_replica(
        db: DatabaseConnection,
        read_db: Option<DatabaseConnection>,
        sessions: SessionConfig,
        settings: Settings,
        db_stats: Arc<DbStats>,
        persisted: PersistedQueries,
    ) -> Self {
        let (settings_rate, settings_anonymous) = (settings.rate_limit, settings.anonymous_rate_limit);
        let settings_budget = settings.cost_budget;
        Self {
            inner: Arc::new(Inner {
                db,
                read_db,
                sessions,
                settings,
                db_stats,
                bus: Bus::new(),
                login_throttle: LoginThrottle::default(),
                rate_limiter: RateLimiter::new(settings_rate, settings_anonymous),
                cost_budget: CostBudget::new(settings_budget),
                sockets: Arc::default(),
                persisted,
            }),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The connection for heavy reads (insights, export): the replica when configured,
    /// else the primary. A replica lags a little: never read your own writes here.
    pub fn read_db(&self) -> &DatabaseConnection {
        self.inner.read_db.as_ref().unwrap_or(&self.inner.db)
    }

    pub fn sessions(&self) -> &SessionConfig {
        &self.inner.sessions
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Per-caller request buckets of this process.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate_limiter
    }

    /// Per-caller query-cost budgets of this process.
    pub fn cost_budget(&self) -> &CostBudget {
        &self.inner.cost_budget
    }

    /// Open WebSocket connections of this process.
    pub fn sockets(&self) -> &Arc<SocketCounts> {
        &self.inner.sockets
    }

    /// The persisted-query manifest and mode.
    pub fn persisted(&self) -> &PersistedQueries {
        &self.inner.persisted
    }

    /// Failed log-in counters of this process.
    pub fn login_throttle(&self) -> &LoginThrottle {
        &self.inner.login_throttle
    }

    /// This process's event bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn db_stats(&self) -> &DbStats {
        &self.inner.db_stats
    }
}
