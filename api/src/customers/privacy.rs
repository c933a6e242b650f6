//! GDPR: export of everything held on one customer (art. 15), erasure of their personal
//! data (art. 17), and the retention job that anonymises old message text.
//!
//! Erasure keeps the rows (so counts, NPS, SLA figures stay true) and removes what
//! identifies the person: the profile's name and attributes, every identity, message
//! bodies, subjects, comments and the channels' external ids (which can embed an
//! address), in the customer and in every tombstone merged into it, in one transaction.
//! It records who erased and when, and cannot be undone: an erased customer refuses
//! writes, merges and unmerges. It locks the customer's conversations, then the
//! customer, as ingest and merge do (see `merge::lock_in_ingest_order`), and runs again
//! if PostgreSQL still fails it to break a deadlock.

use chrono::{Duration, Utc};
use entity::{audit_entry, conversation, customer, customer_identity, feedback, interaction, touchpoint};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

use super::merge;
use super::service::find;
use crate::audit::{self, Actor};
use crate::batch;
use crate::db::{self, placeholders, statement};
use crate::error::{AppError, AppResult};
use crate::events;

fn to_json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Everything held on one customer (and the tombstones merged into it), as one JSON
/// document. The export itself is audited: reading someone's whole file is an event.
pub async fn export(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<Value> {
    let customer = find(db, id).await?.ok_or(AppError::NotFound("customer"))?;
    let tombstones = customer::Entity::find().filter(customer::Column::MergedIntoId.eq(id)).all(db).await?;
    let identities =
        customer_identity::Entity::find().filter(customer_identity::Column::CustomerId.eq(id)).all(db).await?;
    let conversations = conversation::Entity::find()
        .filter(conversation::Column::CustomerId.eq(id))
        .order_by_asc(conversation::Column::OpenedAt)
        .all(db)
        .await?;
    let interactions = interaction::Entity::find()
        .filter(interaction::Column::CustomerId.eq(id))
        .order_by_asc(interaction::Column::OccurredAt)
        .all(db)
        .await?;
    let touchpoints = touchpoint::Entity::find()
        .filter(touchpoint::Column::CustomerId.eq(id))
        .order_by_asc(touchpoint::Column::OccurredAt)
        .all(db)
        .await?;
    let feedback = feedback::Entity::find()
        .filter(feedback::Column::CustomerId.eq(id))
        .order_by_asc(feedback::Column::OccurredAt)
        .all(db)
        .await?;
    let merges = merge::history(db, id).await?;
    let audit_trail = audit_entry::Entity::find()
        .filter(audit_entry::Column::TargetType.eq("customer"))
        .filter(audit_entry::Column::TargetId.eq(id.to_string()))
        .order_by_asc(audit_entry::Column::OccurredAt)
        .all(db)
        .await?;
    let document = json!({
        "exportedAt": Utc::now(),
        "customer": {
            "id": customer.id, "displayName": customer.display_name, "segment": customer.segment,
            "attributes": customer.attributes, "createdAt": customer.created_at, "updatedAt": customer.updated_at,
            "lastContactAt": customer.last_contact_at, "mergedIntoId": customer.merged_into_id,
            "erasedAt": customer.erased_at,
        },
        "mergedCustomers": tombstones.iter().map(|t| json!({
            "id": t.id, "displayName": t.display_name, "attributes": t.attributes, "createdAt": t.created_at,
        })).collect::<Vec<_>>(),
        "identities": identities.iter().map(|i| json!({
            "kind": i.kind, "value": i.value, "verified": i.verified, "createdAt": i.created_at,
        })).collect::<Vec<_>>(),
        "conversations": conversations.iter().map(|c| json!({
            "id": c.id, "channel": c.channel, "inbox": c.inbox, "status": c.status, "priority": c.priority,
            "subject": c.subject, "openedAt": c.opened_at, "resolvedAt": c.resolved_at, "closedAt": c.closed_at,
        })).collect::<Vec<_>>(),
        "interactions": interactions.iter().map(|i| json!({
            "id": i.id, "conversationId": i.conversation_id, "channel": i.channel, "direction": i.direction,
            "visibility": i.visibility, "authorKind": i.author_kind, "inbox": i.inbox, "body": i.body,
            "sentimentScore": i.sentiment_score, "externalId": i.external_id, "occurredAt": i.occurred_at,
        })).collect::<Vec<_>>(),
        "touchpoints": touchpoints.iter().map(|t| json!({
            "id": t.id, "journeyId": t.journey_id, "stageId": t.stage_id, "channel": t.channel, "name": t.name,
            "outcome": t.outcome, "source": t.source, "externalId": t.external_id, "occurredAt": t.occurred_at,
        })).collect::<Vec<_>>(),
        "feedback": feedback.iter().map(|f| json!({
            "id": f.id, "surveyId": f.survey_id, "kind": f.kind, "score": f.score, "comment": f.comment,
            "channel": f.channel, "sentimentScore": f.sentiment_score, "source": f.source,
            "externalId": f.external_id, "occurredAt": f.occurred_at,
        })).collect::<Vec<_>>(),
        "merges": merges.iter().map(|m| json!({
            "id": m.id, "survivorId": m.survivor_id, "duplicateId": m.duplicate_id, "mergedAt": m.merged_at,
            "unmergedAt": m.unmerged_at,
        })).collect::<Vec<_>>(),
        "auditTrail": audit_trail.iter().map(|a| json!({
            "operation": a.operation, "occurredAt": a.occurred_at, "changes": a.changes,
        })).collect::<Vec<_>>(),
    });
    audit::record(db, actor, "exportCustomerData", "customer", Some(id), json!({})).await?;
    Ok(to_json(document))
}

/// Rows changed by an erasure, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    pub customers: u64,
    pub identities: u64,
    pub interactions: u64,
    pub conversations: u64,
    pub touchpoints: u64,
    pub feedback: u64,
}

/// Erases the personal data of a customer and of every tombstone merged into it.
/// On SQLite the write-ahead log is then checkpointed, so the erased text is gone
/// from the files on disk too, not only from the tables.
pub async fn erase(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<ErasureReport> {
    let report = batch::retry_contended(|| erase_once(db, actor, id)).await?;
    scrub_log(db, "erasure").await;
    Ok(report)
}

/// Checkpoints SQLite's log after personal data was removed (see
/// [`crate::db::checkpoint_after_erasure`]); a failure is logged, not raised: the data
/// is gone from the tables either way, and the log's frames are overwritten as it wraps.
async fn scrub_log(db: &DatabaseConnection, after: &str) {
    match crate::db::checkpoint_after_erasure(db).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(after, "personal data removed, but readers kept the SQLite log from being truncated")
        }
        Err(error) => {
            tracing::warn!(after, %error, "personal data removed, but the SQLite log could not be checkpointed")
        }
    }
}

async fn erase_once(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<ErasureReport> {
    let txn = db::begin_write(db).await?;
    // Tombstones hold no rows (a merge moved them here), so this customer's are all.
    let conversations = "SELECT id FROM conversations WHERE customer_id = ? ORDER BY id FOR UPDATE";
    let conversations = statement(txn.get_database_backend(), conversations, vec![id.into()]);
    merge::lock_in_ingest_order(&txn, conversations, &[id]).await?;
    let customer = find(&txn, id).await?.ok_or(AppError::NotFound("customer"))?;
    if let Some(survivor) = customer.merged_into_id {
        return Err(AppError::invalid(
            &["input", "id"],
            "MERGED",
            format!("was merged into {survivor}: erase that customer (its tombstones go with it)"),
        ));
    }
    if customer.erased_at.is_some() {
        return Err(AppError::invalid(&["input", "id"], "ERASED", "was already erased"));
    }
    let mut ids: Vec<Uuid> = customer::Entity::find()
        .filter(customer::Column::MergedIntoId.eq(id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    ids.push(id);
    let now = Utc::now();
    let mut report = ErasureReport {
        customers: customer::Entity::update_many()
            .col_expr(customer::Column::DisplayName, Expr::value(Option::<String>::None))
            .col_expr(customer::Column::Attributes, Expr::value(json!({})))
            .col_expr(customer::Column::ErasedAt, Expr::value(now))
            .col_expr(customer::Column::UpdatedAt, Expr::value(now))
            .filter(customer::Column::Id.is_in(ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected,
        identities: customer_identity::Entity::delete_many()
            .filter(customer_identity::Column::CustomerId.is_in(ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected,
        ..Default::default()
    };
    report.interactions = interaction::Entity::update_many()
        .col_expr(interaction::Column::Body, Expr::value(Option::<String>::None))
        .col_expr(interaction::Column::ExternalId, Expr::value(Option::<String>::None))
        .col_expr(interaction::Column::UpdatedAt, Expr::value(now))
        .filter(interaction::Column::CustomerId.is_in(ids.clone()))
        .exec(&txn)
        .await?
        .rows_affected;
    report.conversations = conversation::Entity::update_many()
        .col_expr(conversation::Column::Subject, Expr::value(Option::<String>::None))
        .col_expr(conversation::Column::Tags, Expr::value(json!([])))
        .col_expr(conversation::Column::UpdatedAt, Expr::value(now))
        .filter(conversation::Column::CustomerId.is_in(ids.clone()))
        .exec(&txn)
        .await?
        .rows_affected;
    report.touchpoints = touchpoint::Entity::update_many()
        .col_expr(touchpoint::Column::ExternalId, Expr::value(Option::<String>::None))
        .col_expr(touchpoint::Column::UpdatedAt, Expr::value(now))
        .filter(touchpoint::Column::CustomerId.is_in(ids.clone()))
        .exec(&txn)
        .await?
        .rows_affected;
    report.feedback = feedback::Entity::update_many()
        .col_expr(feedback::Column::Comment, Expr::value(Option::<String>::None))
        .col_expr(feedback::Column::ExternalId, Expr::value(Option::<String>::None))
        .col_expr(feedback::Column::UpdatedAt, Expr::value(now))
        .filter(feedback::Column::CustomerId.is_in(ids.clone()))
        .exec(&txn)
        .await?
        .rows_affected;
    // A person's note on a merge may name them.
    let scrub = format!(
        "UPDATE customer_merges SET evidence = ? WHERE survivor_id IN ({0}) OR duplicate_id IN ({0})",
        placeholders(ids.len())
    );
    let mut values = vec![json!({ "erased": true }).into()];
    values.extend(ids.iter().map(|i| sea_orm::Value::from(*i)));
    values.extend(ids.iter().map(|i| sea_orm::Value::from(*i)));
    txn.execute_raw(statement(txn.get_database_backend(), &scrub, values)).await?;
    events::emit(&txn, events::customer_event("customer.erased", id, json!({}))).await?;
    audit::record(
        &txn,
        actor,
        "eraseCustomer",
        "customer",
        Some(id),
        json!({ "tombstones": ids.len() - 1, "identitiesRemoved": report.identities }),
    )
    .await?;
    txn.commit().await?;
    Ok(report)
}

/// How long personal text is kept.
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    /// Interaction bodies, conversation subjects and feedback comments older than this
    /// many days are removed.
    pub text_days: u32,
}

/// Rows per statement of the retention job: short transactions, no long locks.
const RETENTION_CHUNK: u64 = 500;

/// Applies the policy once; returns how many rows it anonymised. Idempotent (already
/// anonymised rows do not match) and safe to run on several replicas at once (each
/// chunk is one `UPDATE … WHERE id IN (…) AND body IS NOT NULL`: a row another replica
/// got first simply no longer matches).
pub async fn apply_retention(db: &DatabaseConnection, policy: RetentionPolicy) -> AppResult<u64> {
    let cutoff = Utc::now() - Duration::days(i64::from(policy.text_days));
    let mut total = 0;
    loop {
        let ids: Vec<Uuid> = interaction::Entity::find()
            .select_only()
            .column(interaction::Column::Id)
            .filter(interaction::Column::OccurredAt.lt(cutoff))
            .filter(interaction::Column::Body.is_not_null())
            .order_by_asc(interaction::Column::OccurredAt)
            .limit(RETENTION_CHUNK)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            break;
        }
        total += interaction::Entity::update_many()
            .col_expr(interaction::Column::Body, Expr::value(Option::<String>::None))
            .col_expr(interaction::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(interaction::Column::Id.is_in(ids))
            .filter(interaction::Column::Body.is_not_null())
            .exec(db)
            .await?
            .rows_affected;
    }
    total += feedback::Entity::update_many()
        .col_expr(feedback::Column::Comment, Expr::value(Option::<String>::None))
        .col_expr(feedback::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(feedback::Column::OccurredAt.lt(cutoff))
        .filter(feedback::Column::Comment.is_not_null())
        .exec(db)
        .await?
        .rows_affected;
    total += conversation::Entity::update_many()
        .col_expr(conversation::Column::Subject, Expr::value(Option::<String>::None))
        .col_expr(conversation::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(conversation::Column::LastMessageAt.lt(cutoff))
        .filter(conversation::Column::Subject.is_not_null())
        .exec(db)
        .await?
        .rows_affected;
    if total > 0 {
        scrub_log(db, "retention").await;
    }
    Ok(total)
}

/// Runs the retention job every `interval` until the process ends.
pub fn spawn_retention(
    db: DatabaseConnection,
    policy: RetentionPolicy,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(interval, move || {
        let db = db.clone();
        async move {
            match apply_retention(&db, policy).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, days = policy.text_days, "retention: personal text removed"),
                Err(e) => tracing::warn!(error = e.message(), "retention run failed; retrying next interval"),
            }
        }
    })
}
