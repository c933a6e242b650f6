//! The pre-execution pipeline under libFuzzer: an HTTP request built from the input
//! goes through the real application's router (body limit, content type, the
//! request's JSON, the document's admission, its text, its cost, validation) and on
//! into execution, on an empty SQLite database of its own, as an anonymous caller:
//! what it can find is what anyone on the network could make happen.
//!
//! Each input runs on a thread with a small stack ([`STACK`], a quarter of a worker
//! thread's): a recursion the input controls shows up here as a crash long before it
//! could overflow a worker. A panic, a stack overflow, a 500, internals in an answer or
//! an answer over [`MAX_ANSWER`] is a finding; libFuzzer's `-timeout` (10 s in
//! `run.sh`) bounds the time of one input.
//!
//! The first byte picks the request's shape, the rest is its content:
//! 0 a raw POST body as JSON, 1 the bytes as the document of a POST, 2 the bytes as the
//! `query` of a GET, 3 a raw NDJSON body for `/ingest/interactions` (with a partner's
//! token that may ingest: the lines are parsed, checked and stored).

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, header};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// The stack each input runs on.
const STACK: usize = 512 * 1024;
/// The largest answer an input may get (the body limit is 2 MiB; an answer much larger
/// than what was sent means work multiplied, as errors per argument once did).
const MAX_ANSWER: usize = 4 << 20;

struct Harness {
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
    /// A partner's token that may ingest, for the NDJSON shape.
    ingest_token: String,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // Kept for the whole run: the database lives in it.
        let dir = Box::leak(Box::new(tempfile_dir()));
        let url = format!("sqlite://{}/fuzz.db?mode=rwc", dir.display());
        let mut settings = cxgraph::config::Settings::for_database(url);
        settings.bind = "127.0.0.1:0".parse().expect("address");
        settings.metrics_bind = cxgraph::config::MetricsBind(None);
        settings.demo_data = cxgraph::config::DemoData::Never;
        settings.admin_password = Some("fuzz-admin-password-0123".into());
        // Every input must reach the pipeline, not a limiter.
        settings.rate_limit = 0;
        settings.anonymous_rate_limit = 0;
        settings.cost_budget = 0;
        settings.introspection = Some(true);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (app, _) = runtime.block_on(cxgraph::startup::Application::build(settings)).expect("the application starts");
        let token = cxgraph::auth::tokens::NewToken {
            name: "fuzz connector".into(),
            scopes: vec![cxgraph::auth::Scope::InteractionsWrite],
            expires_at: None,
            channels: None,
        };
        let system = cxgraph::auth::Principal::Anonymous(None);
        let actor = cxgraph::audit::Actor::new(&system, None);
        let created = runtime
            .block_on(cxgraph::auth::tokens::create(app.state().db(), actor, token))
            .map_err(|e| e.message())
            .expect("a token");
        Harness { router: cxgraph::http::router(app.state().clone()), runtime, ingest_token: created.secret }
    })
}

/// A fresh directory under the system's temporary one.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cxgraph-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn request(data: &[u8], ingest_token: &str) -> Option<Request<Body>> {
    let (&shape, rest) = data.split_first()?;
    let text = String::from_utf8_lossy(rest);
    let json = |body: Vec<u8>| {
        Request::post("/graphql").header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).ok()
    };
    match shape % 4 {
        0 => json(rest.to_vec()),
        1 => json(format!("{{\"query\": {}}}", serde_json_string(&text)).into_bytes()),
        2 => {
            let encoded: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
            Request::get(format!("/graphql?query={encoded}")).body(Body::empty()).ok()
        }
        _ => Request::post("/ingest/interactions")
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(header::AUTHORIZATION, format!("Bearer {ingest_token}"))
            .body(Body::from(rest.to_vec()))
            .ok(),
    }
}

/// `text` as a JSON string literal.
fn serde_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const LEAKS: [&str; 5] = ["panicked", "stack backtrace", "sqlx", "select ", "src/"];

fn check(data: &[u8]) {
    let h = harness();
    let Some(req) = request(data, &h.ingest_token) else { return };
    let (status, body) = h.runtime.block_on(async {
        let response = h.router.clone().oneshot(req).await.expect("the router answers");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER).await;
        (status, body.unwrap_or_else(|_| panic!("an answer over {MAX_ANSWER} bytes to {data:?}")))
    });
    let text = String::from_utf8_lossy(&body).to_lowercase();
    assert!(status != 500, "a 500 for {data:?}: {text}");
    for leak in LEAKS {
        assert!(!text.contains(leak), "`{leak}` in an answer to {data:?}: {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check(&data))
        .expect("a thread for the input")
        .join()
        .expect("the input's thread ended without a panic");
});
