//! Access tokens that stop working when the access behind them ends.
//!
//! An access token is a signed statement made at log-in; on its own it would keep
//! working for its whole lifetime after a log-out, a revoked refresh family or a
//! deactivated user. So every verified token is also checked against the state it
//! was issued from: the user exists and is active (the role used is the user's
//! current one, so a demotion takes effect at once), and the token's session — the
//! refresh family it was issued in, carried as `sid` — has not been revoked.
//!
//! Reading that state on every request would add a database round trip to each, so
//! verdicts are kept per (user, session) in a bounded map, and dropped:
//! - at once in this process, by the service that changed the state, after its
//!   transaction commits;
//! - in every replica, when the [`ACCESS_CHANGED`] event that the same transaction
//!   wrote to the outbox reaches its event bus (a lagging receiver drops them all);
//! - after `CXGRAPH_SESSION_CHECK_TTL` (30 s) in any case, the bound on staleness
//!   should the bus stall.
//!
//! Each drop is also broadcast ([`AccessCache::changes`]), so a long-lived WebSocket,
//! authenticated once at its start, checks its caller again and closes when access
//! ended.
//!
//! A load that raced an invalidation is not kept: each load notes the map's
//! generation before reading, and only stores its verdict if no invalidation came
//! in between (otherwise it could store the state from before the change).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use entity::enums::Role;
use entity::{refresh_token, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use super::bounded::Bounded;
use super::{AuthFailure, UserPrincipal};
use crate::error::AppResult;
use crate::events::{self, Bus, NewEvent};

/// The outbox event a change of a user's access writes (internal: never offered to
/// subscriptions, the event feed or webhooks, whose lists name their types).
pub const ACCESS_CHANGED: &str = "user.access_changed";

/// Most verdicts kept (only signed tokens reach the map, so only real sessions fill it).
const MAX_ENTRIES: usize = 50_000;

/// What is known of one (user, session): the role to act with, or refused.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    role: Option<Role>,
    at: Instant,
}

/// The process's verdicts; see the module comment.
#[derive(Debug)]
pub struct AccessCache {
    verdicts: Mutex<Bounded<(Uuid, Option<Uuid>), Verdict>>,
    generation: AtomicU64,
    ttl: Duration,
    changed: broadcast::Sender<Changed>,
}

/// Whose access may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    User(Uuid),
    /// Anybody's (events were missed).
    Everyone,
}

impl Changed {
    pub fn concerns(self, user: Uuid) -> bool {
        self == Changed::Everyone || self == Changed::User(user)
    }
}

impl AccessCache {
    pub fn new(ttl: Duration) -> Self {
        let (changed, _) = broadcast::channel(256);
        AccessCache { verdicts: Mutex::new(Bounded::new(MAX_ENTRIES)), generation: AtomicU64::new(0), ttl, changed }
    }

    /// The principal a verified token acts as, or why it no longer may.
    pub async fn check(
        &self,
        db: &impl ConnectionTrait,
        user: UserPrincipal,
        session: Option<Uuid>,
    ) -> Result<UserPrincipal, AuthFailure> {
        let key = (user.id, session);
        let cached = self.lock().entries.get(&key).copied().filter(|v| v.at.elapsed() < self.ttl);
        let role = match cached {
            Some(verdict) => verdict.role,
            None => {
                let generation = self.generation.load(Ordering::SeqCst);
                let role = load(db, user.id, session).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot read the state of a session");
                    AuthFailure::Unchecked
                })?;
                let mut verdicts = self.lock();
                if self.generation.load(Ordering::SeqCst) == generation {
                    let verdict = Verdict { role, at: Instant::now() };
                    *verdicts.get_or_insert_with(key, |v| v.at, || verdict) = verdict;
                }
                role
            }
        };
        role.map(|role| UserPrincipal { id: user.id, role }).ok_or(AuthFailure::Revoked)
    }

    /// Drops what is known of `user`'s sessions (after a change committed).
    pub fn forget(&self, user: Uuid) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().entries.retain(|(id, _), _| *id != user);
        // Nobody listening is not an error.
        let _ = self.changed.send(Changed::User(user));
    }

    /// Drops every verdict (events may have been missed).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().entries.clear();
        let _ = self.changed.send(Changed::Everyone);
    }

    /// Hears of every drop from now on (a lagging receiver must take it as
    /// [`Changed::Everyone`]).
    pub fn changes(&self) -> broadcast::Receiver<Changed> {
        self.changed.subscribe()
    }

    /// Follows the bus: every [`ACCESS_CHANGED`] event, from any replica, drops the
    /// verdicts of its user.
    pub fn follow(self: &Arc<Self>, bus: &Bus) -> tokio::task::JoinHandle<()> {
        let mut events = bus.subscribe();
        let closed = bus.closed();
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            tokio::pin!(closed);
            loop {
                tokio::select! {
                    () = &mut closed => return,
                    received = events.recv() => match received {
                        Ok(event) if event.event_type == ACCESS_CHANGED => cache.forget(event.aggregate_id),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => cache.forget_all(),
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<(Uuid, Option<Uuid>), Verdict>> {
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The role `user` acts with in `session`, or `None` when the user is gone or
/// inactive or the session was revoked (a family is revoked when any of its tokens is).
async fn load(db: &impl ConnectionTrait, user_id: Uuid, session: Option<Uuid>) -> Result<Option<Role>, DbErr> {
    let Some(found) = user::Entity::find_by_id(user_id).one(db).await? else { return Ok(None) };
    if !found.active {
        return Ok(None);
    }
    if let Some(family) = session {
        let revoked = refresh_token::Entity::find()
            .filter(refresh_token::Column::FamilyId.eq(family))
            .filter(refresh_token::Column::UserId.eq(user_id))
            .filter(refresh_token::Column::RevokedAt.is_not_null())
            .count(db)
            .await?;
        if revoked > 0 {
            return Ok(None);
        }
    }
    Ok(Some(found.role))
}

/// Records, in the caller's transaction, that `user`'s access changed, so every
/// replica drops what it knows of the user's sessions once it commits.
pub async fn announce(db: &impl ConnectionTrait, user: Uuid) -> AppResult<()> {
    let event = NewEvent {
        event_type: ACCESS_CHANGED,
        aggregate_type: "user",
        aggregate_id: user,
        customer_id: None,
        channel: None,
        payload: json!({}),
    };
    events::emit(db, event).await
}
