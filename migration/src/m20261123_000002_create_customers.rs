//! Customers and their identities on every channel.
//!
//! An identity `(kind, value)` is unique across all customers: it belongs to exactly
//! one. Identities cascade with their customer; a merged customer points at the
//! survivor (`RESTRICT`: a survivor cannot vanish under its tombstones).

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!("customers", "customer_identities");

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    let _ = (Cascade, Restrict, SetNull);
    vec![
        TableDef::new("customers")
            .col(pk_uuid("id"))
            .col(string_len_null("display_name", 300))
            .col(string_len_null("segment", 100))
            .col(json_binary("attributes"))
            .col(uuid_null("merged_into_id"))
            .col(ts_null("erased_at"))
            .col(ts_null("last_contact_at"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .fk("merged_into_id", "customers", Restrict)
            .index(&["merged_into_id"])
            .index(&["segment"])
            .index(&["display_name"])
            .index(&["created_at"])
            .index(&["last_contact_at"]),
        TableDef::new("customer_identities")
            .col(pk_uuid("id"))
            .col(uuid("customer_id"))
            .col(enum_col("kind"))
            .col(string_len("value", 320))
            .col(boolean("verified"))
            .col(ts("created_at"))
            .fk("customer_id", "customers", Cascade)
            .unique(&["kind", "value"])
            .index(&["customer_id"])
            .index(&["value"]),
    ]
}
