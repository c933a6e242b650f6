//! cxgraph's database schema as sea-orm migrations.
//!
//! Migrations are the schema: tables are never created from entities at run time.
//! Every migration runs on SQLite and PostgreSQL alike (foreign keys are declared
//! inside `CREATE TABLE` because SQLite cannot add them later), and every foreign key
//! and every column the API filters or sorts on has an index. The `cxgraph migrate`
//! subcommand is the command-line front of this crate.

pub use sea_orm_migration::prelude::*;

mod dsl;
mod m20261123_000001_create_access;
mod m20261123_000002_create_customers;
mod m20261123_000003_create_conversations;
mod m20261123_000004_create_journeys_and_feedback;
mod m20261123_000005_create_alerts_audit_outbox;
mod m20261123_000006_create_customer_merges;
mod m20261123_000007_add_conversation_sla_clocks;
mod m20261123_000008_add_feed_indexes;
mod m20261123_000009_add_sla_business_hours;
mod m20261123_000010_create_webhooks;
mod m20261123_000011_add_retagging_and_insight_indexes;
mod m20261201_000012_add_queue_index;
mod m20261202_000013_create_insight_rollups;
mod m20261202_000014_add_covering_insight_indexes;
mod m20261203_000015_create_journey_steps;
mod m20261204_000016_fold_rollup_deltas;
mod m20261204_000017_drop_unused_due_indexes;
mod m20261204_000018_add_unswept_sla_index;
mod m20261204_000019_create_journey_step_rollups;
mod m20261204_000020_add_negative_inbound_index;
mod m20261205_000021_add_fact_updated_at;
mod m20261206_000022_add_spike_episodes;
mod m20261206_000023_add_brand_watch_list;
mod m20261206_000024_relabel_sentiment;

pub use dsl::epoch_units;
pub use m20261204_000018_add_unswept_sla_index::UNSWEPT as UNSWEPT_CONVERSATIONS;

/// The funnel rollup's buckets and upkeep (migration 19), shared with the API.
pub mod funnel_rollup {
    pub use super::m20261204_000019_create_journey_step_rollups::{bucket_bounds, fold_steps};
}

/// The ordered list of cxgraph migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_access::Migration),
            Box::new(m20261123_000002_create_customers::Migration),
            Box::new(m20261123_000003_create_conversations::Migration),
            Box::new(m20261123_000004_create_journeys_and_feedback::Migration),
            Box::new(m20261123_000005_create_alerts_audit_outbox::Migration),
            Box::new(m20261123_000006_create_customer_merges::Migration),
            Box::new(m20261123_000007_add_conversation_sla_clocks::Migration),
            Box::new(m20261123_000008_add_feed_indexes::Migration),
            Box::new(m20261123_000009_add_sla_business_hours::Migration),
            Box::new(m20261123_000010_create_webhooks::Migration),
            Box::new(m20261123_000011_add_retagging_and_insight_indexes::Migration),
            Box::new(m20261201_000012_add_queue_index::Migration),
            Box::new(m20261202_000013_create_insight_rollups::Migration),
            Box::new(m20261202_000014_add_covering_insight_indexes::Migration),
            Box::new(m20261203_000015_create_journey_steps::Migration),
            Box::new(m20261204_000016_fold_rollup_deltas::Migration),
            Box::new(m20261204_000017_drop_unused_due_indexes::Migration),
            Box::new(m20261204_000018_add_unswept_sla_index::Migration),
            Box::new(m20261204_000019_create_journey_step_rollups::Migration),
            Box::new(m20261204_000020_add_negative_inbound_index::Migration),
            Box::new(m20261205_000021_add_fact_updated_at::Migration),
            Box::new(m20261206_000022_add_spike_episodes::Migration),
            Box::new(m20261206_000023_add_brand_watch_list::Migration),
            Box::new(m20261206_000024_relabel_sentiment::Migration),
        ]
    }
}
