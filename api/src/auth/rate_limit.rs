//! Per-caller rate limits on the API: a token bucket per user or API token, refilled
//! at `CXGRAPH_RATE_LIMIT` requests a minute with a burst of as many. A caller over it
//! gets `RATE_LIMITED` (HTTP 429) with the seconds until the next request would pass.
//!
//! Anonymous requests are not bucketed here (they can only log in or refresh, which
//! the log-in throttle guards). Buckets live in this process, so with N replicas a
//! caller gets up to N times the rate; the map is bounded and forgotten when full.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Principal;

const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Who a limit counts against: the user or the API token; `None` for anonymous
/// callers.
pub fn caller_key(principal: &Principal) -> Option<String> {
    match principal {
        Principal::User(u) => Some(format!("user:{}", u.id)),
        Principal::Token(t) => Some(format!("token:{}", t.id)),
        Principal::Anonymous(_) => None,
    }
}

/// The buckets of this process.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per caller; 0 turns it off.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from the caller's bucket, or says how long to wait.
    pub fn check(&self, principal: &Principal) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let Some(key) = caller_key(principal) else {
            return Ok(());
        };
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED {
            buckets.clear();
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserPrincipal;
    use entity::enums::Role;

    #[test]
    fn a_burst_then_the_refill_rate_per_caller() {
        let limiter = RateLimiter::new(3);
        let ann = Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Agent });
        let bob = Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Agent });
        for _ in 0..3 {
            assert!(limiter.check(&ann).is_ok());
        }
        let wait = limiter.check(&ann).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "one token per 20 s: {wait:?}");
        assert!(limiter.check(&bob).is_ok(), "buckets are per caller");
        assert!(limiter.check(&Principal::Anonymous(None)).is_ok());
        assert!(RateLimiter::new(0).check(&ann).is_ok(), "0 turns it off");
    }
}
