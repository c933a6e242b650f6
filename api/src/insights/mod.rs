//! Insights: the figures managers and BI tools decide on, computed in SQL from the
//! stored facts, every one with its sample size and 95% margin of error.
//!
//! [`metrics`] answers grouped and bucketed metrics (and the channel comparison, which
//! is metrics by channel); [`drivers`] ranks topics; [`brands`] sets our brands beside our competitors; [`funnel`] counts a journey's
//! runs ([`runs`] walks and keeps them). [`rollups`] keeps hourly and daily sums that
//! answer the common questions without reading every fact. [`stats`] turns the database's counts and sums into estimates, [`buckets`] makes
//! time-zone-correct buckets, [`sql`] holds the backend differences.

pub mod brands;
pub mod buckets;
pub mod drivers;
pub mod funnel;
pub mod metrics;
pub mod rollups;
pub mod runs;
pub mod sql;
pub mod stats;
