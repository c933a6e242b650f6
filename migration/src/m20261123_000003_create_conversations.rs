//! Service configuration (SLA policies, routing rules), conversations and interactions.
//!
//! Facts about a customer (conversations, interactions) `RESTRICT` the deletion of the
//! customer: customers are merged or erased, never deleted with their history. Config
//! rows that conversations merely point at (`sla_policy`, `routing_rule`, team,
//! assignee) become `NULL` when deleted. `(channel, external_id)` is the idempotency
//! key of ingest.

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!("sla_policies", "routing_rules", "conversations", "interactions");

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    let _ = (Cascade, Restrict, SetNull);
    vec![
        TableDef::new("sla_policies")
            .col(pk_uuid("id"))
            .col(string_len("name", 200))
            .col(enum_col_null("channel"))
            .col(enum_col_null("priority"))
            .col(integer("first_response_minutes"))
            .col(integer("resolution_minutes"))
            .col(boolean("active"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .index(&["channel", "priority"]),
        TableDef::new("routing_rules")
            .col(pk_uuid("id"))
            .col(string_len("name", 200))
            .col(integer("position"))
            .col(boolean("enabled"))
            .col(json_binary("conditions"))
            .col(uuid_null("team_id"))
            .col(enum_col_null("set_priority"))
            .col(json_binary("add_tags"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .fk("team_id", "teams", Restrict)
            .index(&["position"])
            .index(&["team_id"]),
        TableDef::new("conversations")
            .col(pk_uuid("id"))
            .col(uuid("customer_id"))
            .col(enum_col("channel"))
            .col(string_len_null("inbox", 200))
            .col(enum_col("status"))
            .col(enum_col("priority"))
            .col(string_len_null("subject", 500))
            .col(uuid_null("team_id"))
            .col(uuid_null("assignee_id"))
            .col(uuid_null("sla_policy_id"))
            .col(uuid_null("routing_rule_id"))
            .col(json_binary("tags"))
            .col(ts("opened_at"))
            .col(ts("last_message_at"))
            .col(ts_null("first_response_due_at"))
            .col(ts_null("resolution_due_at"))
            .col(ts_null("first_response_at"))
            .col(ts_null("resolved_at"))
            .col(ts_null("closed_at"))
            .col(boolean("first_response_breached"))
            .col(boolean("resolution_breached"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .fk("customer_id", "customers", Restrict)
            .fk("team_id", "teams", SetNull)
            .fk("assignee_id", "users", SetNull)
            .fk("sla_policy_id", "sla_policies", SetNull)
            .fk("routing_rule_id", "routing_rules", SetNull)
            .index(&["customer_id", "channel", "status"])
            .index(&["status", "priority", "last_message_at"])
            .index(&["team_id", "status"])
            .index(&["assignee_id", "status"])
            .index(&["sla_policy_id"])
            .index(&["routing_rule_id"])
            .index(&["channel", "opened_at"])
            .index(&["opened_at"])
            .index(&["last_message_at"])
            .index(&["first_response_due_at"])
            .index(&["resolution_due_at"]),
        TableDef::new("interactions")
            .col(pk_uuid("id"))
            .col(uuid("customer_id"))
            .col(uuid_null("conversation_id"))
            .col(enum_col("channel"))
            .col(enum_col("direction"))
            .col(enum_col("visibility"))
            .col(enum_col("author_kind"))
            .col(uuid_null("author_user_id"))
            .col(string_len_null("inbox", 200))
            .col(text_null("body"))
            .col(double_null("sentiment_score"))
            .col(enum_col_null("sentiment_label"))
            .col(string_len_null("external_id", 300))
            .col(ts("occurred_at"))
            .col(ts("created_at"))
            .fk("customer_id", "customers", Restrict)
            .fk("conversation_id", "conversations", Restrict)
            .fk("author_user_id", "users", SetNull)
            .unique(&["channel", "external_id"])
            .index(&["customer_id", "occurred_at"])
            .index(&["conversation_id", "occurred_at"])
            .index(&["channel", "occurred_at"])
            .index(&["occurred_at"])
            .index(&["author_user_id"]),
    ]
}
