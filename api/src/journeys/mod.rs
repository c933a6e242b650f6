//! Journeys: the ordered stages managers configure ([`config`]) and the touchpoints
//! customers leave at them ([`touchpoints`]). Funnels over them are insights
//! (`crate::insights::funnel`), not journey code: this module only writes and reads
//! facts.

pub mod config;
pub mod touchpoints;
