//! The database goes away under a running API (a PostgreSQL server this test owns,
//! killed with `-m immediate`): requests fail fast with `UNAVAILABLE` instead of
//! hanging, `/readyz` turns red, and both recover by themselves once it is back.

use std::time::{Duration, Instant};

use cxgraph_tests::{Backend, OwnedPostgres, TestApp, error_code};
use serde_json::json;

const QUERY: &str = "{ customers(first: 1) { edges { cursor } } }";

#[tokio::test]
async fn requests_fail_fast_while_the_database_is_down_and_recover_after() {
    let pg = OwnedPostgres::start();
    let app = TestApp::spawn_with(&Backend::Postgres(pg.url()), |s| s.db_acquire_timeout = 1).await;
    let admin = app.login_admin().await.access;
    let ready = |app: &TestApp| {
        let url = app.url("/readyz");
        let client = app.client.clone();
        async move { client.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert!(app.graphql(QUERY, json!({}), Some(&admin)).await["errors"].is_null());
    assert_eq!(ready(&app).await, 200);

    pg.crash();
    let started = Instant::now();
    let down = app.graphql(QUERY, json!({}), Some(&admin)).await;
    let waited = started.elapsed();
    assert_eq!(error_code(&down), Some("UNAVAILABLE"), "{down}");
    assert!(waited < Duration::from_secs(5), "failed fast, not after {waited:?}");
    assert!(!down.to_string().to_lowercase().contains("connection refused"), "no driver text: {down}");
    assert_eq!(ready(&app).await, 503);

    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = app.graphql(QUERY, json!({}), Some(&admin)).await;
        if body["errors"].is_null() && ready(&app).await == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}
