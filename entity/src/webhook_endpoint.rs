//! A partner's webhook endpoint: where events of some types (and channels) are POSTed,
//! signed with `secret` (HMAC-SHA256; the secret must be kept to sign, so it is stored).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    pub secret: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub event_types: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub channels: Option<Json>,
    pub active: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
