//! The HTTP surface: served schema, GraphiQL, request ids, GET vs POST, limits, and
//! error masking.

use cxgraph_tests::{Backend, TestApp, error_code, on_each_backend};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

fn committed_schema() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).expect("schema.graphql")
}

#[tokio::test]
async fn serves_exactly_the_committed_schema() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let served = app.client.get(app.url("/schema.graphql")).send().await.unwrap().text().await.unwrap();
    assert_eq!(served, committed_schema(), "served SDL differs from schema.graphql");

    // And introspection agrees with it on the root fields.
    let body = app
        .graphql("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }", json!({}), None)
        .await;
    for kind in ["queryType", "mutationType"] {
        for f in body["data"]["__schema"][kind]["fields"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            assert!(
                served.contains(&format!("\t{name}(")) || served.contains(&format!("\t{name}:")),
                "{name} not in SDL"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn graphiql_and_unknown_routes() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().to_lowercase().contains("graphiql"));
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    app.stop().await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let given = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let generated =
        app.client.post(app.url("/graphql")).json(&json!({"query": "{ __typename }"})).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    app.stop().await;
}

#[tokio::test]
async fn get_runs_queries_but_never_mutations() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let session = app.login_admin().await;
    let query = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "{ me { email } }")])
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    let body: Value = query.json().await.unwrap();
    assert!(body["data"]["me"]["email"].is_string(), "{body}");

    let mutation = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { logout(input: {everywhere: true}) { revoked } }")])
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(error_code(&body), Some("METHOD_NOT_ALLOWED"));
    // Nothing was logged out.
    let still = app.graphql("{ me { email } }", json!({}), Some(&session.access)).await;
    assert!(still["errors"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_clear_coded_answers() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let bad_json = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert_eq!(error_code(&bad_json.json::<Value>().await.unwrap()), Some("BAD_REQUEST"));

    let syntax = app.graphql("{ me { ", json!({}), None).await;
    assert_eq!(error_code(&syntax), Some("GRAPHQL_PARSE_FAILED"));
    let unknown = app.graphql("{ noSuchField }", json!({}), None).await;
    assert_eq!(error_code(&unknown), Some("GRAPHQL_VALIDATION_FAILED"));

    // Deeper than the depth limit (introspection is the deepest part of the schema).
    let depth = cxgraph::graphql::MAX_DEPTH + 2;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(depth),
        "}".repeat(depth)
    );
    let too_deep = app.graphql(&deep, json!({}), None).await;
    assert_eq!(error_code(&too_deep), Some("GRAPHQL_VALIDATION_FAILED"), "{too_deep}");

    // Alias floods and very wide operations are refused before they run.
    let flood = format!("{{ {} }}", (0..40).map(|i| format!("a{i}: __typename")).collect::<Vec<_>>().join(" "));
    let refused = app.graphql(&flood, json!({}), None).await;
    assert_eq!(error_code(&refused), Some("GRAPHQL_VALIDATION_FAILED"), "{refused}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("aliases"));
    let wide = format!("{{ {} }}", (0..20).map(|_| "__typename").collect::<Vec<_>>().join(" "));
    let refused = app.graphql(&wide, json!({}), None).await;
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("root fields"), "{refused}");
    let fine = app.graphql("{ a: __typename b: __typename }", json!({}), None).await;
    assert!(fine["errors"].is_null(), "{fine}");
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| s.body_limit = 4096).await;
    let huge = json!({ "query": format!("{{ __typename }} # {}", "x".repeat(10_000)) });
    let resp = app.client.post(app.url("/graphql")).json(&huge).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let small = app.client.post(app.url("/graphql")).json(&json!({"query": "{ __typename }"})).send().await.unwrap();
    assert_eq!(small.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn database_errors_are_masked() {
    on_each_backend(async |app: &TestApp| {
        let session = app.login_admin().await;
        // Break the schema under the running server: the next query fails in SQL.
        app.db.execute_unprepared("ALTER TABLE users RENAME TO users_gone").await.unwrap();
        let body = app.graphql("{ me { email } }", json!({}), Some(&session.access)).await;
        assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
        assert_eq!(body["errors"][0]["message"], "internal error");
        let text = body.to_string().to_lowercase();
        for leak in ["users", "select", "relation", "sqlite", "postgres", "table"] {
            assert!(!text.contains(leak), "error leaks `{leak}`: {body}");
        }
        app.db.execute_unprepared("ALTER TABLE users_gone RENAME TO users").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn metrics_are_scraped_apart_from_the_api() {
    cxgraph_tests::on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let named = app.graphql("query CountCustomers { customers(first: 1) { edges { cursor } } }", json!({}), Some(&admin)).await;
        assert!(named["errors"].is_null(), "{named}");
        let refused = app.graphql("query Sneaky { apiTokens { id } }", json!({}), None).await;
        assert_eq!(cxgraph_tests::error_code(&refused), Some("UNAUTHENTICATED"));
        let ingest = app
            .graphql(
                "mutation { recordInteraction(input: {channel: SMS, direction: INBOUND, body: \"hi\", externalId: \"m-1\", \
                 identities: [{kind: PHONE, value: \"+447911123456\"}]}) { duplicate userErrors { code } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        assert_eq!(ingest["data"]["recordInteraction"]["userErrors"], json!([]), "{ingest}");
        let addr = app.metrics_addr.expect("metrics listener");
        let resp = app.client.get(format!("http://{addr}/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = resp.text().await.unwrap();
        for expected in [
            "cxgraph_graphql_operation_duration_seconds_count{type=\"query\",operation=\"CountCustomers\",outcome=\"ok\"}",
            "cxgraph_graphql_operation_duration_seconds_count{type=\"query\",operation=\"Sneaky\",outcome=\"error\"}",
            "cxgraph_graphql_errors_total{code=\"UNAUTHENTICATED\"}",
            "cxgraph_http_request_duration_seconds_bucket{method=\"POST\",route=\"/graphql\",status=\"200\",le=\"+Inf\"}",
            "cxgraph_ingested_total{channel=\"sms\",outcome=\"created\"}",
            "cxgraph_db_statement_duration_seconds_count{failed=\"false\"}",
            "cxgraph_db_pool_connections ",
            "cxgraph_subscriptions_open ",
        ] {
            assert!(text.contains(expected), "missing {expected} in:\n{text}");
        }
        // Not on the API port.
        assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
    })
    .await;
}

#[tokio::test]
async fn callers_over_their_rate_get_429_with_a_retry_hint() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| s.rate_limit = 3).await;
        let admin = app.login_admin().await.access;
        let ask = |token: String| {
            let req =
                app.client.post(app.url("/graphql")).bearer_auth(token).json(&json!({ "query": "{ me { email } }" }));
            async move { req.send().await.unwrap() }
        };
        for _ in 0..3 {
            assert_eq!(ask(admin.clone()).await.status(), 200);
        }
        let refused = ask(admin.clone()).await;
        assert_eq!(refused.status(), 429);
        let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&retry), "one request per 20 s at 3 a minute: {retry}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(error_code(&body), Some("RATE_LIMITED"));
        assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], retry);
        // The bucket is the caller's: others are served, and every route counts.
        let (email, password) = app.create_user(entity::enums::Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        assert_eq!(ask(analyst).await.status(), 200);
        let export = app.client.get(app.url("/export/feedback")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(export.status(), 429);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_query_priced_over_the_per_query_limit_is_refused_before_it_runs() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let admin = app.login_admin().await.access;
    let nested = |inner: u32| {
        format!(
            "{{ customers(first: 100) {{ edges {{ node {{ id interactions(first: {inner}) \
             {{ edges {{ node {{ id channel body }} }} }} }} }} }} }}"
        )
    };
    // 100 customers × 100 interactions: 1 + 100 × (2 + 1 + 1 + 100 × 5) = 50,401.
    let wide = app.graphql(&nested(100), json!({}), Some(&admin)).await;
    assert_eq!(error_code(&wide), Some("GRAPHQL_VALIDATION_FAILED"), "{wide}");
    assert!(wide["data"].is_null());
    // The same shape with ten interactions a customer costs a tenth and runs.
    let narrow = app.graphql(&nested(10), json!({}), Some(&admin)).await;
    assert!(narrow["errors"].is_null(), "{narrow}");
    app.stop().await;
}

#[tokio::test]
async fn queries_spend_an_hourly_cost_budget_reported_in_every_answer() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| s.cost_budget = 300).await;
        let admin = app.login_admin().await.access;
        let page = |n: u32| format!("{{ customers(first: {n}) {{ edges {{ node {{ id displayName }} }} }} }}");
        // A field costs 1 plus what is under it; a page of n costs n times its
        // selection: edges(1 + node(1 + id 1 + displayName 1)) = 4 a row.
        let price = |n: u64| 1 + n * 4;
        let ask = |query: String, token: String| {
            let req = app.client.post(app.url("/graphql")).bearer_auth(token).json(&json!({ "query": query }));
            async move { req.send().await.unwrap() }
        };
        let mut left = 300;
        for n in [10, 20, 10] {
            let resp = ask(page(n), admin.clone()).await;
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            assert!(body["errors"].is_null(), "{body}");
            let cost = &body["extensions"]["cost"];
            left -= price(u64::from(n));
            assert_eq!(cost["requestedQueryCost"], price(u64::from(n)), "{body}");
            assert_eq!(cost["limit"], 300);
            assert_eq!(cost["remaining"], left);
            let reset = chrono::DateTime::parse_from_rfc3339(cost["resetAt"].as_str().unwrap()).unwrap();
            let ahead = reset.with_timezone(&chrono::Utc) - chrono::Utc::now();
            assert!(ahead > chrono::Duration::minutes(58) && ahead <= chrono::Duration::minutes(60), "{ahead}");
        }
        // 137 points remain: a page of 50 (201) does not fit, is refused before it
        // runs, and costs nothing.
        let refused = ask(page(50), admin.clone()).await;
        assert_eq!(refused.status(), 429);
        let retry: i64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 3400, "{retry}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
        assert!(body["data"].is_null(), "{body}");
        assert_eq!(body["extensions"]["cost"]["remaining"], left);
        assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], retry);
        // What still fits still runs; the budget is the caller's own.
        let small: Value = ask(page(30), admin.clone()).await.json().await.unwrap();
        assert_eq!(small["extensions"]["cost"]["remaining"], left - price(30), "{small}");
        left -= price(30);
        // A query that does not validate runs nothing and costs nothing.
        let invalid = "{ customers(first: 5) { edges { node { noSuchField } } } }".to_owned();
        let invalid: Value = ask(invalid, admin.clone()).await.json().await.unwrap();
        assert_eq!(error_code(&invalid), Some("GRAPHQL_VALIDATION_FAILED"), "{invalid}");
        assert!(invalid["extensions"]["cost"].is_null(), "{invalid}");
        let after: Value = ask(page(1), admin.clone()).await.json().await.unwrap();
        assert_eq!(after["extensions"]["cost"]["remaining"], left - price(1), "{after}");
        let (email, password) = app.create_user(entity::enums::Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let theirs: Value = ask(page(50), analyst).await.json().await.unwrap();
        assert_eq!(theirs["extensions"]["cost"]["remaining"], 300 - price(50), "{theirs}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_request_over_its_deadline_answers_timeout_and_writes_nothing() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| s.request_timeout = 1).await;
        let session = app.login_admin().await;
        // Another connection holds the lock every customer insert needs, so the
        // mutation waits on the database past the request's deadline.
        // (`BEGIN IMMEDIATE` takes SQLite's write lock.)
        let holder = app.database.connect().await;
        let lock = cxgraph::db::begin_write(&holder).await.unwrap();
        if matches!(backend, Backend::Postgres(_)) {
            lock.execute_unprepared("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE").await.unwrap();
        }
        let started = std::time::Instant::now();
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&session.access)
            .json(
                &json!({ "query": "mutation { createCustomer(input: {displayName: \"Late\"}) { customer { id } } }" }),
            )
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status(), 503, "{backend:?}");
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(error_code(&body), Some("TIMEOUT"), "{body}");
        assert!(took < std::time::Duration::from_secs(5), "answered at the deadline, not after the lock: {took:?}");
        lock.rollback().await.unwrap();
        // The abandoned request's transaction did not land once the lock was gone.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let body = app
            .graphql("{ customers(first: 10) { edges { node { displayName } } } }", json!({}), Some(&session.access))
            .await;
        assert_eq!(body["data"]["customers"]["edges"], json!([]), "{body}");
        app.stop().await;
    }
}

#[tokio::test]
async fn in_allow_list_mode_only_persisted_documents_run() {
    use sha2::Digest;
    let sha =
        |text: &str| -> String { sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect() };
    const ME: &str = "query Me { me { email } }";
    const OUT: &str = "mutation Out { logout(input: {everywhere: true}) { revoked } }";
    const TICKS: &str = "subscription { slaAlert { id } }";
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    let ops: Vec<Value> = [("me", ME), ("out", OUT), ("login", cxgraph_tests::LOGIN), ("ticks", TICKS)]
        .iter()
        .map(|(id, body)| json!({ "id": sha(body), "name": id, "body": body }))
        .collect();
    let text = json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": ops });
    std::fs::write(&manifest, text.to_string()).unwrap();
    let app = TestApp::spawn_with(&Backend::Sqlite, |s| {
        s.persisted_queries = Some(manifest.clone());
        s.persisted_queries_only = true;
    })
    .await;
    let admin = app.login_admin().await.access;
    let post = |body: Value| {
        let req = app.client.post(app.url("/graphql")).bearer_auth(&admin).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let by_hash = |text: &str| json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha(text) } } });
    // By hash alone, and by the listed text itself.
    let (status, me) = post(by_hash(ME)).await;
    assert_eq!((status, me["data"]["me"]["email"].as_str()), (200, Some(cxgraph_tests::ADMIN_EMAIL)), "{me}");
    let (_, text) = post(json!({ "query": ME })).await;
    assert!(text["errors"].is_null(), "{text}");
    // Anything else, however harmless, is refused; so is an unknown hash, and a hash
    // that is not the text's.
    let (_, other) = post(json!({ "query": "query Me { me { email role } }" })).await;
    assert_eq!(error_code(&other), Some("PERSISTED_QUERY_REQUIRED"), "{other}");
    let (status, unknown) = post(by_hash("{ __typename }")).await;
    assert_eq!((status, error_code(&unknown)), (200, Some("PERSISTED_QUERY_NOT_FOUND")), "{unknown}");
    let mut lying = by_hash(ME);
    lying["query"] = json!("query Me { me { email role } }");
    assert_eq!(post(lying).await.0, 400);
    // GET: a persisted query runs, a persisted mutation is still not safe over GET.
    let get = |text: &str| {
        let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(text) } }).to_string();
        app.client.get(app.url("/graphql")).bearer_auth(&admin).query(&[("extensions", ext)]).send()
    };
    let fetched: Value = get(ME).await.unwrap().json().await.unwrap();
    assert!(fetched["data"]["me"]["email"].is_string(), "{fetched}");
    assert_eq!(get(OUT).await.unwrap().status(), 405);
    // Subscriptions are held to the list too.
    let refused = cxgraph_tests::Subscription::start(&app, Some(&admin), "subscription { alertRaised { id } }").await;
    let errors = refused.err().expect("an unlisted subscription is refused");
    assert!(errors.to_string().contains("PERSISTED_QUERY_REQUIRED"), "{errors}");
    assert!(cxgraph_tests::Subscription::start(&app, Some(&admin), TICKS).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn introspection_and_suggestions_are_off_by_default_in_production() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn(&backend).await;
        let production = matches!(backend, Backend::Postgres(_));
        let schema = app.graphql("{ __schema { queryType { name } } }", json!({}), None).await;
        assert_eq!(schema["data"]["__schema"].is_object(), !production, "[{}] {schema}", backend.name());
        let typo = app.graphql("{ customres(first: 1) { edges { cursor } } }", json!({}), None).await;
        assert_eq!(error_code(&typo), Some("GRAPHQL_VALIDATION_FAILED"), "{typo}");
        let suggests = typo["errors"][0]["message"].as_str().unwrap().contains("Did you mean");
        assert_eq!(suggests, !production, "[{}] {typo}", backend.name());
        app.stop().await;
        // Either can be turned on (or off) explicitly.
        let app = TestApp::spawn_with(&backend, |s| {
            s.introspection = Some(production);
            s.suggestions = Some(production);
        })
        .await;
        let schema = app.graphql("{ __schema { queryType { name } } }", json!({}), None).await;
        assert_eq!(schema["data"]["__schema"].is_object(), production, "[{}] {schema}", backend.name());
        let typo = app.graphql("{ customres(first: 1) { edges { cursor } } }", json!({}), None).await;
        assert_eq!(typo["errors"][0]["message"].as_str().unwrap().contains("Did you mean"), production);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_document_of_too_many_tokens_is_refused_before_parsing() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let admin = app.login_admin().await.access;
    let list = |n: usize| vec!["\"vip\""; n].join(", ");
    let query =
        |n: usize| format!("{{ customers(first: 1, filter: {{segments: [{}]}}) {{ edges {{ cursor }} }} }}", list(n));
    let flood = app.graphql(&query(12_000), json!({}), Some(&admin)).await;
    assert_eq!(error_code(&flood), Some("GRAPHQL_PARSE_FAILED"), "{}", &flood.to_string()[..300]);
    assert!(flood["errors"][0]["message"].as_str().unwrap().contains("10000 tokens"), "{flood}");
    // The same shape under the limit is parsed (and judged by the filter's own cap).
    let fine = app.graphql(&query(50), json!({}), Some(&admin)).await;
    assert!(fine["errors"].is_null(), "{fine}");
    app.stop().await;
}
