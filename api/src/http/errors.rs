//! How every HTTP endpoint says no: one JSON body, `{"errors": [{"message",
//! "extensions": {"code"}}]}`, the GraphQL error shape, with the HTTP status that fits.
//!
//! Most refusals are built here by the handlers. The rest come from layers and
//! extractors that answer in plain text (the body-size limit's 413, a body that is
//! not UTF-8, the router's 405): [`json_errors`] rewrites any error response that is
//! not JSON into the same shape, so a client never has to parse two kinds of error.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::AppError;

/// `429` with the GraphQL-shaped error and a `Retry-After` header.
pub(crate) fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let body = json!({ "errors": [{ "message": format!("too many requests; retry in {seconds} s"),
        "extensions": { "code": "RATE_LIMITED", "retryAfterSeconds": seconds } }] });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A persisted-query lookup that failed: `PERSISTED_QUERY_NOT_FOUND` answers 200 as
/// Apollo clients expect (they then send the text), a hash that does not match its
/// text is a bad request.
pub(crate) fn persisted_refusal((code, message): (&'static str, String)) -> Response {
    let status = if code == "BAD_REQUEST" { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    (status, Json(error_body(&message, code))).into_response()
}

/// The HTTP status of a service error on the plain-HTTP endpoints (GraphQL answers
/// 200 with the code in `extensions`).
pub(crate) fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Invalid(_) => StatusCode::BAD_REQUEST,
        AppError::Conflict(_) | AppError::Contended => StatusCode::CONFLICT,
        AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A service error as a plain-HTTP response with the GraphQL-shaped body.
pub(crate) fn error_response(err: &AppError) -> Response {
    if let AppError::RateLimited(wait) = err {
        return rate_limited(*wait);
    }
    (status_of(err), Json(error_body(&err.message(), err.code()))).into_response()
}

pub(crate) fn error_body(message: &str, code: &str) -> serde_json::Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

pub(crate) fn bad_request(detail: &str) -> Response {
    let message = format!("request is not a valid GraphQL request: {detail}");
    (StatusCode::BAD_REQUEST, Json(error_body(&message, "BAD_REQUEST"))).into_response()
}

/// The code of an error status without one of its own.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        s if s.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    }
}

/// Middleware: an error response that is not JSON (a layer's or an extractor's plain
/// text) gets the JSON shape, keeping its status and headers. The body-size limit is
/// named in the 413's message; other client errors keep the extractor's own words
/// (about the request, never about the server), server errors say nothing.
pub async fn json_errors(State(body_limit): State<u64>, req: Request<Body>, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/graphql-response+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is larger than {body_limit} bytes")
    } else if status.is_server_error() {
        "the server could not answer this request".to_owned()
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let reason = status.canonical_reason().unwrap_or("refused");
        match text.trim() {
            "" => reason.to_lowercase(),
            detail => detail.chars().take(300).collect(),
        }
    };
    let json = error_body(&message, code_of(status)).to_string();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}
