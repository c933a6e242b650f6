//! Recording touchpoints: a customer event at a journey stage, idempotent on
//! `(source, externalId)`.
//!
//! The journey catalogue (journeys and stages) is loaded once per call or batch. A
//! call or batch is one write transaction with its audit entry; each touchpoint runs
//! in a savepoint of it (look up the key, resolve and hold the customer, insert, emit
//! `touchpoint.recorded`), so one bad item of a batch never loses the others
//! ([`batch::write_each`]).

use chrono::{DateTime, Utc};
use entity::enums::{Channel, TouchpointOutcome};
use entity::{interaction, touchpoint};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use super::config::{self, Journey};
use crate::audit::Actor;
use crate::batch::{self, Stored};
use crate::customers::service::{self as customers, CustomerRef};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};
use crate::events::{self, NewEvent};

/// The stage, by id or by its name within the journey.
#[derive(Debug, Clone)]
pub enum StageRef {
    Id(Uuid),
    Name(String),
}

/// One touchpoint as a partner or front end reports it.
#[derive(Debug, Clone)]
pub struct NewTouchpoint {
    pub customer: CustomerRef,
    pub journey_id: Uuid,
    pub stage: StageRef,
    pub channel: Channel,
    /// What happened, e.g. "checkout" or "delivery".
    pub name: String,
    pub outcome: TouchpointOutcome,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub interaction_id: Option<Uuid>,
    /// Who reports it (the idempotency key's namespace); defaults to `api`.
    pub source: Option<String>,
    /// The source's id for the event; without one every call records a new touchpoint.
    pub external_id: Option<String>,
}

fn validate(path: &[&str], input: &NewTouchpoint) -> Vec<FieldError> {
    let f = |name: &'static str| [path, &[name]].concat();
    let mut errors = Vec::new();
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        errors.push(FieldError::new(&f("name"), "INVALID", "must be 1 to 200 characters"));
    }
    if input.source.as_ref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > 100) {
        errors.push(FieldError::new(&f("source"), "INVALID", "must be 1 to 100 characters"));
    }
    if input.external_id.as_ref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > 300) {
        errors.push(FieldError::new(&f("externalId"), "INVALID", "must be 1 to 300 characters"));
    }
    batch::check_occurred_at(&f("occurredAt"), input.occurred_at, &mut errors);
    input.customer.check(path, &mut errors);
    errors
}

/// Records one touchpoint (its audit entry in the same transaction).
pub async fn record(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    input: NewTouchpoint,
) -> AppResult<Stored<touchpoint::Model>> {
    let catalogue = config::list(db).await?;
    let checked = check(actor, &catalogue, &["input"], input);
    batch::write_one(db, actor, "recordTouchpoint", checked, &Touchpoints { actor }).await
}

/// Records a batch, answering per item (in order), in one transaction with its audit
/// entry (see [`batch::write_each`]). An item already refused by the caller keeps its
/// answer and its place.
pub async fn record_batch(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    inputs: Vec<AppResult<NewTouchpoint>>,
) -> AppResult<Vec<AppResult<Stored<touchpoint::Model>>>> {
    batch::check_size(inputs.len())?;
    let catalogue = config::list(db).await?;
    let checked = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| input.and_then(|input| check(actor, &catalogue, &["inputs", &i.to_string()], input)))
        .collect();
    batch::write_each(db, actor, "recordTouchpoints", checked, &Touchpoints { actor }).await
}

/// Writes touchpoints for one call: `recordTouchpoint`, or a `recordTouchpoints` batch.
struct Touchpoints<'x> {
    actor: Actor<'x>,
}

impl batch::Writes for Touchpoints<'_> {
    type Checked = Checked;
    type Row = touchpoint::Model;
    const TARGET: &'static str = "touchpoint";

    fn id(row: &touchpoint::Model) -> Uuid {
        row.id
    }

    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        item: &'a Checked,
    ) -> impl Future<Output = AppResult<Option<Stored<touchpoint::Model>>>> + Send + 'a {
        write(txn, self.actor, item)
    }
}

/// The journey and stage ids a touchpoint names, checked against the catalogue.
fn locate(catalogue: &[Journey], path: &[&str], input: &NewTouchpoint) -> AppResult<(Uuid, Uuid)> {
    let Some(journey) = catalogue.iter().find(|j| j.journey.id == input.journey_id) else {
        return Err(AppError::invalid(&[path, &["journeyId"]].concat(), "NOT_FOUND", "no such journey"));
    };
    let stage = match &input.stage {
        StageRef::Id(id) => journey.stages.iter().find(|s| s.id == *id),
        StageRef::Name(name) => journey.stages.iter().find(|s| s.name.eq_ignore_ascii_case(name.trim())),
    };
    match stage {
        Some(s) => Ok((journey.journey.id, s.id)),
        None => Err(AppError::invalid(&[path, &["stage"]].concat(), "NOT_FOUND", "no such stage in this journey")),
    }
}

/// A touchpoint that passed its checks, with the ids and keys it will be stored under.
struct Checked {
    path: Vec<String>,
    input: NewTouchpoint,
    journey_id: Uuid,
    stage_id: Uuid,
    source: String,
    external_id: Option<String>,
}

/// The checks that need no database: fields, the token's channels, the identities'
/// forms, the journey and stage in the catalogue.
fn check(actor: Actor<'_>, catalogue: &[Journey], path: &[&str], input: NewTouchpoint) -> AppResult<Checked> {
    let errors = validate(path, &input);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if !actor.principal.may_use_channel(input.channel) {
        return Err(AppError::forbidden(format!("this token may not write to the {:?} channel", input.channel)));
    }
    customers::normalize_all(&[path, &["identities"]].concat(), &input.customer.identities)?;
    let (journey_id, stage_id) = locate(catalogue, path, &input)?;
    let source = input.source.as_deref().map_or("api", str::trim).to_owned();
    let external_id = input.external_id.as_deref().map(|e| e.trim().to_owned());
    let path = path.iter().map(|p| (*p).to_owned()).collect();
    Ok(Checked { path, input, journey_id, stage_id, source, external_id })
}

/// Stores one checked touchpoint in the caller's transaction: the stored one for a
/// known key, else resolve and hold the customer, insert, emit `touchpoint.recorded`.
/// `Ok(None)`: lost a race; the caller rolls back and runs it again.
async fn write(
    txn: &DatabaseTransaction,
    actor: Actor<'_>,
    c: &Checked,
) -> AppResult<Option<Stored<touchpoint::Model>>> {
    let path: Vec<&str> = c.path.iter().map(String::as_str).collect();
    if let Some(ext) = &c.external_id
        && let Some(found) = touchpoint::Entity::find()
            .filter(touchpoint::Column::Source.eq(&c.source))
            .filter(touchpoint::Column::ExternalId.eq(ext))
            .one(txn)
            .await?
    {
        return Ok(Some(Stored { row: found, created: false }));
    }
    let Some(customer) = customers::resolve_and_hold(txn, actor, &path, &c.input.customer).await? else {
        return Ok(None);
    };
    check_interaction(txn, &path, c.input.interaction_id, customer.id).await?;
    let now = Utc::now();
    let row = touchpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(customer.id),
        journey_id: Set(c.journey_id),
        stage_id: Set(c.stage_id),
        channel: Set(c.input.channel),
        name: Set(c.input.name.trim().to_owned()),
        outcome: Set(c.input.outcome),
        interaction_id: Set(c.input.interaction_id),
        source: Set(c.source.clone()),
        external_id: Set(c.external_id.clone()),
        occurred_at: Set(c.input.occurred_at.unwrap_or(now)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let inserted = match row.insert(txn).await {
        Ok(m) => m,
        Err(e) if db::is_unique_violation(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    events::emit(txn, recorded_event(&inserted)).await?;
    Ok(Some(Stored { row: inserted, created: true }))
}

/// A linked interaction must exist and be the same customer's.
async fn check_interaction(
    txn: &impl ConnectionTrait,
    path: &[&str],
    interaction_id: Option<Uuid>,
    customer_id: Uuid,
) -> AppResult<()> {
    let Some(id) = interaction_id else { return Ok(()) };
    match interaction::Entity::find_by_id(id).one(txn).await? {
        Some(i) if i.customer_id == customer_id => Ok(()),
        Some(_) => Err(AppError::invalid(
            &[path, &["interactionId"]].concat(),
            "MISMATCH",
            "the interaction belongs to another customer",
        )),
        None => Err(AppError::invalid(&[path, &["interactionId"]].concat(), "NOT_FOUND", "no such interaction")),
    }
}

/// The `touchpoint.recorded` event (ids and codes only).
fn recorded_event(t: &touchpoint::Model) -> NewEvent {
    NewEvent {
        event_type: "touchpoint.recorded",
        aggregate_type: "touchpoint",
        aggregate_id: t.id,
        customer_id: Some(t.customer_id),
        channel: Some(t.channel),
        payload: json!({ "journeyId": t.journey_id, "stageId": t.stage_id, "outcome": t.outcome }),
    }
}
