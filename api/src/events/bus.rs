//! The in-process side: one dispatcher per process reads new outbox rows in position
//! order and broadcasts them to this process's subscribers.
//!
//! Out-of-order commits (PostgreSQL hands out positions at insert, transactions
//! commit in any order) leave a temporary gap: the dispatcher waits up to
//! [`GAP_WAIT`] for a missing position to appear before skipping it as rolled back,
//! so events are delivered in order and none that commits within that time is missed.
//! Events are written last in their transactions, so a position is normally taken
//! milliseconds before its commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use entity::outbox_event;
use sea_orm::{ColumnTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::{Notify, broadcast};

use super::outbox::NOTIFY_CHANNEL;

/// An event as subscribers see it.
pub type Event = Arc<outbox_event::Model>;

/// How long a position gap is waited for before it is taken as a rollback.
pub const GAP_WAIT: Duration = Duration::from_secs(2);
const BATCH: u64 = 500;

/// The process's event bus: a broadcast of committed events and a wake-up.
#[derive(Debug, Clone)]
pub struct Bus {
    sender: broadcast::Sender<Event>,
    wake: Arc<Notify>,
    /// Set when the process shuts down: subscriptions end (clients get `complete`).
    closing: tokio::sync::watch::Sender<bool>,
}

impl Bus {
    pub fn new() -> Bus {
        let (sender, _) = broadcast::channel(4096);
        let (closing, _) = tokio::sync::watch::channel(false);
        Bus { sender, wake: Arc::new(Notify::new()), closing }
    }

    /// A new subscriber; it sees events committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Ends every subscription of this process (shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once the bus is closing.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// Tells the dispatcher that something was committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the dispatcher (and, on PostgreSQL, its `LISTEN` connection).
    pub async fn start(&self, db: DatabaseConnection, database_url: &str) -> Vec<tokio::task::JoinHandle<()>> {
        let last = outbox_event::Entity::find()
            .select_only()
            .column_as(outbox_event::Column::Position.max(), "max")
            .into_tuple::<Option<i64>>()
            .one(&db)
            .await
            .ok()
            .flatten()
            .flatten()
            .unwrap_or(0);
        let mut tasks = Vec::new();
        let poll = if db.get_database_backend() == DatabaseBackend::Postgres {
            tasks.push(self.listen(crate::db::effective_url(database_url)));
            Duration::from_secs(5)
        } else {
            Duration::from_secs(1)
        };
        let bus = self.clone();
        tasks.push(tokio::spawn(async move { bus.dispatch(db, last, poll).await }));
        tasks
    }

    fn listen(&self, url: String) -> tokio::task::JoinHandle<()> {
        let wake = Arc::clone(&self.wake);
        tokio::spawn(async move {
            loop {
                match sea_orm::sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
                            tracing::warn!(error = %e, "LISTEN failed; retrying");
                        } else {
                            while listener.recv().await.is_ok() {
                                wake.notify_one();
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "event listener cannot connect; retrying"),
                }
                // Events committed while we were away are caught by the poll.
                wake.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    async fn dispatch(self, db: DatabaseConnection, mut last: i64, poll: Duration) {
        let mut gaps: HashMap<i64, Instant> = HashMap::new();
        loop {
            tokio::select! {
                () = self.wake.notified() => {},
                () = tokio::time::sleep(poll) => {},
            }
            loop {
                let rows = match outbox_event::Entity::find()
                    .filter(outbox_event::Column::Position.gt(last))
                    .order_by_asc(outbox_event::Column::Position)
                    .limit(BATCH)
                    .all(&db)
                    .await
                {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "event dispatcher cannot read the outbox; retrying");
                        break;
                    }
                };
                let fetched = rows.len();
                let mut blocked = false;
                for row in rows {
                    if row.position != last + 1 {
                        let first_seen = *gaps.entry(last + 1).or_insert_with(Instant::now);
                        if first_seen.elapsed() < GAP_WAIT {
                            blocked = true;
                            break;
                        }
                        gaps.clear();
                    }
                    last = row.position;
                    gaps.retain(|position, _| *position > last);
                    // No subscriber is not an error.
                    let _ = self.sender.send(Arc::new(row));
                }
                if blocked {
                    // Look again shortly for the missing position.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if (fetched as u64) < BATCH {
                    break;
                }
            }
        }
    }
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}
