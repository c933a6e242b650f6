//! Drivers: which topics hurt. For every topic in a window: how often it is mentioned
//! (tagged feedback and inbound messages), how much of that is negative, and its NPS
//! impact — the NPS of customers who mentioned the topic minus the NPS of those who
//! did not, with the margin of that difference (independent samples).
//!
//! Three statements whatever the number of topics: mention counts per topic, NPS
//! answers of mentioners per topic, and NPS answers overall (the "did not mention"
//! side is overall minus mentioners).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::enums::Channel;
use sea_orm::{ActiveEnum, ConnectionTrait, QueryResult};
use uuid::Uuid;

use super::sql::Sql;
use super::stats::{self, Estimate};
use crate::error::{AppError, AppResult};
use crate::feedback::topics;

/// Which facts count.
#[derive(Debug, Clone)]
pub struct Request {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub channels: Option<Vec<Channel>>,
    pub segments: Option<Vec<String>>,
}

/// How to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Most negative mentions first.
    NegativeVolume,
    /// Most harmful NPS impact (lowest difference) first.
    NpsImpact,
}

/// NPS answer counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NpsCounts {
    pub promoters: i64,
    pub passives: i64,
    pub detractors: i64,
}

impl NpsCounts {
    fn minus(self, o: NpsCounts) -> NpsCounts {
        NpsCounts {
            promoters: self.promoters - o.promoters,
            passives: self.passives - o.passives,
            detractors: self.detractors - o.detractors,
        }
    }

    pub fn estimate(&self) -> Estimate {
        stats::nps(self.promoters, self.passives, self.detractors)
    }
}

/// One topic's figures.
#[derive(Debug, Clone)]
pub struct Driver {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub mentions: i64,
    pub negative_mentions: i64,
    pub with_topic: NpsCounts,
    pub without_topic: NpsCounts,
}

impl Driver {
    /// Share of mentions that were negative.
    pub fn negative_share(&self) -> Estimate {
        stats::percent(self.negative_mentions, self.mentions)
    }

    /// NPS with the topic minus NPS without it.
    pub fn nps_impact(&self) -> Estimate {
        stats::difference(&self.with_topic.estimate(), &self.without_topic.estimate())
    }
}

/// The tagged facts in the window: `(topic_id, customer_id, sentiment_label,
/// fact_id)` (a fact's id is unique across messages and feedback: UUIDv7).
pub(super) fn mentions(sql: &mut Sql, req: &Request) {
    let segment_join = if req.segments.is_some() { " JOIN customers c ON c.id = x.customer_id" } else { "" };
    let parts = [
        ("feedback_topics", "feedback", "feedback_id", ""),
        ("interaction_topics", "interactions", "interaction_id", " AND x.direction = 'inbound'"),
    ];
    sql.push("(");
    for (i, (links, facts, link_col, extra)) in parts.into_iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push(&format!(
            "SELECT l.topic_id, x.customer_id, x.sentiment_label, x.id AS fact_id FROM {links} l \
             JOIN {facts} x ON x.id = l.{link_col}{segment_join} \
             WHERE x.occurred_at >= "
        ))
        .bind(req.from)
        .push(" AND x.occurred_at < ")
        .bind(req.to)
        .push(extra);
        filters(sql, req, "x");
    }
    sql.push(")");
}

pub(super) fn filters(sql: &mut Sql, req: &Request, alias: &str) {
    if let Some(channels) = &req.channels {
        sql.push(&format!(" AND {alias}.channel IN ")).bind_list(channels.iter().map(|c| c.to_value()));
    }
    if let Some(segments) = &req.segments {
        sql.push(" AND c.segment IN ").bind_list(segments.iter().cloned());
    }
}

/// NPS answers in the window: `(customer_id, score)`.
fn nps_answers(sql: &mut Sql, req: &Request) {
    let segment_join = if req.segments.is_some() { " JOIN customers c ON c.id = x.customer_id" } else { "" };
    sql.push(&format!(
        "(SELECT x.customer_id, x.score FROM feedback x{segment_join} WHERE x.kind = 'nps' AND x.occurred_at >= "
    ))
    .bind(req.from)
    .push(" AND x.occurred_at < ")
    .bind(req.to);
    filters(sql, req, "x");
    sql.push(")");
}

const NPS_SUMS: &str = "SUM(CASE WHEN n.score >= 9 THEN 1 ELSE 0 END) AS promoters, \
    SUM(CASE WHEN n.score IN (7, 8) THEN 1 ELSE 0 END) AS passives, \
    SUM(CASE WHEN n.score <= 6 THEN 1 ELSE 0 END) AS detractors";

fn counts(row: &QueryResult) -> AppResult<NpsCounts> {
    let get = |c: &str| row.try_get::<Option<i64>>("", c).map(|v| v.unwrap_or(0));
    Ok(NpsCounts { promoters: get("promoters")?, passives: get("passives")?, detractors: get("detractors")? })
}

/// Every topic's figures, ranked.
pub async fn run(db: &impl ConnectionTrait, req: &Request, ranking: Ranking) -> AppResult<Vec<Driver>> {
    if req.from >= req.to {
        return Err(AppError::invalid(&["range", "to"], "INVALID", "must be after `from`"));
    }
    let backend = db.get_database_backend();
    let mut volume = Sql::new();
    volume.push(
        "SELECT m.topic_id, COUNT(*) AS mentions, SUM(CASE WHEN m.sentiment_label = 'negative' THEN 1 ELSE 0 END) AS negative FROM ",
    );
    mentions(&mut volume, req);
    volume.push(" m GROUP BY m.topic_id");
    let mut with = Sql::new();
    with.push("SELECT m.topic_id, ").push(NPS_SUMS).push(" FROM ");
    nps_answers(&mut with, req);
    with.push(" n JOIN (SELECT DISTINCT mm.topic_id, mm.customer_id FROM ");
    mentions(&mut with, req);
    with.push(" mm) m ON m.customer_id = n.customer_id GROUP BY m.topic_id");
    let mut total = Sql::new();
    total.push("SELECT ").push(NPS_SUMS).push(" FROM ");
    nps_answers(&mut total, req);
    total.push(" n");

    let mut volumes: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for row in db.query_all_raw(volume.statement(backend)).await? {
        let id: Uuid = row.try_get("", "topic_id")?;
        volumes.insert(id, (row.try_get("", "mentions")?, row.try_get::<Option<i64>>("", "negative")?.unwrap_or(0)));
    }
    let mut withs: HashMap<Uuid, NpsCounts> = HashMap::new();
    for row in db.query_all_raw(with.statement(backend)).await? {
        withs.insert(row.try_get("", "topic_id")?, counts(&row)?);
    }
    let overall = match db.query_one_raw(total.statement(backend)).await? {
        Some(row) => counts(&row)?,
        None => NpsCounts::default(),
    };
    let mut out: Vec<Driver> = topics::list(db)
        .await?
        .into_iter()
        .map(|t| {
            let (mentions, negative) = volumes.get(&t.id).copied().unwrap_or((0, 0));
            let with_topic = withs.get(&t.id).copied().unwrap_or_default();
            Driver {
                topic_id: t.id,
                topic_name: t.name,
                mentions,
                negative_mentions: negative,
                with_topic,
                without_topic: overall.minus(with_topic),
            }
        })
        .collect();
    match ranking {
        Ranking::NegativeVolume => {
            out.sort_by(|a, b| b.negative_mentions.cmp(&a.negative_mentions).then(b.mentions.cmp(&a.mentions)))
        }
        Ranking::NpsImpact => out.sort_by(|a, b| {
            let (x, y) = (a.nps_impact().value, b.nps_impact().value);
            // Topics without an impact (no answers on one side) go last.
            match (x, y) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        }),
    }
    Ok(out)
}
