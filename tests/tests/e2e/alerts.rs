//! Early warning on both backends, with synthetic streams (`cxgraph_tests::streams`):
//! a spike of negative mentions on a channel, a topic and an inbox is caught within
//! one window, raises one alert per episode (not one per message or per run),
//! optionally lifts the channel's open conversations, and closes when volume returns;
//! a daily rhythm raises nothing while a burst on top of it does; history loaded later
//! raises its episodes once, marked as backfill and paging nobody, while late but
//! recent mentions still page; two detectors at once agree. Over HTTP: the detector's
//! alert reaches an `alertRaised` subscriber, and a person can resolve an alert.

use chrono::{DateTime, Duration, Utc};
use cxgraph::alerts::spikes::{self, Params};
use cxgraph_tests::streams::{self, Mention, Rhythm, Streams};
use cxgraph_tests::{Subscription, TestApp, backends};
use entity::enums::{AlertStatus, Channel, Priority};
use entity::{alert, conversation, outbox_event};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::json;
use uuid::Uuid;

fn params(raise_priority: bool) -> Params {
    Params { raise_priority, ..Params::standard() }
}

/// A test server whose own detector stays out of the way (it runs once at start, on
/// an empty database); the test runs the detector itself at the times it chooses.
async fn quiet_app(backend: &cxgraph_tests::Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| s.insights_job_interval = 3600).await
}

async fn spikes_in(db: &DatabaseConnection) -> Vec<alert::Model> {
    alert::Entity::find().filter(alert::Column::Kind.eq(spikes::KIND)).all(db).await.unwrap()
}

async fn pages(db: &DatabaseConnection) -> usize {
    outbox_event::Entity::find().filter(outbox_event::Column::EventType.eq("alert.raised")).all(db).await.unwrap().len()
}

async fn new_topic(db: &DatabaseConnection, name: &str) -> Uuid {
    cxgraph_tests::insert_topic(db, name, None).await
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// Steady hourly history: `per_hour` mentions at half past each hour for `days`.
fn steady(channel: Channel, now: DateTime<Utc>, days: i64, per_hour: usize) -> Vec<Mention> {
    let mut out = Vec::new();
    for hour in 1..=days * 24 {
        for _ in 0..per_hour {
            out.push(Mention::on(channel, now - Duration::hours(hour) - Duration::minutes(30)));
        }
    }
    out
}

#[tokio::test]
async fn a_spike_is_one_episode_caught_within_a_window_and_closed_when_volume_returns() {
    for backend in backends() {
        let app = quiet_app(&backend).await;
        let db = &app.db;
        let now = at("2026-06-10T12:00:00Z");
        let c = cxgraph_tests::insert_customer(db, None).await;
        let delivery = new_topic(db, "Delivery").await;
        let open = open_conversation(db, c, now).await;
        // Eight days of history: two negative tweets and three negative e-mails an
        // hour, one tweet in six about a parcel, and a trickle into our support inbox.
        let mut history = steady(Channel::Twitter, now, 8, 2);
        for (i, m) in history.iter_mut().enumerate() {
            if i % 12 == 0 {
                m.topic = Some(delivery);
            }
            if i % 24 == 1 {
                m.inbox = Some("@acme_help".into());
            }
        }
        history.extend(steady(Channel::Email, now, 8, 3));
        streams::write(db, c, &history).await;
        // The last half hour: e-mail as usual, and 15 angry tweets about a parcel.
        let mut last = Vec::new();
        for i in 0..3 {
            last.push(Mention::on(Channel::Email, now - Duration::minutes(10 + i)));
        }
        for i in 0..15 {
            let mut m = Mention::on(Channel::Twitter, now - Duration::minutes(30) + Duration::minutes(i));
            m.topic = Some(delivery);
            m.inbox = Some("@acme_help".into());
            last.push(m);
        }
        streams::write(db, c, &last).await;

        let report = spikes::detect(db, now, &params(true)).await.unwrap();
        assert_eq!(
            (report.raised, report.resolved),
            (3, 0),
            "the channel, the topic, the inbox; not e-mail: {report:?}"
        );
        let raised = spikes_in(db).await;
        let scopes: Vec<_> = raised.iter().filter_map(|a| a.scope.clone()).collect();
        for scope in ["channel:twitter".to_owned(), format!("topic:{delivery}"), "inbox:@acme_help".to_owned()] {
            assert!(scopes.contains(&scope), "{scope} in {scopes:?}");
        }
        let on_channel = raised.iter().find(|a| a.scope.as_deref() == Some("channel:twitter")).unwrap();
        assert_eq!(on_channel.details["count"], 15);
        assert!(on_channel.details["expected"].as_f64().unwrap() < 3.0, "{}", on_channel.details);
        assert!(on_channel.details["alarmAt"].as_u64().unwrap() <= 15, "{}", on_channel.details);
        // The episode began in the window that first held the burst, and was seen
        // within one window of it.
        let started = on_channel.window_start.unwrap();
        assert!(started <= now - Duration::minutes(30) && started > now - Duration::minutes(90), "{started}");
        assert!(on_channel.details["lagSeconds"].as_i64().unwrap() <= 15 * 60, "{}", on_channel.details);
        assert!(!on_channel.backfill);
        assert_eq!(pages(db).await, 3, "a live spike pages");
        let lifted = conversation::Entity::find_by_id(open).one(db).await.unwrap().unwrap();
        assert_eq!(lifted.priority, Priority::High, "the spike reaches the right people");

        // The episode goes on: later runs raise nothing new.
        for minutes in [1, 5, 20] {
            let again = spikes::detect(db, now + Duration::minutes(minutes), &params(true)).await.unwrap();
            assert_eq!(again.raised, 0, "one alert per episode");
        }
        assert_eq!(spikes_in(db).await.len(), 3);

        // Volume returns to normal: every episode closes.
        let calm: Vec<_> = (0..2).map(|i| Mention::on(Channel::Twitter, now + Duration::minutes(100 + i))).collect();
        streams::write(db, c, &calm).await;
        let closed = spikes::detect(db, now + Duration::minutes(130), &params(true)).await.unwrap();
        assert_eq!(closed.resolved, 3, "{closed:?}");
        assert!(spikes_in(db).await.iter().all(|a| a.status == AlertStatus::Resolved && a.resolved_at.is_some()));
        app.stop().await;
    }
}

async fn open_conversation(db: &DatabaseConnection, customer_id: Uuid, now: DateTime<Utc>) -> Uuid {
    cxgraph_tests::open_conversation(customer_id, Channel::Twitter, now)
        .into_active_model()
        .insert(db)
        .await
        .unwrap()
        .id
}

/// An e-mail channel's rhythm: about 2 negatives an hour by day, 4 times that in the
/// evening, quieter at weekends, in clumps.
const EVENINGS: Rhythm = Rhythm { per_hour: 2.0, evening: 4.0, weekend: 0.7, clumping: 0.2 };

#[tokio::test]
async fn a_daily_rhythm_is_not_a_crisis_and_a_burst_on_top_of_it_is() {
    for backend in backends() {
        let app = quiet_app(&backend).await;
        let db = &app.db;
        let c = cxgraph_tests::insert_customer(db, None).await;
        let start = at("2026-05-01T00:00:00Z");
        let now = start + Duration::days(21);
        let mut streams = Streams::new(7);
        let quiet = streams.quiet(&EVENINGS, start, now, |_| 1.0);
        let history: Vec<_> = quiet.iter().map(|t| Mention::on(Channel::Email, *t)).collect();
        streams::write(db, c, &history).await;
        // Three weeks of evenings (the old flat baseline raised 18 alerts on such a
        // series in two weeks), judged in one run and then hour by hour.
        let first = spikes::detect(db, now - Duration::hours(6), &params(false)).await.unwrap();
        assert_eq!(first.raised, 0, "{first:?}");
        assert!(first.judged > 100, "the evenings were judged: {first:?}");
        for hour in 0..6 {
            let report = spikes::detect(db, now - Duration::hours(5 - hour), &params(false)).await.unwrap();
            assert_eq!(report.raised, 0, "hour {hour}: {report:?}");
        }
        // The next afternoon, 25 extra complaints in 40 minutes are a crisis.
        let burst_at = now + Duration::hours(15);
        let tonight = streams.quiet(&EVENINGS, now, burst_at + Duration::minutes(40), |_| 1.0);
        let mut more: Vec<_> = tonight.iter().map(|t| Mention::on(Channel::Email, *t)).collect();
        more.extend(streams.burst(burst_at, 25, 40).into_iter().map(|t| Mention::on(Channel::Email, t)));
        streams::write(db, c, &more).await;
        let report = spikes::detect(db, burst_at + Duration::minutes(40), &params(false)).await.unwrap();
        assert_eq!(report.raised, 1, "{report:?}");
        let alert = &spikes_in(db).await[0];
        assert_eq!(alert.scope.as_deref(), Some("channel:email"));
        assert!(alert.window_end.unwrap() > burst_at, "{alert:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn history_loaded_later_raises_its_episodes_once_without_paging_and_late_recent_mentions_page() {
    for backend in backends() {
        let app = quiet_app(&backend).await;
        let db = &app.db;
        let c = cxgraph_tests::insert_customer(db, None).await;
        let start = at("2026-03-02T00:00:00Z");
        let now = start + Duration::days(15);
        // Two weeks of e-mail with two obvious bursts, loaded at once with their
        // real times: 60 negatives in 45 minutes, and 25 in 30.
        let mut streams = Streams::new(11);
        let first_burst = start + Duration::days(9) + Duration::hours(14);
        let second_burst = start + Duration::days(12) + Duration::hours(10);
        let mut times = streams.quiet(&EVENINGS, start, now - Duration::hours(3), |_| 1.0);
        times.extend(streams.burst(first_burst, 60, 45));
        times.extend(streams.burst(second_burst, 25, 30));
        let series: Vec<_> = times.iter().map(|t| Mention::on(Channel::Email, *t)).collect();
        streams::write(db, c, &series).await;

        let report = spikes::detect(db, now, &params(true)).await.unwrap();
        assert_eq!((report.raised, report.backfilled), (2, 2), "{report:?}");
        let mut found = spikes_in(db).await;
        found.sort_by_key(|a| a.window_start);
        for (alert, burst) in found.iter().zip([first_burst, second_burst]) {
            let (from, to) = (alert.window_start.unwrap(), alert.window_end.unwrap());
            assert!(from <= burst + Duration::minutes(15) && to > burst, "{from}–{to} holds {burst}");
            assert!(alert.backfill && alert.status == AlertStatus::Resolved, "{alert:?}");
            assert!(alert.details["lagSeconds"].as_i64().unwrap() > 2 * 86_400, "{}", alert.details);
        }
        assert_eq!(pages(db).await, 0, "history pages nobody");

        // Run again, and load a little more of the first burst late: still two.
        let again = spikes::detect(db, now + Duration::minutes(1), &params(true)).await.unwrap();
        assert_eq!(again.raised, 0);
        let late: Vec<_> =
            streams.burst(first_burst, 5, 30).into_iter().map(|t| Mention::on(Channel::Email, t)).collect();
        streams::write(db, c, &late).await;
        let more = spikes::detect(db, now + Duration::minutes(2), &params(true)).await.unwrap();
        assert_eq!(more.raised, 0, "{more:?}");
        assert_eq!(spikes_in(db).await.len(), 2);

        // A connector catching up: a burst from forty minutes ago arrives now. It is
        // recent, so it pages.
        let recent = now + Duration::minutes(3) - Duration::minutes(40);
        let caught_up: Vec<_> =
            streams.burst(recent, 30, 20).into_iter().map(|t| Mention::on(Channel::Email, t)).collect();
        streams::write(db, c, &caught_up).await;
        let live = spikes::detect(db, now + Duration::minutes(3), &params(true)).await.unwrap();
        assert_eq!((live.raised, live.backfilled), (1, 0), "{live:?}");
        assert_eq!(pages(db).await, 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn two_detectors_at_once_raise_one_alert_per_episode() {
    for backend in backends() {
        let app = quiet_app(&backend).await;
        let db = &app.db;
        let c = cxgraph_tests::insert_customer(db, None).await;
        let now = at("2026-06-10T12:00:00Z");
        let mut mentions = steady(Channel::Facebook, now, 8, 1);
        mentions.extend((0..20).map(|i| Mention::on(Channel::Facebook, now - Duration::minutes(i))));
        streams::write(db, c, &mentions).await;
        let other = app.database.connect().await;
        let p = params(false);
        let (a, b) = tokio::join!(spikes::detect(db, now, &p), spikes::detect(&other, now, &p));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.raised + b.raised, 1, "{a:?} {b:?}");
        assert_eq!(spikes_in(db).await.len(), 1);
        assert_eq!(pages(db).await, 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn subscribers_hear_of_a_spike_and_people_resolve_alerts() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.insights_job_interval = 1;
            s.spike_min_count = 3;
            s.spike_significance = 0.05;
        })
        .await;
        // Instagram has been heard of for a fortnight (a scope needs a week of
        // history before it can alert).
        let c = cxgraph_tests::insert_customer(&app.db, None).await;
        streams::write(&app.db, c, &[Mention::on(Channel::Instagram, Utc::now() - Duration::days(14))]).await;
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

#[tokio::test]
async fn a_long_lived_detector_sees_older_history_imported_later_and_an_incident_still_going_when_it_arrives() {
    for backend in backends() {
        let app = quiet_app(&backend).await;
        let db = &app.db;
        let c = cxgraph_tests::insert_customer(db, None).await;
        let now = at("2026-06-10T12:00:00Z");
        let mut detector = spikes::Detector::new(params(false));
        // Forty days of steady tweets: the detector learns when Twitter was first heard of.
        streams::write(db, c, &steady(Channel::Twitter, now, 40, 2)).await;
        assert_eq!(detector.run(db, now).await.unwrap().raised, 0);

        // Then older history is imported, with a burst 55 days ago: judged on the history
        // before it, though the detector had learnt a later first day.
        let older: Vec<_> = steady(Channel::Twitter, now - Duration::days(40), 35, 2);
        let burst_at = now - Duration::days(55) + Duration::hours(3);
        let mut import = older;
        import.extend((0..30).map(|i| Mention::on(Channel::Twitter, burst_at + Duration::minutes(i))));
        streams::write(db, c, &import).await;
        let report = detector.run(db, now + Duration::minutes(1)).await.unwrap();
        assert_eq!((report.raised, report.backfilled), (1, 1), "{report:?}");
        assert_eq!(pages(db).await, 0);

        // A connector down for three hours delivers an incident that began then and is
        // still going: found late, but live, so it pages.
        let began = now - Duration::hours(3);
        let late: Vec<_> = (0..36).map(|i| Mention::on(Channel::Twitter, began + Duration::minutes(i * 5))).collect();
        streams::write(db, c, &late).await;
        let report = detector.run(db, now + Duration::minutes(2)).await.unwrap();
        assert_eq!(report.raised, 1, "{report:?}");
        let live =
            spikes_in(db).await.into_iter().find(|a| a.window_start.unwrap() >= began - Duration::hours(1)).unwrap();
        assert!(!live.backfill, "{live:?}");
        assert_eq!(pages(db).await, 1, "the incident still going pages once");

        // The same detector, its counts kept between runs, sees the next burst.
        let next = now + Duration::hours(6);
        let fresh: Vec<_> = (0..25).map(|i| Mention::on(Channel::Twitter, next + Duration::minutes(i))).collect();
        streams::write(db, c, &fresh).await;
        let report = detector.run(db, next + Duration::minutes(30)).await.unwrap();
        assert_eq!(report.raised, 1, "{report:?}");
        app.stop().await;
    }
}
