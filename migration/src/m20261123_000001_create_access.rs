//! Staff, teams and credentials: who may call the API.
//!
//! Refresh tokens cascade with their user (they are worthless without one); a user
//! deleted from a team keeps working, unassigned (`SET NULL`).

use crate::dsl::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

crate::table_migration!("teams", "users", "api_tokens", "refresh_tokens");

fn tables() -> Vec<TableDef> {
    use ForeignKeyAction::{Cascade, Restrict, SetNull};
    let _ = (Cascade, Restrict, SetNull);
    vec![
        TableDef::new("teams").col(pk_uuid("id")).col(string_len("name", 200)).col(ts("created_at")).unique(&["name"]),
        TableDef::new("users")
            .col(pk_uuid("id"))
            .col(string_len("email", 320))
            .col(string_len("display_name", 200))
            .col(text("password_hash"))
            .col(enum_col("role"))
            .col(uuid_null("team_id"))
            .col(boolean("active"))
            .col(ts("created_at"))
            .col(ts("updated_at"))
            .col(ts_null("last_login_at"))
            .fk("team_id", "teams", SetNull)
            .unique(&["email"])
            .index(&["team_id"])
            .index(&["role"]),
        TableDef::new("api_tokens")
            .col(pk_uuid("id"))
            .col(string_len("name", 200))
            .col(string_len("prefix", 64))
            .col(string_len("secret_hash", 128))
            .col(json_binary("scopes"))
            .col(json_binary_null("channels"))
            .col(uuid_null("created_by"))
            .col(ts("created_at"))
            .col(ts_null("expires_at"))
            .col(ts_null("revoked_at"))
            .col(ts_null("last_used_at"))
            .fk("created_by", "users", SetNull)
            .unique(&["prefix"])
            .index(&["created_by"])
            .index(&["created_at"]),
        TableDef::new("refresh_tokens")
            .col(pk_uuid("id"))
            .col(uuid("user_id"))
            .col(uuid("family_id"))
            .col(string_len("token_hash", 128))
            .col(ts("created_at"))
            .col(ts("expires_at"))
            .col(ts_null("used_at"))
            .col(ts_null("revoked_at"))
            .fk("user_id", "users", Cascade)
            .unique(&["token_hash"])
            .index(&["user_id"])
            .index(&["family_id"])
            .index(&["expires_at"]),
    ]
}
