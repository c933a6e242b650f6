//! Alerts over GraphQL: list, acknowledge.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::alert;

use super::enums::Channel;
use super::facts::{Feedback, Interaction};
use super::insights::count;
use super::types::{UserError, actor, context, id, parse_id, split_user_errors, within_channel_limit};
use crate::alerts;
use crate::alerts::explain;
use crate::alerts::mentions::Scope;
use crate::auth::policy::{READ_CUSTOMERS, READ_INTERACTIONS};
use crate::error::AppError;
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
    /// Kind: `sla_at_risk`, `sla_breached`, `negative_spike`, or `opportunity` (a
    /// competitor's brand spiking: their unhappy customers, not our crisis).
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
    /// What a spike is about: `channel:<channel>`, `topic:<id>`, `brand:<id>` or
    /// `inbox:<name>`.
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
    /// A spike's mentions by topic over its whole span (the scope's own topic or
    /// brand left out), most mentioned first; empty for other alerts.
    #[graphql(complexity = "super::cost::list(first, child_complexity)")]
    async fn top_topics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (1 to 20).", default = 5)] first: i32,
    ) -> Result<Vec<AlertTopic>> {
        let (state, principal) = context(ctx)?;
        let Some(episode) = episode(&self.0, principal) else { return Ok(Vec::new()) };
        let top = explain::top_topics(state.read_db(), &episode, shown(first)?).await?;
        Ok(top
            .into_iter()
            .map(|t| AlertTopic { topic_id: id(t.topic_id), name: t.name, mentions: count(t.mentions) })
            .collect())
    }
    /// The latest negative messages behind a spike (as for any interaction: bodies
    /// masked for callers who may not read personal data); empty for other alerts.
    #[graphql(guard = "READ_INTERACTIONS", complexity = "super::cost::list(first, child_complexity)")]
    async fn sample_messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (1 to 20).", default = 5)] first: i32,
    ) -> Result<Vec<Interaction>> {
        let (state, principal) = context(ctx)?;
        let Some(episode) = episode(&self.0, principal) else { return Ok(Vec::new()) };
        let rows = explain::sample_messages(state.read_db(), &episode, shown(first)?).await?;
        Ok(rows.into_iter().map(Interaction).collect())
    }
    /// The latest negative feedback behind a spike (comments masked as anywhere else);
    /// empty for other alerts.
    #[graphql(guard = "READ_CUSTOMERS", complexity = "super::cost::list(first, child_complexity)")]
    async fn sample_feedback(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (1 to 20).", default = 5)] first: i32,
    ) -> Result<Vec<Feedback>> {
        let (state, principal) = context(ctx)?;
        let Some(episode) = episode(&self.0, principal) else { return Ok(Vec::new()) };
        let rows = explain::sample_feedback(state.read_db(), &episode, shown(first)?).await?;
        Ok(rows.into_iter().map(Feedback).collect())
    }
    /// An `insights` query that recounts the first spiking window: its one cell's
    /// `sentiment.negativePercent` × `sampleSize` / 100 is the alert's `count`. It
    /// counts every mention in the scope, those about a competitor alone included
    /// (the detector leaves them to the competitor's brand). Null for inbox scopes
    /// (insights are not filtered by inbox) and for other alerts.
    async fn insights_query(&self) -> Option<InsightsQuery> {
        let scope = self.0.scope.as_deref().and_then(Scope::parse)?;
        let filter = match scope {
            Scope::Channel(c) => {
                let name = async_graphql::InputType::to_value(&Channel::from(c)).into_json().ok()?;
                serde_json::json!({ "channels": [name] })
            }
            Scope::Topic(t) | Scope::Brand(t) => serde_json::json!({ "topicIds": [t.to_string()] }),
            Scope::Inbox(_) => return None,
        };
        let range =
            serde_json::json!({ "from": self.0.details.get("windowStart")?, "to": self.0.details.get("windowEnd")? });
        Some(InsightsQuery {
            query: RECOUNT.to_owned(),
            variables: Json(serde_json::json!({ "range": range, "filter": filter })),
        })
    }
}

/// The query [`Alert::insights_query`] links to.
const RECOUNT: &str = "query Recount($range: InsightRange!, $filter: InsightFilter!) { \
    insights(range: $range, filter: $filter, minSampleSize: 1) { cells { sentiment { negativePercent { value sampleSize } } } } }";

/// A topic a spike's mentions are about.
#[derive(SimpleObject)]
pub struct AlertTopic {
    /// The topic.
    topic_id: ID,
    /// Its name.
    name: String,
    /// The spike's negative mentions that name it.
    mentions: i32,
}

/// A GraphQL query and its variables, to run as they are.
#[derive(SimpleObject)]
pub struct InsightsQuery {
    /// The document.
    query: String,
    /// Its variables.
    variables: Json<serde_json::Value>,
}

/// A spike alert's mentions as the caller may see them: its scope over the episode's
/// span, within a channel-limited token's channels.
fn episode(alert: &alert::Model, principal: &crate::auth::Principal) -> Option<explain::Episode> {
    Some(explain::Episode {
        scope: Scope::parse(alert.scope.as_deref()?)?,
        from: alert.window_start?,
        to: alert.window_end?,
        channels: within_channel_limit(principal, None),
    })
}

/// A `first` argument within 1 to [`explain::MAX_SHOWN`].
fn shown(first: i32) -> Result<u64, AppError> {
    u64::try_from(first)
        .ok()
        .filter(|n| (1..=explain::MAX_SHOWN).contains(n))
        .ok_or_else(|| AppError::invalid(&["first"], "OUT_OF_RANGE", format!("must be 1 to {}", explain::MAX_SHOWN)))
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
