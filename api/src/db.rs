//! Connecting to the database, the one place that knows SQLite from PostgreSQL at
//! connection time.
//!
//! SQLite runs in WAL mode with foreign keys on, a busy timeout (writers wait for the
//! lock instead of failing with "database is locked") and `synchronous = FULL`, so an
//! acknowledged write survives a crash of the process or the machine; its page caches
//! share one bounded heap and each connection keeps few prepared statements.
//! PostgreSQL gets a bounded pool whose acquire timeout turns an unreachable database
//! into a fast `UNAVAILABLE` instead of a hanging request.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::config::Settings;

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most heap SQLite may keep for itself in this process, in bytes. Each pooled
/// connection has its own page cache (2 MiB by default), and as the database grows
/// they fill: 16 connections would take 32 MiB on their own, the soak measured
/// resident memory climbing for a quarter of an hour. SQLite sheds cached pages to
/// stay under this limit (it is advisory: a statement that needs more still gets it).
const SQLITE_SOFT_HEAP_LIMIT: &str = "16777216";

/// Prepared statements each SQLite connection keeps (sqlx's default is 100). A
/// prepared statement lives on SQLite's heap outside the page cache, so the soft
/// limit cannot shed it, and lists of ids (DataLoader batches, the 360's per-customer
/// `UNION ALL`) give a new statement text for every length: 16 connections × 100
/// large statements can hold tens of megabytes. The hot statements stay cached; a
/// rare shape is prepared again (tens of microseconds). On its own this did not
/// change the soak's memory curve; the allocator did (see `main.rs`).
const SQLITE_STATEMENT_CACHE: usize = 24;

/// Session settings every PostgreSQL connection starts with. JIT compilation is off:
/// the funnel's statement (about 110,000 cost units, over `jit_above_cost`) spent 125
/// of its 641 ms compiling expressions for one run over 135,000 rows (EXPLAIN ANALYZE
/// on the benchmark dataset); every statement here is planned for one answer, so the
/// compile never pays back.
const POSTGRES_SESSION: [(&str, &str); 1] = [("jit", "off")];

/// Opens the pool described by the settings.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(settings.database_url.clone());
    opts.max_connections(settings.db_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(settings.db_acquire_timeout))
        .acquire_timeout(Duration::from_secs(settings.db_acquire_timeout))
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|o| o.options(POSTGRES_SESSION))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .synchronous(SqliteSynchronous::Full)
                .pragma("soft_heap_limit", SQLITE_SOFT_HEAP_LIMIT)
                .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
                .create_if_missing(true)
        });
    Database::connect(opts).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes waits its turn
/// (busy timeout) instead of failing when another writer committed in between; on
/// PostgreSQL it is a plain `BEGIN`.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    db.begin_with_options(options).await
}

/// A statement from SQL written with `?` placeholders (SQLite's), renumbered to `$1…`
/// for PostgreSQL. The SQL must hold no `?` other than placeholders.
pub fn statement(backend: DatabaseBackend, sql: &str, values: Vec<sea_orm::Value>) -> sea_orm::Statement {
    let sql = if backend == DatabaseBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    sea_orm::Statement::from_sql_and_values(backend, sql, values)
}

/// `?, ?, …` for an `IN (…)` list of `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Whether an error is a unique-constraint violation (a concurrent insert won).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Whether a write lost to a concurrent one and succeeds when tried again: a unique
/// key taken meanwhile, or PostgreSQL breaking a deadlock (40P01) or a serialisation
/// conflict (40001) by failing this side.
pub fn lost_race(err: &DbErr) -> bool {
    if is_unique_violation(err) {
        return true;
    }
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    matches!(&**e, sea_orm::sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Applies pending migrations while holding a lock, so replicas starting together on
/// an empty database do not race to create the same tables: on PostgreSQL a session
/// advisory lock on a connection of its own (the migrations run on it), on SQLite
/// (one process) a process-wide mutex.
pub async fn migrate_exclusively(settings: &Settings) -> Result<(), DbErr> {
    static LOCAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _local = LOCAL.lock().await;
    let mut one = settings.clone();
    one.db_max_connections = 1;
    let conn = connect(&one).await?;
    let postgres = conn.get_database_backend() == DatabaseBackend::Postgres;
    if postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).await?;
    }
    let result = Migrator::up(&conn, None).await;
    if postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).await.ok();
    }
    conn.close().await.ok();
    result
}

/// The advisory lock key migrations take ("cxgraph" in ASCII).
const MIGRATION_LOCK: i64 = 0x0063_7867_7261_7068;

/// Checks that the database answers within `patience` (for `/readyz`). Bounded
/// because a pooled connection to a frozen server would otherwise wait forever: the
/// acquire timeout covers getting a connection, not a statement on it.
pub async fn ping(db: &DatabaseConnection, patience: Duration) -> bool {
    tokio::time::timeout(patience, db.execute_unprepared("SELECT 1")).await.is_ok_and(|r| r.is_ok())
}

/// Short name of the backend, for logs and the start-up banner.
pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => "SQLite",
        DatabaseBackend::Postgres => "PostgreSQL",
        _ => "unsupported",
    }
}
