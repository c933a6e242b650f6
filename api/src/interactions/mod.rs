//! Interactions and conversations: what a contact centre runs on.
//!
//! - [`config`]: managing routing rules and SLA policies.
//! - [`conversations`]: the status workflow and the agent's actions.
//! - [`ingest`]: recording inbound and outbound events, idempotently, with customer
//!   resolution, threading into conversations, routing, SLA clocks and sentiment.
//! - [`queue`]: the agent queue and the interaction feed.
//! - [`routing`]: ordered routing rules, first match wins.
//! - [`sla`]: picking the SLA policy and computing due times.
//! - [`sweeper`]: marking breaches and raising SLA alerts exactly once.

pub mod config;
pub mod conversations;
pub mod ingest;
pub mod queue;
pub mod routing;
pub mod sla;
pub mod sweeper;
