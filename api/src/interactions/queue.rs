//! The agent queue and the interaction feed: filtered, keyset-paginated lists across
//! customers. The queue sorts by the running clock's due time (`next_due_at`, soonest
//! first, nothing due last); the feed by time, newest first.

use chrono::{DateTime, Duration, Utc};
use entity::enums::{Channel, ConversationStatus, Direction, Priority, SentimentLabel, Visibility};
use entity::{conversation, interaction};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::error::AppResult;
use crate::pagination::{self, Page, PageRequest, Sort, SortKey};

/// Largest page of either list.
pub const MAX_PAGE: u64 = 100;

/// Which conversations to list. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub statuses: Option<Vec<ConversationStatus>>,
    pub channels: Option<Vec<Channel>>,
    pub priorities: Option<Vec<Priority>>,
    pub team_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    /// Only conversations nobody is assigned to.
    pub unassigned: Option<bool>,
    /// Only conversations that breached (either target) or did not.
    pub breached: Option<bool>,
    /// Only conversations whose running clock is due within this many minutes (or overdue).
    pub due_within_minutes: Option<i64>,
    pub customer_id: Option<Uuid>,
}

/// Sort orders of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationSort {
    /// Soonest due first; nothing due last.
    Due,
    /// Latest message first.
    LastMessage,
    /// Newest first.
    Opened,
}

fn conversation_condition(f: &ConversationFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(s) = &f.statuses {
        c = c.add(conversation::Column::Status.is_in(s.iter().copied()));
    }
    if let Some(ch) = &f.channels {
        c = c.add(conversation::Column::Channel.is_in(ch.iter().copied()));
    }
    if let Some(p) = &f.priorities {
        c = c.add(conversation::Column::Priority.is_in(p.iter().copied()));
    }
    if let Some(t) = f.team_id {
        c = c.add(conversation::Column::TeamId.eq(t));
    }
    if let Some(a) = f.assignee_id {
        c = c.add(conversation::Column::AssigneeId.eq(a));
    }
    match f.unassigned {
        Some(true) => c = c.add(conversation::Column::AssigneeId.is_null()),
        Some(false) => c = c.add(conversation::Column::AssigneeId.is_not_null()),
        None => {}
    }
    if let Some(b) = f.breached {
        let breached = Condition::any()
            .add(conversation::Column::FirstResponseBreached.eq(true))
            .add(conversation::Column::ResolutionBreached.eq(true));
        c = c.add(if b { breached } else { breached.not() });
    }
    if let Some(minutes) = f.due_within_minutes {
        c = c.add(conversation::Column::NextDueAt.lte(Utc::now() + Duration::minutes(minutes)));
    }
    if let Some(id) = f.customer_id {
        c = c.add(conversation::Column::CustomerId.eq(id));
    }
    c
}

/// One conversation by id.
pub async fn find_conversation(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<conversation::Model>> {
    Ok(conversation::Entity::find_by_id(id).one(db).await?)
}

/// One interaction by id.
pub async fn find_interaction(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<interaction::Model>> {
    Ok(interaction::Entity::find_by_id(id).one(db).await?)
}

/// One page of the queue.
pub async fn conversations(
    db: &impl ConnectionTrait,
    filter: &ConversationFilter,
    sort: ConversationSort,
    page: &PageRequest,
) -> AppResult<Page<conversation::Model>> {
    let (column, ascending) = match sort {
        ConversationSort::Due => (conversation::Column::NextDueAt, true),
        ConversationSort::LastMessage => (conversation::Column::LastMessageAt, false),
        ConversationSort::Opened => (conversation::Column::OpenedAt, false),
    };
    let order = Sort { column, id: conversation::Column::Id, ascending };
    let query = conversation::Entity::find().filter(conversation_condition(filter));
    let key = move |c: &conversation::Model| {
        SortKey::Time(match sort {
            ConversationSort::Due => c.next_due_at,
            ConversationSort::LastMessage => Some(c.last_message_at),
            ConversationSort::Opened => Some(c.opened_at),
        })
    };
    pagination::fetch(db, query, order, page, MAX_PAGE, key, |c| c.id).await
}

/// Which interactions to list (the feed, social listening).
#[derive(Debug, Clone, Default)]
pub struct InteractionFilter {
    pub channels: Option<Vec<Channel>>,
    pub direction: Option<Direction>,
    pub visibility: Option<Visibility>,
    pub sentiment: Option<Vec<SentimentLabel>>,
    pub customer_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One page of the feed, newest first.
pub async fn interactions(
    db: &impl ConnectionTrait,
    f: &InteractionFilter,
    page: &PageRequest,
) -> AppResult<Page<interaction::Model>> {
    let mut c = Condition::all();
    if let Some(ch) = &f.channels {
        c = c.add(interaction::Column::Channel.is_in(ch.iter().copied()));
    }
    if let Some(d) = f.direction {
        c = c.add(interaction::Column::Direction.eq(d));
    }
    if let Some(v) = f.visibility {
        c = c.add(interaction::Column::Visibility.eq(v));
    }
    if let Some(s) = &f.sentiment {
        c = c.add(interaction::Column::SentimentLabel.is_in(s.iter().copied()));
    }
    if let Some(id) = f.customer_id {
        c = c.add(interaction::Column::CustomerId.eq(id));
    }
    if let Some(id) = f.conversation_id {
        c = c.add(interaction::Column::ConversationId.eq(id));
    }
    if let Some(from) = f.from {
        c = c.add(interaction::Column::OccurredAt.gte(from));
    }
    if let Some(to) = f.to {
        c = c.add(interaction::Column::OccurredAt.lt(to));
    }
    let order = Sort { column: interaction::Column::OccurredAt, id: interaction::Column::Id, ascending: false };
    let query = interaction::Entity::find().filter(c);
    pagination::fetch(db, query, order, page, MAX_PAGE, |i| SortKey::Time(Some(i.occurred_at)), |i| i.id).await
}
