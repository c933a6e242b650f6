//! What every idempotent write path shares: the batch size cap, the stored-or-found
//! answer, and retrying an attempt that lost a race on a unique key (the loser rolls
//! back and, on its retry, finds the winner's row) or was failed by the database to
//! break a deadlock.

use std::future::Future;

use crate::error::{AppError, AppResult};

/// Largest batch any ingest call accepts.
pub const MAX_BATCH: usize = 1000;
/// Attempts before a write that keeps colliding gives up with `CONFLICT`.
const ATTEMPTS: usize = 5;

/// A row an idempotent write stored, or found already stored.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub row: T,
    /// True when this call stored it; false for a duplicate.
    pub created: bool,
}

/// Refuses a batch over [`MAX_BATCH`].
pub fn check_size(n: usize) -> AppResult<()> {
    if n > MAX_BATCH {
        return Err(AppError::invalid(&["inputs"], "TOO_MANY", format!("at most {MAX_BATCH} items per batch")));
    }
    Ok(())
}

/// (created, duplicates, rejected) of a batch's answers.
pub fn tally<T>(results: &[AppResult<Stored<T>>]) -> (usize, usize, usize) {
    let created = results.iter().filter(|r| matches!(r, Ok(Stored { created: true, .. }))).count();
    let duplicates = results.iter().filter(|r| matches!(r, Ok(Stored { created: false, .. }))).count();
    (created, duplicates, results.len() - created - duplicates)
}

/// Writes the audit entry of a batch: how many items were created, duplicates, rejected.
pub async fn audit<T>(
    db: &impl sea_orm::ConnectionTrait,
    actor: crate::audit::Actor<'_>,
    operation: &str,
    target_type: &str,
    results: &[AppResult<Stored<T>>],
) -> AppResult<()> {
    audit_counts(db, actor, operation, target_type, tally(results)).await
}

/// Writes the audit entry of a batch from its (created, duplicates, rejected) counts.
pub async fn audit_counts(
    db: &impl sea_orm::ConnectionTrait,
    actor: crate::audit::Actor<'_>,
    operation: &str,
    target_type: &str,
    (created, duplicates, rejected): (usize, usize, usize),
) -> AppResult<()> {
    let counts = serde_json::json!({ "created": created, "duplicates": duplicates, "rejected": rejected });
    crate::audit::record(db, actor, operation, target_type, None, counts).await
}

/// Runs `attempt` until it answers; `Ok(None)` means "lost a race, try again".
pub async fn retrying<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<Option<T>>>,
{
    for _ in 0..ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(AppError::Contended)
}

/// Runs a whole transaction again while the database fails it as one side of a
/// deadlock or serialisation conflict ([`AppError::Contended`]); any other answer,
/// or the last attempt's, is returned as it is.
pub async fn retry_contended<T, F, Fut>(mut attempt: F) -> AppResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(AppError::Contended) if tries < ATTEMPTS => tries += 1,
            answer => return answer,
        }
    }
}
