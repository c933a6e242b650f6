//! One message or contact event on a channel. `(channel, external_id)` is the
//! idempotency key: the same external id twice is one interaction.

use crate::enums::{AuthorKind, Channel, Direction, SentimentLabel, Visibility};
use sea_orm::entity::prelude::*;

/// `Deserialize`: the customer 360 reads these rows as JSON from PostgreSQL (see the
/// api's `customers::view::prefetch`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "interactions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub channel: Channel,
    pub direction: Direction,
    pub visibility: Visibility,
    pub author_kind: AuthorKind,
    pub author_user_id: Option<Uuid>,
    pub inbox: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    pub sentiment_score: Option<f64>,
    pub sentiment_label: Option<SentimentLabel>,
    pub external_id: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// Last change (erasure, retention, merge, unmerge); `created_at` until then.
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
