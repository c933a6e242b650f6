//! A customer event at a journey stage on a channel, with its outcome.
//! `(source, external_id)` makes ingest idempotent.

use crate::enums::{Channel, TouchpointOutcome};
use sea_orm::entity::prelude::*;

/// `Deserialize`: the customer 360 reads these rows as JSON from PostgreSQL (see the
/// api's `customers::view::prefetch`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "touchpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub journey_id: Uuid,
    pub stage_id: Uuid,
    pub channel: Channel,
    pub name: String,
    pub outcome: TouchpointOutcome,
    pub interaction_id: Option<Uuid>,
    pub source: String,
    pub external_id: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// Last change (erasure, retention, merge, unmerge); `created_at` until then.
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
