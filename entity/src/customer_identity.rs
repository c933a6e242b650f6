//! One (kind, normalised value) identity of a customer; unique across all customers.

use crate::enums::IdentityKind;
use sea_orm::entity::prelude::*;

/// `Deserialize`: the customer 360 reads these rows as JSON from PostgreSQL (see the
/// api's `customers::view::prefetch`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "customer_identities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: IdentityKind,
    pub value: String,
    pub verified: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
