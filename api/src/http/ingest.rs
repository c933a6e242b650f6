//! `POST /ingest/interactions`: the batch ingest for connectors that do not speak
//! GraphQL. The body is NDJSON, one event per line, with the same fields and enum
//! values as `RecordInteractionInput` (`{"channel":"EMAIL","direction":"INBOUND",
//! "externalId":"…","identities":[{"kind":"EMAIL","value":"…"}],"body":"…"}`); the
//! answer is NDJSON too, one line per input line, in order:
//! `{"index":0,"status":"created","interactionId":"…"}`, `"duplicate"`, or
//! `"rejected"` with `errors`. Same access rule as the GraphQL mutation.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use entity::enums::{AuthorKind, Channel, Direction, IdentityKind, Visibility};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{HttpState, error_body, error_response, request_id};
use crate::audit::Actor;
use crate::auth::policy::WRITE_INTERACTIONS;
use crate::customers::IdentityInput;
use crate::error::{AppError, FieldError};
use crate::interactions::ingest::{self, CustomerRef, MAX_BATCH, NewInteraction};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Line {
    channel: String,
    direction: String,
    visibility: Option<String>,
    author_kind: Option<String>,
    inbox: Option<String>,
    body: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    external_id: String,
    customer_id: Option<String>,
    #[serde(default)]
    identities: Vec<LineIdentity>,
    customer_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIdentity {
    kind: String,
    value: String,
}

/// An enum value as GraphQL spells it (`PUBLIC_POST`) or as stored (`public_post`).
fn enum_value<T: DeserializeOwned>(raw: &str, index: &str, field: &str) -> Result<T, FieldError> {
    serde_json::from_value(Value::String(raw.to_lowercase()))
        .map_err(|_| FieldError::new(&[index, field], "INVALID", format!("`{raw}` is not a known value")))
}

/// The value, or the error noted for later.
fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

fn parse_line(index: &str, text: &str) -> Result<NewInteraction, AppError> {
    let line: Line = serde_json::from_str(text)
        .map_err(|e| AppError::invalid(&[index], "MALFORMED", format!("not a valid event: {e}")))?;
    let mut errors = Vec::new();
    let channel: Option<Channel> = keep(&mut errors, enum_value(&line.channel, index, "channel"));
    let direction: Option<Direction> = keep(&mut errors, enum_value(&line.direction, index, "direction"));
    let visibility: Option<Visibility> =
        keep(&mut errors, enum_value(line.visibility.as_deref().unwrap_or("private"), index, "visibility"));
    let author_kind: Option<Option<AuthorKind>> =
        keep(&mut errors, line.author_kind.as_deref().map(|a| enum_value(a, index, "authorKind")).transpose());
    let customer_id = keep(
        &mut errors,
        line.customer_id
            .as_deref()
            .map(|c| {
                uuid::Uuid::parse_str(c)
                    .map_err(|_| FieldError::new(&[index, "customerId"], "INVALID", "is not a valid id"))
            })
            .transpose(),
    );
    let identities: Vec<IdentityInput> = line
        .identities
        .iter()
        .filter_map(|i| {
            keep(&mut errors, enum_value::<IdentityKind>(&i.kind, index, "identities"))
                .map(|kind| IdentityInput { kind, value: i.value.clone() })
        })
        .collect();
    let (Some(channel), Some(direction), Some(visibility), Some(author_kind), Some(customer_id)) =
        (channel, direction, visibility, author_kind, customer_id)
    else {
        return Err(AppError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    Ok(NewInteraction {
        channel,
        direction,
        visibility,
        author_kind,
        inbox: line.inbox,
        body: line.body,
        occurred_at: line.occurred_at,
        external_id: line.external_id,
        customer: CustomerRef { id: customer_id, identities, display_name: line.customer_name },
    })
}

pub async fn interactions(State(state): State<HttpState>, headers: HeaderMap, body: String) -> Response {
    let principal = super::authenticate(&state.app, &headers).await;
    if let Err(e) = WRITE_INTERACTIONS.check(&principal) {
        return error_response(&e);
    }
    if let Err(wait) = state.app.rate_limiter().check(&principal) {
        return super::rate_limited(wait);
    }
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > MAX_BATCH {
        let e = AppError::invalid(&["body"], "TOO_MANY", format!("at most {MAX_BATCH} events per request"));
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(error_body(&e.message(), "TOO_MANY"))).into_response();
    }
    let parsed: Vec<Result<NewInteraction, AppError>> =
        lines.iter().enumerate().map(|(i, l)| parse_line(&i.to_string(), l)).collect();
    let valid: Vec<NewInteraction> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let request_id = request_id(&headers);
    let actor = Actor::new(&principal, Some(request_id.as_str()).filter(|r| !r.is_empty()));
    let refused = parsed.len() - valid.len();
    let recorded = match ingest::record_batch(state.app.db(), actor, valid, refused).await {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    state.app.bus().wake();
    let mut recorded = recorded.into_iter();
    let mut out = String::new();
    for (index, p) in parsed.into_iter().enumerate() {
        let result = match p {
            Ok(_) => recorded.next().unwrap_or_else(|| Err(AppError::internal(anyhow::anyhow!("missing result")))),
            Err(e) => Err(e),
        };
        let line = match result {
            Ok(r) => json!({
                "index": index,
                "status": if r.created { "created" } else { "duplicate" },
                "interactionId": r.row.id,
                "conversationId": r.row.conversation_id,
            }),
            Err(AppError::Invalid(errors)) => json!({
                "index": index, "status": "rejected", "code": "BAD_USER_INPUT",
                "errors": errors.iter().map(|e| json!({ "field": e.field, "code": e.code, "message": e.message })).collect::<Vec<_>>(),
            }),
            Err(other) => {
                json!({ "index": index, "status": "rejected", "code": other.code(), "message": other.message() })
            }
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
}
