//! Managing staff users' access: an admin changes a user's role or deactivates them.
//! The service (`users::change_access`) does the work; the user's access tokens
//! follow within seconds (see `auth::revocation`).

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};

use super::session::User;
use super::types::{Role, UserError, actor, context, split_user_errors};
use crate::users::{self, AccessChange};

/// A change of a user's access; a field left out stays as it is.
#[derive(InputObject)]
pub struct ChangeUserAccessInput {
    /// The user's log-in e-mail.
    email: String,
    /// The new role.
    role: Option<Role>,
    /// `false` ends every session of the user at once and refuses new log-ins.
    active: Option<bool>,
}

/// Result of `changeUserAccess`.
#[derive(SimpleObject)]
pub struct ChangeUserAccessPayload {
    /// The user as changed.
    user: Option<User>,
    /// Problems the caller can fix (`NOT_FOUND`, `LAST_ADMIN`).
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct StaffMutation;

#[Object]
impl StaffMutation {
    /// Changes a user's role or deactivates (or reactivates) them. Their access tokens
    /// stop carrying the old access within seconds on every replica (a deactivated
    /// user's are refused as revoked, and their refresh tokens are revoked); audited.
    /// The last active admin cannot be deactivated or demoted (`LAST_ADMIN`).
    async fn change_user_access(
        &self,
        ctx: &Context<'_>,
        input: ChangeUserAccessInput,
    ) -> Result<ChangeUserAccessPayload> {
        let (state, _) = context(ctx)?;
        let change = AccessChange { email: input.email, role: input.role.map(Into::into), active: input.active };
        let result = users::change_access(state.db(), state.sessions(), actor(ctx)?, change).await;
        let (user, user_errors) = split_user_errors(result)?;
        Ok(ChangeUserAccessPayload { user: user.map(User), user_errors })
    }
}
