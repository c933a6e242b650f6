//! Request rate limits: a token bucket per user or API token, refilled at
//! `CXGRAPH_RATE_LIMIT` requests a minute with a burst of as many, and one per client
//! address for anonymous requests (no credentials, or credentials refused), refilled
//! at `CXGRAPH_ANONYMOUS_RATE_LIMIT`. Anonymous callers can only log in, refresh, read
//! the schema or be refused, but each of those costs something (a log-in an argon2
//! hash, a refused token a database lookup), so an address that sends many of them is
//! slowed down like any caller. A caller over its rate gets `RATE_LIMITED` (HTTP 429)
//! with the seconds until the next request would pass.
//!
//! Addresses are bucketed as the network gave them (see `http::client`); IPv6 by its
//! /64, the smallest block one subscriber is given, so rotating addresses within it
//! does not buy a fresh bucket. Buckets live in this process, so with N replicas a
//! caller gets up to N times the rate. The map is bounded: when full, buckets that
//! have refilled (idle callers, nothing to remember) are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
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

/// The key of a client address: IPv4 whole, IPv6 by its /64.
pub fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The buckets of this process.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    anonymous_per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per caller and `anonymous_per_minute`
    /// anonymous requests per client address; 0 turns either off.
    pub fn new(per_minute: u32, anonymous_per_minute: u32) -> Self {
        RateLimiter { per_minute, anonymous_per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from the caller's bucket (the address's, when anonymous), or
    /// says how long to wait.
    pub fn check(&self, principal: &Principal, address: IpAddr) -> Result<(), Duration> {
        match caller_key(principal) {
            Some(key) => self.take(key, self.per_minute),
            None => self.take(address_key(address), self.anonymous_per_minute),
        }
    }

    fn take(&self, key: String, per_minute: u32) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let refill = |b: &Bucket| (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second).min(capacity);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, b| refill(b) < capacity);
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = refill(bucket);
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

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn a_burst_then_the_refill_rate_per_caller() {
        let limiter = RateLimiter::new(3, 0);
        let ann = Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Agent });
        let bob = Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Agent });
        for _ in 0..3 {
            assert!(limiter.check(&ann, HOME).is_ok());
        }
        let wait = limiter.check(&ann, AWAY).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "one token per 20 s: {wait:?}");
        assert!(limiter.check(&bob, HOME).is_ok(), "buckets are per caller, wherever they call from");
        assert!(limiter.check(&Principal::Anonymous(None), HOME).is_ok(), "0 leaves anonymous callers alone");
        assert!(RateLimiter::new(0, 0).check(&ann, HOME).is_ok(), "0 turns it off");
    }

    #[test]
    fn anonymous_requests_are_bucketed_per_address() {
        let limiter = RateLimiter::new(0, 2);
        let anonymous = Principal::Anonymous(None);
        assert!(limiter.check(&anonymous, HOME).is_ok());
        assert!(limiter.check(&anonymous, HOME).is_ok());
        assert!(limiter.check(&anonymous, HOME).is_err(), "a third request within the minute waits");
        assert!(limiter.check(&anonymous, AWAY).is_ok(), "another address has its own bucket");
        // Addresses within one IPv6 /64 share a bucket; another /64 does not.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.check(&anonymous, a).is_ok());
        assert!(limiter.check(&anonymous, b).is_ok());
        assert!(limiter.check(&anonymous, a).is_err());
        assert!(limiter.check(&anonymous, c).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(limiter.check(&anonymous, mapped).is_err(), "an IPv4-mapped address is that IPv4 address");
    }
}
