//! Covering indexes for the two insight reads that scan a quarter of facts: the
//! conversation metrics (opened, SLA outcome, first-response and resolution times per
//! channel) and the journey funnel (each customer's stages in a window). With every
//! column they read in the key, PostgreSQL answers them from the index alone (an
//! index-only scan) instead of visiting ~23,000 table pages for a quarter of the
//! benchmark dataset; SQLite uses them as covering indexes too. Each replaces the
//! narrower index it starts with, so writers keep the same number of indexes.

use crate::dsl::{IndexDef, create_indexes, drop_indexes};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COVERING: &[IndexDef] = &[
    (
        "ix_conversations_opened_at_metrics",
        "conversations",
        &[
            "opened_at",
            "channel",
            "first_response_at",
            "resolved_at",
            "sla_policy_id",
            "first_response_breached",
            "resolution_breached",
        ],
    ),
    (
        "ix_touchpoints_journey_id_occurred_at_funnel",
        "touchpoints",
        &["journey_id", "occurred_at", "customer_id", "stage_id", "channel"],
    ),
];

/// The indexes the covering ones start with (from migrations 3 and 4).
const REPLACED: &[IndexDef] = &[
    ("ix_conversations_opened_at", "conversations", &["opened_at"]),
    ("ix_touchpoints_journey_id_occurred_at", "touchpoints", &["journey_id", "occurred_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, COVERING).await?;
        drop_indexes(manager, REPLACED).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, REPLACED).await?;
        drop_indexes(manager, COVERING).await
    }
}
