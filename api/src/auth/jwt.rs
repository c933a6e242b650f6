//! Short-lived access tokens: HS256 JWTs with a pinned algorithm.
//!
//! Validation accepts only HS256 (no `none`, no algorithm confusion), requires `exp`,
//! `iss`, `aud` and `sub`, and allows no leeway beyond a few seconds of clock skew. The
//! role travels in the token, so checking a request costs no database round trip; the
//! short lifetime bounds how long a changed role or a deactivated user lingers.

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use entity::enums::Role;
use jsonwebtoken::errors::ErrorKind;
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
}

/// Signs and checks access tokens. `Debug` never shows the key.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Builds the keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("CXGRAPH_JWT_SECRET must be at least {MIN_SECRET_LEN} bytes"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        })
    }

    /// Issues an access token for a user; returns it with its expiry.
    pub fn issue(&self, user_id: Uuid, role: Role) -> AppResult<(String, chrono::DateTime<Utc>)> {
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
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, expires_at))
    }

    /// Checks an access token and returns who it names.
    pub fn verify(&self, token: &str) -> Result<UserPrincipal, AuthFailure> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(UserPrincipal { id: data.claims.sub, role: data.claims.role }),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthFailure::Expired,
                _ => AuthFailure::Invalid,
            }),
        }
    }
}
