//! GraphQL subscriptions over a WebSocket (`graphql-transport-ws`, and the older
//! `graphql-ws`), with the limits a long-lived connection needs.
//!
//! Every subscription needs a caller, so a socket must authenticate before it is any
//! use, and an unauthenticated one is only a cost. The handshake is ours, before
//! async-graphql's protocol machine sees the socket:
//!
//! - the upgrade is an anonymous request of its address (any web page can make a
//!   browser open one), counted against its rate. It is refused before any socket
//!   exists when the process holds `CXGRAPH_WS_MAX_CONNECTIONS` sockets (503
//!   `UNAVAILABLE`), or a quarter of that many not yet authenticated, or the client
//!   address holds `CXGRAPH_WS_MAX_PENDING_PER_ADDRESS` of those (both 429
//!   `RATE_LIMITED`);
//! - `connection_init` must come within `CXGRAPH_WS_INIT_TIMEOUT` (else close 4408)
//!   carrying credentials, `{"Authorization": "Bearer <token>"}` or `{"token":
//!   "<token>"}` (the upgrade's own `Authorization` header is the fallback); without
//!   valid ones the socket is closed with 4403 and the reason. Pings before it are
//!   answered; a subscription before it closes the socket with 4401, a message that
//!   is not the protocol's with 4400;
//! - an authenticated caller holding `CXGRAPH_WS_MAX_PER_CALLER` sockets is closed
//!   with 4429.
//!
//! Only then is the socket handed to async-graphql (with the `connection_init` it
//! sent, which it acknowledges). Messages are at most [`MAX_MESSAGE`] bytes (else close
//! 1009); each subscription counts against the caller's rate and at most
//! [`MAX_SUBSCRIPTIONS`] run at once on a socket (else close 4429); keep-alive closes a socket
//! whose client sent nothing for [`KEEPALIVE`]; a closed socket drops its streams and
//! its slots. When a staff caller's access changes (log-out, deactivation, new role:
//! see `auth::revocation`), and every `CXGRAPH_SESSION_CHECK_TTL` in any case, the
//! socket checks its caller again (a user's session, an API token's revocation) and
//! closes with 4403 and the reason if it no longer has the access it was opened with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, ClientMessage, WebSocketProtocols, WsMessage};
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};

use super::{ClientAddr, HttpState, RequestIdValue, authenticate, error_body, rate_limited, request_id};
use crate::auth::rate_limit::{Door, address_key, caller_key, network_key};
use crate::auth::revocation::Changed;
use crate::auth::{AuthFailure, Principal};
use crate::state::AppState;

/// How long a socket may stay silent before it is closed (clients ping).
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Largest message (and frame) a client may send: a subscription document and its
/// variables, not a payload.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most subscriptions one socket may run at once (the protocol machine polls them all
/// at every wake).
pub const MAX_SUBSCRIPTIONS: usize = 32;

/// Open sockets of this process: in all, per caller, and not yet authenticated (in
/// all and per client address).
#[derive(Debug, Default)]
pub struct SocketCounts {
    open: AtomicUsize,
    per_caller: Mutex<HashMap<String, usize>>,
    pending: Mutex<HashMap<String, usize>>,
    pending_all: AtomicUsize,
}

/// One socket's place in the process count; released on drop.
struct Slot(Arc<SocketCounts>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket's places while it has not authenticated: in its address's (and network's)
/// counts and among all such sockets; released together on drop.
struct Unauthenticated {
    _slots: Vec<KeyedSlot>,
    _waiting: Waiting,
}

/// One socket's place among those waiting to authenticate; released on drop.
struct Waiting(Arc<SocketCounts>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.pending_all.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One socket's place in a keyed count (its caller's, or its address's while it has
/// not authenticated); released on drop.
struct KeyedSlot {
    counts: Arc<SocketCounts>,
    key: String,
    pending: bool,
}

impl Drop for KeyedSlot {
    fn drop(&mut self) {
        let map = if self.pending { &self.counts.pending } else { &self.counts.per_caller };
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
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

    /// A place in the count of `key`, unless it holds `max` (0: no limit).
    fn admit_keyed(self: &Arc<Self>, key: String, max: usize, pending: bool) -> Option<KeyedSlot> {
        let map = if pending { &self.pending } else { &self.per_caller };
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(key.clone()).or_insert(0);
        if max != 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(KeyedSlot { counts: Arc::clone(self), key, pending })
    }

    /// A place among all the sockets waiting to authenticate, unless `max` wait
    /// already (0: no limit).
    fn admit_waiting(self: &Arc<Self>, max: usize) -> Option<Waiting> {
        let taken = self.pending_all.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(Arc::clone(self));
        (max == 0 || taken < max).then_some(waiting)
    }

    /// Sockets open now, for tests and metrics.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// The subscription protocol the client asked for.
pub fn protocol_of(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|protocols| protocols.split(',').find_map(|p| WebSocketProtocols::from_str(p.trim()).ok()))
}

/// Upgrades to a subscription socket, or refuses when the process or the address is
/// full.
pub fn serve(
    state: HttpState,
    headers: HeaderMap,
    client: ClientAddr,
    upgrade: WebSocketUpgrade,
    protocol: WebSocketProtocols,
) -> Response {
    let settings = state.app.settings();
    if let Err(wait) = state.app.rate_limiter().check(&Principal::Anonymous(None), client.0, Door::AnySite) {
        return rate_limited(wait);
    }
    let counts = Arc::clone(state.app.sockets());
    let Some(slot) = counts.admit(settings.ws_max_connections) else {
        tracing::warn!(max_open = settings.ws_max_connections, "WebSocket upgrade refused: connection limit");
        let body = error_body("too many open WebSocket connections; try again shortly", "UNAVAILABLE");
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let init_timeout = Duration::from_secs(settings.ws_init_timeout);
    let pending_cap = match settings.ws_max_connections {
        0 => 0,
        max => (max / 4).max(settings.ws_max_pending_per_address),
    };
    let Some(waiting) = counts.admit_waiting(pending_cap) else {
        return rate_limited(init_timeout);
    };
    // Counted against the address, and for IPv6 against its /48 as well (four
    // addresses' worth), so rotating /64s does not buy more.
    let max = settings.ws_max_pending_per_address;
    let mut slots = Vec::with_capacity(2);
    let keys = std::iter::once((address_key(client.0), max))
        .chain(network_key(client.0).map(|network| (network, max.saturating_mul(4))));
    for (key, max) in keys {
        match counts.admit_keyed(key, max, true) {
            Some(slot) => slots.push(slot),
            None => return rate_limited(init_timeout),
        }
    }
    let pending = Unauthenticated { _slots: slots, _waiting: waiting };
    upgrade.max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE).protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(
        move |socket| async move {
            let _slot = slot;
            run(state, headers, client.0, socket, protocol, pending).await;
        },
    )
}

/// Why a socket is closed before it is served: the graphql-transport-ws close codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 4400: a message that is not one of the protocol's.
    Invalid,
    /// 4401: a subscription before the connection was acknowledged.
    Unauthorized,
    /// 4403: a `connection_init` without valid credentials (and why).
    Forbidden(&'static str),
    /// 4408: no `connection_init` in time.
    InitTimeout,
    /// 4429: the caller holds as many sockets as it may.
    TooMany,
}

impl Refusal {
    fn frame(self, max_per_caller: usize) -> CloseFrame {
        let (code, reason) = match self {
            Refusal::Invalid => (4400, "Invalid message".to_owned()),
            Refusal::Unauthorized => (4401, "Unauthorized: send connection_init with credentials first".to_owned()),
            Refusal::Forbidden(why) => (4403, format!("Forbidden: {why}")),
            Refusal::InitTimeout => (4408, "Connection initialisation timeout".to_owned()),
            Refusal::TooMany => (4429, format!("RATE_LIMITED: at most {max_per_caller} open connections per caller")),
        };
        CloseFrame { code, reason: reason.into() }
    }
}

const NO_CREDENTIALS: &str = "connection_init must carry credentials (`Authorization: Bearer …`)";

/// The client's `connection_init` (the message as sent, and its payload), waiting at
/// most `deadline`; pings before it are answered. `None`: the client left.
async fn init_message(
    socket: &mut WebSocket,
    deadline: Duration,
) -> Result<Option<(Vec<u8>, serde_json::Value)>, Refusal> {
    let wait = async {
        while let Some(Ok(message)) = socket.next().await {
            let bytes = match message {
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Close(_) => return Ok(None),
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            match ClientMessage::from_bytes(&bytes) {
                Ok(ClientMessage::ConnectionInit { payload }) => return Ok(Some((bytes, payload.unwrap_or_default()))),
                Ok(ClientMessage::Ping { .. }) => {
                    let pong = serde_json::json!({ "type": "pong" }).to_string();
                    if socket.send(Message::Text(pong.into())).await.is_err() {
                        return Ok(None);
                    }
                }
                Ok(ClientMessage::Pong { .. }) => {}
                Ok(ClientMessage::ConnectionTerminate) => return Ok(None),
                Ok(ClientMessage::Start { .. } | ClientMessage::Stop { .. }) => return Err(Refusal::Unauthorized),
                Err(_) => return Err(Refusal::Invalid),
            }
        }
        Ok(None)
    };
    tokio::time::timeout(deadline, wait).await.map_err(|_| Refusal::InitTimeout)?
}

/// The caller a `connection_init` names: its payload's credentials, else the
/// upgrade's `Authorization` header.
async fn init_caller(
    state: &HttpState,
    headers: &HeaderMap,
    payload: &serde_json::Value,
) -> Result<(Principal, HeaderMap), Refusal> {
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
    match authenticate(&state.app, &auth_headers).await {
        Principal::Anonymous(None) => Err(Refusal::Forbidden(NO_CREDENTIALS)),
        Principal::Anonymous(Some(failure)) => Err(Refusal::Forbidden(failure.message())),
        principal => Ok((principal, auth_headers)),
    }
}

/// What a socket checks its caller against while it lives.
struct Watched {
    principal: Principal,
    /// The credentials of `connection_init`, for an API token's re-check.
    auth_headers: HeaderMap,
    /// A staff user's session (the refresh family their access token names).
    session: Option<uuid::Uuid>,
    /// Heard from the start of the handshake, so no change is missed.
    changes: tokio::sync::broadcast::Receiver<Changed>,
}

/// Resolves, with the reason, when the socket's caller may no longer act as it did at
/// `connection_init`: a staff user's session ended, the user was deactivated or given
/// another role; an API token was revoked or expired. Checked when the caller's access
/// changes (the event bus), and every `CXGRAPH_SESSION_CHECK_TTL` in case an event was
/// missed. A staff socket is tied to its session, not to the access token's expiry
/// (a socket is authenticated once); a database failure to check waits for the next
/// check.
async fn access_ended(app: AppState, mut watched: Watched) -> &'static str {
    let every = app.settings().session_check_ttl();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            changed = watched.changes.recv() => match changed {
                Ok(changed) if watched.principal.user().is_some_and(|u| changed.concerns(u.id)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    watched.changes = app.sessions().access.changes();
                    continue;
                }
            },
            _ = tick.tick() => {}
        }
        let now = match &watched.principal {
            Principal::User(user) => match app.sessions().access.check(app.db(), user.clone(), watched.session).await {
                Ok(now) => Principal::User(now),
                Err(failure) => Principal::Anonymous(Some(failure)),
            },
            _ => authenticate(&app, &watched.auth_headers).await,
        };
        match now {
            now if now == watched.principal => {}
            Principal::Anonymous(Some(AuthFailure::Unchecked)) => {}
            Principal::Anonymous(Some(failure)) => return failure.message(),
            _ => return "access changed: reconnect with new credentials",
        }
    }
}

/// One socket, from the handshake to its close.
async fn run(
    state: HttpState,
    headers: HeaderMap,
    address: IpAddr,
    mut socket: WebSocket,
    protocol: WebSocketProtocols,
    pending: Unauthenticated,
) {
    let max_per_caller = state.app.settings().ws_max_per_caller;
    let changes = state.app.sessions().access.changes();
    let admitted = async {
        let deadline = Duration::from_secs(state.app.settings().ws_init_timeout);
        let Some((first, payload)) = init_message(&mut socket, deadline).await? else {
            return Ok(None);
        };
        let (principal, auth_headers) = init_caller(&state, &headers, &payload).await?;
        let key = caller_key(&principal).ok_or(Refusal::Forbidden(NO_CREDENTIALS))?;
        let held = state.app.sockets().admit_keyed(key, max_per_caller, false).ok_or(Refusal::TooMany)?;
        Ok::<_, Refusal>(Some((first, principal, held, auth_headers)))
    };
    let (first, principal, held, auth_headers) = match admitted.await {
        Ok(Some(admitted)) => admitted,
        Ok(None) => return,
        Err(refusal) => {
            drop(pending);
            tracing::debug!(?refusal, %address, "WebSocket closed at the handshake");
            let _ = socket.send(Message::Close(Some(refusal.frame(max_per_caller)))).await;
            return;
        }
    };
    drop(pending);
    let principal_for_rate = principal.clone();
    let session = auth_headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::bearer)
        .and_then(|token| state.app.sessions().keys.verify(token).ok())
        .and_then(|verified| verified.session);
    let watched = Watched { principal: principal.clone(), auth_headers, session, changes };
    let mut data = async_graphql::Data::default();
    data.insert(Arc::new(held));
    data.insert(crate::graphql::loaders::for_request(state.app.db().clone(), &principal));
    data.insert(principal);
    data.insert(ClientAddr(address));
    data.insert(RequestIdValue(request_id(&headers)));
    data.insert(crate::graphql::loaders::topic_loader(state.app.db().clone()));

    let (mut sink, stream) = socket.split();
    // What the client sends is watched on its way to the protocol machine: each
    // subscription counts against the caller's rate, at most [`MAX_SUBSCRIPTIONS`] run at
    // once, and a message over the size limit ends the socket. Any of these ends the
    // input, and the socket is closed with the reason once the machine has stopped.
    let watch = Arc::new(Mutex::new(Watch::default()));
    let watcher = Arc::clone(&watch);
    let (app, caller) = (state.app.clone(), principal_for_rate);
    let rest = stream
        .take_while(move |m| {
            let mut watch = watcher.lock().unwrap_or_else(PoisonError::into_inner);
            let verdict = match m {
                Ok(Message::Text(text)) => {
                    watch.admit(text.as_bytes(), || app.rate_limiter().check(&caller, address, Door::AnySite))
                }
                Ok(Message::Binary(bytes)) => {
                    watch.admit(bytes, || app.rate_limiter().check(&caller, address, Door::AnySite))
                }
                Ok(_) => Ok(()),
                // tungstenite's `Capacity` error, as axum passes it on (its type is not
                // re-exported); the e2e test of the limit holds this to its wording.
                Err(e) if e.to_string().contains("too long") => Err(CloseFrame {
                    code: 1009,
                    reason: format!("a message may be at most {MAX_MESSAGE} bytes").into(),
                }),
                Err(_) => Err(CloseFrame { code: 1000, reason: "".into() }),
            };
            if let Err(frame) = verdict {
                watch.ended = Some(frame);
            }
            futures::future::ready(watch.ended.is_none())
        })
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let input = futures::stream::once(futures::future::ready(first)).chain(rest);
    let mut protocol_machine = async_graphql::http::WebSocket::new(state.gate.clone(), input, protocol)
        .on_connection_init(move |_| futures::future::ready(Ok(data)))
        .keepalive_timeout(KEEPALIVE);
    let ended_access = access_ended(state.app.clone(), watched);
    tokio::pin!(ended_access);
    loop {
        let message = tokio::select! {
            message = protocol_machine.next() => match message {
                Some(message) => message,
                None => break,
            },
            why = &mut ended_access => {
                let frame = CloseFrame { code: 4403, reason: format!("Forbidden: {why}").into() };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        };
        let message = match message {
            WsMessage::Text(text) => {
                watch.lock().unwrap_or_else(PoisonError::into_inner).completed(&text);
                Message::Text(text.into())
            }
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
    let ended = watch.lock().unwrap_or_else(PoisonError::into_inner).ended.take();
    if let Some(frame) = ended.filter(|f| f.code != 1000) {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

/// Subscriptions running on one socket, and why its input ended.
#[derive(Default)]
struct Watch {
    active: std::collections::HashSet<String>,
    ended: Option<CloseFrame>,
}

impl Watch {
    /// Notes a client message: a subscription must fit the caller's rate (`charge`)
    /// and [`MAX_SUBSCRIPTIONS`]; `Err` closes the socket with the frame.
    fn admit(&mut self, message: &[u8], charge: impl FnOnce() -> Result<(), Duration>) -> Result<(), CloseFrame> {
        match ClientMessage::from_bytes(message) {
            Ok(ClientMessage::Start { id, .. }) => {
                if charge().is_err() {
                    return Err(CloseFrame {
                        code: 4429,
                        reason: "RATE_LIMITED: too many subscriptions a minute".into(),
                    });
                }
                if !self.active.contains(&id) && self.active.len() >= MAX_SUBSCRIPTIONS {
                    let reason =
                        format!("RATE_LIMITED: at most {MAX_SUBSCRIPTIONS} subscriptions at once on a connection");
                    return Err(CloseFrame { code: 4429, reason: reason.into() });
                }
                self.active.insert(id);
            }
            Ok(ClientMessage::Stop { id }) => {
                self.active.remove(&id);
            }
            _ => {}
        }
        Ok(())
    }

    /// Notes a server message: a `complete` ends its subscription.
    fn completed(&mut self, message: &str) {
        if message.starts_with("{\"type\":\"complete\"")
            && let Ok(done) = serde_json::from_str::<serde_json::Value>(message)
            && let Some(id) = done["id"].as_str()
        {
            self.active.remove(id);
        }
    }
}
