//! An early warning (negative-mention spike, SLA at risk or breached), raised once per
//! `dedupe_key` and acknowledged by a person.

use crate::enums::{AlertSeverity, AlertStatus, Channel};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub severity: AlertSeverity,
    pub status: AlertStatus,
    pub title: String,
    pub channel: Option<Channel>,
    pub topic_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    #[sea_orm(unique)]
    pub dedupe_key: String,
    pub raised_at: DateTimeUtc,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by: Option<Uuid>,
    pub resolved_at: Option<DateTimeUtc>,
    /// What a spike is about (`channel:twitter`, `topic:<id>`, `inbox:<name>`).
    pub scope: Option<String>,
    /// A spike episode's span in event time: the start of its first spiking window…
    pub window_start: Option<DateTimeUtc>,
    /// …and the end of its last (at most the time it was seen).
    pub window_end: Option<DateTimeUtc>,
    /// Found long after it happened (history loaded later): recorded, not paged.
    pub backfill: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
