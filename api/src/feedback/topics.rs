//! Topics: managers define them by keywords and phrases; feedback comments and inbound
//! interaction bodies are tagged at ingest, and the history is re-tagged by a job when
//! a topic's keywords change.
//!
//! Matching is on whole words, case-insensitively: a phrase matches when its words
//! appear consecutively ("late delivery" matches "a very late delivery", not "the
//! delivery was late"). Re-tagging is a job, not a migration: saving new
//! keywords stamps `retag_requested_at`, and [`retag_pending`] (run by the background
//! worker, chunked, idempotent, safe to run on several replicas at once) rebuilds that
//! topic's links and then records the stamp in `retagged_at`.

use std::collections::HashMap;

use chrono::Utc;
use entity::enums::Direction;
use entity::{feedback, feedback_topic, interaction, interaction_topic, topic};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};

/// Rows re-tagged per transaction.
const CHUNK: u64 = 500;
/// Most keywords per topic.
pub const MAX_KEYWORDS: usize = 100;

/// The words of a text, lowercased, split at anything but letters, digits and `'`.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Compiled topics: each one's phrases as word sequences and, for a brand, its
/// handles as an inbox would name them.
#[derive(Debug, Clone, Default)]
pub struct Tagger {
    topics: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    id: Uuid,
    phrases: Vec<Vec<String>>,
    handles: Vec<String>,
}

/// An account name as compared: lowercase, without a leading `@`.
fn handle_key(handle: &str) -> String {
    handle.trim().trim_start_matches('@').to_lowercase()
}

impl Tagger {
    /// A tagger for these topics.
    pub fn new(topics: &[topic::Model]) -> Self {
        let topics = topics
            .iter()
            .map(|t| {
                let handles = handles_of(t);
                // A handle written in a text ("@AcmeCare") is matched as its words.
                let phrases =
                    keywords_of(t).iter().chain(&handles).map(|k| words(k)).filter(|p| !p.is_empty()).collect();
                Compiled { id: t.id, phrases, handles: handles.iter().map(|h| handle_key(h)).collect() }
            })
            .collect();
        Tagger { topics }
    }

    /// Loads every topic.
    pub async fn load(db: &impl ConnectionTrait) -> AppResult<Self> {
        Ok(Self::new(&topic::Entity::find().all(db).await?))
    }

    /// The topics a text mentions.
    pub fn tag(&self, text: &str) -> Vec<Uuid> {
        self.tag_message(text, None)
    }

    /// The topics a message mentions: by its text, and a brand's too when the message
    /// reached one of the brand's accounts.
    pub fn tag_message(&self, text: &str, inbox: Option<&str>) -> Vec<Uuid> {
        if self.topics.is_empty() {
            return Vec::new();
        }
        let words = words(text);
        let inbox = inbox.map(handle_key);
        self.topics
            .iter()
            .filter(|t| {
                inbox.as_ref().is_some_and(|i| t.handles.contains(i))
                    || t.phrases.iter().any(|p| words.windows(p.len()).any(|w| w == p.as_slice()))
            })
            .map(|t| t.id)
            .collect()
    }
}

/// A topic's keywords as stored (a JSON array of strings).
pub fn keywords_of(t: &topic::Model) -> Vec<String> {
    t.keywords.as_array().into_iter().flatten().filter_map(|k| k.as_str().map(str::to_owned)).collect()
}

/// A brand's handles as stored (a JSON array of strings; none for a plain topic).
pub fn handles_of(t: &topic::Model) -> Vec<String> {
    t.handles.iter().filter_map(|h| h.as_array()).flatten().filter_map(|k| k.as_str().map(str::to_owned)).collect()
}

/// Links a feedback row to the topics its comment mentions.
pub async fn tag_feedback(
    db: &impl ConnectionTrait,
    tagger: &Tagger,
    id: Uuid,
    comment: Option<&str>,
) -> AppResult<()> {
    let topics = comment.map(|c| tagger.tag(c)).unwrap_or_default();
    insert_feedback_links(db, topics.into_iter().map(|t| (id, t)).collect()).await
}

async fn insert_feedback_links(db: &impl ConnectionTrait, links: Vec<(Uuid, Uuid)>) -> AppResult<()> {
    if links.is_empty() {
        return Ok(());
    }
    let rows = links.into_iter().map(|(feedback_id, topic_id)| feedback_topic::ActiveModel {
        feedback_id: Set(feedback_id),
        topic_id: Set(topic_id),
    });
    let conflict = OnConflict::columns([feedback_topic::Column::FeedbackId, feedback_topic::Column::TopicId])
        .do_nothing()
        .to_owned();
    crate::db::insert_all(db, rows.collect(), Some(conflict)).await?;
    Ok(())
}

pub async fn insert_interaction_links(
    db: &impl ConnectionTrait,
    links: Vec<(Uuid, Uuid)>,
) -> Result<(), sea_orm::DbErr> {
    if links.is_empty() {
        return Ok(());
    }
    let rows = links.into_iter().map(|(interaction_id, topic_id)| interaction_topic::ActiveModel {
        interaction_id: Set(interaction_id),
        topic_id: Set(topic_id),
    });
    let conflict = OnConflict::columns([interaction_topic::Column::InteractionId, interaction_topic::Column::TopicId])
        .do_nothing()
        .to_owned();
    crate::db::insert_all(db, rows.collect(), Some(conflict)).await?;
    Ok(())
}

/// Which rows' topics to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagged {
    Feedback,
    Interaction,
}

/// `(topic id, name)` of every topic each row mentions, in one statement.
pub async fn of(
    db: &impl ConnectionTrait,
    tagged: Tagged,
    ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<(Uuid, String)>>> {
    let mut out: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let (links, column) = match tagged {
        Tagged::Feedback => ("feedback_topics", "feedback_id"),
        Tagged::Interaction => ("interaction_topics", "interaction_id"),
    };
    let sql = format!(
        "SELECT l.{column} AS row_id, t.id, t.name FROM {links} l JOIN topics t ON t.id = l.topic_id \
         WHERE l.{column} IN ({}) ORDER BY t.name",
        db::placeholders(ids.len())
    );
    let values = ids.iter().map(|i| sea_orm::Value::from(*i)).collect();
    for row in db.query_all_raw(db::statement(db.get_database_backend(), &sql, values)).await? {
        out.entry(row.try_get("", "row_id")?).or_default().push((row.try_get("", "id")?, row.try_get("", "name")?));
    }
    Ok(out)
}

/// Whose a brand on the watch list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ours,
    /// A competitor's: its spikes are opportunities, not our crises.
    Competitor,
}

impl Side {
    /// As stored in `topics.brand`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Competitor => "competitor",
        }
    }

    /// A topic's side, when it is a brand.
    pub fn of(t: &topic::Model) -> Option<Side> {
        match t.brand.as_deref() {
            Some("ours") => Some(Side::Ours),
            Some("competitor") => Some(Side::Competitor),
            _ => None,
        }
    }
}

/// Most handles per brand.
pub const MAX_HANDLES: usize = 20;

/// A topic (or a brand) as a manager writes it.
#[derive(Debug, Clone, Default)]
pub struct TopicInput {
    pub name: Option<String>,
    pub keywords: Option<Vec<String>>,
    /// Makes the topic a brand on the watch list (a brand stays one).
    pub brand: Option<Side>,
    /// A brand's accounts; only for brands.
    pub handles: Option<Vec<String>>,
}

/// Every topic, by name.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<topic::Model>> {
    Ok(topic::Entity::find().order_by_asc(topic::Column::Name).all(db).await?)
}

/// Creates (`id` none) or updates a topic; new keywords schedule a re-tagging.
pub async fn save(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Option<Uuid>,
    input: TopicInput,
) -> AppResult<topic::Model> {
    let mut errors = Vec::new();
    match &input.name {
        Some(n) if n.trim().is_empty() || n.chars().count() > 200 => {
            errors.push(FieldError::new(&["input", "name"], "INVALID", "must be 1 to 200 characters"))
        }
        None if id.is_none() => {
            errors.push(FieldError::new(&["input", "name"], "REQUIRED", "a new topic needs a name"))
        }
        _ => {}
    }
    let keywords: Option<Vec<String>> = input.keywords.as_ref().map(|k| {
        let mut out: Vec<String> = k.iter().map(|w| words(w).join(" ")).filter(|w| !w.is_empty()).collect();
        out.sort();
        out.dedup();
        out
    });
    match &keywords {
        Some(k) if k.is_empty() || k.len() > MAX_KEYWORDS => errors.push(FieldError::new(
            &["input", "keywords"],
            "INVALID",
            format!("needs 1 to {MAX_KEYWORDS} keywords or phrases with at least one word each"),
        )),
        None if id.is_none() => {
            errors.push(FieldError::new(&["input", "keywords"], "REQUIRED", "a new topic needs keywords"))
        }
        _ => {}
    }
    // Checked before anything is sorted: a list of a million handles costs nothing.
    let too_many = input.handles.as_ref().is_some_and(|h| h.len() > MAX_HANDLES);
    let handles: Option<Vec<String>> = input.handles.as_ref().filter(|_| !too_many).map(|h| {
        let mut out: Vec<String> = h.iter().map(|h| h.trim().to_owned()).collect();
        out.sort_by_cached_key(|h| handle_key(h));
        out.dedup_by_key(|h| handle_key(h));
        out
    });
    if too_many
        || handles.as_ref().is_some_and(|h| h.iter().any(|h| handle_key(h).is_empty() || h.chars().count() > 200))
    {
        errors.push(FieldError::new(
            &["input", "handles"],
            "INVALID",
            format!("at most {MAX_HANDLES} handles of 1 to 200 characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let txn = db::begin_write(db).await?;
    if let Some(name) = &input.name {
        let taken = topic::Entity::find().filter(topic::Column::Name.eq(name.trim())).one(&txn).await?;
        if taken.is_some_and(|t| Some(t.id) != id) {
            return Err(AppError::invalid(&["input", "name"], "TAKEN", "another topic has this name"));
        }
    }
    let now = Utc::now();
    let existing = match id {
        Some(id) => Some(topic::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound("topic"))?),
        None => None,
    };
    let side = input.brand.or(existing.as_ref().and_then(Side::of));
    if handles.as_ref().is_some_and(|h| !h.is_empty()) && side.is_none() {
        return Err(AppError::invalid(&["input", "handles"], "NOT_A_BRAND", "only a brand has handles"));
    }
    // One account belongs to one brand: two brands sharing a handle would both claim
    // every message that reached it.
    if let Some(h) = &handles {
        let mine: std::collections::HashSet<String> = h.iter().map(|h| handle_key(h)).collect();
        let others = topic::Entity::find().filter(topic::Column::Brand.is_not_null()).all(&txn).await?;
        if let Some(other) = others
            .iter()
            .filter(|t| Some(t.id) != id)
            .find(|t| handles_of(t).iter().any(|o| mine.contains(&handle_key(o))))
        {
            return Err(AppError::invalid(
                &["input", "handles"],
                "TAKEN",
                format!("a handle already belongs to the brand {}", other.name),
            ));
        }
    }
    let keywords_changed = keywords.as_ref().is_some_and(|k| existing.as_ref().is_none_or(|e| keywords_of(e) != *k));
    let handles_changed =
        handles.as_ref().is_some_and(|h| existing.as_ref().map_or(!h.is_empty(), |e| handles_of(e) != *h));
    let side_changed = input.brand.is_some_and(|b| existing.as_ref().is_none_or(|e| Side::of(e) != Some(b)));
    let mut model = match existing {
        Some(e) => e.into_active_model(),
        None => topic::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(String::new()),
            keywords: Set(json!([])),
            created_at: Set(now),
            updated_at: Set(now),
            retag_requested_at: Set(None),
            retagged_at: Set(None),
            brand: Set(None),
            handles: Set(None),
        },
    };
    if let Some(name) = &input.name {
        model.name = Set(name.trim().to_owned());
    }
    if let Some(k) = keywords {
        model.keywords = Set(json!(k));
    }
    if let Some(h) = handles {
        model.handles = Set(Some(json!(h)));
    }
    if let Some(side) = input.brand {
        model.brand = Set(Some(side.as_str().to_owned()));
    }
    // New handles match new messages and, through their inbox, old ones: the history
    // is re-tagged as for new keywords.
    if keywords_changed || handles_changed {
        model.retag_requested_at = Set(Some(now));
    }
    model.updated_at = Set(now);
    let saved = if id.is_some() { model.update(&txn).await? } else { model.insert(&txn).await? };
    let op = if id.is_some() { "updateTopic" } else { "createTopic" };
    let fields: Vec<&str> = [
        (input.name.is_some(), "name"),
        (keywords_changed, "keywords"),
        (handles_changed, "handles"),
        (side_changed, "brand"),
    ]
    .into_iter()
    .filter(|(c, _)| *c)
    .map(|(_, f)| f)
    .collect();
    audit::record(&txn, actor, op, "topic", Some(saved.id), json!({ "fields": fields })).await?;
    txn.commit().await?;
    Ok(saved)
}

/// Deletes a topic and its links (insights by topic lose it; the facts stay).
pub async fn delete(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    let result = topic::Entity::delete_by_id(id).exec(&txn).await?;
    if result.rows_affected == 0 {
        return Err(AppError::NotFound("topic"));
    }
    audit::record(&txn, actor, "deleteTopic", "topic", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(())
}

/// Whether a topic's history still waits for re-tagging.
pub fn retag_pending_for(t: &topic::Model) -> bool {
    t.retag_requested_at.is_some_and(|r| t.retagged_at.is_none_or(|d| d < r))
}

/// Re-tags the history of every topic whose keywords changed; returns how many
/// topics it completed. Each chunk is its own transaction (old links of the chunk's id
/// range out, new ones in); a topic whose keywords change again meanwhile stays
/// pending and is redone on the next run. Rows added after the scan passed them were
/// tagged at ingest with the new keywords already.
pub async fn retag_pending(db: &DatabaseConnection) -> AppResult<usize> {
    let pending: Vec<topic::Model> = list(db).await?.into_iter().filter(retag_pending_for).collect();
    let mut done = 0;
    for t in pending {
        let tagger = Tagger::new(std::slice::from_ref(&t));
        // Chunk by chunk, each in one transaction that swaps the topic's links for the
        // chunk's id range (rows the scan skips, without text, lose theirs): a reader
        // never sees the topic's history untagged midway, and no transaction holds the
        // write lock for the whole history.
        let mut after: Option<Uuid> = None;
        loop {
            let mut q = feedback::Entity::find()
                .select_only()
                .columns([feedback::Column::Id, feedback::Column::Comment])
                .filter(feedback::Column::Comment.is_not_null())
                .order_by_asc(feedback::Column::Id)
                .limit(CHUNK);
            if let Some(a) = after {
                q = q.filter(feedback::Column::Id.gt(a));
            }
            let rows: Vec<(Uuid, Option<String>)> = q.into_tuple().all(db).await?;
            let Some(last) = rows.last().map(|r| r.0) else { break };
            let links = rows
                .iter()
                .filter(|(_, c)| c.as_deref().is_some_and(|c| !tagger.tag(c).is_empty()))
                .map(|(id, _)| (*id, t.id))
                .collect();
            let txn = crate::db::begin_write(db).await?;
            let mut stale = feedback_topic::Entity::delete_many()
                .filter(feedback_topic::Column::TopicId.eq(t.id))
                .filter(feedback_topic::Column::FeedbackId.lte(last));
            if let Some(a) = after {
                stale = stale.filter(feedback_topic::Column::FeedbackId.gt(a));
            }
            stale.exec(&txn).await?;
            insert_feedback_links(&txn, links).await?;
            txn.commit().await?;
            after = Some(last);
        }
        let mut after: Option<Uuid> = None;
        loop {
            let mut q = interaction::Entity::find()
                .select_only()
                .columns([interaction::Column::Id, interaction::Column::Body, interaction::Column::Inbox])
                .filter(interaction::Column::Direction.eq(Direction::Inbound))
                .filter(interaction::Column::Body.is_not_null())
                .order_by_asc(interaction::Column::Id)
                .limit(CHUNK);
            if let Some(a) = after {
                q = q.filter(interaction::Column::Id.gt(a));
            }
            let rows: Vec<(Uuid, Option<String>, Option<String>)> = q.into_tuple().all(db).await?;
            let Some(last) = rows.last().map(|r| r.0) else { break };
            let links = rows
                .iter()
                .filter(|(_, b, inbox)| {
                    b.as_deref().is_some_and(|b| !tagger.tag_message(b, inbox.as_deref()).is_empty())
                })
                .map(|(id, _, _)| (*id, t.id))
                .collect();
            let txn = crate::db::begin_write(db).await?;
            let mut stale = interaction_topic::Entity::delete_many()
                .filter(interaction_topic::Column::TopicId.eq(t.id))
                .filter(interaction_topic::Column::InteractionId.lte(last));
            if let Some(a) = after {
                stale = stale.filter(interaction_topic::Column::InteractionId.gt(a));
            }
            stale.exec(&txn).await?;
            insert_interaction_links(&txn, links).await?;
            txn.commit().await?;
            after = Some(last);
        }
        // Only the request this run served is marked done.
        let marked = topic::Entity::update_many()
            .col_expr(topic::Column::RetaggedAt, sea_orm::sea_query::Expr::value(t.retag_requested_at))
            .filter(topic::Column::Id.eq(t.id))
            .filter(topic::Column::RetagRequestedAt.eq(t.retag_requested_at))
            .exec(db)
            .await?;
        if marked.rows_affected > 0 {
            done += 1;
        }
    }
    Ok(done)
}

/// Runs [`retag_pending`] every `interval` in the background.
pub fn spawn_retagger(db: DatabaseConnection, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(interval, move || {
        let db = db.clone();
        async move {
            match retag_pending(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(topics = n, "topics re-tagged"),
                Err(e) => tracing::warn!(error = e.message(), "topic re-tagging failed; retrying next interval"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, keywords: &[&str]) -> topic::Model {
        let now = Utc::now();
        topic::Model {
            id: Uuid::now_v7(),
            name: name.into(),
            keywords: json!(keywords),
            created_at: now,
            updated_at: now,
            retag_requested_at: None,
            retagged_at: None,
            brand: None,
            handles: None,
        }
    }

    #[test]
    fn whole_words_and_phrases_case_insensitively() {
        let delivery = topic("Delivery", &["parcel", "late delivery"]);
        let billing = topic("Billing", &["refund"]);
        let tagger = Tagger::new(&[delivery.clone(), billing.clone()]);
        assert_eq!(tagger.tag("My PARCEL never came"), vec![delivery.id]);
        assert_eq!(tagger.tag("a very late delivery, I want a refund!"), vec![delivery.id, billing.id]);
        assert!(tagger.tag("delivery was late").is_empty(), "a phrase needs its words in order");
        assert!(tagger.tag("parcels and refunds").is_empty(), "whole words only");
    }
}
