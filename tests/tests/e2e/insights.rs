//! Insights on both backends, checked against figures the test computes itself from
//! the facts it stored: NPS / CSAT / CES with their margins by channel, sentiment and
//! volume, first-response percentiles and SLA compliance, day buckets across the
//! spring DST change and month buckets, the channel comparison (every channel, held
//! to a token's channels), topic drivers on a hand-built set, and a journey funnel on a
//! hand-built journey.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use cxgraph_tests::{TestApp, error_code, on_each_backend};
use entity::enums::{
    AuthorKind, Channel, ConversationStatus, Direction, FeedbackKind, Role, SentimentLabel, TouchpointOutcome,
    Visibility,
};
use entity::{conversation, feedback, feedback_topic, interaction, journey, journey_stage, sla_policy, touchpoint};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel};
use serde_json::{Value, json};
use uuid::Uuid;

const Z: f64 = 1.959_963_984_540_054;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A small deterministic generator, so the data set is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

async fn new_customer(db: &DatabaseConnection, segment: &str) -> Uuid {
    cxgraph_tests::insert_customer(db, Some(segment)).await
}

#[allow(clippy::too_many_arguments)]
async fn new_feedback(
    db: &DatabaseConnection,
    customer_id: Uuid,
    kind: FeedbackKind,
    score: Option<i16>,
    channel: Channel,
    sentiment: Option<f64>,
    occurred_at: DateTime<Utc>,
) -> Uuid {
    let label = sentiment.map(|s| if s < -0.25 { SentimentLabel::Negative } else { SentimentLabel::Positive });
    feedback::Model {
        id: Uuid::now_v7(),
        customer_id,
        survey_id: None,
        kind,
        score,
        comment: sentiment.map(|_| "words".into()),
        channel,
        touchpoint_id: None,
        interaction_id: None,
        sentiment_score: sentiment,
        sentiment_label: label,
        source: "test".into(),
        external_id: None,
        occurred_at,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap()
    .id
}

const CELLS: &str = "query($range: InsightRange!, $groupBy: [InsightDimension!], $bucket: TimeBucket, $tz: String) { \
    insights(range: $range, groupBy: $groupBy, bucket: $bucket, timeZone: $tz) { buckets { start end } cells { \
      bucketStart channel segment feedbackCount volume conversationsOpened \
      nps { promoters passives detractors score { value sampleSize marginOfError lowSample } } \
      csat { satisfiedPercent { value marginOfError } mean { value marginOfError } } ces { value marginOfError sampleSize } \
      sentiment { mean { value sampleSize } negativePercent { value } } \
      firstResponseTime { median { value low high sampleSize } p90 { value low high } } slaCompliance { value sampleSize marginOfError } } } }";

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-6)
}

/// Expected NPS and its margin, computed here from the answers.
fn nps_of(scores: &[i16]) -> (f64, f64) {
    let n = scores.len() as f64;
    let p = scores.iter().filter(|s| **s >= 9).count() as f64 / n;
    let d = scores.iter().filter(|s| **s <= 6).count() as f64 / n;
    (100.0 * (p - d), 100.0 * Z * ((p + d - (p - d).powi(2)) / n).sqrt())
}

fn mean_of(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Z * (var / n).sqrt())
}

#[tokio::test]
async fn metrics_by_channel_match_an_independent_computation() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let mut rng = Lcg(7);
        let segments = ["consumer", "business"];
        let mut customers = Vec::new();
        for i in 0..12 {
            customers.push((new_customer(db, segments[i % 2]).await, segments[i % 2]));
        }
        let channels = [Channel::Email, Channel::Chat, Channel::Twitter];
        // channel → NPS scores, CSAT scores, CES scores, sentiment scores
        let mut nps: BTreeMap<Channel, Vec<i16>> = BTreeMap::new();
        let mut csat: BTreeMap<Channel, Vec<i16>> = BTreeMap::new();
        let mut ces: BTreeMap<Channel, Vec<i16>> = BTreeMap::new();
        let mut sentiment: BTreeMap<Channel, Vec<f64>> = BTreeMap::new();
        let start = at("2026-03-01T00:00:00Z");
        for i in 0..150 {
            let channel = channels[(rng.next(10) % 3) as usize];
            let (customer_id, _) = customers[rng.next(12) as usize];
            let when = start + Duration::minutes(rng.next(28 * 24 * 60) as i64);
            let (kind, score) = match i % 3 {
                0 => (FeedbackKind::Nps, rng.next(11) as i16),
                1 => (FeedbackKind::Csat, 1 + rng.next(5) as i16),
                _ => (FeedbackKind::Ces, 1 + rng.next(7) as i16),
            };
            let s = (i % 4 == 0).then(|| (rng.next(200) as f64 - 100.0) / 100.0);
            new_feedback(db, customer_id, kind, Some(score), channel, s, when).await;
            match kind {
                FeedbackKind::Nps => nps.entry(channel).or_default().push(score),
                FeedbackKind::Csat => csat.entry(channel).or_default().push(score),
                _ => ces.entry(channel).or_default().push(score),
            }
            if let Some(s) = s {
                sentiment.entry(channel).or_default().push(s);
            }
        }
        // Outside the range: must not count.
        new_feedback(db, customers[0].0, FeedbackKind::Nps, Some(0), Channel::Email, None, at("2026-04-01T00:00:00Z"))
            .await;

        let range = json!({ "from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z" });
        let body = app.graphql(CELLS, json!({ "range": range, "groupBy": ["CHANNEL"] }), Some(&admin)).await;
        assert!(body["errors"].is_null(), "{body}");
        let cells = body["data"]["insights"]["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 3, "{body}");
        for cell in cells {
            let channel = match cell["channel"].as_str().unwrap() {
                "EMAIL" => Channel::Email,
                "CHAT" => Channel::Chat,
                _ => Channel::Twitter,
            };
            let scores = &nps[&channel];
            let (value, margin) = nps_of(scores);
            let n = &cell["nps"];
            assert!(close(&n["score"]["value"], value), "{channel:?} NPS {} vs {value}", n["score"]["value"]);
            assert!(close(&n["score"]["marginOfError"], margin), "{channel:?} NPS margin {} vs {margin}", n["score"]);
            assert_eq!(n["score"]["sampleSize"], scores.len());
            assert_eq!(n["score"]["lowSample"], scores.len() < 30);
            assert_eq!(n["promoters"], scores.iter().filter(|s| **s >= 9).count());
            assert_eq!(n["passives"], scores.iter().filter(|s| (7..=8).contains(*s)).count());
            let c = &csat[&channel];
            let satisfied = c.iter().filter(|s| **s >= 4).count() as f64 / c.len() as f64;
            assert!(close(&cell["csat"]["satisfiedPercent"]["value"], 100.0 * satisfied));
            assert!(close(
                &cell["csat"]["satisfiedPercent"]["marginOfError"],
                100.0 * Z * (satisfied * (1.0 - satisfied) / c.len() as f64).sqrt()
            ));
            let (m, e) = mean_of(&c.iter().map(|s| f64::from(*s)).collect::<Vec<_>>());
            assert!(
                close(&cell["csat"]["mean"]["value"], m) && close(&cell["csat"]["mean"]["marginOfError"], e),
                "{cell}"
            );
            let (m, e) = mean_of(&ces[&channel].iter().map(|s| f64::from(*s)).collect::<Vec<_>>());
            assert!(close(&cell["ces"]["value"], m) && close(&cell["ces"]["marginOfError"], e), "{cell}");
            let s = &sentiment[&channel];
            assert!(close(&cell["sentiment"]["mean"]["value"], s.iter().sum::<f64>() / s.len() as f64), "{cell}");
            assert_eq!(cell["feedbackCount"], scores.len() + c.len() + ces[&channel].len());
        }

        // Grouped by segment and channel: the cells partition the same answers.
        let by_two =
            app.graphql(CELLS, json!({ "range": range, "groupBy": ["SEGMENT", "CHANNEL"] }), Some(&admin)).await;
        let total: i64 = by_two["data"]["insights"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["nps"]["score"]["sampleSize"].as_i64().unwrap())
            .sum();
        assert_eq!(total as usize, nps.values().map(Vec::len).sum::<usize>());
    })
    .await;
}

#[tokio::test]
async fn day_buckets_follow_local_midnight_across_dst_and_months_bucket_alike() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let c = new_customer(db, "consumer").await;
        // 29 March 2026 in London is 23 hours long: 00:00Z to 23:00Z.
        for (t, score) in [
            ("2026-03-28T23:30:00Z", 10), // 28 March local
            ("2026-03-29T00:30:00Z", 0),  // 29 March
            ("2026-03-29T22:30:00Z", 9),  // 29 March (23:30 BST)
            ("2026-03-29T23:30:00Z", 5),  // 30 March (00:30 BST)
            ("2026-02-27T12:00:00Z", 8),  // February
        ] {
            new_feedback(db, c, FeedbackKind::Nps, Some(score), Channel::Email, None, at(t)).await;
        }
        let days = app
            .graphql(
                CELLS,
                json!({ "range": { "from": "2026-03-28T00:00:00Z", "to": "2026-03-31T00:00:00Z" }, "bucket": "DAY", "tz": "Europe/London" }),
                Some(&admin),
            )
            .await;
        assert!(days["errors"].is_null(), "{days}");
        let cells: Vec<(String, i64)> = days["data"]["insights"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["bucketStart"].as_str().unwrap().to_owned(), c["nps"]["score"]["sampleSize"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            cells,
            [
                ("2026-03-28T00:00:00+00:00".to_owned(), 1),
                ("2026-03-29T00:00:00+00:00".to_owned(), 2),
                ("2026-03-29T23:00:00+00:00".to_owned(), 1),
            ],
            "{days}"
        );
        let buckets = &days["data"]["insights"]["buckets"];
        assert_eq!(buckets[1]["end"], "2026-03-29T23:00:00+00:00", "a 23-hour day");
        let months = app
            .graphql(
                CELLS,
                json!({ "range": { "from": "2026-02-01T00:00:00Z", "to": "2026-04-01T00:00:00Z" }, "bucket": "MONTH", "tz": "UTC" }),
                Some(&admin),
            )
            .await;
        let sizes: Vec<i64> = months["data"]["insights"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["nps"]["score"]["sampleSize"].as_i64().unwrap())
            .collect();
        assert_eq!(sizes, [1, 4], "{months}");
        let bad = app
            .graphql(CELLS, json!({ "range": { "from": "2026-02-01T00:00:00Z", "to": "2026-04-01T00:00:00Z" }, "bucket": "DAY", "tz": "Mars/Base" }), Some(&admin))
            .await;
        assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");
        let malformed = app.graphql(CELLS, json!({ "range": { "from": "yesterday", "to": "2026-04-01T00:00:00Z" } }), Some(&admin)).await;
        assert_eq!(error_code(&malformed), Some("BAD_USER_INPUT"), "{malformed}");
    })
    .await;
}

#[tokio::test]
async fn response_times_sla_and_volume_come_from_conversations_and_messages() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let now = Utc::now();
        let policy = sla_policy::Model {
            id: Uuid::now_v7(),
            name: "chat".into(),
            channel: Some(Channel::Chat),
            priority: None,
            first_response_minutes: 30,
            resolution_minutes: 600,
            business_hours: None,
            active: true,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(db)
        .await
        .unwrap();
        let c = new_customer(db, "consumer").await;
        // First-response minutes of 9 chat conversations; the last one never answered.
        let minutes = [5_i64, 40, 12, 3, 25, 60, 8, 15, 0];
        let opened = at("2026-05-04T09:00:00Z");
        let mut frts = Vec::new();
        for (i, m) in minutes.iter().enumerate() {
            let answered = i < minutes.len() - 1;
            let breached = *m > 30;
            let resolved = i % 2 == 0 && answered;
            conversation::Model {
                status: if resolved { ConversationStatus::Resolved } else { ConversationStatus::Open },
                sla_policy_id: Some(policy.id),
                opened_at: opened + Duration::hours(i as i64),
                first_response_at: answered.then(|| opened + Duration::hours(i as i64) + Duration::minutes(*m)),
                resolved_at: resolved.then(|| opened + Duration::hours(i as i64 + 2)),
                first_response_breached: breached,
                created_at: now,
                updated_at: now,
                ..cxgraph_tests::open_conversation(c, Channel::Chat, opened)
            }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
            if answered {
                frts.push((*m * 60) as f64);
            }
            for direction in [Direction::Inbound, Direction::Outbound] {
                interaction::Model {
                    id: Uuid::now_v7(),
                    customer_id: c,
                    conversation_id: None,
                    channel: Channel::Chat,
                    direction,
                    visibility: Visibility::Private,
                    author_kind: if direction == Direction::Inbound { AuthorKind::Customer } else { AuthorKind::Agent },
                    author_user_id: None,
                    inbox: None,
                    body: None,
                    sentiment_score: (direction == Direction::Inbound).then_some(-0.5),
                    sentiment_label: (direction == Direction::Inbound).then_some(SentimentLabel::Negative),
                    external_id: Some(format!("{i}-{direction:?}")),
                    occurred_at: opened + Duration::hours(i as i64),
                    created_at: now,
                    updated_at: now,
                }
                .into_active_model()
                .insert(db)
                .await
                .unwrap();
            }
        }
        frts.sort_by(f64::total_cmp);
        let rank = |q: f64| frts[((q * frts.len() as f64).ceil() as usize).max(1) - 1];
        let body = app
            .graphql(CELLS, json!({ "range": { "from": "2026-05-01T00:00:00Z", "to": "2026-06-01T00:00:00Z" }, "groupBy": ["CHANNEL"] }), Some(&admin))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let cell = &body["data"]["insights"]["cells"][0];
        assert_eq!(cell["channel"], "CHAT");
        assert_eq!(cell["conversationsOpened"], 9);
        assert_eq!(cell["volume"], 9);
        assert!(close(&cell["firstResponseTime"]["median"]["value"], rank(0.5)), "{cell} vs {frts:?}");
        assert!(close(&cell["firstResponseTime"]["p90"]["value"], rank(0.9)), "{cell}");
        assert_eq!(cell["firstResponseTime"]["median"]["sampleSize"], 8);
        let (lo, hi) = (cell["firstResponseTime"]["median"]["low"].as_f64().unwrap(), cell["firstResponseTime"]["median"]["high"].as_f64().unwrap());
        assert!(lo <= rank(0.5) && rank(0.5) <= hi, "the interval holds the median: {cell}");
        // The distribution-free interval: the order statistics at ranks
        // n·q ± z·√(n·q·(1−q)), inside 1…n.
        let band = |q: f64| {
            let (n, z) = (frts.len() as f64, 1.959964);
            let half = z * (n * q * (1.0 - q)).sqrt();
            let lo = ((n * q - half).ceil() as usize).max(1);
            let hi = ((n * q + half).floor() as usize).min(frts.len());
            (frts[lo - 1], frts[hi - 1])
        };
        for (name, q) in [("median", 0.5), ("p90", 0.9)] {
            let (lo, hi) = band(q);
            let got = &cell["firstResponseTime"][name];
            assert!(close(&got["low"], lo) && close(&got["high"], hi), "{name}: {got} vs {lo}..{hi} of {frts:?}");
        }
        // SLA: decided = resolved or breached; met = resolved without breach.
        // Resolved: i = 0, 2, 4, 6 (minutes 5, 12, 25, 8: none breached); breached: 40, 60.
        assert_eq!(cell["slaCompliance"]["sampleSize"], 6, "{cell}");
        assert!(close(&cell["slaCompliance"]["value"], 100.0 * 4.0 / 6.0));
        assert!(close(&cell["sentiment"]["negativePercent"]["value"], 100.0), "{cell}");
    })
    .await;
}

#[tokio::test]
async fn channel_comparison_lists_every_channel_a_caller_may_see() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let c = new_customer(db, "consumer").await;
        new_feedback(db, c, FeedbackKind::Nps, Some(10), Channel::Twitter, None, at("2026-03-02T00:00:00Z")).await;
        new_feedback(db, c, FeedbackKind::Nps, Some(2), Channel::Email, None, at("2026-03-02T00:00:00Z")).await;
        let query = "{ channelComparison(range: {from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\"}) \
                     { channel nps { score { value sampleSize } } volume } }";
        let all = app.graphql(query, json!({}), Some(&admin)).await;
        let rows = all["data"]["channelComparison"].as_array().unwrap();
        assert_eq!(rows.len(), 11, "every channel, with or without data: {all}");
        let twitter = rows.iter().find(|r| r["channel"] == "TWITTER").unwrap();
        assert_eq!(twitter["nps"]["score"]["value"], 100.0);
        let phone = rows.iter().find(|r| r["channel"] == "PHONE").unwrap();
        assert_eq!(phone["nps"]["score"]["sampleSize"], 0);
        assert!(phone["nps"]["score"]["value"].is_null());

        let token =
            app.api_token(&admin, "{name: \"bi\", scopes: [INSIGHTS_READ], channels: [TWITTER, FACEBOOK]}").await;
        let limited = app.graphql(query, json!({}), Some(&token)).await;
        let channels: Vec<&str> = limited["data"]["channelComparison"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["TWITTER", "FACEBOOK"], "{limited}");
        // A filter naming none of the token's channels answers nothing, not an error.
        let none = app
            .graphql(
                "{ channelComparison(range: {from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\"}, \
                 filter: {channels: [EMAIL], segments: []}) { channel volume } }",
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(none["data"]["channelComparison"], json!([]), "{none}");
        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        let refused = app.graphql(query, json!({}), Some(&agent)).await;
        assert_eq!(error_code(&refused), Some("FORBIDDEN"));
    })
    .await;
}

#[tokio::test]
async fn topic_drivers_compare_nps_with_and_without_the_topic() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let mut topic_ids = Vec::new();
        for name in ["Delivery", "Billing"] {
            topic_ids.push(cxgraph_tests::insert_topic(db, name, None).await);
        }
        let when = at("2026-03-10T10:00:00Z");
        // Six customers answer NPS; three of them complained about delivery (negative).
        let scores = [2_i16, 4, 9, 10, 10, 8];
        for (i, score) in scores.iter().enumerate() {
            let c = new_customer(db, "consumer").await;
            new_feedback(db, c, FeedbackKind::Nps, Some(*score), Channel::Email, None, when).await;
            if i < 3 {
                let sentiment = if i < 2 { -0.8 } else { 0.6 };
                let f = new_feedback(db, c, FeedbackKind::Comment, None, Channel::Twitter, Some(sentiment), when).await;
                feedback_topic::Model { feedback_id: f, topic_id: topic_ids[0] }.into_active_model().insert(db).await.unwrap();
            }
        }
        let body = app
            .graphql(
                "{ topicDrivers(range: {from: \"2026-03-01T00:00:00Z\", to: \"2026-04-01T00:00:00Z\"}) { topicName mentions \
                 negativeMentions npsWithTopic { score { value sampleSize } } npsWithoutTopic { score { value } } \
                 npsImpact { value marginOfError } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let first = &body["data"]["topicDrivers"][0];
        assert_eq!(first["topicName"], "Delivery");
        assert_eq!((first["mentions"].as_i64(), first["negativeMentions"].as_i64()), (Some(3), Some(2)));
        let (with, with_margin) = nps_of(&scores[..3]);
        let (without, without_margin) = nps_of(&scores[3..]);
        assert!(close(&first["npsWithTopic"]["score"]["value"], with), "{first}");
        assert!(close(&first["npsWithoutTopic"]["score"]["value"], without), "{first}");
        assert!(close(&first["npsImpact"]["value"], with - without));
        assert!(close(&first["npsImpact"]["marginOfError"], (with_margin.powi(2) + without_margin.powi(2)).sqrt()));
        let billing = &body["data"]["topicDrivers"][1];
        assert_eq!((billing["topicName"].as_str(), billing["mentions"].as_i64()), (Some("Billing"), Some(0)));
    })
    .await;
}

/// A journey with these stages in order; answers its id and the stages' ids.
async fn journey_with_stages(db: &DatabaseConnection, name: &str, stages: &[&str]) -> (Uuid, Vec<Uuid>) {
    let now = Utc::now();
    let j =
        journey::Model { id: Uuid::now_v7(), name: name.into(), description: None, created_at: now, updated_at: now }
            .into_active_model()
            .insert(db)
            .await
            .unwrap();
    let mut ids = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let s = journey_stage::Model {
            id: Uuid::now_v7(),
            journey_id: j.id,
            name: (*stage).into(),
            position: i as i32 * 10,
            created_at: now,
        }
        .into_active_model()
        .insert(db)
        .await
        .unwrap();
        ids.push(s.id);
    }
    (j.id, ids)
}

/// A successful touchpoint of `customer` at `stage`.
async fn touch(
    db: &DatabaseConnection,
    customer: Uuid,
    journey: Uuid,
    stage: Uuid,
    channel: Channel,
    when: DateTime<Utc>,
) {
    touchpoint::Model {
        id: Uuid::now_v7(),
        customer_id: customer,
        journey_id: journey,
        stage_id: stage,
        channel,
        name: "step".into(),
        outcome: TouchpointOutcome::Success,
        interaction_id: None,
        source: "test".into(),
        external_id: None,
        occurred_at: when,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_funnel_counts_ordered_progress_and_times_between_stages() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let (j, stages) = journey_with_stages(db, "Buy", &["Browse", "Cart", "Checkout", "Delivery"]).await;
        let t0 = at("2026-06-01T10:00:00Z");
        // (segment, [(stage index, minutes after t0)])
        let paths: Vec<(&str, Vec<(usize, i64)>)> = vec![
            ("consumer", vec![(0, 0), (1, 10), (2, 30), (3, 90)]),
            ("consumer", vec![(0, 0), (1, 20), (2, 40)]),
            ("consumer", vec![(0, 0), (1, 30)]),
            ("consumer", vec![(0, 0), (0, 5), (1, 40)]), // browses twice: first time counts
            ("business", vec![(0, 0), (2, 10)]),         // skips Cart: stops at Browse
            ("business", vec![(0, 50), (1, 10)]),        // Cart before Browse: stops at Browse
            ("business", vec![(1, 0)]),                  // never entered
            ("business", vec![(0, 0)]),
        ];
        for (segment, steps) in &paths {
            let c = new_customer(db, segment).await;
            for (stage, minutes) in steps {
                let channel = if *segment == "consumer" { Channel::Web } else { Channel::Chat };
                touch(db, c, j, stages[*stage], channel, t0 + Duration::minutes(*minutes)).await;
            }
        }
        let query = "query($id: ID!, $by: FunnelGroupBy) { journeyFunnel(journeyId: $id, \
            range: {from: \"2026-06-01T00:00:00Z\", to: \"2026-07-01T00:00:00Z\"}, groupBy: $by) { journey { name } \
            groups { segment channel entered steps { stageName reached dropOff conversionFromPrevious { value } \
            conversionFromStart { value } timeFromPrevious { value sampleSize low high } } } } }";
        let body = app.graphql(query, json!({ "id": j.to_string() }), Some(&admin)).await;
        assert!(body["errors"].is_null(), "{body}");
        let steps = &body["data"]["journeyFunnel"]["groups"][0]["steps"];
        assert_eq!(reached_per_stage(&body), [7, 4, 2, 1], "{body}");
        assert_eq!(steps[1]["dropOff"], 3);
        assert!(close(&steps[2]["conversionFromPrevious"]["value"], 50.0));
        assert!(close(&steps[3]["conversionFromStart"]["value"], 100.0 / 7.0));
        // Browse → Cart: 10, 20, 30, 40 minutes: nearest-rank median 20 minutes.
        assert!(close(&steps[1]["timeFromPrevious"]["value"], 1200.0), "{}", steps[1]);
        assert_eq!(steps[1]["timeFromPrevious"]["sampleSize"], 4);
        // Its 95% interval: ranks 2 ± 1.96·√(4·¼), i.e. the 1st to the 3rd value.
        assert!(close(&steps[1]["timeFromPrevious"]["low"], 600.0), "{}", steps[1]);
        assert!(close(&steps[1]["timeFromPrevious"]["high"], 1800.0), "{}", steps[1]);
        assert!(steps[0]["timeFromPrevious"]["value"].is_null());

        let by_segment = app.graphql(query, json!({ "id": j.to_string(), "by": "SEGMENT" }), Some(&admin)).await;
        let groups = by_segment["data"]["journeyFunnel"]["groups"].as_array().unwrap();
        let entered: Vec<(&str, i64)> =
            groups.iter().map(|g| (g["segment"].as_str().unwrap(), g["entered"].as_i64().unwrap())).collect();
        assert_eq!(entered, [("business", 3), ("consumer", 4)], "{by_segment}");
        let by_channel = app.graphql(query, json!({ "id": j.to_string(), "by": "CHANNEL" }), Some(&admin)).await;
        let groups = by_channel["data"]["journeyFunnel"]["groups"].as_array().unwrap();
        let entered: Vec<(&str, i64)> =
            groups.iter().map(|g| (g["channel"].as_str().unwrap(), g["entered"].as_i64().unwrap())).collect();
        assert_eq!(entered, [("CHAT", 3), ("WEB", 4)], "{by_channel}");

        // Filters pick runs: by the customer's segment, by the channel the run entered on.
        let filtered = "query($id: ID!, $filter: FunnelFilter!) { journeyFunnel(journeyId: $id, \
            range: {from: \"2026-06-01T00:00:00Z\", to: \"2026-07-01T00:00:00Z\"}, filter: $filter) { \
            groups { entered steps { reached } } } }";
        let consumers = app
            .graphql(filtered, json!({ "id": j.to_string(), "filter": { "segments": ["consumer"] } }), Some(&admin))
            .await;
        assert_eq!(reached_per_stage(&consumers), [4, 4, 2, 1], "{consumers}");
        let chat = app
            .graphql(filtered, json!({ "id": j.to_string(), "filter": { "channels": ["CHAT"] } }), Some(&admin))
            .await;
        assert_eq!(reached_per_stage(&chat), [3, 0, 0, 0], "{chat}");
        // A window that ends at 10:35 cuts off later steps: one business customer
        // browsed only at 10:50, so never entered; later stages are reached less often.
        let early = query.replace("2026-07-01T00:00:00Z", "2026-06-01T10:35:00Z");
        let early = app.graphql(&early, json!({ "id": j.to_string() }), Some(&admin)).await;
        let steps = &early["data"]["journeyFunnel"]["groups"][0]["steps"];
        let counts: Vec<i64> = steps.as_array().unwrap().iter().map(|s| s["reached"].as_i64().unwrap()).collect();
        assert_eq!(counts, [6, 3, 1, 0], "{early}");

        // Walked (every customer marked) or kept (refreshed): the same answers, medians
        // and groups included; the unsplit funnel, read from the rollup once kept, has
        // the same counts and its median within the bucket of the exact one.
        cxgraph::insights::runs::refresh(db, usize::MAX).await.unwrap();
        assert_eq!(count(db, "SELECT COUNT(*) AS n FROM journey_steps_dirty").await, 0);
        for (vars, walked) in [
            (json!({ "id": j.to_string(), "by": "SEGMENT" }), &by_segment),
            (json!({ "id": j.to_string(), "by": "CHANNEL" }), &by_channel),
        ] {
            assert_eq!(&app.graphql(query, vars, Some(&admin)).await, walked);
        }
        let rolled = app.graphql(query, json!({ "id": j.to_string() }), Some(&admin)).await;
        assert_rolled_like_exact(
            &rolled["data"]["journeyFunnel"]["groups"][0],
            &body["data"]["journeyFunnel"]["groups"][0],
        );
    })
    .await;
}

/// A funnel group read from the rollup against the same group sorted exactly: equal
/// counts and sample sizes; each median inside the exact one's bucket (buckets are
/// 2^(1/8) wide, so within 9.1 % or, under a second, within a second) and an interval
/// holding the exact one.
fn assert_rolled_like_exact(rolled: &Value, exact: &Value) {
    let (r, e) = (rolled["steps"].as_array().unwrap(), exact["steps"].as_array().unwrap());
    assert_eq!(r.len(), e.len(), "{rolled} vs {exact}");
    for (a, b) in r.iter().zip(e) {
        assert_eq!(a["reached"], b["reached"], "{a} vs {b}");
        let (a, b) = (&a["timeFromPrevious"], &b["timeFromPrevious"]);
        assert_eq!(a["sampleSize"], b["sampleSize"], "{a} vs {b}");
        let Some(x) = b["value"].as_f64() else {
            assert!(a["value"].is_null(), "{a} vs {b}");
            continue;
        };
        let v = a["value"].as_f64().unwrap_or_else(|| panic!("{a} vs {b}"));
        assert!((v - x).abs() <= 0.0906 * x + 1.0, "median {v} too far from the exact {x}");
        assert!(a["low"].as_f64().unwrap() <= b["low"].as_f64().unwrap() + 1e-6, "{a} vs {b}");
        assert!(a["high"].as_f64().unwrap() >= b["high"].as_f64().unwrap() - 1e-6, "{a} vs {b}");
    }
}

/// The funnel rollup's rows against the kept steps, grouped here: (journey, grain,
/// first UTC day of the entry day (grain 1) or Monday-to-Sunday week (grain 7), stage,
/// duration bucket) → steps.
async fn assert_rollup_matches_steps(db: &DatabaseConnection) {
    use sea_orm::ConnectionTrait;
    type Key = (Uuid, i64, i64, i64, i32);
    let query = |sql: &str| db.query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql));
    let mut expected: BTreeMap<Key, i64> = BTreeMap::new();
    for row in query("SELECT journey_id, entered_at, ordinal, seconds FROM journey_steps").await.unwrap() {
        let entered: DateTime<Utc> = row.try_get("", "entered_at").unwrap();
        let seconds: Option<f64> = row.try_get("", "seconds").unwrap();
        let journey: Uuid = row.try_get("", "journey_id").unwrap();
        let ordinal = i64::from(row.try_get::<i32>("", "ordinal").unwrap());
        let bucket = seconds.map_or(-1, cxgraph::insights::funnel::duration_bucket);
        let day = entered.date_naive();
        let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        let epoch_day = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() / 86_400;
        for (grain, start) in [(1, epoch_day(day)), (7, epoch_day(monday))] {
            *expected.entry((journey, grain, start, ordinal, bucket)).or_default() += 1;
        }
    }
    let mut kept = BTreeMap::new();
    let rows = "SELECT journey_id, grain, entry_day, ordinal, bucket, n FROM journey_step_rollups";
    for row in query(rows).await.unwrap() {
        let n: i64 = row.try_get("", "n").unwrap();
        assert!(n > 0, "no empty or negative rollup rows");
        let key = (
            row.try_get("", "journey_id").unwrap(),
            i64::from(row.try_get::<i32>("", "grain").unwrap()),
            row.try_get("", "entry_day").unwrap(),
            i64::from(row.try_get::<i32>("", "ordinal").unwrap()),
            row.try_get("", "bucket").unwrap(),
        );
        kept.insert(key, n);
    }
    assert!(!kept.is_empty());
    assert_eq!(kept, expected);
}

#[tokio::test]
async fn the_funnel_rollup_answers_the_unsplit_funnel_as_the_sorted_steps_do() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        // SQL and Rust put a duration in the same bucket, bounds included.
        for seconds in [0.0, 0.5, 1.0, 1.090_507_732_665_257_7, 59.99, 60.0, 3600.0, 259_200.0, 1e9, 1e12] {
            let sql =
                format!("SELECT CAST(bucket AS BIGINT) AS n FROM duration_buckets WHERE low <= {seconds:e} ORDER BY low DESC LIMIT 1");
            assert_eq!(
                count(db, &sql).await,
                i64::from(cxgraph::insights::funnel::duration_bucket(seconds)),
                "{seconds}"
            );
        }
        let (j, stages) = journey_with_stages(db, "Order", &["Browse", "Cart", "Checkout", "Delivery"]).await;
        let base = at("2026-06-01T00:00:00Z");
        let mut rng = Lcg(7);
        let mut customers = Vec::new();
        // 80 runs entering over ten days, durations from a second to three days.
        for _ in 0..80 {
            let c = new_customer(db, "consumer").await;
            let mut t = base + Duration::minutes(rng.next(10 * 1440) as i64);
            touch(db, c, j, stages[0], Channel::Web, t).await;
            for stage in &stages[1..] {
                if rng.next(5) == 0 {
                    break;
                }
                t += Duration::seconds(1 + rng.next(3 * 86_400) as i64);
                touch(db, c, j, *stage, Channel::Web, t).await;
            }
            customers.push(c);
        }
        cxgraph::insights::runs::refresh(db, usize::MAX).await.unwrap();
        assert_rollup_matches_steps(db).await;
        // Every run entered on the web, so the one channel group is the exact answer.
        let query = "query($id: ID!, $from: DateTime!, $to: DateTime!, $by: FunnelGroupBy) { \
            journeyFunnel(journeyId: $id, range: {from: $from, to: $to}, groupBy: $by) { groups { steps { \
            reached timeFromPrevious { value sampleSize low high } } } } }";
        let compare = async |from: &str, to: &str| {
            let vars = json!({ "id": j.to_string(), "from": from, "to": to });
            let rolled = app.graphql(query, vars.clone(), Some(&admin)).await;
            let mut by_channel = vars;
            by_channel["by"] = json!("CHANNEL");
            let exact = app.graphql(query, by_channel, Some(&admin)).await;
            assert!(rolled["errors"].is_null() && exact["errors"].is_null(), "{rolled} {exact}");
            let group = |v: &Value| v["data"]["journeyFunnel"]["groups"][0].clone();
            assert_rolled_like_exact(&group(&rolled), &group(&exact));
            group(&rolled)["steps"][0]["reached"].as_i64().unwrap()
        };
        // Whole days; partial days at both edges; a window ending while runs go on
        // (their later steps reached after it must not count).
        let windows = [
            ("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"),
            ("2026-05-27T18:00:00Z", "2026-06-24T06:00:00Z"),
            ("2026-06-02T07:30:00Z", "2026-06-08T13:15:00Z"),
            ("2026-06-01T00:00:00Z", "2026-06-05T00:00:00Z"),
        ];
        for (from, to) in windows {
            assert!(compare(from, to).await > 0);
        }
        // Customers marked by new touchpoints: their steps walked, the others' rolled.
        for c in &customers[..5] {
            touch(db, *c, j, stages[1], Channel::Web, base + Duration::days(3)).await;
        }
        assert!(count(db, "SELECT COUNT(*) AS n FROM journey_steps_dirty").await > 0);
        for (from, to) in windows {
            compare(from, to).await;
        }
        cxgraph::insights::runs::refresh(db, usize::MAX).await.unwrap();
        assert_rollup_matches_steps(db).await;
        for (from, to) in windows {
            compare(from, to).await;
        }
        // A journey re-walked whole (its stages changed) rebuilds its rollup.
        let mut last = journey_stage::Entity::find_by_id(stages[3]).one(db).await.unwrap().unwrap().into_active_model();
        last.position = sea_orm::Set(1000);
        last.update(db).await.unwrap();
        cxgraph::insights::runs::refresh(db, usize::MAX).await.unwrap();
        assert_rollup_matches_steps(db).await;
    })
    .await;
}

/// `reached` per stage of the ungrouped funnel of June 2026.
async fn june_funnel(app: &TestApp, journey: Uuid, token: &str) -> Vec<i64> {
    let query = "query($id: ID!) { journeyFunnel(journeyId: $id, \
        range: {from: \"2026-06-01T00:00:00Z\", to: \"2026-07-01T00:00:00Z\"}) { \
        groups { steps { reached timeFromPrevious { value sampleSize } } } } }";
    let body = app.graphql(query, json!({ "id": journey.to_string() }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    reached_per_stage(&body)
}

/// `reached` per stage of the first group of a funnel answer.
fn reached_per_stage(body: &Value) -> Vec<i64> {
    body["data"]["journeyFunnel"]["groups"][0]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| s["reached"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_funnel_counts_runs_and_answers_alike_from_kept_steps_marked_customers_and_changed_stages() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let (j, stages) = journey_with_stages(db, "Purchase", &["Browse", "Cart", "Checkout"]).await;
        let t0 = at("2026-06-01T10:00:00Z");
        let m = |minutes: i64| t0 + Duration::minutes(minutes);
        // Buys twice: two runs (Browse after Checkout begins the second), to Checkout and to Cart.
        let twice = new_customer(db, "consumer").await;
        for (stage, minutes) in [(0, 0), (1, 10), (2, 20), (0, 60), (1, 70)] {
            touch(db, twice, j, stages[stage], Channel::Web, m(minutes)).await;
        }
        // Browses twice in a row: one entry, Cart 15 minutes after it.
        let browser = new_customer(db, "consumer").await;
        for (stage, minutes) in [(0, 0), (0, 5), (1, 15)] {
            touch(db, browser, j, stages[stage], Channel::Web, m(minutes)).await;
        }
        // Cart before ever browsing: that touchpoint belongs to no run.
        let late = new_customer(db, "consumer").await;
        for (stage, minutes) in [(1, 0), (0, 10)] {
            touch(db, late, j, stages[stage], Channel::Web, m(minutes)).await;
        }
        // Everything is marked: the funnel walks the touchpoints.
        assert_eq!(june_funnel(app, j, &admin).await, [4, 3, 1]);

        // Kept: the refresher stores each run's steps and clears every mark.
        cxgraph::insights::runs::refresh(db, usize::MAX).await.unwrap();
        assert_eq!(count(db, "SELECT COUNT(*) AS n FROM journey_steps_dirty").await, 0);
        let kept = "SELECT COUNT(*) AS n FROM journey_steps WHERE seconds IS NOT NULL OR ordinal = 1";
        assert_eq!(count(db, kept).await, 3 + 2 + 2 + 1, "one row per stage each run reached");
        assert_eq!(june_funnel(app, j, &admin).await, [4, 3, 1]);

        // One customer marked: the others from the kept steps, theirs walked again.
        touch(db, late, j, stages[1], Channel::Web, m(20)).await;
        assert_eq!(june_funnel(app, j, &admin).await, [4, 4, 1]);

        // A stage added marks the whole journey: every run walked with the new stages.
        let now = Utc::now();
        let delivery = journey_stage::Model {
            id: Uuid::now_v7(),
            journey_id: j,
            name: "Delivery".into(),
            position: 30,
            created_at: now,
        }
        .into_active_model()
        .insert(db)
        .await
        .unwrap()
        .id;
        touch(db, twice, j, delivery, Channel::Phone, m(30)).await;
        assert_eq!(june_funnel(app, j, &admin).await, [4, 4, 1, 1]);
        cxgraph::insights::runs::refresh(db, usize::MAX).await.unwrap();
        assert_eq!(count(db, "SELECT COUNT(*) AS n FROM journey_steps_dirty").await, 0);
        assert_eq!(june_funnel(app, j, &admin).await, [4, 4, 1, 1], "kept again, the same answer");
    })
    .await;
}

#[tokio::test]
async fn a_funnel_of_one_stage_counts_entries_and_one_of_none_is_empty() {
    on_each_backend(async |app: &TestApp| {
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let (signup, stages) = journey_with_stages(db, "Signup", &["Registered"]).await;
        let (empty, _) = journey_with_stages(db, "Empty", &[]).await;
        for (i, channel) in [Channel::Web, Channel::Web, Channel::Sms].into_iter().enumerate() {
            let c = new_customer(db, "consumer").await;
            touch(db, c, signup, stages[0], channel, at("2026-06-01T10:00:00Z") + Duration::minutes(i as i64)).await;
        }
        let query = "query($id: ID!) { journeyFunnel(journeyId: $id, \
            range: {from: \"2026-06-01T00:00:00Z\", to: \"2026-07-01T00:00:00Z\"}, groupBy: CHANNEL) { \
            groups { channel entered steps { reached timeFromPrevious { value sampleSize } } } } }";
        let one = app.graphql(query, json!({ "id": signup.to_string() }), Some(&admin)).await;
        assert!(one["errors"].is_null(), "{one}");
        let groups = one["data"]["journeyFunnel"]["groups"].as_array().unwrap();
        let entered: Vec<(&str, i64)> =
            groups.iter().map(|g| (g["channel"].as_str().unwrap(), g["entered"].as_i64().unwrap())).collect();
        assert_eq!(entered, [("SMS", 1), ("WEB", 2)], "{one}");
        assert!(groups[1]["steps"][0]["timeFromPrevious"]["value"].is_null(), "{one}");
        let none = app.graphql(query, json!({ "id": empty.to_string() }), Some(&admin)).await;
        assert!(none["errors"].is_null(), "{none}");
        assert_eq!(none["data"]["journeyFunnel"]["groups"], json!([]), "{none}");
    })
    .await;
}

#[tokio::test]
async fn insights_and_exports_read_from_the_replica_when_one_is_set() {
    for backend in cxgraph_tests::backends() {
        // A stand-in replica: its own database, holding an answer the primary lacks.
        let replica = cxgraph_tests::TestDatabase::create(&backend).await;
        let replica_db = replica.connect().await;
        cxgraph::db::migrate(&replica_db).await.unwrap();
        let c = new_customer(&replica_db, "consumer").await;
        new_feedback(&replica_db, c, FeedbackKind::Nps, Some(10), Channel::Email, None, at("2026-03-02T00:00:00Z"))
            .await;
        let url = replica.url.clone();
        let app = TestApp::spawn_with(&backend, move |s| s.database_read_url = Some(url)).await;
        let admin = app.login_admin().await.access;
        let written = app
            .graphql(
                "mutation { submitFeedback(input: {kind: NPS, score: 0, channel: EMAIL, occurredAt: \"2026-03-03T00:00:00Z\", \
                 identities: [{kind: EMAIL, value: \"p@example.com\"}]}) { userErrors { code } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(written["data"]["submitFeedback"]["userErrors"], json!([]), "writes go to the primary: {written}");
        let body = app
            .graphql(
                CELLS,
                json!({ "range": { "from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z" } }),
                Some(&admin),
            )
            .await;
        let nps = &body["data"]["insights"]["cells"][0]["nps"];
        assert_eq!(
            (nps["promoters"].as_i64(), nps["detractors"].as_i64()),
            (Some(1), Some(0)),
            "read from the replica: {body}"
        );
        let export =
            app.client.get(app.url("/export/feedback?format=ndjson")).bearer_auth(&admin).send().await.unwrap();
        let rows: Vec<Value> = export.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["score"], 10);
        replica_db.close().await.ok();
        app.stop().await;
    }
}

/// Two answers agree: the same shape, equal strings, numbers equal to 1e-9 relative
/// (sums of scores added in another order may differ in the last bits).
fn assert_same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{at}: {x} vs {y}");
        }
        (Value::Array(xs), Value::Array(ys)) => {
            assert_eq!(xs.len(), ys.len(), "{at}: lengths");
            for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                assert_same(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(xs), Value::Object(ys)) => {
            assert_eq!(xs.keys().collect::<Vec<_>>(), ys.keys().collect::<Vec<_>>(), "{at}: fields");
            for (k, x) in xs {
                assert_same(x, &ys[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

async fn new_message(
    db: &DatabaseConnection,
    customer_id: Uuid,
    channel: Channel,
    inbound: bool,
    occurred_at: DateTime<Utc>,
) -> Uuid {
    interaction::Model {
        id: Uuid::now_v7(),
        customer_id,
        conversation_id: None,
        channel,
        direction: if inbound { Direction::Inbound } else { Direction::Outbound },
        visibility: Visibility::Private,
        author_kind: if inbound { AuthorKind::Customer } else { AuthorKind::Agent },
        author_user_id: None,
        inbox: None,
        body: None,
        sentiment_score: inbound.then_some(if occurred_at.timestamp() % 3 == 0 { -0.6 } else { 0.4 }),
        sentiment_label: inbound.then_some(if occurred_at.timestamp() % 3 == 0 {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Positive
        }),
        external_id: None,
        occurred_at,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap()
    .id
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get::<Option<i64>>("", "n").unwrap().unwrap_or(0)
}

/// Deltas the refresher has not folded yet, of both families.
async fn pending(db: &DatabaseConnection) -> i64 {
    count(db, "SELECT COUNT(*) AS n FROM feedback_rollup_deltas").await
        + count(db, "SELECT COUNT(*) AS n FROM interaction_rollup_deltas").await
}

/// Refreshes the rollups until no delta is pending (another refresher may hold the
/// PostgreSQL advisory lock for a moment).
async fn refresh_all(db: &DatabaseConnection) {
    for _ in 0..100 {
        cxgraph::insights::rollups::refresh(db, 100).await.unwrap();
        if pending(db).await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the rollups never folded every delta");
}

/// The rollups change how an answer is computed, never what it is. Each question is
/// asked as the rollups can answer it, and with a segment filter every customer
/// passes (which only the facts can answer); the two must agree with every change still
/// a pending delta, after a refresh folded them, with some changes pending again (a new
/// answer, a deleted one, a re-dated one), and after another refresh — over the spring
/// DST change, in zones off the hour, with ragged range edges.
#[tokio::test]
async fn rollups_answer_exactly_what_the_facts_answer() {
    for backend in cxgraph_tests::backends() {
        // The server's own refresher waits an hour after its first (empty) run, so
        // the test decides when hours are refreshed.
        let app = TestApp::spawn_with(&backend, |s| s.rollup_interval = 3600).await;
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let c = new_customer(db, "consumer").await;
        let mut rng = Lcg(11);
        let start = at("2026-03-10T00:00:00Z");
        let channels = [Channel::Email, Channel::Chat, Channel::Twitter];
        let mut stored = Vec::new();
        for i in 0..240 {
            let t = start + Duration::minutes(rng.next(40 * 24 * 60) as i64);
            let channel = channels[rng.next(3) as usize];
            let (kind, score) = match i % 3 {
                0 => (FeedbackKind::Nps, rng.next(11) as i16),
                1 => (FeedbackKind::Csat, 1 + rng.next(5) as i16),
                _ => (FeedbackKind::Ces, 1 + rng.next(7) as i16),
            };
            let sentiment = (i % 2 == 0).then(|| rng.next(200) as f64 / 100.0 - 1.0);
            stored.push(new_feedback(db, c, kind, Some(score), channel, sentiment, t).await);
            new_message(db, c, channel, i % 4 != 0, t + Duration::minutes(7)).await;
        }
        let questions = [
            json!({ "range": { "from": "2026-03-12T07:13:00Z", "to": "2026-04-15T19:41:00Z" }, "groupBy": ["CHANNEL"], "bucket": "DAY", "tz": "Europe/London" }),
            json!({ "range": { "from": "2026-03-01T00:00:00Z", "to": "2026-05-01T00:00:00Z" }, "bucket": "WEEK", "tz": "UTC" }),
            json!({ "range": { "from": "2026-03-11T10:59:59Z", "to": "2026-04-11T00:00:01Z" }, "groupBy": ["CHANNEL"] }),
            json!({ "range": { "from": "2026-03-01T00:00:00Z", "to": "2026-05-01T00:00:00Z" }, "bucket": "DAY", "tz": "Asia/Kolkata" }),
            json!({ "range": { "from": "2026-03-20T00:00:00Z", "to": "2026-03-30T00:00:00Z" }, "bucket": "HOUR", "tz": "America/New_York", "filter": { "channels": ["EMAIL"] } }),
        ];
        const FILTERED: &str = "query($range: InsightRange!, $groupBy: [InsightDimension!], $bucket: TimeBucket, $tz: String, $filter: InsightFilter!) { \
            insights(range: $range, groupBy: $groupBy, bucket: $bucket, timeZone: $tz, filter: $filter) { cells { \
              bucketStart channel feedbackCount volume \
              nps { promoters passives detractors score { value sampleSize marginOfError lowSample } } \
              csat { satisfiedPercent { value marginOfError } mean { value marginOfError } } ces { value marginOfError sampleSize } \
              sentiment { mean { value sampleSize } negativePercent { value } } } } }";
        let check = async |state: &str| {
            for (i, q) in questions.iter().enumerate() {
                let mut fast_vars = q.clone();
                fast_vars["filter"] = q.get("filter").cloned().unwrap_or(json!({}));
                let fast = app.graphql(FILTERED, fast_vars.clone(), Some(&admin)).await;
                let mut slow_vars = fast_vars;
                slow_vars["filter"]["segments"] = json!(["consumer"]);
                let slow = app.graphql(FILTERED, slow_vars, Some(&admin)).await;
                assert!(fast["errors"].is_null() && slow["errors"].is_null(), "{fast} {slow}");
                assert!(!fast["data"]["insights"]["cells"].as_array().unwrap().is_empty(), "{state} q{i}: {fast}");
                assert_same(&fast, &slow, &format!("[{}] {state}, question {i}", app.backend.name()));
            }
        };
        check("before any refresh").await;
        refresh_all(db).await;
        assert_eq!(
            count(db, "SELECT CAST(SUM(responses) AS BIGINT) AS n FROM feedback_rollups WHERE hours = 1").await,
            240,
            "hour rows hold every answer"
        );
        assert!(count(db, "SELECT COUNT(*) AS n FROM feedback_rollups WHERE hours = 24").await > 30, "and day rows");
        check("after a refresh").await;
        // An answer in an hour already rolled up, one deleted, one moved to another day.
        new_feedback(db, c, FeedbackKind::Nps, Some(0), Channel::Email, Some(-0.9), at("2026-03-15T12:30:00Z")).await;
        feedback::Entity::delete_by_id(stored[5]).exec(db).await.unwrap();
        let mut moved = feedback::Entity::find_by_id(stored[6]).one(db).await.unwrap().unwrap().into_active_model();
        moved.occurred_at = sea_orm::Set(at("2026-04-02T03:04:05Z"));
        moved.update(db).await.unwrap();
        assert!(pending(db).await >= 3, "the triggers wrote what changed");
        check("with deltas pending").await;
        refresh_all(db).await;
        check("after another refresh").await;
        app.stop().await;
    }
}
