//! Surveys: the NPS, CSAT and CES questions feedback answers, optionally tied to a
//! channel and to the journey stage they follow. A survey with answers is deactivated,
//! never deleted (feedback `RESTRICT`s it).

use chrono::Utc;
use entity::enums::{Channel, SurveyKind};
use entity::{journey_stage, survey};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};

/// A survey as a manager writes it; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SurveyInput {
    pub name: Option<String>,
    pub kind: Option<SurveyKind>,
    pub question: Option<String>,
    pub channel: Option<Option<Channel>>,
    pub stage_id: Option<Option<Uuid>>,
    pub active: Option<bool>,
}

/// The score range of a survey kind, inclusive.
pub fn score_range(kind: SurveyKind) -> (i16, i16) {
    match kind {
        SurveyKind::Nps => (0, 10),
        SurveyKind::Csat => (1, 5),
        SurveyKind::Ces => (1, 7),
    }
}

/// Every survey, by name.
pub async fn list(db: &impl ConnectionTrait) -> AppResult<Vec<survey::Model>> {
    Ok(survey::Entity::find().order_by_asc(survey::Column::Name).all(db).await?)
}

/// Creates (`id` none) or updates a survey. Its kind is fixed once it exists: the
/// answers already given were on that scale.
pub async fn save(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Option<Uuid>,
    input: SurveyInput,
) -> AppResult<survey::Model> {
    let mut errors = Vec::new();
    let text =
        |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > max);
    if text(&input.name, 200) {
        errors.push(FieldError::new(&["input", "name"], "INVALID", "must be 1 to 200 characters"));
    }
    if text(&input.question, 2000) {
        errors.push(FieldError::new(&["input", "question"], "INVALID", "must be 1 to 2,000 characters"));
    }
    if id.is_none() {
        for (missing, field) in
            [(input.name.is_none(), "name"), (input.kind.is_none(), "kind"), (input.question.is_none(), "question")]
        {
            if missing {
                errors.push(FieldError::new(&["input", field], "REQUIRED", "a new survey needs it"));
            }
        }
    }
    let txn = db::begin_write(db).await?;
    if let Some(Some(stage)) = input.stage_id
        && journey_stage::Entity::find_by_id(stage).one(&txn).await?.is_none()
    {
        errors.push(FieldError::new(&["input", "stageId"], "NOT_FOUND", "no such journey stage"));
    }
    let now = Utc::now();
    let mut model = match id {
        Some(id) => {
            let found = survey::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound("survey"))?;
            if input.kind.is_some_and(|k| k != found.kind) {
                errors.push(FieldError::new(&["input", "kind"], "IMMUTABLE", "a survey's kind cannot change"));
            }
            found.into_active_model()
        }
        None => survey::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(String::new()),
            kind: Set(input.kind.unwrap_or(SurveyKind::Nps)),
            question: Set(String::new()),
            channel: Set(None),
            stage_id: Set(None),
            active: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        },
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    if let Some(n) = &input.name {
        model.name = Set(n.trim().to_owned());
    }
    if let Some(q) = &input.question {
        model.question = Set(q.trim().to_owned());
    }
    if let Some(c) = input.channel {
        model.channel = Set(c);
    }
    if let Some(s) = input.stage_id {
        model.stage_id = Set(s);
    }
    if let Some(a) = input.active {
        model.active = Set(a);
    }
    model.updated_at = Set(now);
    let saved = if id.is_some() { model.update(&txn).await? } else { model.insert(&txn).await? };
    let op = if id.is_some() { "updateSurvey" } else { "createSurvey" };
    audit::record(&txn, actor, op, "survey", Some(saved.id), json!({})).await?;
    txn.commit().await?;
    Ok(saved)
}
