//! GraphQL subscriptions over a WebSocket (`graphql-transport-ws`, and the older
//! `graphql-ws`), with the limits a long-lived connection needs.
//!
//! The caller authenticates in `connection_init` with `{"Authorization": "Bearer
//! <token>"}` (or `{"token": "<token>"}`); the upgrade request's own `Authorization`
//! header is the fallback. Sockets are counted twice: against the whole process
//! (`CXGRAPH_WS_MAX_CONNECTIONS`: over it the upgrade itself is refused with `503
//! UNAVAILABLE` and a retry hint, before any socket exists) and against the caller
//! once known at `connection_init` (`CXGRAPH_WS_MAX_PER_CALLER`: over it the init is
//! refused with `RATE_LIMITED`, and the protocol closes the socket). A socket that
//! has not sent `connection_init` within ten seconds is dropped, so idle upgrades
//! cannot hold slots; keep-alive pings close a socket whose client stopped
//! answering, and a closed socket drops its streams and its slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_graphql::ErrorExtensions;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Json;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{HttpState, RequestIdValue, authenticate, error_body, request_id};
use crate::auth::rate_limit::caller_key;

/// How long a socket may stay open without `connection_init`.
const INIT_DEADLINE: Duration = Duration::from_secs(10);

/// Open sockets of this process, in all and per caller.
#[derive(Debug, Default)]
pub struct SocketCounts {
    open: AtomicUsize,
    per_caller: Mutex<HashMap<String, usize>>,
}

/// One socket's place in the process count; released on drop.
struct Slot(Arc<SocketCounts>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One socket's place in its caller's count; released on drop (with the
/// connection's data, when the socket ends).
struct CallerSlot(Arc<SocketCounts>, String);

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut map = self.0.per_caller.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

impl SocketCounts {
    /// A place for one more socket, unless `max` are open (0: no limit).
    fn admit(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let taken = self.open.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(Arc::clone(self));
        (max == 0 || taken < max).then_some(slot)
    }

    /// A place for one more socket of `caller`, unless they hold `max` (0: no limit).
    fn admit_caller(self: &Arc<Self>, caller: String, max: usize) -> Option<CallerSlot> {
        let mut map = self.per_caller.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(caller.clone()).or_insert(0);
        if max != 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(CallerSlot(Arc::clone(self), caller))
    }
}

/// Upgrades to a subscription socket, or refuses when the process is full.
pub fn serve(state: HttpState, headers: HeaderMap, upgrade: WebSocketUpgrade, protocol: GraphQLProtocol) -> Response {
    let settings = state.app.settings();
    let (max_open, max_per_caller) = (settings.ws_max_connections, settings.ws_max_per_caller);
    let counts = Arc::clone(state.app.sockets());
    let Some(slot) = counts.admit(max_open) else {
        tracing::warn!(max_open, "WebSocket upgrade refused: connection limit");
        let body = error_body("too many open WebSocket connections; try again shortly", "UNAVAILABLE");
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let request_id = request_id(&headers);
    upgrade.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| async move {
        let _slot = slot;
        let app = state.app.clone();
        let initialised = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&initialised);
        let serving = GraphQLWebSocket::new(socket, state.gate.clone(), protocol)
            .on_connection_init(move |payload| async move {
                seen.store(true, Ordering::Relaxed);
                let token = payload
                    .get("Authorization")
                    .or_else(|| payload.get("authorization"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .or_else(|| payload.get("token").and_then(|v| v.as_str()).map(|t| format!("Bearer {t}")));
                let mut auth_headers = headers.clone();
                if let Some(value) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
                    auth_headers.insert(header::AUTHORIZATION, value);
                }
                let principal = authenticate(&app, &auth_headers).await;
                let mut data = async_graphql::Data::default();
                if let Some(caller) = caller_key(&principal) {
                    let Some(held) = counts.admit_caller(caller, max_per_caller) else {
                        let message = format!("at most {max_per_caller} open WebSocket connections per caller");
                        return Err(
                            async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "RATE_LIMITED"))
                        );
                    };
                    data.insert(Arc::new(held));
                }
                data.insert(principal);
                data.insert(RequestIdValue(request_id));
                data.insert(crate::graphql::loaders::for_request(app.db().clone()));
                data.insert(crate::graphql::loaders::topic_loader(app.db().clone()));
                Ok(data)
            })
            .keepalive_timeout(Duration::from_secs(30))
            .serve();
        let idle = async {
            tokio::time::sleep(INIT_DEADLINE).await;
            if initialised.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serving => {}
            () = idle => tracing::debug!("WebSocket dropped: no connection_init within the deadline"),
        }
    })
}
