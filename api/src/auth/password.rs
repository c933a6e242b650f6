//! Password hashing with argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing is deliberately slow, so it runs on the blocking pool, never on the async
//! worker threads. Verifying a login for an unknown e-mail still checks a dummy hash so
//! the response time does not tell who has an account.
//!
//! Each hash holds 19 MiB while it runs, and log-in is open to anyone, so hashes are
//! rationed: at most one per core runs at once ([`HASHING`]), at most
//! [`QUEUED_PER_CORE`] per core wait for a turn, and a request beyond that is refused
//! at once with `RATE_LIMITED` instead of queueing (48 concurrent wrong log-ins once
//! took the process from 140 to 720 MiB, and it stayed there). Passwords longer than
//! [`MAX_PASSWORD_LEN`] bytes are refused before they are hashed.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{AppError, AppResult};

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (bytes), at log-in as when it is set.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Hashes that may wait for a turn, per core, before more are refused.
pub const QUEUED_PER_CORE: usize = 4;

/// Hashes running or waiting, and the turns to run.
struct Hashing {
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    queued: AtomicUsize,
    max_queued: usize,
}

static HASHING: LazyLock<Hashing> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Hashing {
        turns: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
        queued: AtomicUsize::new(0),
        max_queued: cores * QUEUED_PER_CORE,
    }
});

/// Leaves the queue count when dropped (a cancelled request leaves it too).
struct InQueue;

impl Drop for InQueue {
    fn drop(&mut self) {
        HASHING.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `work` on the blocking pool when a turn is free; `RATE_LIMITED` when too many
/// wait already.
async fn rationed<T: Send + 'static>(work: impl FnOnce() -> AppResult<T> + Send + 'static) -> AppResult<T> {
    if HASHING.queued.fetch_add(1, Ordering::Relaxed) >= HASHING.max_queued {
        HASHING.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(AppError::RateLimited(Duration::from_secs(1)));
    }
    let queued = InQueue;
    let turn = std::sync::Arc::clone(&HASHING.turns).acquire_owned().await.map_err(AppError::internal)?;
    drop(queued);
    // The turn goes with the work: a request abandoned meanwhile (its deadline passed)
    // does not free a turn while its hash still runs.
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work()
    })
    .await
    .map_err(AppError::internal)?
}

fn argon2() -> AppResult<Argon2<'static>> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| AppError::internal(anyhow::anyhow!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A hash of a random password, checked when the e-mail is unknown.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash_blocking("cxgraph-dummy-password").ok());

fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash: {e}")))
}

fn verify_blocking(password: &str, phc: &str) -> AppResult<bool> {
    let parsed =
        PasswordHash::new(phc).map_err(|e| AppError::internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
    Ok(argon2()?.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Hashes a password off the async threads.
pub async fn hash(password: String) -> AppResult<String> {
    rationed(move || hash_blocking(&password)).await
}

/// Verifies a password against a stored hash, or against the dummy hash when `phc` is
/// `None` (unknown user: always false, in the same time).
pub async fn verify(password: String, phc: Option<String>) -> AppResult<bool> {
    rationed(move || match phc {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref() {
                let _ = verify_blocking(&password, dummy);
            }
            Ok(false)
        }
    })
    .await
}

/// Whether a stored hash was made with other parameters (or another algorithm) than
/// today's: such a hash is replaced at the next successful log-in.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return true };
    let Ok(current) = argon2() else { return false };
    let params = current.params();
    parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(u32::from(Version::V0x13))
        || argon2::Params::try_from(&parsed).map_or(true, |p| {
            p.m_cost() != params.m_cost() || p.t_cost() != params.t_cost() || p.p_cost() != params.p_cost()
        })
}

/// Checks a new password's strength; the message is shown beside the field.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!("must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("must be at most {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_beyond_the_running_and_queued_ones_are_refused_at_once() {
        // Hold every turn, as long hashes would.
        let cores = HASHING.turns.available_permits();
        let held = std::sync::Arc::clone(&HASHING.turns).acquire_many_owned(cores as u32).await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..HASHING.max_queued {
            waiting.push(tokio::spawn(rationed(|| Ok(1))));
        }
        // Wait until all of them are in the queue.
        while HASHING.queued.load(Ordering::Relaxed) < HASHING.max_queued {
            tokio::task::yield_now().await;
        }
        let refused = rationed(|| Ok(2)).await;
        assert!(matches!(refused, Err(AppError::RateLimited(_))), "one more than the queue holds is refused");
        drop(held);
        for w in waiting {
            assert_eq!(w.await.unwrap().ok(), Some(1), "the queued ones run once turns free up");
        }
        assert_eq!(HASHING.queued.load(Ordering::Relaxed), 0);
        assert_eq!(rationed(|| Ok(3)).await.ok(), Some(3));
    }

    #[test]
    fn only_hashes_with_other_parameters_need_a_rehash() {
        let current = hash_blocking("a-long-enough-password").expect("hash");
        assert!(!needs_rehash(&current));
        let weak_params = Params::new(4096, 1, 1, None).expect("params");
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, weak_params)
            .hash_password(b"a-long-enough-password", &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string();
        assert!(needs_rehash(&weak));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default())
            .hash_password(b"x", &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string();
        assert!(needs_rehash(&argon2i));
        assert!(needs_rehash("not a hash"));
    }
}
