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
//! does not buy a fresh bucket, and its /48 has a bucket too, [`NETWORK_SHARE`] times
//! an address's, so rotating /64s does not either. An address has two anonymous buckets, by [`Door`]: any
//! web page can make a visitor's browser send us GETs, WebSocket upgrades and simple
//! POSTs, but not a JSON POST, so a page flooding the first from an office's browsers
//! does not stop its staff logging in or refreshing through the second. Buckets live
//! in this process, so with N replicas a caller gets up to N times the rate. The map
//! is bounded (`bounded`): when full, the least recently used tenth is forgotten.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Principal;
use super::bounded::Bounded;

const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How an anonymous request reached us (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// A JSON POST to `/graphql`: only a client of ours sends one.
    Client,
    /// Anything a page on another site can make a browser send.
    AnySite,
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

/// The key of the network an IPv6 address belongs to (its /48, a site's allocation):
/// rotating /64s within one buys no more than this network's share. `None` for IPv4
/// (an address is scarce enough to stand for itself).
pub fn network_key(address: IpAddr) -> Option<String> {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            Some(format!("net:{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
        _ => None,
    }
}

/// How many /64s' worth of anonymous requests a /48 gets in all.
pub const NETWORK_SHARE: u32 = 16;

/// The buckets of this process.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    anonymous_per_minute: u32,
    buckets: Mutex<Bounded<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per caller and `anonymous_per_minute`
    /// anonymous requests per client address and door; 0 turns either off.
    pub fn new(per_minute: u32, anonymous_per_minute: u32) -> Self {
        RateLimiter { per_minute, anonymous_per_minute, buckets: Mutex::new(Bounded::new(MAX_TRACKED)) }
    }

    /// Takes one request from the caller's bucket (when anonymous, its address's for
    /// the door it came by), or says how long to wait.
    pub fn check(&self, principal: &Principal, address: IpAddr, door: Door) -> Result<(), Duration> {
        match caller_key(principal) {
            Some(key) => self.take(key, self.per_minute),
            None => {
                let door = match door {
                    Door::Client => "client",
                    Door::AnySite => "any-site",
                };
                self.take(format!("{door}:{}", address_key(address)), self.anonymous_per_minute)?;
                match network_key(address) {
                    Some(network) => {
                        let rate = self.anonymous_per_minute.saturating_mul(NETWORK_SHARE);
                        self.take(format!("{door}:{network}"), rate)
                    }
                    None => Ok(()),
                }
            }
        }
    }

    fn take(&self, key: String, per_minute: u32) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.get_or_insert_with(key, |b| b.at, || Bucket { tokens: capacity, at: now });
        // Every bucket of a key is refilled at its own kind's rate (keys never change kind).
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

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn a_burst_then_the_refill_rate_per_caller() {
        let limiter = RateLimiter::new(3, 0);
        let ann = Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Agent });
        let bob = Principal::User(UserPrincipal { id: uuid::Uuid::now_v7(), role: Role::Agent });
        for _ in 0..3 {
            assert!(limiter.check(&ann, HOME, Door::Client).is_ok());
        }
        let wait = limiter.check(&ann, AWAY, Door::AnySite).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "one token per 20 s: {wait:?}");
        assert!(limiter.check(&bob, HOME, Door::Client).is_ok(), "buckets are per caller, wherever they call from");
        assert!(
            limiter.check(&Principal::Anonymous(None), HOME, Door::Client).is_ok(),
            "0 leaves anonymous callers alone"
        );
        assert!(RateLimiter::new(0, 0).check(&ann, HOME, Door::Client).is_ok(), "0 turns it off");
    }

    #[test]
    fn anonymous_requests_are_bucketed_per_address_and_door() {
        let limiter = RateLimiter::new(0, 2);
        let anonymous = Principal::Anonymous(None);
        let check = |address: IpAddr, door: Door| limiter.check(&anonymous, address, door);
        assert!(check(HOME, Door::AnySite).is_ok());
        assert!(check(HOME, Door::AnySite).is_ok());
        assert!(check(HOME, Door::AnySite).is_err(), "a third within the minute waits");
        assert!(check(HOME, Door::Client).is_ok(), "what pages can send does not use up what clients can");
        assert!(check(AWAY, Door::AnySite).is_ok(), "another address has its own bucket");
        // Addresses within one IPv6 /64 share a bucket; another /64 does not.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(check(a, Door::Client).is_ok());
        assert!(check(b, Door::Client).is_ok());
        assert!(check(a, Door::Client).is_err());
        assert!(check(c, Door::Client).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(check(mapped, Door::AnySite).is_err(), "an IPv4-mapped address is that IPv4 address");
        // Rotating /64s within one /48 buys at most its network's share.
        let passed = (0..200u16)
            .filter(|i| {
                check(IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, *i, 0, 0, 0, 1)), Door::AnySite).is_ok()
            })
            .count();
        assert_eq!(passed, 2 * NETWORK_SHARE as usize);
    }

    #[test]
    fn a_full_map_keeps_the_buckets_in_use() {
        let limiter = RateLimiter::new(1, 1);
        let anonymous = Principal::Anonymous(None);
        assert!(limiter.check(&anonymous, HOME, Door::Client).is_ok());
        // Many other addresses come and go: the busy caller's empty bucket is not
        // forgotten (which would hand it a fresh one).
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let other = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limiter.check(&anonymous, other, Door::Client);
            if i % 20_000 == 0 {
                assert!(limiter.check(&anonymous, HOME, Door::Client).is_err());
            }
        }
        assert!(limiter.check(&anonymous, HOME, Door::Client).is_err());
    }
}
