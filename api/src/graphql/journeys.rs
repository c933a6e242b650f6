//! Journeys over GraphQL: configuration (managers), touchpoint recording (operators
//! and tokens with `touchpoints:write`), one at a time or in batches answered per item.

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, OneofObject, Result, SimpleObject,
};
use chrono::{DateTime, Utc};

use super::customer::IdentityValueInput;
use super::enums::{Channel, TouchpointOutcome};
use super::facts::Touchpoint;
use super::interactions::customer_ref;
use super::types::{
    IngestStatus, UserError, actor, context, convert_batch, id, int, item_answer, parse_id, split_user_errors,
};
use crate::auth::policy::READ_CUSTOMERS;
use crate::error::AppError;
use crate::journeys::config::{self, JourneyInput, StageInput};
use crate::journeys::touchpoints::{self, NewTouchpoint, StageRef};

/// A journey: ordered stages a customer moves through (e.g. browse → cart → checkout).
pub struct Journey(pub config::Journey);

#[Object]
impl Journey {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.journey.id)
    }
    /// Name, unique.
    async fn name(&self) -> &str {
        &self.0.journey.name
    }
    /// What the journey covers.
    async fn description(&self) -> Option<&str> {
        self.0.journey.description.as_deref()
    }
    /// The stages, first to last.
    async fn stages(&self) -> Vec<JourneyStage> {
        self.0
            .stages
            .iter()
            .map(|s| JourneyStage { id: id(s.id), name: s.name.clone(), position: s.position })
            .collect()
    }
    /// When it was last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.journey.updated_at
    }
}

/// One stage of a journey.
#[derive(SimpleObject)]
pub struct JourneyStage {
    /// Stable id.
    id: ID,
    /// Name, unique within the journey.
    name: String,
    /// Order within the journey, 0 first.
    position: i32,
}

/// One stage in the wanted order: give `id` to keep (rename or move) an existing
/// stage, leave it out to add a new one.
#[derive(InputObject)]
pub struct JourneyStageInput {
    /// An existing stage of this journey.
    id: Option<ID>,
    /// Name, unique within the journey.
    name: String,
}

/// A journey to create (no `id`) or update (absent fields stay as they are).
#[derive(InputObject)]
pub struct SaveJourneyInput {
    /// The journey to update; absent to create one.
    id: Option<ID>,
    /// Name, unique (required to create).
    name: Option<String>,
    /// What the journey covers; `null` clears it.
    description: MaybeUndefined<String>,
    /// The complete list of stages in order (required to create). Stages left out are
    /// removed, which is refused for a stage with touchpoints.
    stages: Option<Vec<JourneyStageInput>>,
}

/// Result of `saveJourney`.
#[derive(SimpleObject)]
pub struct SaveJourneyPayload {
    /// The saved journey.
    journey: Option<Journey>,
    /// Problems the caller can fix.
    user_errors: Vec<UserError>,
}

/// Result of `deleteJourney`.
#[derive(SimpleObject)]
pub struct DeleteJourneyPayload {
    /// The id of the deleted journey.
    deleted_id: Option<ID>,
    /// Problems the caller can fix (`JOURNEY_IN_USE`).
    user_errors: Vec<UserError>,
}

/// The stage of a touchpoint: by id, or by name within the journey.
#[derive(OneofObject)]
pub enum StageRefInput {
    /// The stage's id.
    Id(ID),
    /// The stage's name (case-insensitive).
    Name(String),
}

/// A customer event at a journey stage.
#[derive(InputObject)]
pub struct RecordTouchpointInput {
    /// The journey.
    journey_id: ID,
    /// The stage within it.
    stage: StageRefInput,
    /// Channel it happened on.
    channel: Channel,
    /// What happened, e.g. `checkout` or `delivery`.
    name: String,
    /// How it ended.
    outcome: TouchpointOutcome,
    /// When it happened; defaults to now.
    occurred_at: Option<DateTime<Utc>>,
    /// The interaction it came with (the same customer's).
    interaction_id: Option<ID>,
    /// Who reports it (namespace of `externalId`); defaults to `api`.
    source: Option<String>,
    /// The source's id for the event: the same (source, externalId) again is the same
    /// touchpoint, returned and not recorded twice.
    external_id: Option<String>,
    /// The customer, when known.
    customer_id: Option<ID>,
    /// Identities of the customer, to find or create them.
    #[graphql(default)]
    identities: Vec<IdentityValueInput>,
    /// Name for a customer created from this event.
    customer_name: Option<String>,
}

impl RecordTouchpointInput {
    fn into_domain(self, path: &[&str]) -> Result<NewTouchpoint, AppError> {
        let at = |name: &'static str| [path, &[name]].concat();
        Ok(NewTouchpoint {
            journey_id: parse_id(&self.journey_id, &at("journeyId"))?,
            stage: match self.stage {
                StageRefInput::Id(sid) => StageRef::Id(parse_id(&sid, &at("stage"))?),
                StageRefInput::Name(n) => StageRef::Name(n),
            },
            channel: self.channel.into(),
            name: self.name,
            outcome: self.outcome.into(),
            occurred_at: self.occurred_at,
            interaction_id: self.interaction_id.as_ref().map(|i| parse_id(i, &at("interactionId"))).transpose()?,
            source: self.source,
            external_id: self.external_id,
            customer: customer_ref(self.customer_id, self.identities, self.customer_name, path)?,
        })
    }
}

/// Result of `recordTouchpoint`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RecordTouchpointPayload {
    /// The stored touchpoint (the earlier one for a duplicate), for callers who may
    /// read customers (`FORBIDDEN` otherwise: a replay answers with what another
    /// source stored).
    #[graphql(guard = "READ_CUSTOMERS")]
    touchpoint: Option<Touchpoint>,
    /// True when the event was already known and nothing changed.
    duplicate: bool,
    /// Problems the caller can fix.
    user_errors: Vec<UserError>,
}

/// The answer for one touchpoint of a batch.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct TouchpointItemResult {
    /// Position of the item in the batch (0 first).
    index: i32,
    /// Outcome.
    status: IngestStatus,
    /// The stored touchpoint, unless rejected; for callers who may read customers.
    #[graphql(guard = "READ_CUSTOMERS")]
    touchpoint: Option<Touchpoint>,
    /// Problems with the item the caller can fix.
    user_errors: Vec<UserError>,
    /// Code of any other failure (`FORBIDDEN`, `CONFLICT`, `INTERNAL`, …).
    error_code: Option<String>,
}

#[ComplexObject]
impl RecordTouchpointPayload {
    /// Id of the stored touchpoint: all a caller who may write but not read gets.
    async fn touchpoint_id(&self) -> Option<ID> {
        self.touchpoint.as_ref().map(|t| id(t.0.id))
    }
}

#[ComplexObject]
impl TouchpointItemResult {
    /// Id of the stored touchpoint, unless rejected.
    async fn touchpoint_id(&self) -> Option<ID> {
        self.touchpoint.as_ref().map(|t| id(t.0.id))
    }
}

/// Result of `recordTouchpoints`.
#[derive(SimpleObject)]
pub struct RecordTouchpointsPayload {
    /// One answer per item, in order.
    results: Vec<TouchpointItemResult>,
    /// Items recorded now.
    created: i32,
    /// Items already known.
    duplicates: i32,
    /// Items refused.
    rejected: i32,
}

#[derive(Default)]
pub struct JourneyQuery;

#[Object]
impl JourneyQuery {
    /// Every journey with its stages, by name.
    async fn journeys(&self, ctx: &Context<'_>) -> Result<Vec<Journey>> {
        let (state, _) = context(ctx)?;
        Ok(config::list(state.db()).await?.into_iter().map(Journey).collect())
    }
}

#[derive(Default)]
pub struct JourneyMutation;

#[Object]
impl JourneyMutation {
    /// Creates or updates a journey and its ordered stages.
    async fn save_journey(&self, ctx: &Context<'_>, input: SaveJourneyInput) -> Result<SaveJourneyPayload> {
        let (state, _) = context(ctx)?;
        let result = async {
            let journey_id = input.id.as_ref().map(|i| parse_id(i, &["input", "id"])).transpose()?;
            let stages = match input.stages {
                Some(list) => {
                    let mut out = Vec::with_capacity(list.len());
                    for (i, s) in list.into_iter().enumerate() {
                        let sid = match &s.id {
                            Some(v) => Some(parse_id(v, &["input", "stages", &i.to_string(), "id"])?),
                            None => None,
                        };
                        out.push(StageInput { id: sid, name: s.name });
                    }
                    Some(out)
                }
                None => None,
            };
            let description = match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(d)),
            };
            let domain = JourneyInput { name: input.name, description, stages };
            config::save(state.db(), actor(ctx)?, journey_id, domain).await
        }
        .await;
        let (journey, user_errors) = split_user_errors(result)?;
        Ok(SaveJourneyPayload { journey: journey.map(Journey), user_errors })
    }

    /// Deletes a journey without touchpoints.
    async fn delete_journey(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteJourneyPayload> {
        let (state, _) = context(ctx)?;
        let journey_id = parse_id(&id, &["id"])?;
        let result = config::delete(state.db(), actor(ctx)?, journey_id).await;
        let (done, user_errors) = split_user_errors(result)?;
        Ok(DeleteJourneyPayload { deleted_id: done.map(|()| id), user_errors })
    }

    /// Records one touchpoint. Idempotent on (source, externalId).
    async fn record_touchpoint(
        &self,
        ctx: &Context<'_>,
        input: RecordTouchpointInput,
    ) -> Result<RecordTouchpointPayload> {
        let (state, _) = context(ctx)?;
        let result = match input.into_domain(&["input"]) {
            Ok(domain) => touchpoints::record(state.db(), actor(ctx)?, domain).await,
            Err(e) => Err(e),
        };
        let (stored, user_errors) = split_user_errors(result)?;
        Ok(RecordTouchpointPayload {
            duplicate: stored.as_ref().is_some_and(|s| !s.created),
            touchpoint: stored.map(|s| Touchpoint(s.row)),
            user_errors,
        })
    }

    /// Records up to 1,000 touchpoints, each on its own: one bad item never loses the
    /// others.
    async fn record_touchpoints(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<RecordTouchpointInput>,
    ) -> Result<RecordTouchpointsPayload> {
        let (state, _) = context(ctx)?;
        crate::batch::check_size(inputs.len())?;
        let inputs = convert_batch(inputs, RecordTouchpointInput::into_domain);
        let answers = touchpoints::record_batch(state.db(), actor(ctx)?, inputs).await?;
        let results: Vec<TouchpointItemResult> = answers
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (status, touchpoint, user_errors, error_code) = item_answer(r, Touchpoint);
                TouchpointItemResult { index: int(i), status, touchpoint, user_errors, error_code }
            })
            .collect();
        let count = |s: IngestStatus| int(results.iter().filter(|r| r.status == s).count());
        Ok(RecordTouchpointsPayload {
            created: count(IngestStatus::Created),
            duplicates: count(IngestStatus::Duplicate),
            rejected: count(IngestStatus::Rejected),
            results,
        })
    }
}
