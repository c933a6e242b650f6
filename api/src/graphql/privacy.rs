//! Merge, unmerge, GDPR export and erasure over GraphQL.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::customer_merge;

use super::customer::Customer;
use super::enums::IdentityKind;
use super::facts::shows;
use super::types::{UserError, actor, context, id, parse_id, split_user_errors};
use crate::customers::merge::{self, Evidence, MergeOutcome};
use crate::customers::privacy;

/// One merge of a duplicate customer into a survivor.
pub struct CustomerMerge(pub customer_merge::Model);

#[Object]
impl CustomerMerge {
    /// Id of the merge (give it to `unmergeCustomers`).
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The customer that kept everything.
    async fn survivor_id(&self) -> ID {
        id(self.0.survivor_id)
    }
    /// The customer that became a tombstone.
    async fn duplicate_id(&self) -> ID {
        id(self.0.duplicate_id)
    }
    /// Why: `{decidedBy, identityKinds, note}` (no identity values). The note is a
    /// person's free text (agents type the phone number or e-mail that convinced
    /// them), so it is null for callers who may not read personal data.
    async fn evidence(&self, ctx: &Context<'_>) -> Json<serde_json::Value> {
        let mut evidence = self.0.evidence.clone();
        if !shows(ctx, "CustomerMerge", "evidence")
            && let Some(note) = evidence.get_mut("note")
        {
            *note = serde_json::Value::Null;
        }
        Json(evidence)
    }
    /// The user who merged.
    async fn merged_by_user_id(&self) -> Option<ID> {
        self.0.merged_by_user_id.map(id)
    }
    /// When.
    async fn merged_at(&self) -> DateTime<Utc> {
        self.0.merged_at
    }
    /// When the merge was undone, if it was.
    async fn unmerged_at(&self) -> Option<DateTime<Utc>> {
        self.0.unmerged_at
    }
}

/// Rows moved by a merge or unmerge, per table.
#[derive(SimpleObject)]
pub struct MovedRows {
    /// Table name.
    table: String,
    /// Rows moved.
    rows: u64,
}

/// Two customers to merge.
#[derive(InputObject)]
pub struct MergeCustomersInput {
    /// The customer that keeps everything.
    survivor_id: ID,
    /// The customer that becomes a tombstone pointing at the survivor.
    duplicate_id: ID,
    /// Kinds of identity that show they are the same person.
    #[graphql(default)]
    identity_kinds: Vec<IdentityKind>,
    /// Why, in a person's words.
    note: Option<String>,
}

/// Result of `mergeCustomers` / `unmergeCustomers`.
#[derive(SimpleObject)]
pub struct MergePayload {
    /// The merge record.
    merge: Option<CustomerMerge>,
    /// The survivor after the change.
    survivor: Option<Customer>,
    /// Rows moved, per table.
    moved: Vec<MovedRows>,
    /// Problems the user can fix (`SAME_CUSTOMER`, `MERGED`, `ERASED`, `ALREADY_UNMERGED`, …).
    user_errors: Vec<UserError>,
}

impl MergePayload {
    fn from_result(result: Result<(Option<MergeOutcome>, Vec<UserError>)>) -> Result<Self> {
        let (outcome, user_errors) = result?;
        Ok(match outcome {
            Some(o) => MergePayload {
                merge: Some(CustomerMerge(o.merge)),
                survivor: Some(Customer::single(o.survivor)),
                moved: o.moved.into_iter().map(|(t, n)| MovedRows { table: t.to_owned(), rows: n }).collect(),
                user_errors,
            },
            None => MergePayload { merge: None, survivor: None, moved: Vec::new(), user_errors },
        })
    }
}

/// A merge to undo.
#[derive(InputObject)]
pub struct UnmergeCustomersInput {
    /// Id of the merge.
    merge_id: ID,
}

/// A customer to erase.
#[derive(InputObject)]
pub struct EraseCustomerInput {
    /// The customer (not a tombstone: its tombstones are erased with it).
    id: ID,
}

/// Result of `eraseCustomer`: rows anonymised per kind.
#[derive(SimpleObject)]
pub struct EraseCustomerPayload {
    /// The erased customer (its id and anonymous facts remain).
    erased_customer_id: Option<ID>,
    /// Profiles erased (the customer and its tombstones).
    customers: u64,
    /// Identities removed.
    identities: u64,
    /// Interactions whose text and external ids were removed.
    interactions: u64,
    /// Conversations whose subjects were removed.
    conversations: u64,
    /// Touchpoints whose external ids were removed.
    touchpoints: u64,
    /// Feedback whose comments and external ids were removed.
    feedback: u64,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct PrivacyQuery;

#[Object]
impl PrivacyQuery {
    /// Merges a customer took part in, as survivor or duplicate, newest first.
    async fn customer_merges(&self, ctx: &Context<'_>, customer_id: ID) -> Result<Vec<CustomerMerge>> {
        let (state, _) = context(ctx)?;
        let customer_id = parse_id(&customer_id, &["customerId"])?;
        Ok(merge::history(state.db(), customer_id).await?.into_iter().map(CustomerMerge).collect())
    }

    /// Everything held on one customer, as one JSON document (GDPR art. 15). Audited.
    async fn export_customer_data(&self, ctx: &Context<'_>, id: ID) -> Result<Json<serde_json::Value>> {
        let (state, _) = context(ctx)?;
        let customer_id = parse_id(&id, &["id"])?;
        Ok(Json(privacy::export(state.db(), actor(ctx)?, customer_id).await?))
    }
}

#[derive(Default)]
pub struct PrivacyMutation;

#[Object]
impl PrivacyMutation {
    /// Merges a duplicate into a survivor: identities, conversations, interactions,
    /// touchpoints and feedback move in one transaction; the duplicate becomes a
    /// tombstone. Every moved row is recorded so `unmergeCustomers` can undo it.
    async fn merge_customers(&self, ctx: &Context<'_>, input: MergeCustomersInput) -> Result<MergePayload> {
        let (state, _) = context(ctx)?;
        let survivor = parse_id(&input.survivor_id, &["input", "survivorId"])?;
        let duplicate = parse_id(&input.duplicate_id, &["input", "duplicateId"])?;
        let evidence = Evidence {
            identity_kinds: input.identity_kinds.into_iter().map(Into::into).collect(),
            note: input.note.filter(|n| !n.trim().is_empty()),
        };
        let result = merge::merge(state.db(), actor(ctx)?, survivor, duplicate, evidence).await;
        MergePayload::from_result(split_user_errors(result).map_err(Into::into))
    }

    /// Undoes a merge: the rows it moved that are still on the survivor go back, and
    /// the duplicate is a live customer again.
    async fn unmerge_customers(&self, ctx: &Context<'_>, input: UnmergeCustomersInput) -> Result<MergePayload> {
        let (state, _) = context(ctx)?;
        let merge_id = parse_id(&input.merge_id, &["input", "mergeId"])?;
        let result = merge::unmerge(state.db(), actor(ctx)?, merge_id).await;
        MergePayload::from_result(split_user_errors(result).map_err(Into::into))
    }

    /// Erases a customer's personal data everywhere (GDPR art. 17), keeping anonymous
    /// rows so aggregates still count. Cannot be undone.
    async fn erase_customer(&self, ctx: &Context<'_>, input: EraseCustomerInput) -> Result<EraseCustomerPayload> {
        let (state, _) = context(ctx)?;
        let customer_id = parse_id(&input.id, &["input", "id"])?;
        let (report, user_errors) = split_user_errors(privacy::erase(state.db(), actor(ctx)?, customer_id).await)?;
        let r = report.clone().unwrap_or_default();
        Ok(EraseCustomerPayload {
            erased_customer_id: report.map(|_| input.id),
            customers: r.customers,
            identities: r.identities,
            interactions: r.interactions,
            conversations: r.conversations,
            touchpoints: r.touchpoints,
            feedback: r.feedback,
            user_errors,
        })
    }
}
