//! The workloads of the benchmark, as request makers over the seeded dataset: what
//! an agent desk, a BI tool and a connector send. Parameters (customers, channels)
//! are drawn from the client's seeded stream, so runs are repeatable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::load::{Call, Maker};

/// What the workloads draw on, read from the database before the runs.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub customers: Vec<String>,
    pub purchase_journey: String,
    pub now: DateTime<Utc>,
    /// A feedback time range holding about 100k rows (or all of a small dataset).
    pub export_from: DateTime<Utc>,
    pub export_rows: u64,
}

pub const QUEUE_CHANNELS: &[&str] = &["EMAIL", "CHAT", "PHONE", "TWITTER", "WHATSAPP", "FACEBOOK"];

const CUSTOMER_BY_ID: &str = "query($id: ID!) { customer(id: $id) { id displayName segment lastContactAt } }";

pub const CUSTOMER_360: &str = "query($id: ID!) { customer(id: $id) { id displayName segment createdAt \
    identities { kind value verified } \
    interactions(first: 20) { edges { node { id channel direction body sentimentLabel occurredAt } } } \
    conversations(status: [OPEN, PENDING]) { id channel status priority firstResponseDueAt } \
    touchpoints(first: 10) { name outcome occurredAt } \
    feedback(first: 10) { kind score comment occurredAt } \
    journeys { journeyName stageName reachedAt } } }";

pub const QUEUE: &str = "query($channels: [Channel!]) { conversations(filter: {channels: $channels, status: [OPEN]}, \
    orderBy: DUE, first: 50) { edges { node { id channel status priority subject nextDueAt: firstResponseDueAt \
    openedAt customerId } } } }";

const INSIGHTS: &str = "query($from: DateTime!, $to: DateTime!) { insights(range: {from: $from, to: $to}, \
    groupBy: [CHANNEL], bucket: WEEK) { cells { bucketStart channel feedbackCount \
    nps { promoters passives detractors score { value sampleSize marginOfError lowSample } } \
    csat { satisfiedPercent { value marginOfError } mean { value marginOfError } } } } }";

const CHANNEL_COMPARISON: &str = "query($from: DateTime!, $to: DateTime!) { channelComparison(range: {from: $from, \
    to: $to}) { channel volume feedbackCount nps { score { value sampleSize marginOfError } } \
    csat { satisfiedPercent { value } } sentiment { mean { value } } \
    firstResponseTime { median { value } p90 { value } } slaCompliance { value sampleSize } } }";

const FUNNEL: &str = "query($id: ID!, $from: DateTime!, $to: DateTime!) { journeyFunnel(journeyId: $id, \
    range: {from: $from, to: $to}) { groups { entered steps { stageName reached dropOff \
    conversionFromPrevious { value } conversionFromStart { value } timeFromPrevious { value sampleSize } } } } }";

const RECORD: &str = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { \
    duplicate interaction { id } userErrors { field code message } } }";

const BODIES: &[&str] = &[
    "Where is my parcel? Tracking has not moved for two days.",
    "I was charged twice, please refund the duplicate.",
    "Thanks, that fixed it!",
    "Can I change my delivery address?",
    "The app logs me out at checkout.",
];

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn customer(rng: &mut ChaCha8Rng, data: &Dataset) -> String {
    data.customers[rng.gen_range(0..data.customers.len())].clone()
}

pub fn customer_by_id(data: &Arc<Dataset>) -> Maker {
    let data = Arc::clone(data);
    Arc::new(move |rng| Call::graphql(CUSTOMER_BY_ID, json!({ "id": customer(rng, &data) })))
}

pub fn customer_360(data: &Arc<Dataset>) -> Maker {
    let data = Arc::clone(data);
    Arc::new(move |rng| Call::graphql(CUSTOMER_360, json!({ "id": customer(rng, &data) })))
}

pub fn queue() -> Maker {
    Arc::new(|rng| {
        let channel = QUEUE_CHANNELS[rng.gen_range(0..QUEUE_CHANNELS.len())];
        Call::graphql(QUEUE, json!({ "channels": [channel] }))
    })
}

pub fn insights(data: &Arc<Dataset>) -> Maker {
    let (from, to) = (rfc3339(data.now - Duration::days(365)), rfc3339(data.now));
    Arc::new(move |_| Call::graphql(INSIGHTS, json!({ "from": from, "to": to })))
}

pub fn channel_comparison(data: &Arc<Dataset>) -> Maker {
    let (from, to) = (rfc3339(data.now - Duration::days(91)), rfc3339(data.now));
    Arc::new(move |_| Call::graphql(CHANNEL_COMPARISON, json!({ "from": from, "to": to })))
}

pub fn funnel(data: &Arc<Dataset>) -> Maker {
    let (from, to) = (rfc3339(data.now - Duration::days(91)), rfc3339(data.now));
    let id = data.purchase_journey.clone();
    Arc::new(move |_| Call::graphql(FUNNEL, json!({ "id": id, "from": from, "to": to })))
}

/// Unique external ids across runs and clients, with a tenth of each batch repeating
/// an id sent at least a thousand ids earlier (a connector retrying a delivery whose
/// answer it lost; at most 400 ids are in flight, so the first copy has landed).
struct Ids {
    run: String,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Arc<Ids> {
        Arc::new(Ids { run: uuid::Uuid::now_v7().simple().to_string(), next: AtomicU64::new(0) })
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> String {
        let issued = self.next.load(Ordering::Relaxed);
        let n = if issued > 1000 && rng.gen_bool(0.1) {
            rng.gen_range(0..issued - 1000)
        } else {
            self.next.fetch_add(1, Ordering::Relaxed)
        };
        format!("bench-{}-{n}", self.run)
    }
}

fn event(rng: &mut ChaCha8Rng, data: &Dataset, ids: &Ids) -> serde_json::Value {
    let channel = QUEUE_CHANNELS[rng.gen_range(0..QUEUE_CHANNELS.len())];
    json!({
        "channel": channel,
        "direction": "INBOUND",
        "externalId": ids.draw(rng),
        "customerId": customer(rng, data),
        "body": BODIES[rng.gen_range(0..BODIES.len())],
    })
}

pub const INGEST_BATCH: u64 = 100;

/// `POST /ingest/interactions` with batches of 100 events, a tenth of them repeats.
pub fn ingest(data: &Arc<Dataset>) -> Maker {
    let data = Arc::clone(data);
    let ids = Ids::new();
    Arc::new(move |rng| {
        let mut body = Vec::new();
        for _ in 0..INGEST_BATCH {
            body.extend_from_slice(event(rng, &data, &ids).to_string().as_bytes());
            body.push(b'\n');
        }
        Call {
            method: reqwest::Method::POST,
            path: "/ingest/interactions".into(),
            body: Some(body),
            content_type: "application/x-ndjson",
            units: INGEST_BATCH,
        }
    })
}

/// `GET /export/feedback` as CSV over the range holding about 100k rows.
pub fn export(data: &Arc<Dataset>) -> Maker {
    let path = format!("/export/feedback?format=csv&from={}", rfc3339(data.export_from).replace('+', "%2B"));
    Arc::new(move |_| Call {
        method: reqwest::Method::GET,
        path: path.clone(),
        body: None,
        content_type: "text/plain",
        units: 0,
    })
}

/// 80% reads (customer 360, queue, insights), 20% single-event writes.
pub fn mixed(data: &Arc<Dataset>) -> Maker {
    let c360 = customer_360(data);
    let queue = queue();
    let insights = insights(data);
    let data = Arc::clone(data);
    let ids = Ids::new();
    Arc::new(move |rng| match rng.gen_range(0..100) {
        0..50 => c360(rng),
        50..75 => queue(rng),
        75..80 => insights(rng),
        _ => Call::graphql(RECORD, json!({ "input": event(rng, &data, &ids) })),
    })
}
