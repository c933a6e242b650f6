//! `POST /ingest/interactions`: the batch ingest for connectors that do not speak
//! GraphQL. The body is NDJSON, one event per line, with the same fields and enum
//! values as `RecordInteractionInput` (`{"channel":"EMAIL","direction":"INBOUND",
//! "externalId":"…","identities":[{"kind":"EMAIL","value":"…"}],"body":"…"}`); the
//! answer is NDJSON too, one line per input line, in order, `index` being the input
//! line's (from 0): `{"index":0,"status":"created","interactionId":"…"}`,
//! `"duplicate"`, `"skipped"` for a blank line, or `"rejected"` with `errors` whose
//! `field` paths start inside the line's event (`["externalId"]`). Same access rule as
//! the GraphQL mutation.
//!
//! A line fails alone, whatever is wrong with it (not JSON, not UTF-8, a NUL, a bad
//! value): it is answered `rejected` and the other lines are stored. At most
//! `MAX_BATCH` events and twice as many lines in all.

use axum::body::{Body, Bytes};
use axum::extract::{Extension, FromRequest, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use entity::enums::{AuthorKind, Channel, Direction, IdentityKind, Visibility};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ClientAddr, HttpState, error_body, error_response, request_id};
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
fn enum_value<T: DeserializeOwned>(raw: &str, field: &str) -> Result<T, FieldError> {
    serde_json::from_value(Value::String(raw.to_lowercase()))
        .map_err(|_| FieldError::new(&[field], "INVALID", format!("`{raw}` is not a known value")))
}

/// The value, or the error noted for later.
fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

fn parse_line(json: Value) -> Result<NewInteraction, AppError> {
    let line: Line = serde_json::from_value(json)
        .map_err(|e| AppError::invalid(&[], "MALFORMED", format!("not a valid event: {e}")))?;
    let mut errors = Vec::new();
    let channel: Option<Channel> = keep(&mut errors, enum_value(&line.channel, "channel"));
    let direction: Option<Direction> = keep(&mut errors, enum_value(&line.direction, "direction"));
    let visibility: Option<Visibility> =
        keep(&mut errors, enum_value(line.visibility.as_deref().unwrap_or("private"), "visibility"));
    let author_kind: Option<Option<AuthorKind>> =
        keep(&mut errors, line.author_kind.as_deref().map(|a| enum_value(a, "authorKind")).transpose());
    let customer_id = keep(
        &mut errors,
        line.customer_id
            .as_deref()
            .map(|c| {
                uuid::Uuid::parse_str(c).map_err(|_| FieldError::new(&["customerId"], "INVALID", "is not a valid id"))
            })
            .transpose(),
    );
    let identities: Vec<IdentityInput> = line
        .identities
        .iter()
        .filter_map(|i| {
            keep(&mut errors, enum_value::<IdentityKind>(&i.kind, "identities"))
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

/// One line's outcome before the service: a blank line, or an event (or why not).
enum Parsed {
    Blank,
    Event(Result<NewInteraction, AppError>),
}

/// The lines of a body, split on `\n` (a `\r` before it dropped; a final newline ends
/// the last line rather than starting an empty one).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|b| *b == b'\n').filter(move |_| !body.is_empty()).map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn parse(line: &[u8]) -> Parsed {
    if is_blank(line) {
        return Parsed::Blank;
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Parsed::Event(Err(AppError::invalid(&[], "MALFORMED", "the line is not UTF-8")));
    };
    let json: Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => return Parsed::Event(Err(AppError::invalid(&[], "MALFORMED", format!("not a valid event: {e}")))),
    };
    if let Some((field, why)) = crate::text::refusal_in(&json) {
        let field: Vec<&str> = field.iter().map(String::as_str).collect();
        return Parsed::Event(Err(AppError::invalid(&field, "INVALID", why)));
    }
    Parsed::Event(parse_line(json))
}

/// An error's field paths made relative to the line: the service names batch items
/// `inputs.<k>.…` (`k` counting events, not lines); a line's own parse errors are
/// relative already and do not start so.
fn relative(errors: Vec<FieldError>, k: usize) -> Vec<FieldError> {
    let prefix = ["inputs".to_owned(), k.to_string()];
    errors
        .into_iter()
        .map(|mut e| {
            if e.field.starts_with(&prefix) {
                e.field.drain(..2);
            }
            e
        })
        .collect()
}

/// The answer line of input line `index`, event `k` of the batch.
fn answer(index: usize, k: usize, result: Result<crate::interactions::ingest::Recorded, AppError>) -> Value {
    match result {
        Ok(r) => json!({
            "index": index,
            "status": if r.created { "created" } else { "duplicate" },
            "interactionId": r.row.id,
            "conversationId": r.row.conversation_id,
        }),
        Err(AppError::Invalid(errors)) => json!({
            "index": index, "status": "rejected", "code": "BAD_USER_INPUT",
            "errors": relative(errors, k).iter().map(|e| json!({ "field": e.field, "code": e.code, "message": e.message })).collect::<Vec<_>>(),
        }),
        Err(other) => json!({ "index": index, "status": "rejected", "code": other.code(), "message": other.message() }),
    }
}

pub async fn interactions(
    State(state): State<HttpState>,
    Extension(client): Extension<ClientAddr>,
    req: Request<Body>,
) -> Response {
    let headers = req.headers().clone();
    let principal = match super::caller(&state.app, &headers, client, crate::auth::rate_limit::Door::AnySite).await {
        Ok(principal) => principal,
        Err(wait) => return super::rate_limited(wait),
    };
    if let Err(e) = WRITE_INTERACTIONS.check(&principal) {
        return error_response(&e);
    }
    // Read only for a caller who may send it.
    let body = match Bytes::from_request(req, &state).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    // Counted before anything is kept or parsed: a body of newlines costs a scan.
    let (mut events, mut total) = (0, 0);
    for line in lines(&body) {
        total += 1;
        events += usize::from(!is_blank(line));
    }
    if events > MAX_BATCH || total > 2 * MAX_BATCH {
        let message = format!("at most {MAX_BATCH} events and {} lines per request", 2 * MAX_BATCH);
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(error_body(&message, "TOO_MANY"))).into_response();
    }
    let mut inputs = Vec::with_capacity(events);
    let mut slots = Vec::with_capacity(total);
    for p in lines(&body).map(parse) {
        slots.push(match p {
            Parsed::Blank => None,
            Parsed::Event(event) => {
                inputs.push(event);
                Some(inputs.len() - 1)
            }
        });
    }
    let request_id = request_id(&headers);
    let actor = Actor::new(&principal, Some(request_id.as_str()).filter(|r| !r.is_empty()));
    let recorded = match ingest::record_batch(state.app.db(), actor, inputs).await {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    state.app.bus().wake();
    let mut recorded: Vec<Option<_>> = recorded.into_iter().map(Some).collect();
    let mut out = String::new();
    for (index, slot) in slots.into_iter().enumerate() {
        let line = match slot.and_then(|k| Some((k, recorded.get_mut(k)?.take()))) {
            None => json!({ "index": index, "status": "skipped", "reason": "blank line" }),
            Some((k, result)) => {
                answer(index, k, result.unwrap_or_else(|| Err(AppError::internal(anyhow::anyhow!("missing result")))))
            }
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response()
}
