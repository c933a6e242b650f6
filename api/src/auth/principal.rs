//! The caller of a request: a staff user with a role, an API token with scopes, or
//! nobody (with the reason a presented credential was refused).

use std::collections::BTreeSet;

use entity::enums::{Channel, Role};
use uuid::Uuid;

/// A scope an API token can be granted (see the design's role/scope matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    CustomersRead,
    CustomersWrite,
    PiiRead,
    InteractionsRead,
    InteractionsWrite,
    TouchpointsWrite,
    FeedbackWrite,
    InsightsRead,
    Export,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::CustomersRead,
        Scope::CustomersWrite,
        Scope::PiiRead,
        Scope::InteractionsRead,
        Scope::InteractionsWrite,
        Scope::TouchpointsWrite,
        Scope::FeedbackWrite,
        Scope::InsightsRead,
        Scope::Export,
    ];

    /// The wire name, e.g. `customers:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CustomersRead => "customers:read",
            Scope::CustomersWrite => "customers:write",
            Scope::PiiRead => "pii:read",
            Scope::InteractionsRead => "interactions:read",
            Scope::InteractionsWrite => "interactions:write",
            Scope::TouchpointsWrite => "touchpoints:write",
            Scope::FeedbackWrite => "feedback:write",
            Scope::InsightsRead => "insights:read",
            Scope::Export => "export",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// A logged-in staff user, as stated by a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPrincipal {
    pub id: Uuid,
    pub role: Role,
}

/// A partner or connector acting through an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub id: Uuid,
    pub scopes: BTreeSet<Scope>,
    /// `None`: every channel; otherwise only these.
    pub channels: Option<BTreeSet<Channel>>,
}

/// Why a presented credential was refused; told to the client, which can act on it
/// (refresh an expired token, log in again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Expired,
    Invalid,
    Malformed,
    /// Signed and unexpired, but its session was ended or its user deactivated.
    Revoked,
    /// Its state could not be read (the database failed): neither accepted nor
    /// refused, the request fails as an internal error.
    Unchecked,
}

impl AuthFailure {
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Expired => "access token expired",
            AuthFailure::Invalid => "access token invalid",
            AuthFailure::Malformed => "authorization header malformed: expected `Bearer <token>`",
            AuthFailure::Revoked => "access token revoked: the session ended or the user was deactivated; log in again",
            AuthFailure::Unchecked => "credentials could not be checked; try again",
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credential, or one that was refused (and why).
    Anonymous(Option<AuthFailure>),
    User(UserPrincipal),
    Token(TokenPrincipal),
}

impl Principal {
    /// What kind of caller this is, for logs and spans (never who).
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Anonymous(_) => "anonymous",
            Principal::User(_) => "user",
            Principal::Token(_) => "token",
        }
    }

    pub fn user(&self) -> Option<&UserPrincipal> {
        match self {
            Principal::User(u) => Some(u),
            _ => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        self.user().map(|u| u.role)
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        matches!(self, Principal::Token(t) if t.scopes.contains(&scope))
    }

    /// The channels a token is limited to; `None` for users and unrestricted tokens.
    pub fn channel_limit(&self) -> Option<&BTreeSet<Channel>> {
        match self {
            Principal::Token(t) => t.channels.as_ref(),
            _ => None,
        }
    }

    /// Whether the caller may touch data of `channel`.
    pub fn may_use_channel(&self, channel: Channel) -> bool {
        self.channel_limit().is_none_or(|c| c.contains(&channel))
    }
}

#[cfg(test)]
impl Principal {
    /// A user of `role`, for the decision tables' tests.
    pub fn test_user(role: Role) -> Principal {
        Principal::User(UserPrincipal { id: Uuid::nil(), role })
    }

    /// A token with `scopes` and no channel limit, for the decision tables' tests.
    pub fn test_token(scopes: &[Scope]) -> Principal {
        Principal::Token(TokenPrincipal { id: Uuid::nil(), scopes: scopes.iter().copied().collect(), channels: None })
    }
}
