//! Early warning on both backends, with synthetic episodes: a spike of negative
//! mentions on a channel and on a topic is caught within one window, raises one alert
//! per episode (not one per message or per run), optionally lifts the channel's open
//! conversations, and closes when volume returns; steady or noisy volume raises
//! nothing. Over HTTP: the detector's alert reaches an `alertRaised` subscriber, and a
//! person can resolve an alert.

use chrono::{DateTime, Duration, Utc};
use cxgraph::alerts::spikes::{self, Params};
use cxgraph_tests::{Subscription, TestApp, backends};
use entity::enums::{
    AlertStatus, AuthorKind, Channel, ConversationStatus, Direction, Priority, SentimentLabel, Visibility,
};
use entity::{alert, conversation, interaction, interaction_topic, topic};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::json;
use uuid::Uuid;

fn params(raise_priority: bool) -> Params {
    Params { window: Duration::minutes(60), baseline_windows: 24, threshold: 3.0, min_count: 5, raise_priority }
}

async fn customer(db: &DatabaseConnection) -> Uuid {
    cxgraph_tests::insert_customer(db, None).await
}

/// A negative inbound message; returns its id.
async fn negative(db: &DatabaseConnection, customer_id: Uuid, channel: Channel, at: DateTime<Utc>) -> Uuid {
    interaction::Model {
        id: Uuid::now_v7(),
        customer_id,
        conversation_id: None,
        channel,
        direction: Direction::Inbound,
        visibility: Visibility::PublicPost,
        author_kind: AuthorKind::Customer,
        author_user_id: None,
        inbox: None,
        body: None,
        sentiment_score: Some(-0.7),
        sentiment_label: Some(SentimentLabel::Negative),
        external_id: Some(Uuid::now_v7().to_string()),
        occurred_at: at,
        created_at: at,
        updated_at: at,
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap()
    .id
}

async fn spikes_in(db: &DatabaseConnection) -> Vec<alert::Model> {
    alert::Entity::find().filter(alert::Column::Kind.eq(spikes::KIND)).all(db).await.unwrap()
}

#[tokio::test]
async fn a_spike_is_one_episode_caught_within_a_window_and_closed_when_volume_returns() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let db = &app.db;
        let now: DateTime<Utc> = "2026-06-10T12:00:00Z".parse().unwrap();
        let c = customer(db).await;
        let delivery = topic::Model {
            id: Uuid::now_v7(),
            name: "Delivery".into(),
            keywords: json!(["parcel"]),
            created_at: now,
            updated_at: now,
            retag_requested_at: None,
            retagged_at: None,
        }
        .into_active_model()
        .insert(db)
        .await
        .unwrap()
        .id;
        let open = conversation::Model {
            id: Uuid::now_v7(),
            customer_id: c,
            channel: Channel::Twitter,
            inbox: None,
            status: ConversationStatus::Open,
            priority: Priority::Normal,
            subject: None,
            team_id: None,
            assignee_id: None,
            sla_policy_id: None,
            routing_rule_id: None,
            tags: json!([]),
            opened_at: now,
            last_message_at: now,
            first_response_due_at: None,
            resolution_due_at: None,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
            first_response_breached: false,
            resolution_breached: false,
            pending_since: None,
            next_due_at: None,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(db)
        .await
        .unwrap()
        .id;
        // Baseline: two negative tweets and three negative e-mails every hour for a day.
        for hour in 1..=24 {
            let t = now - Duration::hours(hour) - Duration::minutes(30);
            for _ in 0..2 {
                negative(db, c, Channel::Twitter, t).await;
            }
            for _ in 0..3 {
                negative(db, c, Channel::Email, t).await;
            }
        }
        // The last half hour: e-mail as usual, and 15 angry tweets about a parcel.
        for i in 0..3 {
            negative(db, c, Channel::Email, now - Duration::minutes(10 + i)).await;
        }
        for i in 0..15 {
            let id = negative(db, c, Channel::Twitter, now - Duration::minutes(30) + Duration::minutes(i)).await;
            interaction_topic::Model { interaction_id: id, topic_id: delivery }
                .into_active_model()
                .insert(db)
                .await
                .unwrap();
        }

        let report = spikes::detect(db, now, &params(true)).await.unwrap();
        assert_eq!((report.raised, report.resolved), (2, 0), "the channel and the topic, not e-mail: {report:?}");
        let raised = spikes_in(db).await;
        let on_channel = raised.iter().find(|a| a.channel == Some(Channel::Twitter) && a.topic_id.is_none()).unwrap();
        assert_eq!(on_channel.details["count"], 15);
        assert!(raised.iter().any(|a| a.topic_id == Some(delivery)));
        let lifted = conversation::Entity::find_by_id(open).one(db).await.unwrap().unwrap();
        assert_eq!(lifted.priority, Priority::High, "the spike reaches the right people");

        // The episode goes on: later runs raise nothing new.
        for minutes in [1, 5, 20] {
            let again = spikes::detect(db, now + Duration::minutes(minutes), &params(true)).await.unwrap();
            assert_eq!(again.raised, 0, "one alert per episode");
        }
        assert_eq!(spikes_in(db).await.len(), 2);

        // Volume returns to normal: both episodes close.
        for i in 0..2 {
            negative(db, c, Channel::Twitter, now + Duration::minutes(100 + i)).await;
        }
        let closed = spikes::detect(db, now + Duration::minutes(130), &params(true)).await.unwrap();
        assert_eq!(closed.resolved, 2, "{closed:?}");
        assert!(spikes_in(db).await.iter().all(|a| a.status == AlertStatus::Resolved && a.resolved_at.is_some()));
        app.stop().await;
    }
}

#[tokio::test]
async fn steady_or_noisy_volume_raises_nothing() {
    for backend in backends() {
        let app = TestApp::spawn(&backend).await;
        let db = &app.db;
        let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let c = customer(db).await;
        // Two days of hourly noise: 0 to 6 negative posts an hour (mean 3).
        let mut state: u64 = 42;
        for hour in 0..48 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let count = (state >> 33) % 7;
            for i in 0..count {
                negative(db, c, Channel::Facebook, start + Duration::hours(hour) + Duration::minutes(i as i64 * 7))
                    .await;
            }
        }
        // Run every hour of the second day, as the background job would.
        for hour in 24..=48 {
            let report = spikes::detect(db, start + Duration::hours(hour), &params(false)).await.unwrap();
            assert_eq!(report.raised, 0, "hour {hour}");
        }
        assert!(spikes_in(db).await.is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn subscribers_hear_of_a_spike_and_people_resolve_alerts() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.insights_job_interval = 1;
            s.spike_min_count = 3;
        })
        .await;
        let admin = app.login_admin().await.access;
        let mut sub = Subscription::start(
            &app,
            Some(&admin),
            "subscription { alertRaised(kinds: [\"negative_spike\"]) { id kind channel severity status title } }",
        )
        .await
        .expect("may subscribe");
        for i in 0..4 {
            let body = app
                .graphql(
                    "mutation($ext: String!) { recordInteraction(input: {channel: INSTAGRAM, direction: INBOUND, \
                     visibility: PUBLIC_POST, body: \"Terrible service, awful and useless, I am furious\", externalId: $ext, \
                     identities: [{kind: INSTAGRAM, value: \"angry_ann\"}]}) { interaction { sentimentLabel } } }",
                    json!({ "ext": format!("ig-{i}") }),
                    Some(&admin),
                )
                .await;
            assert_eq!(body["data"]["recordInteraction"]["interaction"]["sentimentLabel"], "NEGATIVE", "{body}");
        }
        let event = sub.next(15).await.expect("the detector raised the spike");
        let alert = &event["data"]["alertRaised"];
        assert_eq!(
            (alert["kind"].as_str(), alert["channel"].as_str()),
            (Some("negative_spike"), Some("INSTAGRAM")),
            "{event}"
        );
        let resolve = "mutation($id: ID!) { resolveAlert(input: {alertId: $id}) { alert { status resolvedAt } userErrors { code } } }";
        let done = app.graphql(resolve, json!({ "id": alert["id"] }), Some(&admin)).await;
        assert_eq!(done["data"]["resolveAlert"]["alert"]["status"], "RESOLVED", "{done}");
        let twice = app.graphql(resolve, json!({ "id": alert["id"] }), Some(&admin)).await;
        assert_eq!(twice["data"]["resolveAlert"]["userErrors"][0]["code"], "ALREADY_RESOLVED");
        app.stop().await;
    }
}
