//! OpenTelemetry export, end to end: a small OTLP/HTTP receiver inside the test
//! process, the server's telemetry pointed at it, and a GraphQL request carrying a
//! W3C `traceparent`: the receiver gets the request's span, named after the GraphQL
//! operation, in the caller's trace, with the service's resource attributes. A test
//! binary of its own, because telemetry installs the process-wide subscriber.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use cxgraph::config::LogFormat;
use cxgraph_tests::{TestApp, backends, test_settings};
use serde_json::{Value, json};

type Received = Arc<Mutex<Vec<Value>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        received.lock().unwrap().push(v);
    }
    "{}"
}

/// Every span received so far, with its resource's attributes.
fn spans(received: &Received) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for batch in received.lock().unwrap().iter() {
        for rs in batch["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    out.push((span.clone(), rs["resource"]["attributes"].clone()));
                }
            }
        }
    }
    out
}

fn attribute<'a>(attributes: &'a Value, key: &str) -> Option<&'a Value> {
    attributes.as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

#[tokio::test]
async fn graphql_requests_are_exported_as_spans_in_the_callers_trace() {
    let received: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/v1/traces", post(receive)).with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut settings = test_settings("sqlite::memory:");
    settings.otlp_endpoint = Some(collector);
    settings.otlp_protocol = "http/json".into();
    settings.otel_service_name = "cxgraph-under-test".into();
    let telemetry = cxgraph::telemetry::init("info,sqlx=warn", LogFormat::Json, &settings);
    let telemetry = Arc::new(telemetry);

    for backend in backends() {
        let server = TestApp::spawn(&backend).await;
        let admin = server.login_admin().await.access;
        // A client that writes the password inline: it must not end up in a span.
        let inline = format!(
            "mutation {{ login(input: {{email: \"{}\", password: \"{}\"}}) {{ session {{ accessToken }} }} }}",
            cxgraph_tests::ADMIN_EMAIL,
            cxgraph_tests::ADMIN_PASSWORD
        );
        assert!(server.graphql(&inline, json!({}), None).await["errors"].is_null());
        let trace_id = format!("{:032x}", uuid::Uuid::now_v7().as_u128());
        let body: Value = server
            .client
            .post(server.url("/graphql"))
            .bearer_auth(&admin)
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .json(&json!({ "query": "query OtlpProbe { me { email } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(body["errors"].is_null(), "{body}");
        let flush = Arc::clone(&telemetry);
        tokio::task::spawn_blocking(move || flush.flush()).await.unwrap();
        let mut found = None;
        for _ in 0..50 {
            found = spans(&received).into_iter().find(|(s, _)| s["name"] == "query OtlpProbe");
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (span, resource) =
            found.unwrap_or_else(|| panic!("no span named after the operation: {:?}", spans(&received)));
        assert_eq!(span["traceId"].as_str().map(str::to_lowercase), Some(trace_id), "continues the caller's trace");
        assert_eq!(span["parentSpanId"].as_str().map(str::to_lowercase).as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(attribute(&span["attributes"], "graphql.operation.name").unwrap()["stringValue"], "OtlpProbe");
        assert_eq!(attribute(&span["attributes"], "principal").unwrap()["stringValue"], "user");
        assert_eq!(attribute(&resource, "service.name").unwrap()["stringValue"], "cxgraph-under-test");
        assert!(attribute(&resource, "service.version").is_some());
        // No credentials in anything exported (the log-in above sent the password inline).
        let everything = serde_json::to_string(&*received.lock().unwrap()).unwrap();
        assert!(!everything.contains(&admin), "the token leaked into a span");
        assert!(!everything.contains(cxgraph_tests::ADMIN_PASSWORD), "the password leaked into a span");
        received.lock().unwrap().clear();
        server.stop().await;
    }
}
