//! Journey configuration (managers and admins): a journey is a name and an ordered
//! list of stages, saved as a whole so the order is always consistent.
//!
//! Saving a journey with `stages` makes the stored list equal to the given one: stages
//! named by id are kept (renamed and moved), stages without an id are created, and
//! stages left out are deleted — unless touchpoints were recorded at them, which is a
//! `STAGE_IN_USE` user error (history is never dropped by a config change; the
//! foreign key `RESTRICT`s it too).

use std::collections::HashSet;

use chrono::Utc;
use entity::{journey, journey_stage, touchpoint};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};

/// Most stages a journey may have.
pub const MAX_STAGES: usize = 50;

/// A journey with its stages in order.
#[derive(Debug, Clone)]
pub struct Journey {
    pub journey: journey::Model,
    pub stages: Vec<journey_stage::Model>,
}

/// A journey as a manager writes it; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct JourneyInput {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub stages: Option<Vec<StageInput>>,
}

/// One stage in the wanted order: an existing one by id, or a new one.
#[derive(Debug, Clone)]
pub struct StageInput {
    pub id: Option<Uuid>,
    pub name: String,
}

/// Every journey with its stages (two statements).
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<Journey>> {
    let journeys = journey::Entity::find().order_by_asc(journey::Column::Name).all(db).await?;
    let mut stages = journey_stage::Entity::find()
        .order_by_asc(journey_stage::Column::JourneyId)
        .order_by_asc(journey_stage::Column::Position)
        .all(db)
        .await?;
    Ok(journeys
        .into_iter()
        .map(|j| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut stages).into_iter().partition(|s| s.journey_id == j.id);
            stages = rest;
            Journey { journey: j, stages: mine }
        })
        .collect())
}

/// One journey with its stages.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<Journey>> {
    let Some(journey) = journey::Entity::find_by_id(id).one(db).await? else { return Ok(None) };
    let stages = journey_stage::Entity::find()
        .filter(journey_stage::Column::JourneyId.eq(id))
        .order_by_asc(journey_stage::Column::Position)
        .all(db)
        .await?;
    Ok(Some(Journey { journey, stages }))
}

fn check(id: Option<Uuid>, input: &JourneyInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let bad_name = |n: &str| n.trim().is_empty() || n.chars().count() > 200;
    match &input.name {
        Some(n) if bad_name(n) => {
            errors.push(FieldError::new(&["input", "name"], "INVALID", "must be 1 to 200 characters"))
        }
        None if id.is_none() => {
            errors.push(FieldError::new(&["input", "name"], "REQUIRED", "a new journey needs a name"))
        }
        _ => {}
    }
    if let Some(Some(d)) = &input.description
        && d.chars().count() > 2000
    {
        errors.push(FieldError::new(&["input", "description"], "TOO_LONG", "must be at most 2,000 characters"));
    }
    match &input.stages {
        None if id.is_none() => {
            errors.push(FieldError::new(&["input", "stages"], "REQUIRED", "a new journey needs at least one stage"))
        }
        Some(stages) if stages.is_empty() || stages.len() > MAX_STAGES => {
            errors.push(FieldError::new(&["input", "stages"], "INVALID", format!("must list 1 to {MAX_STAGES} stages")))
        }
        Some(stages) => {
            let mut seen = HashSet::new();
            for (i, s) in stages.iter().enumerate() {
                let index = i.to_string();
                if bad_name(&s.name) {
                    errors.push(FieldError::new(
                        &["input", "stages", &index, "name"],
                        "INVALID",
                        "must be 1 to 200 characters",
                    ));
                } else if !seen.insert(s.name.trim().to_lowercase()) {
                    errors.push(FieldError::new(
                        &["input", "stages", &index, "name"],
                        "DUPLICATE",
                        "names a stage twice",
                    ));
                }
            }
        }
        None => {}
    }
    errors
}

/// Creates (`id` none) or updates a journey, its stages in the given order.
pub async fn save(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Option<Uuid>,
    input: JourneyInput,
) -> AppResult<Journey> {
    let errors = check(id, &input);
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let txn = db::begin_write(db).await?;
    let now = Utc::now();
    if let Some(name) = &input.name {
        let taken = journey::Entity::find().filter(journey::Column::Name.eq(name.trim())).one(&txn).await?;
        if taken.is_some_and(|t| Some(t.id) != id) {
            return Err(AppError::invalid(&["input", "name"], "TAKEN", "another journey has this name"));
        }
    }
    let mut model = match id {
        Some(id) => {
            journey::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound("journey"))?.into_active_model()
        }
        None => journey::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(String::new()),
            description: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        },
    };
    if let Some(name) = &input.name {
        model.name = Set(name.trim().to_owned());
    }
    if let Some(d) = &input.description {
        model.description = Set(d.as_ref().map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()));
    }
    model.updated_at = Set(now);
    let saved = if id.is_some() { model.update(&txn).await? } else { model.insert(&txn).await? };
    if let Some(stages) = &input.stages {
        replace_stages(&txn, saved.id, stages).await?;
    }
    let op = if id.is_some() { "updateJourney" } else { "createJourney" };
    let mut changed: Vec<&str> = Vec::new();
    for (given, field) in [
        (input.name.is_some(), "name"),
        (input.description.is_some(), "description"),
        (input.stages.is_some(), "stages"),
    ] {
        if given {
            changed.push(field);
        }
    }
    audit::record(&txn, actor, op, "journey", Some(saved.id), json!({ "fields": changed })).await?;
    let out = find(&txn, saved.id).await?.ok_or(AppError::NotFound("journey"))?;
    txn.commit().await?;
    Ok(out)
}

async fn replace_stages(txn: &impl ConnectionTrait, journey_id: Uuid, wanted: &[StageInput]) -> AppResult<()> {
    let existing =
        journey_stage::Entity::find().filter(journey_stage::Column::JourneyId.eq(journey_id)).all(txn).await?;
    let mut errors = Vec::new();
    for (i, s) in wanted.iter().enumerate() {
        if let Some(sid) = s.id
            && !existing.iter().any(|e| e.id == sid)
        {
            errors.push(FieldError::new(
                &["input", "stages", &i.to_string(), "id"],
                "NOT_FOUND",
                "no such stage in this journey",
            ));
        }
    }
    let kept: HashSet<Uuid> = wanted.iter().filter_map(|s| s.id).collect();
    let dropped: Vec<&journey_stage::Model> = existing.iter().filter(|e| !kept.contains(&e.id)).collect();
    for stage in &dropped {
        let used = touchpoint::Entity::find().filter(touchpoint::Column::StageId.eq(stage.id)).count(txn).await?;
        if used > 0 {
            errors.push(FieldError::new(
                &["input", "stages"],
                "STAGE_IN_USE",
                format!("stage \"{}\" has {used} touchpoints and cannot be removed", stage.name),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    for stage in dropped {
        journey_stage::Entity::delete_by_id(stage.id).exec(txn).await?;
    }
    // Two passes so that swapping two names or positions never trips the unique keys.
    for (i, stage) in existing.iter().filter(|e| kept.contains(&e.id)).enumerate() {
        let mut m = stage.clone().into_active_model();
        m.position = Set(-1 - i32::try_from(i).unwrap_or(0));
        m.name = Set(format!("~{}", stage.id));
        m.update(txn).await?;
    }
    let now = Utc::now();
    for (i, s) in wanted.iter().enumerate() {
        let position = i32::try_from(i).unwrap_or(i32::MAX);
        let name = s.name.trim().to_owned();
        match s.id {
            Some(sid) => {
                journey_stage::ActiveModel {
                    id: Set(sid),
                    position: Set(position),
                    name: Set(name),
                    ..Default::default()
                }
                .update(txn)
                .await?;
            }
            None => {
                journey_stage::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    journey_id: Set(journey_id),
                    name: Set(name),
                    position: Set(position),
                    created_at: Set(now),
                }
                .insert(txn)
                .await?;
            }
        }
    }
    Ok(())
}

/// Deletes a journey that has no touchpoints (its stages go with it).
pub async fn delete(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    journey::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound("journey"))?;
    let used = touchpoint::Entity::find().filter(touchpoint::Column::JourneyId.eq(id)).count(&txn).await?;
    if used > 0 {
        return Err(AppError::invalid(
            &["id"],
            "JOURNEY_IN_USE",
            format!("the journey has {used} touchpoints; history is kept, so it cannot be deleted"),
        ));
    }
    journey::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(&txn, actor, "deleteJourney", "journey", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(())
}
