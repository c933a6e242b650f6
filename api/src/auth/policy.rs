//! The role/scope matrix: the single source of truth for who may call what.
//!
//! Every root field of the schema (query, mutation, subscription) has one entry in
//! [`ROOT_FIELDS`]. The GraphQL layer looks the entry up before a root field runs and
//! refuses a field that has none: **deny by default**, so a new field without a policy
//! is unreachable, and a test walking the schema fails until the table names it.
//! The same [`Policy`] type is a guard for nested fields.

use entity::enums::Role;

use super::{Principal, Scope};
use crate::error::AppError;

/// Who may use one field: anybody, or users with one of `roles`, or tokens holding
/// one of `scopes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub public: bool,
    pub roles: &'static [Role],
    pub scopes: &'static [Scope],
}

/// Every staff role.
pub const STAFF: &[Role] = &[Role::Admin, Role::Manager, Role::Agent, Role::Analyst];

impl Policy {
    /// No credential needed (log-in, refresh).
    pub const PUBLIC: Policy = Policy {
        public: true,
        roles: &[],
        scopes: &[],
    };

    /// Users with one of these roles; no token.
    pub const fn roles(roles: &'static [Role]) -> Policy {
        Policy {
            public: false,
            roles,
            scopes: &[],
        }
    }

    /// Users with one of these roles, or tokens with one of these scopes.
    pub const fn roles_or_scopes(roles: &'static [Role], scopes: &'static [Scope]) -> Policy {
        Policy {
            public: false,
            roles,
            scopes,
        }
    }

    /// Decides for one principal: `UNAUTHENTICATED` when there is no (valid) credential,
    /// `FORBIDDEN` when the credential lacks the role or scope.
    pub fn check(&self, principal: &Principal) -> Result<(), AppError> {
        if self.public {
            return Ok(());
        }
        let allowed = match principal {
            Principal::Anonymous(failure) => {
                let msg = failure.map_or("authentication required", |f| f.message());
                return Err(AppError::unauthenticated(msg));
            }
            Principal::User(user) => self.roles.contains(&user.role),
            Principal::Token(_) => self.scopes.iter().any(|s| principal.has_scope(*s)),
        };
        if allowed {
            Ok(())
        } else {
            Err(AppError::forbidden("not allowed for this role or token"))
        }
    }
}

/// The policy of every root field, as `(parent type, field, policy)`.
pub const ROOT_FIELDS: &[(&str, &str, Policy)] = &[
    ("Query", "me", Policy::roles(STAFF)),
    ("Mutation", "login", Policy::PUBLIC),
    ("Mutation", "refreshToken", Policy::PUBLIC),
    ("Mutation", "logout", Policy::roles(STAFF)),
];

/// The policy of a root field, if it has one.
pub fn root_policy(parent_type: &str, field: &str) -> Option<Policy> {
    ROOT_FIELDS
        .iter()
        .find(|(parent, name, _)| *parent == parent_type && *name == field)
        .map(|(_, _, policy)| *policy)
}

impl async_graphql::Guard for Policy {
    async fn check(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<()> {
        let anonymous = Principal::Anonymous(None);
        let principal = ctx.data_opt::<Principal>().unwrap_or(&anonymous);
        Policy::check(self, principal).map_err(Into::into)
    }
}
