//! Merging duplicate customers, and undoing a wrong merge.
//!
//! A merge moves the duplicate's identities, conversations, interactions, touchpoints
//! and feedback to the survivor with one `INSERT … SELECT` (recording exactly which rows
//! move) and one `UPDATE` per table, in one transaction; the duplicate stays as a
//! tombstone pointing at the survivor, and tombstones that pointed at the duplicate are
//! re-pointed so a redirect is always one hop.
//!
//! Unmerging moves back the recorded rows that are still on the survivor, and then
//! what arrived while merged in the duplicate's threads: an interaction written in a
//! conversation that goes back goes with it (the duplicate wrote it, or was answered
//! in it), and feedback and touchpoints linked to an interaction that goes back follow
//! it. Facts that arrived while merged outside those threads (a conversation opened
//! anew, a rating naming no interaction) stay with the survivor: nothing recorded says
//! whose they were.
//!
//! Both take their row locks in the order ingest does (conversations, then customers;
//! see `interactions::ingest`), so a merge never waits on a batch that waits on it. If
//! PostgreSQL still fails one side of a cycle (an ingest's second read can lock a lower
//! conversation id late), the whole transaction is run again: a conflict with a
//! concurrent write is never the caller's problem, and never `INTERNAL`.

use chrono::Utc;
use entity::{customer, customer_merge};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::service::find;
use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::batch;
use crate::db::{self, statement};
use crate::error::{AppError, AppResult};
use crate::events;

/// The customer-owned tables whose rows follow a merge.
pub const MOVED_TABLES: &[&str] = &["customer_identities", "conversations", "interactions", "touchpoints", "feedback"];

/// The moved tables whose rows carry `updated_at`, stamped when a row moves so that
/// an incremental export hands it out again with its new customer.
const STAMPED_TABLES: &[&str] = &["conversations", "interactions", "touchpoints", "feedback"];

/// `, updated_at = ?` for a stamped table, else nothing.
fn stamp(table: &str) -> &'static str {
    if STAMPED_TABLES.contains(&table) { ", updated_at = ?" } else { "" }
}

/// The value [`stamp`] binds, if any.
fn stamped(table: &str, now: chrono::DateTime<Utc>) -> Option<sea_orm::Value> {
    STAMPED_TABLES.contains(&table).then(|| now.into())
}

/// Why two customers are the same person.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Kinds of identity the two share or that led to the decision (no values: the
    /// record must not hold personal data).
    pub identity_kinds: Vec<entity::enums::IdentityKind>,
    /// A person's reason, if they gave one.
    pub note: Option<String>,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    pub merge: customer_merge::Model,
    pub survivor: customer::Model,
    /// Rows moved per table, in [`MOVED_TABLES`] order.
    pub moved: Vec<(&'static str, u64)>,
}

async fn live(db: &impl ConnectionTrait, id: Uuid, field: &[&str]) -> AppResult<customer::Model> {
    let c = find(db, id).await?.ok_or(AppError::NotFound("customer"))?;
    if let Some(to) = c.merged_into_id {
        return Err(AppError::invalid(field, "MERGED", format!("was already merged into {to}")));
    }
    if c.erased_at.is_some() {
        return Err(AppError::invalid(field, "ERASED", "was erased"));
    }
    Ok(c)
}

/// Merges `duplicate_id` into `survivor_id`.
pub async fn merge(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    survivor_id: Uuid,
    duplicate_id: Uuid,
    evidence: Evidence,
) -> AppResult<MergeOutcome> {
    if survivor_id == duplicate_id {
        return Err(AppError::invalid(
            &["input", "duplicateId"],
            "SAME_CUSTOMER",
            "cannot merge a customer into itself",
        ));
    }
    batch::retry_contended(|| merge_once(db, actor, survivor_id, duplicate_id, &evidence)).await
}

async fn merge_once(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    survivor_id: Uuid,
    duplicate_id: Uuid,
    evidence: &Evidence,
) -> AppResult<MergeOutcome> {
    let txn = db::begin_write(db).await?;
    // The moving conversations, then both customers. An ingest that wrote for the
    // duplicate commits before this merge moves its rows, or finds it merged and
    // follows the merge (see `interactions::ingest`).
    let moving = "SELECT id FROM conversations WHERE customer_id = ? ORDER BY id FOR UPDATE";
    let moving = statement(txn.get_database_backend(), moving, vec![duplicate_id.into()]);
    lock_in_ingest_order(&txn, moving, &[survivor_id, duplicate_id]).await?;
    let survivor = live(&txn, survivor_id, &["input", "survivorId"]).await?;
    let duplicate = live(&txn, duplicate_id, &["input", "duplicateId"]).await?;
    let now = Utc::now();
    let (user, token) = actor_ids(actor.principal);
    let merge = customer_merge::ActiveModel {
        id: Set(Uuid::now_v7()),
        survivor_id: Set(survivor_id),
        duplicate_id: Set(duplicate_id),
        evidence: Set(json!({
            "decidedBy": if evidence.note.is_some() || user.is_some() { "person" } else { "system" },
            "identityKinds": evidence.identity_kinds,
            "note": evidence.note,
        })),
        merged_by_user_id: Set(user),
        merged_by_token_id: Set(token),
        merged_at: Set(now),
        unmerged_at: Set(None),
        unmerged_by_user_id: Set(None),
    }
    .insert(&txn)
    .await?;
    let backend = txn.get_database_backend();
    let mut moved = Vec::new();
    for table in MOVED_TABLES {
        let record = format!(
            "INSERT INTO customer_merge_rows (merge_id, table_name, row_id) SELECT ?, ?, id FROM {table} WHERE customer_id = ?"
        );
        txn.execute_raw(statement(backend, &record, vec![merge.id.into(), (*table).into(), duplicate_id.into()]))
            .await?;
        let update = format!("UPDATE {table} SET customer_id = ?{} WHERE customer_id = ?", stamp(table));
        let mut values = vec![survivor_id.into()];
        values.extend(stamped(table, now));
        values.push(duplicate_id.into());
        let done = txn.execute_raw(statement(backend, &update, values)).await?;
        moved.push((*table, done.rows_affected()));
    }
    // Earlier tombstones of the duplicate now point at the survivor (one hop).
    let repoint = "INSERT INTO customer_merge_rows (merge_id, table_name, row_id) SELECT ?, 'customers', id \
                   FROM customers WHERE merged_into_id = ?";
    txn.execute_raw(statement(backend, repoint, vec![merge.id.into(), duplicate_id.into()])).await?;
    customer::Entity::update_many()
        .col_expr(customer::Column::MergedIntoId, Expr::value(survivor_id))
        .filter(customer::Column::MergedIntoId.eq(duplicate_id))
        .exec(&txn)
        .await?;
    customer::Entity::update_many()
        .col_expr(customer::Column::MergedIntoId, Expr::value(survivor_id))
        .col_expr(customer::Column::UpdatedAt, Expr::value(now))
        .filter(customer::Column::Id.eq(duplicate_id))
        .exec(&txn)
        .await?;
    let last_contact = survivor.last_contact_at.max(duplicate.last_contact_at);
    customer::Entity::update_many()
        .col_expr(customer::Column::LastContactAt, Expr::value(last_contact))
        .col_expr(customer::Column::UpdatedAt, Expr::value(now))
        .filter(customer::Column::Id.eq(survivor_id))
        .exec(&txn)
        .await?;
    let moved_json: Value =
        moved.iter().map(|(t, n)| ((*t).to_owned(), json!(n))).collect::<serde_json::Map<_, _>>().into();
    events::emit(
        &txn,
        events::customer_event(
            "customer.merged",
            survivor_id,
            json!({ "duplicateId": duplicate_id, "mergeId": merge.id }),
        ),
    )
    .await?;
    audit::record(
        &txn,
        actor,
        "mergeCustomers",
        "customer",
        Some(survivor_id),
        json!({ "duplicateId": duplicate_id, "mergeId": merge.id, "moved": moved_json }),
    )
    .await?;
    let survivor = find(&txn, survivor_id).await?.ok_or(AppError::NotFound("customer"))?;
    txn.commit().await?;
    Ok(MergeOutcome { merge, survivor, moved })
}

/// On PostgreSQL, locks the conversations `moving` selects (it ends `ORDER BY id FOR
/// UPDATE`), then `customers` in id order: ingest's order, so neither waits on the
/// other in a cycle. SQLite has one writer at a time (`begin_write`) and no row locks.
/// Merge, unmerge and erasure take their locks through this.
pub(super) async fn lock_in_ingest_order(
    txn: &impl ConnectionTrait,
    moving: sea_orm::Statement,
    customers: &[Uuid],
) -> Result<(), sea_orm::DbErr> {
    if txn.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    txn.query_all_raw(moving).await?;
    customer::Entity::find()
        .filter(customer::Column::Id.is_in(customers.iter().copied()))
        .order_by_asc(customer::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    Ok(())
}

fn actor_ids(principal: &Principal) -> (Option<Uuid>, Option<Uuid>) {
    match principal {
        Principal::User(u) => (Some(u.id), None),
        Principal::Token(t) => (None, Some(t.id)),
        Principal::Anonymous(_) => (None, None),
    }
}

/// Undoes a merge: the recorded rows still on the survivor go back to the duplicate,
/// which becomes a live customer again.
pub async fn unmerge(db: &DatabaseConnection, actor: Actor<'_>, merge_id: Uuid) -> AppResult<MergeOutcome> {
    batch::retry_contended(|| unmerge_once(db, actor, merge_id)).await
}

async fn unmerge_once(db: &DatabaseConnection, actor: Actor<'_>, merge_id: Uuid) -> AppResult<MergeOutcome> {
    let txn = db::begin_write(db).await?;
    // The merge row first: of two concurrent undos, the second finds it undone.
    let merge = customer_merge::Entity::find_by_id(merge_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("merge"))?;
    let moving = "SELECT id FROM conversations WHERE customer_id = ? AND id IN \
                  (SELECT row_id FROM customer_merge_rows WHERE merge_id = ? AND table_name = 'conversations') \
                  ORDER BY id FOR UPDATE";
    let moving = statement(txn.get_database_backend(), moving, vec![merge.survivor_id.into(), merge.id.into()]);
    lock_in_ingest_order(&txn, moving, &[merge.survivor_id, merge.duplicate_id]).await?;
    if merge.unmerged_at.is_some() {
        return Err(AppError::invalid(&["input", "mergeId"], "ALREADY_UNMERGED", "this merge was already undone"));
    }
    live(&txn, merge.survivor_id, &["input", "mergeId"]).await.map_err(|e| match e {
        AppError::Invalid(_) => AppError::invalid(
            &["input", "mergeId"],
            "SURVIVOR_CHANGED",
            "the survivor was merged or erased since; undo that first",
        ),
        other => other,
    })?;
    let duplicate = find(&txn, merge.duplicate_id).await?.ok_or(AppError::NotFound("customer"))?;
    if duplicate.erased_at.is_some() {
        return Err(AppError::invalid(&["input", "mergeId"], "ERASED", "the duplicate was erased"));
    }
    let backend = txn.get_database_backend();
    let now = Utc::now();
    let mut moved = Vec::new();
    for table in MOVED_TABLES {
        let back = format!(
            "UPDATE {table} SET customer_id = ?{} WHERE customer_id = ? AND id IN \
             (SELECT row_id FROM customer_merge_rows WHERE merge_id = ? AND table_name = ?)",
            stamp(table)
        );
        let mut values = vec![merge.duplicate_id.into()];
        values.extend(stamped(table, now));
        values.extend([merge.survivor_id.into(), merge.id.into(), (*table).into()]);
        let done = txn.execute_raw(statement(backend, &back, values)).await?;
        moved.push((*table, done.rows_affected()));
    }
    // What arrived while merged follows its thread back (see the module comment);
    // interactions first, so that the facts linked to them find them moved.
    let (survivor, duplicate) = (merge.survivor_id, merge.duplicate_id);
    for (table, owner) in [
        ("interactions", "conversation_id IN (SELECT id FROM conversations WHERE customer_id = ?)"),
        ("feedback", "interaction_id IN (SELECT id FROM interactions WHERE customer_id = ?)"),
        ("touchpoints", "interaction_id IN (SELECT id FROM interactions WHERE customer_id = ?)"),
    ] {
        let follow = format!("UPDATE {table} SET customer_id = ?, updated_at = ? WHERE customer_id = ? AND {owner}");
        let values = vec![duplicate.into(), now.into(), survivor.into(), duplicate.into()];
        let done = txn.execute_raw(statement(backend, &follow, values)).await?;
        if let Some(count) = moved.iter_mut().find(|(t, _)| *t == table) {
            count.1 += done.rows_affected();
        }
    }
    let tombstones = "UPDATE customers SET merged_into_id = ? WHERE merged_into_id = ? AND id IN \
                      (SELECT row_id FROM customer_merge_rows WHERE merge_id = ? AND table_name = 'customers')";
    let values = vec![merge.duplicate_id.into(), merge.survivor_id.into(), merge.id.into()];
    txn.execute_raw(statement(backend, tombstones, values)).await?;
    customer::Entity::update_many()
        .col_expr(customer::Column::MergedIntoId, Expr::value(Option::<Uuid>::None))
        .col_expr(customer::Column::UpdatedAt, Expr::value(now))
        .filter(customer::Column::Id.eq(merge.duplicate_id))
        .exec(&txn)
        .await?;
    for id in [merge.survivor_id, merge.duplicate_id] {
        let sql = "UPDATE customers SET last_contact_at = (SELECT MAX(occurred_at) FROM interactions \
                   WHERE interactions.customer_id = customers.id) WHERE id = ?";
        txn.execute_raw(statement(backend, sql, vec![id.into()])).await?;
    }
    let (user, _) = actor_ids(actor.principal);
    let mut active: customer_merge::ActiveModel = merge.clone().into();
    active.unmerged_at = Set(Some(now));
    active.unmerged_by_user_id = Set(user);
    let merge = active.update(&txn).await?;
    events::emit(
        &txn,
        events::customer_event(
            "customer.unmerged",
            merge.survivor_id,
            json!({ "duplicateId": merge.duplicate_id, "mergeId": merge.id }),
        ),
    )
    .await?;
    audit::record(
        &txn,
        actor,
        "unmergeCustomers",
        "customer",
        Some(merge.survivor_id),
        json!({ "duplicateId": merge.duplicate_id, "mergeId": merge.id }),
    )
    .await?;
    let survivor = find(&txn, merge.survivor_id).await?.ok_or(AppError::NotFound("customer"))?;
    txn.commit().await?;
    Ok(MergeOutcome { merge, survivor, moved })
}

/// Merges involving a customer (as survivor or duplicate), newest first.
pub async fn history(db: &impl ConnectionTrait, customer_id: Uuid) -> AppResult<Vec<customer_merge::Model>> {
    use sea_orm::{Condition, QueryOrder};
    Ok(customer_merge::Entity::find()
        .filter(
            Condition::any()
                .add(customer_merge::Column::SurvivorId.eq(customer_id))
                .add(customer_merge::Column::DuplicateId.eq(customer_id)),
        )
        .order_by_desc(customer_merge::Column::MergedAt)
        .all(db)
        .await?)
}
