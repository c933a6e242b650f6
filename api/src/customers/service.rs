//! Writing customers and resolving contacts to them.
//!
//! Every write runs in one transaction with its audit entry. Resolution is safe under
//! concurrency: the unique `(kind, value)` index decides between two requests that
//! both saw an unknown identity, and the loser retries and finds the winner's customer.

use std::collections::HashSet;

use chrono::Utc;
use entity::enums::IdentityKind;
use entity::{customer, customer_identity};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::identity;
use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};
use crate::events;

/// An identity as given by a caller, before normalisation.
#[derive(Debug, Clone)]
pub struct IdentityInput {
    pub kind: IdentityKind,
    pub value: String,
}

/// A normalised identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub kind: IdentityKind,
    pub value: String,
}

/// Profile fields of a new customer.
#[derive(Debug, Clone, Default)]
pub struct NewCustomer {
    pub display_name: Option<String>,
    pub segment: Option<String>,
    pub attributes: Option<Value>,
    pub identities: Vec<IdentityInput>,
}

/// A partial update: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub display_name: Option<Option<String>>,
    pub segment: Option<Option<String>>,
    pub attributes: Option<Value>,
}

/// The outcome of resolving a contact.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub customer: customer::Model,
    /// A new customer was created for the contact.
    pub created: bool,
    /// Identities newly attached to the customer.
    pub linked: Vec<customer_identity::Model>,
    /// Given identities that belong to other customers (possible duplicates to merge).
    pub other_owners: Vec<(Identity, Uuid)>,
}

const MAX_NAME_LEN: usize = 300;
const MAX_SEGMENT_LEN: usize = 100;
const MAX_IDENTITIES: usize = 20;
const RESOLVE_ATTEMPTS: usize = 5;

/// Normalises identities, naming each bad one by its index under `path`.
pub fn normalize_all(path: &[&str], inputs: &[IdentityInput]) -> AppResult<Vec<Identity>> {
    if inputs.len() > MAX_IDENTITIES {
        return Err(AppError::invalid(path, "TOO_MANY", format!("at most {MAX_IDENTITIES} identities")));
    }
    let mut errors = Vec::new();
    let mut out: Vec<Identity> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match identity::normalize(input.kind, &input.value) {
            Ok(value) => {
                let id = Identity { kind: input.kind, value };
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            Err(msg) => {
                let index = i.to_string();
                let mut field: Vec<&str> = path.to_vec();
                field.extend([index.as_str(), "value"]);
                errors.push(FieldError::new(&field, "INVALID", msg));
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(AppError::Invalid(errors)) }
}

fn clean_text(field: &[&str], value: Option<String>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.push(FieldError::new(field, "TOO_LONG", format!("must be at most {max} characters")));
        return None;
    }
    Some(value)
}

fn check_attributes(field: &[&str], value: &Value, errors: &mut Vec<FieldError>) {
    if !value.is_object() {
        errors.push(FieldError::new(field, "INVALID", "must be a JSON object"));
    } else if value.to_string().len() > 16 * 1024 {
        errors.push(FieldError::new(field, "TOO_LONG", "must be at most 16 KiB of JSON"));
    }
}

/// A live customer by id; a tombstone is followed to its survivor.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<customer::Model>> {
    Ok(customer::Entity::find_by_id(id).one(db).await?)
}

/// The customer holding an identity, after normalising it.
pub async fn find_by_identity(
    db: &impl ConnectionTrait,
    kind: IdentityKind,
    raw: &str,
) -> AppResult<Option<customer::Model>> {
    let value = identity::normalize(kind, raw).map_err(|msg| AppError::invalid(&["value"], "INVALID", msg))?;
    let Some(found) = customer_identity::Entity::find()
        .filter(customer_identity::Column::Kind.eq(kind))
        .filter(customer_identity::Column::Value.eq(value))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    find(db, found.customer_id).await
}

fn identity_condition(identities: &[Identity]) -> Condition {
    identities.iter().fold(Condition::any(), |cond, id| {
        cond.add(
            Condition::all()
                .add(customer_identity::Column::Kind.eq(id.kind))
                .add(customer_identity::Column::Value.eq(id.value.clone())),
        )
    })
}

/// Whether the caller may learn which customer owns an identity: only one who may read
/// personal data (naming the owner of a guessed value is an exact lookup, see
/// `pii::PersonalMatch`); others learn that it is taken, which a write cannot hide.
fn may_see_customers(actor: Actor<'_>) -> bool {
    crate::auth::pii::can_read(actor.principal)
}

fn owned_elsewhere(actor: Actor<'_>, field: &[&str], owner: Uuid) -> FieldError {
    let message = if may_see_customers(actor) {
        format!("belongs to another customer ({owner})")
    } else {
        "belongs to another customer".to_owned()
    };
    FieldError::new(field, "CONFLICT", message)
}

fn new_identity(customer_id: Uuid, id: &Identity) -> customer_identity::ActiveModel {
    customer_identity::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(customer_id),
        kind: Set(id.kind),
        value: Set(id.value.clone()),
        verified: Set(false),
        created_at: Set(Utc::now()),
    }
}

fn kinds(identities: &[Identity]) -> Vec<IdentityKind> {
    identities.iter().map(|i| i.kind).collect()
}

/// Creates a customer with its identities. An identity that already belongs to
/// someone is a `CONFLICT` user error naming the owner (when the caller may see it).
pub async fn create(db: &DatabaseConnection, actor: Actor<'_>, new: NewCustomer) -> AppResult<customer::Model> {
    let mut errors = Vec::new();
    let display_name = clean_text(&["input", "displayName"], new.display_name, MAX_NAME_LEN, &mut errors);
    let segment = clean_text(&["input", "segment"], new.segment, MAX_SEGMENT_LEN, &mut errors);
    let attributes = new.attributes.unwrap_or_else(|| json!({}));
    check_attributes(&["input", "attributes"], &attributes, &mut errors);
    let identities = match normalize_all(&["input", "identities"], &new.identities) {
        Ok(ids) => ids,
        Err(AppError::Invalid(mut e)) => {
            errors.append(&mut e);
            Vec::new()
        }
        Err(other) => return Err(other),
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let txn = db::begin_write(db).await?;
    if !identities.is_empty() {
        let taken = customer_identity::Entity::find().filter(identity_condition(&identities)).all(&txn).await?;
        if !taken.is_empty() {
            let errors = identities
                .iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    let owner = taken.iter().find(|t| t.kind == id.kind && t.value == id.value)?;
                    let index = i.to_string();
                    Some(owned_elsewhere(actor, &["input", "identities", &index, "value"], owner.customer_id))
                })
                .collect();
            return Err(AppError::Invalid(errors));
        }
    }
    let now = Utc::now();
    let model = customer::ActiveModel {
        id: Set(Uuid::now_v7()),
        display_name: Set(display_name),
        segment: Set(segment),
        attributes: Set(attributes),
        merged_into_id: Set(None),
        erased_at: Set(None),
        last_contact_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    for id in &identities {
        new_identity(model.id, id).insert(&txn).await.map_err(conflict_on_race)?;
    }
    events::emit(&txn, events::customer_event("customer.created", model.id, json!({}))).await?;
    audit::record(
        &txn,
        actor,
        "createCustomer",
        "customer",
        Some(model.id),
        json!({ "identities": kinds(&identities) }),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// A unique violation that slipped between our check and our insert: another request
/// took the identity at the same moment.
fn conflict_on_race(err: sea_orm::DbErr) -> AppError {
    if db::is_unique_violation(&err) {
        AppError::Conflict("an identity was taken by a concurrent request; retry".into())
    } else {
        err.into()
    }
}

/// A live customer for writing: not found, merged and erased customers are refused.
async fn writable(db: &impl ConnectionTrait, id: Uuid, field: &[&str]) -> AppResult<customer::Model> {
    let customer = find(db, id).await?.ok_or(AppError::NotFound("customer"))?;
    if let Some(survivor) = customer.merged_into_id {
        return Err(AppError::invalid(field, "MERGED", format!("was merged into {survivor}; write to that customer")));
    }
    if customer.erased_at.is_some() {
        return Err(AppError::invalid(field, "ERASED", "was erased; it cannot be changed"));
    }
    Ok(customer)
}

/// Applies a partial update to the profile.
pub async fn update(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Uuid,
    patch: CustomerPatch,
) -> AppResult<customer::Model> {
    let mut errors = Vec::new();
    let mut changed = Vec::new();
    let txn = db::begin_write(db).await?;
    let current = writable(&txn, id, &["input", "id"]).await?;
    let mut active = current.into_active_model();
    if let Some(name) = patch.display_name {
        active.display_name = Set(clean_text(&["input", "displayName"], name, MAX_NAME_LEN, &mut errors));
        changed.push("displayName");
    }
    if let Some(segment) = patch.segment {
        active.segment = Set(clean_text(&["input", "segment"], segment, MAX_SEGMENT_LEN, &mut errors));
        changed.push("segment");
    }
    if let Some(attributes) = patch.attributes {
        check_attributes(&["input", "attributes"], &attributes, &mut errors);
        active.attributes = Set(attributes);
        changed.push("attributes");
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    active.updated_at = Set(Utc::now());
    let model = active.update(&txn).await?;
    audit::record(&txn, actor, "updateCustomer", "customer", Some(id), json!({ "fields": changed })).await?;
    txn.commit().await?;
    Ok(model)
}

/// Attaches an identity to a customer. Already on this customer: returned unchanged.
pub async fn link_identity(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    customer_id: Uuid,
    input: IdentityInput,
) -> AppResult<customer_identity::Model> {
    let value = identity::normalize(input.kind, &input.value)
        .map_err(|msg| AppError::invalid(&["input", "identity", "value"], "INVALID", msg))?;
    let wanted = Identity { kind: input.kind, value };
    let txn = db::begin_write(db).await?;
    writable(&txn, customer_id, &["input", "customerId"]).await?;
    let existing =
        customer_identity::Entity::find().filter(identity_condition(std::slice::from_ref(&wanted))).one(&txn).await?;
    if let Some(existing) = existing {
        if existing.customer_id == customer_id {
            return Ok(existing);
        }
        return Err(AppError::Invalid(vec![owned_elsewhere(
            actor,
            &["input", "identity", "value"],
            existing.customer_id,
        )]));
    }
    let model = new_identity(customer_id, &wanted).insert(&txn).await.map_err(conflict_on_race)?;
    audit::record(&txn, actor, "linkIdentity", "customer", Some(customer_id), json!({ "kind": wanted.kind })).await?;
    txn.commit().await?;
    Ok(model)
}

/// Detaches an identity from its customer; returns what was removed.
pub async fn unlink_identity(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    identity_id: Uuid,
) -> AppResult<customer_identity::Model> {
    let txn = db::begin_write(db).await?;
    let found =
        customer_identity::Entity::find_by_id(identity_id).one(&txn).await?.ok_or(AppError::NotFound("identity"))?;
    writable(&txn, found.customer_id, &["input", "identityId"]).await?;
    customer_identity::Entity::delete_by_id(identity_id).exec(&txn).await?;
    audit::record(&txn, actor, "unlinkIdentity", "customer", Some(found.customer_id), json!({ "kind": found.kind }))
        .await?;
    txn.commit().await?;
    Ok(found)
}

/// Finds the customer for a contact by any of its identities, attaches the identities
/// nobody holds yet, or creates the customer. Identities held by *other* customers are
/// left where they are and reported as possible duplicates.
///
/// Runs in a transaction of its own and retries when a concurrent request took one of
/// the identities first; ingest paths that need the resolution inside their own
/// transaction call [`resolve_in`] and retry on [`ResolveError::Race`].
pub async fn resolve(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    identities: &[IdentityInput],
    profile: NewCustomer,
) -> AppResult<Resolution> {
    let identities = normalize_all(&["input", "identities"], identities)?;
    if identities.is_empty() {
        return Err(AppError::invalid(&["input", "identities"], "REQUIRED", "give at least one identity"));
    }
    let mut last_err = None;
    for _ in 0..RESOLVE_ATTEMPTS {
        let txn = db::begin_write(db).await?;
        match resolve_in(&txn, actor, &identities, &profile).await {
            Ok(resolution) => {
                txn.commit().await?;
                return Ok(resolution);
            }
            Err(ResolveError::Race(e)) => {
                txn.rollback().await.ok();
                last_err = Some(e);
            }
            Err(ResolveError::App(e)) => return Err(e),
        }
    }
    tracing::warn!(error = ?last_err, "customer resolution kept colliding");
    Err(AppError::Conflict("customer resolution kept colliding with concurrent requests; retry".into()))
}

/// Why [`resolve_in`] failed.
#[derive(Debug)]
pub enum ResolveError {
    /// A concurrent request inserted one of the identities first: roll back and retry.
    Race(sea_orm::DbErr),
    App(AppError),
}

impl From<sea_orm::DbErr> for ResolveError {
    fn from(e: sea_orm::DbErr) -> Self {
        if db::is_unique_violation(&e) { ResolveError::Race(e) } else { ResolveError::App(e.into()) }
    }
}

impl From<AppError> for ResolveError {
    fn from(e: AppError) -> Self {
        ResolveError::App(e)
    }
}

/// Who an event (interaction, touchpoint, feedback) is about: a known customer id, or
/// identities to resolve (creating the customer when nobody holds them).
#[derive(Debug, Clone, Default)]
pub struct CustomerRef {
    pub id: Option<Uuid>,
    pub identities: Vec<IdentityInput>,
    /// Name for a customer created by resolution.
    pub display_name: Option<String>,
}

impl CustomerRef {
    /// Reports a reference that names nobody.
    pub fn check(&self, path: &[&str], errors: &mut Vec<FieldError>) {
        if self.id.is_none() && self.identities.is_empty() {
            errors.push(FieldError::new(
                &[path, &["identities"]].concat(),
                "REQUIRED",
                "give customerId or at least one identity",
            ));
        }
    }
}

/// The customer an event is about, inside the caller's write transaction: by id
/// (following a merge to the survivor; an erased customer is refused) or by resolving
/// the identities. `None` when a concurrent request inserted one of the identities
/// first: the caller rolls back and retries (see `batch::retrying`).
pub async fn resolve_ref(
    txn: &impl ConnectionTrait,
    actor: Actor<'_>,
    path: &[&str],
    reference: &CustomerRef,
) -> AppResult<Option<customer::Model>> {
    match resolve_ref_once(txn, actor, path, reference).await {
        Ok(c) => Ok(Some(c)),
        Err(ResolveError::Race(_)) => Ok(None),
        Err(ResolveError::App(e)) => Err(e),
    }
}

/// [`resolve_ref`] for a write that adds one row to the customer and takes no other
/// customer's locks (a touchpoint, a feedback response): on PostgreSQL the customer's
/// row is then held `FOR SHARE` until the caller commits. That waits for a merge or an
/// erasure under way, so the row cannot land on a customer merged away meanwhile (a
/// foreign key check alone would let it through once the merge commits). `None` when
/// the customer was merged or erased since it was read: the caller rolls back and
/// retries, and the retry follows the merge or reports the erasure. Ingest cannot use
/// this: it locks its conversations first and its customers last.
pub async fn resolve_and_hold(
    txn: &impl ConnectionTrait,
    actor: Actor<'_>,
    path: &[&str],
    reference: &CustomerRef,
) -> AppResult<Option<customer::Model>> {
    let Some(found) = resolve_ref(txn, actor, path, reference).await? else { return Ok(None) };
    if txn.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        // One writer at a time: what this transaction read stays true until it commits.
        return Ok(Some(found));
    }
    let held = customer::Entity::find_by_id(found.id).lock_shared().one(txn).await?;
    let Some(held) = held.filter(|c| c.merged_into_id.is_none() && c.erased_at.is_none()) else { return Ok(None) };
    Ok(resolution_holds(txn, &[(reference, held.id)]).await?.then_some(held))
}

/// Whether each write's customer is still the one its reference resolves to, now
/// that the write holds its customers' rows. An unmerge committed meanwhile can
/// have given an identity back to the duplicate, or made live again the tombstone a
/// write named by id; the write must then be tried again to follow it (an unmerge
/// locks both customers' rows, so this statement runs after it committed, or the
/// unmerge after this write). By identities: the owner of the first named identity
/// anyone holds, the rule of [`resolve_in`]; by id: the customer itself, or the
/// survivor its tombstone still points at. PostgreSQL only: SQLite's writers take
/// turns, so nothing moves between a write's resolution and its commit.
pub async fn resolution_holds(
    txn: &impl ConnectionTrait,
    writes: &[(&CustomerRef, Uuid)],
) -> Result<bool, sea_orm::DbErr> {
    if txn.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(true);
    }
    let mut tombstones: Vec<(Uuid, Uuid)> = Vec::new();
    let mut by_identities: Vec<(Vec<Identity>, Uuid)> = Vec::new();
    for (reference, customer) in writes {
        match reference.id {
            Some(named) if named != *customer => tombstones.push((named, *customer)),
            Some(_) => {}
            // Already checked by the resolution: a value that does not read is left out.
            None => by_identities.push((normalize_all(&[], &reference.identities).unwrap_or_default(), *customer)),
        }
    }
    let backend = txn.get_database_backend();
    if !tombstones.is_empty() {
        let rows = tombstones.iter().map(|(named, survivor)| vec![(*named).into(), (*survivor).into()]).collect();
        let (with, values) = crate::db::keys_cte("k", &["id", "survivor_id"], rows);
        let sql = format!(
            "{with}SELECT COUNT(*) AS n FROM k LEFT JOIN customers c ON c.id = k.id \
             AND c.merged_into_id = k.survivor_id WHERE c.id IS NULL"
        );
        if count(txn.query_one_raw(crate::db::statement(backend, &sql, values)).await?)? > 0 {
            return Ok(false);
        }
    }
    let named: HashSet<&Identity> = by_identities.iter().flat_map(|(ids, _)| ids).collect();
    if named.is_empty() {
        return Ok(true);
    }
    // A join on the list, not an OR per identity (see `db::keys_cte`): a batch names
    // hundreds of them.
    let rows = named.iter().map(|i| vec![sea_orm::ActiveEnum::to_value(&i.kind).into(), i.value.clone().into()]);
    let (with, values) = crate::db::keys_cte("k", &["kind", "value"], rows.collect());
    let sql =
        format!("{with}SELECT ci.* FROM customer_identities ci JOIN k ON ci.kind = k.kind AND ci.value = k.value");
    let held =
        customer_identity::Entity::find().from_raw_sql(crate::db::statement(backend, &sql, values)).all(txn).await?;
    let owner_of = |i: &Identity| held.iter().find(|h| h.kind == i.kind && h.value == i.value).map(|h| h.customer_id);
    Ok(by_identities.iter().all(|(ids, customer)| ids.iter().find_map(owner_of) == Some(*customer)))
}

fn count(row: Option<sea_orm::QueryResult>) -> Result<i64, sea_orm::DbErr> {
    Ok(row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0))
}

async fn resolve_ref_once(
    txn: &impl ConnectionTrait,
    actor: Actor<'_>,
    path: &[&str],
    reference: &CustomerRef,
) -> Result<customer::Model, ResolveError> {
    if let Some(id) = reference.id {
        let mut found = find(txn, id).await?.ok_or(AppError::NotFound("customer"))?;
        if let Some(survivor) = found.merged_into_id {
            found = find(txn, survivor).await?.ok_or(AppError::NotFound("customer"))?;
        }
        if found.erased_at.is_some() {
            return Err(AppError::invalid(&[path, &["customerId"]].concat(), "ERASED", "was erased").into());
        }
        return Ok(found);
    }
    let identities = normalize_all(&[path, &["identities"]].concat(), &reference.identities)?;
    let profile = NewCustomer { display_name: reference.display_name.clone(), ..Default::default() };
    Ok(resolve_in(txn, actor, &identities, &profile).await?.customer)
}

/// One resolution attempt inside the caller's transaction (see [`resolve`]).
pub async fn resolve_in<C: ConnectionTrait>(
    txn: &C,
    actor: Actor<'_>,
    identities: &[Identity],
    profile: &NewCustomer,
) -> Result<Resolution, ResolveError> {
    let held = customer_identity::Entity::find().filter(identity_condition(identities)).all(txn).await?;
    // The owner of the first given identity that anyone holds wins.
    let owner = identities
        .iter()
        .find_map(|id| held.iter().find(|h| h.kind == id.kind && h.value == id.value).map(|h| h.customer_id));
    let (customer, created) = match owner {
        Some(owner) => {
            let customer = find(txn, owner).await?.ok_or(AppError::NotFound("customer"))?;
            (customer, false)
        }
        None => {
            let now = Utc::now();
            let customer = customer::ActiveModel {
                id: Set(Uuid::now_v7()),
                display_name: Set(profile.display_name.clone().filter(|n| !n.trim().is_empty())),
                segment: Set(profile.segment.clone()),
                attributes: Set(profile.attributes.clone().unwrap_or_else(|| json!({}))),
                merged_into_id: Set(None),
                erased_at: Set(None),
                last_contact_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?;
            (customer, true)
        }
    };
    let held_keys: HashSet<(IdentityKind, &str)> = held.iter().map(|h| (h.kind, h.value.as_str())).collect();
    let mut linked = Vec::new();
    for id in identities.iter().filter(|id| !held_keys.contains(&(id.kind, id.value.as_str()))) {
        linked.push(new_identity(customer.id, id).insert(txn).await?);
    }
    let other_owners = held
        .iter()
        .filter(|h| h.customer_id != customer.id)
        .map(|h| (Identity { kind: h.kind, value: h.value.clone() }, h.customer_id))
        .collect();
    if created {
        events::emit(txn, events::customer_event("customer.created", customer.id, json!({}))).await?;
    }
    if created || !linked.is_empty() {
        let op = if created { "resolveCustomer.create" } else { "resolveCustomer.link" };
        audit::record(txn, actor, op, "customer", Some(customer.id), json!({ "identities": kinds(identities) }))
            .await?;
    }
    Ok(Resolution { customer, created, linked, other_owners })
}
