//! What every idempotent write path shares: the batch size cap, the stored-or-found
//! answer, and retrying an attempt that lost a race on a unique key (the loser rolls
//! back and, on its retry, finds the winner's row) or was failed by the database to
//! break a deadlock.

use std::future::Future;

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::db;
use crate::error::{AppError, AppResult, FieldError};

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

/// Earliest time an event may have happened: nothing this system ingests predates the
/// epoch, and an earlier time is a connector's bug (a zero, a year of 1).
pub const EARLIEST_EVENT: chrono::DateTime<chrono::Utc> = chrono::DateTime::UNIX_EPOCH;
/// How far ahead of this server's clock an event's time may be (clocks drift).
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Checks when an ingested event happened: not before [`EARLIEST_EVENT`] (`TOO_OLD`),
/// not more than [`CLOCK_SKEW`] ahead (`IN_FUTURE`).
pub fn check_occurred_at(field: &[&str], at: Option<chrono::DateTime<chrono::Utc>>, errors: &mut Vec<FieldError>) {
    let Some(at) = at else { return };
    if at < EARLIEST_EVENT {
        errors.push(FieldError::new(field, "TOO_OLD", "must be on or after 1970-01-01T00:00:00Z"));
    } else if at > chrono::Utc::now() + CLOCK_SKEW {
        errors.push(FieldError::new(field, "IN_FUTURE", "must not be in the future"));
    }
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

/// How [`write_each`] and [`write_one`] write one kind of item.
pub trait Writes: Sync {
    /// An item that passed the checks that need no database.
    type Checked: Send + Sync;
    type Row: Send + Sync;
    /// The audit entry's target type (`touchpoint`, `feedback`).
    const TARGET: &'static str;

    /// The id a single write's audit entry names.
    fn id(row: &Self::Row) -> uuid::Uuid;

    /// Stores one checked item in `txn` (a savepoint): `Ok(None)` when it lost a race
    /// (a key taken meanwhile) and must run again.
    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        item: &'a Self::Checked,
    ) -> impl Future<Output = AppResult<Option<Stored<Self::Row>>>> + Send + 'a;
}

/// What the call's audit entry records.
enum Audited<'a> {
    /// A batch: its counts, under this operation.
    Counts(&'a str),
    /// A single write: the row's id, when it was created.
    Row(&'a str),
}

/// Writes a batch in one transaction, each item in a savepoint of its own, and the
/// batch's audit entry (`operation`, with its counts) with it: the rows and the entry
/// that counts them commit together, or nothing does.
///
/// `items` are the answers so far: an `Err` (a failed check) is kept as that item's
/// answer. An item that lost a race, or that the database failed to break a deadlock,
/// is rolled back to its savepoint and runs again; any other error is that item's
/// answer and leaves the others written (a failed statement rolls back only its
/// savepoint). A lost connection fails the whole call.
pub async fn write_each<W: Writes>(
    db: &DatabaseConnection,
    actor: crate::audit::Actor<'_>,
    operation: &str,
    items: Vec<AppResult<W::Checked>>,
    writes: &W,
) -> AppResult<Vec<AppResult<Stored<W::Row>>>> {
    write_audited(db, actor, Audited::Counts(operation), items, writes).await
}

/// [`write_each`] for a single item: a failed check answers without opening a
/// transaction, and the audit entry (`operation`) names the row it created.
pub async fn write_one<W: Writes>(
    db: &DatabaseConnection,
    actor: crate::audit::Actor<'_>,
    operation: &str,
    item: AppResult<W::Checked>,
    writes: &W,
) -> AppResult<Stored<W::Row>> {
    let answers = write_audited(db, actor, Audited::Row(operation), vec![Ok(item?)], writes).await?;
    answers.into_iter().next().unwrap_or_else(|| Err(AppError::internal(anyhow::anyhow!("one item, no answer"))))
}

async fn write_audited<W: Writes>(
    db: &DatabaseConnection,
    actor: crate::audit::Actor<'_>,
    audited: Audited<'_>,
    items: Vec<AppResult<W::Checked>>,
    writes: &W,
) -> AppResult<Vec<AppResult<Stored<W::Row>>>> {
    let txn = db::begin_write(db).await?;
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let answer = match item {
            Ok(checked) => in_savepoint(&txn, writes, &checked).await?,
            Err(e) => Err(e),
        };
        answers.push(answer);
    }
    match (audited, answers.as_slice()) {
        (Audited::Counts(operation), _) => audit(&txn, actor, operation, W::TARGET, &answers).await?,
        (Audited::Row(operation), [Ok(Stored { row, created: true })]) => {
            let id = Some(W::id(row));
            crate::audit::record(&txn, actor, operation, W::TARGET, id, serde_json::json!({})).await?;
        }
        (Audited::Row(_), _) => {}
    }
    txn.commit().await?;
    Ok(answers)
}

/// One item of [`write_each`]: its answer, or the error that fails the whole call.
async fn in_savepoint<W: Writes>(
    txn: &DatabaseTransaction,
    writes: &W,
    checked: &W::Checked,
) -> AppResult<AppResult<Stored<W::Row>>> {
    for _ in 0..ATTEMPTS {
        let savepoint = txn.begin().await?;
        match writes.write(&savepoint, checked).await {
            Ok(Some(stored)) => {
                savepoint.commit().await?;
                return Ok(Ok(stored));
            }
            Ok(None) | Err(AppError::Contended) => savepoint.rollback().await?,
            Err(AppError::Unavailable) => return Err(AppError::Unavailable),
            Err(e) => {
                savepoint.rollback().await?;
                return Ok(Err(e));
            }
        }
    }
    Ok(Err(AppError::Contended))
}
