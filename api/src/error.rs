//! One error type for every service, with the stable codes clients match on.
//!
//! Services return [`AppError`]; the GraphQL layer turns it into a top-level error with
//! `extensions.code`. Database and internal errors are logged here, with their detail,
//! and reach the client only as `INTERNAL` / `UNAVAILABLE` with a fixed message: no SQL
//! text, no stack trace. Problems a user can fix in a form are not errors at all: they
//! travel in mutation payloads as `userErrors` (see `graphql::types::UserError`).

use async_graphql::ErrorExtensions;
use sea_orm::DbErr;

/// Errors a service can return.
///
/// Deliberately not `Display`: async-graphql converts any `Display` type into an error
/// without a code, so leaving it out makes `?` in a resolver go through our
/// `From<AppError>` (with its code) and nothing else.
#[derive(Debug)]
pub enum AppError {
    /// No valid credentials were presented (code `UNAUTHENTICATED`).
    Unauthenticated(String),
    /// The caller is known but may not do this (code `FORBIDDEN`).
    Forbidden(String),
    /// The record does not exist or the caller may not know it does (code `NOT_FOUND`).
    NotFound(&'static str),
    /// Input the caller can fix. A mutation returns these as `userErrors` in its
    /// payload; anywhere else they are a top-level error with code `BAD_USER_INPUT`.
    Invalid(Vec<FieldError>),
    /// The change collides with the current state (code `CONFLICT`).
    Conflict(String),
    /// The database failed this side of a deadlock or a serialisation conflict with a
    /// concurrent write; the same request succeeds when sent again (code `CONFLICT`).
    /// Services whose writes can meet in a cycle retry it themselves
    /// ([`crate::batch::retry_contended`]); it reaches a client only after that.
    Contended,
    /// Too many attempts; try again after the given time (code `RATE_LIMITED`).
    RateLimited(std::time::Duration),
    /// The database or a dependency is unreachable (code `UNAVAILABLE`).
    Unavailable,
    /// Anything else; the detail is logged, never shown (code `INTERNAL`).
    Internal(anyhow::Error),
}

impl AppError {
    /// The stable machine-readable code put in `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Invalid(_) => "BAD_USER_INPUT",
            AppError::Conflict(_) | AppError::Contended => "CONFLICT",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::Unavailable => "UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// The message shown to the client: never internal detail.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(m) | AppError::Forbidden(m) | AppError::Conflict(m) => m.clone(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::Invalid(errors) => summary(errors),
            AppError::RateLimited(wait) => format!("too many attempts; retry in {} s", wait.as_secs().max(1)),
            AppError::Contended => "the write collided with concurrent writes; retry".into(),
            AppError::Unavailable => "service temporarily unavailable".into(),
            AppError::Internal(_) => "internal error".into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        AppError::Unauthenticated(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        AppError::Forbidden(msg.into())
    }
}

/// One fixable problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field in the mutation's arguments, e.g. `["input", "email"]`.
    pub field: Vec<String>,
    /// Stable code, e.g. `INVALID`, `TAKEN`, `OUT_OF_RANGE`.
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &[&str], code: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.iter().map(|s| (*s).to_owned()).collect(), code, message: message.into() }
    }
}

fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field.join("."), e.message)).collect::<Vec<_>>().join("; ")
}

impl AppError {
    /// A single fixable problem with one field.
    pub fn invalid(field: &[&str], code: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid(vec![FieldError::new(field, code, message)])
    }
}

/// Whether a statement failed because the database went away (the socket broke, the
/// server is shutting down or starting up, the pool gave up) rather than because of
/// the statement: that is `UNAVAILABLE`, and clears when the database is back.
fn lost_connection(err: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    match &**e {
        sea_orm::sqlx::Error::Io(_)
        | sea_orm::sqlx::Error::PoolTimedOut
        | sea_orm::sqlx::Error::PoolClosed
        | sea_orm::sqlx::Error::WorkerCrashed => true,
        // admin_shutdown, crash_shutdown, cannot_connect_now (PostgreSQL class 57P).
        sea_orm::sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("57P")),
        _ => false,
    }
}

/// Whether PostgreSQL broke a deadlock (40P01) or a serialisation conflict (40001) by
/// failing this side: nothing was wrong with the statement, and it succeeds when the
/// transaction is run again.
pub fn contended(err: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    matches!(&**e, sea_orm::sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::RecordNotFound(_) => AppError::NotFound("record"),
            DbErr::ConnectionAcquire(e) => {
                tracing::error!(error = %e, "database connection unavailable");
                AppError::Unavailable
            }
            DbErr::Conn(e) => {
                tracing::error!(error = %e, "database connection failed");
                AppError::Unavailable
            }
            other if lost_connection(&other) => {
                tracing::error!(error = %other, "database connection lost");
                AppError::Unavailable
            }
            other if contended(&other) => {
                tracing::warn!(error = %other, "write lost a deadlock or serialisation conflict");
                AppError::Contended
            }
            other => {
                tracing::error!(error = %other, "database error");
                AppError::Internal(anyhow::anyhow!("database error"))
            }
        }
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        if let AppError::Internal(source) = self {
            tracing::error!(error = format!("{source:#}"), "internal error");
        }
        async_graphql::Error::new(self.message()).extend_with(|_, ext| {
            ext.set("code", self.code());
            if let AppError::RateLimited(wait) = self {
                ext.set("retryAfterSeconds", wait.as_secs().max(1));
            }
            if let AppError::Invalid(errors) = self {
                let fields: Vec<String> = errors.iter().map(|e| e.field.join(".")).collect();
                ext.set("fields", fields);
            }
        })
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

/// Result of a service call.
pub type AppResult<T> = Result<T, AppError>;
