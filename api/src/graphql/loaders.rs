//! DataLoaders: every nested list or object of the customer 360 is loaded through
//! here, batched per request, one statement per batch (see `customers::view`).
//!
//! Loaders are made per request, so nothing cached outlives the request that loaded it
//! and no row read under one caller's rights can reach another caller.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::enums::ConversationStatus;
use entity::{conversation, customer, customer_identity, feedback, interaction, touchpoint};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::customers::view::{self, CustomerMetrics, InteractionSlice, JourneyPosition};
use crate::error::AppError;

/// The loaders of one request.
pub type Loaders = DataLoader<ViewLoader>;

/// Builds the loaders for one request.
pub fn for_request(db: DatabaseConnection) -> Loaders {
    DataLoader::new(ViewLoader { db }, tokio::spawn)
}

/// Loads slices of the customer 360 for batches of customers.
pub struct ViewLoader {
    db: DatabaseConnection,
}

/// Loader errors are shared between every key of the failed batch.
pub type LoadError = Arc<AppError>;

/// A customer by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomerById(pub Uuid);
/// The identities of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentitiesOf(pub Uuid);
/// The newest interactions of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InteractionsOf(pub Uuid, pub InteractionSlice);
/// The conversations of a customer, by status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationsOf(pub Uuid, pub Option<Vec<ConversationStatus>>, pub u64);
/// The newest touchpoints of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TouchpointsOf(pub Uuid, pub u64);
/// The newest feedback of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeedbackOf(pub Uuid, pub u64);
/// A customer's current stage in each journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JourneysOf(pub Uuid);
/// A customer's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetricsOf(pub Uuid);

/// Groups keys that share their parameters, so each group is one statement.
fn by_params<K: Clone, P: Eq + Hash + Clone>(keys: &[K], split: impl Fn(&K) -> (Uuid, P)) -> HashMap<P, Vec<Uuid>> {
    let mut groups: HashMap<P, Vec<Uuid>> = HashMap::new();
    for key in keys {
        let (id, params) = split(key);
        groups.entry(params).or_default().push(id);
    }
    groups
}

fn take<V: Default>(map: &mut HashMap<Uuid, V>, id: Uuid) -> V {
    map.remove(&id).unwrap_or_default()
}

impl Loader<CustomerById> for ViewLoader {
    type Value = customer::Model;
    type Error = LoadError;

    async fn load(&self, keys: &[CustomerById]) -> Result<HashMap<CustomerById, customer::Model>, LoadError> {
        let rows = customer::Entity::find()
            .filter(customer::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|r| (CustomerById(r.id), r)).collect())
    }
}

impl Loader<IdentitiesOf> for ViewLoader {
    type Value = Vec<customer_identity::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[IdentitiesOf]) -> Result<HashMap<IdentitiesOf, Self::Value>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut found = view::identities(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(keys.iter().map(|k| (*k, take(&mut found, k.0))).collect())
    }
}

impl Loader<InteractionsOf> for ViewLoader {
    type Value = Vec<interaction::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[InteractionsOf]) -> Result<HashMap<InteractionsOf, Self::Value>, LoadError> {
        let mut out = HashMap::new();
        for (slice, ids) in by_params(keys, |k| (k.0, k.1)) {
            let mut found = view::interactions(&self.db, &ids, slice).await.map_err(Arc::new)?;
            out.extend(
                ids.into_iter()
                    .map(|id| (InteractionsOf(id, slice), take(&mut found, id))),
            );
        }
        Ok(out)
    }
}

impl Loader<ConversationsOf> for ViewLoader {
    type Value = Vec<conversation::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[ConversationsOf]) -> Result<HashMap<ConversationsOf, Self::Value>, LoadError> {
        let mut out = HashMap::new();
        for ((statuses, limit), ids) in by_params(keys, |k| (k.0, (k.1.clone(), k.2))) {
            let mut found = view::conversations(&self.db, &ids, statuses.as_deref(), limit)
                .await
                .map_err(Arc::new)?;
            for id in ids {
                out.insert(ConversationsOf(id, statuses.clone(), limit), take(&mut found, id));
            }
        }
        Ok(out)
    }
}

impl Loader<TouchpointsOf> for ViewLoader {
    type Value = Vec<touchpoint::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[TouchpointsOf]) -> Result<HashMap<TouchpointsOf, Self::Value>, LoadError> {
        let mut out = HashMap::new();
        for (limit, ids) in by_params(keys, |k| (k.0, k.1)) {
            let mut found = view::touchpoints(&self.db, &ids, limit).await.map_err(Arc::new)?;
            out.extend(
                ids.into_iter()
                    .map(|id| (TouchpointsOf(id, limit), take(&mut found, id))),
            );
        }
        Ok(out)
    }
}

impl Loader<FeedbackOf> for ViewLoader {
    type Value = Vec<feedback::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[FeedbackOf]) -> Result<HashMap<FeedbackOf, Self::Value>, LoadError> {
        let mut out = HashMap::new();
        for (limit, ids) in by_params(keys, |k| (k.0, k.1)) {
            let mut found = view::feedback(&self.db, &ids, limit).await.map_err(Arc::new)?;
            out.extend(ids.into_iter().map(|id| (FeedbackOf(id, limit), take(&mut found, id))));
        }
        Ok(out)
    }
}

impl Loader<JourneysOf> for ViewLoader {
    type Value = Vec<JourneyPosition>;
    type Error = LoadError;

    async fn load(&self, keys: &[JourneysOf]) -> Result<HashMap<JourneysOf, Self::Value>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut found = view::journey_positions(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(keys.iter().map(|k| (*k, take(&mut found, k.0))).collect())
    }
}

impl Loader<MetricsOf> for ViewLoader {
    type Value = CustomerMetrics;
    type Error = LoadError;

    async fn load(&self, keys: &[MetricsOf]) -> Result<HashMap<MetricsOf, Self::Value>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut found = view::metrics(&self.db, &ids).await.map_err(Arc::new)?;
        Ok(keys.iter().map(|k| (*k, take(&mut found, k.0))).collect())
    }
}

/// Turns a loader error into a coded GraphQL error.
pub fn load_error(e: LoadError) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    e.extend()
}
