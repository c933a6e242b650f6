//! The page users paste bearer tokens into, in a real browser (headless Chromium) with
//! every address but the server's cut off: GraphiQL must render from what the server
//! ships, under its Content-Security-Policy, with no violation reported. And the
//! security headers on every kind of answer. Needs Chromium (`apt-get install
//! chromium`, or `CXGRAPH_CHROMIUM=/path/to/chrome`); `.ci/run` installs it.

use std::path::PathBuf;
use std::time::Duration;

use cxgraph_tests::{Backend, TestApp, error_code};
use serde_json::{Value, json};

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CXGRAPH_CHROMIUM") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("this test needs Chromium: `apt-get install chromium`, or set CXGRAPH_CHROMIUM");
}

/// Runs `command` to its end, or kills it after `limit` (a hung browser fails the test
/// instead of hanging it).
fn run_for_at_most(mut command: std::process::Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("Chromium starts");
    let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for Chromium") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("Chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: out.join().expect("stdout reader").expect("stdout"),
        stderr: err.join().expect("stderr reader").expect("stderr"),
    }
}

#[tokio::test]
async fn graphiql_renders_offline_under_its_policy() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let profile = tempfile::tempdir().expect("profile directory");
    let mut browser = std::process::Command::new(chromium());
    browser
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Every address but loopback goes through a proxy that is not there: the
        // network is cut off for everything the page might fetch from elsewhere.
        .arg("--proxy-server=http://127.0.0.1:9")
        .arg("--virtual-time-budget=20000")
        .arg("--enable-logging=stderr")
        .arg("--v=0")
        .arg("--dump-dom")
        .arg(app.url("/"));
    let out = tokio::task::spawn_blocking(move || run_for_at_most(browser, Duration::from_secs(180)))
        .await
        .expect("browser task");
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(dom.contains("graphiql-container"), "GraphiQL did not render:\n{dom}\n--- browser log ---\n{log}");
    assert!(!dom.contains("Loading GraphiQL"), "the placeholder is still there:\n{dom}");
    let refused: Vec<&str> =
        log.lines().filter(|l| l.contains("Content Security Policy") || l.contains("Refused to")).collect();
    assert!(refused.is_empty(), "the page broke its own policy: {refused:#?}");
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let c = &app.client;
    let answers = [
        ("page", c.get(app.url("/"))),
        ("asset", c.get(app.url("/graphiql/init.js"))),
        ("GraphQL", c.post(app.url("/graphql")).json(&json!({ "query": "{ __typename }" }))),
        ("refused body", c.post(app.url("/graphql")).header("content-type", "text/plain").body("{}")),
        ("health", c.get(app.url("/healthz"))),
        ("unknown route", c.get(app.url("/nope"))),
        ("unknown asset", c.get(app.url("/graphiql/evil.js"))),
        ("export without a token", c.get(app.url("/export/customers"))),
    ];
    for (what, request) in answers {
        let resp = request.send().await.expect("answer");
        let h = resp.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(get("x-frame-options"), "DENY", "{what}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
        let policy = get("content-security-policy");
        assert!(policy.contains("frame-ancestors 'none'"), "{what}: {policy}");
        if what == "page" {
            let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap_or_default();
            assert_eq!(scripts.trim(), "script-src 'self'", "the page runs scripts from this server only: {policy}");
        } else {
            assert!(policy.starts_with("default-src 'none'"), "{what}: {policy}");
        }
    }
    let missing = c.get(app.url("/graphiql/evil.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_schema_is_published_only_with_introspection() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| s.introspection = Some(false)).await;
    let sdl = app.client.get(app.url("/schema.graphql")).send().await.unwrap();
    assert_eq!(sdl.status(), 404, "introspection off: no SDL either");
    let body: Value = sdl.json().await.unwrap();
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    let asked = app.graphql("{ __schema { queryType { name } } }", json!({}), None).await;
    assert!(asked["data"].is_null() || asked["data"]["__schema"].is_null(), "{asked}");
    app.stop().await;

    let open = TestApp::spawn_with(&Backend::Sqlite, |s| s.introspection = Some(true)).await;
    let sdl = open.client.get(open.url("/schema.graphql")).send().await.unwrap();
    assert_eq!(sdl.status(), 200);
    assert!(sdl.text().await.unwrap().contains("type Query"));
    open.stop().await;
}

#[tokio::test]
async fn cross_origin_reads_only_for_the_listed_origins() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = |resp: &reqwest::Response| {
        resp.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    // By default no origin may read: no CORS header on a preflight or an answer.
    let closed = TestApp::spawn(&Backend::Sqlite).await;
    assert_eq!(allowed(&preflight(&closed, "https://app.example.com").await.unwrap()), None);
    let answer = closed
        .client
        .post(closed.url("/graphql"))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&answer), None);
    closed.stop().await;

    let open = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.cors_origins = vec![reqwest::header::HeaderValue::from_static("https://app.example.com")]
    })
    .await;
    let ok = preflight(&open, "https://app.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(allowed(&ok).as_deref(), Some("https://app.example.com"));
    let methods = ok.headers().get("access-control-allow-methods").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    for other in ["https://evil.example.com", "https://app.example.com.evil.example", "http://app.example.com"] {
        assert_eq!(allowed(&preflight(&open, other).await.unwrap()), None, "{other}");
    }
    let answer = open
        .client
        .post(open.url("/graphql"))
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&answer).as_deref(), Some("https://app.example.com"));
    open.stop().await;
}
