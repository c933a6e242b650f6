//! The catch-up feed: a consumer that was offline pages through the events it missed,
//! in order, from a cursor. Only event types the caller may read are served.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, Json, Object, Result};
use chrono::{DateTime, Utc};
use entity::outbox_event;

use super::types::{context, id};
use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::events::outbox;

/// Event types and what reading them takes from a token.
const TYPES: &[(&str, Scope)] = &[
    ("customer.created", Scope::CustomersRead),
    ("customer.merged", Scope::CustomersRead),
    ("customer.unmerged", Scope::CustomersRead),
    ("customer.erased", Scope::CustomersRead),
    ("interaction.received", Scope::InteractionsRead),
    ("conversation.updated", Scope::InteractionsRead),
    ("sla.alert", Scope::InsightsRead),
];

fn readable_types(principal: &Principal) -> Vec<String> {
    TYPES
        .iter()
        .filter(|(_, scope)| principal.user().is_some() || principal.has_scope(*scope))
        .map(|(t, _)| (*t).to_owned())
        .collect()
}

/// A committed domain event.
pub struct DomainEvent(outbox_event::Model);

#[Object(name = "Event")]
impl DomainEvent {
    /// Stable id (use it to de-duplicate).
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Position in the stream: strictly increasing in commit order as read.
    async fn position(&self) -> i64 {
        self.0.position
    }
    /// Type, e.g. `interaction.received`.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// Version of the payload shape.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// Kind of record, e.g. `interaction`.
    async fn aggregate_type(&self) -> &str {
        &self.0.aggregate_type
    }
    /// The record's id.
    async fn aggregate_id(&self) -> ID {
        id(self.0.aggregate_id)
    }
    /// The customer concerned.
    async fn customer_id(&self) -> Option<ID> {
        self.0.customer_id.map(id)
    }
    /// The channel concerned (lower-case name).
    async fn channel(&self) -> Option<&str> {
        self.0.channel.as_deref()
    }
    /// Ids and codes (never personal data).
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// Events after a cursor (an event's `position`, or the `endCursor` of the previous
    /// page), oldest first, at most 500 a page.
    #[graphql(complexity = "super::cost::list(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these types (default: every type you may read).")] types: Option<Vec<String>>,
        #[graphql(default = 100)] first: i32,
        after: Option<String>,
    ) -> Result<Connection<String, DomainEvent, EmptyFields, EmptyFields>> {
        let (state, principal) = context(ctx)?;
        if !(1..=500).contains(&first) {
            return Err(AppError::invalid(&["first"], "OUT_OF_RANGE", "must be between 1 and 500").into());
        }
        let after_position = match &after {
            Some(c) => {
                c.parse::<i64>().map_err(|_| AppError::invalid(&["after"], "INVALID_CURSOR", "is not a cursor"))?
            }
            None => 0,
        };
        let readable = readable_types(principal);
        let wanted: Vec<String> = match types {
            Some(t) => t.into_iter().filter(|x| readable.contains(x)).collect(),
            None => readable,
        };
        let channels: Option<Vec<entity::enums::Channel>> =
            principal.channel_limit().map(|c| c.iter().copied().collect());
        let limit = u64::try_from(first).unwrap_or(100);
        let (rows, more) = outbox::catch_up(state.db(), after_position, &wanted, channels.as_deref(), limit).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(rows.into_iter().map(|e| Edge::new(e.position.to_string(), DomainEvent(e))));
        Ok(connection)
    }
}
