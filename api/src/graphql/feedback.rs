//! Feedback over GraphQL: surveys and topics (managers), and feedback submission
//! (operators and tokens with `feedback:write`), one at a time or in batches.

use async_graphql::{ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{survey, topic};

use super::customer::IdentityValueInput;
use super::enums::{BrandSide, Channel, FeedbackKind, SurveyKind};
use super::facts::Feedback;
use super::interactions::customer_ref;
use super::types::{
    IngestStatus, UserError, actor, context, convert_batch, id, int, item_answer, parse_id, split_user_errors,
};
use crate::auth::policy::READ_CUSTOMERS;
use crate::error::AppError;
use crate::feedback::submit::{self, NewFeedback};
use crate::feedback::surveys::{self, SurveyInput};
use crate::feedback::topics::{self, TopicInput};

/// A survey question: NPS, CSAT or CES.
pub struct Survey(survey::Model);

#[Object]
impl Survey {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The measure it asks for (and so its score range).
    async fn kind(&self) -> SurveyKind {
        self.0.kind.into()
    }
    /// The question as asked.
    async fn question(&self) -> &str {
        &self.0.question
    }
    /// The channel it is sent on, if one.
    async fn channel(&self) -> Option<Channel> {
        self.0.channel.map(Into::into)
    }
    /// The journey stage it follows, if one.
    async fn stage_id(&self) -> Option<ID> {
        self.0.stage_id.map(id)
    }
    /// Whether it takes answers.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Lowest score.
    async fn min_score(&self) -> i32 {
        i32::from(surveys::score_range(self.0.kind).0)
    }
    /// Highest score.
    async fn max_score(&self) -> i32 {
        i32::from(surveys::score_range(self.0.kind).1)
    }
}

/// A topic: keywords and phrases that tag feedback and inbound interactions.
pub struct Topic(pub topic::Model);

#[Object]
impl Topic {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Name, unique.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Words and phrases (matched as whole words, case-insensitively).
    async fn keywords(&self) -> Vec<String> {
        topics::keywords_of(&self.0)
    }
    /// True while the history is being re-tagged after a keyword change.
    async fn retag_pending(&self) -> bool {
        topics::retag_pending_for(&self.0)
    }
    /// When the history was last re-tagged (the change it caught up with).
    async fn retagged_at(&self) -> Option<DateTime<Utc>> {
        self.0.retagged_at
    }
    /// Set when the topic is a brand on the watch list: ours or a competitor's.
    async fn brand(&self) -> Option<BrandSide> {
        topics::Side::of(&self.0).map(Into::into)
    }
    /// A brand's accounts (`@acmecare`, a number, an address): matched as words in
    /// texts, and a message that reached one of them (its `inbox`) mentions the brand.
    async fn handles(&self) -> Vec<String> {
        topics::handles_of(&self.0)
    }
}

/// A survey to create (no `id`) or update (absent fields stay as they are).
#[derive(InputObject)]
pub struct SaveSurveyInput {
    /// The survey to update; absent to create one.
    id: Option<ID>,
    /// Name (required to create).
    name: Option<String>,
    /// Measure (required to create; fixed afterwards).
    kind: Option<SurveyKind>,
    /// The question (required to create).
    question: Option<String>,
    /// Channel it is sent on; `null` clears it.
    channel: MaybeUndefined<Channel>,
    /// Journey stage it follows; `null` clears it.
    stage_id: MaybeUndefined<ID>,
    /// Whether it takes answers.
    active: Option<bool>,
}

/// Result of `saveSurvey`.
#[derive(SimpleObject)]
pub struct SaveSurveyPayload {
    /// The saved survey.
    survey: Option<Survey>,
    /// Problems the caller can fix.
    user_errors: Vec<UserError>,
}

/// A topic to create (no `id`) or update.
#[derive(InputObject)]
pub struct SaveTopicInput {
    /// The topic to update; absent to create one.
    id: Option<ID>,
    /// Name, unique (required to create).
    name: Option<String>,
    /// Words and phrases (required to create). Changing them re-tags the history in
    /// the background (`retagPending` until done).
    keywords: Option<Vec<String>>,
    /// Puts the topic on the brand watch list, as ours or a competitor's (a brand
    /// stays one; its side can change).
    brand: Option<BrandSide>,
    /// A brand's accounts, at most 20 (only brands have them). Changing them re-tags
    /// the history like keywords.
    handles: Option<Vec<String>>,
}

/// Result of `saveTopic`.
#[derive(SimpleObject)]
pub struct SaveTopicPayload {
    /// The saved topic.
    topic: Option<Topic>,
    /// Problems the caller can fix.
    user_errors: Vec<UserError>,
}

/// Result of `deleteTopic`.
#[derive(SimpleObject)]
pub struct DeleteTopicPayload {
    /// The id of the deleted topic.
    deleted_id: ID,
}

/// A survey answer or unsolicited feedback.
#[derive(InputObject)]
pub struct SubmitFeedbackInput {
    /// The survey answered (its kind is the feedback's kind).
    survey_id: Option<ID>,
    /// Kind; required without a survey.
    kind: Option<FeedbackKind>,
    /// Score: NPS 0–10, CSAT 1–5, CES 1–7, review stars 1–5; none for mentions and
    /// comments.
    score: Option<i32>,
    /// What the customer wrote (at most 10,000 characters); scored for sentiment and
    /// tagged with topics.
    comment: Option<String>,
    /// Channel it came on.
    channel: Channel,
    /// The touchpoint it follows (the same customer's).
    touchpoint_id: Option<ID>,
    /// The interaction it came with (the same customer's).
    interaction_id: Option<ID>,
    /// Who reports it (namespace of `externalId`); defaults to `api`.
    source: Option<String>,
    /// The source's id for it: the same (source, externalId) again is returned, not
    /// stored twice.
    external_id: Option<String>,
    /// When it was given; defaults to now.
    occurred_at: Option<DateTime<Utc>>,
    /// The customer, when known.
    customer_id: Option<ID>,
    /// Identities of the customer, to find or create them.
    #[graphql(default)]
    identities: Vec<IdentityValueInput>,
    /// Name for a customer created from this feedback.
    customer_name: Option<String>,
}

impl SubmitFeedbackInput {
    fn into_domain(self, path: &[&str]) -> Result<NewFeedback, AppError> {
        let at = |name: &'static str| [path, &[name]].concat();
        let score = match self.score {
            Some(s) => Some(
                i16::try_from(s).map_err(|_| AppError::invalid(&at("score"), "OUT_OF_RANGE", "is far out of range"))?,
            ),
            None => None,
        };
        let opt_id = |v: &Option<ID>, name: &'static str| v.as_ref().map(|i| parse_id(i, &at(name))).transpose();
        Ok(NewFeedback {
            survey_id: opt_id(&self.survey_id, "surveyId")?,
            kind: self.kind.map(Into::into),
            score,
            comment: self.comment,
            channel: self.channel.into(),
            touchpoint_id: opt_id(&self.touchpoint_id, "touchpointId")?,
            interaction_id: opt_id(&self.interaction_id, "interactionId")?,
            source: self.source,
            external_id: self.external_id,
            occurred_at: self.occurred_at,
            customer: customer_ref(self.customer_id, self.identities, self.customer_name, path)?,
        })
    }
}

/// Result of `submitFeedback`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SubmitFeedbackPayload {
    /// The stored feedback (the earlier one for a duplicate), for callers who may read
    /// customers (`FORBIDDEN` otherwise: a replay answers with what another source
    /// stored).
    #[graphql(guard = "READ_CUSTOMERS")]
    feedback: Option<Feedback>,
    /// True when it was already known and nothing changed.
    duplicate: bool,
    /// Problems the caller can fix (e.g. `OUT_OF_RANGE` for a score).
    user_errors: Vec<UserError>,
}

/// The answer for one item of `ingestFeedback`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct FeedbackItemResult {
    /// Position of the item in the batch (0 first).
    index: i32,
    /// Outcome.
    status: IngestStatus,
    /// The stored feedback, unless rejected; for callers who may read customers.
    #[graphql(guard = "READ_CUSTOMERS")]
    feedback: Option<Feedback>,
    /// Problems with the item the caller can fix.
    user_errors: Vec<UserError>,
    /// `BAD_USER_INPUT` with `userErrors`, or the code of any other failure.
    error_code: Option<String>,
}

#[ComplexObject]
impl SubmitFeedbackPayload {
    /// Id of the stored feedback: all a caller who may write but not read gets.
    async fn feedback_id(&self) -> Option<ID> {
        self.feedback.as_ref().map(|f| id(f.0.id))
    }
}

#[ComplexObject]
impl FeedbackItemResult {
    /// Id of the stored feedback, unless rejected.
    async fn feedback_id(&self) -> Option<ID> {
        self.feedback.as_ref().map(|f| id(f.0.id))
    }
}

/// Result of `ingestFeedback`.
#[derive(SimpleObject)]
pub struct IngestFeedbackPayload {
    /// One answer per item, in order.
    results: Vec<FeedbackItemResult>,
    /// Items stored now.
    created: i32,
    /// Items already known.
    duplicates: i32,
    /// Items refused.
    rejected: i32,
}

fn maybe<T, U>(v: MaybeUndefined<T>, f: impl FnOnce(T) -> Result<U, AppError>) -> Result<Option<Option<U>>, AppError> {
    Ok(match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(x) => Some(Some(f(x)?)),
    })
}

#[derive(Default)]
pub struct FeedbackQuery;

#[Object]
impl FeedbackQuery {
    /// Every survey, by name.
    async fn surveys(&self, ctx: &Context<'_>) -> Result<Vec<Survey>> {
        let (state, _) = context(ctx)?;
        Ok(surveys::list(state.db()).await?.into_iter().map(Survey).collect())
    }

    /// Every topic, by name.
    async fn topics(&self, ctx: &Context<'_>) -> Result<Vec<Topic>> {
        let (state, _) = context(ctx)?;
        Ok(topics::list(state.db()).await?.into_iter().map(Topic).collect())
    }
}

#[derive(Default)]
pub struct FeedbackMutation;

#[Object]
impl FeedbackMutation {
    /// Creates or updates a survey.
    async fn save_survey(&self, ctx: &Context<'_>, input: SaveSurveyInput) -> Result<SaveSurveyPayload> {
        let (state, _) = context(ctx)?;
        let result = async {
            let survey_id = input.id.as_ref().map(|i| parse_id(i, &["input", "id"])).transpose()?;
            let domain = SurveyInput {
                name: input.name,
                kind: input.kind.map(Into::into),
                question: input.question,
                channel: maybe(input.channel, |c| Ok(c.into()))?,
                stage_id: maybe(input.stage_id, |s| parse_id(&s, &["input", "stageId"]))?,
                active: input.active,
            };
            surveys::save(state.db(), actor(ctx)?, survey_id, domain).await
        }
        .await;
        let (survey, user_errors) = split_user_errors(result)?;
        Ok(SaveSurveyPayload { survey: survey.map(Survey), user_errors })
    }

    /// Creates or updates a topic; new keywords re-tag the history in the background.
    async fn save_topic(&self, ctx: &Context<'_>, input: SaveTopicInput) -> Result<SaveTopicPayload> {
        let (state, _) = context(ctx)?;
        let result = async {
            let topic_id = input.id.as_ref().map(|i| parse_id(i, &["input", "id"])).transpose()?;
            let domain = TopicInput {
                name: input.name,
                keywords: input.keywords,
                brand: input.brand.map(Into::into),
                handles: input.handles,
            };
            topics::save(state.db(), actor(ctx)?, topic_id, domain).await
        }
        .await;
        let (topic, user_errors) = split_user_errors(result)?;
        Ok(SaveTopicPayload { topic: topic.map(Topic), user_errors })
    }

    /// Deletes a topic and its tags (the tagged feedback and interactions stay).
    async fn delete_topic(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteTopicPayload> {
        let (state, _) = context(ctx)?;
        topics::delete(state.db(), actor(ctx)?, parse_id(&id, &["id"])?).await?;
        Ok(DeleteTopicPayload { deleted_id: id })
    }

    /// Submits one survey answer or piece of unsolicited feedback. Idempotent on
    /// (source, externalId).
    async fn submit_feedback(&self, ctx: &Context<'_>, input: SubmitFeedbackInput) -> Result<SubmitFeedbackPayload> {
        let (state, _) = context(ctx)?;
        let result = match input.into_domain(&["input"]) {
            Ok(domain) => submit::submit(state.db(), actor(ctx)?, domain).await,
            Err(e) => Err(e),
        };
        let (stored, user_errors) = split_user_errors(result)?;
        Ok(SubmitFeedbackPayload {
            duplicate: stored.as_ref().is_some_and(|s| !s.created),
            feedback: stored.map(|s| Feedback(s.row)),
            user_errors,
        })
    }

    /// Submits up to 1,000 pieces of feedback, each on its own.
    async fn ingest_feedback(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<SubmitFeedbackInput>,
    ) -> Result<IngestFeedbackPayload> {
        let (state, _) = context(ctx)?;
        crate::batch::check_size(inputs.len())?;
        let inputs = convert_batch(inputs, SubmitFeedbackInput::into_domain);
        let answers = submit::submit_batch(state.db(), actor(ctx)?, inputs).await?;
        let results: Vec<FeedbackItemResult> = answers
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (status, feedback, user_errors, error_code) = item_answer(r, Feedback);
                FeedbackItemResult { index: int(i), status, feedback, user_errors, error_code }
            })
            .collect();
        let count = |s: IngestStatus| int(results.iter().filter(|r| r.status == s).count());
        Ok(IngestFeedbackPayload {
            created: count(IngestStatus::Created),
            duplicates: count(IngestStatus::Duplicate),
            rejected: count(IngestStatus::Rejected),
            results,
        })
    }
}
