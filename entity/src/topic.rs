//! A topic managers define by keywords; feedback and interactions are tagged with it.
//! A topic with a `brand` side is a brand on the watch list (ours or a competitor's).

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
    /// A brand on the watch list: `ours` or `competitor` (`None` for a plain topic).
    pub brand: Option<String>,
    /// A brand's accounts (JSON array of strings), matched in texts and against the
    /// inbox a message reached.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub handles: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
