//! Log-in, token refresh, log-out and `me`.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user;

use super::types::{Role, UserError, actor, context, id, split_user_errors};
use crate::auth::password;
use crate::auth::sessions::{self, Session};
use crate::error::AppError;
use crate::users;

/// A staff user.
pub struct User(pub user::Model);

#[Object]
impl User {
    /// Stable id (UUID v7).
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Log-in e-mail, lower-case.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// Name shown to colleagues.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// What the user may do.
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    /// The team the user works in, if any.
    async fn team_id(&self) -> Option<ID> {
        self.0.team_id.map(id)
    }
    /// Whether the user may log in.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The last successful log-in.
    async fn last_login_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_login_at
    }
}

/// Tokens of a session. Send `accessToken` as `Authorization: Bearer …`; exchange
/// `refreshToken` with `refreshToken(input:)` before the access token expires. Each
/// refresh token works once.
#[derive(SimpleObject)]
pub struct SessionTokens {
    /// Short-lived JWT for the `Authorization` header.
    access_token: String,
    /// When the access token stops working.
    access_token_expires_at: DateTime<Utc>,
    /// Single-use token that buys the next access token.
    refresh_token: String,
    /// When the refresh token stops working if unused.
    refresh_token_expires_at: DateTime<Utc>,
    /// The logged-in user.
    user: User,
}

impl From<Session> for SessionTokens {
    fn from(s: Session) -> Self {
        Self {
            access_token: s.access_token,
            access_token_expires_at: s.access_token_expires_at,
            refresh_token: s.refresh_token,
            refresh_token_expires_at: s.refresh_token_expires_at,
            user: User(s.user),
        }
    }
}

/// E-mail and password of a staff user.
#[derive(InputObject)]
pub struct LoginInput {
    /// Log-in e-mail (case does not matter).
    email: String,
    /// Password.
    password: String,
}

/// Result of `login`: the session, or `userErrors` (`INVALID_CREDENTIALS`).
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// The new session; null when the credentials were refused.
    session: Option<SessionTokens>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

/// A refresh token to exchange.
#[derive(InputObject)]
pub struct RefreshTokenInput {
    /// The refresh token from `login` or the previous refresh.
    refresh_token: String,
}

/// Result of `refreshToken`.
#[derive(SimpleObject)]
pub struct RefreshTokenPayload {
    /// The next tokens of the session.
    session: SessionTokens,
}

/// Which sessions to end.
#[derive(InputObject)]
pub struct LogoutInput {
    /// End the session this refresh token belongs to.
    refresh_token: Option<String>,
    /// End every session of the calling user.
    #[graphql(default = false)]
    everywhere: bool,
}

/// Result of `logout`.
#[derive(SimpleObject)]
pub struct LogoutPayload {
    /// How many refresh tokens were revoked.
    revoked: u64,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

/// Longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// Log-in fields too long to be anyone's, refused before anything is counted or hashed.
fn too_long(input: &LoginInput) -> Option<Vec<UserError>> {
    let mut errors = Vec::new();
    if input.email.len() > MAX_EMAIL_LEN {
        errors.push((vec!["input".into(), "email".into()], format!("must be at most {MAX_EMAIL_LEN} bytes")));
    }
    if input.password.len() > password::MAX_PASSWORD_LEN {
        let message = format!("must be at most {} bytes", password::MAX_PASSWORD_LEN);
        errors.push((vec!["input".into(), "password".into()], message));
    }
    let errors: Vec<UserError> =
        errors.into_iter().map(|(field, message)| UserError { field, code: "TOO_LONG".into(), message }).collect();
    (!errors.is_empty()).then_some(errors)
}

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The user making the request.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (state, principal) = context(ctx)?;
        let id = principal.user().map(|u| u.id).ok_or_else(|| AppError::forbidden("only users have a profile"))?;
        let user = users::find(state.db(), id).await?.ok_or(AppError::NotFound("user"))?;
        Ok(User(user))
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Starts a session. Wrong e-mail or password is a `userErrors` entry with code
    /// `INVALID_CREDENTIALS` (it never says which of the two was wrong); an e-mail over
    /// 254 bytes or a password over 1,024 is `TOO_LONG`. After five failures for one
    /// e-mail from one client address, that address's attempts are refused for a
    /// while with `RATE_LIMITED` (`extensions.retryAfterSeconds`), whether or not the
    /// account exists; after twenty from anywhere, addresses that have not logged into
    /// the account lately are let through one every five seconds. One address has
    /// one log-in under way at a time (another meanwhile is `RATE_LIMITED`).
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<LoginPayload> {
        let (state, _) = context(ctx)?;
        if let Some(user_errors) = too_long(&input) {
            return Ok(LoginPayload { session: None, user_errors });
        }
        let client = ctx.data_opt::<crate::http::ClientAddr>().map(|c| c.0);
        let address = client.map_or_else(|| "unknown".to_owned(), crate::auth::rate_limit::address_key);
        // One log-in under way per address, and per /48 for IPv6 (a site's network).
        let network = client.and_then(crate::auth::rate_limit::network_key).unwrap_or_else(|| address.clone());
        let throttle = state.login_throttle();
        let Some(_under_way) = throttle.begin(&network) else {
            return Err(AppError::RateLimited(std::time::Duration::from_secs(1)).into());
        };
        throttle.check(&input.email, &address).map_err(AppError::RateLimited)?;
        let request_id = actor(ctx)?.request_id;
        let session = sessions::login(state.db(), state.sessions(), &input.email, input.password, request_id).await?;
        match &session {
            Some(_) => throttle.success(&input.email, &address),
            None => throttle.failure(&input.email, &address),
        }
        Ok(match session {
            Some(session) => LoginPayload { session: Some(session.into()), user_errors: Vec::new() },
            None => LoginPayload {
                session: None,
                user_errors: vec![UserError {
                    field: vec!["input".into()],
                    code: "INVALID_CREDENTIALS".into(),
                    message: "e-mail or password is wrong".into(),
                }],
            },
        })
    }

    /// Exchanges a refresh token for new tokens. An unknown, expired or revoked token is
    /// `UNAUTHENTICATED`; a token used twice revokes every session of its log-in.
    async fn refresh_token(&self, ctx: &Context<'_>, input: RefreshTokenInput) -> Result<RefreshTokenPayload> {
        let (state, _) = context(ctx)?;
        let request_id = actor(ctx)?.request_id;
        let session = sessions::refresh(state.db(), state.sessions(), &input.refresh_token, request_id).await?;
        Ok(RefreshTokenPayload { session: session.into() })
    }

    /// Ends the caller's session (by its refresh token) or all of them.
    async fn logout(&self, ctx: &Context<'_>, input: LogoutInput) -> Result<LogoutPayload> {
        let (state, principal) = context(ctx)?;
        let request_id = actor(ctx)?.request_id;
        let result = sessions::logout(
            state.db(),
            state.sessions(),
            principal,
            input.refresh_token.as_deref(),
            input.everywhere,
            request_id,
        )
        .await;
        let (revoked, user_errors) = split_user_errors(result)?;
        Ok(LogoutPayload { revoked: revoked.unwrap_or(0), user_errors })
    }
}
