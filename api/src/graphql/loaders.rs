//! Batched loading of the customer 360: every nested list or object of a customer is
//! loaded for the whole page of customers at once, one statement per field and
//! argument set (see `customers::view`).
//!
//! Why not async-graphql's time-window `DataLoader`: it gathers keys for 1 ms and then
//! loads what it has, so under load (or in a debug build) a page of 50 customers can
//! be split into two batches — measured: 11 statements for 5 customers, 12 for 50 on
//! PostgreSQL. Here the batch is known up front: the resolver that produced the page
//! (the `customers` list, or `customer(id)` for a page of one) hands every `Customer`
//! the same [`Batch`], and the first nested resolver to ask for a field starts one
//! shared load for the whole batch that its siblings await. No timers, no extra
//! latency, and the statement count is a property of the query, not of timing.
//!
//! Where the selection is known before the customers are read (`customer(id)`, the
//! `customers` page), the resolver reads ahead everything it asks for
//! (`customers::prefetch`: one statement on PostgreSQL) and [`Loaders::prefill`]s the
//! memo, so the nested fields find their rows without a statement. A field the
//! read-ahead did not foresee simply loads on its own, as above.
//!
//! The memo lives for one request, so nothing read under one caller's rights can reach
//! another caller.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use entity::enums::Channel;
use entity::{conversation, customer, customer_identity, feedback, interaction, touchpoint};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::customers::prefetch::Prefetched;
use crate::customers::view::{self, ConversationSlice, CustomerMetrics, InteractionSlice, JourneyPosition};
use crate::error::{AppError, AppResult};

/// The topics of feedback and interactions wherever they appear (the 360, feeds,
/// subscriptions): async-graphql's `DataLoader`, since these rows come in no fixed
/// page; a statement per kind per tick, only when `topics` is selected.
pub struct TopicNames {
    pub db: DatabaseConnection,
}

/// A row whose topics are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaggedRow {
    Feedback(Uuid),
    Interaction(Uuid),
}

impl async_graphql::dataloader::Loader<TaggedRow> for TopicNames {
    type Value = Vec<(Uuid, String)>;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[TaggedRow]) -> Result<HashMap<TaggedRow, Self::Value>, Self::Error> {
        use crate::feedback::topics::{self, Tagged};
        let mut out = HashMap::new();
        for (kind, wrap) in [
            (Tagged::Feedback, TaggedRow::Feedback as fn(Uuid) -> TaggedRow),
            (Tagged::Interaction, TaggedRow::Interaction as fn(Uuid) -> TaggedRow),
        ] {
            let ids: Vec<Uuid> =
                keys.iter()
                    .filter_map(|k| match (k, kind) {
                        (TaggedRow::Feedback(id), Tagged::Feedback)
                        | (TaggedRow::Interaction(id), Tagged::Interaction) => Some(*id),
                        _ => None,
                    })
                    .collect();
            for (id, names) in topics::of(&self.db, kind, &ids).await.map_err(Arc::new)? {
                out.insert(wrap(id), names);
            }
        }
        Ok(out)
    }
}

/// The per-request topic loader.
pub fn topic_loader(db: DatabaseConnection) -> async_graphql::dataloader::DataLoader<TopicNames> {
    async_graphql::dataloader::DataLoader::new(TopicNames { db }, tokio::spawn)
}

/// Customers whose nested fields load together (one page of a list).
#[derive(Debug)]
pub struct Batch {
    key: u64,
    ids: Arc<[Uuid]>,
}

static NEXT_BATCH: AtomicU64 = AtomicU64::new(1);

impl Batch {
    pub fn of(ids: impl IntoIterator<Item = Uuid>) -> Arc<Batch> {
        Arc::new(Batch { key: NEXT_BATCH.fetch_add(1, Ordering::Relaxed), ids: ids.into_iter().collect() })
    }
}

/// Batches remembered per field before the memo starts afresh.
const MAX_SLOTS: usize = 1024;

type Loaded<V> = Result<Arc<HashMap<Uuid, V>>, Arc<AppError>>;
type Slot<V> = Shared<BoxFuture<'static, Loaded<V>>>;

/// One shared load per (batch, arguments).
struct Memo<P, V> {
    slots: Mutex<HashMap<(u64, P), Slot<V>>>,
}

impl<P: Eq + Hash + Clone, V: Send + Sync + 'static> Memo<P, V> {
    fn new() -> Self {
        Memo { slots: Mutex::new(HashMap::new()) }
    }

    async fn get<Fut>(&self, batch: &Batch, params: P, load: impl FnOnce(Arc<[Uuid]>, P) -> Fut) -> Loaded<V>
    where
        Fut: Future<Output = AppResult<HashMap<Uuid, V>>> + Send + 'static,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            // A subscription's loaders live as long as its socket: forget old batches
            // rather than grow without bound (at worst a sibling loads again).
            if slots.len() >= MAX_SLOTS {
                slots.clear();
            }
            slots
                .entry((batch.key, params.clone()))
                .or_insert_with(|| {
                    load(Arc::clone(&batch.ids), params).map(|r| r.map(Arc::new).map_err(Arc::new)).boxed().shared()
                })
                .clone()
        };
        slot.await
    }

    /// Remembers what was read ahead for (batch, arguments), so the field that asks for
    /// it finds it without a statement.
    fn put(&self, batch: &Batch, params: P, value: HashMap<Uuid, V>) {
        let ready: Loaded<V> = Ok(Arc::new(value));
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= MAX_SLOTS {
            slots.clear();
        }
        slots.insert((batch.key, params), futures::future::ready(ready).boxed().shared());
    }
}

fn pick<V: Clone + Default>(loaded: Loaded<V>, id: Uuid) -> Result<V, async_graphql::Error> {
    use async_graphql::ErrorExtensions;
    match loaded {
        Ok(map) => Ok(map.get(&id).cloned().unwrap_or_default()),
        Err(e) => Err(e.extend()),
    }
}

/// The batched loaders of one request.
pub struct Loaders {
    db: DatabaseConnection,
    /// The caller's channel limit (`None`: every channel), for the lists and figures
    /// without a channel argument: touchpoints, feedback, journeys, metrics.
    channels: Option<Vec<Channel>>,
    customers: Memo<(), customer::Model>,
    identities: Memo<(), Vec<customer_identity::Model>>,
    interactions: Memo<InteractionSlice, Vec<interaction::Model>>,
    conversations: Memo<ConversationSlice, Vec<conversation::Model>>,
    touchpoints: Memo<u64, Vec<touchpoint::Model>>,
    feedback: Memo<u64, Vec<feedback::Model>>,
    journeys: Memo<(), Vec<JourneyPosition>>,
    metrics: Memo<(), CustomerMetrics>,
}

/// Builds the loaders for one request of `principal`.
pub fn for_request(db: DatabaseConnection, principal: &crate::auth::Principal) -> Loaders {
    let channels = principal.channel_limit().map(|limit| limit.iter().copied().collect());
    Loaders {
        db,
        channels,
        customers: Memo::new(),
        identities: Memo::new(),
        interactions: Memo::new(),
        conversations: Memo::new(),
        touchpoints: Memo::new(),
        feedback: Memo::new(),
        journeys: Memo::new(),
        metrics: Memo::new(),
    }
}

type GqlResult<T> = Result<T, async_graphql::Error>;

impl Loaders {
    /// A customer of the batch by id (for objects that point at customers, e.g. a page of
    /// conversations); `None` if it does not exist.
    pub async fn customer(&self, batch: &Batch, id: Uuid) -> GqlResult<Option<customer::Model>> {
        let db = self.db.clone();
        let loaded = self.customers.get(batch, (), |ids, ()| async move { view::customers(&db, &ids).await }).await;
        match loaded {
            Ok(map) => Ok(map.get(&id).cloned()),
            Err(e) => Err(async_graphql::ErrorExtensions::extend(e.as_ref())),
        }
    }

    pub async fn identities(&self, batch: &Batch, id: Uuid) -> GqlResult<Vec<customer_identity::Model>> {
        let db = self.db.clone();
        pick(self.identities.get(batch, (), |ids, ()| async move { view::identities(&db, &ids).await }).await, id)
    }

    pub async fn interactions(
        &self,
        batch: &Batch,
        id: Uuid,
        slice: InteractionSlice,
    ) -> GqlResult<Vec<interaction::Model>> {
        let db = self.db.clone();
        let loaded =
            self.interactions.get(batch, slice, |ids, s| async move { view::interactions(&db, &ids, s).await }).await;
        pick(loaded, id)
    }

    pub async fn conversations(
        &self,
        batch: &Batch,
        id: Uuid,
        slice: ConversationSlice,
    ) -> GqlResult<Vec<conversation::Model>> {
        let db = self.db.clone();
        let loaded = self
            .conversations
            .get(batch, slice, |ids, s| async move { view::conversations(&db, &ids, &s).await })
            .await;
        pick(loaded, id)
    }

    pub async fn touchpoints(&self, batch: &Batch, id: Uuid, limit: u64) -> GqlResult<Vec<touchpoint::Model>> {
        let db = self.db.clone();
        let only = self.channels.clone();
        let loaded = self
            .touchpoints
            .get(batch, limit, |ids, n| async move { view::touchpoints(&db, &ids, n, only.as_deref()).await })
            .await;
        pick(loaded, id)
    }

    pub async fn feedback(&self, batch: &Batch, id: Uuid, limit: u64) -> GqlResult<Vec<feedback::Model>> {
        let db = self.db.clone();
        let only = self.channels.clone();
        let loaded = self
            .feedback
            .get(batch, limit, |ids, n| async move { view::feedback(&db, &ids, n, only.as_deref()).await })
            .await;
        pick(loaded, id)
    }

    pub async fn journeys(&self, batch: &Batch, id: Uuid) -> GqlResult<Vec<JourneyPosition>> {
        let db = self.db.clone();
        let only = self.channels.clone();
        let loaded = self
            .journeys
            .get(batch, (), |ids, ()| async move { view::journey_positions(&db, &ids, only.as_deref()).await })
            .await;
        pick(loaded, id)
    }

    /// Hands the lists read ahead for `batch` (see `customers::prefetch`) to the fields
    /// that will ask for them.
    pub fn prefill(&self, batch: &Batch, prefetched: Prefetched) {
        if let Some(rows) = prefetched.identities {
            self.identities.put(batch, (), rows);
        }
        for (slice, rows) in prefetched.interactions {
            self.interactions.put(batch, slice, rows);
        }
        for (slice, rows) in prefetched.conversations {
            self.conversations.put(batch, slice, rows);
        }
        for (limit, rows) in prefetched.touchpoints {
            self.touchpoints.put(batch, limit, rows);
        }
        for (limit, rows) in prefetched.feedback {
            self.feedback.put(batch, limit, rows);
        }
        if let Some(rows) = prefetched.journeys {
            self.journeys.put(batch, (), rows);
        }
    }

    pub async fn metrics(&self, batch: &Batch, id: Uuid) -> GqlResult<CustomerMetrics> {
        let db = self.db.clone();
        let only = self.channels.clone();
        pick(
            self.metrics.get(batch, (), |ids, ()| async move { view::metrics(&db, &ids, only.as_deref()).await }).await,
            id,
        )
    }
}
