//! The agent desk over GraphQL: one conversation, the queue, the interaction feed, and
//! the workflow mutations (reply, assign, priority, status, tags).

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::conversation;

use super::enums::{Channel, ConversationStatus, Direction, Priority, SentimentLabel, Visibility};
use super::facts::{Conversation, Interaction};
use super::loaders::Batch;
use super::types::{UserError, actor, capped, context, parse_id, split_user_errors, within_channel_limit};
use crate::error::AppError;
use crate::interactions::conversations as workflow;
use crate::interactions::queue::{self, ConversationSort};
use crate::pagination::{Page, PageRequest};

fn page_request(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> Result<PageRequest, AppError> {
    let size = |v: Option<i32>, field: &str| {
        v.map(|n| u64::try_from(n).map_err(|_| AppError::invalid(&[field], "OUT_OF_RANGE", "must not be negative")))
            .transpose()
    };
    Ok(PageRequest { first: size(first, "first")?, after, last: size(last, "last")?, before })
}

fn optional_id(id: Option<ID>, field: &[&str]) -> Result<Option<uuid::Uuid>, AppError> {
    id.map(|i| parse_id(&i, field)).transpose()
}

/// Conversations of a page: their customers load together.
fn conversation_page(page: Page<conversation::Model>) -> Connection<String, Conversation, EmptyFields, EmptyFields> {
    let batch = Batch::of(page.rows.iter().map(|(_, c)| c.customer_id));
    let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
    connection.edges.extend(
        page.rows
            .into_iter()
            .map(|(cursor, c)| Edge::new(cursor.encode(), Conversation::in_batch(c, Arc::clone(&batch)))),
    );
    connection
}

/// Which conversations to list. Every condition given must hold.
#[derive(InputObject, Default)]
pub struct ConversationFilter {
    /// Any of these statuses (e.g. `[OPEN, PENDING]` for work in progress).
    status: Option<Vec<ConversationStatus>>,
    /// Any of these channels.
    channels: Option<Vec<Channel>>,
    /// Any of these priorities.
    priorities: Option<Vec<Priority>>,
    /// Routed to this team.
    team_id: Option<ID>,
    /// Assigned to this agent.
    assignee_id: Option<ID>,
    /// Nobody is assigned (true) or somebody is (false).
    unassigned: Option<bool>,
    /// Breached either SLA target (true) or neither (false).
    breached: Option<bool>,
    /// The running SLA clock is due within this many minutes (overdue included).
    due_within_minutes: Option<i32>,
    /// Of this customer.
    customer_id: Option<ID>,
}

/// Orders of the queue.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::interactions::queue::ConversationSort")]
pub enum ConversationOrder {
    /// Soonest due first (the running SLA clock); nothing due last.
    Due,
    /// Latest message first.
    LastMessage,
    /// Newest first.
    Opened,
}

/// Which interactions to list. Every condition given must hold.
#[derive(InputObject, Default)]
pub struct InteractionFilter {
    /// Any of these channels.
    channels: Option<Vec<Channel>>,
    /// Inbound or outbound only.
    direction: Option<Direction>,
    /// Public posts or private messages only.
    visibility: Option<Visibility>,
    /// Any of these sentiment labels.
    sentiment: Option<Vec<SentimentLabel>>,
    /// Of this customer.
    customer_id: Option<ID>,
    /// In this conversation.
    conversation_id: Option<ID>,
    /// At or after this time.
    from: Option<DateTime<Utc>>,
    /// Before this time.
    to: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ConversationQuery;

#[Object]
impl ConversationQuery {
    /// One conversation by id.
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Conversation>> {
        let (state, principal) = context(ctx)?;
        let id = parse_id(&id, &["id"])?;
        let found = queue::find_conversation(state.db(), id).await?.filter(|c| principal.may_use_channel(c.channel));
        Ok(found.map(|c| {
            let batch = Batch::of([c.customer_id]);
            Conversation::in_batch(c, batch)
        }))
    }

    /// The queue: conversations, filtered, soonest due first by default (at most 100
    /// per page).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::cost::page(first, last, child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationFilter>,
        #[graphql(default_with = "ConversationOrder::Due")] order_by: ConversationOrder,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Conversation, EmptyFields, EmptyFields>> {
        let (state, principal) = context(ctx)?;
        let f = filter.unwrap_or_default();
        let domain = queue::ConversationFilter {
            statuses: capped(f.status, &["filter", "status"])?.map(|s| s.into_iter().map(Into::into).collect()),
            channels: within_channel_limit(
                principal,
                capped(f.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect()),
            ),
            priorities: capped(f.priorities, &["filter", "priorities"])?
                .map(|p| p.into_iter().map(Into::into).collect()),
            team_id: optional_id(f.team_id, &["filter", "teamId"])?,
            assignee_id: optional_id(f.assignee_id, &["filter", "assigneeId"])?,
            unassigned: f.unassigned,
            breached: f.breached,
            due_within_minutes: f.due_within_minutes.map(i64::from),
            customer_id: optional_id(f.customer_id, &["filter", "customerId"])?,
        };
        let page = page_request(first, after, last, before)?;
        let result = queue::conversations(state.db(), &domain, ConversationSort::from(order_by), &page).await?;
        Ok(conversation_page(result))
    }

    /// Interactions across customers, newest first: the feed and social listening.
    #[graphql(complexity = "super::cost::page(first, last, child_complexity)")]
    async fn interactions(
        &self,
        ctx: &Context<'_>,
        filter: Option<InteractionFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Interaction, EmptyFields, EmptyFields>> {
        let (state, principal) = context(ctx)?;
        let f = filter.unwrap_or_default();
        let domain = queue::InteractionFilter {
            channels: within_channel_limit(
                principal,
                capped(f.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect()),
            ),
            direction: f.direction.map(Into::into),
            visibility: f.visibility.map(Into::into),
            sentiment: capped(f.sentiment, &["filter", "sentiment"])?.map(|s| s.into_iter().map(Into::into).collect()),
            customer_id: optional_id(f.customer_id, &["filter", "customerId"])?,
            conversation_id: optional_id(f.conversation_id, &["filter", "conversationId"])?,
            from: f.from,
            to: f.to,
        };
        let result = queue::interactions(state.db(), &domain, &page_request(first, after, last, before)?).await?;
        let mut connection = Connection::new(result.has_previous_page, result.has_next_page);
        connection.edges.extend(result.rows.into_iter().map(|(cursor, i)| Edge::new(cursor.encode(), Interaction(i))));
        Ok(connection)
    }
}

/// Result of a workflow mutation.
#[derive(SimpleObject)]
pub struct ConversationPayload {
    /// The conversation after the change.
    conversation: Option<Conversation>,
    /// Problems the user can fix (`INVALID_TRANSITION`, `NOT_FOUND` on a team or agent, …).
    user_errors: Vec<UserError>,
}

fn payload(result: Result<conversation::Model, AppError>) -> Result<ConversationPayload> {
    let (c, user_errors) = split_user_errors(result)?;
    Ok(ConversationPayload {
        conversation: c.map(|c| {
            let batch = Batch::of([c.customer_id]);
            Conversation::in_batch(c, batch)
        }),
        user_errors,
    })
}

/// An agent's reply.
#[derive(InputObject)]
pub struct ReplyToConversationInput {
    /// The conversation.
    conversation_id: ID,
    /// The text (sent on the conversation's channel).
    body: String,
    /// Public reply or private message (default private).
    visibility: Option<Visibility>,
}

/// Result of `replyToConversation`.
#[derive(SimpleObject)]
pub struct ReplyPayload {
    /// The conversation after the reply.
    conversation: Option<Conversation>,
    /// The outbound interaction.
    interaction: Option<Interaction>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

/// Who works a conversation.
#[derive(InputObject)]
pub struct AssignConversationInput {
    /// The conversation.
    conversation_id: ID,
    /// The team (null clears, absent keeps).
    team_id: MaybeUndefined<ID>,
    /// The agent (null clears, absent keeps).
    assignee_id: MaybeUndefined<ID>,
}

/// A new priority.
#[derive(InputObject)]
pub struct SetConversationPriorityInput {
    /// The conversation.
    conversation_id: ID,
    /// The priority; SLA due times follow it.
    priority: Priority,
}

/// A status change.
#[derive(InputObject)]
pub struct SetConversationStatusInput {
    /// The conversation.
    conversation_id: ID,
    /// The new status; see the workflow in `Conversation.status`.
    status: ConversationStatus,
}

/// A conversation to act on.
#[derive(InputObject)]
pub struct ConversationIdInput {
    /// The conversation.
    conversation_id: ID,
}

/// Tags to add and remove.
#[derive(InputObject)]
pub struct TagConversationInput {
    /// The conversation.
    conversation_id: ID,
    /// Tags to add.
    #[graphql(default)]
    add: Vec<String>,
    /// Tags to remove.
    #[graphql(default)]
    remove: Vec<String>,
}

fn maybe_id(v: MaybeUndefined<ID>, field: &[&str]) -> Result<Option<Option<uuid::Uuid>>, AppError> {
    Ok(match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(id) => Some(Some(parse_id(&id, field)?)),
    })
}

#[derive(Default)]
pub struct ConversationMutation;

#[Object]
impl ConversationMutation {
    /// Replies on the conversation's channel as the calling agent; the first reply stops
    /// the first-response clock.
    async fn reply_to_conversation(&self, ctx: &Context<'_>, input: ReplyToConversationInput) -> Result<ReplyPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        let result = workflow::reply(state.db(), actor(ctx)?, id, input.body, input.visibility.map(Into::into)).await;
        let (done, user_errors) = split_user_errors(result)?;
        Ok(match done {
            Some((c, i)) => ReplyPayload {
                interaction: Some(Interaction(i)),
                conversation: Some(Conversation::in_batch(c.clone(), Batch::of([c.customer_id]))),
                user_errors,
            },
            None => ReplyPayload { conversation: None, interaction: None, user_errors },
        })
    }

    /// Assigns the conversation to a team and/or an agent.
    async fn assign_conversation(
        &self,
        ctx: &Context<'_>,
        input: AssignConversationInput,
    ) -> Result<ConversationPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        let team = maybe_id(input.team_id, &["input", "teamId"])?;
        let assignee = maybe_id(input.assignee_id, &["input", "assigneeId"])?;
        payload(workflow::assign(state.db(), actor(ctx)?, id, team, assignee).await)
    }

    /// Changes the priority; SLA due times follow the policy for it.
    async fn set_conversation_priority(
        &self,
        ctx: &Context<'_>,
        input: SetConversationPriorityInput,
    ) -> Result<ConversationPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        payload(workflow::set_priority(state.db(), actor(ctx)?, id, input.priority.into()).await)
    }

    /// Moves the conversation in its workflow (open → pending → resolved → closed;
    /// pending → open; resolved → open). Other moves are `INVALID_TRANSITION`.
    async fn set_conversation_status(
        &self,
        ctx: &Context<'_>,
        input: SetConversationStatusInput,
    ) -> Result<ConversationPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        payload(workflow::set_status(state.db(), actor(ctx)?, id, input.status.into()).await)
    }

    /// Resolves the conversation (stops the resolution clock).
    async fn resolve_conversation(&self, ctx: &Context<'_>, input: ConversationIdInput) -> Result<ConversationPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        payload(workflow::set_status(state.db(), actor(ctx)?, id, entity::enums::ConversationStatus::Resolved).await)
    }

    /// Reopens a resolved conversation.
    async fn reopen_conversation(&self, ctx: &Context<'_>, input: ConversationIdInput) -> Result<ConversationPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        payload(workflow::set_status(state.db(), actor(ctx)?, id, entity::enums::ConversationStatus::Open).await)
    }

    /// Adds and removes tags.
    async fn tag_conversation(&self, ctx: &Context<'_>, input: TagConversationInput) -> Result<ConversationPayload> {
        let (state, _) = context(ctx)?;
        let id = parse_id(&input.conversation_id, &["input", "conversationId"])?;
        payload(workflow::tag(state.db(), actor(ctx)?, id, input.add, input.remove).await)
    }
}
