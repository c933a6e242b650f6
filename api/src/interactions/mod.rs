//! Interactions and conversations: what a contact centre runs on.
//!
//! - [`ingest`]: recording inbound and outbound events, idempotently, with customer
//!   resolution, threading into conversations, routing, SLA clocks and sentiment.
//! - [`routing`]: ordered routing rules, first match wins.
//! - [`sla`]: picking the SLA policy and computing due times.

pub mod ingest;
pub mod routing;
pub mod sla;
