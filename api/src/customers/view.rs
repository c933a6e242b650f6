//! Set-based loading for the customer 360: each function answers for a whole batch of
//! customers with one statement, so a page of 50 customers with everything on it costs
//! the same handful of statements as a page of 5. The GraphQL layer calls these from
//! its DataLoaders; nothing here runs a query per customer.
//!
//! "Latest N per customer" reads N rows per customer from the `(customer_id,
//! occurred_at)` indexes and stops: a `LATERAL … LIMIT N` per customer on PostgreSQL,
//! a `UNION ALL` of `LIMIT N` subqueries on SQLite (see [`latest`]).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::enums::{Channel, ConversationStatus, FeedbackKind, TouchpointOutcome};
use entity::{conversation, customer_identity, feedback, interaction, touchpoint};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    Value,
};
use uuid::Uuid;

use crate::db::{placeholders, statement};
use crate::error::AppResult;

/// Window of the "recent sentiment" metric.
pub const SENTIMENT_WINDOW_DAYS: i64 = 90;

fn ids_values(ids: &[Uuid]) -> Vec<Value> {
    ids.iter().map(|id| Value::from(*id)).collect()
}

fn group<T>(rows: Vec<T>, key: impl Fn(&T) -> Uuid) -> HashMap<Uuid, Vec<T>> {
    let mut out: HashMap<Uuid, Vec<T>> = HashMap::new();
    for row in rows {
        out.entry(key(&row)).or_default().push(row);
    }
    out
}

/// Customers by id.
pub async fn customers(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<HashMap<Uuid, entity::customer::Model>> {
    let rows = entity::customer::Entity::find()
        .filter(entity::customer::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// Identities of each customer, oldest first.
pub async fn identities(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<customer_identity::Model>>> {
    let rows = customer_identity::Entity::find()
        .filter(customer_identity::Column::CustomerId.is_in(ids.iter().copied()))
        .order_by_asc(customer_identity::Column::CreatedAt)
        .order_by_asc(customer_identity::Column::Id)
        .all(db)
        .await?;
    Ok(group(rows, |r| r.customer_id))
}

/// Most customers one SQLite statement reads by `UNION ALL` (SQLite allows 500 terms
/// in a compound select; pages are at most 100).
const SQLITE_UNION_MAX: usize = 400;

/// The newest `limit` rows of each customer in one customer-owned table, newest
/// first, rows matching `extra_where` (bound to `extra_values`) only.
///
/// Each customer's rows are read from the `(customer_id, occurred_at)` index, newest
/// first, stopping after `limit`, however long the history: on PostgreSQL a `LATERAL`
/// subquery per customer, on SQLite (no `LATERAL`) one `LIMIT`ed subquery per customer
/// joined by `UNION ALL`. Beyond [`SQLITE_UNION_MAX`] customers SQLite numbers each
/// customer's rows with `ROW_NUMBER()` instead (every row of each customer visited).
fn latest(
    backend: DatabaseBackend,
    table: &str,
    ids: &[Uuid],
    extra_where: &str,
    extra_values: Vec<Value>,
    limit: u64,
) -> sea_orm::Statement {
    let (sql, values) = if backend == DatabaseBackend::Postgres {
        let list = vec!["(?)"; ids.len()].join(", ");
        let one = newest_of(table, "ids.id", extra_where, limit);
        let sql = format!(
            "SELECT t.* FROM (VALUES {list}) AS ids(id) CROSS JOIN LATERAL ({one}) t \
             ORDER BY t.customer_id, t.occurred_at DESC, t.id DESC"
        );
        (sql, ids_values(ids).into_iter().chain(extra_values).collect())
    } else if ids.len() <= SQLITE_UNION_MAX {
        let one = format!("SELECT * FROM ({})", newest_of(table, "?", extra_where, limit));
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY customer_id, occurred_at DESC, id DESC",
            vec![one; ids.len()].join(" UNION ALL ")
        );
        let mut values = Vec::with_capacity(ids.len() * (1 + extra_values.len()));
        for id in ids {
            values.push(Value::from(*id));
            values.extend(extra_values.iter().cloned());
        }
        (sql, values)
    } else {
        let sql = format!(
            "SELECT * FROM (SELECT t.*, ROW_NUMBER() OVER (PARTITION BY t.customer_id {NEWEST}) AS rn \
             FROM {table} t WHERE t.customer_id IN ({}){extra_where}) ranked WHERE rn <= {limit} \
             ORDER BY customer_id, occurred_at DESC, id DESC",
            placeholders(ids.len())
        );
        (sql, ids_values(ids).into_iter().chain(extra_values).collect())
    };
    statement(backend, &sql, values)
}

/// Newest first, the order of every "latest N" list.
pub(super) const NEWEST: &str = "ORDER BY t.occurred_at DESC, t.id DESC";

/// The newest `limit` rows of `table` (aliased `t`) of the customer whose id is the SQL
/// expression `customer`, rows matching `extra_where` only: the one select every form
/// of "latest N per customer" is built from.
pub(super) fn newest_of(table: &str, customer: &str, extra_where: &str, limit: u64) -> String {
    first_of(table, customer, extra_where, NEWEST, limit)
}

/// As [`newest_of`], the first `limit` rows in `order`.
pub(super) fn first_of(table: &str, customer: &str, extra_where: &str, order: &str, limit: u64) -> String {
    format!("SELECT * FROM {table} t WHERE t.customer_id = {customer}{extra_where} {order} LIMIT {limit}")
}

/// Appends `AND t.channel IN (…)` for `channels` (`None`: every channel); false when
/// the list is empty, so no row can match.
fn channel_condition(channels: Option<&[Channel]>, extra: &mut String, values: &mut Vec<Value>) -> bool {
    let Some(channels) = channels else { return true };
    if channels.is_empty() {
        return false;
    }
    extra.push_str(&format!(" AND t.channel IN ({})", placeholders(channels.len())));
    values.extend(channels.iter().map(|c| Value::from(c.to_value())));
    true
}

/// [`channel_condition`] on its own: the condition on `t` and its values, `None` when
/// no channel is allowed. The lists and figures without a channel argument (feedback,
/// touchpoints, journeys, metrics) are limited this way to a token's channels.
pub(super) fn channel_filter(channels: Option<&[Channel]>) -> Option<(String, Vec<Value>)> {
    let (mut extra, mut values) = (String::new(), Vec::new());
    channel_condition(channels, &mut extra, &mut values).then_some((extra, values))
}

/// Which interactions of a customer to show, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InteractionSlice {
    /// Only these channels (sorted; empty: none at all); `None`: every channel.
    pub channels: Option<Vec<Channel>>,
    /// Rows to return (the caller asks for one more to learn whether a next page exists).
    pub limit: u64,
    /// Only rows older than this `(occurred_at, id)` position.
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

impl InteractionSlice {
    /// The condition on `t` (an interactions row) and its values; `None` when the slice
    /// holds no rows at all (no channel).
    pub(super) fn filter(&self) -> Option<(String, Vec<Value>)> {
        let mut values = Vec::new();
        let mut extra = String::new();
        if !channel_condition(self.channels.as_deref(), &mut extra, &mut values) {
            return None;
        }
        if let Some((at, id)) = self.before {
            extra.push_str(" AND (t.occurred_at < ? OR (t.occurred_at = ? AND t.id < ?))");
            values.extend([Value::from(at), Value::from(at), Value::from(id)]);
        }
        Some((extra, values))
    }
}

/// The newest interactions of each customer.
pub async fn interactions(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    slice: InteractionSlice,
) -> AppResult<HashMap<Uuid, Vec<interaction::Model>>> {
    let Some((extra, values)) = slice.filter() else {
        return Ok(HashMap::new());
    };
    let stmt = latest(db.get_database_backend(), "interactions", ids, &extra, values, slice.limit);
    let rows = interaction::Entity::find().from_raw_sql(stmt).all(db).await?;
    Ok(group(rows, |r| r.customer_id))
}

/// Which conversations of a customer to show, most recently active first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationSlice {
    /// Only these statuses (sorted); `None` or empty: every status.
    pub statuses: Option<Vec<ConversationStatus>>,
    /// As in [`InteractionSlice`]: only these channels (empty: none); `None`: all.
    pub channels: Option<Vec<Channel>>,
    pub limit: u64,
}

/// Most recently active first, the order of a customer's conversations.
pub(super) const LATEST_ACTIVE: &str = "ORDER BY t.last_message_at DESC, t.id DESC";

impl ConversationSlice {
    /// The condition on `t` (a conversations row) and its values; `None` when the slice
    /// holds no rows at all (no channel).
    pub(super) fn filter(&self) -> Option<(String, Vec<Value>)> {
        let mut values = Vec::new();
        let mut extra = String::new();
        if let Some(statuses) = self.statuses.as_ref().filter(|s| !s.is_empty()) {
            extra = format!(" AND t.status IN ({})", placeholders(statuses.len()));
            values.extend(statuses.iter().map(|s| Value::from(s.to_value())));
        }
        channel_condition(self.channels.as_deref(), &mut extra, &mut values).then_some((extra, values))
    }
}

/// Conversations of each customer, most recently active first.
pub async fn conversations(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    slice: &ConversationSlice,
) -> AppResult<HashMap<Uuid, Vec<conversation::Model>>> {
    let Some((extra, filter_values)) = slice.filter() else {
        return Ok(HashMap::new());
    };
    let mut values = ids_values(ids);
    values.extend(filter_values);
    let sql = format!(
        "SELECT * FROM (SELECT t.*, ROW_NUMBER() OVER (PARTITION BY t.customer_id {LATEST_ACTIVE}) AS rn \
         FROM conversations t WHERE t.customer_id IN ({}){extra}) ranked WHERE rn <= {} \
         ORDER BY customer_id, last_message_at DESC, id DESC",
        placeholders(ids.len()),
        slice.limit
    );
    let stmt = statement(db.get_database_backend(), &sql, values);
    let rows = conversation::Entity::find().from_raw_sql(stmt).all(db).await?;
    Ok(group(rows, |r| r.customer_id))
}

/// The newest touchpoints of each customer.
pub async fn touchpoints(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    limit: u64,
    channels: Option<&[Channel]>,
) -> AppResult<HashMap<Uuid, Vec<touchpoint::Model>>> {
    let Some((extra, values)) = channel_filter(channels) else { return Ok(HashMap::new()) };
    let stmt = latest(db.get_database_backend(), "touchpoints", ids, &extra, values, limit);
    let rows = touchpoint::Entity::find().from_raw_sql(stmt).all(db).await?;
    Ok(group(rows, |r| r.customer_id))
}

/// The newest feedback of each customer.
pub async fn feedback(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    limit: u64,
    channels: Option<&[Channel]>,
) -> AppResult<HashMap<Uuid, Vec<feedback::Model>>> {
    let Some((extra, values)) = channel_filter(channels) else { return Ok(HashMap::new()) };
    let stmt = latest(db.get_database_backend(), "feedback", ids, &extra, values, limit);
    let rows = feedback::Entity::find().from_raw_sql(stmt).all(db).await?;
    Ok(group(rows, |r| r.customer_id))
}

/// One stage a customer reached in a journey.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyStep {
    pub stage_id: Uuid,
    pub stage_name: String,
    pub stage_position: i32,
    pub first_reached_at: DateTime<Utc>,
    pub last_reached_at: DateTime<Utc>,
    /// How the latest touchpoint at this stage ended.
    pub last_outcome: TouchpointOutcome,
    pub touchpoints: i64,
}

/// Where a customer stands in one journey: the stage of their latest touchpoint in it,
/// and every stage they reached, in journey order.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyPosition {
    pub journey_id: Uuid,
    pub journey_name: String,
    pub stage_id: Uuid,
    pub stage_name: String,
    pub stage_position: i32,
    pub outcome: TouchpointOutcome,
    pub reached_at: DateTime<Utc>,
    pub path: Vec<JourneyStep>,
}

/// One (customer, stage reached) row of [`journey_positions`]: the latest touchpoint at
/// the stage, with the first time and the number of visits. Read from SQL rows, or from
/// the JSON rows of the one-statement 360 (see `prefetch`).
#[derive(Debug, sea_orm::FromQueryResult, serde::Deserialize)]
pub(super) struct JourneyRow {
    customer_id: Uuid,
    journey_id: Uuid,
    journey_name: String,
    stage_id: Uuid,
    stage_name: String,
    stage_position: i32,
    outcome: TouchpointOutcome,
    occurred_at: DateTime<Utc>,
    first_at: DateTime<Utc>,
    visits: i64,
}

/// The [`JourneyRow`]s of the customers whose touchpoints `t` match `customers` (an SQL
/// condition on `t.customer_id`), in journey order.
/// `channel_where`: a further condition on the touchpoints `t` (see [`channel_filter`]).
pub(super) fn journey_rows_sql(customers: &str, channel_where: &str) -> String {
    format!(
        "SELECT r.customer_id, r.journey_id, j.name AS journey_name, r.stage_id, s.name AS stage_name, \
         s.position AS stage_position, r.outcome, r.occurred_at, r.first_at, r.visits FROM (SELECT t.customer_id, \
         t.journey_id, t.stage_id, t.outcome, t.occurred_at, \
         MIN(t.occurred_at) OVER (PARTITION BY t.customer_id, t.stage_id) AS first_at, \
         COUNT(*) OVER (PARTITION BY t.customer_id, t.stage_id) AS visits, \
         ROW_NUMBER() OVER (PARTITION BY t.customer_id, t.stage_id ORDER BY t.occurred_at DESC, t.id DESC) AS rn \
         FROM touchpoints t WHERE t.customer_id {customers}{channel_where}) r \
         JOIN journeys j ON j.id = r.journey_id JOIN journey_stages s ON s.id = r.stage_id \
         WHERE r.rn = 1 ORDER BY r.customer_id, j.name, s.position"
    )
}

/// The path and current stage of each customer in every journey they have touched:
/// one statement, one row per (customer, stage reached).
pub async fn journey_positions(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    channels: Option<&[Channel]>,
) -> AppResult<HashMap<Uuid, Vec<JourneyPosition>>> {
    let Some((extra, values)) = channel_filter(channels) else { return Ok(HashMap::new()) };
    let sql = journey_rows_sql(&format!("IN ({})", placeholders(ids.len())), &extra);
    let stmt = statement(db.get_database_backend(), &sql, ids_values(ids).into_iter().chain(values).collect());
    let rows = JourneyRow::find_by_statement(stmt).all(db).await?;
    Ok(fold_positions(rows))
}

/// Folds [`JourneyRow`]s (in journey order) into each customer's positions.
pub(super) fn fold_positions(rows: impl IntoIterator<Item = JourneyRow>) -> HashMap<Uuid, Vec<JourneyPosition>> {
    let mut out: HashMap<Uuid, Vec<JourneyPosition>> = HashMap::new();
    for row in rows {
        let step = JourneyStep {
            stage_id: row.stage_id,
            stage_name: row.stage_name,
            stage_position: row.stage_position,
            first_reached_at: row.first_at,
            last_reached_at: row.occurred_at,
            last_outcome: row.outcome,
            touchpoints: row.visits,
        };
        let positions = out.entry(row.customer_id).or_default();
        let index = match positions.iter().position(|p| p.journey_id == row.journey_id) {
            Some(i) => i,
            None => {
                positions.push(JourneyPosition {
                    journey_id: row.journey_id,
                    journey_name: row.journey_name,
                    stage_id: step.stage_id,
                    stage_name: step.stage_name.clone(),
                    stage_position: step.stage_position,
                    outcome: step.last_outcome,
                    reached_at: step.last_reached_at,
                    path: Vec::new(),
                });
                positions.len() - 1
            }
        };
        let position = &mut positions[index];
        // The current stage is the one with the latest touchpoint (later stage on a tie).
        if step.last_reached_at >= position.reached_at {
            position.stage_id = step.stage_id;
            position.stage_name = step.stage_name.clone();
            position.stage_position = step.stage_position;
            position.outcome = step.last_outcome;
            position.reached_at = step.last_reached_at;
        }
        position.path.push(step);
    }
    out
}

/// Figures about one customer, computed in SQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerMetrics {
    pub last_interaction_at: Option<DateTime<Utc>>,
    /// Lifetime interaction count per channel, most used first.
    pub interactions_by_channel: Vec<(Channel, i64)>,
    pub open_conversations: i64,
    pub latest_nps: Option<(i16, DateTime<Utc>)>,
    pub csat_average: Option<f64>,
    pub csat_responses: i64,
    /// Mean sentiment of interactions and feedback of the last 90 days, in [-1, 1].
    pub recent_sentiment: Option<f64>,
    pub recent_sentiment_samples: i64,
}

fn get_f64(row: &sea_orm::QueryResult, col: &str) -> AppResult<Option<f64>> {
    Ok(row.try_get::<Option<f64>>("", col)?)
}

/// Metrics for each customer: four grouped statements for the whole batch, over the
/// facts of `channels` only (`None`: all; a token's channel limit).
pub async fn metrics(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    channels: Option<&[Channel]>,
) -> AppResult<HashMap<Uuid, CustomerMetrics>> {
    let backend = db.get_database_backend();
    let since = Utc::now() - Duration::days(SENTIMENT_WINDOW_DAYS);
    let list = placeholders(ids.len());
    let mut out: HashMap<Uuid, CustomerMetrics> = ids.iter().map(|id| (*id, CustomerMetrics::default())).collect();
    let Some((only, only_values)) = channel_filter(channels) else { return Ok(out) };
    let mut sentiment: HashMap<Uuid, (f64, i64)> = HashMap::new();

    let mut values = vec![Value::from(since), Value::from(since)];
    values.extend(ids_values(ids));
    values.extend(only_values.iter().cloned());
    let sql = format!(
        "SELECT customer_id, channel, COUNT(*) AS n, MAX(occurred_at) AS last_at, \
         SUM(CASE WHEN occurred_at >= ? THEN sentiment_score END) AS s_sum, \
         COUNT(CASE WHEN occurred_at >= ? THEN sentiment_score END) AS s_n \
         FROM interactions t WHERE customer_id IN ({list}){only} GROUP BY customer_id, channel"
    );
    for row in db.query_all_raw(statement(backend, &sql, values)).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let channel: String = row.try_get("", "channel")?;
        let channel = <Channel as sea_orm::ActiveEnum>::try_from_value(&channel)?;
        let m = out.entry(id).or_default();
        m.interactions_by_channel.push((channel, row.try_get("", "n")?));
        let last: Option<DateTime<Utc>> = row.try_get("", "last_at")?;
        m.last_interaction_at = m.last_interaction_at.max(last);
        let s = sentiment.entry(id).or_default();
        s.0 += get_f64(&row, "s_sum")?.unwrap_or(0.0);
        s.1 += row.try_get::<i64>("", "s_n")?;
    }

    let mut values = ids_values(ids);
    values.extend([ConversationStatus::Open, ConversationStatus::Pending].map(|s| Value::from(s.to_value())));
    values.extend(only_values.iter().cloned());
    let sql = format!(
        "SELECT customer_id, COUNT(*) AS n FROM conversations t WHERE customer_id IN ({list}) \
         AND status IN (?, ?){only} GROUP BY customer_id"
    );
    for row in db.query_all_raw(statement(backend, &sql, values)).await? {
        out.entry(row.try_get("", "customer_id")?).or_default().open_conversations = row.try_get("", "n")?;
    }

    let csat = FeedbackKind::Csat.to_value();
    let mut values = vec![Value::from(csat.clone()), Value::from(csat), Value::from(since), Value::from(since)];
    values.extend(ids_values(ids));
    values.extend(only_values.iter().cloned());
    let sql = format!(
        "SELECT customer_id, \
         SUM(CASE WHEN kind = ? THEN score END) AS csat_sum, COUNT(CASE WHEN kind = ? THEN score END) AS csat_n, \
         SUM(CASE WHEN occurred_at >= ? THEN sentiment_score END) AS s_sum, \
         COUNT(CASE WHEN occurred_at >= ? THEN sentiment_score END) AS s_n \
         FROM feedback t WHERE customer_id IN ({list}){only} GROUP BY customer_id"
    );
    for row in db.query_all_raw(statement(backend, &sql, values)).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let m = out.entry(id).or_default();
        let csat_sum: Option<i64> = row.try_get("", "csat_sum")?;
        m.csat_responses = row.try_get("", "csat_n")?;
        if m.csat_responses > 0 {
            m.csat_average = csat_sum.map(|s| s as f64 / m.csat_responses as f64);
        }
        let s = sentiment.entry(id).or_default();
        s.0 += get_f64(&row, "s_sum")?.unwrap_or(0.0);
        s.1 += row.try_get::<i64>("", "s_n")?;
    }

    let mut values = ids_values(ids);
    values.push(Value::from(FeedbackKind::Nps.to_value()));
    values.extend(only_values);
    let sql = format!(
        "SELECT customer_id, score, occurred_at FROM (SELECT customer_id, score, occurred_at, ROW_NUMBER() OVER \
         (PARTITION BY customer_id ORDER BY occurred_at DESC, id DESC) AS rn FROM feedback t \
         WHERE customer_id IN ({list}) AND kind = ? AND score IS NOT NULL{only}) ranked WHERE rn = 1"
    );
    for row in db.query_all_raw(statement(backend, &sql, values)).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let score: i16 = row.try_get("", "score")?;
        out.entry(id).or_default().latest_nps = Some((score, row.try_get("", "occurred_at")?));
    }

    for (id, m) in &mut out {
        m.interactions_by_channel.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some((sum, n)) = sentiment.get(id).filter(|(_, n)| *n > 0) {
            m.recent_sentiment = Some(sum / *n as f64);
            m.recent_sentiment_samples = *n;
        }
    }
    Ok(out)
}
