//! The brand watch list on both backends: brands (topics with a side) are attributed
//! at ingest by their names and handles and by the inbox a message reached, re-tagged
//! when their handles change, compared side by side with margins, and watched by the
//! spike detector — a competitor's incident is an `opportunity`, not our crisis.

use chrono::{DateTime, Duration, Utc};
use cxgraph::alerts::spikes::{self, Params};
use cxgraph::insights::stats::Z95;
use cxgraph_tests::streams::{self, Mention};
use cxgraph_tests::{TestApp, backends};
use entity::enums::{AlertSeverity, Channel, Priority, Role};
use entity::{alert, conversation, outbox_event};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const SAVE: &str = "mutation($input: SaveTopicInput!) { saveTopic(input: $input) { \
    topic { id name brand handles keywords } userErrors { field code } } }";

async fn save(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app.graphql(SAVE, json!({ "input": input }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["saveTopic"].clone()
}

const INGEST: &str = "mutation($inputs: [RecordInteractionInput!]!) { ingestInteractions(inputs: $inputs) { \
    results { status interaction { id sentimentLabel topics { name } } userErrors { field code } } } }";

/// A tweet: a direct message when it reached our account, else a public post (what a
/// listening feed brings).
fn message(ext: &str, inbox: &str, body: &str) -> Value {
    let visibility = if inbox.starts_with('@') { "PRIVATE" } else { "PUBLIC_POST" };
    json!({ "channel": "TWITTER", "direction": "INBOUND", "inbox": inbox, "body": body, "externalId": ext,
        "visibility": visibility, "identities": [{ "kind": "TWITTER", "value": format!("@{ext}") }] })
}

const COMPARE: &str = "query($from: DateTime!, $to: DateTime!) { brandComparison(range: {from: $from, to: $to}, \
    minSampleSize: 1) { brands { name side mentions negativeMentions negativeShare { value sampleSize marginOfError } \
    shareOfVoice { value } } ourNegativeShare { value sampleSize marginOfError } \
    competitorsNegativeShare { value sampleSize marginOfError } negativeShareGap { value marginOfError } } }";

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-6)
}

/// The 95 % margin of a share of `hits` in `n`, in percent (normal approximation).
fn margin(hits: f64, n: f64) -> f64 {
    let p = hits / n;
    100.0 * Z95 * (p * (1.0 - p) / n).sqrt()
}

#[tokio::test]
async fn brands_are_attributed_at_ingest_and_compared_side_by_side_with_margins() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.insights_job_interval = 3600).await;
        let admin = app.login_admin().await.access;
        let acme = save(
            &app,
            &admin,
            json!({ "name": "Acme", "keywords": ["acme"], "brand": "OURS",
            "handles": ["@AcmeCare", "@acmecare"] }),
        )
        .await;
        assert_eq!(acme["topic"]["brand"], "OURS", "{acme}");
        assert_eq!(acme["topic"]["handles"], json!(["@AcmeCare"]), "one handle, whatever its case");
        let zed = save(
            &app,
            &admin,
            json!({ "name": "Zed Parcels", "keywords": ["zed parcels"], "brand": "COMPETITOR",
            "handles": ["@ZedParcels"] }),
        )
        .await;
        let zed_id = zed["topic"]["id"].as_str().unwrap().to_owned();
        // Handles belong to brands; a watch list entry has a bounded number of them.
        let plain = save(&app, &admin, json!({ "name": "Delivery", "keywords": ["parcel"], "handles": ["@x"] })).await;
        assert_eq!(plain["userErrors"], json!([{ "field": ["input", "handles"], "code": "NOT_A_BRAND" }]));
        // One account, one brand.
        let shared = save(
            &app,
            &admin,
            json!({ "name": "Other", "keywords": ["o"], "brand": "COMPETITOR", "handles": ["acmecare"] }),
        )
        .await;
        assert_eq!(shared["userErrors"], json!([{ "field": ["input", "handles"], "code": "TAKEN" }]), "{shared}");
        let many: Vec<String> = (0..21).map(|i| format!("@h{i}")).collect();
        let too_many =
            save(&app, &admin, json!({ "name": "Many", "keywords": ["m"], "brand": "OURS", "handles": many })).await;
        assert_eq!(too_many["userErrors"][0]["code"], "INVALID");

        let inputs = json!([
            // A direct message to our account is about us, though it names nobody.
            message("m1", "@AcmeCare", "Where is my order? It was due on Monday and it's now Friday."),
            message("m2", "@AcmeCare", "Thanks, the agent sorted it out quickly!"),
            message("m3", "listening", "@ZedParcels lost my parcel again, third time this month"),
            message("m4", "listening", "zed parcels delivered early, brilliant service"),
            message("m5", "listening", "Switched from Zed Parcels to ACME and the parcel arrived damaged again"),
            message("m6", "listening", "Can I change my delivery address?"),
            // Names a handle the watch list learns later.
            message("m7", "listening", "hello @zedhelp my parcel is lost, no reply for a week"),
        ]);
        let body = app.graphql(INGEST, json!({ "inputs": inputs }), Some(&admin)).await;
        let results = body["data"]["ingestInteractions"]["results"].as_array().unwrap().clone();
        let about = |i: usize| -> (String, Vec<String>) {
            let it = &results[i]["interaction"];
            let names = it["topics"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned());
            (it["sentimentLabel"].as_str().unwrap_or("").to_owned(), names.collect())
        };
        assert_eq!(about(0), ("NEGATIVE".to_owned(), vec!["Acme".to_owned()]), "{body}");
        assert_eq!(about(1), ("POSITIVE".to_owned(), vec!["Acme".to_owned()]));
        assert_eq!(about(2), ("NEGATIVE".to_owned(), vec!["Zed Parcels".to_owned()]));
        assert_eq!(about(3), ("POSITIVE".to_owned(), vec!["Zed Parcels".to_owned()]));
        assert_eq!(about(4), ("NEGATIVE".to_owned(), vec!["Acme".to_owned(), "Zed Parcels".to_owned()]));
        assert_eq!(about(5), ("NEUTRAL".to_owned(), vec![]));
        assert_eq!(about(6).1, Vec::<String>::new());

        // New handles re-tag the history, like new keywords.
        let updated = save(&app, &admin, json!({ "id": zed_id, "handles": ["@ZedParcels", "@zedhelp"] })).await;
        assert_eq!(updated["topic"]["brand"], "COMPETITOR", "a brand stays one: {updated}");
        cxgraph::feedback::topics::retag_pending(&app.db).await.unwrap();

        let now = Utc::now();
        let range =
            json!({ "from": (now - Duration::days(1)).to_rfc3339(), "to": (now + Duration::hours(1)).to_rfc3339() });
        let body = app.graphql(COMPARE, range, Some(&admin)).await;
        assert!(body["errors"].is_null(), "{body}");
        let c = &body["data"]["brandComparison"];
        // Acme: m1 (negative), m2, m5 (negative). Zed: m3 (negative), m4, m5, m7 (negative).
        let brands = c["brands"].as_array().unwrap();
        assert_eq!(brands[0]["name"], "Acme", "ours first: {c}");
        assert_eq!((brands[0]["mentions"].as_i64(), brands[0]["negativeMentions"].as_i64()), (Some(3), Some(2)));
        assert_eq!((brands[1]["mentions"].as_i64(), brands[1]["negativeMentions"].as_i64()), (Some(4), Some(3)));
        assert!(close(&brands[1]["negativeShare"]["value"], 75.0), "{c}");
        assert!(close(&brands[1]["negativeShare"]["marginOfError"], margin(3.0, 4.0)), "{c}");
        assert!(close(&brands[0]["shareOfVoice"]["value"], 100.0 * 3.0 / 7.0), "{c}");
        let ours = &c["ourNegativeShare"];
        assert_eq!(ours["sampleSize"], 3);
        assert!(close(&ours["value"], 200.0 / 3.0) && close(&ours["marginOfError"], margin(2.0, 3.0)), "{c}");
        let theirs = &c["competitorsNegativeShare"];
        assert!(close(&theirs["value"], 75.0) && close(&theirs["marginOfError"], margin(3.0, 4.0)), "{c}");
        let gap = &c["negativeShareGap"];
        assert!(close(&gap["value"], 200.0 / 3.0 - 75.0), "{c}");
        let both = (margin(2.0, 3.0).powi(2) + margin(3.0, 4.0).powi(2)).sqrt();
        assert!(close(&gap["marginOfError"], both), "the sides' margins combined: {c}");

        // An agent works conversations; brand insights are for managers and analysts.
        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        let denied =
            app.graphql(COMPARE, json!({ "from": now.to_rfc3339(), "to": now.to_rfc3339() }), Some(&agent)).await;
        assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN", "{denied}");
        app.stop().await;
    }
}

async fn brand(db: &DatabaseConnection, name: &str, side: &str) -> Uuid {
    cxgraph_tests::insert_topic(db, name, Some(side)).await
}

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// `n` tweets about `brand` in the half hour before `end`.
fn burst(brand: Uuid, end: DateTime<Utc>, n: i64) -> Vec<Mention> {
    (0..n)
        .map(|i| {
            let mut m = Mention::on(Channel::Twitter, end - Duration::minutes(30) + Duration::seconds(i * 85));
            m.topic = Some(brand);
            m
        })
        .collect()
}

#[tokio::test]
async fn a_competitors_incident_is_an_opportunity_not_our_crisis() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.insights_job_interval = 3600).await;
        let db = &app.db;
        let now = at("2026-06-10T12:00:00Z");
        let c = cxgraph_tests::insert_customer(db, None).await;
        let ours = brand(db, "Acme", "ours").await;
        let theirs = brand(db, "Zed Parcels", "competitor").await;
        let open =
            cxgraph_tests::open_conversation(c, Channel::Twitter, now).into_active_model().insert(db).await.unwrap();
        // Eight days of two negative tweets an hour, one in three about the competitor,
        // one in three about us.
        let mut history = Vec::new();
        for hour in 1..=8 * 24 {
            for k in 0..2 {
                let mut m = Mention::on(Channel::Twitter, now - Duration::hours(hour) - Duration::minutes(20 + 20 * k));
                m.topic = [Some(theirs), Some(ours), None][usize::try_from((hour + k) % 3).unwrap()];
                history.push(m);
            }
        }
        streams::write(db, c, &history).await;
        // The competitor's parcels go missing: 25 complaints about them in half an hour.
        streams::write(db, c, &burst(theirs, now, 25)).await;
        let params = Params { raise_priority: true, ..Params::standard() };
        let report = spikes::detect(db, now, &params).await.unwrap();
        let raised = alert::Entity::find().all(db).await.unwrap();
        assert_eq!(raised.len(), 1, "one alert, about them only: {report:?} {raised:?}");
        let opportunity = &raised[0];
        assert_eq!(opportunity.kind, spikes::OPPORTUNITY);
        assert_eq!(opportunity.scope.as_deref(), Some(format!("brand:{theirs}").as_str()));
        assert_eq!(opportunity.severity, AlertSeverity::Info);
        // Caught in the first window that held part of the burst; its peak is the burst.
        assert_eq!(opportunity.details["peak"], 25, "{}", opportunity.details);
        let paged = outbox_event::Entity::find().filter(outbox_event::Column::EventType.eq("alert.raised")).all(db);
        let paged = paged.await.unwrap();
        assert_eq!(paged.len(), 1, "the opportunity reaches whoever watches alerts");
        assert_eq!(paged[0].payload["kind"], spikes::OPPORTUNITY);
        let untouched = conversation::Entity::find_by_id(open.id).one(db).await.unwrap().unwrap();
        assert_eq!(untouched.priority, Priority::Normal, "their crisis lifts none of our conversations");

        // Our own customers writing to us and naming the competitor ("third lost
        // parcel, I'm switching to Zed") are our crisis, not their opportunity: 25
        // private e-mails, on a channel with a quiet history.
        let mut email_history = Vec::new();
        for hour in 1..=8 * 24 {
            email_history.push(Mention::on(Channel::Email, now - Duration::hours(hour) - Duration::minutes(10)));
        }
        streams::write(db, c, &email_history).await;
        let switching: Vec<Mention> = (0..25)
            .map(|i| Mention {
                topic: Some(theirs),
                private: true,
                ..Mention::on(Channel::Email, now + Duration::hours(1) + Duration::seconds(i * 70))
            })
            .collect();
        streams::write(db, c, &switching).await;
        spikes::detect(db, now + Duration::minutes(95), &params).await.unwrap();
        let on_email = alert::Entity::find().filter(alert::Column::Scope.eq("channel:email")).one(db).await.unwrap();
        assert_eq!(on_email.map(|a| a.kind), Some(spikes::KIND.to_owned()), "customers writing to us count for us");

        // Later the same day our own customers complain: that is a crisis.
        let later = now + Duration::hours(4);
        streams::write(db, c, &burst(ours, later, 25)).await;
        spikes::detect(db, later, &params).await.unwrap();
        let crises: Vec<String> = alert::Entity::find()
            .filter(alert::Column::Kind.eq(spikes::KIND))
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|a| a.scope)
            .collect();
        assert!(crises.contains(&format!("brand:{ours}")), "{crises:?}");
        assert!(crises.contains(&"channel:twitter".to_owned()), "our complaints count on the channel: {crises:?}");
        let lifted = conversation::Entity::find_by_id(open.id).one(db).await.unwrap().unwrap();
        assert_eq!(lifted.priority, Priority::High, "our crisis reaches the right people");
        app.stop().await;
    }
}

const EXPLAINED: &str = "{ alerts(first: 10) { edges { node { kind scope details \
    topTopics { name mentions } sampleMessages(first: 3) { id body occurredAt } \
    insightsQuery { query variables } } } } }";

/// The alerts as `token` sees them, by scope.
async fn explained(app: &TestApp, token: &str) -> (Vec<Value>, Value) {
    let body = app.graphql(EXPLAINED, json!({}), Some(token)).await;
    let nodes = body["data"]["alerts"]["edges"].as_array().map(|e| e.iter().map(|e| e["node"].clone()).collect());
    (nodes.unwrap_or_default(), body)
}

#[tokio::test]
async fn a_spike_alert_explains_itself_as_the_reader_may_see_it() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.insights_job_interval = 3600).await;
        let db = &app.db;
        let admin = app.login_admin().await.access;
        let now = Utc::now();
        let c = cxgraph_tests::insert_customer(db, None).await;
        let delivery = save(&app, &admin, json!({ "name": "Delivery", "keywords": ["parcel"] })).await;
        save(&app, &admin, json!({ "name": "Billing", "keywords": ["refund"] })).await;
        // Eight days of two negative tweets an hour, then 20 complaints in half an hour
        // through the real ingest: all about a parcel, a quarter also about a refund.
        // One in six of the old ones was about a parcel.
        let delivery_id: Uuid = delivery["topic"]["id"].as_str().unwrap().parse().unwrap();
        let mut history = Vec::new();
        for hour in 1..=8 * 24 {
            let about_parcel = hour % 3 == 0;
            history.push(Mention {
                topic: about_parcel.then_some(delivery_id),
                body: Some(if about_parcel { "lost parcel" } else { "still waiting" }.into()),
                ..Mention::on(Channel::Twitter, now - Duration::hours(hour) - Duration::minutes(25))
            });
            history.push(Mention {
                body: Some("still waiting".into()),
                ..Mention::on(Channel::Twitter, now - Duration::hours(hour) - Duration::minutes(45))
            });
        }
        streams::write(db, c, &history).await;
        let burst: Vec<Value> = (0..20)
            .map(|i| {
                let text = if i % 4 == 0 {
                    format!("Still no parcel and no refund, order {i}. Third time asking.")
                } else {
                    format!("My parcel never arrived, order {i}. Nobody answers.")
                };
                let mut m = message(&format!("burst{i}"), "@AcmeCare", &text);
                m["occurredAt"] = json!((now - Duration::minutes(28) + Duration::seconds(i * 80)).to_rfc3339());
                m
            })
            .collect();
        let body = app.graphql(INGEST, json!({ "inputs": burst }), Some(&admin)).await;
        assert!(body["errors"].is_null(), "{body}");
        // New topics are judged once their history is tagged.
        cxgraph::feedback::topics::retag_pending(db).await.unwrap();
        spikes::detect(db, now, &Params::standard()).await.unwrap();

        let (alerts, body) = explained(&app, &admin).await;
        let on_channel = alerts.iter().find(|a| a["scope"] == "channel:twitter").unwrap_or_else(|| panic!("{body}"));
        assert_eq!(on_channel["kind"], spikes::KIND);
        // The topics it is about, the scope's own left out for a topic alert.
        assert_eq!(
            on_channel["topTopics"],
            json!([{ "name": "Delivery", "mentions": 20 }, { "name": "Billing", "mentions": 5 }])
        );
        let on_topic = alerts.iter().find(|a| a["scope"] == format!("topic:{delivery_id}"));
        assert_eq!(
            on_topic.unwrap_or_else(|| panic!("{body}"))["topTopics"],
            json!([{ "name": "Billing", "mentions": 5 }])
        );
        // The latest mentions behind it, newest first, readable by an administrator.
        let sample = on_channel["sampleMessages"].as_array().unwrap();
        assert_eq!(sample.len(), 3);
        assert_eq!(sample[0]["body"], "My parcel never arrived, order 19. Nobody answers.");
        assert!(sample[0]["occurredAt"].as_str() > sample[1]["occurredAt"].as_str());
        // The linked insights query recounts the first spiking window exactly.
        let link = &on_channel["insightsQuery"];
        let recount = app.graphql(link["query"].as_str().unwrap(), link["variables"].clone(), Some(&admin)).await;
        let cell = &recount["data"]["insights"]["cells"][0]["sentiment"]["negativePercent"];
        let negatives = cell["value"].as_f64().unwrap() * cell["sampleSize"].as_f64().unwrap() / 100.0;
        assert_eq!(negatives.round() as i64, on_channel["details"]["count"].as_i64().unwrap(), "{recount}");

        // An analyst reads the same alert with the texts masked…
        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let (alerts, body) = explained(&app, &analyst).await;
        let on_channel = alerts.iter().find(|a| a["scope"] == "channel:twitter").unwrap_or_else(|| panic!("{body}"));
        let sample = on_channel["sampleMessages"].as_array().unwrap();
        assert_eq!(sample.len(), 3);
        assert!(sample.iter().all(|m| m["body"].is_null() && m["id"].is_string()), "{body}");
        // …and a partner token that reads insights and alerts, but not interactions,
        // sees the alert without its messages.
        let token = app.api_token(&admin, "{name: \"bi\", scopes: [INSIGHTS_READ]}").await;
        let (_, body) = explained(&app, &token).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
        assert_eq!(body["errors"][0]["path"][4], "sampleMessages", "{body}");
        // Out of bounds: a clear error, not a huge read.
        let huge = app
            .graphql("{ alerts { edges { node { topTopics(first: 1000) { name } } } } }", json!({}), Some(&admin))
            .await;
        assert_eq!(huge["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{huge}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_topic_made_a_brand_is_judged_on_its_whole_history_not_on_zeros() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.insights_job_interval = 3600).await;
        let db = &app.db;
        let now = at("2026-06-10T12:00:00Z");
        let c = cxgraph_tests::insert_customer(db, None).await;
        // Eight days of eight complaints an hour in direct messages to our account.
        let dm = |at: DateTime<Utc>, topic: Option<Uuid>| Mention {
            inbox: Some("@AcmeCare".into()),
            private: true,
            body: Some("where is my parcel".into()),
            topic,
            ..Mention::on(Channel::Twitter, at)
        };
        // Written an hour ago: later runs do not read it again on their own.
        let history: Vec<Mention> = (1..=8 * 24 * 8).map(|k| dm(now - Duration::minutes(7 * k + 60), None)).collect();
        streams::write_stamped(db, c, &history, Utc::now() - Duration::hours(1)).await;
        // One detector that keeps what it reads, as the server's does.
        let mut detector = spikes::Detector::new(Params::standard());
        detector.run(db, now - Duration::minutes(60)).await.unwrap();
        // A manager puts our account on the watch list: its history is re-tagged, and
        // the messages of the hour that follows are attributed at ingest as usual.
        let admin = app.login_admin().await.access;
        let saved = save(
            &app,
            &admin,
            json!({ "name": "Acme", "keywords": ["acme"], "brand": "OURS",
            "handles": ["@AcmeCare"] }),
        )
        .await;
        let acme = saved["topic"]["id"].as_str().unwrap().parse::<Uuid>().unwrap();
        // A busy hour, but an ordinary one for this account (it hears 8.6 an hour).
        let hour: Vec<Mention> = (0..12).map(|k| dm(now - Duration::minutes(44 - 3 * k), Some(acme))).collect();
        streams::write(db, c, &hour).await;
        detector.run(db, now - Duration::minutes(1)).await.unwrap();
        cxgraph::feedback::topics::retag_pending(db).await.unwrap();
        detector.run(db, now).await.unwrap();
        let scopes = || async {
            let all = alert::Entity::find().all(db).await.unwrap();
            all.into_iter().filter_map(|a| a.scope).collect::<Vec<_>>()
        };
        assert!(
            scopes().await.is_empty(),
            "an ordinary hour raises nothing, however new the brand: {:?}",
            scopes().await
        );

        // While its history is re-tagged again, a burst about it is held (its history
        // half tagged would read as quiet)…
        let edited = save(&app, &admin, json!({ "id": acme.to_string(), "keywords": ["acme", "acme care"] })).await;
        assert_eq!(edited["topic"]["keywords"], json!(["acme", "acme care"]), "{edited}");
        let later = now + Duration::hours(2);
        let burst: Vec<Mention> = (0..40).map(|k| dm(later - Duration::seconds(1800 - 45 * k), Some(acme))).collect();
        streams::write(db, c, &burst).await;
        detector.run(db, later).await.unwrap();
        let brand = format!("brand:{acme}");
        let held = scopes().await;
        assert!(held.contains(&"inbox:@AcmeCare".to_owned()) && !held.contains(&brand), "{held:?}");
        // …and raised once the re-tagging is done.
        cxgraph::feedback::topics::retag_pending(db).await.unwrap();
        detector.run(db, later + Duration::minutes(1)).await.unwrap();
        assert!(scopes().await.contains(&brand), "{:?}", scopes().await);
        app.stop().await;
    }
}
