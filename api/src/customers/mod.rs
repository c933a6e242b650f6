//! Customers: one view of a person across every channel.
//!
//! - [`identity`]: normalising `(kind, value)` identities.
//! - [`service`]: finding, creating, updating customers, linking identities and
//!   resolving an inbound contact to a customer (the function every ingest path calls).
//! - [`listing`]: the filtered, sorted, keyset-paginated customer list.
//! - [`merge`]: merging duplicates and undoing a wrong merge.
//! - [`privacy`]: GDPR export and erasure, and the retention job.
//! - [`view`]: set-based loaders for the 360 view (identities, facts, metrics) that
//!   answer for many customers in one statement each.
//! - [`prefetch`]: the whole 360 a query asks for, in one statement on PostgreSQL.

pub mod identity;
pub mod listing;
pub mod merge;
pub mod prefetch;
pub mod privacy;
pub mod service;
pub mod view;

pub use service::{CustomerPatch, IdentityInput, NewCustomer, Resolution};
