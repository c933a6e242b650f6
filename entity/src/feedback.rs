//! Solicited (survey score) or unsolicited (mention, review, comment) feedback.
//! `(source, external_id)` makes ingest idempotent.

use crate::enums::{Channel, FeedbackKind, SentimentLabel};
use sea_orm::entity::prelude::*;

/// `Deserialize`: the customer 360 reads these rows as JSON from PostgreSQL (see the
/// api's `customers::view::prefetch`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "feedback")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub survey_id: Option<Uuid>,
    pub kind: FeedbackKind,
    pub score: Option<i16>,
    #[sea_orm(column_type = "Text", nullable)]
    pub comment: Option<String>,
    pub channel: Channel,
    pub touchpoint_id: Option<Uuid>,
    pub interaction_id: Option<Uuid>,
    pub sentiment_score: Option<f64>,
    pub sentiment_label: Option<SentimentLabel>,
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
