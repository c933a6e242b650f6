//! The HTTP surface: routes, authentication of the request, and the tower layers every
//! request passes (request id, tracing, panic catching, body limit, timeout).
//!
//! `/graphql` answers POST (queries and mutations) and GET (queries only: a GET must be
//! safe to repeat and cache). The request id is taken from `x-request-id` or generated,
//! put on the tracing span and echoed in the response.

use std::time::Duration;

use async_graphql::Executor;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse};
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::{AuthFailure, Principal};
use crate::error::AppError;
use crate::graphql::Gate;
use crate::state::AppState;
use crate::{db, graphql};

mod export;
mod ingest;
mod sockets;

pub use sockets::SocketCounts;

const REQUEST_ID: &str = "x-request-id";

/// Shared by the handlers: the GraphQL executor and the application state.
#[derive(Clone)]
pub struct HttpState {
    pub gate: Gate,
    pub app: AppState,
}

/// Builds the router with every route and layer.
pub fn router(app: AppState) -> Router {
    let settings = app.settings().clone();
    let state = HttpState { gate: Gate::new(graphql::build_schema(app.clone()), app.clone()), app };
    let header_name = header::HeaderName::from_static(REQUEST_ID);
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(header_name.clone(), NewRequestId))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let request_id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    let span = tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %request_id,
                        status = tracing::field::Empty,
                        principal = tracing::field::Empty,
                        "graphql.operation.type" = tracing::field::Empty,
                        "graphql.operation.name" = tracing::field::Empty,
                        "otel.name" = format!("{} {}", req.method(), req.uri().path()),
                        "otel.kind" = "server",
                    );
                    crate::telemetry::adopt_remote_parent(&span, req.headers());
                    span
                })
                .on_response(RecordStatus),
        )
        .layer(PropagateRequestIdLayer::new(header_name))
        .layer(RequestBodyLimitLayer::new(usize::try_from(settings.body_limit).unwrap_or(usize::MAX)))
        .layer(CatchPanicLayer::custom(panic_response));
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/schema.graphql", get(schema_sdl))
        .route("/ingest/interactions", axum::routing::post(ingest::interactions))
        .route("/export/{dataset}", get(export::export))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route_layer(axum::middleware::from_fn(track))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Duration::from_secs(settings.request_timeout), deadline))
        .layer(layers)
}

/// The router of the separate metrics listener: `GET /metrics` in the Prometheus
/// text format.
pub fn metrics_router(app: AppState) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(app)
}

async fn metrics(State(app): State<AppState>) -> Response {
    let body = crate::metrics::get().render(app.db());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Reads the caller from the `Authorization` header: a staff user's access JWT or a
/// partner's API token (`cxt_…`). A refused credential does not fail the request here:
/// public fields (log-in) still work, and protected fields say why it was refused.
pub async fn authenticate(app: &AppState, headers: &HeaderMap) -> Principal {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Principal::Anonymous(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token {
        None => Principal::Anonymous(Some(AuthFailure::Malformed)),
        Some(token) if token.starts_with(crate::auth::tokens::TOKEN_PREFIX) => {
            match crate::auth::tokens::authenticate(app.db(), token).await {
                Ok(t) => Principal::Token(t),
                Err(failure) => Principal::Anonymous(Some(failure)),
            }
        }
        Some(token) => match app.sessions().keys.verify(token) {
            Ok(user) => Principal::User(user),
            Err(failure) => Principal::Anonymous(Some(failure)),
        },
    }
}

/// A random UUID (v4) for a request that came without an id. tower-http's
/// `MakeRequestUuid` asks the kernel for its sixteen bytes (a `getrandom` system call
/// per request, a twentieth of the server's system-call time under load); a request id
/// needs to be unique, not secret, so the bytes come from the thread's generator,
/// seeded once from the kernel.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        HeaderValue::from_str(&id.to_string()).ok().map(RequestId::new)
    }
}

/// Records the response status on the request's span.
#[derive(Clone, Copy)]
struct RecordStatus;

impl<B> tower_http::trace::OnResponse<B> for RecordStatus {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, span: &tracing::Span) {
        span.record("status", response.status().as_u16());
        tracing::debug!(latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX), "response");
    }
}

/// Counts every routed request by method, route pattern and status.
async fn track(req: Request<Body>, next: axum::middleware::Next) -> Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    crate::metrics::get().http_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Runs one GraphQL request for the caller the headers name, and notes the operation
/// (type, name), the kind of caller and the error codes on the request's span and in
/// the metrics.
async fn execute(state: &HttpState, headers: &HeaderMap, req: async_graphql::Request) -> Response {
    let started = std::time::Instant::now();
    let wanted = req.operation_name.clone();
    let slot = std::sync::Arc::new(graphql::OperationSlot::default());
    let principal = authenticate(&state.app, headers).await;
    let span = tracing::Span::current();
    span.record("principal", principal.kind());
    if let Err(wait) = state.app.rate_limiter().check(&principal) {
        crate::metrics::get().graphql_operation("unknown", "", &["RATE_LIMITED".to_owned()], started.elapsed());
        return rate_limited(wait);
    }
    let mut req = req;
    if let Err(refusal) = state.app.persisted().resolve(&mut req) {
        return persisted_refusal(refusal);
    }
    let req = req
        .data(principal)
        .data(RequestIdValue(request_id(headers)))
        .data(crate::graphql::loaders::for_request(state.app.db().clone()))
        .data(crate::graphql::loaders::topic_loader(state.app.db().clone()))
        .data(std::sync::Arc::clone(&slot));
    let response = state.gate.execute(req).await;
    let (kind, name) = slot.selected(wanted.as_deref());
    span.record("graphql.operation.type", kind);
    span.record("graphql.operation.name", name.as_str());
    crate::telemetry::rename(&span, format!("{kind} {name}"));
    let codes: Vec<String> = response
        .errors
        .iter()
        .map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map_or_else(|| "INTERNAL".to_owned(), |c| c.to_string().trim_matches('"').to_owned())
        })
        .collect();
    crate::metrics::get().graphql_operation(kind, &name, &codes, started.elapsed());
    // A query refused by the cost budget ran nothing: say so in the status too.
    let over_budget = response.data == async_graphql::Value::Null && codes.iter().any(|c| c == "RATE_LIMITED");
    let retry_after = response
        .errors
        .first()
        .and_then(|e| e.extensions.as_ref())
        .and_then(|x| x.get("retryAfterSeconds"))
        .map(ToString::to_string);
    let mut http = GraphQLResponse::from(response).into_response();
    if over_budget {
        *http.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Some(value) = retry_after.and_then(|s| HeaderValue::from_str(&s).ok()) {
            http.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    http
}

/// The request id set (or passed on) by the request-id layer.
fn request_id(headers: &HeaderMap) -> String {
    headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The request id, for services that record it (audit log).
#[derive(Debug, Clone)]
pub struct RequestIdValue(pub String);

async fn graphql_post(
    State(state): State<HttpState>,
    headers: HeaderMap,
    req: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    match req {
        Ok(req) => execute(&state, &headers, req.into_inner()).await,
        Err(rejection) => bad_request(&rejection.0.to_string()),
    }
}

async fn graphql_get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    protocol: Result<GraphQLProtocol, StatusCode>,
    req: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    if let (Ok(upgrade), Ok(protocol)) = (upgrade, protocol) {
        return sockets::serve(state, headers, upgrade, protocol);
    }
    let mut req = match req {
        Ok(req) => req.into_inner(),
        Err(rejection) => return bad_request(&rejection.0.to_string()),
    };
    // A persisted document is judged by its text, like any other.
    if let Err(refusal) = state.app.persisted().resolve(&mut req) {
        return persisted_refusal(refusal);
    }
    if !is_query_only(&req) {
        let body = error_body("only queries may be sent with GET; use POST for mutations", "METHOD_NOT_ALLOWED");
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    execute(&state, &headers, req).await
}

/// Whether the operation a request would run is a query. An unparsable document counts
/// as a query here, so that the executor reports the parse error with its code.
fn is_query_only(req: &async_graphql::Request) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&req.query) else {
        return true;
    };
    doc.operations.iter().all(|(name, op)| {
        let selected = match (&req.operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            _ => true,
        };
        !selected || op.node.ty == OperationType::Query
    })
}

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
fn persisted_refusal((code, message): (&'static str, String)) -> Response {
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

fn error_body(message: &str, code: &str) -> serde_json::Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

fn bad_request(detail: &str) -> Response {
    let message = format!("request is not a valid GraphQL request: {detail}");
    (StatusCode::BAD_REQUEST, Json(error_body(&message, "BAD_REQUEST"))).into_response()
}

/// Bounds every request by `CXGRAPH_REQUEST_TIMEOUT`. A request still running then
/// (a statement stuck on a frozen database, say) is dropped, which rolls back its
/// transaction, and the caller gets `503 TIMEOUT` with a retry hint: a clear answer,
/// not a hang, and not `408` (which clients may replay unasked, and which means a slow
/// client, not a slow server). A WebSocket is bounded only until its upgrade, and an
/// export only until its first row: their bodies stream after this answer.
async fn deadline(State(limit): State<Duration>, req: Request<Body>, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path, limit_secs = limit.as_secs(), "request timed out");
            let message = format!("the request did not finish within {} s; try again", limit.as_secs());
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], Json(error_body(&message, "TIMEOUT")))
                .into_response()
        }
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(error_body("internal error", "INTERNAL"))).into_response()
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").title("cxgraph").finish())
}

async fn schema_sdl() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], graphql::sdl())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<HttpState>) -> Response {
    let patience = Duration::from_secs(state.app.settings().db_acquire_timeout);
    if db::ping(state.app.db(), patience, state.app.settings().db_max_connections).await {
        Json(json!({ "status": "ready", "database": "ok" })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "database": "unreachable" })))
            .into_response()
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(error_body("no such route", "NOT_FOUND"))).into_response()
}
