//! Alerts over GraphQL: list, acknowledge.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::alert;

use super::enums::Channel;
use super::types::{UserError, actor, context, id, parse_id, split_user_errors};
use crate::alerts;
use crate::pagination::PageRequest;

/// How urgent an alert is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::AlertSeverity")]
pub enum AlertSeverity {
    /// For information.
    Info,
    /// Needs attention soon (e.g. an SLA at risk).
    Warning,
    /// Needs attention now (e.g. an SLA breached).
    Critical,
}

/// Where an alert is in its life.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::enums::AlertStatus")]
pub enum AlertStatus {
    /// Raised, nobody has looked yet.
    Open,
    /// A person has seen it.
    Acknowledged,
    /// Over.
    Resolved,
}

/// An early warning, raised once.
pub struct Alert(pub alert::Model);

#[Object]
impl Alert {
    /// Stable id.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Kind: `sla_at_risk`, `sla_breached` or `negative_spike`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// How urgent.
    async fn severity(&self) -> AlertSeverity {
        self.0.severity.into()
    }
    /// Open, acknowledged or resolved.
    async fn status(&self) -> AlertStatus {
        self.0.status.into()
    }
    /// One line for a person.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Channel concerned.
    async fn channel(&self) -> Option<Channel> {
        self.0.channel.map(Into::into)
    }
    /// Topic concerned (a spike of negative mentions of it).
    async fn topic_id(&self) -> Option<ID> {
        self.0.topic_id.map(id)
    }
    /// Conversation concerned.
    async fn conversation_id(&self) -> Option<ID> {
        self.0.conversation_id.map(id)
    }
    /// Details: for SLA alerts the clock and due time; for spikes the evidence:
    /// `count` (the first spiking window's), `peak`, `expected` with the usual range
    /// `usualLow`–`usualHigh` (90 %), `alarmAt` (the count that spikes), `pValue`,
    /// `dispersion`, `model` (`daily` or `weekday`), `historyDays`, `lagSeconds` and
    /// the settings it was judged with.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.0.details.clone())
    }
    /// When it was raised.
    async fn raised_at(&self) -> DateTime<Utc> {
        self.0.raised_at
    }
    /// When a person acknowledged it.
    async fn acknowledged_at(&self) -> Option<DateTime<Utc>> {
        self.0.acknowledged_at
    }
    /// When it was resolved (by a person, or a spike's episode ending).
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// What a spike is about: `channel:<channel>`, `topic:<id>` or `inbox:<name>`.
    async fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }
    /// A spike episode's start in event time: when its first spiking window began
    /// (the mentions' own times, however late they arrived).
    async fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.0.window_start
    }
    /// The end of the episode's last spiking window (at most when it was seen).
    async fn window_end(&self) -> Option<DateTime<Utc>> {
        self.0.window_end
    }
    /// Seconds from the end of the window that revealed the spike to `raisedAt`: how
    /// late the warning came (late or backfilled mentions make it large).
    async fn lag_seconds(&self) -> Option<i64> {
        self.0.details.get("lagSeconds").and_then(serde_json::Value::as_i64)
    }
    /// Found long after it happened (history loaded later): recorded without paging
    /// anyone (no `alertRaised`, no webhook, no priority lift) unless
    /// `CXGRAPH_SPIKE_PAGE_BACKFILL` is set.
    async fn backfill(&self) -> bool {
        self.0.backfill
    }
}

/// An alert to acknowledge or resolve.
#[derive(InputObject)]
pub struct AcknowledgeAlertInput {
    /// The alert.
    alert_id: ID,
}

/// Result of `acknowledgeAlert` and `resolveAlert`.
#[derive(SimpleObject)]
pub struct AlertPayload {
    /// The alert after the change.
    alert: Option<Alert>,
    /// Problems the user can fix.
    user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct AlertQuery;

#[Object]
impl AlertQuery {
    /// Alerts, newest first.
    #[graphql(complexity = "super::cost::page(first, None, child_complexity)")]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        status: Option<AlertStatus>,
        #[graphql(desc = "e.g. `sla_breached`")] kind: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Alert, EmptyFields, EmptyFields>> {
        let (state, principal) = context(ctx)?;
        let first = first.map(|n| u64::try_from(n).unwrap_or(0));
        let page = PageRequest { first, after, last: None, before: None };
        let channels: Option<Vec<_>> = principal.channel_limit().map(|c| c.iter().copied().collect());
        let result = alerts::list(state.db(), status.map(Into::into), kind, channels.as_deref(), &page).await?;
        let mut connection = Connection::new(result.has_previous_page, result.has_next_page);
        connection.edges.extend(result.rows.into_iter().map(|(c, a)| Edge::new(c.encode(), Alert(a))));
        Ok(connection)
    }
}

#[derive(Default)]
pub struct AlertMutation;

#[Object]
impl AlertMutation {
    /// Marks an open alert as seen by the calling user.
    async fn acknowledge_alert(&self, ctx: &Context<'_>, input: AcknowledgeAlertInput) -> Result<AlertPayload> {
        let (state, _) = context(ctx)?;
        let alert_id = parse_id(&input.alert_id, &["input", "alertId"])?;
        let (alert, user_errors) = split_user_errors(alerts::acknowledge(state.db(), actor(ctx)?, alert_id).await)?;
        Ok(AlertPayload { alert: alert.map(Alert), user_errors })
    }

    /// Closes an open or acknowledged alert.
    async fn resolve_alert(&self, ctx: &Context<'_>, input: AcknowledgeAlertInput) -> Result<AlertPayload> {
        let (state, _) = context(ctx)?;
        let alert_id = parse_id(&input.alert_id, &["input", "alertId"])?;
        let (alert, user_errors) = split_user_errors(alerts::resolve(state.db(), actor(ctx)?, alert_id).await)?;
        Ok(AlertPayload { alert: alert.map(Alert), user_errors })
    }
}
