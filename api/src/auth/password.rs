//! Password hashing with argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing is deliberately slow, so it runs on the blocking pool, never on the async
//! worker threads. Verifying a login for an unknown e-mail still checks a dummy hash so
//! the response time does not tell who has an account.

use std::sync::LazyLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{AppError, AppResult};

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 12;

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
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await.map_err(AppError::internal)?
}

/// Verifies a password against a stored hash, or against the dummy hash when `phc` is
/// `None` (unknown user: always false, in the same time).
pub async fn verify(password: String, phc: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref() {
                let _ = verify_blocking(&password, dummy);
            }
            Ok(false)
        }
    })
    .await
    .map_err(AppError::internal)?
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
    if password.len() > 1024 {
        return Err("must be at most 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
