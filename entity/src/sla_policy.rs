//! First-response and resolution targets for a channel and priority (either may be
//! null for "any"); the most specific active policy applies.

use crate::enums::{Channel, Priority};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sla_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub channel: Option<Channel>,
    pub priority: Option<Priority>,
    pub first_response_minutes: i32,
    pub resolution_minutes: i32,
    pub active: bool,
    /// When set, targets count only inside these hours (JSON, see `routing::BusinessHours`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub business_hours: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
