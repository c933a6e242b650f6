//! Webhooks: endpoints partners register, and the delivery log.
//!
//! A delivery row exists once per (endpoint, event) — every replica may try to create
//! it, the unique key keeps one — and is claimed by one worker at a time
//! (`locked_until`, `FOR UPDATE SKIP LOCKED` on PostgreSQL). Deliveries go with their
//! endpoint.

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!("webhook_endpoints", "webhook_deliveries");

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, SetNull};
    vec![
        TableDef::new("webhook_endpoints")
            .col(pk_uuid("id"))
            .col(text("url"))
            .col(string_len("secret", 128))
            .col(json_binary("event_types"))
            .col(json_binary_null("channels"))
            .col(boolean("active"))
            .col(integer("consecutive_failures"))
            .col(ts_null("disabled_at"))
            .col(uuid_null("created_by"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .fk("created_by", "users", SetNull)
            .index(&["active"])
            .index(&["created_by"]),
        TableDef::new("webhook_deliveries")
            .col(pk_uuid("id"))
            .col(uuid("endpoint_id"))
            .col(uuid("event_id"))
            .col(big_integer("event_position"))
            .col(string_len("event_type", 100))
            .col(enum_col("status"))
            .col(integer("attempts"))
            .col(ts("next_attempt_at"))
            .col(ts_null("locked_until"))
            .col(integer_null("last_status_code"))
            .col(text_null("last_error"))
            .col(integer_null("last_latency_ms"))
            .col(ts("created_at"))
            .col(ts_null("delivered_at"))
            .fk("endpoint_id", "webhook_endpoints", Cascade)
            .unique(&["endpoint_id", "event_id"])
            .index(&["status", "next_attempt_at"])
            .index(&["endpoint_id", "created_at"]),
    ]
}
