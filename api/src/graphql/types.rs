//! GraphQL types shared by every area: user errors, enums mirrored from the entity
//! crate, and context accessors.

use async_graphql::{Context, Enum, ID, SimpleObject};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{AppError, FieldError};
use crate::state::AppState;

/// A problem with the input that the user can fix, reported beside the field.
#[derive(Debug, Clone, SimpleObject)]
pub struct UserError {
    /// Path of the offending input field, e.g. `["input", "email"]`.
    pub field: Vec<String>,
    /// Stable machine-readable code, e.g. `INVALID`, `TAKEN`, `INVALID_CREDENTIALS`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl From<FieldError> for UserError {
    fn from(e: FieldError) -> Self {
        Self { field: e.field, code: e.code.to_owned(), message: e.message }
    }
}

/// Splits a service result for a mutation payload: fixable input problems become
/// `userErrors`; everything else stays a top-level error.
pub fn split_user_errors<T>(result: Result<T, AppError>) -> Result<(Option<T>, Vec<UserError>), AppError> {
    match result {
        Ok(value) => Ok((Some(value), Vec::new())),
        Err(AppError::Invalid(errors)) => Ok((None, errors.into_iter().map(UserError::from).collect())),
        Err(other) => Err(other),
    }
}

/// What a staff user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::enums::Role")]
pub enum Role {
    /// Everything, including users, tokens, erasure and the audit log.
    Admin,
    /// Runs the service: configuration, merges, insights.
    Manager,
    /// Works conversations and customers.
    Agent,
    /// Reads insights; customer data with personal data masked.
    Analyst,
}

/// The shared state and the caller, from a resolver's context.
pub fn context<'a>(ctx: &Context<'a>) -> Result<(&'a AppState, &'a Principal), AppError> {
    let state = ctx
        .data_opt::<AppState>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("application state missing from schema")))?;
    let principal = ctx
        .data_opt::<Principal>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("principal missing from request")))?;
    Ok((state, principal))
}

/// A UUID as a GraphQL `ID`.
pub fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

/// Parses an `ID` argument; a malformed one is `BAD_USER_INPUT` naming `field`.
pub fn parse_id(value: &ID, field: &[&str]) -> Result<Uuid, AppError> {
    Uuid::parse_str(value.as_str()).map_err(|_| AppError::invalid(field, "INVALID", "is not a valid id"))
}

/// The request's caller and request id, as the audit log records them.
pub fn actor<'a>(ctx: &Context<'a>) -> Result<crate::audit::Actor<'a>, AppError> {
    let (_, principal) = context(ctx)?;
    let request_id = ctx.data_opt::<crate::http::RequestIdValue>().map(|r| r.0.as_str()).filter(|r| !r.is_empty());
    Ok(crate::audit::Actor::new(principal, request_id))
}

/// The channels a list may show: what the caller asked for, within what their token
/// is limited to.
pub fn within_channel_limit(
    principal: &Principal,
    requested: Option<Vec<entity::enums::Channel>>,
) -> Option<Vec<entity::enums::Channel>> {
    match (principal.channel_limit(), requested) {
        (None, requested) => requested,
        (Some(limit), None) => Some(limit.iter().copied().collect()),
        (Some(limit), Some(requested)) => Some(requested.into_iter().filter(|c| limit.contains(c)).collect()),
    }
}

/// Most values one list filter may hold.
pub const MAX_FILTER_VALUES: usize = 100;

/// A list argument within [`MAX_FILTER_VALUES`]; a longer one is `BAD_USER_INPUT`.
pub fn capped<T>(values: Option<Vec<T>>, field: &[&str]) -> Result<Option<Vec<T>>, AppError> {
    match values {
        Some(v) if v.len() > MAX_FILTER_VALUES => {
            Err(AppError::invalid(field, "TOO_MANY", format!("at most {MAX_FILTER_VALUES} values")))
        }
        other => Ok(other),
    }
}

/// What happened to one item of a batch write.
#[derive(Enum, Copy, Clone, PartialEq, Eq, Debug)]
pub enum IngestStatus {
    /// Stored now.
    Created,
    /// Already known; nothing changed.
    Duplicate,
    /// Not stored; see `userErrors` / `errorCode`.
    Rejected,
}

/// One batch item's answer, before it is wrapped in its GraphQL type:
/// (status, stored row, user errors, code of any other failure).
pub type ItemAnswer<T> = (IngestStatus, Option<T>, Vec<UserError>, Option<String>);

/// Splits one item's result into its answer.
pub fn item_answer<M, T>(
    result: Result<crate::batch::Stored<M>, AppError>,
    wrap: impl FnOnce(M) -> T,
) -> ItemAnswer<T> {
    match result {
        Ok(s) => {
            let status = if s.created { IngestStatus::Created } else { IngestStatus::Duplicate };
            (status, Some(wrap(s.row)), Vec::new(), None)
        }
        Err(AppError::Invalid(errors)) => (
            IngestStatus::Rejected,
            None,
            errors.into_iter().map(UserError::from).collect(),
            Some("BAD_USER_INPUT".into()),
        ),
        Err(other) => (IngestStatus::Rejected, None, Vec::new(), Some(other.code().into())),
    }
}

/// Converts a batch's inputs one by one, each at its place: an input that does not
/// convert keeps its error there, and the service answers every place in order (so
/// `inputs.<i>` always names the caller's item `i`).
pub fn convert_batch<I, D>(
    inputs: Vec<I>,
    convert: impl Fn(I, &[&str]) -> Result<D, AppError>,
) -> Vec<Result<D, AppError>> {
    inputs.into_iter().enumerate().map(|(i, input)| convert(input, &["inputs", &i.to_string()])).collect()
}

/// A count as a GraphQL `Int`.
pub fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
