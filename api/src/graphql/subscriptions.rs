//! Subscriptions: committed events from this process's bus (fed by the outbox), as
//! GraphQL objects. Each subscription checks the caller against the policy table when
//! it starts (deny by default), and each item is loaded fresh, so fields keep their
//! own rules (bodies masked without the right to personal data).

use async_graphql::{Context, ID, InputObject, Result, Subscription};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::alerts::Alert;
use super::enums::{Channel, ConversationStatus};
use super::facts::{Conversation, Interaction};
use super::loaders::Batch;
use super::types::{context, parse_id, within_channel_limit};
use crate::auth::policy::root_policy;
use crate::error::AppError;
use crate::events::Event;
use crate::interactions::queue;
use crate::state::AppState;

/// Checks the policy of a subscription field.
fn authorize(ctx: &Context<'_>, field: &str) -> Result<AppState, AppError> {
    let (state, principal) = context(ctx)?;
    match root_policy("Subscription", field) {
        Some(policy) => policy.check(principal)?,
        None => return Err(AppError::forbidden("this field has no access policy")),
    }
    Ok(state.clone())
}

/// Events of some types from the bus, as a stream. A subscriber that falls more than
/// the bus's buffer behind skips what it missed (and it is logged).
fn events_of(state: &AppState, event_types: &'static [&'static str]) -> impl Stream<Item = Event> + use<> {
    // The guard lives as long as the stream: the open-subscriptions gauge. The stream
    // ends when the bus closes (shutdown), so clients get `complete`, not a cut socket.
    let state0 = (state.bus().subscribe(), crate::metrics::get().subscription_opened(), Box::pin(state.bus().closed()));
    futures::stream::unfold(state0, |(mut rx, guard, mut closed)| async move {
        loop {
            tokio::select! {
                () = &mut closed => return None,
                received = rx.recv() => match received {
                    Ok(e) => return Some((e, (rx, guard, closed))),
                    Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "slow subscriber skipped events"),
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    })
    .filter(move |e| futures::future::ready(event_types.contains(&e.event_type.as_str())))
}

fn channel_of(e: &Event) -> Option<entity::enums::Channel> {
    e.channel
        .as_deref()
        .and_then(|c| <entity::enums::Channel as sea_orm::ActiveEnum>::try_from_value(&c.to_owned()).ok())
}

/// Which conversation updates to receive.
#[derive(InputObject, Default)]
pub struct ConversationUpdatedFilter {
    /// Routed to this team.
    team_id: Option<ID>,
    /// Assigned to this agent.
    assignee_id: Option<ID>,
    /// In one of these statuses after the change.
    status: Option<Vec<ConversationStatus>>,
    /// On one of these channels.
    channels: Option<Vec<Channel>>,
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Interactions as they are recorded (inbound and outbound), optionally on some
    /// channels only.
    async fn interaction_received(
        &self,
        ctx: &Context<'_>,
        channels: Option<Vec<Channel>>,
    ) -> Result<impl Stream<Item = Interaction> + use<>> {
        let state = authorize(ctx, "interactionReceived")?;
        let (_, principal) = context(ctx)?;
        let channels = within_channel_limit(principal, channels.map(|c| c.into_iter().map(Into::into).collect()));
        let db = state.db().clone();
        Ok(events_of(&state, &["interaction.received"])
            .filter(move |e| {
                let wanted = channels.as_ref().is_none_or(|c| channel_of(e).is_some_and(|ch| c.contains(&ch)));
                futures::future::ready(wanted)
            })
            .filter_map(move |e| {
                let db = db.clone();
                async move { queue::find_interaction(&db, e.aggregate_id).await.ok().flatten().map(Interaction) }
            }))
    }

    /// Conversations as they change (opened, threaded into, replied to, assigned,
    /// re-prioritised, moved in the workflow, tagged).
    async fn conversation_updated(
        &self,
        ctx: &Context<'_>,
        filter: Option<ConversationUpdatedFilter>,
    ) -> Result<impl Stream<Item = Conversation> + use<>> {
        let state = authorize(ctx, "conversationUpdated")?;
        let f = filter.unwrap_or_default();
        let team = f.team_id.map(|t| parse_id(&t, &["filter", "teamId"])).transpose()?;
        let assignee = f.assignee_id.map(|a| parse_id(&a, &["filter", "assigneeId"])).transpose()?;
        let statuses: Option<Vec<entity::enums::ConversationStatus>> =
            f.status.map(|s| s.into_iter().map(Into::into).collect());
        let (_, principal) = context(ctx)?;
        let channels = within_channel_limit(principal, f.channels.map(|c| c.into_iter().map(Into::into).collect()));
        let db = state.db().clone();
        Ok(events_of(&state, &["conversation.updated"]).filter_map(move |e| {
            let db = db.clone();
            let (statuses, channels) = (statuses.clone(), channels.clone());
            async move {
                let c = queue::find_conversation(&db, e.aggregate_id).await.ok().flatten()?;
                let keep = team.is_none_or(|t| c.team_id == Some(t))
                    && assignee.is_none_or(|a| c.assignee_id == Some(a))
                    && statuses.as_ref().is_none_or(|s| s.contains(&c.status))
                    && channels.as_ref().is_none_or(|ch| ch.contains(&c.channel));
                keep.then(|| {
                    let batch = Batch::of([c.customer_id]);
                    Conversation::in_batch(c, batch)
                })
            }
        }))
    }

    /// SLA alerts ("at risk", "breached") as they are raised.
    async fn sla_alert(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Alert> + use<>> {
        let state = authorize(ctx, "slaAlert")?;
        let limit = context(ctx)?.1.channel_limit().cloned();
        let db = state.db().clone();
        Ok(events_of(&state, &["sla.alert"]).filter_map(move |e| {
            let (db, limit) = (db.clone(), limit.clone());
            async move {
                let a = crate::alerts::find(&db, e.aggregate_id).await.ok().flatten()?;
                crate::alerts::visible_within(&a, limit.as_ref()).then_some(Alert(a))
            }
        }))
    }

    /// Every alert as it is raised: SLA at risk or breached, negative-sentiment
    /// spikes; optionally some kinds only (`negative_spike`, `sla_breached`, …).
    async fn alert_raised(
        &self,
        ctx: &Context<'_>,
        kinds: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = Alert> + use<>> {
        let state = authorize(ctx, "alertRaised")?;
        let limit = context(ctx)?.1.channel_limit().cloned();
        let db = state.db().clone();
        Ok(events_of(&state, &["sla.alert", "alert.raised"]).filter_map(move |e| {
            let (db, limit) = (db.clone(), limit.clone());
            let kinds = kinds.clone();
            async move {
                let a = crate::alerts::find(&db, e.aggregate_id).await.ok().flatten()?;
                let wanted = kinds.as_ref().is_none_or(|k| k.contains(&a.kind));
                (wanted && crate::alerts::visible_within(&a, limit.as_ref())).then_some(Alert(a))
            }
        }))
    }
}
