//! Early warning: negative-sentiment spikes per channel and per topic.
//!
//! Every run compares, for each channel and each topic, the negative mentions
//! (negative inbound messages and negative feedback) in the current sliding window
//! `[now − w, now)` with the trailing baseline of `k` windows before it. With the
//! baseline rate `λ = baseline / k`, the window is a spike when it holds at least
//! `min_count` mentions and its Poisson z-score `(count − λ) / √max(λ, 1)` reaches the
//! threshold. Counting is grouped, whatever the number of channels and topics:
//! channels through the insights' rollups, topics in one statement over the facts
//! (see [`read`]).
//!
//! Alerts are per **episode**, not per message: a spike raises one `negative_spike`
//! alert (and an `alert.raised` event) and nothing more while that alert is open or
//! acknowledged; the episode closes (the alert is resolved, `alert.resolved`) when the
//! window's volume returns — fewer than `min_count` mentions or a z-score under half
//! the threshold (hysteresis, so a hovering volume does not flap). Replicas running
//! the detector at once agree through the alert's unique dedupe key, which names the
//! scope and the window the episode started in.

use chrono::{DateTime, Duration, Utc};
use entity::alert;
use entity::enums::{AlertSeverity, AlertStatus, Channel, ConversationStatus, Priority};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Iterable, QueryFilter, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::db;
use crate::error::AppResult;
use crate::events::{self, Bus, NewEvent};
use crate::insights::sql::Sql;

/// The alert kind of a spike.
pub const KIND: &str = "negative_spike";
/// Most conversations one spike lifts to HIGH priority.
const MAX_LIFTED: u64 = 500;

/// The detector's settings.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub window: Duration,
    pub baseline_windows: u32,
    pub threshold: f64,
    pub min_count: u32,
    /// Lift open conversations of a spiking channel or topic to HIGH.
    pub raise_priority: bool,
}

/// What a spike is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Channel(Channel),
    Topic(Uuid),
}

impl Scope {
    fn key(&self) -> String {
        match self {
            Scope::Channel(c) => format!("channel:{}", c.to_value()),
            Scope::Topic(t) => format!("topic:{t}"),
        }
    }
}

/// One scope's counts.
#[derive(Debug, Clone)]
pub struct Reading {
    pub scope: Scope,
    pub current: i64,
    pub baseline: i64,
}

impl Reading {
    /// The baseline's mean per window and the current window's z-score against it.
    pub fn z(&self, params: &Params) -> (f64, f64) {
        let lambda = self.baseline as f64 / f64::from(params.baseline_windows.max(1));
        (lambda, (self.current as f64 - lambda) / lambda.max(1.0).sqrt())
    }

    fn spiking(&self, params: &Params) -> bool {
        self.current >= i64::from(params.min_count) && self.z(params).1 >= params.threshold
    }

    fn calm(&self, params: &Params) -> bool {
        self.current < i64::from(params.min_count) || self.z(params).1 < params.threshold / 2.0
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub raised: u32,
    pub resolved: u32,
    pub lifted: u64,
}

/// Negative mentions of topics in `[start, now)` as `(scope, occurred_at)` rows,
/// through the facts' topic links. The conditions are literals, not parameters: the
/// messages' half is read from the partial index of migration 20, which PostgreSQL
/// uses only when it can see that the query implies its condition.
fn topic_negatives(sql: &mut Sql, start: DateTime<Utc>, now: DateTime<Utc>) {
    let parts = [
        ("interactions", "interaction_topics", "interaction_id", " AND x.direction = 'inbound'"),
        ("feedback", "feedback_topics", "feedback_id", ""),
    ];
    sql.push("(");
    for (i, (facts, links, link_col, extra)) in parts.into_iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push(&format!(
            "SELECT l.topic_id AS scope, x.occurred_at FROM {facts} x JOIN {links} l ON l.{link_col} = x.id"
        ));
        sql.push(" WHERE x.sentiment_label = 'negative' AND x.occurred_at >= ").bind(start);
        sql.push(" AND x.occurred_at < ").bind(now).push(extra);
    }
    sql.push(")");
}

/// Counts per scope for the window ending at `now`.
///
/// Channels are counted by the insights (`insights::metrics`, negative feedback and
/// negative messages per channel, the same sums the sentiment figures use), so the
/// baseline's whole hours come from the rollups and only the minutes at its edges and
/// the current window from the facts: a day of busy channels is a few hundred rollup
/// rows, not every negative message of the day (137,000 in the ingest benchmark's
/// day, 0.2–0.7 s a run). Topics have no rollups and are counted from the facts.
pub async fn read(db: &DatabaseConnection, now: DateTime<Utc>, params: &Params) -> AppResult<Vec<Reading>> {
    let backend = db.get_database_backend();
    let current_start = now - params.window;
    let baseline_start = current_start - params.window * i32::try_from(params.baseline_windows).unwrap_or(i32::MAX);
    let mut out = channel_readings(db, baseline_start, current_start, now).await?;
    let mut sql = Sql::new();
    sql.push("SELECT n.scope, SUM(CASE WHEN n.occurred_at >= ").bind(current_start);
    sql.push(" THEN 1 ELSE 0 END) AS current, SUM(CASE WHEN n.occurred_at < ").bind(current_start);
    sql.push(" THEN 1 ELSE 0 END) AS baseline FROM ");
    topic_negatives(&mut sql, baseline_start, now);
    sql.push(" n GROUP BY n.scope");
    for row in db.query_all_raw(sql.statement(backend)).await? {
        out.push(Reading {
            scope: Scope::Topic(row.try_get("", "scope")?),
            current: row.try_get::<Option<i64>>("", "current")?.unwrap_or(0),
            baseline: row.try_get::<Option<i64>>("", "baseline")?.unwrap_or(0),
        });
    }
    Ok(out)
}

/// Negative mentions per channel in the baseline `[start, split)` and the current
/// window `[split, now)`.
///
/// The two windows are cut as the insights cut any bucket ([`rollups::plan`]): their
/// whole hours are the rollups' negative counts (through `insights::metrics`, the
/// sums the sentiment figures use, pending deltas included), and only the minutes
/// around them come from the facts, counted on the negative facts' index
/// (`ix_interactions_sentiment_label_channel_occurred_at`, one range per channel)
/// instead of summing every metric of every fact in them: the detector's current hour
/// is never whole, and on the benchmark's busiest hour (378,000 interactions) summing
/// it all cost 0.7–1.2 s of PostgreSQL a minute.
///
/// [`rollups::plan`]: crate::insights::rollups::plan
async fn channel_readings(
    db: &DatabaseConnection,
    start: DateTime<Utc>,
    split: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<Vec<Reading>> {
    use crate::insights::buckets::Range;
    use crate::insights::metrics::{self, Dimension, Families, Filter, Request};
    use crate::insights::rollups::{self, Piece};
    let windows = [(0, Range { start, end: split }), (1, Range { start: split, end: now })];
    let (mut whole, mut edges) = (Vec::new(), Vec::new());
    for piece in rollups::plan(&windows) {
        match piece {
            Piece::Rollup { bucket, from, to, .. } => {
                whole.push((bucket, Range { start: rollups::start_of(from), end: rollups::start_of(to) }));
            }
            Piece::Facts { bucket, range } => edges.push((bucket, range)),
        }
    }
    let mut by_channel: Vec<Reading> = Vec::new();
    let mut add = |channel: Channel, window: usize, negative: i64| {
        let at = match by_channel.iter().position(|r| r.scope == Scope::Channel(channel)) {
            Some(at) => at,
            None => {
                by_channel.push(Reading { scope: Scope::Channel(channel), current: 0, baseline: 0 });
                by_channel.len() - 1
            }
        };
        match window {
            1 => by_channel[at].current += negative,
            _ => by_channel[at].baseline += negative,
        }
    };
    if !whole.is_empty() {
        let req = Request {
            from: start,
            to: now,
            group_by: vec![Dimension::Channel],
            buckets: Some(whole.iter().map(|w| w.1).collect()),
            filter: Filter::default(),
            families: Families { feedback: true, interactions: true, conversations: false },
        };
        for cell in metrics::run(db, &req).await?.cells {
            if let (Some(channel), Some(piece)) = (cell.key.channel, cell.key.bucket) {
                let window = whole.get(piece).map_or(0, |w| w.0);
                add(channel, window, cell.sentiment().negative);
            }
        }
    }
    if !edges.is_empty() {
        let backend = db.get_database_backend();
        let mut sql = Sql::new();
        sql.push("SELECT n.channel, n.w, COUNT(*) AS negative FROM (");
        for (i, (window, range)) in edges.iter().enumerate() {
            for (j, (facts, channel_range)) in [("interactions", true), ("feedback", false)].into_iter().enumerate() {
                if i + j > 0 {
                    sql.push(" UNION ALL ");
                }
                sql.push(&format!(
                    "SELECT x.channel, {window} AS w FROM {facts} x WHERE x.sentiment_label = 'negative'"
                ));
                if channel_range {
                    // Every channel named, so the index is read as one range per channel.
                    sql.push(" AND x.channel IN ").bind_list(Channel::iter().map(|c| c.to_value()));
                }
                sql.push(" AND x.occurred_at >= ").bind(range.start).push(" AND x.occurred_at < ").bind(range.end);
            }
        }
        sql.push(") n GROUP BY n.channel, n.w");
        for row in db.query_all_raw(sql.statement(backend)).await? {
            let channel = Channel::try_from_value(&row.try_get::<String>("", "channel")?)?;
            let window: i32 = row.try_get("", "w")?;
            add(channel, usize::try_from(window).unwrap_or(0), row.try_get("", "negative")?);
        }
    }
    by_channel.retain(|r| r.current > 0 || r.baseline > 0);
    Ok(by_channel)
}

/// The scope an episode's alert is about.
fn scope_of(episode: &alert::Model) -> Option<Scope> {
    match (episode.topic_id, episode.channel) {
        (Some(t), _) => Some(Scope::Topic(t)),
        (None, Some(c)) => Some(Scope::Channel(c)),
        (None, None) => None,
    }
}

/// One detector run at `now`: two counting statements, one for the open episodes,
/// then a write per alert raised or resolved.
pub async fn detect(db: &DatabaseConnection, now: DateTime<Utc>, params: &Params) -> AppResult<Report> {
    let mut report = Report::default();
    let readings = read(db, now, params).await?;
    let open: Vec<alert::Model> = alert::Entity::find()
        .filter(alert::Column::Kind.eq(KIND))
        .filter(alert::Column::Status.is_in([AlertStatus::Open, AlertStatus::Acknowledged]))
        .all(db)
        .await?;
    for r in &readings {
        let episode = open.iter().find(|a| scope_of(a).as_ref() == Some(&r.scope));
        match episode {
            None if r.spiking(params) => {
                if let Some(lifted) = raise(db, r, now, params).await? {
                    report.raised += 1;
                    report.lifted += lifted;
                }
            }
            Some(episode) if r.calm(params) && resolve(db, episode, now).await? => report.resolved += 1,
            _ => {}
        }
    }
    // A scope without any negative mention in the whole period is calm too.
    for episode in &open {
        let quiet = scope_of(episode).is_some_and(|scope| !readings.iter().any(|r| r.scope == scope));
        if quiet && resolve(db, episode, now).await? {
            report.resolved += 1;
        }
    }
    Ok(report)
}

/// Raises the episode's alert (once, across replicas); returns how many
/// conversations it lifted, or `None` when another run raised it first.
async fn raise(db: &DatabaseConnection, r: &Reading, now: DateTime<Utc>, params: &Params) -> AppResult<Option<u64>> {
    let (lambda, z) = r.z(params);
    let window_index = now.timestamp() / params.window.num_seconds().max(1);
    let (channel, topic_id, about) = match &r.scope {
        Scope::Channel(c) => (Some(*c), None, format!("{c:?}")),
        Scope::Topic(t) => (None, Some(*t), topic_name(db, *t).await?),
    };
    let severity = if z >= 2.0 * params.threshold { AlertSeverity::Critical } else { AlertSeverity::Warning };
    let id = Uuid::now_v7();
    let row = alert::ActiveModel {
        id: Set(id),
        kind: Set(KIND.to_owned()),
        severity: Set(severity),
        status: Set(AlertStatus::Open),
        title: Set(format!(
            "Negative mentions spiking on {about}: {} in the last {} min (usual {lambda:.1})",
            r.current,
            params.window.num_minutes()
        )),
        channel: Set(channel),
        topic_id: Set(topic_id),
        conversation_id: Set(None),
        details: Set(json!({ "count": r.current, "baselinePerWindow": lambda, "z": z,
            "windowMinutes": params.window.num_minutes(), "baselineWindows": params.baseline_windows })),
        dedupe_key: Set(format!("{KIND}:{}:{window_index}", r.scope.key())),
        raised_at: Set(now),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_at: Set(None),
    };
    let txn = db::begin_write(db).await?;
    let inserted = alert::Entity::insert(row)
        .on_conflict(OnConflict::column(alert::Column::DedupeKey).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
    if inserted == 0 {
        txn.rollback().await.ok();
        return Ok(None);
    }
    let lifted = if params.raise_priority { lift(&txn, &r.scope, now - params.window).await? } else { 0 };
    let payload = json!({ "kind": KIND, "scope": r.scope.key(), "count": r.current, "lifted": lifted });
    let event = NewEvent {
        event_type: "alert.raised",
        aggregate_type: "alert",
        aggregate_id: id,
        customer_id: None,
        channel,
        payload,
    };
    events::emit(&txn, event).await?;
    txn.commit().await?;
    Ok(Some(lifted))
}

async fn topic_name(db: &impl ConnectionTrait, id: Uuid) -> AppResult<String> {
    Ok(entity::topic::Entity::find_by_id(id).one(db).await?.map_or_else(|| "a topic".to_owned(), |t| t.name))
}

/// Lifts the scope's open conversations to HIGH priority (each with a
/// `conversation.updated` event); for a topic, those with a message about it in the
/// window.
async fn lift(txn: &impl ConnectionTrait, scope: &Scope, since: DateTime<Utc>) -> AppResult<u64> {
    use entity::conversation;
    let mut q = conversation::Entity::find()
        .select_only()
        .columns([conversation::Column::Id, conversation::Column::CustomerId, conversation::Column::Channel])
        .filter(conversation::Column::Status.is_in([ConversationStatus::Open, ConversationStatus::Pending]))
        .filter(conversation::Column::Priority.is_in([Priority::Low, Priority::Normal]))
        .limit(MAX_LIFTED);
    q = match scope {
        Scope::Channel(c) => q.filter(conversation::Column::Channel.eq(*c)),
        Scope::Topic(t) => {
            let mut about = Sql::new();
            about.push(
                "SELECT DISTINCT i.conversation_id FROM interactions i JOIN interaction_topics it ON it.interaction_id = i.id \
                 WHERE i.conversation_id IS NOT NULL AND it.topic_id = ",
            );
            about.bind(*t).push(" AND i.occurred_at >= ").bind(since).push(&format!(" LIMIT {MAX_LIFTED}"));
            let mut ids = Vec::new();
            for row in txn.query_all_raw(about.statement(txn.get_database_backend())).await? {
                ids.push(row.try_get::<Uuid>("", "conversation_id")?);
            }
            q.filter(conversation::Column::Id.is_in(ids))
        }
    };
    let rows: Vec<(Uuid, Uuid, Channel)> = q.into_tuple().all(txn).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    conversation::Entity::update_many()
        .col_expr(conversation::Column::Priority, sea_orm::sea_query::Expr::value(Priority::High.to_value()))
        .col_expr(conversation::Column::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(conversation::Column::Id.is_in(rows.iter().map(|r| r.0)))
        .exec(txn)
        .await?;
    for (id, customer_id, channel) in &rows {
        events::emit(txn, crate::interactions::conversations::updated_event(*id, *customer_id, *channel)).await?;
    }
    Ok(rows.len() as u64)
}

/// Closes an episode; true when this call closed it.
async fn resolve(db: &DatabaseConnection, episode: &alert::Model, now: DateTime<Utc>) -> AppResult<bool> {
    let txn = db::begin_write(db).await?;
    let done = alert::Entity::update_many()
        .col_expr(alert::Column::Status, sea_orm::sea_query::Expr::value(AlertStatus::Resolved.to_value()))
        .col_expr(alert::Column::ResolvedAt, sea_orm::sea_query::Expr::value(now))
        .filter(alert::Column::Id.eq(episode.id))
        .filter(alert::Column::Status.ne(AlertStatus::Resolved))
        .exec(&txn)
        .await?;
    if done.rows_affected == 1 {
        let event = NewEvent {
            event_type: "alert.resolved",
            aggregate_type: "alert",
            aggregate_id: episode.id,
            customer_id: None,
            channel: episode.channel,
            payload: json!({ "kind": episode.kind, "by": "detector" }),
        };
        events::emit(&txn, event).await?;
    }
    txn.commit().await?;
    Ok(done.rows_affected == 1)
}

/// Runs the detector every `interval` in the background, waking subscribers when it
/// raised or resolved something.
pub fn spawn_detector(
    db: DatabaseConnection,
    bus: Bus,
    interval: std::time::Duration,
    params: Params,
) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(interval, move || {
        let (db, bus) = (db.clone(), bus.clone());
        async move {
            match detect(&db, Utc::now(), &params).await {
                Ok(r) if r == Report::default() => {}
                Ok(r) => {
                    bus.wake();
                    crate::metrics::get().alerts_raised(KIND, u64::from(r.raised));
                    tracing::info!(raised = r.raised, resolved = r.resolved, lifted = r.lifted, "spike detector");
                }
                Err(e) => tracing::warn!(error = e.message(), "spike detection failed; retrying next interval"),
            }
        }
    })
}
