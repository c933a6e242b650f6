//! Who is calling, and what they may do.
//!
//! The HTTP layer turns the `Authorization` header into a [`Principal`] once per
//! request; every resolver and service receives it. Roles (staff users) and scopes
//! (API tokens) are the two vocabularies of the design's matrix; [`policy`] holds the
//! matrix itself.

mod bounded;
pub mod cost_budget;
pub mod jwt;
pub mod masking;
pub mod password;
pub mod pii;
pub mod policy;
pub mod principal;
pub mod rate_limit;
pub mod revocation;
pub mod secret;
pub mod sessions;
pub mod throttle;
pub mod tokens;

pub use principal::{AuthFailure, Principal, Scope, TokenPrincipal, UserPrincipal};
