//! Managing routing rules and SLA policies (managers and admins). Writes are validated
//! (a rule's conditions parse with unknown keys refused, its team exists; SLA targets
//! are positive) and audited.

use chrono::Utc;
use entity::enums::{Channel, Priority};
use entity::{routing_rule, sla_policy, team};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use super::routing::{BusinessHours, Conditions};
use crate::audit::{self, Actor};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};

/// A routing rule as written by a manager.
#[derive(Debug, Clone)]
pub struct RuleInput {
    pub name: Option<String>,
    pub position: Option<i32>,
    pub enabled: Option<bool>,
    pub conditions: Option<Conditions>,
    pub team_id: Option<Option<Uuid>>,
    pub set_priority: Option<Option<Priority>>,
    pub add_tags: Option<Vec<String>>,
}

fn check_conditions(c: &Conditions, errors: &mut Vec<FieldError>) {
    if let Some(h) = &c.business_hours
        && (h.start >= h.end || h.end > 24 || h.days.is_empty() || h.days.iter().any(|d| !(1..=7).contains(d)))
    {
        errors.push(FieldError::new(
            &["input", "conditions", "businessHours"],
            "INVALID",
            "needs days 1–7 (Monday = 1) and 0 ≤ start < end ≤ 24",
        ));
    }
    if let Some(t) = c.sentiment_below
        && !(-1.0..=1.0).contains(&t)
    {
        errors.push(FieldError::new(&["input", "conditions", "sentimentBelow"], "OUT_OF_RANGE", "must be in [-1, 1]"));
    }
}

async fn check_team(
    db: &impl sea_orm::ConnectionTrait,
    team_id: Option<Option<Uuid>>,
    errors: &mut Vec<FieldError>,
) -> AppResult<()> {
    if let Some(Some(t)) = team_id
        && team::Entity::find_by_id(t).one(db).await?.is_none()
    {
        errors.push(FieldError::new(&["input", "teamId"], "NOT_FOUND", "no such team"));
    }
    Ok(())
}

fn check_name(name: Option<&str>, errors: &mut Vec<FieldError>) {
    if let Some(n) = name
        && (n.trim().is_empty() || n.chars().count() > 200)
    {
        errors.push(FieldError::new(&["input", "name"], "INVALID", "must be 1 to 200 characters"));
    }
}

/// Every routing rule, in evaluation order.
pub async fn rules(db: &DatabaseConnection) -> AppResult<Vec<routing_rule::Model>> {
    Ok(routing_rule::Entity::find()
        .order_by_asc(routing_rule::Column::Position)
        .order_by_asc(routing_rule::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Creates (`id` none) or updates a routing rule.
pub async fn save_rule(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Option<Uuid>,
    input: RuleInput,
) -> AppResult<routing_rule::Model> {
    let mut errors = Vec::new();
    check_name(input.name.as_deref(), &mut errors);
    if id.is_none() && input.name.is_none() {
        errors.push(FieldError::new(&["input", "name"], "REQUIRED", "a new rule needs a name"));
    }
    if let Some(c) = &input.conditions {
        check_conditions(c, &mut errors);
    }
    let txn = db::begin_write(db).await?;
    check_team(&txn, input.team_id, &mut errors).await?;
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let now = Utc::now();
    let mut rule = match id {
        Some(id) => routing_rule::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("routing rule"))?
            .into_active_model(),
        None => routing_rule::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(String::new()),
            position: Set(0),
            enabled: Set(true),
            conditions: Set(json!({})),
            team_id: Set(None),
            set_priority: Set(None),
            add_tags: Set(json!([])),
            created_at: Set(now),
            updated_at: Set(now),
        },
    };
    if let Some(name) = input.name {
        rule.name = Set(name.trim().to_owned());
    }
    if let Some(p) = input.position {
        rule.position = Set(p);
    }
    if let Some(e) = input.enabled {
        rule.enabled = Set(e);
    }
    if let Some(c) = input.conditions {
        rule.conditions = Set(serde_json::to_value(c).map_err(AppError::internal)?);
    }
    if let Some(t) = input.team_id {
        rule.team_id = Set(t);
    }
    if let Some(p) = input.set_priority {
        rule.set_priority = Set(p);
    }
    if let Some(tags) = input.add_tags {
        rule.add_tags =
            Set(json!(tags.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect::<Vec<_>>()));
    }
    rule.updated_at = Set(now);
    let saved = if id.is_some() { rule.update(&txn).await? } else { rule.insert(&txn).await? };
    let op = if id.is_some() { "updateRoutingRule" } else { "createRoutingRule" };
    audit::record(&txn, actor, op, "routing_rule", Some(saved.id), json!({})).await?;
    txn.commit().await?;
    Ok(saved)
}

/// Deletes a routing rule; conversations it routed keep their team and lose the link.
pub async fn delete_rule(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<()> {
    let txn = db::begin_write(db).await?;
    let done = routing_rule::Entity::delete_by_id(id).exec(&txn).await?;
    if done.rows_affected == 0 {
        return Err(AppError::NotFound("routing rule"));
    }
    audit::record(&txn, actor, "deleteRoutingRule", "routing_rule", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(())
}

/// An SLA policy as written by a manager.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub name: Option<String>,
    pub channel: Option<Option<Channel>>,
    pub priority: Option<Option<Priority>>,
    pub first_response_minutes: Option<i32>,
    pub resolution_minutes: Option<i32>,
    pub active: Option<bool>,
    /// `Some(None)` counts around the clock again.
    pub business_hours: Option<Option<BusinessHours>>,
}

/// Every SLA policy.
pub async fn policies(db: &DatabaseConnection) -> AppResult<Vec<sla_policy::Model>> {
    Ok(sla_policy::Entity::find().order_by_asc(sla_policy::Column::Name).all(db).await?)
}

/// Creates (`id` none) or updates an SLA policy. Conversations keep the due times they
/// have; new conversations and priority changes use the new targets.
pub async fn save_policy(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    id: Option<Uuid>,
    input: PolicyInput,
) -> AppResult<sla_policy::Model> {
    let mut errors = Vec::new();
    check_name(input.name.as_deref(), &mut errors);
    for (field, v) in
        [("firstResponseMinutes", input.first_response_minutes), ("resolutionMinutes", input.resolution_minutes)]
    {
        if v.is_some_and(|m| !(1..=525_600).contains(&m)) {
            errors.push(FieldError::new(&["input", field], "OUT_OF_RANGE", "must be between 1 minute and a year"));
        }
        if id.is_none() && v.is_none() {
            errors.push(FieldError::new(&["input", field], "REQUIRED", "a new policy needs both targets"));
        }
    }
    if id.is_none() && input.name.is_none() {
        errors.push(FieldError::new(&["input", "name"], "REQUIRED", "a new policy needs a name"));
    }
    if let Some(Some(h)) = &input.business_hours
        && (h.start >= h.end
            || h.end > 24
            || h.days.is_empty()
            || h.days.iter().any(|d| !(1..=7).contains(d))
            || h.outside)
    {
        errors.push(FieldError::new(
            &["input", "businessHours"],
            "INVALID",
            "needs days 1–7 (Monday = 1) and 0 ≤ start < end ≤ 24",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let txn = db::begin_write(db).await?;
    let now = Utc::now();
    let mut p = match id {
        Some(id) => sla_policy::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound("SLA policy"))?
            .into_active_model(),
        None => sla_policy::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(String::new()),
            channel: Set(None),
            priority: Set(None),
            first_response_minutes: Set(0),
            resolution_minutes: Set(0),
            active: Set(true),
            business_hours: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        },
    };
    if let Some(hours) = input.business_hours {
        p.business_hours = Set(hours.map(|h| serde_json::to_value(h).unwrap_or_default()));
    }
    if let Some(n) = input.name {
        p.name = Set(n.trim().to_owned());
    }
    if let Some(c) = input.channel {
        p.channel = Set(c);
    }
    if let Some(pr) = input.priority {
        p.priority = Set(pr);
    }
    if let Some(m) = input.first_response_minutes {
        p.first_response_minutes = Set(m);
    }
    if let Some(m) = input.resolution_minutes {
        p.resolution_minutes = Set(m);
    }
    if let Some(a) = input.active {
        p.active = Set(a);
    }
    p.updated_at = Set(now);
    let saved = if id.is_some() { p.update(&txn).await? } else { p.insert(&txn).await? };
    let op = if id.is_some() { "updateSlaPolicy" } else { "createSlaPolicy" };
    audit::record(&txn, actor, op, "sla_policy", Some(saved.id), json!({})).await?;
    txn.commit().await?;
    Ok(saved)
}
