//! Per-caller query-cost budget, GitHub-style: every user and API token may spend
//! `CXGRAPH_COST_BUDGET` points of query cost (see `graphql::cost`) per hour. The
//! hour starts with the caller's first charged query and resets whole. Every answer
//! reports the query's cost, what remains and when it resets (`extensions.cost`); a
//! query that costs more than remains is refused with `RATE_LIMITED` before any
//! resolver runs, and is not charged.
//!
//! This is the second limit beside the request-rate bucket (`rate_limit`): the rate
//! bounds how often a caller asks, the budget how much work the asking may add up
//! to — a thousand cheap lookups or a handful of wide reports. Anonymous callers can
//! only log in, so they are not charged. Windows live in this process (with N
//! replicas a caller may spend up to N budgets); the map is bounded and forgotten
//! when full.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Principal;
use super::rate_limit::caller_key;

const WINDOW: Duration = Duration::from_secs(3600);
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    used: u64,
    started: Instant,
}

/// What one query cost and what the caller has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostReport {
    /// The cost of this query.
    pub cost: u64,
    /// Points per hour.
    pub limit: u64,
    /// Points left in this hour (after this query, when it ran).
    pub remaining: u64,
    /// When the hour ends and the budget is whole again.
    pub reset_at: DateTime<Utc>,
}

impl CostReport {
    /// Seconds until the reset, at least 1 (for `retryAfterSeconds`).
    pub fn retry_after_secs(&self) -> i64 {
        (self.reset_at - Utc::now()).num_seconds().max(1)
    }
}

/// The budgets of this process.
#[derive(Debug)]
pub struct CostBudget {
    per_hour: u64,
    windows: Mutex<HashMap<String, Window>>,
}

impl CostBudget {
    /// A budget of `per_hour` points per caller; 0 turns it off.
    pub fn new(per_hour: u64) -> Self {
        CostBudget { per_hour, windows: Mutex::new(HashMap::new()) }
    }

    /// Whether this caller's queries are charged (the budget is on and the caller is
    /// not anonymous): pricing a query is skipped otherwise.
    pub fn charges(&self, principal: &Principal) -> bool {
        self.per_hour != 0 && caller_key(principal).is_some()
    }

    /// Gives back what a charged query cost when it did not run after all (it failed
    /// validation): a query is paid for only when it runs.
    pub fn refund(&self, principal: &Principal, cost: u64) {
        let Some(key) = caller_key(principal) else {
            return;
        };
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = windows.get_mut(&key) {
            window.used = window.used.saturating_sub(cost);
        }
    }

    /// Charges `cost` to the caller: `Ok` with the report when it fits, `Err` with
    /// the report (nothing charged) when it does not, `None` when the budget is off
    /// or the caller is anonymous.
    pub fn charge(&self, principal: &Principal, cost: u64) -> Option<Result<CostReport, CostReport>> {
        if self.per_hour == 0 {
            return None;
        }
        let key = caller_key(principal)?;
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED {
            windows.clear();
        }
        let window = windows.entry(key).or_insert(Window { used: 0, started: now });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window { used: 0, started: now };
        }
        let left = WINDOW.saturating_sub(now.duration_since(window.started));
        let reset_at = Utc::now() + chrono::Duration::from_std(left).unwrap_or_default();
        let fits = cost <= self.per_hour - window.used;
        if fits {
            window.used += cost;
        }
        let report = CostReport { cost, limit: self.per_hour, remaining: self.per_hour - window.used, reset_at };
        Some(if fits { Ok(report) } else { Err(report) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserPrincipal;
    use entity::enums::Role;

    fn user() -> Principal {
        Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Analyst })
    }

    #[test]
    fn queries_spend_the_hour_until_one_does_not_fit() {
        let budget = CostBudget::new(100);
        let (ann, bob) = (user(), user());
        let first = budget.charge(&ann, 60).unwrap().unwrap();
        assert_eq!((first.cost, first.limit, first.remaining), (60, 100, 40));
        let reset = first.reset_at - Utc::now();
        assert!(reset > chrono::Duration::minutes(59) && reset <= chrono::Duration::minutes(60));
        // Too dear for what is left: refused and not charged.
        let refused = budget.charge(&ann, 41).unwrap().unwrap_err();
        assert_eq!(refused.remaining, 40);
        assert!(refused.retry_after_secs() > 3500);
        assert_eq!(budget.charge(&ann, 40).unwrap().unwrap().remaining, 0);
        assert_eq!(budget.charge(&bob, 1).unwrap().unwrap().remaining, 99, "budgets are per caller");
    }

    #[test]
    fn a_refund_gives_back_what_was_charged() {
        let budget = CostBudget::new(100);
        let ann = user();
        assert!(budget.charges(&ann));
        budget.charge(&ann, 70).unwrap().unwrap();
        budget.refund(&ann, 70);
        assert_eq!(budget.charge(&ann, 100).unwrap().unwrap().remaining, 0, "the whole hour is there again");
    }

    #[test]
    fn off_or_anonymous_is_not_charged() {
        assert!(!CostBudget::new(0).charges(&user()));
        assert!(!CostBudget::new(100).charges(&Principal::Anonymous(None)));
        assert!(CostBudget::new(0).charge(&user(), 5).is_none());
        assert!(CostBudget::new(100).charge(&Principal::Anonymous(None), 5).is_none());
    }
}
