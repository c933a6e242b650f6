//! API tokens over GraphQL (admins).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::api_token;

use super::enums::Channel;
use super::types::{UserError, actor, context, id, parse_id, split_user_errors};
use crate::auth::Scope;
use crate::auth::tokens::{self, NewToken};

/// What a token may do (see the role/scope matrix in the README).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::auth::Scope")]
pub enum TokenScope {
    /// `customers:read`: read customers (personal data masked without `pii:read`).
    CustomersRead,
    /// `customers:write`: create and update customers, link identities, resolve.
    CustomersWrite,
    /// `pii:read`: see personal data unmasked.
    PiiRead,
    /// `interactions:read`: read conversations and interactions.
    InteractionsRead,
    /// `interactions:write`: record and ingest interactions.
    InteractionsWrite,
    /// `touchpoints:write`: record touchpoints.
    TouchpointsWrite,
    /// `feedback:write`: submit feedback.
    FeedbackWrite,
    /// `insights:read`: read insights and alerts.
    InsightsRead,
    /// `export`: bulk export.
    Export,
}

/// A partner or connector token (the secret is never shown again after creation).
pub struct ApiToken(api_token::Model);

#[Object]
impl ApiToken {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public part of the token (`cxt_<prefix>_…`), to recognise it.
    async fn prefix(&self) -> String {
        format!("{}_{}", tokens::TOKEN_PREFIX, self.0.prefix)
    }
    /// What it may do.
    async fn scopes(&self) -> Vec<TokenScope> {
        serde_json::from_value::<Vec<String>>(self.0.scopes.clone())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| Scope::parse(s))
            .map(Into::into)
            .collect()
    }
    /// The channels it is limited to (null: every channel).
    async fn channels(&self) -> Option<Vec<Channel>> {
        let channels: Vec<entity::enums::Channel> = serde_json::from_value(self.0.channels.clone()?).ok()?;
        Some(channels.into_iter().map(Into::into).collect())
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it stops working.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When it was revoked.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// Last request made with it (to the minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}

/// A token to create.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// Who or what it is for, e.g. "Social care agency".
    name: String,
    /// What it may do.
    scopes: Vec<TokenScope>,
    /// When it stops working (none: until revoked).
    expires_at: Option<DateTime<Utc>>,
    /// Limit it to these channels (none: every channel).
    channels: Option<Vec<Channel>>,
}

/// Result of `createApiToken`.
#[derive(SimpleObject)]
pub struct CreateApiTokenPayload {
    /// The token.
    token: Option<ApiToken>,
    /// The secret to send as `Authorization: Bearer …`. Shown once: store it now.
    secret: Option<String>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct TokenQuery;

#[Object]
impl TokenQuery {
    /// Every API token, newest first (without secrets).
    async fn api_tokens(&self, ctx: &Context<'_>) -> Result<Vec<ApiToken>> {
        let (state, _) = context(ctx)?;
        Ok(tokens::list(state.db()).await?.into_iter().map(ApiToken).collect())
    }
}

#[derive(Default)]
pub struct TokenMutation;

#[Object]
impl TokenMutation {
    /// Creates a token and returns its secret, once.
    async fn create_api_token(&self, ctx: &Context<'_>, input: CreateApiTokenInput) -> Result<CreateApiTokenPayload> {
        let (state, _) = context(ctx)?;
        let new = NewToken {
            name: input.name,
            scopes: input.scopes.into_iter().map(Into::into).collect(),
            expires_at: input.expires_at,
            channels: input.channels.map(|c| c.into_iter().map(Into::into).collect()),
        };
        let (created, user_errors) = split_user_errors(tokens::create(state.db(), actor(ctx)?, new).await)?;
        Ok(match created {
            Some(c) => CreateApiTokenPayload { token: Some(ApiToken(c.token)), secret: Some(c.secret), user_errors },
            None => CreateApiTokenPayload { token: None, secret: None, user_errors },
        })
    }

    /// Revokes a token; its next request is refused.
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> Result<ApiToken> {
        let (state, _) = context(ctx)?;
        let token_id = parse_id(&id, &["id"])?;
        Ok(ApiToken(tokens::revoke(state.db(), actor(ctx)?, token_id).await?))
    }
}
