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
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, Iterable, SqliteTransactionMode, TransactionOptions, TransactionTrait,
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

/// SQLite overwrites what it deletes with zeros (`secure_delete`): without it a
/// deleted identity or a nulled message body stays in free pages and slack space of
/// the file, readable with `strings`, after the erasure that promised it was gone.
/// The cost is writing the freed bytes once more, on pages the statement writes
/// anyway.
const SQLITE_SECURE_DELETE: &str = "ON";

/// Session settings every PostgreSQL connection starts with. JIT compilation is off:
/// the funnel's statement (about 110,000 cost units, over `jit_above_cost`) spent 125
/// of its 641 ms compiling expressions for one run over 135,000 rows (EXPLAIN ANALYZE
/// on the benchmark dataset); every statement here is planned for one answer, so the
/// compile never pays back.
const POSTGRES_SESSION: [(&str, &str); 1] = [("jit", "off")];

/// The URL a connection is opened with: a PostgreSQL server on this host
/// (`localhost`, `127.x.x.x`, `::1`) named without an `sslmode` gets
/// `sslmode=disable`, everything else is used as given.
///
/// Why: sqlx's default, like libpq's, is `prefer`, so a loopback connection to a
/// server with TLS on (Debian's default) encrypts every message for nothing, and with
/// sqlx 0.9.0 not setting `TCP_NODELAY` (transact-rs/sqlx#4335) each TLS record after
/// the first of a write waits for a delayed ACK: strace showed two 40–45 ms stalls in
/// every connection's handshake and one per statement larger than a 16 KiB record.
/// Measured on the benchmark dataset: start to ready 354 → 66 ms, a 100-event ingest
/// batch 330 → 130 ms. Name `sslmode` to choose otherwise.
pub fn effective_url(url: &str) -> String {
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return url.to_owned();
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query.split('&').any(|pair| pair.starts_with("sslmode=")) {
        return url.to_owned();
    }
    let authority = before_query.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return url.to_owned();
    }
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}sslmode=disable")
}

/// A pooled connection idle at least this long is pinged before it is handed out;
/// one in use more recently is handed out as it is (HikariCP's rule, with its
/// half-second window).
///
/// Why not ping every time (sqlx's default): the ping is a round trip to the server,
/// and sqlx also pings every connection when it comes back to the pool. A request of
/// one statement thus cost three round trips where one carries the work (strace of
/// the server under the customer-by-id load: one `Bind` and two `Sync` messages a
/// request; now one of each). Under load connections come back within milliseconds,
/// so they are not pinged; an idle pool is. The cost: when the server restarts
/// under load, a connection it closed that was in use moments before is handed out
/// once, its statement fails (`UNAVAILABLE`, as during the restart itself), and the
/// ping on return discards it.
const PING_IF_IDLE_FOR: Duration = Duration::from_millis(500);

/// Opens the pool described by the settings.
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, DbErr> {
    let opts = options(settings, &POSTGRES_SESSION, settings.db_max_connections, 1);
    let mut attempt = 0;
    loop {
        match Database::connect(opts.clone()).await {
            Err(e) if attempt < SQLITE_OPEN_RETRIES && sqlite_busy(&e) => {
                // Two processes opening a new SQLite file at once: switching it to WAL
                // takes a lock SQLite refuses at once rather than waiting the busy
                // timeout (seen when replicas start together). The other one is done
                // in milliseconds; open again.
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            result => return result,
        }
    }
}

/// The connection options every pool shares, with its own session settings and size.
fn options(settings: &Settings, session: &[(&str, &str)], max: u32, min: u32) -> ConnectOptions {
    let url = effective_url(&settings.database_url);
    if may_use_tls(&url) {
        TLS_POSSIBLE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let session: Vec<(String, String)> = session.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max)
        .min_connections(min)
        .connect_timeout(Duration::from_secs(settings.db_acquire_timeout))
        .acquire_timeout(Duration::from_secs(settings.db_acquire_timeout))
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(move |o| o.options(session.clone()))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .synchronous(SqliteSynchronous::Full)
                .pragma("soft_heap_limit", SQLITE_SOFT_HEAP_LIMIT)
                .pragma("secure_delete", SQLITE_SECURE_DELETE)
                .statement_cache_capacity(SQLITE_STATEMENT_CACHE)
                .create_if_missing(true)
        });
    opts
}

/// Connections of the background jobs' pool on PostgreSQL.
const BACKGROUND_CONNECTIONS: u32 = 3;

/// Session settings of the background jobs' connections: those of every connection,
/// and no parallel workers. A job's scan (the spike detector's day of negative
/// mentions, 100–200 ms on the benchmark dataset) planned in parallel took every core
/// for its length once a minute; the insights' p99 at 200 req/s was 12–17 ms in three
/// runs that way and 8.9–9.5 ms with the job on one core. A job may take longer;
/// requests may not wait for it.
const POSTGRES_BACKGROUND_SESSION: [(&str, &str); 2] = [("jit", "off"), ("max_parallel_workers_per_gather", "0")];

/// The pool background jobs run on: on PostgreSQL a small one of its own (which also
/// keeps jobs from taking the requests' connections), on SQLite the requests' pool
/// (one file, one writer at a time).
pub async fn connect_background(settings: &Settings, main: &DatabaseConnection) -> Result<DatabaseConnection, DbErr> {
    if main.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(main.clone());
    }
    Database::connect(options(settings, &POSTGRES_BACKGROUND_SESSION, BACKGROUND_CONNECTIONS, 0)).await
}

/// Opens of a SQLite file retried while another connection holds it locked.
const SQLITE_OPEN_RETRIES: u32 = 10;

/// Whether opening failed because SQLite answered `SQLITE_BUSY` ("database is locked").
fn sqlite_busy(err: &DbErr) -> bool {
    let (DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))
    | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    e.as_database_error().and_then(|d| d.code()).is_some_and(|code| code == "5")
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

/// Removes from SQLite's write-ahead log the page images written before a change that
/// must not survive on disk (an erasure): a `TRUNCATE` checkpoint copies the log into
/// the file, whose freed bytes `secure_delete` has zeroed, and truncates the log to
/// nothing. Until then the log's older frames still hold the erased text. It waits
/// (the busy timeout) for readers of older snapshots; if some still hold the log it
/// returns `false` and the frames are overwritten as the log wraps. PostgreSQL: `true`
/// (its dead tuples are the vacuum's; no file of ours to clean).
pub async fn checkpoint_after_erasure(db: &DatabaseConnection) -> Result<bool, DbErr> {
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return Ok(true);
    }
    let sql = sea_orm::Statement::from_string(DatabaseBackend::Sqlite, "PRAGMA wal_checkpoint(TRUNCATE)");
    let busy = match db.query_one_raw(sql).await? {
        Some(row) => row.try_get_by_index::<i64>(0)? != 0,
        None => false,
    };
    Ok(!busy)
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

/// `WITH name(c1, c2, …) AS (VALUES (?, ?, …), …) ` for `rows` (each as many values as
/// `columns`), with its values, for a statement that joins a list of composite keys.
///
/// Why not `(a, b) IN ((…), (…))`: PostgreSQL plans that as one OR branch per key
/// (283 ms of planning for a thousand keys on the benchmark dataset), and `a IN (…)
/// AND b IN (…)` probes the index for every combination of the two lists (six
/// channels times a hundred external ids: 2,400 pages read where 400 do). A join on
/// the `VALUES` list probes once per key on both backends.
pub fn keys_cte(name: &str, columns: &[&str], rows: Vec<Vec<sea_orm::Value>>) -> (String, Vec<sea_orm::Value>) {
    let tuple = format!("({})", placeholders(columns.len()));
    let sql = format!("WITH {name}({}) AS (VALUES {}) ", columns.join(", "), vec![tuple; rows.len()].join(", "));
    (sql, rows.into_iter().flatten().collect())
}

/// The most bytes one multi-row write may carry on the wire when PostgreSQL may be
/// reached over TLS (see [`insert_all`]).
const STATEMENT_BUDGET: usize = 12 * 1024;

/// The most values one statement binds: under SQLite's limit (32,766) and
/// PostgreSQL's (65,535), whatever the batch size.
const MAX_BOUND_VALUES: usize = 30_000;

/// Whether a PostgreSQL pool of this process may speak TLS: set by [`connect`] when a
/// URL neither disables TLS nor names a Unix socket.
static TLS_POSSIBLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a connection opened with `url` (after [`effective_url`]) may negotiate TLS.
fn may_use_tls(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return false;
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let socket = before_query.split('/').next().is_some_and(|authority| authority.rsplit('@').next() == Some(""))
        || query.split('&').any(|pair| pair.starts_with("host=/"));
    !socket && !query.split('&').any(|pair| pair == "sslmode=disable")
}

/// The wire size of one bound value, roughly: its bytes, its length prefix in `Bind`,
/// and its placeholder and type in `Parse` (`$123, ` and four bytes of type).
fn value_size(value: &sea_orm::Value) -> usize {
    use sea_orm::Value;
    let payload = match value {
        Value::String(Some(s)) => s.len(),
        Value::Bytes(Some(b)) => b.len(),
        Value::Json(Some(j)) => j.to_string().len(),
        _ => 16,
    };
    payload + 14
}

/// Splits rows into pieces, in order, each as many rows as the largest power of two
/// that fits: at most [`MAX_BOUND_VALUES`] bound values and, given a byte budget,
/// under it (a row larger than the budget goes alone).
///
/// Why powers of two: every row count is a statement text of its own, and the driver
/// prepares and keeps each text it sees per connection (sqlx keeps a hundred on
/// PostgreSQL). Batches of any size thus use at most ten texts per table (1 … 512
/// rows) instead of one per size: cut exactly, the ingest benchmark's server grew
/// from 66 to 105 MiB holding prepared conversation upserts of every length.
fn pieces<A: ActiveModelTrait>(rows: Vec<A>, byte_budget: Option<usize>) -> Vec<Vec<A>> {
    let costs: Vec<(usize, usize)> = rows
        .iter()
        .map(|row| {
            let values: Vec<sea_orm::Value> =
                <A::Entity as EntityTrait>::Column::iter().filter_map(|c| row.get(c).into_value()).collect();
            let bytes = if byte_budget.is_some() { values.iter().map(value_size).sum() } else { 0 };
            (bytes, values.len())
        })
        .collect();
    let fits = |piece: &[(usize, usize)]| {
        piece.iter().map(|c| c.0).sum::<usize>() <= byte_budget.unwrap_or(usize::MAX)
            && piece.iter().map(|c| c.1).sum::<usize>() <= MAX_BOUND_VALUES
    };
    let mut out = Vec::new();
    let mut rows = rows.into_iter();
    let mut start = 0;
    while start < costs.len() {
        let left = costs.len() - start;
        let mut n = 1 << left.ilog2();
        while n > 1 && !fits(&costs[start..start + n]) {
            n /= 2;
        }
        out.push(rows.by_ref().take(n).collect());
        start += n;
    }
    out
}

/// Inserts rows in as few statements as the limits allow (see [`pieces`]), each with
/// `on_conflict` if given; answers the rows written. Over a plain connection (SQLite,
/// PostgreSQL on this host or a socket) a batch of 100 rows is three statements
/// (64 + 32 + 4).
///
/// Over TLS each statement stays under [`STATEMENT_BUDGET`] bytes: a message leaves as
/// 16 KiB records, one write each, and sqlx 0.9.0 (under sea-orm 2.0) no longer sets
/// `TCP_NODELAY` (transact-rs/sqlx#4335, fixed upstream, not yet released), so
/// Nagle's algorithm holds every record after the first until the server's delayed
/// ACK, about 40 ms later. `strace` of the server showed four such stalls in each
/// 100-event ingest batch; with this budget a batch over TLS took 87 ms instead of 330
/// (benchmark dataset, loopback with `sslmode=require`). Without TLS the cut only
/// added round trips: a 100-event batch's conversation upsert went as fourteen
/// statements. Drop the budget once sqlx sets the option again.
pub async fn insert_all<A>(
    db: &impl ConnectionTrait,
    rows: Vec<A>,
    on_conflict: Option<OnConflict>,
) -> Result<u64, DbErr>
where
    A: ActiveModelTrait + Send,
{
    let tls = db.get_database_backend() == DatabaseBackend::Postgres
        && TLS_POSSIBLE.load(std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for piece in pieces(rows, tls.then_some(STATEMENT_BUDGET)) {
        let insert = <A::Entity as EntityTrait>::insert_many(piece);
        let insert = match &on_conflict {
            Some(c) => insert.on_conflict(c.clone()),
            None => insert,
        };
        written += insert.exec_without_returning(db).await?;
    }
    Ok(written)
}

/// Whether an error is a unique-constraint violation (a concurrent insert won).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Whether a write lost to a concurrent one and succeeds when tried again: a unique
/// key taken meanwhile, or PostgreSQL breaking a deadlock (40P01) or a serialisation
/// conflict (40001) by failing this side.
pub fn lost_race(err: &DbErr) -> bool {
    is_unique_violation(err) || crate::error::contended(err)
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
///
/// A failed probe is tried again, up to once per pooled connection and one more:
/// pooled connections are not pinged when they were in use moments ago (see
/// [`PING_IF_IDLE_FOR`]), so after the server restarted the first probes may meet
/// connections it has closed. Each such failure discards its connection; the
/// database is up when a probe on a live (or new) connection answers.
pub async fn ping(db: &DatabaseConnection, patience: Duration, pool_size: u32) -> bool {
    let probes = async {
        for _ in 0..=pool_size {
            if db.execute_unprepared("SELECT 1").await.is_ok() {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(patience, probes).await.unwrap_or(false)
}

/// Short name of the backend, for logs and the start-up banner.
pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => "SQLite",
        DatabaseBackend::Postgres => "PostgreSQL",
        _ => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::{interaction_topic, topic};
    use sea_orm::Set;
    use uuid::Uuid;

    fn link() -> interaction_topic::ActiveModel {
        interaction_topic::ActiveModel { interaction_id: Set(Uuid::now_v7()), topic_id: Set(Uuid::now_v7()) }
    }

    fn named(bytes: usize) -> topic::ActiveModel {
        topic::ActiveModel { id: Set(Uuid::now_v7()), name: Set("x".repeat(bytes)), ..Default::default() }
    }

    #[test]
    fn loopback_postgres_without_sslmode_goes_without_tls() {
        for (given, used) in [
            ("postgres://u@127.0.0.1:5432/db", "postgres://u@127.0.0.1:5432/db?sslmode=disable"),
            (
                "postgresql://localhost/db?application_name=x",
                "postgresql://localhost/db?application_name=x&sslmode=disable",
            ),
            ("postgres://u:p@[::1]:5432/db", "postgres://u:p@[::1]:5432/db?sslmode=disable"),
            ("postgres://127.0.0.2", "postgres://127.0.0.2?sslmode=disable"),
        ] {
            assert_eq!(effective_url(given), used);
        }
        for kept in [
            "postgres://u@127.0.0.1:5432/db?sslmode=require",
            "postgres://u@db.example.com:5432/db",
            "postgres://u@10.0.0.5/db",
            "postgres://u@localhost.example.com/db",
            "postgres:///db?host=/var/run/postgresql",
            "sqlite://cxgraph.db?mode=rwc",
        ] {
            assert_eq!(effective_url(kept), kept);
        }
    }

    #[test]
    fn pieces_stay_under_the_budget_in_order() {
        let rows: Vec<_> = (0..1000).map(|_| link()).collect();
        let ids: Vec<_> = rows.iter().map(|r| r.interaction_id.clone().unwrap()).collect();
        let pieces = pieces(rows, Some(STATEMENT_BUDGET));
        // Two uuids of 16 bytes and 14 bytes of framing each: 60 bytes a row, so 204
        // rows fit and 128 are taken.
        assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), vec![128, 128, 128, 128, 128, 128, 128, 64, 32, 8]);
        let back: Vec<_> = pieces.into_iter().flatten().map(|r| r.interaction_id.unwrap()).collect();
        assert_eq!(back, ids);
    }

    #[test]
    fn a_row_over_the_budget_goes_alone_and_unset_columns_do_not_count() {
        let sizes: Vec<_> =
            pieces(vec![named(100), named(20_000), named(100), named(6_200), named(6_200)], Some(STATEMENT_BUDGET))
                .iter()
                .map(Vec::len)
                .collect();
        assert_eq!(sizes, vec![1, 1, 2, 1]);
        assert_eq!(pieces(Vec::<topic::ActiveModel>::new(), Some(STATEMENT_BUDGET)).len(), 0);
    }

    #[test]
    fn without_a_byte_budget_powers_of_two_under_the_bound_values_cut() {
        let sizes: Vec<_> =
            pieces(vec![named(100), named(20_000), named(100), named(9)], None).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4], "rows of any size together");
        let sizes: Vec<_> = pieces((0..100).map(|_| link()).collect(), None).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![64, 32, 4], "powers of two");
        // Two values a row: at most 15,000 rows to a statement, so 8,192.
        let sizes: Vec<_> = pieces((0..20_000).map(|_| link()).collect(), None).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![8192, 8192, 2048, 1024, 512, 32]);
    }

    #[test]
    fn tls_is_possible_unless_disabled_or_on_a_socket() {
        for plain in [
            "postgres://u@127.0.0.1:5432/db?sslmode=disable",
            "postgres://u@db.example.com/db?application_name=x&sslmode=disable",
            "postgres:///db?host=/var/run/postgresql",
            "postgresql://u@/db",
            "sqlite://cxgraph.db?mode=rwc",
        ] {
            assert!(!may_use_tls(plain), "{plain}");
        }
        for tls in ["postgres://u@db.example.com:5432/db", "postgres://u@10.0.0.5/db?sslmode=require"] {
            assert!(may_use_tls(tls), "{tls}");
        }
    }
}
