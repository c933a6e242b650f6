//! A tiny SQL builder for the insight queries, and the few places SQLite and
//! PostgreSQL differ for them (durations between timestamps). Values are always bound,
//! never spliced: only fixed vocabulary codes appear literally in the text.

use sea_orm::{DatabaseBackend, Statement, Value};

use super::buckets::Range;
use crate::db;

/// SQL text with `?` placeholders and the values they take, in order.
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push('?');
        self.values.push(value.into());
        self
    }

    /// Appends `(?, ?, …)` bound to `values`; an empty list is `(NULL)`, which nothing
    /// is `IN` (PostgreSQL refuses `IN ()`).
    pub fn bind_list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        let mut empty = true;
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
            empty = false;
        }
        if empty {
            self.text.push_str("NULL");
        }
        self.text.push(')');
        self
    }

    /// Appends another builder's text and values (a subquery).
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values);
        self
    }

    /// The statement for `backend` (placeholders renumbered for PostgreSQL).
    pub fn statement(self, backend: DatabaseBackend) -> Statement {
        db::statement(backend, &self.text, self.values)
    }
}

impl From<&str> for Sql {
    /// A statement without values.
    fn from(text: &str) -> Self {
        Self { text: text.to_owned(), values: Vec::new() }
    }
}

/// Seconds from `earlier` to `later` as a double (NULL when either is NULL).
pub fn seconds_between(backend: DatabaseBackend, later: &str, earlier: &str) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"),
        _ => format!("ROUND((julianday({later}) - julianday({earlier})) * 86400.0, 3)"),
    }
}

/// `{name}, {name}_lo, {name}_hi`: the nearest-rank quantile `q` of `n` values and
/// its distribution-free 95% interval (the order statistics at ranks
/// `n·q ± z·√(n·q(1−q))`, inside 1…n), picked by index from `array`, a PostgreSQL
/// array holding the values in order (`ARRAY_AGG(v ORDER BY v)`). One sort per cell
/// and no window passes: on a quarter of the benchmark dataset two window passes
/// (see [`ranked_quantile`]) cost about twice the sort.
pub fn array_quantile(array: &str, n: &str, q: f64, name: &str) -> String {
    let (at, half) = (format!("{q:.1} * {n}"), format!("SQRT({:.6} * {n})", super::stats::rank_band_sq(q)));
    format!(
        "{array}[CAST(CEIL({at}) AS INTEGER)] AS {name}, \
         {array}[CAST(GREATEST(1, CEIL({at} - {half})) AS INTEGER)] AS {name}_lo, \
         {array}[CAST(LEAST({n}, FLOOR({at} + {half})) AS INTEGER)] AS {name}_hi"
    )
}

/// The same picks as [`array_quantile`] as aggregates over ranked rows (for SQLite,
/// which has no arrays): `rn` numbers a cell's values `v` 1…`n` in order.
pub fn ranked_quantile(q: f64, name: &str) -> String {
    let band = super::stats::rank_band_sq(q);
    let at = format!("{q:.1} * n");
    format!(
        "MIN(CASE WHEN rn >= {at} THEN v END) AS {name}, \
         MIN(CASE WHEN rn <= {at} + 1 AND ({at} - rn) * ({at} - rn) <= {band:.6} * n THEN v END) AS {name}_lo, \
         MAX(CASE WHEN rn >= {at} AND (rn - {at}) * (rn - {at}) <= {band:.6} * n THEN v END) AS {name}_hi"
    )
}

/// Whole hours since 1970 UTC of the timestamp `column`, as the rollup triggers
/// compute it (migration 13).
pub fn hour_of(backend: DatabaseBackend, column: &str) -> String {
    migration::epoch_units(backend, column, 3600)
}

/// Appends a derived table `(idx, start_at, end_at)` of time buckets.
pub fn bucket_table(sql: &mut Sql, ranges: &[Range]) {
    sql.push("(");
    for (i, r) in ranges.iter().enumerate() {
        sql.push(if i == 0 { "SELECT CAST(" } else { " UNION ALL SELECT CAST(" });
        sql.push(&i.to_string())
            .push(" AS BIGINT) AS idx, ")
            .bind(r.start)
            .push(" AS start_at, ")
            .bind(r.end)
            .push(" AS end_at");
    }
    sql.push(")");
}
