//! SLA policies: the most specific active policy for a conversation's channel and
//! priority sets its first-response and resolution due times.
//!
//! Specificity: channel and priority both match, then channel only, then priority
//! only, then the catch-all (both null). Business-hours counting, pausing while pending
//! and the breach sweeper are not built yet (see the interactions issue).

use chrono::{DateTime, Duration, Utc};
use entity::enums::{Channel, Priority};
use entity::sla_policy;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::AppResult;

/// The due times a policy gives a conversation opened at `opened_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueTimes {
    pub policy_id: uuid::Uuid,
    pub first_response_due_at: DateTime<Utc>,
    pub resolution_due_at: DateTime<Utc>,
}

/// The most specific active policy for a channel and priority.
pub fn pick(policies: &[sla_policy::Model], channel: Channel, priority: Priority) -> Option<&sla_policy::Model> {
    let rank = |p: &sla_policy::Model| match (p.channel, p.priority) {
        (Some(c), Some(pr)) if c == channel && pr == priority => Some(0),
        (Some(c), None) if c == channel => Some(1),
        (None, Some(pr)) if pr == priority => Some(2),
        (None, None) => Some(3),
        _ => None,
    };
    policies.iter().filter(|p| p.active).filter_map(|p| rank(p).map(|r| (r, p))).min_by_key(|(r, _)| *r).map(|(_, p)| p)
}

/// Due times for a conversation.
pub fn due_times(policy: &sla_policy::Model, opened_at: DateTime<Utc>) -> DueTimes {
    DueTimes {
        policy_id: policy.id,
        first_response_due_at: opened_at + Duration::minutes(i64::from(policy.first_response_minutes)),
        resolution_due_at: opened_at + Duration::minutes(i64::from(policy.resolution_minutes)),
    }
}

/// Every active policy (a handful of rows; loaded once per ingest batch).
pub async fn load(db: &impl ConnectionTrait) -> AppResult<Vec<sla_policy::Model>> {
    Ok(sla_policy::Entity::find().filter(sla_policy::Column::Active.eq(true)).all(db).await?)
}
