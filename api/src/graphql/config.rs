//! Routing rules and SLA policies over GraphQL (managers and admins).

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{routing_rule, sla_policy};

use super::enums::{Channel, Priority, Visibility};
use super::types::{UserError, actor, context, id, parse_id, split_user_errors};
use crate::interactions::config::{self, PolicyInput, RuleInput};
use crate::interactions::routing::{BusinessHours as DomainHours, Conditions};

/// Opening hours in a fixed UTC offset.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "BusinessHoursInput")]
pub struct BusinessHours {
    /// ISO weekdays, Monday = 1.
    days: Vec<u32>,
    /// First hour open (0–23).
    start: u32,
    /// First hour closed (1–24).
    end: u32,
    /// Offset from UTC, in minutes.
    #[graphql(default)]
    utc_offset_minutes: i32,
    /// Match outside these hours instead.
    #[graphql(default)]
    outside: bool,
}

/// Conditions of a routing rule; every one given must hold.
#[derive(SimpleObject, InputObject, Clone, Default)]
#[graphql(input_name = "RoutingConditionsInput")]
pub struct RoutingConditions {
    /// Any of these channels.
    channels: Option<Vec<Channel>>,
    /// Public posts or private messages only.
    visibility: Option<Visibility>,
    /// Any of these inboxes (case-insensitive).
    inboxes: Option<Vec<String>>,
    /// Any of these words or phrases in the body (whole words, case-insensitive).
    keywords: Option<Vec<String>>,
    /// Any of these customer segments.
    segments: Option<Vec<String>>,
    /// Inbound sentiment strictly below this score.
    sentiment_below: Option<f64>,
    /// Inside (or, with `outside`, outside) these hours.
    business_hours: Option<BusinessHours>,
}

impl From<BusinessHours> for DomainHours {
    fn from(h: BusinessHours) -> Self {
        DomainHours {
            days: h.days,
            start: h.start,
            end: h.end,
            utc_offset_minutes: h.utc_offset_minutes,
            outside: h.outside,
        }
    }
}

impl From<DomainHours> for BusinessHours {
    fn from(h: DomainHours) -> Self {
        BusinessHours {
            days: h.days,
            start: h.start,
            end: h.end,
            utc_offset_minutes: h.utc_offset_minutes,
            outside: h.outside,
        }
    }
}

impl From<RoutingConditions> for Conditions {
    fn from(c: RoutingConditions) -> Self {
        Conditions {
            channels: c.channels.map(|v| v.into_iter().map(Into::into).collect()),
            visibility: c.visibility.map(Into::into),
            inboxes: c.inboxes,
            keywords: c.keywords,
            segments: c.segments,
            sentiment_below: c.sentiment_below,
            business_hours: c.business_hours.map(Into::into),
        }
    }
}

impl From<Conditions> for RoutingConditions {
    fn from(c: Conditions) -> Self {
        RoutingConditions {
            channels: c.channels.map(|v| v.into_iter().map(Into::into).collect()),
            visibility: c.visibility.map(Into::into),
            inboxes: c.inboxes,
            keywords: c.keywords,
            segments: c.segments,
            sentiment_below: c.sentiment_below,
            business_hours: c.business_hours.map(Into::into),
        }
    }
}

/// An ordered routing rule: the first enabled rule whose conditions hold routes a new
/// conversation.
pub struct RoutingRule(routing_rule::Model);

#[Object]
impl RoutingRule {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Evaluation order (smallest first).
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// Whether the rule is evaluated.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// What must hold.
    async fn conditions(&self) -> Option<RoutingConditions> {
        serde_json::from_value::<Conditions>(self.0.conditions.clone()).ok().map(Into::into)
    }
    /// Team the conversation goes to.
    async fn team_id(&self) -> Option<ID> {
        self.0.team_id.map(id)
    }
    /// Priority it gets.
    async fn set_priority(&self) -> Option<Priority> {
        self.0.set_priority.map(Into::into)
    }
    /// Tags it gets.
    async fn add_tags(&self) -> Vec<String> {
        serde_json::from_value(self.0.add_tags.clone()).unwrap_or_default()
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// First-response and resolution targets for a channel and priority (null: any).
pub struct SlaPolicy(sla_policy::Model);

#[Object]
impl SlaPolicy {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Channel it applies to (null: every channel).
    async fn channel(&self) -> Option<Channel> {
        self.0.channel.map(Into::into)
    }
    /// Priority it applies to (null: every priority).
    async fn priority(&self) -> Option<Priority> {
        self.0.priority.map(Into::into)
    }
    /// Minutes to the first response.
    async fn first_response_minutes(&self) -> i32 {
        self.0.first_response_minutes
    }
    /// Minutes to resolution (time pending on the customer does not count).
    async fn resolution_minutes(&self) -> i32 {
        self.0.resolution_minutes
    }
    /// Whether it applies to new conversations.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Hours the targets count in (null: around the clock).
    async fn business_hours(&self) -> Option<BusinessHours> {
        let hours: DomainHours = serde_json::from_value(self.0.business_hours.clone()?).ok()?;
        Some(hours.into())
    }
}

/// A routing rule to create or change (absent fields stay as they are).
#[derive(InputObject)]
pub struct RoutingRuleInput {
    /// The rule to change; absent to create one.
    id: Option<ID>,
    /// Name (required to create).
    name: Option<String>,
    /// Evaluation order.
    position: Option<i32>,
    /// Whether the rule is evaluated.
    enabled: Option<bool>,
    /// What must hold.
    conditions: Option<RoutingConditions>,
    /// Team (null clears).
    team_id: MaybeUndefined<ID>,
    /// Priority (null clears).
    set_priority: MaybeUndefined<Priority>,
    /// Tags to add to routed conversations.
    add_tags: Option<Vec<String>>,
}

/// Result of `saveRoutingRule`.
#[derive(SimpleObject)]
pub struct RoutingRulePayload {
    /// The rule after the change.
    routing_rule: Option<RoutingRule>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

/// An SLA policy to create or change (absent fields stay as they are).
#[derive(InputObject)]
pub struct SlaPolicyInput {
    /// The policy to change; absent to create one.
    id: Option<ID>,
    /// Name (required to create).
    name: Option<String>,
    /// Channel (null: every channel).
    channel: MaybeUndefined<Channel>,
    /// Priority (null: every priority).
    priority: MaybeUndefined<Priority>,
    /// Minutes to the first response (required to create).
    first_response_minutes: Option<i32>,
    /// Minutes to resolution (required to create).
    resolution_minutes: Option<i32>,
    /// Whether it applies to new conversations (deactivate instead of deleting).
    active: Option<bool>,
    /// Count targets only inside these hours (null: around the clock).
    business_hours: MaybeUndefined<BusinessHours>,
}

/// Result of `saveSlaPolicy`.
#[derive(SimpleObject)]
pub struct SlaPolicyPayload {
    /// The policy after the change.
    sla_policy: Option<SlaPolicy>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

fn maybe<T, U: From<T>>(v: MaybeUndefined<T>) -> Option<Option<U>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(x) => Some(Some(x.into())),
    }
}

#[derive(Default)]
pub struct ConfigQuery;

#[Object]
impl ConfigQuery {
    /// Routing rules in evaluation order.
    async fn routing_rules(&self, ctx: &Context<'_>) -> Result<Vec<RoutingRule>> {
        let (state, _) = context(ctx)?;
        Ok(config::rules(state.db()).await?.into_iter().map(RoutingRule).collect())
    }

    /// SLA policies.
    async fn sla_policies(&self, ctx: &Context<'_>) -> Result<Vec<SlaPolicy>> {
        let (state, _) = context(ctx)?;
        Ok(config::policies(state.db()).await?.into_iter().map(SlaPolicy).collect())
    }
}

#[derive(Default)]
pub struct ConfigMutation;

#[Object]
impl ConfigMutation {
    /// Creates or changes a routing rule.
    async fn save_routing_rule(&self, ctx: &Context<'_>, input: RoutingRuleInput) -> Result<RoutingRulePayload> {
        let (state, _) = context(ctx)?;
        let rule_id = input.id.as_ref().map(|i| parse_id(i, &["input", "id"])).transpose()?;
        let team_id = match input.team_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(t) => Some(Some(parse_id(&t, &["input", "teamId"])?)),
        };
        let domain = RuleInput {
            name: input.name,
            position: input.position,
            enabled: input.enabled,
            conditions: input.conditions.map(Into::into),
            team_id,
            set_priority: maybe(input.set_priority),
            add_tags: input.add_tags,
        };
        let (rule, user_errors) = split_user_errors(config::save_rule(state.db(), actor(ctx)?, rule_id, domain).await)?;
        Ok(RoutingRulePayload { routing_rule: rule.map(RoutingRule), user_errors })
    }

    /// Deletes a routing rule; returns its id.
    async fn delete_routing_rule(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let (state, _) = context(ctx)?;
        let rule_id = parse_id(&id, &["id"])?;
        config::delete_rule(state.db(), actor(ctx)?, rule_id).await?;
        Ok(id)
    }

    /// Creates or changes an SLA policy.
    async fn save_sla_policy(&self, ctx: &Context<'_>, input: SlaPolicyInput) -> Result<SlaPolicyPayload> {
        let (state, _) = context(ctx)?;
        let policy_id = input.id.as_ref().map(|i| parse_id(i, &["input", "id"])).transpose()?;
        let domain = PolicyInput {
            name: input.name,
            channel: maybe(input.channel),
            priority: maybe(input.priority),
            first_response_minutes: input.first_response_minutes,
            resolution_minutes: input.resolution_minutes,
            active: input.active,
            business_hours: match input.business_hours {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(h) => Some(Some(h.into())),
            },
        };
        let (policy, user_errors) =
            split_user_errors(config::save_policy(state.db(), actor(ctx)?, policy_id, domain).await)?;
        Ok(SlaPolicyPayload { sla_policy: policy.map(SlaPolicy), user_errors })
    }
}
