//! Short-lived access tokens: HS256 JWTs with a pinned algorithm.
//!
//! Validation accepts only HS256 (no `none`, no algorithm confusion), requires `exp`,
//! `iss`, `aud` and `sub`, and allows no leeway beyond a few seconds of clock skew. A
//! token names its session (`sid`), which [`super::revocation`] checks on every use,
//! so a log-out, a revoked family, a deactivation or a new role takes effect within
//! seconds rather than at the token's expiry.
//!
//! Key rotation: tokens are signed with the current secret and carry its `kid` (a
//! fingerprint of the key, not the key); verification accepts the current key and the
//! previous ones (`CXGRAPH_JWT_PREVIOUS_SECRETS`), chosen by `kid`. An unknown `kid` is
//! refused; a token without one (issued before rotation existed) is checked against
//! the current key only. Rotate by making the new secret current and the old one
//! previous until the last old token has expired (the access-token lifetime).

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use entity::enums::Role;
use jsonwebtoken::errors::ErrorKind;

/// Longest access token looked at (ours are about 400 bytes).
const MAX_TOKEN_LEN: usize = 4096;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AuthFailure, UserPrincipal};
use crate::error::{AppError, AppResult};

pub const ISSUER: &str = "cxgraph";
pub const AUDIENCE: &str = "cxgraph-api";
const MIN_SECRET_LEN: usize = 32;

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session (refresh family) the token was issued in; checked against its
    /// revocation on every use (see [`super::revocation`]). Absent from tokens made
    /// before sessions were checked: those are checked against their user only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// What a valid access token states: who, and in which session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user: UserPrincipal,
    pub session: Option<Uuid>,
}

/// Signs and checks access tokens. `Debug` never shows the keys.
#[derive(Clone)]
pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    /// (kid, key): the current key first, then the previous ones.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    ttl: Duration,
}

/// The public name of a key: the first 8 bytes of its SHA-256, in hex.
fn kid_of(secret: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Builds the keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, String> {
        Self::with_previous(secret, &[], ttl)
    }

    /// Keys signing with `secret` and also accepting tokens of the `previous` secrets.
    pub fn with_previous(secret: &[u8], previous: &[&[u8]], ttl: Duration) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("CXGRAPH_JWT_SECRET must be at least {MIN_SECRET_LEN} bytes"));
        }
        if previous.iter().any(|p| p.len() < MIN_SECRET_LEN) {
            return Err(format!("every CXGRAPH_JWT_PREVIOUS_SECRETS key must be at least {MIN_SECRET_LEN} bytes"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        // A token "not valid before" a future time is refused, not taken early.
        validation.validate_nbf = true;
        let decoding =
            std::iter::once(secret).chain(previous.iter().copied()).map(|s| (kid_of(s), DecodingKey::from_secret(s)));
        Ok(Self {
            kid: kid_of(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: decoding.collect(),
            validation,
            ttl,
        })
    }

    /// Issues an access token for a user in a session; returns it with its expiry.
    pub fn issue(&self, user_id: Uuid, role: Role, session: Uuid) -> AppResult<(String, chrono::DateTime<Utc>)> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.ttl).map_err(AppError::internal)?;
        let expires_at = now + ttl;
        let claims = Claims {
            sub: user_id,
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: Uuid::now_v7(),
            sid: Some(session),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(AppError::internal)?;
        Ok((token, expires_at))
    }

    /// Checks an access token's signature and claims and returns what it states (the
    /// session's state is [`super::revocation`]'s to check).
    pub fn verify(&self, token: &str) -> Result<Verified, AuthFailure> {
        // Ours are a few hundred bytes; a huge one is refused before any decoding work.
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthFailure::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Invalid)?;
        let key = match header.kid.as_deref() {
            Some(kid) => self.decoding.iter().find(|(k, _)| k == kid).map(|(_, key)| key),
            None => self.decoding.first().map(|(_, key)| key),
        };
        let Some(key) = key else { return Err(AuthFailure::Invalid) };
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => Ok(Verified {
                user: UserPrincipal { id: data.claims.sub, role: data.claims.role },
                session: data.claims.sid,
            }),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthFailure::Expired,
                _ => AuthFailure::Invalid,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &[u8] = b"an-old-secret-of-at-least-32-bytes!!";
    const NEW: &[u8] = b"the-new-secret-of-at-least-32-bytes!";

    #[test]
    fn rotation_accepts_previous_keys_by_kid_and_refuses_unknown_ones() {
        let ttl = Duration::from_secs(60);
        let old = JwtKeys::new(OLD, ttl).unwrap();
        let (token, _) = old.issue(Uuid::now_v7(), Role::Agent, Uuid::now_v7()).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid, Some(kid_of(OLD)));
        let rotated = JwtKeys::with_previous(NEW, &[OLD], ttl).unwrap();
        assert!(rotated.verify(&token).is_ok(), "a previous key still verifies its tokens");
        let (fresh, _) = rotated.issue(Uuid::now_v7(), Role::Agent, Uuid::now_v7()).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&fresh).unwrap().kid, Some(kid_of(NEW)), "new tokens use the new key");
        assert!(JwtKeys::new(NEW, ttl).unwrap().verify(&token).is_err(), "once retired, the old key is refused");
        // A token naming a kid nobody has, signed with the current key: refused.
        let claims = Claims {
            sub: Uuid::now_v7(),
            role: Role::Admin,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: Utc::now().timestamp(),
            exp: Utc::now().timestamp() + 60,
            jti: Uuid::now_v7(),
            sid: None,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("0000000000000000".into());
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(NEW)).unwrap();
        assert!(rotated.verify(&forged).is_err());
        assert!(JwtKeys::with_previous(NEW, &[b"short"], ttl).is_err());
    }
}
