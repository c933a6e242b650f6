//! Bulk export for BI tools: every customer, interaction, conversation, touchpoint or
//! feedback row, as CSV or NDJSON, read in keyset chunks so memory stays flat however
//! many rows there are.
//!
//! Rows come in change order (`updated_at`: creation, and every later change — an
//! erasure, the retention job, a merge or an unmerge moving a fact between customers)
//! and `updated_since` keeps only rows changed at or after it, so a nightly job pulls
//! what changed, erased text included; the HTTP layer hands
//! back a watermark for the next pull. `from`/`to` filter on business time (when it
//! happened, or opened). Personal data is masked as in GraphQL for callers who may not
//! read it (names masked, free text and external ids empty). CSV cells holding text that a spreadsheet
//! would run as a formula (`=`, `+`, `-`, `@`) are prefixed with `'`.
//!
//! Each chunk is one statement (plus one for its rows' topics where there are any):
//! the conversations export computes first-response and resolution times, SLA
//! outcome, CSAT (mean of the conversation's CSAT answers), tags and topics in SQL.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait, DatabaseBackend, QueryResult};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::masking::{self, Masking};
use crate::auth::pii;
use crate::error::{AppError, AppResult};
use crate::insights::sql::{self, Sql};

/// Rows per chunk (one statement each).
pub const CHUNK: u64 = 1000;

/// What can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    Customers,
    Interactions,
    Conversations,
    Touchpoints,
    Feedback,
}

impl Dataset {
    /// The dataset a path segment names.
    pub fn parse(name: &str) -> Option<Dataset> {
        Some(match name {
            "customers" => Dataset::Customers,
            "interactions" => Dataset::Interactions,
            "conversations" => Dataset::Conversations,
            "touchpoints" => Dataset::Touchpoints,
            "feedback" => Dataset::Feedback,
            _ => return None,
        })
    }

    /// Whether rows belong to a channel (and so can be held to a token's channels).
    pub fn has_channel(self) -> bool {
        self != Dataset::Customers
    }
}

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

/// Which rows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub updated_since: Option<DateTime<Utc>>,
    pub channels: Option<Vec<Channel>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Text,
    Code,
    Int,
    Float,
    Bool,
    Time,
    List,
}

struct Col {
    name: &'static str,
    expr: String,
    kind: Kind,
    /// The GraphQL field (`Type`, `field`) holding the same value: masked as the
    /// masking table says for it (see `auth::masking`); `None`: not personal.
    mirrors: Option<(&'static str, &'static str)>,
}

fn col(name: &'static str, expr: &str, kind: Kind) -> Col {
    Col { name, expr: expr.to_owned(), kind, mirrors: None }
}

/// A column holding what the GraphQL field `mirrors` holds, masked alike.
fn personal(name: &'static str, expr: &str, kind: Kind, mirrors: (&'static str, &'static str)) -> Col {
    Col { name, expr: expr.to_owned(), kind, mirrors: Some(mirrors) }
}

/// How to read one dataset.
struct Spec {
    from: &'static str,
    id: &'static str,
    change: &'static str,
    business: &'static str,
    channel: Option<&'static str>,
    columns: Vec<Col>,
    /// How to find each row's topic names: SQL selecting `(id, name)` for row ids.
    topics: Option<&'static str>,
}

fn spec(dataset: Dataset, backend: DatabaseBackend) -> Spec {
    use Kind::*;
    match dataset {
        Dataset::Customers => Spec {
            from: "customers c",
            id: "c.id",
            change: "c.updated_at",
            business: "c.created_at",
            channel: None,
            columns: vec![
                col("id", "c.id", Id),
                personal("display_name", "c.display_name", Text, ("Customer", "displayName")),
                col("segment", "c.segment", Text),
                col("merged_into_id", "c.merged_into_id", Id),
                col("erased_at", "c.erased_at", Time),
                col("last_contact_at", "c.last_contact_at", Time),
                col("created_at", "c.created_at", Time),
                col("updated_at", "c.updated_at", Time),
            ],
            topics: None,
        },
        Dataset::Interactions => Spec {
            from: "interactions i",
            id: "i.id",
            change: "i.updated_at",
            business: "i.occurred_at",
            channel: Some("i.channel"),
            columns: vec![
                col("id", "i.id", Id),
                col("customer_id", "i.customer_id", Id),
                col("conversation_id", "i.conversation_id", Id),
                col("channel", "i.channel", Code),
                col("direction", "i.direction", Code),
                col("visibility", "i.visibility", Code),
                col("author_kind", "i.author_kind", Code),
                col("inbox", "i.inbox", Text),
                personal("body", "i.body", Text, ("Interaction", "body")),
                col("sentiment_score", "i.sentiment_score", Float),
                col("sentiment_label", "i.sentiment_label", Code),
                personal("external_id", "i.external_id", Text, ("Interaction", "externalId")),
                col("occurred_at", "i.occurred_at", Time),
                col("created_at", "i.created_at", Time),
                col("updated_at", "i.updated_at", Time),
            ],
            topics: Some(
                "SELECT l.interaction_id AS id, t.name FROM interaction_topics l JOIN topics t ON t.id = l.topic_id \
                 WHERE l.interaction_id IN ",
            ),
        },
        Dataset::Conversations => Spec {
            from: "conversations cv LEFT JOIN teams tm ON tm.id = cv.team_id",
            id: "cv.id",
            change: "cv.updated_at",
            business: "cv.opened_at",
            channel: Some("cv.channel"),
            columns: vec![
                col("id", "cv.id", Id),
                col("customer_id", "cv.customer_id", Id),
                col("channel", "cv.channel", Code),
                col("inbox", "cv.inbox", Text),
                col("status", "cv.status", Code),
                col("priority", "cv.priority", Code),
                col("team", "tm.name", Text),
                col("assignee_id", "cv.assignee_id", Id),
                col("opened_at", "cv.opened_at", Time),
                col("first_response_at", "cv.first_response_at", Time),
                col("resolved_at", "cv.resolved_at", Time),
                col("closed_at", "cv.closed_at", Time),
                col(
                    "first_response_seconds",
                    &sql::seconds_between(backend, "cv.first_response_at", "cv.opened_at"),
                    Float,
                ),
                col("resolution_seconds", &sql::seconds_between(backend, "cv.resolved_at", "cv.opened_at"), Float),
                col("first_response_breached", "CASE WHEN cv.first_response_breached THEN 1 ELSE 0 END", Bool),
                col("resolution_breached", "CASE WHEN cv.resolution_breached THEN 1 ELSE 0 END", Bool),
                col(
                    "sla_met",
                    "CASE WHEN cv.sla_policy_id IS NULL THEN NULL \
                     WHEN cv.first_response_breached OR cv.resolution_breached THEN 0 \
                     WHEN cv.resolved_at IS NOT NULL THEN 1 ELSE NULL END",
                    Bool,
                ),
                col(
                    "csat",
                    "(SELECT AVG(CAST(f.score AS DOUBLE PRECISION)) FROM feedback f JOIN interactions fi \
                     ON fi.id = f.interaction_id WHERE fi.conversation_id = cv.id AND f.kind = 'csat')",
                    Float,
                ),
                col("tags", "cv.tags", List),
                col("updated_at", "cv.updated_at", Time),
            ],
            topics: Some(
                "SELECT DISTINCT i.conversation_id AS id, t.name FROM interactions i \
                 JOIN interaction_topics l ON l.interaction_id = i.id JOIN topics t ON t.id = l.topic_id \
                 WHERE i.conversation_id IN ",
            ),
        },
        Dataset::Touchpoints => Spec {
            from: "touchpoints tp JOIN journeys j ON j.id = tp.journey_id JOIN journey_stages s ON s.id = tp.stage_id",
            id: "tp.id",
            change: "tp.updated_at",
            business: "tp.occurred_at",
            channel: Some("tp.channel"),
            columns: vec![
                col("id", "tp.id", Id),
                col("customer_id", "tp.customer_id", Id),
                col("journey", "j.name", Text),
                col("stage", "s.name", Text),
                col("stage_position", "CAST(s.position AS BIGINT)", Int),
                col("channel", "tp.channel", Code),
                col("name", "tp.name", Text),
                col("outcome", "tp.outcome", Code),
                col("interaction_id", "tp.interaction_id", Id),
                col("source", "tp.source", Text),
                personal("external_id", "tp.external_id", Text, ("Touchpoint", "externalId")),
                col("occurred_at", "tp.occurred_at", Time),
                col("created_at", "tp.created_at", Time),
                col("updated_at", "tp.updated_at", Time),
            ],
            topics: None,
        },
        Dataset::Feedback => Spec {
            from: "feedback f",
            id: "f.id",
            change: "f.updated_at",
            business: "f.occurred_at",
            channel: Some("f.channel"),
            columns: vec![
                col("id", "f.id", Id),
                col("customer_id", "f.customer_id", Id),
                col("survey_id", "f.survey_id", Id),
                col("kind", "f.kind", Code),
                col("score", "CAST(f.score AS BIGINT)", Int),
                personal("comment", "f.comment", Text, ("Feedback", "comment")),
                col("channel", "f.channel", Code),
                col("touchpoint_id", "f.touchpoint_id", Id),
                col("interaction_id", "f.interaction_id", Id),
                col("sentiment_score", "f.sentiment_score", Float),
                col("sentiment_label", "f.sentiment_label", Code),
                col("source", "f.source", Text),
                personal("external_id", "f.external_id", Text, ("Feedback", "externalId")),
                col("occurred_at", "f.occurred_at", Time),
                col("created_at", "f.created_at", Time),
                col("updated_at", "f.updated_at", Time),
            ],
            topics: Some(
                "SELECT l.feedback_id AS id, t.name FROM feedback_topics l JOIN topics t ON t.id = l.topic_id \
                 WHERE l.feedback_id IN ",
            ),
        },
    }
}

/// One exported value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Where a chunk ended: the next one starts after this (change time, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub changed: DateTime<Utc>,
    pub id: Uuid,
}

/// One chunk of rows, ready to encode.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub rows: Vec<Vec<Cell>>,
    /// None when this was the last chunk.
    pub next: Option<Cursor>,
}

/// Reads datasets for one caller.
pub struct Exporter {
    dataset: Dataset,
    spec: Spec,
    filter: Filter,
    reads_pii: bool,
}

impl Exporter {
    pub fn new(dataset: Dataset, backend: DatabaseBackend, filter: Filter, reads_pii: bool) -> AppResult<Self> {
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err(AppError::invalid(&["to"], "INVALID", "must be after `from`"));
        }
        let mut spec = spec(dataset, backend);
        if spec.topics.is_some() {
            spec.columns.push(col("topics", "NULL", Kind::List));
        }
        Ok(Exporter { dataset, spec, filter, reads_pii })
    }

    /// The column names, in order.
    pub fn header(&self) -> Vec<&'static str> {
        self.spec.columns.iter().map(|c| c.name).collect()
    }

    pub fn dataset(&self) -> Dataset {
        self.dataset
    }

    /// The chunk after `after` (the first one for `None`).
    pub async fn chunk(&self, db: &impl ConnectionTrait, after: Option<Cursor>) -> AppResult<Chunk> {
        let backend = db.get_database_backend();
        let s = &self.spec;
        let mut q = Sql::new();
        q.push("SELECT ");
        for c in s.columns.iter().filter(|c| c.name != "topics") {
            q.push(&c.expr).push(" AS ").push(c.name).push(", ");
        }
        q.push(s.change).push(" AS x_changed FROM ").push(s.from).push(" WHERE 1 = 1");
        if let Some(from) = self.filter.from {
            q.push(" AND ").push(s.business).push(" >= ").bind(from);
        }
        if let Some(to) = self.filter.to {
            q.push(" AND ").push(s.business).push(" < ").bind(to);
        }
        if let Some(since) = self.filter.updated_since {
            q.push(" AND ").push(s.change).push(" >= ").bind(since);
        }
        if let (Some(channels), Some(channel)) = (&self.filter.channels, s.channel) {
            q.push(" AND ").push(channel).push(" IN ").bind_list(channels.iter().map(|c| c.to_value()));
        }
        if let Some(c) = after {
            // A row-value comparison, so the (change, id) index is read from the cursor
            // on; spelt as `a > x OR (a = x AND id > y)` PostgreSQL bitmap-scanned every
            // later row and sorted them for each page (an export of 100k rows took 35 s).
            q.push(" AND (").push(s.change).push(", ").push(s.id).push(") > (").bind(c.changed);
            q.push(", ").bind(c.id).push(")");
        }
        q.push(" ORDER BY ").push(s.change).push(", ").push(s.id).push(&format!(" LIMIT {CHUNK}"));
        let rows = db.query_all_raw(q.statement(backend)).await?;
        let next = match rows.last() {
            Some(last) if rows.len() as u64 == CHUNK => {
                Some(Cursor { changed: last.try_get("", "x_changed")?, id: last.try_get("", "id")? })
            }
            _ => None,
        };
        let topics = self.topics(db, &rows).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(s.columns.len());
            for c in &s.columns {
                cells.push(if c.name == "topics" {
                    let id: Uuid = row.try_get("", "id")?;
                    topics.get(&id).map_or(Cell::Text(String::new()), |t| Cell::Text(t.join(";")))
                } else {
                    self.cell(row, c)?
                });
            }
            out.push(cells);
        }
        Ok(Chunk { rows: out, next })
    }

    fn cell(&self, row: &QueryResult, c: &Col) -> AppResult<Cell> {
        let cell = match c.kind {
            Kind::Id => row.try_get::<Option<Uuid>>("", c.name)?.map_or(Cell::Null, |u| Cell::Text(u.to_string())),
            Kind::Text => row.try_get::<Option<String>>("", c.name)?.map_or(Cell::Null, Cell::Text),
            Kind::Code => {
                row.try_get::<Option<String>>("", c.name)?.map_or(Cell::Null, |v| Cell::Text(v.to_uppercase()))
            }
            Kind::Int => row.try_get::<Option<i64>>("", c.name)?.map_or(Cell::Null, Cell::Int),
            Kind::Float => row.try_get::<Option<f64>>("", c.name)?.map_or(Cell::Null, Cell::Float),
            Kind::Bool => row.try_get::<Option<i32>>("", c.name)?.map_or(Cell::Null, |b| Cell::Bool(b != 0)),
            Kind::Time => row
                .try_get::<Option<DateTime<Utc>>>("", c.name)?
                .map_or(Cell::Null, |t| Cell::Text(t.to_rfc3339_opts(SecondsFormat::Secs, true))),
            Kind::List => {
                let v: Option<Value> = row.try_get("", c.name)?;
                let items: Vec<String> = v
                    .as_ref()
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect();
                Cell::Text(items.join(";"))
            }
        };
        let Some((type_name, field)) = c.mirrors else { return Ok(cell) };
        if masking::shows(type_name, field, self.reads_pii) {
            return Ok(cell);
        }
        Ok(match (masking::of(type_name, field), cell) {
            (Some(Masking::Name), Cell::Text(t)) => Cell::Text(pii::mask_name(&t)),
            _ => Cell::Null,
        })
    }

    /// Topic names per row id of a chunk (one statement).
    async fn topics(&self, db: &impl ConnectionTrait, rows: &[QueryResult]) -> AppResult<HashMap<Uuid, Vec<String>>> {
        let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
        let Some(select) = self.spec.topics else { return Ok(out) };
        if rows.is_empty() {
            return Ok(out);
        }
        let ids = rows.iter().map(|r| r.try_get::<Uuid>("", "id")).collect::<Result<Vec<_>, _>>()?;
        let mut q = Sql::new();
        q.push(select).bind_list(ids).push(" ORDER BY 2");
        for row in db.query_all_raw(q.statement(db.get_database_backend())).await? {
            out.entry(row.try_get("", "id")?).or_default().push(row.try_get("", "name")?);
        }
        Ok(out)
    }
}

/// Appends one CSV field (RFC 4180 quoting; text a spreadsheet would evaluate as a
/// formula is prefixed with `'`).
fn csv_field(out: &mut String, cell: &Cell) {
    match cell {
        Cell::Null => {}
        Cell::Int(i) => out.push_str(&i.to_string()),
        Cell::Float(f) => out.push_str(&f.to_string()),
        Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Cell::Text(t) => {
            let guard = t.starts_with(['=', '+', '-', '@', '\t', '\r']);
            let quote = guard || t.contains([',', '"', '\n', '\r']) || t.starts_with(' ') || t.ends_with(' ');
            if quote {
                out.push('"');
            }
            if guard {
                out.push('\'');
            }
            if quote {
                out.push_str(&t.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(t);
            }
        }
    }
}

/// The CSV header line.
pub fn csv_header(header: &[&str]) -> String {
    let mut line = header.join(",");
    line.push_str("\r\n");
    line
}

/// Encodes rows in a format.
pub fn encode(format: Format, header: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut out = String::with_capacity(rows.len() * 200);
    for row in rows {
        match format {
            Format::Csv => {
                for (i, cell) in row.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    csv_field(&mut out, cell);
                }
                out.push_str("\r\n");
            }
            Format::Ndjson => {
                let mut obj = Map::with_capacity(row.len());
                for (name, cell) in header.iter().zip(row) {
                    let v = match cell {
                        Cell::Null => Value::Null,
                        Cell::Text(t) => Value::String(t.clone()),
                        Cell::Int(i) => Value::from(*i),
                        Cell::Float(f) => Value::from(*f),
                        Cell::Bool(b) => Value::Bool(*b),
                    };
                    obj.insert((*name).to_owned(), v);
                }
                out.push_str(&Value::Object(obj).to_string());
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let row = vec![
            Cell::Text("plain".into()),
            Cell::Text("a, \"quoted\"\nline".into()),
            Cell::Text("=HYPERLINK(\"http://evil\")".into()),
            Cell::Null,
            Cell::Int(-3),
            Cell::Bool(true),
        ];
        let out = encode(Format::Csv, &["a", "b", "c", "d", "e", "f"], &[row]);
        assert_eq!(out, "plain,\"a, \"\"quoted\"\"\nline\",\"'=HYPERLINK(\"\"http://evil\"\")\",,-3,true\r\n");
    }
}
