//! Slowing down password guessing without handing anyone a lockout lever.
//!
//! Two counters, both per process (a replica counts its own attempts):
//!
//! - **Per account and client address.** After [`FREE_ATTEMPTS`] failed log-ins for one
//!   e-mail from one address within [`WINDOW`], that address's attempts for that
//!   e-mail are refused with `RATE_LIMITED` (and a retry hint) for 30 s, doubling with
//!   each further failure up to fifteen minutes. Guessing from one address is slow,
//!   and a guesser elsewhere cannot lock the real user out: it only locks itself.
//! - **Per account, from anywhere.** Guessing from many addresses gets around the
//!   first counter, so once an e-mail has [`GLOBAL_FREE`] failures within the window
//!   from all addresses together, attempts for it from addresses that have not logged
//!   into it lately are let through at most one per [`GLOBAL_SPACING`]: some 180
//!   guesses a quarter of an hour, however many addresses. An address that logged in
//!   successfully to the account (within [`KNOWN_FOR`]) keeps its own pace, so the
//!   slow-down does not lock out the user at their usual desk.
//!
//! An address has at most one log-in under way at a time ([`LoginThrottle::begin`]).
//!
//! Unknown e-mails are counted exactly like known ones, so the answer never tells
//! whether an account exists. The counters are keyed by SHA-256 digests (32 bytes,
//! whatever the e-mail's length: the e-mail itself is never kept) and bounded: past
//! [`MAX_TRACKED`] entries the least recently touched tenth is forgotten.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::bounded::Bounded;

const FREE_ATTEMPTS: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures of one account, from all addresses, before the global slow-down.
pub const GLOBAL_FREE: u32 = 20;
/// Spacing of attempts from unknown addresses on an account under the slow-down.
pub const GLOBAL_SPACING: Duration = Duration::from_secs(5);
/// How long an address that logged in stays known to the account.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Addresses remembered per account.
const KNOWN_MAX: usize = 8;
/// Entries kept per map (each under 200 bytes: some 20 MiB at worst for both).
pub const MAX_TRACKED: usize = 100_000;

type Digest32 = [u8; 32];

fn digest(parts: &[&str]) -> Digest32 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().into()
}

fn account_key(email: &str) -> Digest32 {
    digest(&[&email.trim().to_lowercase()])
}

/// Failures of one (account, address).
#[derive(Debug, Clone, Copy)]
struct Local {
    failures: u32,
    first_failure: Instant,
    locked_until: Option<Instant>,
    touched: Instant,
}

/// One account's failures from anywhere and the addresses that logged into it.
#[derive(Debug, Clone)]
struct Global {
    failures: u32,
    first_failure: Instant,
    /// The last attempt let through from an unknown address under the slow-down.
    last_unknown: Option<Instant>,
    known: Vec<(Digest32, Instant)>,
    touched: Instant,
}

impl Global {
    fn new(now: Instant) -> Self {
        Global { failures: 0, first_failure: now, last_unknown: None, known: Vec::new(), touched: now }
    }
}

#[derive(Debug)]
struct Counters {
    local: Bounded<Digest32, Local>,
    global: Bounded<Digest32, Global>,
}

/// Failed log-in counters (see the module comment), and the addresses with a log-in
/// under way.
#[derive(Debug)]
pub struct LoginThrottle {
    counters: Mutex<Counters>,
    in_flight: Mutex<std::collections::HashSet<Digest32>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let counters = Counters { local: Bounded::new(MAX_TRACKED), global: Bounded::new(MAX_TRACKED) };
        LoginThrottle { counters: Mutex::new(counters), in_flight: Mutex::default() }
    }
}

/// One address's log-in under way; the address may start another when it is dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    throttle: &'a LoginThrottle,
    address: Digest32,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.throttle.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.address);
    }
}

impl LoginThrottle {
    /// `Err(wait)` while attempts for this e-mail from `address` (a key from
    /// `rate_limit::address_key`) are refused. An attempt it lets through under the
    /// global slow-down takes the account's next slot.
    pub fn check(&self, email: &str, address: &str) -> Result<(), Duration> {
        let account = account_key(email);
        let pair = digest(&[&email.trim().to_lowercase(), address]);
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = counters.local.entries.get(&pair).and_then(|e| e.locked_until)
            && until > now
        {
            return Err(until - now);
        }
        let Some(global) = counters.global.entries.get_mut(&account) else {
            return Ok(());
        };
        let hot = global.failures >= GLOBAL_FREE && now.duration_since(global.first_failure) <= WINDOW;
        let address_digest = digest(&[address]);
        let known = global.known.iter().any(|(a, at)| *a == address_digest && now.duration_since(*at) <= KNOWN_FOR);
        if !hot || known {
            return Ok(());
        }
        if let Some(last) = global.last_unknown
            && now.duration_since(last) < GLOBAL_SPACING
        {
            return Err(GLOBAL_SPACING - now.duration_since(last));
        }
        global.last_unknown = Some(now);
        Ok(())
    }

    /// A log-in from `address` may start, unless one from it is still under way: one
    /// address cannot keep several hashes running or queued (the queue is shared by
    /// everyone), nor slip more guesses past the count than it allows by sending them
    /// at once.
    pub fn begin(&self, address: &str) -> Option<InFlight<'_>> {
        let address = digest(&[address]);
        let fresh = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(address);
        fresh.then_some(InFlight { throttle: self, address })
    }

    /// Records a failed attempt for `email` from `address`.
    pub fn failure(&self, email: &str, address: &str) {
        let account = account_key(email);
        let pair = digest(&[&email.trim().to_lowercase(), address]);
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Local { failures: 0, first_failure: now, locked_until: None, touched: now };
        let local = counters.local.get_or_insert_with(pair, |e| e.touched, || fresh);
        if now.duration_since(local.first_failure) > WINDOW && local.locked_until.is_none_or(|u| u <= now) {
            *local = fresh;
        }
        local.failures += 1;
        local.touched = now;
        if local.failures >= FREE_ATTEMPTS {
            let doublings = (local.failures - FREE_ATTEMPTS).min(10);
            let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
            local.locked_until = Some(now + lock);
        }
        let global = counters.global.get_or_insert_with(account, |g| g.touched, || Global::new(now));
        if now.duration_since(global.first_failure) > WINDOW {
            global.failures = 0;
            global.first_failure = now;
        }
        global.failures += 1;
        global.touched = now;
    }

    /// Forgets the failures of `email` from `address` after a successful log-in, and
    /// remembers the address as the account's.
    pub fn success(&self, email: &str, address: &str) {
        let account = account_key(email);
        let pair = digest(&[&email.trim().to_lowercase(), address]);
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.local.entries.remove(&pair);
        let global = counters.global.get_or_insert_with(account, |g| g.touched, || Global::new(now));
        let address_digest = digest(&[address]);
        global.known.retain(|(a, at)| *a != address_digest && now.duration_since(*at) <= KNOWN_FOR);
        global.known.push((address_digest, now));
        if global.known.len() > KNOWN_MAX {
            global.known.remove(0);
        }
        global.touched = now;
    }

    /// Entries held, for the bound's test.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        (counters.local.entries.len(), counters.global.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "ip:192.0.2.1";
    const AWAY: &str = "ip:198.51.100.7";

    #[test]
    fn five_failures_lock_that_address_only_and_success_forgets() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.failure("Ann@Example.com", AWAY);
            assert!(t.check("ann@example.com", AWAY).is_ok());
        }
        t.failure("ann@example.com", AWAY);
        let wait = t.check(" ANN@example.com ", AWAY).expect_err("locked after five");
        assert!(wait <= FIRST_LOCK && wait > Duration::from_secs(25));
        assert!(t.check("ann@example.com", HOME).is_ok(), "the user elsewhere is not locked out");
        assert!(t.check("bob@example.com", AWAY).is_ok(), "per e-mail");
        t.success("ann@example.com", AWAY);
        assert!(t.check("ann@example.com", AWAY).is_ok());
    }

    #[test]
    fn guessing_from_many_addresses_is_spaced_out_but_not_for_a_known_address() {
        let t = LoginThrottle::default();
        t.success("ann@example.com", HOME);
        for i in 0..GLOBAL_FREE {
            let address = format!("ip:203.0.113.{i}");
            assert!(t.check("ann@example.com", &address).is_ok(), "below the global count");
            t.failure("ann@example.com", &address);
        }
        assert!(t.check("ann@example.com", "ip:10.9.9.1").is_ok(), "one attempt from anywhere passes");
        let wait = t.check("ann@example.com", "ip:10.9.9.2").expect_err("the next one waits its turn");
        assert!(wait <= GLOBAL_SPACING);
        assert!(t.check("ann@example.com", HOME).is_ok(), "the user's own address keeps its pace");
        assert!(t.check("ann@example.com", HOME).is_ok());
        assert!(t.check("bob@example.com", "ip:10.9.9.2").is_ok(), "other accounts are untouched");
    }

    #[test]
    fn one_log_in_at_a_time_per_address() {
        let t = LoginThrottle::default();
        let first = t.begin(HOME).expect("free");
        assert!(t.begin(HOME).is_none(), "a second one from the same address waits");
        assert!(t.begin(AWAY).is_some(), "other addresses are not held");
        drop(first);
        assert!(t.begin(HOME).is_some());
    }

    #[test]
    fn the_key_space_is_bounded_and_keys_are_digests() {
        let t = LoginThrottle::default();
        let long = "x".repeat(1 << 20);
        for i in 0..(MAX_TRACKED + 10) {
            t.failure(&format!("{i}{}", &long[..16]), HOME);
        }
        let (local, global) = t.tracked();
        assert!(local <= MAX_TRACKED && global <= MAX_TRACKED, "{local} {global}");
        // A megabyte e-mail is held as 32 bytes, like any other.
        t.failure(&long, HOME);
        assert!(std::mem::size_of::<Digest32>() == 32);
    }
}
