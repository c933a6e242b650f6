//! Slowing down password guessing: after five failed log-ins for one e-mail within
//! fifteen minutes, further attempts for it are refused with `RATE_LIMITED` (and a
//! retry hint) for 30 s, doubling with each further failure up to fifteen minutes.
//!
//! Unknown e-mails are counted exactly like known ones, so the answer never tells
//! whether an account exists. The counters live in this process (a replica counts its
//! own attempts): a bounded map, forgotten when full rather than allowed to grow.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const FREE_ATTEMPTS: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
}

/// Failed log-in counters per e-mail.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

fn key(email: &str) -> String {
    email.trim().to_lowercase()
}

impl LoginThrottle {
    /// `Err(wait)` while attempts for this e-mail are refused.
    pub fn check(&self, email: &str) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&key(email)).and_then(|e| e.locked_until) {
            Some(until) if until > Instant::now() => Err(until - Instant::now()),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failure(&self, email: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_TRACKED {
            entries.clear();
        }
        let now = Instant::now();
        let entry = entries.entry(key(email)).or_insert(Entry { failures: 0, first_failure: now, locked_until: None });
        if now.duration_since(entry.first_failure) > WINDOW && entry.locked_until.is_none_or(|u| u <= now) {
            *entry = Entry { failures: 0, first_failure: now, locked_until: None };
        }
        entry.failures += 1;
        if entry.failures >= FREE_ATTEMPTS {
            let doublings = (entry.failures - FREE_ATTEMPTS).min(10);
            let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
            entry.locked_until = Some(now + lock);
        }
    }

    /// Forgets the failures of an e-mail after a successful log-in.
    pub fn success(&self, email: &str) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(&key(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_and_success_forgets() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.failure("Ann@Example.com");
            assert!(t.check("ann@example.com").is_ok());
        }
        t.failure("ann@example.com");
        let wait = t.check(" ANN@example.com ").expect_err("locked after five");
        assert!(wait <= FIRST_LOCK && wait > Duration::from_secs(25));
        assert!(t.check("bob@example.com").is_ok(), "per e-mail");
        t.success("ann@example.com");
        assert!(t.check("ann@example.com").is_ok());
    }
}
