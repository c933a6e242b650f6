//! One merge of a duplicate customer into a survivor, with its evidence; undone when
//! `unmerged_at` is set.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_merges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub survivor_id: Uuid,
    pub duplicate_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub evidence: Json,
    pub merged_by_user_id: Option<Uuid>,
    pub merged_by_token_id: Option<Uuid>,
    pub merged_at: DateTimeUtc,
    pub unmerged_at: Option<DateTimeUtc>,
    pub unmerged_by_user_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
