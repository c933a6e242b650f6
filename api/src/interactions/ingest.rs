//! Recording interactions: the full ingest pipeline for one event, idempotent.
//!
//! Each event runs in its own write transaction: look up `(channel, external_id)` (a
//! known event returns the stored interaction and changes nothing), resolve the
//! customer, score sentiment, thread into a conversation (routing and SLA due times
//! for a new one), insert, bump the customer's last contact. Two copies arriving at
//! the same moment race on the unique index; the loser rolls back and, on its retry,
//! finds the winner's row. A batch answers per item: one bad item is reported and the
//! others still land.

use chrono::{DateTime, Utc};
use entity::enums::{AuthorKind, Channel, ConversationStatus, Direction, Priority, Visibility};
use entity::{conversation, customer, interaction, sla_policy};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
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
    if let Some(at) = input.occurred_at
        && at > Utc::now() + chrono::Duration::minutes(5)
    {
        errors.push(invalid(path, "occurredAt", "IN_FUTURE", "must not be in the future"));
    }
    if errors.is_empty() { Ok(()) } else { Err(AppError::Invalid(errors)) }
}

/// Records one event.
pub async fn record(db: &DatabaseConnection, actor: Actor<'_>, input: NewInteraction) -> AppResult<Recorded> {
    let pipeline = Pipeline::load(db).await?;
    let recorded = record_with(db, actor, &pipeline, &["input"], input).await?;
    if recorded.created {
        audit::record(db, actor, "recordInteraction", "interaction", Some(recorded.row.id), json!({})).await?;
    }
    Ok(recorded)
}

/// Records a batch, answering per item (in order).
pub async fn record_batch(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    inputs: Vec<NewInteraction>,
) -> AppResult<Vec<AppResult<Recorded>>> {
    batch::check_size(inputs.len())?;
    let pipeline = Pipeline::load(db).await?;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let index = i.to_string();
        let result = record_with(db, actor, &pipeline, &["inputs", &index], input).await;
        if let Err(e) = &result
            && !matches!(e, AppError::Invalid(_))
        {
            tracing::warn!(index = i, error = e.message(), "ingest item failed");
        }
        out.push(result);
    }
    batch::audit(db, actor, "ingestInteractions", "interaction", &out).await?;
    Ok(out)
}

async fn find_existing(
    db: &impl ConnectionTrait,
    channel: Channel,
    external_id: &str,
) -> AppResult<Option<interaction::Model>> {
    Ok(interaction::Entity::find()
        .filter(interaction::Column::Channel.eq(channel))
        .filter(interaction::Column::ExternalId.eq(external_id))
        .one(db)
        .await?)
}

/// One event through the pipeline, retried when a concurrent request wins a race.
pub async fn record_with(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    pipeline: &Pipeline,
    path: &[&str],
    input: NewInteraction,
) -> AppResult<Recorded> {
    let channel = input.channel;
    let result = record_one(db, actor, pipeline, path, input).await;
    count(channel, &result);
    result
}

async fn record_one(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    pipeline: &Pipeline,
    path: &[&str],
    mut input: NewInteraction,
) -> AppResult<Recorded> {
    validate(path, &input)?;
    if !actor.principal.may_use_channel(input.channel) {
        return Err(AppError::forbidden(format!("this token may not write to the {:?} channel", input.channel)));
    }
    input.external_id = input.external_id.trim().to_owned();
    // Bad identities are the caller's to fix: report them before any transaction.
    customers::normalize_all(&[path, &["identities"]].concat(), &input.customer.identities)?;
    batch::retrying(|| attempt(db, actor, pipeline, path, &input)).await
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

async fn attempt(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    pipeline: &Pipeline,
    path: &[&str],
    input: &NewInteraction,
) -> AppResult<Option<Recorded>> {
    let txn = db::begin_write(db).await?;
    if let Some(existing) = find_existing(&txn, input.channel, &input.external_id).await? {
        txn.rollback().await.ok();
        return Ok(Some(Recorded { row: existing, created: false }));
    }
    let Some(customer) = customers::resolve_ref(&txn, actor, path, &input.customer).await? else {
        txn.rollback().await.ok();
        return Ok(None);
    };
    let at = input.occurred_at.unwrap_or_else(Utc::now);
    let inbound = input.direction == Direction::Inbound;
    let score =
        if inbound { input.body.as_deref().filter(|b| !b.trim().is_empty()).map(sentiment::analyse) } else { None };
    let conversation_id = thread(&txn, pipeline, &customer, input, at, score.map(|s| s.score)).await?;
    let author_kind = input.author_kind.unwrap_or(if inbound { AuthorKind::Customer } else { AuthorKind::Agent });
    let author_user_id = if author_kind == AuthorKind::Agent { actor.principal.user().map(|u| u.id) } else { None };
    let row = interaction::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(customer.id),
        conversation_id: Set(Some(conversation_id)),
        channel: Set(input.channel),
        direction: Set(input.direction),
        visibility: Set(input.visibility),
        author_kind: Set(author_kind),
        author_user_id: Set(author_user_id),
        inbox: Set(input.inbox.clone()),
        body: Set(input.body.clone()),
        sentiment_score: Set(score.map(|s| s.score)),
        sentiment_label: Set(score.map(|s| s.label)),
        external_id: Set(Some(input.external_id.clone())),
        occurred_at: Set(at),
        created_at: Set(Utc::now()),
    };
    let inserted = match row.insert(&txn).await {
        Ok(model) => model,
        Err(e) if db::is_unique_violation(&e) => {
            txn.rollback().await.ok();
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if inbound {
        topics::tag_interaction(&txn, &pipeline.topics, inserted.id, inserted.body.as_deref()).await?;
    }
    events::emit(&txn, interaction_event(&inserted)).await?;
    events::emit(&txn, super::conversations::updated_event(conversation_id, customer.id, input.channel)).await?;
    if customer.last_contact_at.is_none_or(|last| last < at) {
        customer::Entity::update_many()
            .col_expr(customer::Column::LastContactAt, Expr::value(at))
            .filter(customer::Column::Id.eq(customer.id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(Some(Recorded { row: inserted, created: true }))
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

/// Finds or opens the conversation for the event and moves its clocks; returns its id.
async fn thread(
    txn: &impl ConnectionTrait,
    pipeline: &Pipeline,
    customer: &customer::Model,
    input: &NewInteraction,
    at: DateTime<Utc>,
    sentiment: Option<f64>,
) -> AppResult<Uuid> {
    let current = conversation::Entity::find()
        .filter(conversation::Column::CustomerId.eq(customer.id))
        .filter(conversation::Column::Channel.eq(input.channel))
        .filter(conversation::Column::Status.is_in([
            ConversationStatus::Open,
            ConversationStatus::Pending,
            ConversationStatus::Resolved,
        ]))
        .order_by_desc(conversation::Column::LastMessageAt)
        .one(txn)
        .await?;
    let inbound = input.direction == Direction::Inbound;
    let now = Utc::now();
    if let Some(current) = current {
        let id = current.id;
        let mut c = current.into_active_model();
        let last = *c.last_message_at.as_ref();
        c.last_message_at = Set(last.max(at));
        if inbound {
            // A customer's message reopens a resolved conversation and ends "pending"
            // (which restarts the paused resolution clock).
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
        c.update(txn).await?;
        return Ok(id);
    }
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
    let subject = input.body.as_deref().map(|b| b.chars().take(120).collect::<String>());
    let id = Uuid::now_v7();
    let status = if inbound { ConversationStatus::Open } else { ConversationStatus::Pending };
    let first_response_at = if inbound { None } else { Some(at) };
    conversation::ActiveModel {
        id: Set(id),
        customer_id: Set(customer.id),
        channel: Set(input.channel),
        inbox: Set(input.inbox.clone()),
        // We wrote first (outreach): waiting on the customer.
        status: Set(if inbound { ConversationStatus::Open } else { ConversationStatus::Pending }),
        priority: Set(priority),
        subject: Set(subject),
        team_id: Set(route.team_id),
        assignee_id: Set(None),
        sla_policy_id: Set(due.map(|d| d.policy_id)),
        routing_rule_id: Set(route.rule_id),
        tags: Set(json!(route.tags)),
        opened_at: Set(at),
        last_message_at: Set(at),
        first_response_due_at: Set(due.map(|d| d.first_response_due_at)),
        resolution_due_at: Set(due.map(|d| d.resolution_due_at)),
        first_response_at: Set(first_response_at),
        resolved_at: Set(None),
        closed_at: Set(None),
        first_response_breached: Set(false),
        resolution_breached: Set(false),
        pending_since: Set((!inbound).then_some(at)),
        next_due_at: Set(super::conversations::next_due(
            status,
            first_response_at,
            due.map(|d| d.first_response_due_at),
            due.map(|d| d.resolution_due_at),
        )),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(id)
}
