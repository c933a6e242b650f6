//! Webhook endpoints and their delivery log over GraphQL (admins).

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint};

use super::enums::Channel;
use super::types::{UserError, actor, context, id, parse_id, split_user_errors};
use crate::events::webhooks::{self, NewEndpoint};
use crate::pagination::PageRequest;

/// Where a delivery stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::DeliveryStatus")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Given up after retrying for the configured time.
    Failed,
}

/// A registered webhook endpoint (its secret is shown only at creation).
pub struct WebhookEndpoint(webhook_endpoint::Model);

#[Object]
impl WebhookEndpoint {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Where events are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// Event types sent (empty: all).
    async fn event_types(&self) -> Vec<String> {
        serde_json::from_value(self.0.event_types.clone()).unwrap_or_default()
    }
    /// False once disabled after sustained failure.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Failed attempts in a row.
    async fn consecutive_failures(&self) -> i32 {
        self.0.consecutive_failures
    }
    /// When it was disabled.
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }
}

/// One event sent (or to send) to one endpoint.
pub struct WebhookDelivery(webhook_delivery::Model);

#[Object]
impl WebhookDelivery {
    /// Stable id (give it to `redeliverWebhook`).
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The endpoint.
    async fn endpoint_id(&self) -> ID {
        id(self.0.endpoint_id)
    }
    /// The event (`cxgraph-event-id`).
    async fn event_id(&self) -> ID {
        id(self.0.event_id)
    }
    /// Its type.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// Where it stands.
    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }
    /// Attempts so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// HTTP status of the last attempt.
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }
    /// What went wrong last (`timeout`, `HTTP 500`, …).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// Milliseconds the last attempt took.
    async fn last_latency_ms(&self) -> Option<i32> {
        self.0.last_latency_ms
    }
    /// When the next attempt is due (pending deliveries).
    async fn next_attempt_at(&self) -> DateTime<Utc> {
        self.0.next_attempt_at
    }
    /// When it succeeded.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
}

/// An endpoint to register.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// An http(s) URL.
    url: String,
    /// Event types to send (empty: all), e.g. `["interaction.received"]`.
    #[graphql(default)]
    event_types: Vec<String>,
    /// Only events on these channels (events without a channel are always sent).
    channels: Option<Vec<Channel>>,
}

/// Result of `createWebhookEndpoint`.
#[derive(SimpleObject)]
pub struct CreateWebhookEndpointPayload {
    /// The endpoint.
    endpoint: Option<WebhookEndpoint>,
    /// The signing secret. Shown once: store it to verify `cxgraph-signature`.
    secret: Option<String>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Registered endpoints.
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let (state, _) = context(ctx)?;
        Ok(webhooks::endpoints(state.db()).await?.into_iter().map(WebhookEndpoint).collect())
    }

    /// The delivery log, newest first.
    #[graphql(complexity = "super::cost::page(first, None, child_complexity)")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Option<ID>,
        status: Option<DeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, WebhookDelivery, EmptyFields, EmptyFields>> {
        let (state, _) = context(ctx)?;
        let endpoint_id = endpoint_id.map(|e| parse_id(&e, &["endpointId"])).transpose()?;
        let page = PageRequest { first: first.map(|n| u64::try_from(n).unwrap_or(0)), after, last: None, before: None };
        let result = webhooks::deliveries(state.db(), endpoint_id, status.map(Into::into), &page).await?;
        let mut connection = Connection::new(result.has_previous_page, result.has_next_page);
        connection.edges.extend(result.rows.into_iter().map(|(c, d)| Edge::new(c.encode(), WebhookDelivery(d))));
        Ok(connection)
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint and returns its signing secret, once.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<CreateWebhookEndpointPayload> {
        let (state, _) = context(ctx)?;
        let new = NewEndpoint {
            url: input.url,
            event_types: input.event_types,
            channels: input.channels.map(|c| c.into_iter().map(Into::into).collect()),
        };
        let (created, user_errors) = split_user_errors(webhooks::create_endpoint(state.db(), actor(ctx)?, new).await)?;
        Ok(match created {
            Some((e, secret)) => {
                CreateWebhookEndpointPayload { endpoint: Some(WebhookEndpoint(e)), secret: Some(secret), user_errors }
            }
            None => CreateWebhookEndpointPayload { endpoint: None, secret: None, user_errors },
        })
    }

    /// Sends a delivery again, now.
    async fn redeliver_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let (state, _) = context(ctx)?;
        let delivery_id = parse_id(&id, &["id"])?;
        Ok(WebhookDelivery(webhooks::redeliver(state.db(), actor(ctx)?, delivery_id).await?))
    }
}
