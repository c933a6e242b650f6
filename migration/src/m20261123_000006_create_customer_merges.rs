//! Merge records, so a wrong merge can be undone.
//!
//! `customer_merges` holds who merged which duplicate into which survivor, and on what
//! evidence (kinds of shared identities, or a person's decision; never identity values,
//! so the record holds no personal data). `customer_merge_rows` lists exactly which
//! rows moved, so `unmergeCustomers` moves back those rows and no others. Both sides
//! `RESTRICT` the deletion of the customers (customers are never deleted); the moved
//! rows go with their merge record.

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!("customer_merges", "customer_merge_rows");

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    vec![
        TableDef::new("customer_merges")
            .col(pk_uuid("id"))
            .col(uuid("survivor_id"))
            .col(uuid("duplicate_id"))
            .col(json_binary("evidence"))
            .col(uuid_null("merged_by_user_id"))
            .col(uuid_null("merged_by_token_id"))
            .col(ts("merged_at"))
            .col(ts_null("unmerged_at"))
            .col(uuid_null("unmerged_by_user_id"))
            .fk("survivor_id", "customers", Restrict)
            .fk("duplicate_id", "customers", Restrict)
            .fk("merged_by_user_id", "users", SetNull)
            .fk("merged_by_token_id", "api_tokens", SetNull)
            .fk("unmerged_by_user_id", "users", SetNull)
            .index(&["survivor_id", "merged_at"])
            .index(&["duplicate_id", "merged_at"])
            .index(&["merged_by_user_id"])
            .index(&["merged_by_token_id"])
            .index(&["unmerged_by_user_id"]),
        TableDef::new("customer_merge_rows")
            .col(uuid("merge_id"))
            .col(string_len("table_name", 64))
            .col(uuid("row_id"))
            .primary_key(&["merge_id", "table_name", "row_id"])
            .fk("merge_id", "customer_merges", Cascade),
    ]
}
