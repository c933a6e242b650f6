//! A topic managers define by keywords; feedback and interactions are tagged with it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "topics")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub keywords: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Set when the keywords change: the history must be re-tagged.
    pub retag_requested_at: Option<DateTimeUtc>,
    /// The request the last completed re-tagging ran for.
    pub retagged_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
