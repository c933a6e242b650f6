//! Prometheus metrics of this process, in the text exposition format.
//!
//! A small registry of our own rather than a metrics framework: a handful of counters
//! and histograms behind one mutex each, recorded where things happen (HTTP layer,
//! GraphQL operations, ingest, the SLA sweeper, the spike detector, every database
//! statement) and rendered on scrape. Process-wide (a `static`), as Prometheus expects
//! of one scrape target. Label values that clients choose (GraphQL operation names)
//! are capped, so a client cannot blow up the series count.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use sea_orm::{DatabaseBackend, DatabaseConnection};

/// Distinct GraphQL operation names tracked; later ones are counted as `other`.
const MAX_OPERATIONS: usize = 200;

/// Histogram bucket bounds, in seconds.
const BOUNDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BOUNDS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BOUNDS.iter().enumerate() {
            if seconds <= *bound {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BOUNDS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}", self.buckets[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route, status) → latency.
    http: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// (operation type, operation name, outcome) → latency.
    graphql: Mutex<BTreeMap<(String, String, &'static str), Histogram>>,
    /// error code → count.
    graphql_errors: Mutex<BTreeMap<String, u64>>,
    /// (channel, outcome) → count.
    ingested: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// alert kind → count.
    alerts: Mutex<BTreeMap<String, u64>>,
    /// failed (true) or not → statement latency.
    statements: Mutex<BTreeMap<bool, Histogram>>,
    subscriptions_open: AtomicI64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's registry.
pub fn get() -> &'static Metrics {
    &METRICS
}

fn lock<T: Default>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// One HTTP request (route as matched, e.g. `/export/{dataset}`).
    pub fn http_request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let mut m = lock(&self.http);
        m.entry((method.to_owned(), route.to_owned(), status)).or_default().observe(latency.as_secs_f64());
    }

    /// One GraphQL operation and the codes of its errors.
    pub fn graphql_operation(&self, kind: &str, name: &str, error_codes: &[String], latency: Duration) {
        let outcome = if error_codes.is_empty() { "ok" } else { "error" };
        {
            let mut m = lock(&self.graphql);
            // Counting distinct names only for a name not seen yet keeps the usual
            // request to one scan without allocating.
            let known = m.keys().any(|(_, n, _)| n == name);
            let room = || {
                m.keys().map(|(_, n, _)| n.as_str()).collect::<std::collections::BTreeSet<_>>().len() < MAX_OPERATIONS
            };
            let name = if known || room() { name } else { "other" };
            m.entry((kind.to_owned(), name.to_owned(), outcome)).or_default().observe(latency.as_secs_f64());
        }
        let mut errors = lock(&self.graphql_errors);
        for code in error_codes {
            *errors.entry(code.clone()).or_default() += 1;
        }
    }

    /// One ingested event (`created`, `duplicate` or `rejected`).
    pub fn ingested(&self, channel: &str, outcome: &'static str) {
        *lock(&self.ingested).entry((channel.to_owned(), outcome)).or_default() += 1;
    }

    /// Alerts raised, by kind.
    pub fn alerts_raised(&self, kind: &str, n: u64) {
        if n > 0 {
            *lock(&self.alerts).entry(kind.to_owned()).or_default() += n;
        }
    }

    /// One database statement.
    pub fn statement(&self, elapsed: Duration, failed: bool) {
        lock(&self.statements).entry(failed).or_default().observe(elapsed.as_secs_f64());
    }

    /// A subscription started; the guard counts it as open until dropped.
    pub fn subscription_opened(&'static self) -> SubscriptionGuard {
        self.subscriptions_open.fetch_add(1, Ordering::Relaxed);
        SubscriptionGuard(self)
    }

    /// The text exposition, with the pool figures of `db`.
    pub fn render(&self, db: &DatabaseConnection) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP cxgraph_http_request_duration_seconds HTTP requests by method, route and status.\n");
        out.push_str("# TYPE cxgraph_http_request_duration_seconds histogram\n");
        for ((method, route, status), h) in lock(&self.http).iter() {
            let labels = format!("method=\"{}\",route=\"{}\",status=\"{status}\"", escape(method), escape(route));
            h.render(&mut out, "cxgraph_http_request_duration_seconds", &labels);
        }
        out.push_str(
            "# HELP cxgraph_graphql_operation_duration_seconds GraphQL operations by type, name and outcome.\n",
        );
        out.push_str("# TYPE cxgraph_graphql_operation_duration_seconds histogram\n");
        for ((kind, name, outcome), h) in lock(&self.graphql).iter() {
            let labels = format!("type=\"{}\",operation=\"{}\",outcome=\"{outcome}\"", escape(kind), escape(name));
            h.render(&mut out, "cxgraph_graphql_operation_duration_seconds", &labels);
        }
        out.push_str("# HELP cxgraph_graphql_errors_total GraphQL errors by extensions.code.\n");
        out.push_str("# TYPE cxgraph_graphql_errors_total counter\n");
        for (code, n) in lock(&self.graphql_errors).iter() {
            let _ = writeln!(out, "cxgraph_graphql_errors_total{{code=\"{}\"}} {n}", escape(code));
        }
        out.push_str("# HELP cxgraph_ingested_total Ingested interactions by channel and outcome.\n");
        out.push_str("# TYPE cxgraph_ingested_total counter\n");
        for ((channel, outcome), n) in lock(&self.ingested).iter() {
            let _ =
                writeln!(out, "cxgraph_ingested_total{{channel=\"{}\",outcome=\"{outcome}\"}} {n}", escape(channel));
        }
        out.push_str("# HELP cxgraph_alerts_raised_total Alerts raised by kind (SLA breaches are sla_breached).\n");
        out.push_str("# TYPE cxgraph_alerts_raised_total counter\n");
        for (kind, n) in lock(&self.alerts).iter() {
            let _ = writeln!(out, "cxgraph_alerts_raised_total{{kind=\"{}\"}} {n}", escape(kind));
        }
        out.push_str("# HELP cxgraph_db_statement_duration_seconds Database statements, by whether they failed.\n");
        out.push_str("# TYPE cxgraph_db_statement_duration_seconds histogram\n");
        for (failed, h) in lock(&self.statements).iter() {
            h.render(&mut out, "cxgraph_db_statement_duration_seconds", &format!("failed=\"{failed}\""));
        }
        let (size, idle) = pool(db);
        out.push_str("# HELP cxgraph_db_pool_connections Open database connections (the pool's size).\n");
        out.push_str("# TYPE cxgraph_db_pool_connections gauge\n");
        let _ = writeln!(out, "cxgraph_db_pool_connections {size}");
        out.push_str("# HELP cxgraph_db_pool_idle_connections Open connections not in use.\n");
        out.push_str("# TYPE cxgraph_db_pool_idle_connections gauge\n");
        let _ = writeln!(out, "cxgraph_db_pool_idle_connections {idle}");
        out.push_str("# HELP cxgraph_subscriptions_open GraphQL subscriptions being served.\n");
        out.push_str("# TYPE cxgraph_subscriptions_open gauge\n");
        let _ = writeln!(out, "cxgraph_subscriptions_open {}", self.subscriptions_open.load(Ordering::Relaxed));
        out
    }
}

/// (size, idle) of the pool.
fn pool(db: &DatabaseConnection) -> (u32, usize) {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let p = db.get_postgres_connection_pool();
            (p.size(), p.num_idle())
        }
        DatabaseBackend::Sqlite => {
            let p = db.get_sqlite_connection_pool();
            (p.size(), p.num_idle())
        }
        _ => (0, 0),
    }
}

/// Counts a subscription as open while it lives.
#[derive(Debug)]
pub struct SubscriptionGuard(&'static Metrics);

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.0.subscriptions_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_operation_names_capped() {
        let m = Metrics::default();
        m.graphql_operation("query", "Slow", &[], Duration::from_millis(300));
        m.graphql_operation("query", "Slow", &["FORBIDDEN".into()], Duration::from_millis(3));
        for i in 0..(MAX_OPERATIONS + 5) {
            m.graphql_operation("query", &format!("op{i}"), &[], Duration::from_millis(1));
        }
        let graphql = lock(&m.graphql);
        let slow_ok = &graphql[&("query".to_owned(), "Slow".to_owned(), "ok")];
        assert_eq!(slow_ok.buckets[BOUNDS.iter().position(|b| *b == 0.25).unwrap()], 0);
        assert_eq!(slow_ok.buckets[BOUNDS.iter().position(|b| *b == 0.5).unwrap()], 1);
        let names: std::collections::BTreeSet<_> = graphql.keys().map(|(_, n, _)| n.clone()).collect();
        assert_eq!(names.len(), MAX_OPERATIONS + 1, "capped, plus `other`");
        assert!(names.contains("other"));
        assert_eq!(lock(&m.graphql_errors)["FORBIDDEN"], 1);
    }
}
