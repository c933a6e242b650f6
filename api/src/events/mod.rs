//! Domain events: written to the transactional outbox in the same transaction as the
//! change, then read back in order by a dispatcher that feeds every subscriber of this
//! process.
//!
//! The outbox is the one stream: a subscriber on any replica sees every committed
//! event (the dispatcher reads what is committed) and never one from a rolled-back
//! transaction (its row never becomes visible). Wake-ups: PostgreSQL `NOTIFY` inside
//! the writing transaction (delivered at commit, to every replica's `LISTEN`); on
//! SQLite, writers in this process wake the dispatcher after commit. A slow poll backs
//! both up.

pub mod bus;
pub mod outbox;
pub mod webhooks;

pub use bus::{Bus, Event};
pub use outbox::{NewEvent, customer_event, emit, emit_all};
