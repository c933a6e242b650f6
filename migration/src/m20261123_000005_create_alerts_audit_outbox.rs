//! Alerts, the audit log and the transactional outbox.
//!
//! Audit rows `RESTRICT` the deletion of the user or token they name: the trail must
//! not lose its actors (users are deactivated, tokens revoked). Outbox events carry
//! ids but no foreign keys: they are a log of what happened, kept after the fact.

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!("alerts", "audit_entries", "outbox_events");

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    let _ = (Cascade, Restrict, SetNull);
    vec![
        TableDef::new("alerts")
            .col(pk_uuid("id"))
            .col(string_len("kind", 64))
            .col(enum_col("severity"))
            .col(enum_col("status"))
            .col(string_len("title", 500))
            .col(enum_col_null("channel"))
            .col(uuid_null("topic_id"))
            .col(uuid_null("conversation_id"))
            .col(json_binary("details"))
            .col(string_len("dedupe_key", 300))
            .col(ts("raised_at"))
            .col(ts_null("acknowledged_at"))
            .col(uuid_null("acknowledged_by"))
            .col(ts_null("resolved_at"))
            .fk("topic_id", "topics", SetNull)
            .fk("conversation_id", "conversations", SetNull)
            .fk("acknowledged_by", "users", SetNull)
            .unique(&["dedupe_key"])
            .index(&["status", "raised_at"])
            .index(&["kind", "raised_at"])
            .index(&["raised_at"])
            .index(&["topic_id"])
            .index(&["conversation_id"])
            .index(&["acknowledged_by"]),
        TableDef::new("audit_entries")
            .col(pk_uuid("id"))
            .col(ts("occurred_at"))
            .col(uuid_null("actor_user_id"))
            .col(uuid_null("actor_token_id"))
            .col(string_len("operation", 100))
            .col(string_len("target_type", 64))
            .col(string_len_null("target_id", 100))
            .col(json_binary("changes"))
            .col(string_len_null("request_id", 100))
            .fk("actor_user_id", "users", Restrict)
            .fk("actor_token_id", "api_tokens", Restrict)
            .index(&["occurred_at"])
            .index(&["target_type", "target_id"])
            .index(&["actor_user_id", "occurred_at"])
            .index(&["actor_token_id", "occurred_at"])
            .index(&["operation", "occurred_at"]),
        TableDef::new("outbox_events")
            .col(big_pk_auto("position"))
            .col(uuid("id"))
            .col(string_len("event_type", 100))
            .col(integer("version"))
            .col(string_len("aggregate_type", 64))
            .col(uuid("aggregate_id"))
            .col(uuid_null("customer_id"))
            .col(enum_col_null("channel"))
            .col(json_binary("payload"))
            .col(ts("created_at"))
            .unique(&["id"])
            .index(&["event_type", "position"])
            .index(&["aggregate_type", "aggregate_id"])
            .index(&["customer_id"])
            .index(&["created_at"]),
    ]
}
