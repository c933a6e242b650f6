//! Journey runs: each pass of a customer through a journey, walked from the
//! touchpoints, and the `journey_steps` table that keeps them for the funnel.
//!
//! **A run** begins at a touchpoint at the journey's first stage that does not follow
//! another first-stage touchpoint (of that customer, in that journey, ordered by time
//! then id): browsing twice is one entry, browsing again after reaching the cart is a
//! second run. A run lasts until the next one begins. Within it the funnel is ordered
//! and closed: the run reached stage k when it reached stages 1…k, each (its first time
//! in the run) no earlier than the one before; skipping a stage or reaching it before
//! the previous one stops the run there. A run is what the funnel counts, so a
//! customer who buys twice enters the Purchase funnel twice.
//!
//! A run depends only on its own customer's touchpoints, never on the window a
//! funnel asks about, so it can be kept: `journey_steps` holds one row per stage each
//! run reached (with the entry time and channel, the time it was reached and the
//! seconds from the previous stage). Triggers mark every changed customer and journey
//! (migration 15); [`refresh`] re-walks marked ones and deletes exactly the marks its
//! snapshot saw; [`Source`] has the funnel read marked ones from the touchpoints and
//! the rest from the steps. So the funnel's answer always equals the walk of the
//! touchpoints themselves — [`walk`] is the one definition, used by both. The refresh
//! also keeps the funnel's rollup of the steps (migration 19) equal to them: it takes
//! a chunk's old steps out of it and adds the new ones in the same transaction.

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};
use uuid::Uuid;

use super::sql::{self, Sql};
use crate::error::AppResult;

/// Whose touchpoints a walk reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every customer of a journey.
    Journey(Uuid),
    /// Every journey of these customers.
    Customers(&'a [Uuid]),
    /// The customers marked in a journey (not the whole-journey mark).
    MarkedIn(Uuid),
}

/// The columns a walk yields, in the order `journey_steps` stores them.
pub const COLUMNS: &str = "customer_id, run_id, journey_id, entered_at, entry_channel, ordinal, reached_at, seconds";

/// Common table expressions ending in `walked`, the steps of every run of `scope`
/// (columns [`COLUMNS`]), to follow `WITH`.
///
/// `w_tp` numbers the stages and flags touchpoints that begin a run (`starts`, by
/// `LAG` over the customer's touchpoints); `w_runs` gives each touchpoint its run
/// (`run_no`, a running sum of `starts`); the first time at each stage of a run, the
/// stage before it in the run and the first stage out of order (`broken`) follow; a
/// run keeps its steps before `broken`.
pub fn walk(backend: DatabaseBackend, scope: Scope<'_>) -> Sql {
    let mut q = Sql::new();
    q.push("w_stages AS (SELECT s.id AS stage_id, ROW_NUMBER() OVER (PARTITION BY s.journey_id ORDER BY s.position) AS ordinal FROM journey_stages s");
    if let Scope::Journey(j) | Scope::MarkedIn(j) = scope {
        q.push(" WHERE s.journey_id = ").bind(j);
    }
    q.push(
        "), w_tp AS (SELECT t.id, t.journey_id, t.customer_id, t.occurred_at, t.channel, st.ordinal, \
         CASE WHEN st.ordinal = 1 AND COALESCE(LAG(st.ordinal) OVER (PARTITION BY t.journey_id, t.customer_id \
         ORDER BY t.occurred_at, t.id), 0) <> 1 THEN 1 ELSE 0 END AS starts \
         FROM touchpoints t JOIN w_stages st ON st.stage_id = t.stage_id WHERE ",
    );
    match scope {
        Scope::Journey(j) => {
            q.push("t.journey_id = ").bind(j);
        }
        Scope::Customers(ids) => {
            q.push("t.customer_id IN ").bind_list(ids.iter().copied());
        }
        Scope::MarkedIn(j) => {
            q.push("t.journey_id = ").bind(j);
            q.push(" AND t.customer_id IN (SELECT d.customer_id FROM journey_steps_dirty d WHERE d.journey_id = ")
                .bind(j)
                .push(" AND d.customer_id IS NOT NULL)");
        }
    }
    let seconds = sql::seconds_between(backend, "c.reached_at", "c.prev_at");
    q.push(&format!(
        "), w_runs AS (SELECT p.*, SUM(p.starts) OVER (PARTITION BY p.journey_id, p.customer_id \
           ORDER BY p.occurred_at, p.id ROWS UNBOUNDED PRECEDING) AS run_no FROM w_tp p), \
         w_firsts AS (SELECT f.*, \
           LAG(f.ordinal) OVER (PARTITION BY f.journey_id, f.customer_id, f.run_no ORDER BY f.ordinal) AS prev_ordinal, \
           LAG(f.reached_at) OVER (PARTITION BY f.journey_id, f.customer_id, f.run_no ORDER BY f.ordinal) AS prev_at \
           FROM (SELECT r.journey_id, r.customer_id, r.run_no, r.ordinal, MIN(r.occurred_at) AS reached_at \
             FROM w_runs r WHERE r.run_no > 0 GROUP BY r.journey_id, r.customer_id, r.run_no, r.ordinal) f), \
         w_checked AS (SELECT l.*, MIN(CASE WHEN l.ordinal > 1 AND (l.prev_ordinal IS NULL \
             OR l.prev_ordinal <> l.ordinal - 1 OR l.reached_at < l.prev_at) THEN l.ordinal END) \
           OVER (PARTITION BY l.journey_id, l.customer_id, l.run_no) AS broken FROM w_firsts l), \
         walked AS (SELECT c.customer_id, s.id AS run_id, c.journey_id, s.occurred_at AS entered_at, \
           s.channel AS entry_channel, CAST(c.ordinal AS INTEGER) AS ordinal, c.reached_at, \
           CASE WHEN c.ordinal > 1 THEN {seconds} END AS seconds \
           FROM w_checked c JOIN w_runs s ON s.journey_id = c.journey_id AND s.customer_id = c.customer_id \
             AND s.run_no = c.run_no AND s.starts = 1 \
           WHERE c.broken IS NULL OR c.ordinal < c.broken)"
    ));
    q
}

/// Where a funnel reads one journey's steps from, as its snapshot finds the marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// No marks: the kept steps.
    Kept,
    /// Some customers marked: kept steps of the others, walked steps of theirs.
    Mixed,
    /// The journey is marked (its stages changed): walked from every touchpoint.
    Walked,
}

impl Source {
    /// Reads the marks of `journey` (inside the funnel's snapshot).
    pub async fn of(db: &impl ConnectionTrait, journey: Uuid) -> AppResult<Self> {
        let mut q = Sql::new();
        q.push(
            "SELECT COUNT(*) - COUNT(customer_id) AS whole, COUNT(customer_id) AS customers \
             FROM journey_steps_dirty WHERE journey_id = ",
        )
        .bind(journey);
        let row = db.query_one_raw(q.statement(db.get_database_backend())).await?;
        let (whole, customers) = match row {
            Some(r) => (r.try_get::<i64>("", "whole")?, r.try_get::<i64>("", "customers")?),
            None => (0, 0),
        };
        Ok(if whole > 0 {
            Self::Walked
        } else if customers > 0 {
            Self::Mixed
        } else {
            Self::Kept
        })
    }

    /// `WITH …, steps AS (…)`: the steps of runs of `journey` entered in
    /// `[from, to)`, columns `customer_id, entry_channel, ordinal, reached_at, seconds`.
    pub fn steps(
        self,
        backend: DatabaseBackend,
        journey: Uuid,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Sql {
        const PICK: &str = "customer_id, entry_channel, ordinal, reached_at, seconds";
        let mut q = Sql::new();
        q.push("WITH ");
        let walked = |q: &mut Sql, scope: Scope<'_>| {
            q.append(walk(backend, scope)).push(&format!(", steps AS (SELECT {PICK} FROM walked w WHERE "));
            q.push("w.entered_at >= ").bind(from).push(" AND w.entered_at < ").bind(to);
        };
        let kept = |q: &mut Sql| {
            q.push(&format!("SELECT {PICK} FROM journey_steps k WHERE k.journey_id = ")).bind(journey);
            q.push(" AND k.entered_at >= ").bind(from).push(" AND k.entered_at < ").bind(to);
        };
        match self {
            Self::Walked => walked(&mut q, Scope::Journey(journey)),
            Self::Mixed => {
                walked(&mut q, Scope::MarkedIn(journey));
                q.push(" UNION ALL ");
                kept(&mut q);
                q.push(
                    " AND k.customer_id NOT IN (SELECT d.customer_id FROM journey_steps_dirty d WHERE d.journey_id = ",
                )
                .bind(journey)
                .push(" AND d.customer_id IS NOT NULL)");
            }
            Self::Kept => {
                q.push("steps AS (");
                kept(&mut q);
            }
        }
        q.push(")");
        q
    }
}

/// Adds `sign` × the kept steps matching `condition` (over `journey_steps s`) to the
/// funnel's rollup (migration 19), which the refresh keeps equal to the steps in the
/// same transaction that changes them.
fn fold(backend: DatabaseBackend, sign: i32, condition: impl FnOnce(&mut Sql)) -> Sql {
    let (head, tail) = migration::funnel_rollup::fold_steps(backend, sign);
    let mut q = Sql::new();
    q.push(&head);
    condition(&mut q);
    q.push(&tail);
    q
}

/// Most marked customers one refresh transaction re-walks.
const CHUNK: usize = 500;

/// Re-walks one marked journey, or up to [`CHUNK`] marked customers, in one
/// transaction; answers how many marks it cleared (0 when none, or when another
/// replica holds the refresh).
async fn refresh_chunk(db: &DatabaseConnection) -> AppResult<usize> {
    let backend = db.get_database_backend();
    let Some(txn) = super::rollups::refresh_transaction(db, 4_242_002).await? else {
        return Ok(0);
    };
    let run = |q: Sql| txn.execute_raw(q.statement(backend));
    let insert = |scope: Scope<'_>| {
        let mut q = Sql::new();
        q.push(&format!("INSERT INTO journey_steps ({COLUMNS}) WITH "));
        q.append(walk(backend, scope)).push(&format!(" SELECT {COLUMNS} FROM walked"));
        q
    };
    let whole = txn
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT journey_id FROM journey_steps_dirty WHERE customer_id IS NULL LIMIT 1",
        ))
        .await?;
    let cleared = if let Some(row) = whole {
        let journey: Uuid = row.try_get("", "journey_id")?;
        for table in ["journey_step_rollups", "journey_steps"] {
            let mut q = Sql::new();
            q.push(&format!("DELETE FROM {table} WHERE journey_id = ")).bind(journey);
            run(q).await?;
        }
        run(insert(Scope::Journey(journey))).await?;
        run(fold(backend, 1, |q| {
            q.push("s.journey_id = ").bind(journey);
        }))
        .await?;
        let mut q = Sql::new();
        q.push("DELETE FROM journey_steps_dirty WHERE journey_id = ").bind(journey);
        run(q).await?.rows_affected()
    } else {
        let rows = txn
            .query_all_raw(sea_orm::Statement::from_string(
                backend,
                format!("SELECT DISTINCT customer_id FROM journey_steps_dirty LIMIT {CHUNK}"),
            ))
            .await?;
        let customers = rows.iter().map(|r| r.try_get::<Uuid>("", "customer_id")).collect::<Result<Vec<_>, _>>()?;
        if customers.is_empty() {
            return Ok(0);
        }
        let these = |q: &mut Sql| {
            q.push("s.customer_id IN ").bind_list(customers.iter().copied());
        };
        run(fold(backend, -1, these)).await?;
        let mut q = Sql::new();
        q.push("DELETE FROM journey_steps WHERE customer_id IN ").bind_list(customers.iter().copied());
        run(q).await?;
        run(insert(Scope::Customers(&customers))).await?;
        run(fold(backend, 1, these)).await?;
        run(Sql::from("DELETE FROM journey_step_rollups WHERE n = 0")).await?;
        let mut q = Sql::new();
        q.push("DELETE FROM journey_steps_dirty WHERE customer_id IN ").bind_list(customers.iter().copied());
        run(q).await?.rows_affected()
    };
    txn.commit().await?;
    Ok(usize::try_from(cleared).unwrap_or(usize::MAX).max(1))
}

/// Refreshes until nothing is marked (or `max_chunks` chunks ran); answers the marks
/// cleared.
pub async fn refresh(db: &DatabaseConnection, max_chunks: usize) -> AppResult<usize> {
    let mut total = 0;
    for _ in 0..max_chunks {
        let n = refresh_chunk(db).await?;
        if n == 0 {
            break;
        }
        total += n;
    }
    Ok(total)
}
