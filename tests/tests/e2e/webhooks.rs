//! Signed webhooks against a real HTTP receiver: signature, retry after a failure,
//! the delivery log, redelivery, and an endpoint disabled (with an alert) after
//! sustained failure. Both backends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use cxgraph_tests::{TestApp, backends};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A receiver that records every request and answers from a script (then 200).
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    always: Option<u16>,
}

impl Receiver {
    async fn start(self) -> (String, Receiver) {
        let state = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Receiver>, headers: HeaderMap, body: String| async move {
                    r.hits.lock().unwrap().push((headers, body));
                    let code = r.always.or_else(|| r.script.lock().unwrap().pop_front()).unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app.with_state(state)).await.ok() });
        (format!("http://{addr}/hook"), self)
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

async fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..150 {
        if ready() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn verify(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, v1)) = header.split_once(",v1=") else { return false };
    let t = t.trim_start_matches("t=");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == v1
}

const CREATE: &str = "mutation($url: String!, $types: [String!]!) { createWebhookEndpoint(input: {url: $url, eventTypes: $types}) { \
    secret endpoint { id } userErrors { field code } } }";

#[tokio::test]
async fn webhooks_are_signed_retried_logged_redelivered_and_disabled_when_dead() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.webhook_retry_base_ms = 200;
            s.webhook_disable_after = 3;
        })
        .await;
        let admin = app.login_admin().await.access;
        let flaky = Receiver { script: Arc::new(Mutex::new(VecDeque::from([500]))), ..Default::default() };
        let (flaky_url, flaky) = flaky.start().await;
        let dead = Receiver { always: Some(503), ..Default::default() };
        let (dead_url, dead) = dead.start().await;

        let bad = app.graphql(CREATE, json!({ "url": "ftp://x", "types": ["no.such"] }), Some(&admin)).await;
        assert_eq!(bad["data"]["createWebhookEndpoint"]["userErrors"].as_array().unwrap().len(), 2, "{bad}");
        let created =
            app.graphql(CREATE, json!({ "url": flaky_url, "types": ["interaction.received"] }), Some(&admin)).await;
        let secret = created["data"]["createWebhookEndpoint"]["secret"].as_str().unwrap().to_owned();
        let endpoint_id = created["data"]["createWebhookEndpoint"]["endpoint"]["id"].as_str().unwrap().to_owned();
        app.graphql(CREATE, json!({ "url": dead_url, "types": [] }), Some(&admin)).await;

        let record = "mutation { recordInteraction(input: {channel: EMAIL, direction: INBOUND, body: \"hi\", externalId: \"wh-1\", \
                      identities: [{kind: EMAIL, value: \"wh@example.com\"}]}) { interaction { id } } }";
        let rec = app.graphql(record, json!({}), Some(&admin)).await;
        let interaction_id = rec["data"]["recordInteraction"]["interaction"]["id"].clone();

        wait_for("the retry after a 500", || flaky.count() >= 2).await;
        let hits = flaky.hits.lock().unwrap().clone();
        let (headers, body) = &hits[1];
        let signature = headers["cxgraph-signature"].to_str().unwrap();
        assert!(verify(&secret, signature, body), "[{}] signature verifies: {signature}", backend.name());
        assert!(!verify("another-secret", signature, body));
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["type"], "interaction.received");
        assert_eq!(event["aggregateId"], interaction_id);
        assert_eq!(hits[0].0["cxgraph-event-id"], hits[1].0["cxgraph-event-id"], "the same event, retried");

        let log = "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 10) { edges { node { id status attempts lastStatusCode eventType } } } }";
        let mut delivery = Value::Null;
        for _ in 0..50 {
            let page = app.graphql(log, json!({ "e": endpoint_id }), Some(&admin)).await;
            delivery = page["data"]["webhookDeliveries"]["edges"][0]["node"].clone();
            if delivery["status"] == "SUCCEEDED" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(delivery["status"], "SUCCEEDED", "{delivery}");
        assert_eq!(delivery["attempts"], 2);
        assert_eq!(delivery["lastStatusCode"], 200);

        let again = app
            .graphql(
                "mutation($id: ID!) { redeliverWebhook(id: $id) { status } }",
                json!({ "id": delivery["id"] }),
                Some(&admin),
            )
            .await;
        assert_eq!(again["data"]["redeliverWebhook"]["status"], "PENDING", "{again}");
        wait_for("the redelivery", || flaky.count() >= 3).await;

        // The dead endpoint gets the interaction and conversation events, fails, is disabled.
        wait_for("the dead endpoint to be disabled", || dead.count() >= 3).await;
        let mut disabled = false;
        for _ in 0..50 {
            let eps = app.graphql("{ webhookEndpoints { url active } }", json!({}), Some(&admin)).await;
            disabled = eps["data"]["webhookEndpoints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["url"] == dead_url.as_str() && e["active"] == false);
            if disabled {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(disabled, "[{}] the failing endpoint was disabled", backend.name());
        let alerts = app
            .graphql(
                "{ alerts(kind: \"webhook_disabled\", first: 5) { edges { node { kind } } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(alerts["data"]["alerts"]["edges"].as_array().unwrap().len(), 1, "{alerts}");
        app.stop().await;
    }
}

#[tokio::test]
async fn two_servers_on_one_database_deliver_each_event_once() {
    for backend in backends() {
        let first = TestApp::spawn(&backend).await;
        let second = first.spawn_replica().await;
        let admin = first.login_admin().await.access;
        let admin2 = second.login_admin().await.access;
        let (url, receiver) = Receiver::default().start().await;
        first.graphql(CREATE, json!({ "url": url, "types": ["interaction.received"] }), Some(&admin)).await;
        let total = 12;
        for i in 0..total {
            let (app, token) = if i % 2 == 0 { (&first, &admin) } else { (&second, &admin2) };
            let q = "mutation($e: String!, $v: String!) { recordInteraction(input: {channel: CHAT, direction: INBOUND, body: \"x\", \
                     externalId: $e, identities: [{kind: WEB, value: $v}]}) { interaction { id } } }";
            let r = app.graphql(q, json!({ "e": format!("rep-{i}"), "v": format!("dev-{i}") }), Some(token)).await;
            assert!(r["data"]["recordInteraction"]["interaction"]["id"].is_string(), "{r}");
        }
        wait_for("every event delivered", || receiver.count() >= total).await;
        // Give both workers time to (wrongly) send anything twice.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let hits = receiver.hits.lock().unwrap().clone();
        let mut ids: Vec<String> =
            hits.iter().map(|(h, _)| h["cxgraph-event-id"].to_str().unwrap().to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), total, "[{}] every event", backend.name());
        assert_eq!(hits.len(), total, "[{}] and none twice", backend.name());
        second.stop().await;
        first.stop().await;
    }
}
