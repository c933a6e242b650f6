//! Signed webhooks: partners register endpoints; every committed event of a type (and
//! channel) they asked for is POSTed to them, signed, retried with exponential backoff
//! and jitter for a bounded time, and logged.
//!
//! Signature: header `cxgraph-signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<body>"` with the endpoint's secret (README has a verification example).
//! Each process's worker turns bus events into delivery rows (one per endpoint and
//! event, whoever inserts first) and claims due deliveries one batch at a time
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so replicas never send the same attempt
//! twice. Sending runs on its own task: a slow or failing endpoint never slows the API.
//! An endpoint that keeps failing is disabled and an alert is raised.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use entity::enums::{AlertSeverity, AlertStatus, Channel, DeliveryStatus};
use entity::{alert, outbox_event, webhook_delivery, webhook_endpoint};
use hmac::{Hmac, Mac};
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::broadcast::error::TryRecvError;
use uuid::Uuid;

use super::bus::{Bus, Event};
use crate::audit::{self, Actor};
use crate::db::{self, statement};
use crate::error::{AppError, AppResult, FieldError};
use crate::pagination::{self, Page, PageRequest, Sort, SortKey};

/// Event types a webhook may ask for.
pub const EVENT_TYPES: &[&str] = &[
    "customer.created",
    "customer.merged",
    "customer.unmerged",
    "customer.erased",
    "interaction.received",
    "conversation.updated",
    "sla.alert",
];

/// How the worker retries.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    /// Delay before the second attempt; doubles each time (±20% jitter), capped at an hour.
    pub retry_base: StdDuration,
    /// A delivery still failing this long after the event is given up.
    pub give_up_after: Duration,
    /// Consecutive failed attempts after which an endpoint is disabled.
    pub disable_after: i32,
    /// Time allowed for one request.
    pub timeout: StdDuration,
}

/// An endpoint to register.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub channels: Option<Vec<Channel>>,
}

/// Registers an endpoint; the signing secret is returned once.
pub async fn create_endpoint(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    new: NewEndpoint,
) -> AppResult<(webhook_endpoint::Model, String)> {
    let mut errors = Vec::new();
    let url = new.url.trim().to_owned();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.len() > 2000 || reqwest::Url::parse(&url).is_err() {
        errors.push(FieldError::new(&["input", "url"], "INVALID", "must be an http(s) URL"));
    }
    if let Some(bad) = new.event_types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        errors.push(FieldError::new(&["input", "eventTypes"], "UNKNOWN", format!("`{bad}` is not an event type")));
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let secret = super::super::auth::secret::generate("whsec").secret;
    let now = Utc::now();
    let txn = db::begin_write(db).await?;
    let endpoint = webhook_endpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        url: Set(url),
        secret: Set(secret.clone()),
        event_types: Set(json!(new.event_types)),
        channels: Set(new.channels.map(|c| json!(c))),
        active: Set(true),
        consecutive_failures: Set(0),
        disabled_at: Set(None),
        created_by: Set(actor.principal.user().map(|u| u.id)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(&txn, actor, "createWebhookEndpoint", "webhook_endpoint", Some(endpoint.id), json!({})).await?;
    txn.commit().await?;
    Ok((endpoint, secret))
}

/// Every endpoint, newest first.
pub async fn endpoints(db: &impl ConnectionTrait) -> AppResult<Vec<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find().order_by_desc(webhook_endpoint::Column::CreatedAt).all(db).await?)
}

/// Deliveries, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    endpoint_id: Option<Uuid>,
    status: Option<DeliveryStatus>,
    page: &PageRequest,
) -> AppResult<Page<webhook_delivery::Model>> {
    let mut q = webhook_delivery::Entity::find();
    if let Some(e) = endpoint_id {
        q = q.filter(webhook_delivery::Column::EndpointId.eq(e));
    }
    if let Some(s) = status {
        q = q.filter(webhook_delivery::Column::Status.eq(s));
    }
    let sort = Sort { column: webhook_delivery::Column::CreatedAt, id: webhook_delivery::Column::Id, ascending: false };
    pagination::fetch(db, q, sort, page, 100, |d| SortKey::Time(Some(d.created_at)), |d| d.id).await
}

/// Sends a delivery again, now (also a succeeded or failed one).
pub async fn redeliver(db: &DatabaseConnection, actor: Actor<'_>, id: Uuid) -> AppResult<webhook_delivery::Model> {
    let txn = db::begin_write(db).await?;
    let found = webhook_delivery::Entity::find_by_id(id).one(&txn).await?.ok_or(AppError::NotFound("delivery"))?;
    let mut d = found.into_active_model();
    d.status = Set(DeliveryStatus::Pending);
    d.next_attempt_at = Set(Utc::now());
    d.locked_until = Set(None);
    let updated = d.update(&txn).await?;
    audit::record(&txn, actor, "redeliverWebhook", "webhook_delivery", Some(id), json!({})).await?;
    txn.commit().await?;
    Ok(updated)
}

/// `t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> AppResult<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .map_err(|e| AppError::internal(anyhow::anyhow!("HMAC key: {e}")))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    Ok(format!("t={timestamp},v1={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn wants(endpoint: &webhook_endpoint::Model, event: &outbox_event::Model) -> bool {
    let types: Vec<String> = serde_json::from_value(endpoint.event_types.clone()).unwrap_or_default();
    let channels: Option<Vec<String>> = endpoint.channels.clone().and_then(|c| serde_json::from_value(c).ok());
    // An endpoint hears about what happens after it was registered.
    endpoint.created_at <= event.created_at
        && (types.is_empty() || types.contains(&event.event_type))
        && channels.is_none_or(|c| event.channel.as_ref().is_none_or(|ch| c.contains(ch)))
}

/// Most events the worker takes from the bus at once.
const FAN_OUT_BATCH: usize = 500;

/// Creates the deliveries of a run of events (once, whichever replica gets there
/// first): one read of the active endpoints and one insert for the whole run, so a
/// batch of 100 ingested events costs two statements, not two hundred.
async fn fan_out(db: &DatabaseConnection, events: &[Event]) -> AppResult<()> {
    let events: Vec<&outbox_event::Model> = events.iter().map(|e| e.as_ref()).collect();
    fan_out_to(db, &active_endpoints(db).await?, &events).await
}

async fn active_endpoints(db: &DatabaseConnection) -> AppResult<Vec<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::Active.eq(true)).all(db).await?)
}

async fn fan_out_to(
    db: &DatabaseConnection,
    active: &[webhook_endpoint::Model],
    events: &[&outbox_event::Model],
) -> AppResult<()> {
    let now = Utc::now();
    let rows: Vec<webhook_delivery::ActiveModel> = events
        .iter()
        .flat_map(|event| active.iter().filter(|e| wants(e, event)).map(move |endpoint| (endpoint, event)))
        .map(|(endpoint, event)| webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            endpoint_id: Set(endpoint.id),
            event_id: Set(event.id),
            event_position: Set(event.position),
            event_type: Set(event.event_type.clone()),
            status: Set(DeliveryStatus::Pending),
            attempts: Set(0),
            next_attempt_at: Set(now),
            locked_until: Set(None),
            last_status_code: Set(None),
            last_error: Set(None),
            last_latency_ms: Set(None),
            created_at: Set(now),
            delivered_at: Set(None),
        })
        .collect();
    let once = OnConflict::columns([webhook_delivery::Column::EndpointId, webhook_delivery::Column::EventId])
        .do_nothing()
        .to_owned();
    db::insert_all(db, rows, Some(once)).await?;
    Ok(())
}

/// Fans out the events committed while no worker was running: everything after the
/// newest event that has a delivery. Idempotent, like [`fan_out`].
async fn fan_out_missed(db: &DatabaseConnection) -> AppResult<()> {
    use sea_orm::QuerySelect;
    let active = active_endpoints(db).await?;
    let Some(oldest) = active.iter().map(|e| e.created_at).min() else { return Ok(()) };
    let mut from = webhook_delivery::Entity::find()
        .select_only()
        .column_as(webhook_delivery::Column::EventPosition.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten()
        .unwrap_or(0);
    loop {
        let batch = outbox_event::Entity::find()
            .filter(outbox_event::Column::Position.gt(from))
            .filter(outbox_event::Column::CreatedAt.gte(oldest))
            .order_by_asc(outbox_event::Column::Position)
            .limit(500)
            .all(db)
            .await?;
        let Some(last) = batch.last().map(|e| e.position) else { return Ok(()) };
        fan_out_to(db, &active, &batch.iter().collect::<Vec<_>>()).await?;
        from = last;
    }
}

/// Claims up to 20 due deliveries for this worker for a minute.
async fn claim(db: &DatabaseConnection) -> AppResult<Vec<webhook_delivery::Model>> {
    let now = Utc::now();
    let lock = if db.get_database_backend() == DatabaseBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE webhook_deliveries SET locked_until = ? WHERE id IN (SELECT id FROM webhook_deliveries \
         WHERE status = ? AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until < ?) \
         ORDER BY next_attempt_at LIMIT 20{lock}) RETURNING *"
    );
    let values = vec![
        (now + Duration::minutes(1)).into(),
        sea_orm::ActiveEnum::to_value(&DeliveryStatus::Pending).into(),
        now.into(),
        now.into(),
    ];
    Ok(webhook_delivery::Entity::find()
        .from_raw_sql(statement(db.get_database_backend(), &sql, values))
        .all(db)
        .await?)
}

fn backoff(config: &WebhookConfig, attempts: i32) -> Duration {
    let base = config.retry_base.as_millis() as f64;
    let raw = (base * 2f64.powi(attempts.clamp(0, 20) - 1)).min(3_600_000.0);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    Duration::milliseconds((raw * jitter) as i64)
}

async fn send_one(
    db: &DatabaseConnection,
    client: &reqwest::Client,
    config: &WebhookConfig,
    delivery: webhook_delivery::Model,
) -> AppResult<()> {
    let Some(endpoint) = webhook_endpoint::Entity::find_by_id(delivery.endpoint_id).one(db).await? else {
        return Ok(());
    };
    let event = outbox_event::Entity::find().filter(outbox_event::Column::Id.eq(delivery.event_id)).one(db).await?;
    let body = match &event {
        Some(e) => json!({
            "id": e.id, "type": e.event_type, "version": e.version, "position": e.position,
            "aggregateType": e.aggregate_type, "aggregateId": e.aggregate_id, "customerId": e.customer_id,
            "channel": e.channel, "payload": e.payload, "createdAt": e.created_at,
        })
        .to_string(),
        None => return Ok(()),
    };
    let timestamp = Utc::now().timestamp();
    let signed = signature(&endpoint.secret, timestamp, body.as_bytes())?;
    let started = std::time::Instant::now();
    let result = client
        .post(&endpoint.url)
        .timeout(config.timeout)
        .header("content-type", "application/json")
        .header("cxgraph-signature", signed)
        .header("cxgraph-event-id", delivery.event_id.to_string())
        .header("cxgraph-event-type", delivery.event_type.clone())
        .header("cxgraph-delivery-id", delivery.id.to_string())
        .body(body)
        .send()
        .await;
    let latency = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let (code, error) = match &result {
        Ok(resp) => (Some(i32::from(resp.status().as_u16())), None),
        Err(e) => (None, Some(if e.is_timeout() { "timeout".to_owned() } else { "connection failed".to_owned() })),
    };
    let ok = code.is_some_and(|c| (200..300).contains(&c));
    let now = Utc::now();
    let attempts = delivery.attempts + 1;
    let created_at = delivery.created_at;
    let mut d = delivery.into_active_model();
    d.attempts = Set(attempts);
    d.last_status_code = Set(code);
    d.last_error = Set(error.or_else(|| (!ok).then(|| format!("HTTP {}", code.unwrap_or_default()))));
    d.last_latency_ms = Set(Some(latency));
    d.locked_until = Set(None);
    if ok {
        d.status = Set(DeliveryStatus::Succeeded);
        d.delivered_at = Set(Some(now));
    } else if now - created_at > config.give_up_after {
        d.status = Set(DeliveryStatus::Failed);
    } else {
        d.next_attempt_at = Set(now + backoff(config, attempts));
    }
    // The endpoint's counters change in SQL, not from the copy read before sending:
    // deliveries to one endpoint are sent concurrently, and each one's stale copy
    // used to lose the others' failures, and to disable the endpoint and raise its
    // alert once per delivery that crossed the threshold (a flaky test saw two).
    // Only the update that turns `active` off raises the alert.
    use webhook_endpoint::Column as E;
    let txn = db::begin_write(db).await?;
    d.update(&txn).await?;
    let this =
        webhook_endpoint::Entity::update_many().filter(E::Id.eq(endpoint.id)).col_expr(E::UpdatedAt, Expr::value(now));
    let counted = if ok {
        this.col_expr(E::ConsecutiveFailures, Expr::value(0))
    } else {
        this.col_expr(E::ConsecutiveFailures, Expr::col(E::ConsecutiveFailures).add(1))
    };
    counted.exec(&txn).await?;
    if !ok {
        let disabled = webhook_endpoint::Entity::update_many()
            .col_expr(E::Active, Expr::value(false))
            .col_expr(E::DisabledAt, Expr::value(now))
            .filter(E::Id.eq(endpoint.id))
            .filter(E::Active.eq(true))
            .filter(E::ConsecutiveFailures.gte(config.disable_after))
            .exec(&txn)
            .await?;
        if disabled.rows_affected == 1 {
            raise_disabled_alert(&txn, &endpoint, now).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

async fn raise_disabled_alert(
    db: &impl ConnectionTrait,
    endpoint: &webhook_endpoint::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let a = alert::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set("webhook_disabled".into()),
        severity: Set(AlertSeverity::Warning),
        status: Set(AlertStatus::Open),
        title: Set("A webhook endpoint kept failing and was disabled".into()),
        channel: Set(None),
        topic_id: Set(None),
        conversation_id: Set(None),
        details: Set(json!({ "endpointId": endpoint.id })),
        dedupe_key: Set(format!("webhook_disabled:{}:{}", endpoint.id, now.timestamp())),
        raised_at: Set(now),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
        ..Default::default()
    };
    alert::Entity::insert(a)
        .on_conflict(OnConflict::column(alert::Column::DedupeKey).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

async fn deliver_due(db: &DatabaseConnection, client: &reqwest::Client, config: &WebhookConfig) {
    loop {
        let claimed = match claim(db).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = e.message(), "webhook claim failed");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        let sends = claimed.into_iter().map(|d| send_one(db, client, config, d));
        for result in futures::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::warn!(error = e.message(), "webhook delivery bookkeeping failed");
            }
        }
    }
}

/// Starts this process's webhook worker.
pub fn spawn_worker(db: DatabaseConnection, bus: &Bus, config: WebhookConfig) -> tokio::task::JoinHandle<()> {
    let mut events = bus.subscribe();
    tokio::spawn(async move {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
        if let Err(e) = fan_out_missed(&db).await {
            tracing::warn!(error = e.message(), "webhook catch-up after start failed");
        }
        let mut tick = tokio::time::interval(StdDuration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => {
                        // Whatever else is already waiting goes out with it.
                        let mut run = vec![event];
                        while run.len() < FAN_OUT_BATCH {
                            match events.try_recv() {
                                Ok(more) => run.push(more),
                                Err(TryRecvError::Lagged(n)) => {
                                    tracing::warn!(missed = n, "webhook worker lagged behind the event bus");
                                }
                                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                            }
                        }
                        if let Err(e) = fan_out(&db, &run).await {
                            tracing::warn!(error = e.message(), "webhook fan-out failed");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "webhook worker lagged behind the event bus");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {}
            }
            deliver_due(&db, &client, &config).await;
        }
    })
}
