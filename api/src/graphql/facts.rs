//! GraphQL views of the facts held about a customer: interactions, conversations,
//! touchpoints and feedback. Each wraps its entity model and decides per field what
//! the caller may read (free text is null without the right to personal data).

use std::sync::Arc;

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{conversation, feedback, interaction, touchpoint};

use super::customer::Customer;
use super::enums::{
    AuthorKind, Channel, ConversationStatus, Direction, FeedbackKind, Priority, SentimentLabel, TouchpointOutcome,
    Visibility,
};
use super::loaders::{Batch, TaggedRow, TopicNames};
use super::types::{context, id};
use crate::auth::policy::READ_CUSTOMERS;
use crate::auth::{masking, pii};
use crate::error::AppError;
use async_graphql::dataloader::DataLoader;

/// Whether the caller of this request may read personal data (false if unknown).
pub fn reads_pii(ctx: &Context<'_>) -> bool {
    context(ctx).map(|(_, p)| pii::can_read(p)).unwrap_or(false)
}

/// Whether this caller sees `Type.field` as stored, by the masking table.
pub fn shows(ctx: &Context<'_>, type_name: &str, field: &str) -> bool {
    masking::shows(type_name, field, reads_pii(ctx))
}

/// `value` when this caller sees `Type.field` as stored, else null (the table's
/// [`masking::Masking::Text`] fields).
pub fn shown<'a>(ctx: &Context<'_>, type_name: &str, field: &str, value: Option<&'a str>) -> Option<&'a str> {
    if shows(ctx, type_name, field) { value } else { None }
}

/// One message or contact event.
pub struct Interaction(pub interaction::Model);

#[Object]
impl Interaction {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The customer it belongs to.
    async fn customer_id(&self) -> ID {
        id(self.0.customer_id)
    }
    /// The conversation it is part of.
    async fn conversation_id(&self) -> Option<ID> {
        self.0.conversation_id.map(id)
    }
    /// Channel it happened on.
    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }
    /// From the customer or from us.
    async fn direction(&self) -> Direction {
        self.0.direction.into()
    }
    /// Public post or private message.
    async fn visibility(&self) -> Visibility {
        self.0.visibility.into()
    }
    /// Who wrote it.
    async fn author_kind(&self) -> AuthorKind {
        self.0.author_kind.into()
    }
    /// The agent who wrote it, for outbound messages by a person.
    async fn author_user_id(&self) -> Option<ID> {
        self.0.author_user_id.map(id)
    }
    /// Which of our accounts or addresses it reached (`@AcmeCare`, `support@`).
    async fn inbox(&self) -> Option<&str> {
        self.0.inbox.as_deref()
    }
    /// The text. Null when the caller may not read personal data, or after erasure.
    async fn body(&self, ctx: &Context<'_>) -> Option<&str> {
        shown(ctx, "Interaction", "body", self.0.body.as_deref())
    }
    /// Sentiment score in [-1, 1], for inbound text.
    async fn sentiment_score(&self) -> Option<f64> {
        self.0.sentiment_score
    }
    /// Sentiment label that goes with the score.
    async fn sentiment_label(&self) -> Option<SentimentLabel> {
        self.0.sentiment_label.map(Into::into)
    }
    /// The channel's own id for the event (the idempotency key with the channel).
    ///
    /// Null without the right to personal data: platforms build ids from addresses
    /// (an e-mail's `Message-ID` holds the sender's), so an id is treated as free text.
    async fn external_id(&self, ctx: &Context<'_>) -> Option<&str> {
        shown(ctx, "Interaction", "externalId", self.0.external_id.as_deref())
    }
    /// Topics the message mentions (inbound messages are tagged at ingest).
    async fn topics(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TopicTag>> {
        topics_of(ctx, TaggedRow::Interaction(self.0.id)).await
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

/// A case / thread with one customer on one channel.
pub struct Conversation {
    model: conversation::Model,
    /// Customers of the page this conversation came in: `customer` loads for all at once.
    customers: Arc<Batch>,
}

impl Conversation {
    /// A conversation from a page whose customers are `customers`.
    pub fn in_batch(model: conversation::Model, customers: Arc<Batch>) -> Self {
        Conversation { model, customers }
    }
}

#[Object]
impl Conversation {
    /// The customer (for callers who may read customers: a token that reads
    /// conversations only gets `customerId`).
    #[graphql(guard = "READ_CUSTOMERS")]
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Customer>> {
        let found = super::customer::loaders(ctx)?.customer(&self.customers, self.model.customer_id).await?;
        Ok(found.map(|m| Customer::in_batch(m, Arc::clone(&self.customers))))
    }
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.model.id)
    }
    /// The customer.
    async fn customer_id(&self) -> ID {
        id(self.model.customer_id)
    }
    /// Channel of the conversation.
    async fn channel(&self) -> Channel {
        self.model.channel.into()
    }
    /// Which of our accounts it reached.
    async fn inbox(&self) -> Option<&str> {
        self.model.inbox.as_deref()
    }
    /// Workflow status.
    async fn status(&self) -> ConversationStatus {
        self.model.status.into()
    }
    /// Priority.
    async fn priority(&self) -> Priority {
        self.model.priority.into()
    }
    /// Subject (from the first message). Null without the right to personal data.
    async fn subject(&self, ctx: &Context<'_>) -> Option<&str> {
        shown(ctx, "Conversation", "subject", self.model.subject.as_deref())
    }
    /// Team it is routed to.
    async fn team_id(&self) -> Option<ID> {
        self.model.team_id.map(id)
    }
    /// Agent it is assigned to.
    async fn assignee_id(&self) -> Option<ID> {
        self.model.assignee_id.map(id)
    }
    /// Tags.
    async fn tags(&self) -> Vec<String> {
        self.model
            .tags
            .as_array()
            .map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
    /// When it was opened.
    async fn opened_at(&self) -> DateTime<Utc> {
        self.model.opened_at
    }
    /// Latest message in either direction.
    async fn last_message_at(&self) -> DateTime<Utc> {
        self.model.last_message_at
    }
    /// First response due by (SLA).
    async fn first_response_due_at(&self) -> Option<DateTime<Utc>> {
        self.model.first_response_due_at
    }
    /// Resolution due by (SLA).
    async fn resolution_due_at(&self) -> Option<DateTime<Utc>> {
        self.model.resolution_due_at
    }
    /// When we first answered.
    async fn first_response_at(&self) -> Option<DateTime<Utc>> {
        self.model.first_response_at
    }
    /// When it was resolved.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.model.resolved_at
    }
    /// When it was closed.
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.model.closed_at
    }
    /// The first response came (or is) later than due.
    async fn first_response_breached(&self) -> bool {
        self.model.first_response_breached
    }
    /// The resolution came (or is) later than due.
    async fn resolution_breached(&self) -> bool {
        self.model.resolution_breached
    }
}

/// A customer event at a journey stage.
pub struct Touchpoint(pub touchpoint::Model);

#[Object]
impl Touchpoint {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The customer.
    async fn customer_id(&self) -> ID {
        id(self.0.customer_id)
    }
    /// The journey.
    async fn journey_id(&self) -> ID {
        id(self.0.journey_id)
    }
    /// The stage of the journey.
    async fn stage_id(&self) -> ID {
        id(self.0.stage_id)
    }
    /// Channel it happened on.
    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }
    /// What happened, e.g. `checkout`, `delivery`.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// How it ended.
    async fn outcome(&self) -> TouchpointOutcome {
        self.0.outcome.into()
    }
    /// The interaction it came with, if any.
    async fn interaction_id(&self) -> Option<ID> {
        self.0.interaction_id.map(id)
    }
    /// System that reported it.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// That system's id for it.
    ///
    /// Null without the right to personal data: platforms build ids from addresses
    /// (an e-mail's `Message-ID` holds the sender's), so an id is treated as free text.
    async fn external_id(&self, ctx: &Context<'_>) -> Option<&str> {
        shown(ctx, "Touchpoint", "externalId", self.0.external_id.as_deref())
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

/// A topic a message or comment mentions.
#[derive(SimpleObject)]
pub struct TopicTag {
    /// The topic.
    pub id: ID,
    /// Its name.
    pub name: String,
}

/// The topics of a tagged row, through the request's topic loader.
async fn topics_of(ctx: &Context<'_>, row: TaggedRow) -> async_graphql::Result<Vec<TopicTag>> {
    let loader = ctx
        .data_opt::<DataLoader<TopicNames>>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("topic loader missing from request")))?;
    let names = loader.load_one(row).await.map_err(|e| async_graphql::ErrorExtensions::extend(e.as_ref()))?;
    Ok(names.unwrap_or_default().into_iter().map(|(topic, name)| TopicTag { id: id(topic), name }).collect())
}

/// A survey answer or unsolicited feedback.
pub struct Feedback(pub feedback::Model);

#[Object]
impl Feedback {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The customer.
    async fn customer_id(&self) -> ID {
        id(self.0.customer_id)
    }
    /// The survey answered, for solicited feedback.
    async fn survey_id(&self) -> Option<ID> {
        self.0.survey_id.map(id)
    }
    /// Kind of feedback.
    async fn kind(&self) -> FeedbackKind {
        self.0.kind.into()
    }
    /// Score on the kind's scale (NPS 0–10, CSAT 1–5, CES 1–7, review stars).
    async fn score(&self) -> Option<i16> {
        self.0.score
    }
    /// Free text. Null without the right to personal data, or after erasure.
    async fn comment(&self, ctx: &Context<'_>) -> Option<&str> {
        shown(ctx, "Feedback", "comment", self.0.comment.as_deref())
    }
    /// Channel it came through.
    async fn channel(&self) -> Channel {
        self.0.channel.into()
    }
    /// The touchpoint it follows.
    async fn touchpoint_id(&self) -> Option<ID> {
        self.0.touchpoint_id.map(id)
    }
    /// The interaction it came with.
    async fn interaction_id(&self) -> Option<ID> {
        self.0.interaction_id.map(id)
    }
    /// Sentiment score of the comment, in [-1, 1].
    async fn sentiment_score(&self) -> Option<f64> {
        self.0.sentiment_score
    }
    /// Sentiment label of the comment.
    async fn sentiment_label(&self) -> Option<SentimentLabel> {
        self.0.sentiment_label.map(Into::into)
    }
    /// System that reported it.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// That system's id for it.
    ///
    /// Null without the right to personal data: platforms build ids from addresses
    /// (an e-mail's `Message-ID` holds the sender's), so an id is treated as free text.
    async fn external_id(&self, ctx: &Context<'_>) -> Option<&str> {
        shown(ctx, "Feedback", "externalId", self.0.external_id.as_deref())
    }
    /// Topics the comment mentions.
    async fn topics(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TopicTag>> {
        topics_of(ctx, TaggedRow::Feedback(self.0.id)).await
    }
    /// When it was given.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

/// Where a customer stands in one journey.
#[derive(SimpleObject)]
pub struct JourneyPosition {
    /// The journey.
    pub journey_id: ID,
    /// Its name.
    pub journey_name: String,
    /// The stage of the customer's latest touchpoint in it.
    pub stage_id: ID,
    /// The stage's name.
    pub stage_name: String,
    /// The stage's position in the journey (0 first).
    pub stage_position: i32,
    /// How that latest touchpoint ended.
    pub outcome: TouchpointOutcome,
    /// When it happened.
    pub reached_at: DateTime<Utc>,
    /// Every stage of the journey the customer reached, in journey order.
    pub path: Vec<JourneyStep>,
}

/// A stage a customer reached.
#[derive(SimpleObject)]
pub struct JourneyStep {
    /// The stage.
    pub stage_id: ID,
    /// Its name.
    pub stage_name: String,
    /// Its position in the journey (0 first).
    pub stage_position: i32,
    /// The customer's first touchpoint there.
    pub first_reached_at: DateTime<Utc>,
    /// Their latest touchpoint there.
    pub last_reached_at: DateTime<Utc>,
    /// How that latest touchpoint ended.
    pub last_outcome: TouchpointOutcome,
    /// Touchpoints there.
    pub touchpoints: i32,
}

impl From<crate::customers::view::JourneyPosition> for JourneyPosition {
    fn from(p: crate::customers::view::JourneyPosition) -> Self {
        Self {
            journey_id: id(p.journey_id),
            journey_name: p.journey_name,
            stage_id: id(p.stage_id),
            stage_name: p.stage_name,
            stage_position: p.stage_position,
            outcome: p.outcome.into(),
            reached_at: p.reached_at,
            path: p
                .path
                .into_iter()
                .map(|s| JourneyStep {
                    stage_id: id(s.stage_id),
                    stage_name: s.stage_name,
                    stage_position: s.stage_position,
                    first_reached_at: s.first_reached_at,
                    last_reached_at: s.last_reached_at,
                    last_outcome: s.last_outcome.into(),
                    touchpoints: i32::try_from(s.touchpoints).unwrap_or(i32::MAX),
                })
                .collect(),
        }
    }
}
