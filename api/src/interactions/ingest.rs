//! Recording interactions: the full ingest pipeline, idempotent, set-based.
//!
//! A batch (one event is a batch of one) is written in one transaction with about a
//! dozen statements however many events it holds: look up every `(channel,
//! external_id)` at once (a known event returns the stored interaction and changes
//! nothing), load the customers named by id at once (identities are resolved one by
//! one: that may create customers), lock the current conversation of each (customer,
//! channel), then in memory score sentiment, thread each event in order (routing and
//! SLA due times for a new conversation) and tag topics, and write back with one
//! statement per table. Two copies arriving at the same moment race on the unique
//! index; the losing batch rolls back and, on its retry, finds the winner's rows. A
//! batch answers per item: an item failing its checks is reported and the others
//! still land.
//!
//! Locks, in the order every batch takes them (so two batches never wait on each
//! other in a cycle): the rows of the conversations it continues; for a pair with no
//! conversation, an advisory lock on opening one, then a second read; last, the rows
//! of its customers, in the statement that notes their latest contact and checks that
//! none was merged or erased meanwhile. Batches that share a customer but not a
//! conversation therefore overlap except for that last statement and the commit
//! (they used to lock the customers first and run one after the other: with a few
//! busy customers in every batch, four ingest clients wrote one at a time).

use chrono::{DateTime, Utc};
use entity::enums::{AuthorKind, Channel, ConversationStatus, Direction, Priority, Visibility};
use entity::{conversation, customer, interaction, sla_policy};
use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    Iterable, QueryFilter, Set, TryIntoModel,
};
use serde_json::json;
use uuid::Uuid;

use super::routing::{self, RoutingFacts, Rule};
use super::sla;
use crate::audit::{self, Actor};
use crate::batch::{self, Stored};
use crate::customers::service as customers;
pub use crate::customers::service::CustomerRef;
use crate::db;
use crate::error::{AppError, AppResult, FieldError};
use crate::events::{self, NewEvent};
use crate::feedback::topics::{self, Tagger};
use crate::sentiment;

/// Largest accepted body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
pub use crate::batch::MAX_BATCH;

/// One event as a channel connector or agent desk reports it.
#[derive(Debug, Clone)]
pub struct NewInteraction {
    pub channel: Channel,
    pub direction: Direction,
    pub visibility: Visibility,
    /// Defaults to the customer for inbound, an agent for outbound.
    pub author_kind: Option<AuthorKind>,
    pub inbox: Option<String>,
    pub body: Option<String>,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The channel's id for the event: the idempotency key with the channel.
    pub external_id: String,
    pub customer: CustomerRef,
}

/// The stored interaction, and whether this call created it.
pub type Recorded = Stored<interaction::Model>;

/// Rules and policies, loaded once per call or batch.
pub struct Pipeline {
    rules: Vec<Rule>,
    policies: Vec<sla_policy::Model>,
    topics: Tagger,
}

impl Pipeline {
    pub async fn load(db: &impl ConnectionTrait) -> AppResult<Pipeline> {
        Ok(Pipeline {
            rules: routing::load_rules(db).await?,
            policies: sla::load(db).await?,
            topics: Tagger::load(db).await?,
        })
    }
}

fn field(path: &[&str], name: &str) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).chain([name.to_owned()]).collect()
}

fn invalid(path: &[&str], name: &str, code: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field: field(path, name), code, message: message.into() }
}

/// Checks what can be checked without the database.
fn validate(path: &[&str], input: &NewInteraction) -> AppResult<()> {
    let mut errors = Vec::new();
    let external = input.external_id.trim();
    if external.is_empty() || external.len() > 300 {
        errors.push(invalid(path, "externalId", "INVALID", "must be 1 to 300 characters"));
    }
    if input.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
        errors.push(invalid(path, "body", "TOO_LONG", format!("must be at most {MAX_BODY} bytes")));
    }
    if input.inbox.as_ref().is_some_and(|i| i.chars().count() > 200) {
        errors.push(invalid(path, "inbox", "TOO_LONG", "must be at most 200 characters"));
    }
    match (input.direction, input.author_kind) {
        (Direction::Inbound, Some(AuthorKind::Agent | AuthorKind::Bot)) => {
            errors.push(invalid(path, "authorKind", "INVALID", "an inbound event is written by the customer"))
        }
        (Direction::Outbound, Some(AuthorKind::Customer)) => {
            errors.push(invalid(path, "authorKind", "INVALID", "an outbound event is written by an agent or a bot"))
        }
        _ => {}
    }
    input.customer.check(path, &mut errors);
    let at = field(path, "occurredAt");
    batch::check_occurred_at(&at.iter().map(String::as_str).collect::<Vec<_>>(), input.occurred_at, &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(AppError::Invalid(errors)) }
}

/// Records one event.
pub async fn record(db: &DatabaseConnection, actor: Actor<'_>, input: NewInteraction) -> AppResult<Recorded> {
    ingest(db, actor, vec![Ok(input)], false).await?.pop().unwrap_or_else(|| Err(no_answer()))
}

/// Records a batch, answering per item (in order). An item the caller already refused
/// (it did not parse) keeps its answer and its place, and the audit entry counts it as
/// rejected; the size cap counts every item.
pub async fn record_batch(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    inputs: Vec<AppResult<NewInteraction>>,
) -> AppResult<Vec<AppResult<Recorded>>> {
    batch::check_size(inputs.len())?;
    let out = ingest(db, actor, inputs, true).await?;
    for (i, result) in out.iter().enumerate() {
        if let Err(e) = result
            && !matches!(e, AppError::Invalid(_) | AppError::NotFound(_) | AppError::Forbidden(_))
        {
            tracing::warn!(index = i, error = e.message(), "ingest item failed");
        }
    }
    Ok(out)
}

/// The audit entry of a call, written in the transaction that stores its events: one
/// event names the interaction it created (nothing when it was a duplicate), a batch
/// counts what it created, found already stored and rejected (`rejected_before` items
/// were refused before the transaction and are not among `answers`).
async fn audit_of<'a>(
    txn: &impl ConnectionTrait,
    actor: Actor<'_>,
    batched: bool,
    answers: impl Iterator<Item = &'a AppResult<Recorded>>,
    rejected_before: usize,
) -> AppResult<()> {
    let (mut counts, mut created_id) = ((0, 0, rejected_before), None);
    for answer in answers {
        match answer {
            Ok(Stored { row, created: true }) => {
                counts.0 += 1;
                created_id = Some(row.id);
            }
            Ok(_) => counts.1 += 1,
            Err(_) => counts.2 += 1,
        }
    }
    if batched {
        return batch::audit_counts(txn, actor, "ingestInteractions", "interaction", counts).await;
    }
    match created_id {
        Some(id) => audit::record(txn, actor, "recordInteraction", "interaction", Some(id), json!({})).await,
        None => Ok(()),
    }
}

fn no_answer() -> AppError {
    AppError::internal(anyhow::anyhow!("an ingested item got no answer"))
}

/// The field path of item `i`: `input.…` for one event, `inputs.i.…` in a batch.
fn path_of(batched: bool, i: usize) -> Vec<String> {
    if batched { vec!["inputs".to_owned(), i.to_string()] } else { vec!["input".to_owned()] }
}

/// Checks an item before any transaction: what the caller must fix.
fn precheck(path: &[&str], actor: Actor<'_>, input: &mut NewInteraction) -> AppResult<()> {
    validate(path, input)?;
    if !actor.principal.may_use_channel(input.channel) {
        return Err(AppError::forbidden(format!("this token may not write to the {:?} channel", input.channel)));
    }
    input.external_id = input.external_id.trim().to_owned();
    customers::normalize_all(&[path, &["identities"]].concat(), &input.customer.identities)?;
    Ok(())
}

/// The pipeline for a batch: items failing their checks are answered at once; the
/// rest are written together in one transaction, retried whole when a concurrent
/// write wins a race on a unique key. `batched` is false for one event.
async fn ingest(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    inputs: Vec<AppResult<NewInteraction>>,
    batched: bool,
) -> AppResult<Vec<AppResult<Recorded>>> {
    let pipeline = Pipeline::load(db).await?;
    let mut answers: Vec<Option<AppResult<Recorded>>> = (0..inputs.len()).map(|_| None).collect();
    let channels: Vec<Option<Channel>> = inputs.iter().map(|x| x.as_ref().ok().map(|x| x.channel)).collect();
    let mut valid = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let path = path_of(batched, i);
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        match input.and_then(|mut input| precheck(&path, actor, &mut input).map(|()| input)) {
            Ok(input) => {
                let analysis = Analysis::of(&pipeline, &input);
                valid.push(Item { index: i, input, analysis });
            }
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    if valid.is_empty() {
        audit_of(db, actor, batched, answers.iter().flatten(), 0).await?;
    } else {
        let rejected = answers.iter().filter(|a| a.is_some()).count();
        for (i, answer) in batch::retrying(|| attempt(db, actor, &pipeline, &valid, batched, rejected)).await? {
            answers[i] = Some(answer);
        }
    }
    Ok(answers
        .into_iter()
        .zip(channels)
        .map(|(answer, channel)| {
            let answer = answer.unwrap_or_else(|| Err(no_answer()));
            if let Some(channel) = channel {
                count(channel, &answer);
            }
            answer
        })
        .collect())
}

/// Counts an ingest outcome per channel for `/metrics`.
fn count(channel: Channel, result: &AppResult<Recorded>) {
    let outcome = match result {
        Ok(Stored { created: true, .. }) => "created",
        Ok(_) => "duplicate",
        Err(_) => "rejected",
    };
    crate::metrics::get().ingested(&channel.to_value(), outcome);
}

/// What the text says, worked out before the transaction so locks are held only for
/// the database work: sentiment and topics of an inbound message.
struct Analysis {
    sentiment: Option<sentiment::Sentiment>,
    topics: Vec<Uuid>,
}

impl Analysis {
    fn of(pipeline: &Pipeline, input: &NewInteraction) -> Analysis {
        let text = input.body.as_deref().filter(|b| !b.trim().is_empty());
        match text {
            Some(text) if input.direction == Direction::Inbound => Analysis {
                sentiment: Some(sentiment::analyse(text)),
                topics: pipeline.topics.tag_message(text, input.inbox.as_deref()),
            },
            _ => Analysis { sentiment: None, topics: Vec::new() },
        }
    }
}

/// An item that passed its checks: its place in the batch, the event, its analysis.
struct Item {
    index: usize,
    input: NewInteraction,
    analysis: Analysis,
}

/// Interactions already stored under any of the items' keys, by key: one probe of the
/// `(channel, external_id)` index per key.
async fn existing_by_key(
    txn: &impl ConnectionTrait,
    keys: &[(Channel, &str)],
) -> Result<HashMap<(Channel, String), interaction::Model>, sea_orm::DbErr> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let unique: HashSet<&(Channel, &str)> = keys.iter().collect();
    let rows = unique.into_iter().map(|(c, e)| vec![c.to_value().into(), (*e).into()]).collect();
    let (with, values) = db::keys_cte("k", &["channel", "external_id"], rows);
    let sql = format!(
        "{with}SELECT i.* FROM interactions i JOIN k ON i.channel = k.channel AND i.external_id = k.external_id"
    );
    let found = interaction::Entity::find()
        .from_raw_sql(db::statement(txn.get_database_backend(), &sql, values))
        .all(txn)
        .await?;
    Ok(found.into_iter().filter_map(|i| i.external_id.clone().map(|e| ((i.channel, e), i))).collect())
}

/// Customers named by id, merged ones followed to their survivor.
async fn customers_by_id(txn: &impl ConnectionTrait, items: &[Item]) -> AppResult<HashMap<Uuid, customer::Model>> {
    let ids: HashSet<Uuid> = items.iter().filter_map(|x| x.input.customer.id).collect();
    let mut found: HashMap<Uuid, customer::Model> = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    for c in customer::Entity::find().filter(customer::Column::Id.is_in(ids)).all(txn).await? {
        found.insert(c.id, c);
    }
    let survivors: HashSet<Uuid> =
        found.values().filter_map(|c| c.merged_into_id).filter(|id| !found.contains_key(id)).collect();
    if !survivors.is_empty() {
        for c in customer::Entity::find().filter(customer::Column::Id.is_in(survivors)).all(txn).await? {
            found.insert(c.id, c);
        }
    }
    Ok(found)
}

/// The customer of one item: by id from the batch's lookup (following a merge), or
/// resolved by identities (which may create the customer). `Ok(None)`: lost a race.
async fn customer_of(
    txn: &impl ConnectionTrait,
    actor: Actor<'_>,
    path: &[&str],
    by_id: &HashMap<Uuid, customer::Model>,
    reference: &CustomerRef,
) -> AppResult<Option<AppResult<customer::Model>>> {
    let Some(id) = reference.id else {
        return match customers::resolve_ref(txn, actor, path, reference).await {
            Ok(Some(c)) => Ok(Some(Ok(c))),
            Ok(None) => Ok(None),
            // A database failure aborts the transaction: the whole batch fails.
            Err(e @ (AppError::Internal(_) | AppError::Unavailable)) => Err(e),
            Err(e) => Ok(Some(Err(e))),
        };
    };
    let found = by_id.get(&id).map(|c| c.merged_into_id.map_or(Some(c), |s| by_id.get(&s)));
    Ok(Some(match found.flatten() {
        None => Err(AppError::NotFound("customer")),
        Some(c) if c.erased_at.is_some() => {
            Err(AppError::invalid(&[path, &["customerId"]].concat(), "ERASED", "was erased"))
        }
        Some(c) => Ok(c.clone()),
    }))
}

/// The advisory-lock class of "a conversation is being opened for this (customer,
/// channel)" (`pg_advisory_xact_lock(class, key)`: a key space of its own, apart from
/// the single-key locks the refreshers take).
const OPENING: i32 = 0x6378;

/// A pair's advisory-lock key: the first four bytes of the SHA-256 of the customer id
/// and the channel (a collision only makes two batches wait). It must be the same in
/// every replica, whatever Rust built it, so not std's `DefaultHasher`, whose output
/// may change between releases.
fn opening_key(customer: Uuid, channel: Channel) -> i32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(customer.as_bytes()).chain_update(channel.to_value()).finalize();
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The (customer, channel) pairs a batch writes to.
fn pairs_of(writes: &[(&Item, customer::Model)]) -> HashSet<(Uuid, Channel)> {
    writes.iter().map(|(x, c)| (c.id, x.input.channel)).collect()
}

/// On PostgreSQL, takes the "opening" lock of each pair (in key order, so batches
/// never wait on each other in a cycle), held until the batch ends. A batch opens a
/// conversation only for a pair it holds, after reading again that none was opened
/// meanwhile; so two batches never open two for one pair, while batches on other
/// pairs of the same customer do not wait on each other.
async fn lock_openings(txn: &impl ConnectionTrait, pairs: &HashSet<(Uuid, Channel)>) -> Result<(), sea_orm::DbErr> {
    let backend = txn.get_database_backend();
    if pairs.is_empty() || backend != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let mut keys: Vec<i32> = pairs.iter().map(|(c, ch)| opening_key(*c, *ch)).collect();
    keys.sort_unstable();
    keys.dedup();
    let sql = format!(
        "SELECT pg_advisory_xact_lock({OPENING}, k) FROM (VALUES {}) AS v(k)",
        vec!["(CAST(? AS INTEGER))"; keys.len()].join(", ")
    );
    txn.query_all_raw(db::statement(backend, &sql, keys.into_iter().map(Into::into).collect())).await?;
    Ok(())
}

/// Notes the batch's latest contact on each of its customers, and checks that none
/// was merged or erased since the batch read them: `false` when one was (the batch
/// is tried again, and then follows the merge or refuses the erased customer). Locks
/// the customers' rows until the batch ends — last, so batches sharing a customer
/// wait on each other only for this statement and the commit. A merge or an erasure
/// takes the same rows first thing (see `customers::merge`), so either it waits for
/// this batch and then finds its rows, or this statement waits for it and fails the
/// check.
async fn touch_customers(
    txn: &impl ConnectionTrait,
    latest: &HashMap<Uuid, DateTime<Utc>>,
) -> Result<bool, sea_orm::DbErr> {
    if latest.is_empty() {
        return Ok(true);
    }
    use sea_orm::sea_query::ExprTrait as _;
    let mut ids: Vec<&Uuid> = latest.keys().collect();
    ids.sort_unstable();
    let mut case = sea_orm::sea_query::CaseStatement::new();
    for id in &ids {
        let at = latest[*id];
        let later = customer::Column::LastContactAt.is_null().or(customer::Column::LastContactAt.lt(at));
        case = case.case(
            customer::Column::Id.eq(**id),
            Expr::case(later, Expr::value(at)).finally(Expr::col(customer::Column::LastContactAt)),
        );
    }
    let touched = customer::Entity::update_many()
        .col_expr(customer::Column::LastContactAt, case.finally(Expr::col(customer::Column::LastContactAt)).into())
        .filter(customer::Column::Id.is_in(ids.into_iter().copied()))
        .filter(customer::Column::MergedIntoId.is_null())
        .filter(customer::Column::ErasedAt.is_null())
        .exec(txn)
        .await?;
    Ok(touched.rows_affected == latest.len() as u64)
}

/// The open, pending or resolved conversation of each (customer, channel), latest
/// first; on PostgreSQL locked (in id order) until the batch commits, so an agent's
/// reply landing meanwhile is not overwritten. Only the pairs' conversations are read
/// and locked, not the customers' others.
async fn current_conversations(
    txn: &impl ConnectionTrait,
    pairs: &HashSet<(Uuid, Channel)>,
) -> Result<HashMap<(Uuid, Channel), conversation::Model>, sea_orm::DbErr> {
    let mut current: HashMap<(Uuid, Channel), conversation::Model> = HashMap::new();
    if pairs.is_empty() {
        return Ok(current);
    }
    let backend = txn.get_database_backend();
    let rows = pairs.iter().map(|(customer, channel)| vec![(*customer).into(), channel.to_value().into()]).collect();
    let (with, mut values) = db::keys_cte("k", &["customer_id", "channel"], rows);
    let statuses = [ConversationStatus::Open, ConversationStatus::Pending, ConversationStatus::Resolved];
    values.extend(statuses.iter().map(|s| sea_orm::Value::from(s.to_value())));
    let lock = if backend == sea_orm::DatabaseBackend::Postgres { " FOR UPDATE OF c" } else { "" };
    let sql = format!(
        "{with}SELECT c.* FROM conversations c JOIN k ON c.customer_id = k.customer_id AND c.channel = k.channel \
         WHERE c.status IN ({}) ORDER BY c.id{lock}",
        db::placeholders(statuses.len())
    );
    let rows = conversation::Entity::find().from_raw_sql(db::statement(backend, &sql, values)).all(txn).await?;
    for row in rows {
        let key = (row.customer_id, row.channel);
        if current.get(&key).is_none_or(|c| c.last_message_at < row.last_message_at) {
            current.insert(key, row);
        }
    }
    Ok(current)
}

type Answers = Vec<(usize, AppResult<Recorded>)>;

/// One try at writing the batch. `Ok(None)`: a concurrent write won a race; the
/// transaction is rolled back and the caller tries again (finding the winner's rows).
async fn attempt(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    pipeline: &Pipeline,
    items: &[Item],
    batched: bool,
    rejected_before: usize,
) -> AppResult<Option<Answers>> {
    let txn = db::begin_write(db).await?;
    let keys: Vec<(Channel, &str)> = items.iter().map(|x| (x.input.channel, x.input.external_id.as_str())).collect();
    let existing = existing_by_key(&txn, &keys).await?;
    let by_id = customers_by_id(&txn, items).await?;
    let mut answers: Answers = Vec::with_capacity(items.len());
    // Items that will be written, with their customer; repeats of a key within the
    // batch point at the first item holding it.
    let mut writes: Vec<(&Item, customer::Model)> = Vec::new();
    let mut first_of_key: HashMap<(Channel, &str), usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for item in items {
        let (i, input) = (&item.index, &item.input);
        let key = (input.channel, input.external_id.clone());
        if let Some(found) = existing.get(&key) {
            answers.push((*i, Ok(Recorded { row: found.clone(), created: false })));
            continue;
        }
        if let Some(first) = first_of_key.get(&(input.channel, input.external_id.as_str())) {
            repeats.push((*i, *first));
            continue;
        }
        let path = path_of(batched, *i);
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let Some(customer) = customer_of(&txn, actor, &path, &by_id, &input.customer).await? else {
            txn.rollback().await.ok();
            return Ok(None);
        };
        match customer {
            Ok(customer) => {
                first_of_key.insert((input.channel, input.external_id.as_str()), *i);
                writes.push((item, customer));
            }
            Err(e) => answers.push((*i, Err(e))),
        }
    }
    let pairs = pairs_of(&writes);
    let locked = async {
        // Every conversation here gets a message of this batch: all are written back.
        let mut conversations = current_conversations(&txn, &pairs).await?;
        let unopened: HashSet<(Uuid, Channel)> =
            pairs.iter().filter(|p| !conversations.contains_key(p)).copied().collect();
        if !unopened.is_empty() && txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            lock_openings(&txn, &unopened).await?;
            conversations.extend(current_conversations(&txn, &unopened).await?);
        }
        // Keys stored by a batch that held a lock we waited for are duplicates too.
        let keys: Vec<(Channel, &str)> =
            writes.iter().map(|(x, _)| (x.input.channel, x.input.external_id.as_str())).collect();
        Ok::<_, sea_orm::DbErr>((conversations, existing_by_key(&txn, &keys).await?))
    };
    let (mut conversations, stored_meanwhile) = match locked.await {
        Ok(locked) => locked,
        Err(e) => {
            return abandon(txn, e).await;
        }
    };
    let mut found_meanwhile: HashMap<usize, interaction::Model> = HashMap::new();
    writes.retain(|(x, _)| match stored_meanwhile.get(&(x.input.channel, x.input.external_id.clone())) {
        Some(found) => {
            found_meanwhile.insert(x.index, found.clone());
            false
        }
        None => true,
    });
    let still = pairs_of(&writes);
    conversations.retain(|pair, _| still.contains(pair));
    let now = Utc::now();
    let mut rows: Vec<interaction::Model> = Vec::with_capacity(writes.len());
    let mut links: Vec<(Uuid, Uuid)> = Vec::new();
    let mut emitted: Vec<NewEvent> = Vec::with_capacity(writes.len() * 2);
    let mut last_contact: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    for (item, customer) in &writes {
        let input = &item.input;
        let at = input.occurred_at.unwrap_or(now);
        let inbound = input.direction == Direction::Inbound;
        let score = item.analysis.sentiment;
        let key = (customer.id, input.channel);
        let conversation = match conversations.remove(&key) {
            Some(current) => continue_conversation(pipeline, current, input, at, now)?,
            None => open_conversation(pipeline, customer, input, at, now, score.map(|s| s.score)),
        };
        let conversation_id = conversation.id;
        conversations.insert(key, conversation);
        let author_kind = input.author_kind.unwrap_or(if inbound { AuthorKind::Customer } else { AuthorKind::Agent });
        let row = interaction::Model {
            id: Uuid::now_v7(),
            customer_id: customer.id,
            conversation_id: Some(conversation_id),
            channel: input.channel,
            direction: input.direction,
            visibility: input.visibility,
            author_kind,
            author_user_id: if author_kind == AuthorKind::Agent { actor.principal.user().map(|u| u.id) } else { None },
            inbox: input.inbox.clone(),
            body: input.body.clone(),
            sentiment_score: score.map(|s| s.score),
            sentiment_label: score.map(|s| s.label),
            external_id: Some(input.external_id.clone()),
            occurred_at: at,
            created_at: now,
            updated_at: now,
        };
        links.extend(item.analysis.topics.iter().map(|topic| (row.id, *topic)));
        emitted.push(interaction_event(&row));
        emitted.push(super::conversations::updated_event(conversation_id, customer.id, input.channel));
        let latest = last_contact.entry(customer.id).or_insert(at);
        *latest = (*latest).max(at);
        rows.push(row);
    }
    let touched: Vec<conversation::Model> = conversations.into_values().collect();
    if let Err(e) = write(&txn, touched, &rows, links, emitted).await {
        return abandon(txn, e).await;
    }
    let resolved: Vec<(&CustomerRef, Uuid)> = writes.iter().map(|(x, c)| (&x.input.customer, c.id)).collect();
    let settled = async {
        Ok::<_, sea_orm::DbErr>(
            touch_customers(&txn, &last_contact).await? && customers::resolution_holds(&txn, &resolved).await?,
        )
    };
    match settled.await {
        Ok(true) => {}
        Ok(false) => {
            // A customer was merged or erased meanwhile, or an unmerge took back an
            // identity or a tombstone the batch resolved by: try again from the start.
            txn.rollback().await.ok();
            return Ok(None);
        }
        Err(e) => return abandon(txn, e).await,
    }
    let stored: HashMap<usize, interaction::Model> = writes.iter().map(|(x, _)| x.index).zip(rows).collect();
    for (i, first) in repeats {
        if let Some(row) = stored.get(&first).or_else(|| found_meanwhile.get(&first)) {
            answers.push((i, Ok(Recorded { row: row.clone(), created: false })));
        }
    }
    answers.extend(found_meanwhile.into_iter().map(|(i, row)| (i, Ok(Recorded { row, created: false }))));
    answers.extend(stored.into_iter().map(|(i, row)| (i, Ok(Recorded { row, created: true }))));
    // The audit entry commits with the events it counts, or neither does.
    if let Err(e) = audit_of(&txn, actor, batched, answers.iter().map(|(_, a)| a), rejected_before).await {
        txn.rollback().await.ok();
        return Err(e);
    }
    txn.commit().await?;
    Ok(Some(answers))
}

/// Rolls the batch back after a failed statement: `Ok(None)` (try again) when it lost
/// a race to a concurrent write, the error otherwise.
async fn abandon(txn: sea_orm::DatabaseTransaction, e: sea_orm::DbErr) -> AppResult<Option<Answers>> {
    txn.rollback().await.ok();
    if db::lost_race(&e) { Ok(None) } else { Err(e.into()) }
}

/// The batch's writes: one statement per table (more for a large batch, see
/// [`db::insert_all`]).
async fn write(
    txn: &impl ConnectionTrait,
    conversations: Vec<conversation::Model>,
    rows: &[interaction::Model],
    links: Vec<(Uuid, Uuid)>,
    emitted: Vec<NewEvent>,
) -> Result<(), sea_orm::DbErr> {
    if !conversations.is_empty() {
        // New conversations are inserted, continued ones updated, in one upsert.
        let models = conversations.into_iter().map(|row| row.into_active_model().reset_all());
        use conversation::Column as C;
        let update: Vec<C> =
            C::iter().filter(|c| !matches!(c, C::Id | C::CustomerId | C::Channel | C::CreatedAt)).collect();
        let upsert = OnConflict::column(conversation::Column::Id).update_columns(update).to_owned();
        db::insert_all(txn, models.collect(), Some(upsert)).await?;
    }
    db::insert_all(txn, rows.iter().cloned().map(IntoActiveModel::into_active_model).collect(), None).await?;
    topics::insert_interaction_links(txn, links).await?;
    events::emit_all(txn, emitted).await?;
    Ok(())
}

/// The `interaction.received` event of a stored interaction (ids and codes only).
pub fn interaction_event(i: &interaction::Model) -> NewEvent {
    NewEvent {
        event_type: "interaction.received",
        aggregate_type: "interaction",
        aggregate_id: i.id,
        customer_id: Some(i.customer_id),
        channel: Some(i.channel),
        payload: json!({ "conversationId": i.conversation_id, "direction": i.direction, "visibility": i.visibility }),
    }
}

/// A further message on a conversation: moves its clocks (a customer's message reopens
/// a resolved one and ends "pending"; our first reply stops the first-response clock).
fn continue_conversation(
    pipeline: &Pipeline,
    current: conversation::Model,
    input: &NewInteraction,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<conversation::Model> {
    let mut c = current.into_active_model();
    let last = *c.last_message_at.as_ref();
    c.last_message_at = Set(last.max(at));
    if input.direction == Direction::Inbound {
        if *c.status.as_ref() != ConversationStatus::Open {
            let policy = c.sla_policy_id.as_ref().and_then(|id| pipeline.policies.iter().find(|p| p.id == id));
            let hours = policy.and_then(sla::hours_of);
            super::conversations::apply_status(&mut c, ConversationStatus::Open, at.max(now), hours.as_ref());
        }
    } else if c.first_response_at.as_ref().is_none() {
        c.first_response_at = Set(Some(at));
        let due = *c.first_response_due_at.as_ref();
        c.first_response_breached = Set(due.is_some_and(|d| at > d));
    }
    c.updated_at = Set(now);
    super::conversations::refresh_next_due(&mut c);
    Ok(c.try_into_model()?)
}

/// A new conversation for the event, routed by the first matching rule and timed by
/// the most specific SLA policy.
fn open_conversation(
    pipeline: &Pipeline,
    customer: &customer::Model,
    input: &NewInteraction,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    sentiment: Option<f64>,
) -> conversation::Model {
    let inbound = input.direction == Direction::Inbound;
    let facts = RoutingFacts {
        channel: input.channel,
        visibility: input.visibility,
        inbox: input.inbox.as_deref(),
        body: input.body.as_deref(),
        segment: customer.segment.as_deref(),
        sentiment,
        at,
    };
    let route = routing::route(&pipeline.rules, &facts);
    let priority = route.priority.unwrap_or(Priority::Normal);
    let due = sla::pick(&pipeline.policies, input.channel, priority).map(|p| sla::due_times(p, at));
    // We wrote first (outreach): waiting on the customer.
    let status = if inbound { ConversationStatus::Open } else { ConversationStatus::Pending };
    let first_response_at = if inbound { None } else { Some(at) };
    conversation::Model {
        id: Uuid::now_v7(),
        customer_id: customer.id,
        channel: input.channel,
        inbox: input.inbox.clone(),
        status,
        priority,
        subject: input.body.as_deref().map(|b| b.chars().take(120).collect::<String>()),
        team_id: route.team_id,
        assignee_id: None,
        sla_policy_id: due.map(|d| d.policy_id),
        routing_rule_id: route.rule_id,
        tags: json!(route.tags),
        opened_at: at,
        last_message_at: at,
        first_response_due_at: due.map(|d| d.first_response_due_at),
        resolution_due_at: due.map(|d| d.resolution_due_at),
        first_response_at,
        resolved_at: None,
        closed_at: None,
        first_response_breached: false,
        resolution_breached: false,
        pending_since: (!inbound).then_some(at),
        next_due_at: super::conversations::next_due(
            status,
            first_response_at,
            due.map(|d| d.first_response_due_at),
            due.map(|d| d.resolution_due_at),
        ),
        created_at: now,
        updated_at: now,
    }
}
