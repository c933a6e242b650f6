//! Submitting feedback: a survey answer (NPS 0–10, CSAT 1–5, CES 1–7, with an optional
//! comment) or unsolicited feedback (a social mention, a review with optional 1–5
//! stars, a free-text comment). Idempotent on `(source, externalId)`.
//!
//! Every comment is scored by the sentiment analyser and tagged with the topics it
//! mentions, in the same transaction as the row. Surveys and topics are loaded once
//! per call. A call or batch is one write transaction with its audit entry, each
//! response in a savepoint of it, so a batch still answers per item
//! ([`batch::write_each`]).

use chrono::{DateTime, Utc};
use entity::enums::{Channel, FeedbackKind, SurveyKind};
use entity::{feedback, interaction, survey, touchpoint};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use super::surveys::{self, score_range};
use super::topics::{self, Tagger};
use crate::audit::Actor;
use crate::batch::{self, Stored};
use crate::customers::service::{self as customers, CustomerRef};
use crate::db;
use crate::error::{AppError, AppResult, FieldError};
use crate::events::{self, NewEvent};
use crate::sentiment;

/// Longest comment, in characters.
pub const MAX_COMMENT: usize = 10_000;

/// One piece of feedback as a survey vendor, a listening tool or a front end reports it.
#[derive(Debug, Clone)]
pub struct NewFeedback {
    pub customer: CustomerRef,
    /// The survey answered; its kind is the feedback's kind.
    pub survey_id: Option<Uuid>,
    /// Required without a survey (and must agree with it otherwise).
    pub kind: Option<FeedbackKind>,
    pub score: Option<i16>,
    pub comment: Option<String>,
    pub channel: Channel,
    pub touchpoint_id: Option<Uuid>,
    pub interaction_id: Option<Uuid>,
    /// Who reports it (the idempotency key's namespace); defaults to `api`.
    pub source: Option<String>,
    pub external_id: Option<String>,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// What one call needs loaded: surveys and topics.
pub struct Context {
    surveys: Vec<survey::Model>,
    tagger: Tagger,
}

impl Context {
    pub async fn load(db: &impl ConnectionTrait) -> AppResult<Self> {
        Ok(Context { surveys: surveys::list(db).await?, tagger: Tagger::load(db).await? })
    }
}

fn survey_kind(kind: FeedbackKind) -> Option<SurveyKind> {
    match kind {
        FeedbackKind::Nps => Some(SurveyKind::Nps),
        FeedbackKind::Csat => Some(SurveyKind::Csat),
        FeedbackKind::Ces => Some(SurveyKind::Ces),
        FeedbackKind::SocialMention | FeedbackKind::Review | FeedbackKind::Comment => None,
    }
}

fn feedback_kind(kind: SurveyKind) -> FeedbackKind {
    match kind {
        SurveyKind::Nps => FeedbackKind::Nps,
        SurveyKind::Csat => FeedbackKind::Csat,
        SurveyKind::Ces => FeedbackKind::Ces,
    }
}

/// Checks the input against the loaded surveys; returns the feedback's kind.
fn validate(ctx: &Context, path: &[&str], input: &NewFeedback) -> AppResult<FeedbackKind> {
    let f = |name: &'static str| [path, &[name]].concat();
    let mut errors = Vec::new();
    input.customer.check(path, &mut errors);
    let survey = match input.survey_id {
        Some(id) => match ctx.surveys.iter().find(|s| s.id == id) {
            Some(s) if !s.active => {
                errors.push(FieldError::new(&f("surveyId"), "SURVEY_CLOSED", "the survey no longer takes answers"));
                Some(s)
            }
            Some(s) => Some(s),
            None => {
                errors.push(FieldError::new(&f("surveyId"), "NOT_FOUND", "no such survey"));
                None
            }
        },
        None => None,
    };
    let kind = match (survey, input.kind) {
        (Some(s), Some(k)) if feedback_kind(s.kind) != k => {
            errors.push(FieldError::new(&f("kind"), "MISMATCH", "differs from the survey's kind"));
            k
        }
        (Some(s), _) => feedback_kind(s.kind),
        (None, Some(k)) => k,
        (None, None) => {
            errors.push(FieldError::new(&f("kind"), "REQUIRED", "give a kind or a survey"));
            FeedbackKind::Comment
        }
    };
    let range = match kind {
        FeedbackKind::Review => Some((1, 5)),
        other => survey_kind(other).map(score_range),
    };
    match (range, input.score) {
        (Some((lo, hi)), Some(s)) if !(lo..=hi).contains(&s) => {
            errors.push(FieldError::new(&f("score"), "OUT_OF_RANGE", format!("must be {lo} to {hi} for this kind")))
        }
        (None, Some(_)) => {
            errors.push(FieldError::new(&f("score"), "NOT_ALLOWED", "this kind of feedback has no score"))
        }
        (Some(_), None) if survey_kind(kind).is_some() => {
            errors.push(FieldError::new(&f("score"), "REQUIRED", "a survey answer needs a score"))
        }
        _ => {}
    }
    let comment = input.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if comment.is_none() && survey_kind(kind).is_none() && kind != FeedbackKind::Review {
        errors.push(FieldError::new(&f("comment"), "REQUIRED", "unsolicited feedback needs its text"));
    }
    if comment.is_none() && kind == FeedbackKind::Review && input.score.is_none() {
        errors.push(FieldError::new(&f("comment"), "REQUIRED", "a review needs stars or text"));
    }
    if input.comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        errors.push(FieldError::new(&f("comment"), "TOO_LONG", format!("must be at most {MAX_COMMENT} characters")));
    }
    if input.source.as_ref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > 100) {
        errors.push(FieldError::new(&f("source"), "INVALID", "must be 1 to 100 characters"));
    }
    if input.external_id.as_ref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > 300) {
        errors.push(FieldError::new(&f("externalId"), "INVALID", "must be 1 to 300 characters"));
    }
    batch::check_occurred_at(&f("occurredAt"), input.occurred_at, &mut errors);
    if errors.is_empty() { Ok(kind) } else { Err(AppError::Invalid(errors)) }
}

/// Submits one piece of feedback (its audit entry in the same transaction).
pub async fn submit(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    input: NewFeedback,
) -> AppResult<Stored<feedback::Model>> {
    let ctx = Context::load(db).await?;
    let checked = check(actor, &ctx, &["input"], input);
    batch::write_one(db, actor, "submitFeedback", checked, &Responses { actor, ctx: &ctx }).await
}

/// Submits a batch, answering per item (in order), in one transaction with its audit
/// entry (see [`batch::write_each`]). An item already refused by the caller keeps its
/// answer and its place.
pub async fn submit_batch(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    inputs: Vec<AppResult<NewFeedback>>,
) -> AppResult<Vec<AppResult<Stored<feedback::Model>>>> {
    batch::check_size(inputs.len())?;
    let ctx = Context::load(db).await?;
    let checked = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| input.and_then(|input| check(actor, &ctx, &["inputs", &i.to_string()], input)))
        .collect();
    batch::write_each(db, actor, "ingestFeedback", checked, &Responses { actor, ctx: &ctx }).await
}

/// Writes feedback for one call: `submitFeedback`, or an `ingestFeedback` batch.
struct Responses<'x> {
    actor: Actor<'x>,
    ctx: &'x Context,
}

impl batch::Writes for Responses<'_> {
    type Checked = Checked;
    type Row = feedback::Model;
    const TARGET: &'static str = "feedback";

    fn id(row: &feedback::Model) -> Uuid {
        row.id
    }

    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        item: &'a Checked,
    ) -> impl Future<Output = AppResult<Option<Stored<feedback::Model>>>> + Send + 'a {
        write(txn, self.actor, self.ctx, item)
    }
}

/// Feedback that passed its checks, with its kind, keys and the comment's analysis.
struct Checked {
    path: Vec<String>,
    input: NewFeedback,
    kind: FeedbackKind,
    source: String,
    external_id: Option<String>,
    comment: Option<String>,
    score: Option<sentiment::Sentiment>,
}

/// The checks that need no database (fields, survey and score, the token's channels,
/// the identities' forms), and the comment scored before any lock is taken.
fn check(actor: Actor<'_>, ctx: &Context, path: &[&str], input: NewFeedback) -> AppResult<Checked> {
    let kind = validate(ctx, path, &input)?;
    if !actor.principal.may_use_channel(input.channel) {
        return Err(AppError::forbidden(format!("this token may not write to the {:?} channel", input.channel)));
    }
    customers::normalize_all(&[path, &["identities"]].concat(), &input.customer.identities)?;
    let source = input.source.as_deref().map_or("api", str::trim).to_owned();
    let external_id = input.external_id.as_deref().map(|e| e.trim().to_owned());
    let comment = input.comment.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned);
    let score = comment.as_deref().map(sentiment::analyse);
    let path = path.iter().map(|p| (*p).to_owned()).collect();
    Ok(Checked { path, input, kind, source, external_id, comment, score })
}

/// Stores one checked response in the caller's transaction: the stored one for a known
/// key, else resolve and hold the customer, insert, tag its topics, emit
/// `feedback.received`. `Ok(None)`: lost a race; the caller rolls back and runs it again.
async fn write(
    txn: &DatabaseTransaction,
    actor: Actor<'_>,
    ctx: &Context,
    c: &Checked,
) -> AppResult<Option<Stored<feedback::Model>>> {
    let path: Vec<&str> = c.path.iter().map(String::as_str).collect();
    if let Some(ext) = &c.external_id
        && let Some(found) = feedback::Entity::find()
            .filter(feedback::Column::Source.eq(&c.source))
            .filter(feedback::Column::ExternalId.eq(ext))
            .one(txn)
            .await?
    {
        return Ok(Some(Stored { row: found, created: false }));
    }
    let Some(customer) = customers::resolve_and_hold(txn, actor, &path, &c.input.customer).await? else {
        return Ok(None);
    };
    check_links(txn, &path, &c.input, customer.id).await?;
    let now = Utc::now();
    let row = feedback::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(customer.id),
        survey_id: Set(c.input.survey_id),
        kind: Set(c.kind),
        score: Set(c.input.score),
        comment: Set(c.comment.clone()),
        channel: Set(c.input.channel),
        touchpoint_id: Set(c.input.touchpoint_id),
        interaction_id: Set(c.input.interaction_id),
        sentiment_score: Set(c.score.map(|s| s.score)),
        sentiment_label: Set(c.score.map(|s| s.label)),
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
    topics::tag_feedback(txn, &ctx.tagger, inserted.id, inserted.comment.as_deref()).await?;
    events::emit(txn, received_event(&inserted)).await?;
    Ok(Some(Stored { row: inserted, created: true }))
}

/// A linked touchpoint or interaction must exist and be the same customer's.
async fn check_links(
    txn: &impl ConnectionTrait,
    path: &[&str],
    input: &NewFeedback,
    customer_id: Uuid,
) -> AppResult<()> {
    let mut errors = Vec::new();
    if let Some(id) = input.touchpoint_id {
        match touchpoint::Entity::find_by_id(id).one(txn).await? {
            Some(t) if t.customer_id == customer_id => {}
            Some(_) => errors.push(FieldError::new(
                &[path, &["touchpointId"]].concat(),
                "MISMATCH",
                "belongs to another customer",
            )),
            None => {
                errors.push(FieldError::new(&[path, &["touchpointId"]].concat(), "NOT_FOUND", "no such touchpoint"))
            }
        }
    }
    if let Some(id) = input.interaction_id {
        match interaction::Entity::find_by_id(id).one(txn).await? {
            Some(i) if i.customer_id == customer_id => {}
            Some(_) => errors.push(FieldError::new(
                &[path, &["interactionId"]].concat(),
                "MISMATCH",
                "belongs to another customer",
            )),
            None => {
                errors.push(FieldError::new(&[path, &["interactionId"]].concat(), "NOT_FOUND", "no such interaction"))
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(AppError::Invalid(errors)) }
}

/// The `feedback.received` event (ids and codes only).
fn received_event(f: &feedback::Model) -> NewEvent {
    NewEvent {
        event_type: "feedback.received",
        aggregate_type: "feedback",
        aggregate_id: f.id,
        customer_id: Some(f.customer_id),
        channel: Some(f.channel),
        payload: json!({ "kind": f.kind, "score": f.score, "surveyId": f.survey_id, "sentiment": f.sentiment_label }),
    }
}
