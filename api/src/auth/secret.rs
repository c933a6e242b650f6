//! Opaque high-entropy secrets (refresh tokens now, API tokens later): a recognisable
//! type prefix for secret scanners, 256 random bits, and a SHA-256 hash that is all the
//! database ever stores. A fast hash is right here: unlike passwords, these secrets
//! cannot be guessed, so there is nothing for a slow hash to protect against.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// A freshly generated secret and the hash to store.
pub struct NewSecret {
    pub secret: String,
    pub hash: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret").field("hash", &self.hash).finish_non_exhaustive()
    }
}

/// Generates `<prefix>_<43 base64url characters>`.
pub fn generate(prefix: &str) -> NewSecret {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    NewSecret { secret, hash }
}

/// The stored form of a secret: lower-case hex SHA-256.
pub fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random password for generated accounts (printed once, never stored in clear).
pub fn random_password() -> String {
    let mut bytes = [0u8; 18];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
