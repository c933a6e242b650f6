//! A case / thread with one customer on one channel, with its SLA clock.

use crate::enums::{Channel, ConversationStatus, Priority};
use sea_orm::entity::prelude::*;

/// `Deserialize`: the customer 360 reads these rows as JSON from PostgreSQL (see the
/// api's `customers::view::prefetch`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub channel: Channel,
    pub inbox: Option<String>,
    pub status: ConversationStatus,
    pub priority: Priority,
    pub subject: Option<String>,
    pub team_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub sla_policy_id: Option<Uuid>,
    pub routing_rule_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    pub opened_at: DateTimeUtc,
    pub last_message_at: DateTimeUtc,
    pub first_response_due_at: Option<DateTimeUtc>,
    pub resolution_due_at: Option<DateTimeUtc>,
    pub first_response_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    pub first_response_breached: bool,
    pub resolution_breached: bool,
    /// Set while the conversation waits on the customer (the resolution clock is paused).
    pub pending_since: Option<DateTimeUtc>,
    /// Due time of the clock running now (first response, then resolution); null when
    /// no clock runs.
    pub next_due_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
