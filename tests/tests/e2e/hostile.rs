//! Hostile input: random bytes and malformed documents at every entry point, SQL
//! meta-characters and very long strings in filters, fragment cycles and directive
//! floods. Every answer is a clean 4xx or a coded GraphQL error: no 5xx, no panic, no
//! SQL or internal text. Generated from a fixed seed, so a failure reproduces.

use cxgraph_tests::{TestApp, error_code, on_each_backend};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const LEAKS: &[&str] = &["sqlx", "select ", "panicked", "sqlite", "postgres", "stack backtrace", "src/"];

fn assert_clean(status: u16, body: &str, what: &str) {
    assert!(status < 500, "{what}: status {status}: {body}");
    let lower = body.to_lowercase();
    for leak in LEAKS {
        assert!(!lower.contains(leak), "{what}: response leaks `{leak}`: {body}");
    }
}

fn random_body(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = rng.gen_range(0..2048);
    match rng.gen_range(0..5) {
        0 => (0..len).map(|_| rng.r#gen::<u8>()).collect(),
        1 => format!("{{\"query\": \"{}\"}}", "{".repeat(len)).into_bytes(),
        2 => {
            let mut v = b"{\"query\": \"{ me { email } }\", \"variables\": ".to_vec();
            v.extend((0..len).map(|_| b'['));
            v
        }
        3 => {
            let mut v = b"{\"query\": \"\x00\xff\xfe".to_vec();
            v.extend((0..len).map(|_| rng.gen_range(0x80u8..=0xff)));
            v
        }
        _ => json!({ "query": "{ customers(first: 5) { edges { cursor } } }", "variables": "\u{0}" })
            .to_string()
            .into_bytes(),
    }
}

#[tokio::test]
async fn random_bytes_never_get_a_5xx() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for i in 0..150 {
            let body = random_body(&mut rng);
            for (path, content_type) in [
                ("/graphql", "application/json"),
                ("/ingest/interactions", "application/x-ndjson"),
                ("/graphql", "text/plain"),
            ] {
                let resp = app
                    .client
                    .post(app.url(path))
                    .bearer_auth(&admin)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                assert_clean(status, &text, &format!("[{}] case {i} {path} {content_type}", app.backend.name()));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn sql_meta_characters_and_long_strings_are_just_data() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let long = "x".repeat(100_000);
        let nasty = ["'; DROP TABLE customers; --", "\" OR 1=1 --", "%_\\", "\u{0}", "😡😡😡", long.as_str()];
        for value in nasty {
            let q = "query($s: String) { customers(first: 5, filter: {search: $s, segments: [$s]}) { edges { cursor } } }";
            let body = app.graphql(q, json!({ "s": value }), Some(&admin)).await;
            let text = body.to_string();
            assert_clean(200, &text, "search");
            assert!(body["errors"].is_null() || error_code(&body).is_some(), "{text}");
            let by = "query($v: String!) { customerByIdentity(kind: EMAIL, value: $v) { id } }";
            let body = app.graphql(by, json!({ "v": value }), Some(&admin)).await;
            assert_clean(200, &body.to_string(), "identity");
            let make = "mutation($n: String) { createCustomer(input: {displayName: $n, identities: [{kind: TWITTER, value: $n}]}) { \
                        userErrors { code } } }";
            let body = app.graphql(make, json!({ "n": value }), Some(&admin)).await;
            assert_clean(200, &body.to_string(), "create");
        }
        // The tables are still there.
        let alive = app.graphql("{ customers(first: 1) { edges { cursor } } }", json!({}), Some(&admin)).await;
        assert!(alive["errors"].is_null(), "{alive}");
    })
    .await;
}

#[tokio::test]
async fn pathological_documents_are_refused_with_codes() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let cases: Vec<(&str, String)> = vec![
            ("fragment cycle", "query { me { ...A } } fragment A on User { ...B } fragment B on User { ...A }".into()),
            ("directive flood", format!("{{ me {} {{ email }} }}", "@include(if: true) ".repeat(200))),
            (
                "deep nesting",
                format!(
                    "{}{}",
                    "{ __schema { types { fields { type ".to_owned(),
                    "{ ofType ".repeat(100) + &"}".repeat(104)
                ),
            ),
            (
                "huge list",
                format!(
                    "{{ customers(first: 1, filter: {{segments: [{}]}}) {{ edges {{ cursor }} }} }}",
                    vec!["\"s\""; 20_000].join(",")
                ),
            ),
            ("unknown operation", "query A { me { email } }".into()),
        ];
        for (what, query) in cases {
            let resp = app
                .client
                .post(app.url("/graphql"))
                .bearer_auth(&admin)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            assert_clean(status, &text, what);
            if status == 200 {
                let body: Value = serde_json::from_str(&text).unwrap();
                if what != "unknown operation" {
                    assert!(error_code(&body).is_some(), "{what}: a coded error expected: {text}");
                }
            }
        }
    })
    .await;
}

/// `[[[…1…]]]`, `n` deep.
fn nested_list(n: usize) -> String {
    format!("{}1{}", "[".repeat(n), "]".repeat(n))
}

/// `{a:{a:…1…}}`, `n` deep.
fn nested_object(n: usize) -> String {
    format!("{}1{}", "{a:".repeat(n), "}".repeat(n))
}

/// Documents whose value literals nest `n` deep: in an argument (list and object) and
/// in a variable's default. Nested about 2,000 deep, each overflowed a worker's stack
/// while it was parsed and aborted the whole process, before authentication.
fn deep_documents(n: usize) -> Vec<String> {
    vec![
        format!("{{ me {{ id(x: {}) }} }}", nested_list(n)),
        format!("{{ me {{ id(x: {}) }} }}", nested_object(n)),
        format!("query($v: JSON = {}) {{ me {{ id }} }}", nested_list(n)),
    ]
}

async fn alive(app: &TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.expect("the server still answers");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_literal_nested_past_any_stack_is_refused_on_every_path() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        // POST, anonymous: past the limit, as deep as aborted the release build, and far
        // deeper (a debug build's parser gives up on stack before 2,000 by itself).
        for query in [300, 2_000, 100_000].into_iter().flat_map(deep_documents) {
            let body = app.graphql(&query, json!({}), None).await;
            assert_eq!(error_code(&body), Some("GRAPHQL_PARSE_FAILED"), "{body}");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains("nests brackets more than"), "{body}");
        }
        // GET (its query check parsed the text first), within a URL's length.
        for query in deep_documents(5_000) {
            let resp = app.client.get(app.url("/graphql")).query(&[("query", &query)]).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            assert_eq!((status, error_code(&body)), (200, Some("GRAPHQL_PARSE_FAILED")), "{body}");
        }
        // A subscription's document, over a WebSocket (within its message limit).
        for query in deep_documents(10_000) {
            let refused = cxgraph_tests::Subscription::start(app, Some(&admin), &query).await;
            let errors = refused.err().expect("refused");
            assert!(errors.to_string().contains("GRAPHQL_PARSE_FAILED"), "{errors}");
        }
        alive(app).await;
    })
    .await;
}

#[tokio::test]
async fn in_allow_list_mode_a_deep_document_is_refused_unparsed() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, json!({ "login": cxgraph_tests::LOGIN }).to_string()).unwrap();
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.persisted_queries = Some(manifest.clone());
            s.persisted_queries_only = true;
        })
        .await;
        for query in deep_documents(5_000) {
            let resp = app.client.get(app.url("/graphql")).query(&[("query", &query)]).send().await.unwrap();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(error_code(&body), Some("PERSISTED_QUERY_REQUIRED"), "{body}");
        }
        for query in deep_documents(100_000) {
            let body = app.graphql(&query, json!({}), None).await;
            assert_eq!(error_code(&body), Some("PERSISTED_QUERY_REQUIRED"), "{body}");
        }
        alive(&app).await;
        app.stop().await;
    }
}

/// The answer to an anonymous document, waiting for it within a generous bound (not a
/// timing: the unfixed server never answers these).
async fn answered(app: &TestApp, query: &str) -> Value {
    let sent = app.client.post(app.url("/graphql")).json(&json!({ "query": query })).send();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(120), sent).await.expect("answered").unwrap();
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_fragment_fan_out_is_refused_before_it_is_walked() {
    on_each_backend(async |app: &TestApp| {
        // Each fragment spreads the one before twice: 2^30 fields once inlined. Walked
        // as such, validation took ten seconds at 25 levels and doubled per level.
        let mut doc = String::from("query { me { ...F30 } } fragment F0 on User { id }");
        for i in 1..=30 {
            doc.push_str(&format!(" fragment F{i} on User {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        let body = answered(app, &doc).await;
        assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{body}");
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains("selections with its fragments spread"),
            "{body}"
        );
        // The same fan-out over fragments that hold no field: the recursion check
        // walked every spread of it (4^30) before validation began.
        let mut empty = String::from("query { ...E30 } fragment E0 on Query { ...Missing }");
        for i in 1..=30 {
            empty.push_str(&format!(" fragment E{i} on Query {{ ...E{p} ...E{p} ...E{p} ...E{p} }}", p = i - 1));
        }
        let body = answered(app, &empty).await;
        assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{body}");
        // One field repeated with a thousand arguments: the validator made an error per
        // argument per repeat, millions of them for 17 KB.
        let flood = format!("{{ me {{ id({}) {} }} }}", "x: 1 ".repeat(1_650), "id ".repeat(4_850));
        let body = answered(app, &flood).await;
        assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{body}");
        assert!(body["errors"].as_array().unwrap().len() <= 100, "a bounded answer");
        // A megabyte variable referred to a thousand times: copied at each reference.
        let refs = "id @include(if: $v) ".repeat(1_000);
        let query = format!("query($v: Boolean!) {{ me {{ {refs} }} }}");
        let big: Vec<u8> = vec![0; 400_000];
        let sent =
            app.client.post(app.url("/graphql")).json(&json!({ "query": query, "variables": { "v": big } })).send();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(120), sent).await.expect("answered").unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{}", body["errors"][0]);
        // Root fields behind an inline fragment are root fields.
        let wide = format!(
            "{{ ... on Query {{ {} }} }}",
            (0..16).map(|i| format!("m{i}: me {{ id }}")).collect::<Vec<_>>().join(" ")
        );
        let body = answered(app, &wide).await;
        assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{body}");
        // A chain of fragments nests the validator without a bracket in the text.
        let mut chain = String::from("query { me { ...C0 } } fragment C900 on User { id }");
        for i in 0..900 {
            chain.push_str(&format!(" fragment C{i} on User {{ ...C{} }}", i + 1));
        }
        let body = app.graphql(&chain, json!({}), None).await;
        assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"), "{body}");
        alive(app).await;
    })
    .await;
}

/// The string inputs a NUL used to reach the database through (and come back
/// `INTERNAL`), each with where the refusal must point.
const NUL_CASES: &[(&str, &str, &[&str])] = &[
    (
        "query($s: String) { customers(first: 5, filter: {search: $s}) { edges { cursor } } }",
        "search",
        &["variables", "s"],
    ),
    (
        "query($s: String!) { customers(first: 5, filter: {segments: [$s]}) { edges { cursor } } }",
        "segment",
        &["variables", "s"],
    ),
    (
        "mutation($s: String) { createCustomer(input: {displayName: $s}) { userErrors { code } } }",
        "display name",
        &["variables", "s"],
    ),
    (
        "mutation($s: String) { recordInteraction(input: {channel: SMS, direction: INBOUND, body: $s, externalId: \"nul-1\", \
         identities: [{kind: PHONE, value: \"+447911123456\"}]}) { userErrors { code } } }",
        "body",
        &["variables", "s"],
    ),
    (
        "mutation($s: String!) { recordInteraction(input: {channel: SMS, direction: INBOUND, body: \"hi\", externalId: $s, \
         identities: [{kind: PHONE, value: \"+447911123456\"}]}) { userErrors { code } } }",
        "external id",
        &["variables", "s"],
    ),
    (
        "mutation($s: String!) { saveTopic(input: {name: $s, keywords: [\"refund\"]}) { userErrors { code } } }",
        "topic",
        &["variables", "s"],
    ),
    (
        "query($s: String) { auditLog(first: 5, filter: {operation: $s}) { edges { cursor } } }",
        "audit filter",
        &["variables", "s"],
    ),
];

#[tokio::test]
async fn a_nul_in_any_string_input_is_bad_user_input_naming_the_field() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        for (query, what, field) in NUL_CASES {
            for value in ["\u{0}", "before\u{0}after"] {
                let body = app.graphql(query, json!({ "s": value }), Some(&admin)).await;
                assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "[{}] {what}: {body}", app.backend.name());
                assert_eq!(body["errors"][0]["extensions"]["field"], json!(field), "{what}: {body}");
                assert!(body["data"].is_null(), "nothing ran: {body}");
            }
        }
        // The same NUL written into the document, and deep inside a variable.
        let literal = "{ customers(first: 5, filter: {search: \"a\\u0000\"}) { edges { cursor } } }";
        let body = app.graphql(literal, json!({}), Some(&admin)).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!(["customers", "filter", "search"]), "{body}");
        let nested = "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { userErrors { code } } }";
        let input = json!({ "i": { "displayName": "ok", "identities": [{ "kind": "TWITTER", "value": "x\u{0}" }] } });
        let body = app.graphql(nested, input, Some(&admin)).await;
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            json!(["variables", "i", "identities", "0", "value"]),
            "{body}"
        );
        // Nothing of any of it was stored.
        let stored = app.graphql("{ customers(first: 5) { totalCount } }", json!({}), Some(&admin)).await;
        assert_eq!(stored["data"]["customers"]["totalCount"], 0, "{stored}");
    })
    .await;
}

#[tokio::test]
async fn an_ndjson_line_that_fails_for_any_reason_fails_alone() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let event = |id: &str, body: &str| {
            json!({ "channel": "SMS", "direction": "INBOUND", "externalId": id, "body": body,
                "identities": [{ "kind": "PHONE", "value": "+447911123456" }] })
            .to_string()
        };
        let mut body: Vec<u8> = Vec::new();
        for line in [
            event("ok-0", "first"),
            event("nul-1", "a\u{0}b"),
            String::new(),
            event("ok-3", "third"),
            json!({ "channel": "SMS", "direction": "INBOUND", "externalId": "old-4", "occurredAt": "0000-06-01T00:00:00Z",
                "identities": [{ "kind": "PHONE", "value": "+447911123456" }] })
            .to_string(),
            "   ".to_owned(),
        ] {
            body.extend(line.as_bytes());
            body.push(b'\n');
        }
        // A line that is not UTF-8, then a last valid one.
        body.extend(b"{\"channel\": \"SMS\", \"body\": \"\xff\xfe\"}\n");
        body.extend(event("ok-7", "last").as_bytes());
        let (text, answers) = app.ingest_ndjson(&admin, body).await;
        let got: Vec<(u64, &str)> =
            answers.iter().map(|a| (a["index"].as_u64().unwrap(), a["status"].as_str().unwrap())).collect();
        assert_eq!(
            got,
            [
                (0, "created"),
                (1, "rejected"),
                (2, "skipped"),
                (3, "created"),
                (4, "rejected"),
                (5, "skipped"),
                (6, "rejected"),
                (7, "created")
            ],
            "one answer per input line, by its line: {text}"
        );
        assert_eq!(answers[1]["errors"][0]["field"], json!(["body"]), "{text}");
        assert_eq!(answers[4]["errors"][0]["field"], json!(["occurredAt"]), "{text}");
        assert_eq!(answers[4]["errors"][0]["code"], "TOO_OLD", "{text}");
        assert_eq!(answers[6]["errors"][0]["code"], "MALFORMED", "{text}");
        let stored = "{ interactions(first: 10) { edges { node { body } } } }";
        let bodies = app.graphql(stored, json!({}), Some(&admin)).await;
        let mut got: Vec<String> = bodies["data"]["interactions"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{bodies}"))
            .iter()
            .map(|e| e["node"]["body"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, ["first", "last", "third"]);
    })
    .await;
}

#[tokio::test]
async fn body_layer_refusals_answer_in_the_documented_json_shape() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let limit = usize::try_from(app.settings.body_limit).unwrap();
        let cases = [
            (
                app.client.post(app.url("/ingest/interactions")).bearer_auth(&admin).body(vec![b'x'; limit + 1]),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                app.client
                    .post(app.url("/graphql"))
                    .header("content-type", "application/json")
                    .body(vec![b' '; limit + 1]),
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (app.client.put(app.url("/graphql")).json(&json!({ "query": "{ me { id } }" })), 405, "METHOD_NOT_ALLOWED"),
            (app.client.get(app.url("/export/customers?from=yesterday")).bearer_auth(&admin), 400, "BAD_USER_INPUT"),
        ];
        for (request, status, code) in cases {
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), status);
            let text = resp.text().await.unwrap();
            let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            assert_eq!(error_code(&body), Some(code), "{body}");
        }
    })
    .await;
}
