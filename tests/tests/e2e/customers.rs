//! Customer 360 over HTTP: identities and their normalisation, resolution (also under
//! concurrency), the filtered and paginated list, the nested view at a constant
//! number of statements, masking of personal data, writes and their audit entries.

use cxgraph::config::DemoData;
use cxgraph_tests::{Backend, TestApp, backends, error_code, on_each_backend};
use entity::enums::Role;
use entity::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

const CREATE: &str = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { \
    customer { id displayName segment identities { id kind value } } userErrors { field code message } } }";

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    app.graphql(CREATE, json!({ "input": input }), Some(token)).await["data"]["createCustomer"].clone()
}

#[tokio::test]
async fn identities_are_normalised_and_validated() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let created = create(
            app,
            &admin,
            json!({ "displayName": " Ann Lee ", "segment": "premium", "identities": [
                { "kind": "EMAIL", "value": "  Ann.Lee@Example.COM " },
                { "kind": "PHONE", "value": "+44 20 7946 0958" },
                { "kind": "TWITTER", "value": "@AnnLee" },
            ]}),
        )
        .await;
        assert_eq!(created["userErrors"], json!([]), "{created}");
        let values: Vec<&str> = created["customer"]["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["ann.lee@example.com", "+442079460958", "annlee"]);
        assert_eq!(created["customer"]["displayName"], "Ann Lee");

        // Any spelling of an identity finds the customer.
        let by = "query($k: IdentityKind!, $v: String!) { customerByIdentity(kind: $k, value: $v) { id } }";
        for (kind, value) in [("EMAIL", "ANN.LEE@example.com"), ("PHONE", "0044 20 7946 0958"), ("TWITTER", "annlee")] {
            let body = app.graphql(by, json!({ "k": kind, "v": value }), Some(&admin)).await;
            assert_eq!(body["data"]["customerByIdentity"]["id"], created["customer"]["id"], "{kind} {value}: {body}");
        }
        let bad = app.graphql(by, json!({ "k": "PHONE", "v": "not a phone" }), Some(&admin)).await;
        assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");
        assert_eq!(bad["errors"][0]["extensions"]["fields"], json!(["value"]));

        // Invalid values come back beside their field, and nothing is written.
        let before = Customer::find().count(&app.db).await.unwrap();
        let refused = create(
            app,
            &admin,
            json!({ "identities": [
                { "kind": "EMAIL", "value": "ok@example.com" },
                { "kind": "PHONE", "value": "12345" },
                { "kind": "TWITTER", "value": "has space" },
            ]}),
        )
        .await;
        assert!(refused["customer"].is_null());
        let fields: Vec<Value> = refused["userErrors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
        assert_eq!(
            fields,
            [json!(["input", "identities", "1", "value"]), json!(["input", "identities", "2", "value"])],
            "{refused}"
        );
        assert!(refused["userErrors"].as_array().unwrap().iter().all(|e| e["code"] == "INVALID"));
        assert_eq!(Customer::find().count(&app.db).await.unwrap(), before, "nothing half-written");
    })
    .await;
}

#[tokio::test]
async fn an_identity_belongs_to_one_customer() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let ann = create(app, &admin, json!({ "identities": [{ "kind": "EMAIL", "value": "ann@example.com" }] })).await;
        let ann_id = ann["customer"]["id"].as_str().unwrap().to_owned();
        let bob = create(app, &admin, json!({ "displayName": "Bob" })).await;
        let bob_id = bob["customer"]["id"].as_str().unwrap().to_owned();

        let link = "mutation($c: ID!, $v: String!) { linkIdentity(input: {customerId: $c, \
                    identity: {kind: EMAIL, value: $v}}) { identity { id value } customer { id } \
                    userErrors { field code message } } }";
        let taken = app.graphql(link, json!({ "c": bob_id, "v": "ANN@example.com" }), Some(&admin)).await;
        let err = &taken["data"]["linkIdentity"]["userErrors"][0];
        assert_eq!(err["code"], "CONFLICT", "{taken}");
        assert_eq!(err["field"], json!(["input", "identity", "value"]));
        assert!(err["message"].as_str().unwrap().contains(&ann_id), "says to whom: {err}");

        let dup = create(app, &admin, json!({ "identities": [{ "kind": "EMAIL", "value": "ann@example.com" }] })).await;
        assert_eq!(dup["userErrors"][0]["code"], "CONFLICT", "{dup}");

        // Linking one's own identity again is a no-op; a free one is attached.
        let again = app.graphql(link, json!({ "c": ann_id, "v": "ann@example.com" }), Some(&admin)).await;
        assert_eq!(again["data"]["linkIdentity"]["userErrors"], json!([]), "{again}");
        let new = app.graphql(link, json!({ "c": bob_id, "v": "bob@example.com" }), Some(&admin)).await;
        let identity_id = new["data"]["linkIdentity"]["identity"]["id"].as_str().unwrap().to_owned();
        assert_eq!(new["data"]["linkIdentity"]["customer"]["id"], bob_id.as_str());

        let unlink = "mutation($i: ID!) { unlinkIdentity(input: {identityId: $i}) { identity { value } \
                      customer { identities { value } } userErrors { code } } }";
        let gone = app.graphql(unlink, json!({ "i": identity_id }), Some(&admin)).await;
        assert_eq!(gone["data"]["unlinkIdentity"]["identity"]["value"], "bob@example.com", "{gone}");
        assert_eq!(gone["data"]["unlinkIdentity"]["customer"]["identities"], json!([]));
        // Now free: Ann can't take Bob's old address? She can: it belongs to nobody.
        let free = app.graphql(link, json!({ "c": ann_id, "v": "bob@example.com" }), Some(&admin)).await;
        assert_eq!(free["data"]["linkIdentity"]["userErrors"], json!([]), "{free}");
    })
    .await;
}

const RESOLVE: &str = "mutation($ids: [IdentityValueInput!]!, $name: String) { resolveCustomer(input: \
    {identities: $ids, displayName: $name}) { customer { id displayName } created linkedIdentities { kind value } \
    possibleDuplicates { kind customerId } userErrors { field code } } }";

#[tokio::test]
async fn resolution_finds_links_or_creates() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let resolve = async |ids: Value| app.graphql(RESOLVE, json!({ "ids": ids, "name": "Cat" }), Some(&admin)).await;

        let first = resolve(json!([{ "kind": "TWITTER", "value": "@CatFan" }])).await;
        let r = &first["data"]["resolveCustomer"];
        assert_eq!(r["created"], true, "{first}");
        let cat = r["customer"]["id"].as_str().unwrap().to_owned();

        let second =
            resolve(json!([{ "kind": "EMAIL", "value": "cat@example.com" }, { "kind": "TWITTER", "value": "catfan" }]))
                .await;
        let r = &second["data"]["resolveCustomer"];
        assert_eq!(r["created"], false, "{second}");
        assert_eq!(r["customer"]["id"], cat.as_str(), "found by the handle");
        assert_eq!(r["linkedIdentities"], json!([{ "kind": "EMAIL", "value": "cat@example.com" }]), "email attached");

        let other = create(app, &admin, json!({ "identities": [{ "kind": "PHONE", "value": "+12025550143" }] })).await;
        let other_id = other["customer"]["id"].as_str().unwrap().to_owned();
        let third = resolve(
            json!([{ "kind": "EMAIL", "value": "cat@example.com" }, { "kind": "PHONE", "value": "+1 202 555 0143" }]),
        )
        .await;
        let r = &third["data"]["resolveCustomer"];
        assert_eq!(r["customer"]["id"], cat.as_str(), "the first identity's owner wins");
        assert_eq!(r["possibleDuplicates"], json!([{ "kind": "PHONE", "customerId": other_id }]), "{third}");

        let invalid = resolve(json!([{ "kind": "EMAIL", "value": "nope" }])).await;
        assert_eq!(invalid["data"]["resolveCustomer"]["userErrors"][0]["code"], "INVALID", "{invalid}");
        let empty = resolve(json!([])).await;
        assert_eq!(empty["data"]["resolveCustomer"]["userErrors"][0]["code"], "REQUIRED", "{empty}");
    })
    .await;
}

#[tokio::test]
async fn concurrent_resolution_of_one_new_identity_creates_one_customer() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.db_max_connections = 10).await;
        let admin = app.login_admin().await.access;
        for round in 0..3 {
            let email = format!("race{round}@example.com");
            let requests = (0..12).map(|i| {
                let vars = json!({ "ids": [{ "kind": "EMAIL", "value": email }, { "kind": "WEB", "value": format!("dev-{round}-{i}") }] });
                app.graphql(RESOLVE, vars, Some(&admin))
            });
            let answers = futures::future::join_all(requests).await;
            let mut ids: Vec<String> = answers
                .iter()
                .map(|a| {
                    let c = &a["data"]["resolveCustomer"]["customer"]["id"];
                    c.as_str().unwrap_or_else(|| panic!("[{}] {a}", backend.name())).to_owned()
                })
                .collect();
            let created = answers.iter().filter(|a| a["data"]["resolveCustomer"]["created"] == true).count();
            ids.dedup();
            assert_eq!(ids.len(), 1, "[{}] every request resolved to the same customer", backend.name());
            assert_eq!(created, 1, "[{}] exactly one request created it", backend.name());
            let holders = CustomerIdentity::find()
                .filter(entity::customer_identity::Column::Value.eq(email.clone()))
                .count(&app.db)
                .await
                .unwrap();
            assert_eq!(holders, 1);
        }
        assert_eq!(Customer::find().count(&app.db).await.unwrap(), 3, "[{}] one customer per identity", backend.name());
        app.stop().await;
    }
}

const FULL_360: &str = "query($n: Int!) { customers(first: $n) { edges { node { id displayName segment \
    identities { kind value } \
    interactions(first: 20) { edges { cursor node { id channel body occurredAt } } pageInfo { hasNextPage } } \
    conversations(status: [OPEN, PENDING]) { id status subject } \
    touchpoints(first: 10) { id name outcome } feedback(first: 10) { id kind score comment } \
    journeys { journeyName stageName } \
    metrics { lastContactAt channelsUsed interactionCount openConversations latestNps { score category } \
      csatAverage recentSentiment } } } } }";

#[tokio::test]
async fn the_360_costs_the_same_statements_for_5_and_for_50_customers() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
        let admin = app.login_admin().await.access;
        // The session's state is read on its first request, then held (auth::revocation).
        app.graphql("{ me { id } }", json!({}), Some(&admin)).await;
        let (five, cost_5) = app.graphql_counting(FULL_360, json!({ "n": 5 }), Some(&admin)).await;
        let (fifty, cost_50) = app.graphql_counting(FULL_360, json!({ "n": 50 }), Some(&admin)).await;
        assert!(five["errors"].is_null(), "{five}");
        assert!(fifty["errors"].is_null(), "{fifty}");
        assert_eq!(fifty["data"]["customers"]["edges"].as_array().unwrap().len(), 50);
        let who = backend.name();
        assert_eq!(cost_5, cost_50, "[{who}] statements grow with the page size: 5 → {cost_5}, 50 → {cost_50}");
        // list + identities + interactions + conversations + touchpoints + feedback +
        // journeys + 4 metric statements
        assert!(cost_50 <= 12, "[{who}] {cost_50} statements for the 360 page");
        if matches!(backend, Backend::Postgres(_)) {
            // list + every list read ahead in one + 4 metric statements
            assert_eq!(cost_50, 6, "[{who}] the page's lists in one statement");
        }

        // The nested data is really there and matches the database.
        let edges = fifty["data"]["customers"]["edges"].as_array().unwrap();
        let with_interactions =
            edges.iter().filter(|e| !e["node"]["interactions"]["edges"].as_array().unwrap().is_empty()).count();
        assert!(with_interactions > 10, "[{who}] demo customers have interactions");
        for edge in edges {
            let node = &edge["node"];
            let id = uuid::Uuid::parse_str(node["id"].as_str().unwrap()).unwrap();
            let stored = Interaction::find()
                .filter(entity::interaction::Column::CustomerId.eq(id))
                .count(&app.db)
                .await
                .unwrap();
            assert_eq!(node["metrics"]["interactionCount"], stored, "[{who}] metrics count what is stored");
            let shown = node["interactions"]["edges"].as_array().unwrap();
            assert_eq!(shown.len() as u64, stored.min(20));
            let times: Vec<&str> = shown.iter().map(|e| e["node"]["occurredAt"].as_str().unwrap()).collect();
            let mut sorted = times.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(times, sorted, "[{who}] newest first");
        }
        app.stop().await;
    }
}

/// Every list of the 360, some twice with other arguments, through a fragment.
const EVERY_LIST: &str = "fragment all on Customer { id displayName segment createdAt \
    identities { id kind value verified createdAt } \
    interactions(first: $n) { edges { cursor node { id channel direction body sentimentLabel occurredAt } } \
      pageInfo { hasNextPage } } \
    email: interactions(channel: EMAIL, first: 3) { edges { node { id channel occurredAt } } } \
    conversations(status: [OPEN, PENDING]) { id channel status priority subject tags firstResponseDueAt } \
    everyConversation: conversations(first: 50) { id status openedAt } \
    touchpoints(first: 10) { id name outcome channel occurredAt } \
    feedback(first: 10) { id kind score comment sentimentLabel occurredAt } \
    journeys { journeyName stageName stagePosition outcome reachedAt \
      path { stageName firstReachedAt lastReachedAt lastOutcome touchpoints } } }";

#[tokio::test]
async fn the_360_read_ahead_answers_as_the_field_loaders_do_in_one_statement_on_postgres() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
        let admin = app.login_admin().await.access;
        let who = backend.name();
        let page = "{ customers(first: 100) { edges { node { id identities { kind value } \
            metrics { interactionCount } } } } }";
        let page = app.graphql(page, json!({}), Some(&admin)).await;
        let busy: Vec<&Value> = page["data"]["customers"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"])
            .filter(|n| n["metrics"]["interactionCount"].as_u64().unwrap() > 0 && n["identities"][0].is_object())
            .take(12)
            .collect();
        assert!(busy.len() >= 10, "[{who}] demo customers with history: {page}");
        let by_id = format!("query($id: ID!, $n: Int!) {{ customer(id: $id) {{ ...all }} }} {EVERY_LIST}");
        // Found by identity the customer loads list by list, one statement each: the
        // reference the read-ahead must match.
        let by_identity = format!(
            "query($k: IdentityKind!, $v: String!, $n: Int!) {{ customerByIdentity(kind: $k, value: $v) {{ ...all }} }} \
             {EVERY_LIST}"
        );
        let mut seen = [0; 5];
        for node in busy {
            let identity = &node["identities"][0];
            let (read_ahead, cost) =
                app.graphql_counting(&by_id, json!({ "id": node["id"], "n": 20 }), Some(&admin)).await;
            let (fields, lazy_cost) = app
                .graphql_counting(
                    &by_identity,
                    json!({ "k": identity["kind"], "v": identity["value"], "n": 20 }),
                    Some(&admin),
                )
                .await;
            assert!(read_ahead["errors"].is_null(), "[{who}] {read_ahead}");
            let customer = &read_ahead["data"]["customer"];
            assert_eq!(customer, &fields["data"]["customerByIdentity"], "[{who}] read ahead vs loaded by field");
            for (n, list) in ["identities", "conversations", "touchpoints", "feedback", "journeys"].iter().enumerate() {
                seen[n] += usize::from(!customer[list].as_array().unwrap().is_empty());
            }
            if matches!(backend, Backend::Postgres(_)) {
                assert_eq!(cost, 1, "[{who}] the whole 360 in one statement");
            } else {
                assert!(cost < lazy_cost, "[{who}] {cost} statements read ahead, {lazy_cost} field by field");
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "[{who}] every list was non-empty somewhere: {seen:?}");

        // A nested argument out of range is still the field's own error.
        let bad = app
            .graphql(
                &by_id,
                json!({ "id": page["data"]["customers"]["edges"][0]["node"]["id"], "n": 500 }),
                Some(&admin),
            )
            .await;
        assert_eq!(bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "[{who}] {bad}");
        assert_eq!(bad["errors"][0]["extensions"]["fields"], json!(["first"]), "[{who}] {bad}");
        assert_eq!(bad["errors"][0]["path"], json!(["customer", "interactions"]), "[{who}] {bad}");
        app.stop().await;
    }
}

const LIST: &str = "query($f: CustomerFilter, $o: CustomerOrder, $first: Int, $after: String, $last: Int, \
    $before: String) { customers(filter: $f, orderBy: $o, first: $first, after: $after, last: $last, \
    before: $before) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } \
    edges { cursor node { id displayName segment lastContactAt createdAt } } } }";

async fn list(app: &TestApp, token: &str, vars: Value) -> Value {
    let body = app.graphql(LIST, vars, Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["customers"].clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn paging_forward_and_backward_visits_every_customer_once_in_order() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
        let admin = app.login_admin().await.access;
        for (field, direction) in [("LAST_CONTACT", "DESC"), ("NAME", "ASC"), ("CREATED_AT", "DESC"), ("NAME", "DESC")]
        {
            let order = json!({ "field": field, "direction": direction });
            let mut forward = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = list(&app, &admin, json!({ "o": order, "first": 40, "after": after })).await;
                forward.extend(ids(&page));
                assert_eq!(page["totalCount"], 300);
                if page["pageInfo"]["hasNextPage"] != true {
                    break;
                }
                after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
            }
            let mut backward = Vec::new();
            let mut before: Option<String> = None;
            loop {
                let page = list(&app, &admin, json!({ "o": order, "last": 40, "before": before })).await;
                let mut chunk = ids(&page);
                chunk.extend(backward);
                backward = chunk;
                if page["pageInfo"]["hasPreviousPage"] != true {
                    break;
                }
                before = page["pageInfo"]["startCursor"].as_str().map(str::to_owned);
            }
            let who = format!("[{}] {field} {direction}", backend.name());
            assert_eq!(forward.len(), 300, "{who}");
            let mut unique = forward.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 300, "{who}: no customer twice");
            assert_eq!(forward, backward, "{who}: both directions agree");
        }
        // The order itself: last contact newest first, never-contacted last.
        let page = list(&app, &admin, json!({ "first": 100 })).await;
        let times: Vec<Option<String>> = page["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["lastContactAt"].as_str().map(str::to_owned))
            .collect();
        let valued: Vec<&String> = times.iter().flatten().collect();
        assert!(valued.windows(2).all(|w| w[0] >= w[1]), "newest first");
        let first_null = times.iter().position(Option::is_none).unwrap_or(times.len());
        assert!(times[first_null..].iter().all(Option::is_none), "nulls last");

        let too_big = app.graphql(LIST, json!({ "first": 101 }), Some(&admin)).await;
        assert_eq!(error_code(&too_big), Some("BAD_USER_INPUT"), "page size is capped");
        let bad_cursor = app.graphql(LIST, json!({ "first": 5, "after": "garbage" }), Some(&admin)).await;
        assert_eq!(error_code(&bad_cursor), Some("BAD_USER_INPUT"));
        app.stop().await;
    }
}

#[tokio::test]
async fn list_filters_match_the_stored_facts() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
        let admin = app.login_admin().await.access;
        let who = backend.name();
        let all = |filter: Value| {
            let admin = admin.clone();
            let app = &app;
            async move {
                let page = list(app, &admin, json!({ "f": filter, "first": 100 })).await;
                (page["totalCount"].as_u64().unwrap(), page)
            }
        };

        let (premium, page) = all(json!({ "segments": ["premium"] })).await;
        let stored =
            Customer::find().filter(entity::customer::Column::Segment.eq("premium")).count(&app.db).await.unwrap();
        assert_eq!(premium, stored, "[{who}] segment");
        assert!(page["edges"].as_array().unwrap().iter().all(|e| e["node"]["segment"] == "premium"));

        // Search by a name prefix (any case), an e-mail prefix, a handle with @.
        let someone = &list(&app, &admin, json!({ "first": 1, "o": { "field": "NAME", "direction": "ASC" } })).await["edges"]
            [0]["node"];
        let name = someone["displayName"].as_str().unwrap();
        let first_name = name.split(' ').next().unwrap().to_lowercase();
        let (n, page) = all(json!({ "search": first_name })).await;
        assert!(n >= 1, "[{who}] name prefix");
        for e in page["edges"].as_array().unwrap() {
            let matches_name = e["node"]["displayName"].as_str().unwrap().to_lowercase().starts_with(&first_name);
            assert!(matches_name || n > 1, "[{who}] name search hit {e}");
        }
        let id = someone["id"].as_str().unwrap();
        let email = CustomerIdentity::find()
            .filter(entity::customer_identity::Column::CustomerId.eq(uuid::Uuid::parse_str(id).unwrap()))
            .filter(entity::customer_identity::Column::Kind.eq(entity::enums::IdentityKind::Email))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .value;
        let (n, page) = all(json!({ "search": email.to_uppercase() })).await;
        assert_eq!((n, ids(&page)), (1, vec![id.to_owned()]), "[{who}] full e-mail finds exactly them");
        let (n, _) = all(json!({ "search": "%" })).await;
        assert_eq!(n, 0, "[{who}] LIKE wildcards are literal");

        // Channel used, open conversations, NPS category, last contact range.
        let (twitter, _) = all(json!({ "channels": ["TWITTER"] })).await;
        let (email_users, _) = all(json!({ "channels": ["EMAIL"] })).await;
        assert!(twitter > 0 && twitter < email_users + 300, "[{who}] channel filter");
        let (open, page) = all(json!({ "hasOpenConversation": true })).await;
        let (closed, _) = all(json!({ "hasOpenConversation": false })).await;
        assert_eq!(open + closed, 300, "[{who}] open or not partitions everyone");
        for e in page["edges"].as_array().unwrap() {
            let q = "query($id: ID!) { customer(id: $id) { metrics { openConversations } } }";
            let c = app.graphql(q, json!({ "id": e["node"]["id"] }), Some(&admin)).await;
            assert!(c["data"]["customer"]["metrics"]["openConversations"].as_i64().unwrap() > 0, "[{who}] {c}");
        }
        let (promoters, page) = all(json!({ "npsCategory": "PROMOTER" })).await;
        let (passives, _) = all(json!({ "npsCategory": "PASSIVE" })).await;
        let (detractors, _) = all(json!({ "npsCategory": "DETRACTOR" })).await;
        assert!(promoters > 0 && detractors > 0, "[{who}] demo data has both");
        let with_nps = Feedback::find()
            .filter(entity::feedback::Column::Kind.eq(entity::enums::FeedbackKind::Nps))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.customer_id)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;
        assert_eq!(promoters + passives + detractors, with_nps, "[{who}] categories partition NPS answerers");
        for e in page["edges"].as_array().unwrap() {
            let q = "query($id: ID!) { customer(id: $id) { metrics { latestNps { category } } } }";
            let c = app.graphql(q, json!({ "id": e["node"]["id"] }), Some(&admin)).await;
            assert_eq!(c["data"]["customer"]["metrics"]["latestNps"]["category"], "PROMOTER", "[{who}]");
        }
        let from = chrono::Utc::now() - chrono::Duration::days(30);
        let (recent, page) = all(json!({ "lastContactFrom": from.to_rfc3339() })).await;
        assert!(recent > 0, "[{who}] someone was in touch this month");
        for e in page["edges"].as_array().unwrap() {
            let at = chrono::DateTime::parse_from_rfc3339(e["node"]["lastContactAt"].as_str().unwrap()).unwrap();
            assert!(at >= from, "[{who}] last contact range");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn analysts_see_masked_personal_data_and_cannot_write() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let created = create(
            app,
            &admin,
            json!({ "displayName": "Ann Lee", "attributes": { "vip": true }, "identities": [
                { "kind": "EMAIL", "value": "ann.lee@example.com" }, { "kind": "PHONE", "value": "+44 20 7946 0958" }
            ]}),
        )
        .await;
        let id = created["customer"]["id"].as_str().unwrap().to_owned();
        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let q = "query($id: ID!) { customer(id: $id) { displayName attributes piiMasked identities { kind value } } }";
        let seen = app.graphql(q, json!({ "id": id }), Some(&analyst)).await;
        let c = &seen["data"]["customer"];
        assert_eq!(c["displayName"], "A*** L***", "{seen}");
        assert_eq!(c["piiMasked"], true);
        assert!(c["attributes"].is_null());
        assert_eq!(
            c["identities"],
            json!([{ "kind": "EMAIL", "value": "a***@example.com" }, { "kind": "PHONE", "value": "***958" }])
        );
        let clear = app.graphql(q, json!({ "id": id }), Some(&admin)).await;
        assert_eq!(clear["data"]["customer"]["displayName"], "Ann Lee");
        assert_eq!(clear["data"]["customer"]["piiMasked"], false);
        assert_eq!(clear["data"]["customer"]["attributes"], json!({ "vip": true }));

        let refused = app.graphql(CREATE, json!({ "input": { "displayName": "X" } }), Some(&analyst)).await;
        assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        let allowed = app.graphql(CREATE, json!({ "input": { "displayName": "X" } }), Some(&agent)).await;
        assert!(allowed["data"]["createCustomer"]["customer"]["id"].is_string(), "{allowed}");
    })
    .await;
}

#[tokio::test]
async fn updates_are_partial_validated_and_audited() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let created = create(app, &admin, json!({ "displayName": "Dee", "segment": "consumer" })).await;
        let id = created["customer"]["id"].as_str().unwrap().to_owned();
        let update = "mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) { \
                      customer { displayName segment attributes } userErrors { field code } } }";
        let changed = app.graphql(update, json!({ "input": { "id": id, "segment": "premium" } }), Some(&admin)).await;
        let c = &changed["data"]["updateCustomer"]["customer"];
        assert_eq!((c["displayName"].as_str(), c["segment"].as_str()), (Some("Dee"), Some("premium")), "{changed}");
        let cleared = app.graphql(update, json!({ "input": { "id": id, "displayName": null } }), Some(&admin)).await;
        let c = &cleared["data"]["updateCustomer"]["customer"];
        assert!(c["displayName"].is_null(), "null clears: {cleared}");
        assert_eq!(c["segment"], "premium", "absent stays");
        let bad = app
            .graphql(
                update,
                json!({ "input": { "id": id, "attributes": [1, 2], "segment": "x".repeat(101) } }),
                Some(&admin),
            )
            .await;
        let fields: Vec<Value> = bad["data"]["updateCustomer"]["userErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert_eq!(fields, [json!(["input", "segment"]), json!(["input", "attributes"])], "{bad}");
        let missing = app
            .graphql(
                update,
                json!({ "input": { "id": uuid::Uuid::now_v7().to_string(), "segment": "x" } }),
                Some(&admin),
            )
            .await;
        assert_eq!(error_code(&missing), Some("NOT_FOUND"));
        let malformed = app.graphql(update, json!({ "input": { "id": "not-a-uuid" } }), Some(&admin)).await;
        assert_eq!(error_code(&malformed), Some("BAD_USER_INPUT"));

        // Every change left an audit entry naming the user and the request, and no values.
        let entries =
            AuditEntry::find().filter(entity::audit_entry::Column::TargetId.eq(id.clone())).all(&app.db).await.unwrap();
        let ops: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
        assert_eq!(ops, ["createCustomer", "updateCustomer", "updateCustomer"]);
        assert!(entries.iter().all(|e| e.actor_user_id.is_some() && e.request_id.is_some()));
        assert_eq!(entries[1].changes, json!({ "fields": ["segment"] }));
        assert!(!entries.iter().any(|e| e.changes.to_string().contains("premium")), "no values in the log");
    })
    .await;
}

#[tokio::test]
async fn a_token_less_request_sees_nothing() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let body = app.graphql(LIST, json!({ "first": 5 }), None).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    assert!(body["data"].is_null());
    app.stop().await;
}
