//! Journeys and their stages, touchpoints, surveys, feedback and topics.
//!
//! Stages cascade with their journey, but touchpoints `RESTRICT` both (history is never
//! dropped by a config change). Feedback `RESTRICT`s its survey (deactivate, do not
//! delete, a survey with answers) and loses only optional links (`SET NULL`). Topic
//! links cascade from both sides. `(source, external_id)` is the idempotency key.

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!(
    "journeys",
    "journey_stages",
    "touchpoints",
    "surveys",
    "feedback",
    "topics",
    "feedback_topics",
    "interaction_topics",
);

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    let _ = (Cascade, Restrict, SetNull);
    vec![
        TableDef::new("journeys")
            .col(pk_uuid("id"))
            .col(string_len("name", 200))
            .col(text_null("description"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .unique(&["name"]),
        TableDef::new("journey_stages")
            .col(pk_uuid("id"))
            .col(uuid("journey_id"))
            .col(string_len("name", 200))
            .col(integer("position"))
            .col(ts("created_at"))
            .fk("journey_id", "journeys", Cascade)
            .unique(&["journey_id", "position"])
            .unique(&["journey_id", "name"]),
        TableDef::new("touchpoints")
            .col(pk_uuid("id"))
            .col(uuid("customer_id"))
            .col(uuid("journey_id"))
            .col(uuid("stage_id"))
            .col(enum_col("channel"))
            .col(string_len("name", 200))
            .col(enum_col("outcome"))
            .col(uuid_null("interaction_id"))
            .col(string_len("source", 100))
            .col(string_len_null("external_id", 300))
            .col(ts("occurred_at"))
            .col(ts("created_at"))
            .fk("customer_id", "customers", Restrict)
            .fk("journey_id", "journeys", Restrict)
            .fk("stage_id", "journey_stages", Restrict)
            .fk("interaction_id", "interactions", SetNull)
            .unique(&["source", "external_id"])
            .index(&["customer_id", "occurred_at"])
            .index(&["journey_id", "occurred_at"])
            .index(&["stage_id", "occurred_at"])
            .index(&["channel", "occurred_at"])
            .index(&["interaction_id"])
            .index(&["occurred_at"]),
        TableDef::new("surveys")
            .col(pk_uuid("id"))
            .col(string_len("name", 200))
            .col(enum_col("kind"))
            .col(text("question"))
            .col(enum_col_null("channel"))
            .col(uuid_null("stage_id"))
            .col(boolean("active"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .fk("stage_id", "journey_stages", SetNull)
            .index(&["stage_id"])
            .index(&["kind"]),
        TableDef::new("feedback")
            .col(pk_uuid("id"))
            .col(uuid("customer_id"))
            .col(uuid_null("survey_id"))
            .col(enum_col("kind"))
            .col(small_integer_null("score"))
            .col(text_null("comment"))
            .col(enum_col("channel"))
            .col(uuid_null("touchpoint_id"))
            .col(uuid_null("interaction_id"))
            .col(double_null("sentiment_score"))
            .col(enum_col_null("sentiment_label"))
            .col(string_len("source", 100))
            .col(string_len_null("external_id", 300))
            .col(ts("occurred_at"))
            .col(ts("created_at"))
            .fk("customer_id", "customers", Restrict)
            .fk("survey_id", "surveys", Restrict)
            .fk("touchpoint_id", "touchpoints", SetNull)
            .fk("interaction_id", "interactions", SetNull)
            .unique(&["source", "external_id"])
            .index(&["customer_id", "occurred_at"])
            .index(&["survey_id"])
            .index(&["kind", "occurred_at"])
            .index(&["channel", "occurred_at"])
            .index(&["touchpoint_id"])
            .index(&["interaction_id"])
            .index(&["occurred_at"]),
        TableDef::new("topics")
            .col(pk_uuid("id"))
            .col(string_len("name", 200))
            .col(json_binary("keywords"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .unique(&["name"]),
        TableDef::new("feedback_topics")
            .col(uuid("feedback_id"))
            .col(uuid("topic_id"))
            .primary_key(&["feedback_id", "topic_id"])
            .fk("feedback_id", "feedback", Cascade)
            .fk("topic_id", "topics", Cascade)
            .index(&["topic_id"]),
        TableDef::new("interaction_topics")
            .col(uuid("interaction_id"))
            .col(uuid("topic_id"))
            .primary_key(&["interaction_id", "topic_id"])
            .fk("interaction_id", "interactions", Cascade)
            .fk("topic_id", "topics", Cascade)
            .index(&["topic_id"]),
    ]
}
