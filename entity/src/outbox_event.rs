//! The transactional outbox: one row per domain event, written in the same transaction
//! as the change. `position` is the monotonically increasing cursor consumers page by.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub position: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    pub event_type: String,
    pub version: i32,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub channel: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
