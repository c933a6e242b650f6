//! The HTTP surface: routes, who calls (authentication, the client's address) and at
//! what rate, and the layers every request passes (request id, tracing, panic
//! catching, body limit, timeout, JSON error bodies).
//!
//! A request is counted against its caller's rate before its body is read or its
//! document parsed. A POST to `/graphql` must be JSON (a cross-site page cannot send
//! one without asking first, so it cannot run a mutation, log-in included).
//!
//! `/graphql` answers POST (queries and mutations) and GET (queries only: a GET must be
//! safe to repeat and cache). The request id is taken from `x-request-id` or generated,
//! put on the tracing span and echoed in the response.

use std::time::Duration;

use async_graphql::Executor;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::body::Body;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Extension, FromRequest, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::rate_limit::Door;
use crate::auth::{AuthFailure, Principal};
use crate::graphql::Gate;
use crate::state::AppState;
use crate::{db, graphql};

mod client;
mod errors;
mod export;
mod graphiql;
mod headers;
mod ingest;
mod sockets;

pub use client::ClientAddr;
use errors::{bad_request, error_body, persisted_refusal};
pub(crate) use errors::{error_response, rate_limited};
pub use sockets::{MAX_SUBSCRIPTIONS, SocketCounts};

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
        .route("/", get(graphiql::page))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/schema.graphql", get(schema_sdl))
        .route("/ingest/interactions", axum::routing::post(ingest::interactions))
        .route("/export/{dataset}", get(export::export))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route_layer(axum::middleware::from_fn(track))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(settings.client_ip_header.clone(), client::identify))
        .layer(axum::middleware::from_fn_with_state(Duration::from_secs(settings.request_timeout), deadline))
        .layer(layers)
        .layer(axum::middleware::from_fn_with_state(settings.body_limit, errors::json_errors))
        .layer(headers::cors(&settings.cors_origins))
        .layer(axum::middleware::from_fn(headers::security_headers))
}

/// The router of the separate metrics listener: `GET /metrics` in the Prometheus
/// text format.
pub fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
        .layer(axum::middleware::from_fn(headers::security_headers))
}

async fn metrics(State(app): State<AppState>) -> Response {
    let body = crate::metrics::get().render(app.db());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(value: &str) -> Option<&str> {
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim).filter(|t| !t.is_empty())
}

/// Reads the caller from the `Authorization` header: a staff user's access JWT or a
/// partner's API token (`cxt_…`). A refused credential does not fail the request here:
/// public fields (log-in) still work, and protected fields say why it was refused.
pub async fn authenticate(app: &AppState, headers: &HeaderMap) -> Principal {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Principal::Anonymous(None);
    };
    let token = value.to_str().ok().and_then(bearer);
    match token {
        None => Principal::Anonymous(Some(AuthFailure::Malformed)),
        Some(token) if token.starts_with(crate::auth::tokens::TOKEN_PREFIX) => {
            match crate::auth::tokens::authenticate(app.db(), token).await {
                Ok(t) => Principal::Token(t),
                Err(failure) => Principal::Anonymous(Some(failure)),
            }
        }
        Some(token) => {
            let checked = match app.sessions().keys.verify(token) {
                Ok(verified) => app.sessions().access.check(app.db(), verified.user, verified.session).await,
                Err(failure) => Err(failure),
            };
            match checked {
                Ok(user) => Principal::User(user),
                Err(failure) => Principal::Anonymous(Some(failure)),
            }
        }
    }
}

/// The caller of a request, once its rate allows it: authenticated from the headers,
/// then counted against its bucket (an anonymous caller's is its address's). `Err`
/// holds the wait before the next request would pass.
pub async fn caller(
    app: &AppState,
    headers: &HeaderMap,
    client: ClientAddr,
    door: Door,
) -> Result<Principal, Duration> {
    let principal = authenticate(app, headers).await;
    tracing::Span::current().record("principal", principal.kind());
    app.rate_limiter().check(&principal, client.0, door)?;
    Ok(principal)
}

/// The caller of a GraphQL request, or the `429` (counted in the metrics) when over
/// its rate.
async fn graphql_caller(
    state: &HttpState,
    headers: &HeaderMap,
    client: ClientAddr,
    door: Door,
) -> Result<Principal, Response> {
    let started = std::time::Instant::now();
    caller(&state.app, headers, client, door).await.map_err(|wait| {
        crate::metrics::get().graphql_operation("unknown", "", &["RATE_LIMITED".to_owned()], started.elapsed());
        rate_limited(wait)
    })
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
async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    client: ClientAddr,
    principal: Principal,
    req: async_graphql::Request,
) -> Response {
    let started = std::time::Instant::now();
    let wanted = req.operation_name.clone();
    let slot = std::sync::Arc::new(graphql::OperationSlot::default());
    let span = tracing::Span::current();
    let mut req = req;
    if let Err(refusal) = state.app.persisted().resolve(&mut req) {
        return persisted_refusal(refusal);
    }
    let loaders = crate::graphql::loaders::for_request(state.app.db().clone(), &principal);
    let req = req
        .data(principal)
        .data(client)
        .data(RequestIdValue(request_id(headers)))
        .data(loaders)
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

/// Content types a POST may carry. A browser sends `text/plain`, a form's types or no
/// type at all across sites without asking first (a "simple" request), so any of
/// those could make a staff member's browser run a mutation for another site (the
/// GraphQL-over-HTTP spec's CSRF note); JSON cannot be sent that way.
fn is_json_request(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || essence == "application/graphql-response+json"
}

async fn graphql_post(
    State(state): State<HttpState>,
    Extension(client): Extension<ClientAddr>,
    req: Request<Body>,
) -> Response {
    let headers = req.headers().clone();
    if !is_json_request(&headers) {
        let body =
            error_body("a GraphQL POST must be sent as `Content-Type: application/json`", "UNSUPPORTED_MEDIA_TYPE");
        let mut response = (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(body)).into_response();
        response.headers_mut().insert("accept-post", HeaderValue::from_static("application/json"));
        return response;
    }
    // Counted before the body is read: a refused caller costs no parsing.
    let principal = match graphql_caller(&state, &headers, client, Door::Client).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    match GraphQLRequest::<GraphQLRejection>::from_request(req, &state).await {
        Ok(req) => execute(&state, &headers, client, principal, req.into_inner()).await,
        Err(rejection) => bad_request(&rejection.0.to_string()),
    }
}

async fn graphql_get(
    State(state): State<HttpState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    if let (Ok(upgrade), Some(protocol)) = (upgrade, sockets::protocol_of(&headers)) {
        return sockets::serve(state, headers, client, upgrade, protocol);
    }
    let principal = match graphql_caller(&state, &headers, client, Door::AnySite).await {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let mut req = match req {
        Ok(req) => req.into_inner(),
        Err(rejection) => return bad_request(&rejection.0.to_string()),
    };
    // A persisted document is judged by its text, like any other.
    if let Err(refusal) = state.app.persisted().resolve(&mut req) {
        return persisted_refusal(refusal);
    }
    // The document is admitted (allow-list, lexical limits) before it is parsed,
    // here as on every path; the executor then finds the same parse in its memo.
    let doc = match state.gate.document(&req.query) {
        Ok(admitted) => admitted.doc,
        Err(refusal) => {
            return GraphQLResponse::from(async_graphql::Response::from_errors(vec![refusal])).into_response();
        }
    };
    if !is_query_only(&doc, req.operation_name.as_deref()) {
        let body = error_body("only queries may be sent with GET; use POST for mutations", "METHOD_NOT_ALLOWED");
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return response;
    }
    execute(&state, &headers, client, principal, req).await
}

/// Whether the operation a request would run is a query.
fn is_query_only(doc: &ExecutableDocument, wanted: Option<&str>) -> bool {
    doc.operations.iter().all(|(name, op)| {
        let selected = match (wanted, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            _ => true,
        };
        !selected || op.node.ty == OperationType::Query
    })
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

/// The SDL, where introspection is served: with introspection off the schema is not
/// published here either.
async fn schema_sdl(State(state): State<HttpState>) -> Response {
    if !state.app.settings().introspection() {
        return not_found().await;
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], graphql::sdl()).into_response()
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
