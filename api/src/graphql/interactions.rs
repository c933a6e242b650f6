//! Ingest over GraphQL: one event (`recordInteraction`) or a batch
//! (`ingestInteractions`) answered per item.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::customer::IdentityValueInput;
use super::enums::{AuthorKind, Channel, Direction, Visibility};
use super::facts::Interaction;
use super::types::{
    IngestStatus, UserError, actor, context, convert_batch, id, int, item_answer, parse_id, split_user_errors,
};
use crate::auth::policy::READ_INTERACTIONS;
use crate::error::AppError;
use crate::interactions::ingest::{self, CustomerRef, NewInteraction, Recorded};

/// One event from a channel: a message, post, call or e-mail.
#[derive(InputObject, Clone)]
pub struct RecordInteractionInput {
    /// Channel it happened on.
    pub channel: Channel,
    /// From the customer (INBOUND) or from us (OUTBOUND).
    pub direction: Direction,
    /// Public post or private message.
    #[graphql(default_with = "Visibility::Private")]
    pub visibility: Visibility,
    /// Who wrote it; defaults to the customer (inbound) or an agent (outbound).
    pub author_kind: Option<AuthorKind>,
    /// Which of our accounts or addresses it reached.
    pub inbox: Option<String>,
    /// The text (at most 64 KiB).
    pub body: Option<String>,
    /// When it happened; defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The channel's id for the event. The same (channel, externalId) again is the
    /// same event: it is returned, not recorded twice.
    pub external_id: String,
    /// The customer, when known.
    pub customer_id: Option<ID>,
    /// Identities of the author, to find or create the customer.
    #[graphql(default)]
    pub identities: Vec<IdentityValueInput>,
    /// Name for a customer created from this event.
    pub customer_name: Option<String>,
}

impl RecordInteractionInput {
    /// The domain input; a malformed customer id is a user error at `path`.
    pub fn into_domain(self, path: &[&str]) -> Result<NewInteraction, AppError> {
        Ok(NewInteraction {
            channel: self.channel.into(),
            direction: self.direction.into(),
            visibility: self.visibility.into(),
            author_kind: self.author_kind.map(Into::into),
            inbox: self.inbox,
            body: self.body,
            occurred_at: self.occurred_at,
            external_id: self.external_id,
            customer: customer_ref(self.customer_id, self.identities, self.customer_name, path)?,
        })
    }
}

/// Who an ingested event is about, from the `customerId` / `identities` /
/// `customerName` trio every ingest input shares; a malformed id is a user error.
pub fn customer_ref(
    customer_id: Option<ID>,
    identities: Vec<IdentityValueInput>,
    display_name: Option<String>,
    path: &[&str],
) -> Result<CustomerRef, AppError> {
    let id = match &customer_id {
        Some(id) => Some(parse_id(id, &[path, &["customerId"]].concat())?),
        None => None,
    };
    Ok(CustomerRef { id, identities: identities.into_iter().map(Into::into).collect(), display_name })
}

/// Result of `recordInteraction`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RecordInteractionPayload {
    /// The stored interaction (the earlier one for a duplicate). Only for callers who
    /// may read interactions (`FORBIDDEN` otherwise): a replay answers with what another
    /// writer stored.
    #[graphql(guard = "READ_INTERACTIONS")]
    interaction: Option<Interaction>,
    /// True when the event was already known and nothing changed.
    duplicate: bool,
    /// Problems the caller can fix.
    user_errors: Vec<UserError>,
}

/// The answer for one item of a batch.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct IngestItemResult {
    /// Position of the item in the batch (0 first).
    index: i32,
    /// Outcome.
    status: IngestStatus,
    /// The stored interaction, unless rejected; only for callers who may read
    /// interactions (`FORBIDDEN` otherwise).
    #[graphql(guard = "READ_INTERACTIONS")]
    interaction: Option<Interaction>,
    /// Problems with the item the caller can fix.
    user_errors: Vec<UserError>,
    /// Code of any other failure (`CONFLICT`, `NOT_FOUND`, `INTERNAL`, …).
    error_code: Option<String>,
}

/// Result of `ingestInteractions`.
#[derive(SimpleObject)]
pub struct IngestInteractionsPayload {
    /// One answer per item, in order.
    results: Vec<IngestItemResult>,
    /// Items recorded now.
    created: i32,
    /// Items already known.
    duplicates: i32,
    /// Items refused.
    rejected: i32,
}

#[ComplexObject]
impl RecordInteractionPayload {
    /// Id of the stored interaction: all a caller who may write but not read gets.
    async fn interaction_id(&self) -> Option<ID> {
        self.interaction.as_ref().map(|i| id(i.0.id))
    }
}

#[ComplexObject]
impl IngestItemResult {
    /// Id of the stored interaction, unless rejected.
    async fn interaction_id(&self) -> Option<ID> {
        self.interaction.as_ref().map(|i| id(i.0.id))
    }
}

/// Turns a per-item result into its answer.
pub fn item_result(index: usize, result: Result<Recorded, AppError>) -> IngestItemResult {
    let (status, interaction, user_errors, error_code) = item_answer(result, Interaction);
    IngestItemResult { index: int(index), status, interaction, user_errors, error_code }
}

#[derive(Default)]
pub struct InteractionMutation;

#[Object]
impl InteractionMutation {
    /// Records one event: resolves the customer, threads it into a conversation
    /// (routing and SLA for a new one) and scores its sentiment. Idempotent on
    /// (channel, externalId).
    async fn record_interaction(
        &self,
        ctx: &Context<'_>,
        input: RecordInteractionInput,
    ) -> Result<RecordInteractionPayload> {
        let (state, _) = context(ctx)?;
        let result = match input.into_domain(&["input"]) {
            Ok(domain) => ingest::record(state.db(), actor(ctx)?, domain).await,
            Err(e) => Err(e),
        };
        let (recorded, user_errors) = split_user_errors(result)?;
        Ok(RecordInteractionPayload {
            duplicate: recorded.as_ref().is_some_and(|r| !r.created),
            interaction: recorded.map(|r| Interaction(r.row)),
            user_errors,
        })
    }

    /// Records up to 1,000 events, each on its own: one bad item never loses the others.
    async fn ingest_interactions(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<RecordInteractionInput>,
    ) -> Result<IngestInteractionsPayload> {
        let (state, _) = context(ctx)?;
        crate::batch::check_size(inputs.len())?;
        let inputs = convert_batch(inputs, RecordInteractionInput::into_domain);
        let answers = ingest::record_batch(state.db(), actor(ctx)?, inputs).await?;
        let results: Vec<IngestItemResult> = answers.into_iter().enumerate().map(|(i, r)| item_result(i, r)).collect();
        let count = |s: IngestStatus| int(results.iter().filter(|r| r.status == s).count());
        Ok(IngestInteractionsPayload {
            created: count(IngestStatus::Created),
            duplicates: count(IngestStatus::Duplicate),
            rejected: count(IngestStatus::Rejected),
            results,
        })
    }
}
