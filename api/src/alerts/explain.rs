//! What a spike alert shows of the mentions behind it: the topics they are most
//! about, and a sample of them — read when the alert is read, over the episode's
//! event-time span, so an episode that grew since it was raised shows its whole
//! story. The mentions are chosen exactly as the detector counted them (negative,
//! inbound, in the scope, not about a competitor alone unless the scope is that
//! competitor's brand); masking is the reader's business (the GraphQL types apply
//! the caller's rights to what is returned here).

use chrono::{DateTime, Utc};
use entity::enums::Channel;
use entity::{feedback, interaction};
use sea_orm::{ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::mentions::{FACTS, LINKS, Scope, not_competitors_alone};
use crate::error::AppResult;
use crate::insights::sql::Sql;

/// Most topics or mentions one alert shows.
pub const MAX_SHOWN: u64 = 20;

/// The mentions of one episode: its scope and event-time span, and the channels the
/// reader may see (`None`: all).
#[derive(Debug, Clone)]
pub struct Episode {
    pub scope: Scope,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub channels: Option<Vec<Channel>>,
}

/// A topic the episode's mentions are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopTopic {
    pub topic_id: Uuid,
    pub name: String,
    pub mentions: i64,
}

/// ` AND` fact `x` of one kind (`0`: messages, `1`: feedback) is one of the episode's
/// mentions; `None` when that kind cannot be (feedback reaches no inbox).
fn in_episode(sql: &mut Sql, episode: &Episode, kind: usize) -> Option<()> {
    let (_, extra) = FACTS[kind];
    let (links, column, public) = LINKS[kind];
    sql.push(" x.sentiment_label = 'negative'").push(extra);
    sql.push(" AND x.occurred_at >= ").bind(episode.from).push(" AND x.occurred_at < ").bind(episode.to);
    if let Some(channels) = &episode.channels {
        sql.push(" AND x.channel IN ").bind_list(channels.iter().map(|c| c.to_value()));
    }
    match &episode.scope {
        Scope::Channel(c) => {
            sql.push(" AND x.channel = ").bind(c.to_value()).push(&not_competitors_alone((links, column, public)));
        }
        Scope::Inbox(i) => {
            if kind == 1 {
                return None;
            }
            sql.push(" AND x.inbox = ").bind(i.clone()).push(&not_competitors_alone((links, column, public)));
        }
        Scope::Topic(t) => {
            sql.push(&format!(" AND EXISTS (SELECT 1 FROM {links} sl WHERE sl.{column} = x.id AND sl.topic_id = "));
            sql.bind(*t).push(")").push(&not_competitors_alone((links, column, public)));
        }
        Scope::Brand(b) => {
            sql.push(&format!(" AND EXISTS (SELECT 1 FROM {links} sl WHERE sl.{column} = x.id AND sl.topic_id = "));
            sql.bind(*b).push(")");
        }
    }
    Some(())
}

/// The topics the episode's mentions are most about (the scope's own topic or brand
/// left out), most mentioned first.
pub async fn top_topics(db: &impl ConnectionTrait, episode: &Episode, limit: u64) -> AppResult<Vec<TopTopic>> {
    let own = match episode.scope {
        Scope::Topic(t) | Scope::Brand(t) => Some(t),
        _ => None,
    };
    let mut sql = Sql::new();
    sql.push("SELECT m.topic_id, t.name, COUNT(*) AS mentions FROM (");
    let mut first = true;
    for (kind, ((facts, _), (links, column, _))) in FACTS.into_iter().zip(LINKS).enumerate() {
        let mut part = Sql::new();
        part.push(&format!("SELECT l.topic_id FROM {facts} x JOIN {links} l ON l.{column} = x.id WHERE"));
        if in_episode(&mut part, episode, kind).is_none() {
            continue;
        }
        if !first {
            sql.push(" UNION ALL ");
        }
        first = false;
        sql.append(part);
    }
    sql.push(") m JOIN topics t ON t.id = m.topic_id");
    if let Some(own) = own {
        sql.push(" WHERE m.topic_id <> ").bind(own);
    }
    sql.push(&format!(" GROUP BY m.topic_id, t.name ORDER BY 3 DESC, t.name LIMIT {}", limit.min(MAX_SHOWN)));
    let mut out = Vec::new();
    for row in db.query_all_raw(sql.statement(db.get_database_backend())).await? {
        out.push(TopTopic {
            topic_id: row.try_get("", "topic_id")?,
            name: row.try_get("", "name")?,
            mentions: row.try_get("", "mentions")?,
        });
    }
    Ok(out)
}

/// The ids of the episode's latest mentions of one kind.
async fn latest(db: &impl ConnectionTrait, episode: &Episode, kind: usize, limit: u64) -> AppResult<Vec<Uuid>> {
    let (facts, _) = FACTS[kind];
    let mut sql = Sql::new();
    sql.push(&format!("SELECT x.id FROM {facts} x WHERE"));
    if in_episode(&mut sql, episode, kind).is_none() {
        return Ok(Vec::new());
    }
    sql.push(&format!(" ORDER BY x.occurred_at DESC, x.id DESC LIMIT {}", limit.min(MAX_SHOWN)));
    let mut out = Vec::new();
    for row in db.query_all_raw(sql.statement(db.get_database_backend())).await? {
        out.push(row.try_get("", "id")?);
    }
    Ok(out)
}

/// The episode's latest negative messages, newest first.
pub async fn sample_messages(
    db: &impl ConnectionTrait,
    episode: &Episode,
    limit: u64,
) -> AppResult<Vec<interaction::Model>> {
    let ids = latest(db, episode, 0, limit).await?;
    Ok(interaction::Entity::find()
        .filter(interaction::Column::Id.is_in(ids))
        .order_by_desc(interaction::Column::OccurredAt)
        .order_by_desc(interaction::Column::Id)
        .limit(limit.min(MAX_SHOWN))
        .all(db)
        .await?)
}

/// The episode's latest negative feedback, newest first.
pub async fn sample_feedback(
    db: &impl ConnectionTrait,
    episode: &Episode,
    limit: u64,
) -> AppResult<Vec<feedback::Model>> {
    let ids = latest(db, episode, 1, limit).await?;
    Ok(feedback::Entity::find()
        .filter(feedback::Column::Id.is_in(ids))
        .order_by_desc(feedback::Column::OccurredAt)
        .order_by_desc(feedback::Column::Id)
        .limit(limit.min(MAX_SHOWN))
        .all(db)
        .await?)
}
