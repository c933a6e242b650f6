//! What every request shares: the database pool, session keys and settings.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::sessions::SessionConfig;
use crate::config::Settings;

/// Shared application state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    sessions: SessionConfig,
    settings: Settings,
}

impl AppState {
    pub fn new(db: DatabaseConnection, sessions: SessionConfig, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner { db, sessions, settings }),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn sessions(&self) -> &SessionConfig {
        &self.inner.sessions
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }
}
