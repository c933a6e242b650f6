//! An ordered routing rule: `conditions` (JSON: channels, visibility, keywords, topics,
//! segments, sentiment threshold, business hours) → team, priority and tags.

use crate::enums::Priority;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "routing_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub enabled: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub conditions: Json,
    pub team_id: Option<Uuid>,
    pub set_priority: Option<Priority>,
    #[sea_orm(column_type = "JsonBinary")]
    pub add_tags: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
