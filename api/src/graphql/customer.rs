//! The customer 360 over GraphQL: queries, the `Customer` type with everything known
//! about the person (each nested field through a DataLoader), and the write mutations.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, InputType, Json, Lookahead, MaybeUndefined, Name, Object, Result,
    SimpleObject, Value,
};
use chrono::{DateTime, Utc};
use entity::{customer, customer_identity};

use super::enums::{Channel, ConversationStatus, IdentityKind, NpsCategory};
use super::facts::{Conversation, Feedback, Interaction, JourneyPosition, Touchpoint, reads_pii, shows};
use super::loaders::{Batch, Loaders};
use super::types::{UserError, actor, capped, context, id, parse_id, split_user_errors, within_channel_limit};
use crate::auth::pii::{self, PersonalMatch};
use crate::auth::policy::{READ_CUSTOMERS, READ_INTERACTIONS};
use crate::customers::listing::{self, CustomerFilter as DomainFilter, Sort, SortField};
use crate::customers::prefetch::{self, Wanted, Which};
use crate::customers::view::{ConversationSlice, InteractionSlice};
use crate::customers::{self, CustomerPatch, IdentityInput, NewCustomer, service};
use crate::error::AppError;
use crate::pagination::PageRequest;

/// Nested lists default to 20 rows and never return more than this.
const MAX_NESTED: i32 = 100;

pub(super) fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders> {
    ctx.data_opt::<Loaders>().ok_or_else(|| AppError::internal(anyhow::anyhow!("loaders missing from request")).into())
}

/// The channels a nested list may show: the one asked for, within the caller's
/// token limit (sorted; empty when the two do not meet); `None`: every channel.
fn nested_channels(
    ctx: &Context<'_>,
    requested: Option<Vec<entity::enums::Channel>>,
) -> Result<Option<Vec<entity::enums::Channel>>> {
    let (_, principal) = context(ctx)?;
    Ok(within_channel_limit(principal, requested).map(|mut c| {
        c.sort();
        c.dedup();
        c
    }))
}

fn nested_limit(first: i32) -> Result<u64> {
    if !(0..=MAX_NESTED).contains(&first) {
        return Err(AppError::invalid(&["first"], "OUT_OF_RANGE", format!("must be between 0 and {MAX_NESTED}")).into());
    }
    Ok(u64::try_from(first).unwrap_or(0))
}

/// The page of a nested list when `first` is not given.
const NESTED_DEFAULT: i32 = 20;

/// The interactions a nested `interactions` field shows (one more row than the page, to
/// learn whether another page follows).
fn interaction_slice(
    ctx: &Context<'_>,
    channel: Option<Channel>,
    first: i32,
    after: Option<&str>,
) -> Result<InteractionSlice> {
    let channels = nested_channels(ctx, channel.map(|c| vec![c.into()]))?;
    let limit = nested_limit(first)?;
    let before = after.map(decode_interaction_cursor).transpose()?;
    Ok(InteractionSlice { channels, limit: limit + 1, before })
}

/// The conversations a nested `conversations` field shows.
fn conversation_slice(
    ctx: &Context<'_>,
    status: Option<Vec<ConversationStatus>>,
    first: i32,
) -> Result<ConversationSlice> {
    let channels = nested_channels(ctx, None)?;
    let limit = nested_limit(first)?;
    let statuses = status.map(|s| {
        let mut s: Vec<entity::enums::ConversationStatus> = s.into_iter().map(Into::into).collect();
        s.sort();
        s.dedup();
        s
    });
    Ok(ConversationSlice { statuses, channels, limit })
}

/// What the selections of customers (`customers`: each a selection of `Customer`) ask
/// of their lists, read with the very rules the fields apply to their arguments. A
/// field whose arguments do not read (it will report that itself) or that the caller
/// may not see is left out: it then loads, or fails, on its own.
fn wanted(ctx: &Context<'_>, customers: &[Lookahead<'_>]) -> Result<Wanted> {
    let (_, principal) = context(ctx)?;
    let reads_interactions = READ_INTERACTIONS.check(principal).is_ok();
    let channels = principal.channel_limit().map(|limit| limit.iter().copied().collect());
    let mut wanted = Wanted { channels, ..Wanted::default() };
    for customer in customers {
        wanted.identities |= customer.field("identities").exists();
        wanted.journeys |= customer.field("journeys").exists();
        for (name, limits) in [("touchpoints", &mut wanted.touchpoints), ("feedback", &mut wanted.feedback)] {
            for field in customer.field(name).selection_fields() {
                let Some(args) = field.arguments().ok() else { continue };
                if let Some(limit) = arg_or(&args, "first", NESTED_DEFAULT).and_then(|n| nested_limit(n).ok()) {
                    add(limits, limit);
                }
            }
        }
        if !reads_interactions {
            continue;
        }
        for field in customer.field("interactions").selection_fields() {
            let Some(args) = field.arguments().ok() else { continue };
            let (Some(channel), Some(first), Some(after)) =
                (arg(&args, "channel"), arg_or(&args, "first", NESTED_DEFAULT), arg::<Option<String>>(&args, "after"))
            else {
                continue;
            };
            if let Ok(slice) = interaction_slice(ctx, channel, first, after.as_deref()) {
                add(&mut wanted.interactions, slice);
            }
        }
        for field in customer.field("conversations").selection_fields() {
            let Some(args) = field.arguments().ok() else { continue };
            let (Some(status), Some(first)) = (arg(&args, "status"), arg_or(&args, "first", NESTED_DEFAULT)) else {
                continue;
            };
            if let Ok(slice) = conversation_slice(ctx, status, first) {
                add(&mut wanted.conversations, slice);
            }
        }
    }
    Ok(wanted)
}

/// An argument as its field reads it (`None`: it does not read).
fn arg<T: InputType>(args: &[(Name, Value)], name: &str) -> Option<T> {
    T::parse(args.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v.clone())).ok()
}

/// An argument with a default.
fn arg_or<T: InputType>(args: &[(Name, Value)], name: &str, default: T) -> Option<T> {
    match args.iter().find(|(n, _)| n.as_str() == name) {
        Some((_, v)) => T::parse(Some(v.clone())).ok(),
        None => Some(default),
    }
}

fn add<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// A person we serve, seen across every channel.
pub struct Customer {
    model: customer::Model,
    /// The page this customer came in: nested fields load for all of it at once.
    batch: Arc<Batch>,
}

impl Customer {
    /// A customer on its own (a page of one).
    pub fn single(model: customer::Model) -> Customer {
        Customer { batch: Batch::of([model.id]), model }
    }

    /// A customer loaded as part of `batch`.
    pub fn in_batch(model: customer::Model, batch: Arc<Batch>) -> Customer {
        Customer { model, batch }
    }

    /// A page of customers whose nested fields load together.
    pub fn page(models: Vec<customer::Model>) -> Vec<Customer> {
        let batch = Batch::of(models.iter().map(|m| m.id));
        models.into_iter().map(|model| Customer { model, batch: Arc::clone(&batch) }).collect()
    }
}

#[Object]
impl Customer {
    /// Stable id (UUID v7).
    async fn id(&self) -> ID {
        id(self.model.id)
    }
    /// Name to show. Masked (`A*** L***`) without the right to personal data.
    async fn display_name(&self, ctx: &Context<'_>) -> Option<String> {
        let name = self.model.display_name.as_deref()?;
        Some(if shows(ctx, "Customer", "displayName") { name.to_owned() } else { pii::mask_name(name) })
    }
    /// Segment or tier, e.g. `consumer`, `premium`, `business`.
    async fn segment(&self) -> Option<&str> {
        self.model.segment.as_deref()
    }
    /// Free attributes (JSON object). Null without the right to personal data.
    async fn attributes(&self, ctx: &Context<'_>) -> Option<Json<serde_json::Value>> {
        shows(ctx, "Customer", "attributes").then(|| Json(self.model.attributes.clone()))
    }
    /// True when personal fields of this response are masked for the caller.
    async fn pii_masked(&self, ctx: &Context<'_>) -> bool {
        !reads_pii(ctx)
    }
    /// When the customer was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    /// When the profile last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    /// Latest contact with us on any channel (for a channel-limited token: on its
    /// channels).
    async fn last_contact_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        if context(ctx)?.1.channel_limit().is_none() {
            return Ok(self.model.last_contact_at);
        }
        Ok(loaders(ctx)?.metrics(&self.batch, self.model.id).await?.last_interaction_at)
    }
    /// Set when this customer was merged into another: this record is a tombstone and
    /// the survivor holds everything.
    async fn merged_into_id(&self) -> Option<ID> {
        self.model.merged_into_id.map(id)
    }
    /// Set when the customer's personal data was erased (GDPR art. 17).
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.model.erased_at
    }
    /// Every identity of the customer, oldest first.
    async fn identities(&self, ctx: &Context<'_>) -> Result<Vec<CustomerIdentity>> {
        let rows = loaders(ctx)?.identities(&self.batch, self.model.id).await?;
        Ok(rows.into_iter().map(CustomerIdentity).collect())
    }
    /// Interactions on every channel, newest first.
    #[graphql(guard = "READ_INTERACTIONS", complexity = "super::cost::list(first, child_complexity)")]
    async fn interactions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this channel.")] channel: Option<Channel>,
        #[graphql(desc = "Page size (at most 100).", default_with = "NESTED_DEFAULT")] first: i32,
        #[graphql(desc = "Cursor of the last interaction of the previous page.")] after: Option<String>,
    ) -> Result<Connection<String, Interaction, EmptyFields, EmptyFields>> {
        let slice = interaction_slice(ctx, channel, first, after.as_deref())?;
        let limit = slice.limit - 1;
        let mut rows = loaders(ctx)?.interactions(&self.batch, self.model.id, slice).await?;
        let has_next = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter().map(|r| Edge::new(encode_interaction_cursor(r.occurred_at, r.id), Interaction(r))),
        );
        Ok(connection)
    }
    /// Conversations, most recently active first.
    #[graphql(guard = "READ_INTERACTIONS", complexity = "super::cost::list(first, child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these statuses.")] status: Option<Vec<ConversationStatus>>,
        #[graphql(desc = "At most this many (at most 100).", default_with = "NESTED_DEFAULT")] first: i32,
    ) -> Result<Vec<Conversation>> {
        let slice = conversation_slice(ctx, status, first)?;
        let rows = loaders(ctx)?.conversations(&self.batch, self.model.id, slice).await?;
        Ok(rows.into_iter().map(|c| Conversation::in_batch(c, Arc::clone(&self.batch))).collect())
    }
    /// Journey touchpoints, newest first.
    #[graphql(complexity = "super::cost::list(first, child_complexity)")]
    async fn touchpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (at most 100).", default_with = "NESTED_DEFAULT")] first: i32,
    ) -> Result<Vec<Touchpoint>> {
        let limit = nested_limit(first)?;
        let rows = loaders(ctx)?.touchpoints(&self.batch, self.model.id, limit).await?;
        Ok(rows.into_iter().map(Touchpoint).collect())
    }
    /// Survey answers and unsolicited feedback, newest first.
    #[graphql(complexity = "super::cost::list(first, child_complexity)")]
    async fn feedback(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (at most 100).", default_with = "NESTED_DEFAULT")] first: i32,
    ) -> Result<Vec<Feedback>> {
        let limit = nested_limit(first)?;
        let rows = loaders(ctx)?.feedback(&self.batch, self.model.id, limit).await?;
        Ok(rows.into_iter().map(Feedback).collect())
    }
    /// The customer's current stage in every journey they have touched.
    async fn journeys(&self, ctx: &Context<'_>) -> Result<Vec<JourneyPosition>> {
        let rows = loaders(ctx)?.journeys(&self.batch, self.model.id).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
    /// Figures about the customer, computed in the database.
    async fn metrics(&self, ctx: &Context<'_>) -> Result<CustomerMetrics> {
        let m = loaders(ctx)?.metrics(&self.batch, self.model.id).await?;
        // The profile's latest contact is on any channel; a limited token's figures
        // are its channels' only.
        let any_channel = context(ctx)?.1.channel_limit().is_none();
        Ok(CustomerMetrics { last_contact_at: self.model.last_contact_at.filter(|_| any_channel), inner: m })
    }
}

fn encode_interaction_cursor(at: DateTime<Utc>, row: uuid::Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{row}", at.to_rfc3339()))
}

fn decode_interaction_cursor(s: &str) -> Result<(DateTime<Utc>, uuid::Uuid), AppError> {
    use base64::Engine;
    let bad = || AppError::invalid(&["after"], "INVALID_CURSOR", "is not a cursor of this list");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, row) = raw.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc);
    Ok((at, uuid::Uuid::parse_str(row).map_err(|_| bad())?))
}

/// One identity of a customer.
pub struct CustomerIdentity(pub customer_identity::Model);

#[Object]
impl CustomerIdentity {
    /// Stable id (give it to `unlinkIdentity`).
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The kind of identity.
    async fn kind(&self) -> IdentityKind {
        self.0.kind.into()
    }
    /// The normalised value. Masked without the right to personal data.
    async fn value(&self, ctx: &Context<'_>) -> String {
        if shows(ctx, "CustomerIdentity", "value") {
            self.0.value.clone()
        } else {
            pii::mask_identity(self.0.kind, &self.0.value)
        }
    }
    /// Whether the customer proved they own it.
    async fn verified(&self) -> bool {
        self.0.verified
    }
    /// When it was attached.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Interactions on one channel.
#[derive(SimpleObject)]
pub struct ChannelCount {
    /// The channel.
    channel: Channel,
    /// Lifetime number of interactions on it.
    count: i64,
}

/// The latest NPS answer.
#[derive(SimpleObject)]
pub struct NpsAnswer {
    /// Score 0–10.
    score: i16,
    /// Promoter, passive or detractor.
    category: NpsCategory,
    /// When it was given.
    answered_at: DateTime<Utc>,
}

/// Figures about one customer.
pub struct CustomerMetrics {
    last_contact_at: Option<DateTime<Utc>>,
    inner: customers::view::CustomerMetrics,
}

#[Object]
impl CustomerMetrics {
    /// Latest contact on any channel (as recorded on the profile).
    async fn last_contact_at(&self) -> Option<DateTime<Utc>> {
        self.last_contact_at.max(self.inner.last_interaction_at)
    }
    /// Every channel the customer has used, most used first.
    async fn channels_used(&self) -> Vec<Channel> {
        self.inner.interactions_by_channel.iter().map(|(c, _)| (*c).into()).collect()
    }
    /// Lifetime interaction count per channel, most used first.
    async fn interactions_by_channel(&self) -> Vec<ChannelCount> {
        self.inner
            .interactions_by_channel
            .iter()
            .map(|(c, n)| ChannelCount { channel: (*c).into(), count: *n })
            .collect()
    }
    /// Lifetime interaction count, all channels.
    async fn interaction_count(&self) -> i64 {
        self.inner.interactions_by_channel.iter().map(|(_, n)| n).sum()
    }
    /// Conversations open or pending.
    async fn open_conversations(&self) -> i64 {
        self.inner.open_conversations
    }
    /// The latest NPS answer and its category.
    async fn latest_nps(&self) -> Option<NpsAnswer> {
        self.inner.latest_nps.map(|(score, at)| NpsAnswer {
            score,
            category: listing::NpsCategory::of(score).into(),
            answered_at: at,
        })
    }
    /// Mean CSAT score (1–5) over all answers.
    async fn csat_average(&self) -> Option<f64> {
        self.inner.csat_average
    }
    /// Number of CSAT answers behind the mean.
    async fn csat_responses(&self) -> i64 {
        self.inner.csat_responses
    }
    /// Mean sentiment in [-1, 1] of interactions and feedback of the last 90 days.
    async fn recent_sentiment(&self) -> Option<f64> {
        self.inner.recent_sentiment
    }
    /// Number of scored items behind the mean.
    async fn recent_sentiment_samples(&self) -> i64 {
        self.inner.recent_sentiment_samples
    }
}

/// Which customers to list. Every condition given must hold.
#[derive(InputObject, Default)]
pub struct CustomerFilter {
    /// Prefix of the name or of any identity value (e-mail, phone, handle), case-insensitive.
    search: Option<String>,
    /// Customers in one of these segments.
    segments: Option<Vec<String>>,
    /// Customers who used one of these channels.
    channels: Option<Vec<Channel>>,
    /// Customers whose latest NPS answer is in this category.
    nps_category: Option<NpsCategory>,
    /// Customers with (true) or without (false) an open or pending conversation.
    has_open_conversation: Option<bool>,
    /// Last contact at or after this time.
    last_contact_from: Option<DateTime<Utc>>,
    /// Last contact before this time.
    last_contact_to: Option<DateTime<Utc>>,
}

/// Fields customers can be sorted by.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::customers::listing::SortField")]
pub enum CustomerSortField {
    /// Latest contact; never contacted customers last.
    LastContact,
    /// Creation time.
    CreatedAt,
    /// Display name; customers without one last.
    Name,
}

/// Sort direction.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::customers::listing::SortDirection")]
pub enum SortDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// Sort order of the customer list.
#[derive(InputObject)]
pub struct CustomerOrder {
    /// Field to sort by.
    field: CustomerSortField,
    /// Direction.
    #[graphql(default_with = "SortDirection::Desc")]
    direction: SortDirection,
}

/// Extra fields of the customer list.
#[derive(SimpleObject)]
pub struct CustomerConnectionFields {
    /// Number of customers matching the filter (counted only when asked for).
    total_count: Option<u64>,
}

#[derive(Default)]
pub struct CustomerQuery;

#[Object]
impl CustomerQuery {
    /// One customer by id. The id of a merged customer keeps working: it redirects to
    /// the survivor (whose `id` then differs from the one asked for); with
    /// `followMerges: false` the tombstone itself comes back, `mergedIntoId` set.
    async fn customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default = true)] follow_merges: bool,
    ) -> Result<Option<Customer>> {
        let (state, _) = context(ctx)?;
        let uuid = parse_id(&id, &["id"])?;
        let wanted = wanted(ctx, &[ctx.look_ahead()])?;
        let mut read = prefetch::prefetch(state.db(), Which::One { id: uuid, follow_merges }, &wanted).await?;
        let Some(model) = read.customer.take() else { return Ok(None) };
        let customer = Customer::single(model);
        loaders(ctx)?.prefill(&customer.batch, read);
        Ok(Some(customer))
    }

    /// The customer holding an identity; the value is normalised first, so
    /// `@AcmeFan` finds `acmefan`.
    async fn customer_by_identity(
        &self,
        ctx: &Context<'_>,
        kind: IdentityKind,
        value: String,
    ) -> Result<Option<Customer>> {
        let (state, principal) = context(ctx)?;
        pii::may_match(principal, PersonalMatch::IdentityLookup)?;
        Ok(service::find_by_identity(state.db(), kind.into(), &value).await?.map(Customer::single))
    }

    /// Customers, filtered and sorted, as a Relay connection (page size at most 100).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "super::cost::page(first, last, child_complexity)")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        filter: Option<CustomerFilter>,
        #[graphql(desc = "Defaults to latest contact, newest first.")] order_by: Option<CustomerOrder>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Customer, CustomerConnectionFields, EmptyFields>> {
        let (state, principal) = context(ctx)?;
        let size = |v: Option<i32>, field: &str| -> Result<Option<u64>, AppError> {
            v.map(|n| u64::try_from(n).map_err(|_| AppError::invalid(&[field], "OUT_OF_RANGE", "must not be negative")))
                .transpose()
        };
        let page = PageRequest { first: size(first, "first")?, after, last: size(last, "last")?, before };
        let filter = filter.unwrap_or_default();
        if filter.search.as_deref().is_some_and(|s| !s.trim().is_empty()) {
            pii::may_match(principal, PersonalMatch::Search)?;
        }
        if order_by.as_ref().is_some_and(|o| SortField::from(o.field) == SortField::Name) {
            pii::may_match(principal, PersonalMatch::OrderByName)?;
        }
        if principal.channel_limit().is_some() {
            // Figures over every channel would tell a limited token about the others.
            let across = [
                ("npsCategory", filter.nps_category.is_some()),
                ("hasOpenConversation", filter.has_open_conversation.is_some()),
                ("lastContactFrom", filter.last_contact_from.is_some()),
                ("lastContactTo", filter.last_contact_to.is_some()),
            ];
            if let Some((name, _)) = across.iter().find(|(_, used)| *used) {
                return Err(AppError::forbidden(format!(
                    "`filter.{name}` matches on every channel; this token is limited to some"
                ))
                .into());
            }
        }
        let requested =
            capped(filter.channels, &["filter", "channels"])?.map(|c| c.into_iter().map(Into::into).collect());
        let filter = DomainFilter {
            search: filter.search,
            segments: capped(filter.segments, &["filter", "segments"])?,
            // A limited token's channel filter stays within its channels.
            channels: requested.map(|r| within_channel_limit(principal, Some(r)).unwrap_or_default()),
            nps_category: filter.nps_category.map(Into::into),
            has_open_conversation: filter.has_open_conversation,
            last_contact_from: filter.last_contact_from,
            last_contact_to: filter.last_contact_to,
        };
        let sort = order_by.map_or_else(Sort::default, |o| Sort {
            field: SortField::from(o.field),
            direction: listing::SortDirection::from(o.direction),
        });
        let result = listing::list(state.db(), &filter, sort, &page).await?;
        let total_count = if ctx.look_ahead().field("totalCount").exists() {
            Some(listing::count(state.db(), &filter).await?)
        } else {
            None
        };
        let mut connection = Connection::with_additional_fields(
            result.has_previous_page,
            result.has_next_page,
            CustomerConnectionFields { total_count },
        );
        let (cursors, rows): (Vec<_>, Vec<_>) = result.rows.into_iter().unzip();
        let customers = Customer::page(rows);
        let look = ctx.look_ahead();
        let wanted = wanted(ctx, &[look.field("edges").field("node"), look.field("nodes")])?;
        if let Some(first) = customers.first()
            && wanted != Wanted::default()
        {
            let ids: Vec<uuid::Uuid> = customers.iter().map(|c| c.model.id).collect();
            let read = prefetch::prefetch(state.db(), Which::Page(&ids), &wanted).await?;
            loaders(ctx)?.prefill(&first.batch, read);
        }
        connection
            .edges
            .extend(cursors.into_iter().zip(customers).map(|(c, customer)| Edge::new(c.encode(), customer)));
        Ok(connection)
    }
}

/// An identity to attach or look for.
#[derive(InputObject, Clone)]
pub struct IdentityValueInput {
    /// Kind of identity.
    pub kind: IdentityKind,
    /// Value as the channel gives it; normalised on the way in.
    pub value: String,
}

impl From<IdentityValueInput> for IdentityInput {
    fn from(i: IdentityValueInput) -> Self {
        IdentityInput { kind: i.kind.into(), value: i.value }
    }
}

/// A new customer.
#[derive(InputObject)]
pub struct CreateCustomerInput {
    /// Name to show.
    display_name: Option<String>,
    /// Segment or tier.
    segment: Option<String>,
    /// Free attributes (a JSON object, at most 16 KiB).
    attributes: Option<Json<serde_json::Value>>,
    /// Identities to attach (at most 20); each must be free.
    #[graphql(default)]
    identities: Vec<IdentityValueInput>,
}

/// A partial update: absent fields stay as they are, `null` clears a field.
#[derive(InputObject)]
pub struct UpdateCustomerInput {
    /// The customer.
    id: ID,
    /// New name, or null to clear.
    display_name: MaybeUndefined<String>,
    /// New segment, or null to clear.
    segment: MaybeUndefined<String>,
    /// New free attributes (replaces the object).
    attributes: Option<Json<serde_json::Value>>,
}

/// Result of a mutation that changes one customer. A write answers with what the
/// writer may read: the customer itself only for callers who may read customers
/// (`FORBIDDEN` otherwise; `customerId` for everyone), since it holds more than was
/// written (identities, history, metrics).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CustomerPayload {
    /// The customer after the change; null if nothing changed.
    #[graphql(guard = "READ_CUSTOMERS")]
    customer: Option<Customer>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

/// An identity to attach to a customer.
#[derive(InputObject)]
pub struct LinkIdentityInput {
    /// The customer.
    customer_id: ID,
    /// The identity.
    identity: IdentityValueInput,
}

/// An identity to detach.
#[derive(InputObject)]
pub struct UnlinkIdentityInput {
    /// Id of the identity (`Customer.identities.id`).
    identity_id: ID,
}

/// Result of `linkIdentity` / `unlinkIdentity`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct IdentityPayload {
    /// The identity linked or unlinked.
    identity: Option<CustomerIdentity>,
    /// Its customer (for callers who may read customers).
    #[graphql(guard = "READ_CUSTOMERS")]
    customer: Option<Customer>,
    /// Problems the user can fix (`CONFLICT` when the identity belongs to someone else).
    user_errors: Vec<UserError>,
}

/// A contact to resolve to a customer.
#[derive(InputObject)]
pub struct ResolveCustomerInput {
    /// Every identity known for the contact, most trusted first: the owner of the
    /// first one somebody holds wins.
    identities: Vec<IdentityValueInput>,
    /// Name for a new customer (ignored when one is found).
    display_name: Option<String>,
    /// Segment for a new customer.
    segment: Option<String>,
}

/// A given identity that belongs to a different customer than the one resolved.
#[derive(SimpleObject)]
pub struct PossibleDuplicate {
    /// Kind of the identity.
    kind: IdentityKind,
    /// The customer holding it: a candidate for `mergeCustomers`.
    customer_id: ID,
}

/// Result of `resolveCustomer`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ResolveCustomerPayload {
    /// The customer the contact resolved to (for callers who may read customers: an
    /// existing customer's profile and history are not the writer's to read).
    #[graphql(guard = "READ_CUSTOMERS")]
    customer: Option<Customer>,
    /// True when a new customer was created.
    created: bool,
    /// Identities attached by this call.
    linked_identities: Vec<CustomerIdentity>,
    /// Identities that belong to other customers (left where they are).
    possible_duplicates: Vec<PossibleDuplicate>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

#[ComplexObject]
impl CustomerPayload {
    /// Id of the customer: all a caller who may write but not read gets.
    async fn customer_id(&self) -> Option<ID> {
        self.customer.as_ref().map(|c| id(c.model.id))
    }
}

#[ComplexObject]
impl IdentityPayload {
    /// Id of the identity's customer.
    async fn customer_id(&self) -> Option<ID> {
        self.customer.as_ref().map(|c| id(c.model.id))
    }
}

#[ComplexObject]
impl ResolveCustomerPayload {
    /// Id of the customer the contact resolved to.
    async fn customer_id(&self) -> Option<ID> {
        self.customer.as_ref().map(|c| id(c.model.id))
    }
}

#[derive(Default)]
pub struct CustomerMutation;

#[Object]
impl CustomerMutation {
    /// Creates a customer with its identities.
    async fn create_customer(&self, ctx: &Context<'_>, input: CreateCustomerInput) -> Result<CustomerPayload> {
        let (state, _) = context(ctx)?;
        let new = NewCustomer {
            display_name: input.display_name,
            segment: input.segment,
            attributes: input.attributes.map(|j| j.0),
            identities: input.identities.into_iter().map(Into::into).collect(),
        };
        let (customer, user_errors) = split_user_errors(service::create(state.db(), actor(ctx)?, new).await)?;
        Ok(CustomerPayload { customer: customer.map(Customer::single), user_errors })
    }

    /// Changes profile fields of a customer.
    async fn update_customer(&self, ctx: &Context<'_>, input: UpdateCustomerInput) -> Result<CustomerPayload> {
        let (state, _) = context(ctx)?;
        let customer_id = parse_id(&input.id, &["input", "id"])?;
        let patch = CustomerPatch {
            display_name: maybe(input.display_name),
            segment: maybe(input.segment),
            attributes: input.attributes.map(|j| j.0),
        };
        let result = service::update(state.db(), actor(ctx)?, customer_id, patch).await;
        let (customer, user_errors) = split_user_errors(result)?;
        Ok(CustomerPayload { customer: customer.map(Customer::single), user_errors })
    }

    /// Attaches an identity to a customer. One that already belongs to someone else is
    /// a `CONFLICT` user error naming the owner (when the caller may read customers).
    async fn link_identity(&self, ctx: &Context<'_>, input: LinkIdentityInput) -> Result<IdentityPayload> {
        let (state, _) = context(ctx)?;
        let customer_id = parse_id(&input.customer_id, &["input", "customerId"])?;
        let result = service::link_identity(state.db(), actor(ctx)?, customer_id, input.identity.into()).await;
        let (identity, user_errors) = split_user_errors(result)?;
        let customer = match &identity {
            Some(_) => service::find(state.db(), customer_id).await?.map(Customer::single),
            None => None,
        };
        Ok(IdentityPayload { identity: identity.map(CustomerIdentity), customer, user_errors })
    }

    /// Detaches an identity from its customer.
    async fn unlink_identity(&self, ctx: &Context<'_>, input: UnlinkIdentityInput) -> Result<IdentityPayload> {
        let (state, _) = context(ctx)?;
        let identity_id = parse_id(&input.identity_id, &["input", "identityId"])?;
        let result = service::unlink_identity(state.db(), actor(ctx)?, identity_id).await;
        let (identity, user_errors) = split_user_errors(result)?;
        let customer = match &identity {
            Some(i) => service::find(state.db(), i.customer_id).await?.map(Customer::single),
            None => None,
        };
        Ok(IdentityPayload { identity: identity.map(CustomerIdentity), customer, user_errors })
    }

    /// Finds the customer for a contact by any identity, attaches the identities nobody
    /// holds yet, or creates the customer. Safe to call concurrently with the same new
    /// identity: exactly one customer is created.
    async fn resolve_customer(&self, ctx: &Context<'_>, input: ResolveCustomerInput) -> Result<ResolveCustomerPayload> {
        let (state, _) = context(ctx)?;
        let identities: Vec<IdentityInput> = input.identities.into_iter().map(Into::into).collect();
        let profile = NewCustomer { display_name: input.display_name, segment: input.segment, ..Default::default() };
        let result = service::resolve(state.db(), actor(ctx)?, &identities, profile).await;
        let (resolution, user_errors) = split_user_errors(result)?;
        Ok(match resolution {
            Some(r) => ResolveCustomerPayload {
                customer: Some(Customer::single(r.customer)),
                created: r.created,
                linked_identities: r.linked.into_iter().map(CustomerIdentity).collect(),
                possible_duplicates: r
                    .other_owners
                    .into_iter()
                    .map(|(identity, owner)| PossibleDuplicate { kind: identity.kind.into(), customer_id: id(owner) })
                    .collect(),
                user_errors,
            },
            None => ResolveCustomerPayload {
                customer: None,
                created: false,
                linked_identities: Vec::new(),
                possible_duplicates: Vec::new(),
                user_errors,
            },
        })
    }
}

fn maybe(v: MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(Some(s)),
    }
}
