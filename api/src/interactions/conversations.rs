//! The conversation workflow: open → pending → resolved → closed, reopen on a new
//! inbound message, and the agent's actions (reply, assign, priority, tags).
//!
//! Allowed moves: open → pending | resolved; pending → open | resolved;
//! resolved → open (reopen) | closed. Closed is final: a customer writing again gets a
//! new conversation. Every move goes through [`apply_status`], which keeps the clocks
//! right: entering `pending` pauses the resolution clock, leaving it moves the due time
//! on by the pause, resolving stamps `resolved_at` and the resolution breach flag.

use chrono::{DateTime, Utc};
use entity::enums::{AuthorKind, ConversationStatus::*};
use entity::enums::{ConversationStatus, Direction, Priority, Visibility};
use entity::{conversation, interaction, team, user};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Set};
use serde_json::json;
use uuid::Uuid;

use super::routing::BusinessHours;
use super::sla;
use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};
use crate::events::{self, NewEvent};

/// Whether a conversation may move from one status to another.
pub fn allowed(from: ConversationStatus, to: ConversationStatus) -> bool {
    matches!((from, to), (Open, Pending | Resolved) | (Pending, Open | Resolved) | (Resolved, Open | Closed))
}

/// The due time of the clock that runs in a state: the first response until we have
/// answered, then the resolution; none while resolved, closed, or pending (paused) once
/// answered.
pub fn next_due(
    status: ConversationStatus,
    first_response_at: Option<DateTime<Utc>>,
    first_response_due_at: Option<DateTime<Utc>>,
    resolution_due_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (status, first_response_at) {
        (Open | Pending, None) => first_response_due_at,
        (Open, Some(_)) => resolution_due_at,
        _ => None,
    }
}

/// Recomputes `next_due_at` after a change to status or clocks.
pub fn refresh_next_due(c: &mut conversation::ActiveModel) {
    let next = next_due(
        *c.status.as_ref(),
        *c.first_response_at.as_ref(),
        *c.first_response_due_at.as_ref(),
        *c.resolution_due_at.as_ref(),
    );
    c.next_due_at = Set(next);
}

/// Moves a conversation to `to` at `at`, with the clock side effects; `hours` are the
/// business hours of its SLA policy, if it counts them (a pause then moves the due
/// time on by the business time spent pending). Does not check [`allowed`]; callers do.
pub fn apply_status(
    c: &mut conversation::ActiveModel,
    to: ConversationStatus,
    at: DateTime<Utc>,
    hours: Option<&BusinessHours>,
) {
    let from = *c.status.as_ref();
    if from == Pending && to != Pending {
        if let (Some(since), Some(due)) = (*c.pending_since.as_ref(), *c.resolution_due_at.as_ref())
            && at > since
        {
            let moved = match hours {
                Some(h) => sla::add_business_minutes(due, sla::business_minutes_between(since, at, h), h),
                None => due + (at - since),
            };
            c.resolution_due_at = Set(Some(moved));
        }
        c.pending_since = Set(None);
    }
    match to {
        Pending => c.pending_since = Set(Some(at)),
        Resolved => {
            c.resolved_at = Set(Some(at));
            let due = *c.resolution_due_at.as_ref();
            c.resolution_breached = Set(due.is_some_and(|d| at > d));
        }
        Open => c.resolved_at = Set(None),
        Closed => c.closed_at = Set(Some(at)),
    }
    c.status = Set(to);
    c.updated_at = Set(Utc::now());
    refresh_next_due(c);
}

/// The `conversation.updated` event (ids only; subscribers load the current state).
pub fn updated_event(id: Uuid, customer_id: Uuid, channel: entity::enums::Channel) -> NewEvent {
    NewEvent {
        event_type: "conversation.updated",
        aggregate_type: "conversation",
        aggregate_id: id,
        customer_id: Some(customer_id),
        channel: Some(channel),
        payload: json!({}),
    }
}

/// The business hours of a conversation's SLA policy, if it counts them.
async fn policy_hours(db: &impl ConnectionTrait, policy: Option<Uuid>) -> AppResult<Option<BusinessHours>> {
    let Some(id) = policy else { return Ok(None) };
    Ok(entity::sla_policy::Entity::find_by_id(id).one(db).await?.as_ref().and_then(sla::hours_of))
}

async fn load(db: &impl ConnectionTrait, id: Uuid) -> AppResult<conversation::Model> {
    conversation::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("conversation"))
}

/// Moves a conversation to a new status, if the workflow allows it.
pub async fn set_status(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Uuid,
    to: ConversationStatus,
) -> AppResult<conversation::Model> {
    let txn = db::begin_write(db).await?;
    let current = load(&txn, id).await?;
    let from = current.status;
    if !allowed(from, to) {
        return Err(AppError::invalid(
            &["input", "status"],
            "INVALID_TRANSITION",
            format!("a {from:?} conversation cannot become {to:?}").to_lowercase(),
        ));
    }
    let hours = policy_hours(&txn, current.sla_policy_id).await?;
    let mut c = current.into_active_model();
    apply_status(&mut c, to, Utc::now(), hours.as_ref());
    let updated = c.update(&txn).await?;
    events::emit(&txn, updated_event(updated.id, updated.customer_id, updated.channel)).await?;
    audit::record(&txn, actor, "setConversationStatus", "conversation", Some(id), json!({ "from": from, "to": to }))
        .await?;
    txn.commit().await?;
    Ok(updated)
}

/// An agent's reply: an outbound interaction on the conversation's channel, written by
/// the calling user. The first reply stops the first-response clock.
pub async fn reply(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Uuid,
    body: String,
    visibility: Option<Visibility>,
) -> AppResult<(conversation::Model, interaction::Model)> {
    if body.trim().is_empty() || body.len() > super::ingest::MAX_BODY {
        return Err(AppError::invalid(&["input", "body"], "INVALID", "must be 1 byte to 64 KiB of text"));
    }
    let txn = db::begin_write(db).await?;
    let current = load(&txn, id).await?;
    if current.status == Closed {
        return Err(AppError::invalid(&["input", "conversationId"], "CLOSED", "the conversation is closed"));
    }
    let now = Utc::now();
    let reply = interaction::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(current.customer_id),
        conversation_id: Set(Some(id)),
        channel: Set(current.channel),
        direction: Set(Direction::Outbound),
        visibility: Set(visibility.unwrap_or(Visibility::Private)),
        author_kind: Set(AuthorKind::Agent),
        author_user_id: Set(actor.principal.user().map(|u| u.id)),
        inbox: Set(current.inbox.clone()),
        body: Set(Some(body)),
        sentiment_score: Set(None),
        sentiment_label: Set(None),
        external_id: Set(Some(format!("cxgraph:{}", Uuid::now_v7()))),
        occurred_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let mut c = current.into_active_model();
    if c.first_response_at.as_ref().is_none() {
        c.first_response_at = Set(Some(now));
        let due = *c.first_response_due_at.as_ref();
        c.first_response_breached = Set(due.is_some_and(|d| now > d));
    }
    c.last_message_at = Set(now);
    c.updated_at = Set(now);
    refresh_next_due(&mut c);
    let updated = c.update(&txn).await?;
    events::emit(&txn, updated_event(updated.id, updated.customer_id, updated.channel)).await?;
    events::emit(&txn, super::ingest::interaction_event(&reply)).await?;
    audit::record(&txn, actor, "replyToConversation", "conversation", Some(id), json!({ "interactionId": reply.id }))
        .await?;
    txn.commit().await?;
    Ok((updated, reply))
}

/// Assigns a conversation to a team and/or an agent (`Some(None)` clears).
pub async fn assign(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Uuid,
    team_id: Option<Option<Uuid>>,
    assignee_id: Option<Option<Uuid>>,
) -> AppResult<conversation::Model> {
    let txn = db::begin_write(db).await?;
    let current = load(&txn, id).await?;
    let mut errors = Vec::new();
    if let Some(Some(t)) = team_id
        && team::Entity::find_by_id(t).one(&txn).await?.is_none()
    {
        errors.push(FieldError::new(&["input", "teamId"], "NOT_FOUND", "no such team"));
    }
    if let Some(Some(u)) = assignee_id {
        match user::Entity::find_by_id(u).one(&txn).await? {
            Some(agent) if agent.active => {}
            Some(_) => errors.push(FieldError::new(&["input", "assigneeId"], "INACTIVE", "the user is deactivated")),
            None => errors.push(FieldError::new(&["input", "assigneeId"], "NOT_FOUND", "no such user")),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let mut c = current.into_active_model();
    let mut changed = Vec::new();
    if let Some(t) = team_id {
        c.team_id = Set(t);
        changed.push("teamId");
    }
    if let Some(a) = assignee_id {
        c.assignee_id = Set(a);
        changed.push("assigneeId");
    }
    c.updated_at = Set(Utc::now());
    let updated = c.update(&txn).await?;
    events::emit(&txn, updated_event(updated.id, updated.customer_id, updated.channel)).await?;
    audit::record(&txn, actor, "assignConversation", "conversation", Some(id), json!({ "fields": changed })).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Changes the priority; due times follow the policy for the new priority (counted
/// from when the conversation opened; a clock already stopped stays stopped).
pub async fn set_priority(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Uuid,
    priority: Priority,
) -> AppResult<conversation::Model> {
    let txn = db::begin_write(db).await?;
    let current = load(&txn, id).await?;
    let policies = sla::load(&txn).await?;
    let due = sla::pick(&policies, current.channel, priority).map(|p| sla::due_times(p, current.opened_at));
    let from = current.priority;
    let mut c = current.into_active_model();
    c.priority = Set(priority);
    c.sla_policy_id = Set(due.map(|d| d.policy_id));
    c.first_response_due_at = Set(due.map(|d| d.first_response_due_at));
    c.resolution_due_at = Set(due.map(|d| d.resolution_due_at));
    c.updated_at = Set(Utc::now());
    refresh_next_due(&mut c);
    let updated = c.update(&txn).await?;
    events::emit(&txn, updated_event(updated.id, updated.customer_id, updated.channel)).await?;
    audit::record(
        &txn,
        actor,
        "setConversationPriority",
        "conversation",
        Some(id),
        json!({ "from": from, "to": priority }),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

/// Adds, then removes, tags (trimmed, lower-cased, at most 50 of at most 50 characters).
pub async fn tag(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Uuid,
    add: Vec<String>,
    remove: Vec<String>,
) -> AppResult<conversation::Model> {
    let clean = |t: &String| t.trim().to_lowercase();
    if add.iter().map(clean).any(|t| t.is_empty() || t.chars().count() > 50) {
        return Err(AppError::invalid(&["input", "add"], "INVALID", "tags are 1 to 50 characters"));
    }
    let txn = db::begin_write(db).await?;
    let current = load(&txn, id).await?;
    let mut tags: Vec<String> = serde_json::from_value(current.tags.clone()).unwrap_or_default();
    for t in add.iter().map(clean) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let remove: Vec<String> = remove.iter().map(clean).collect();
    tags.retain(|t| !remove.contains(t));
    if tags.len() > 50 {
        return Err(AppError::invalid(&["input", "add"], "TOO_MANY", "at most 50 tags"));
    }
    let mut c = current.into_active_model();
    c.tags = Set(json!(tags));
    c.updated_at = Set(Utc::now());
    let updated = c.update(&txn).await?;
    events::emit(&txn, updated_event(updated.id, updated.customer_id, updated.channel)).await?;
    audit::record(&txn, actor, "tagConversation", "conversation", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_allows_only_its_moves() {
        let all = [Open, Pending, Resolved, Closed];
        let mut moves = Vec::new();
        for from in all {
            for to in all {
                if allowed(from, to) {
                    moves.push((from, to));
                }
            }
        }
        assert_eq!(
            moves,
            [
                (Open, Pending),
                (Open, Resolved),
                (Pending, Open),
                (Pending, Resolved),
                (Resolved, Open),
                (Resolved, Closed)
            ]
        );
    }
}
