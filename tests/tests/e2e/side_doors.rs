//! Personal data through the doors beside the masked fields, on both backends: a
//! caller who sees `a***@example.com` must not spell the address out by searching
//! prefixes, confirm it by exact lookup or place a name by sorting, nor read it in a
//! merge note or an external id (GraphQL and export).

use cxgraph_tests::{TestApp, error_code, on_each_backend};
use entity::enums::Role;
use serde_json::{Value, json};

const EMAIL: &str = "ann.lee@example.com";
const MESSAGE_ID: &str = "<k-42-ann.lee@example.com>";
const NOTE: &str = "she called from +447700900123";

async fn token(app: &TestApp, admin: &str, scopes: &str) -> String {
    token_on(app, admin, scopes, None).await
}

/// A token with `scopes`, limited to `channels` when given (e.g. `"TWITTER"`).
async fn token_on(app: &TestApp, admin: &str, scopes: &str, channels: Option<&str>) -> String {
    let limit = channels.map(|c| format!(", channels: [{c}]")).unwrap_or_default();
    let body = app
        .graphql(
            &format!("mutation {{ createApiToken(input: {{name: \"t\", scopes: [{scopes}]{limit}}}) {{ secret }} }}"),
            json!({}),
            Some(admin),
        )
        .await;
    body["data"]["createApiToken"]["secret"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned()
}

/// Ann (with an e-mail), a message and a feedback whose external ids embed her
/// address, and a duplicate merged into her with a note naming her phone.
async fn plant(app: &TestApp, admin: &str) -> String {
    let created = app
        .graphql(
            "mutation($e: String!) { createCustomer(input: {displayName: \"Ann Lee\", \
             identities: [{kind: EMAIL, value: $e}]}) { customer { id } } }",
            json!({ "e": EMAIL }),
            Some(admin),
        )
        .await;
    let ann = created["data"]["createCustomer"]["customer"]["id"].as_str().unwrap_or_else(|| panic!("{created}"));
    let recorded = app
        .graphql(
            "mutation($x: String!, $e: String!) { recordInteraction(input: {channel: EMAIL, direction: INBOUND, \
             body: \"hello\", externalId: $x, identities: [{kind: EMAIL, value: $e}]}) { interaction { customerId } } }",
            json!({ "x": MESSAGE_ID, "e": EMAIL }),
            Some(admin),
        )
        .await;
    assert_eq!(recorded["data"]["recordInteraction"]["interaction"]["customerId"], ann, "{recorded}");
    let feedback = app
        .graphql(
            "mutation($x: String!, $c: ID!) { submitFeedback(input: {kind: CSAT, score: 4, channel: EMAIL, \
             customerId: $c, externalId: $x}) { feedback { id } userErrors { code message } } }",
            json!({ "x": MESSAGE_ID, "c": ann }),
            Some(admin),
        )
        .await;
    assert!(feedback["data"]["submitFeedback"]["feedback"]["id"].is_string(), "{feedback}");
    let duplicate = app
        .graphql(
            "mutation { createCustomer(input: {displayName: \"A. Lee\"}) { customer { id } } }",
            json!({}),
            Some(admin),
        )
        .await["data"]["createCustomer"]["customer"]["id"]
        .clone();
    let merged = app
        .graphql(
            "mutation($s: ID!, $d: ID!, $n: String!) { mergeCustomers(input: {survivorId: $s, duplicateId: $d, \
             identityKinds: [PHONE], note: $n}) { userErrors { code } } }",
            json!({ "s": ann, "d": duplicate, "n": NOTE }),
            Some(admin),
        )
        .await;
    assert_eq!(merged["data"]["mergeCustomers"]["userErrors"], json!([]), "{merged}");
    ann.to_owned()
}

/// What one caller gets through each door.
struct Doors {
    search: Value,
    lookup: Value,
    by_name: Value,
    blank_search: Value,
    facts: Value,
    merges: Value,
}

async fn try_doors(app: &TestApp, who: &str, ann: &str) -> Doors {
    let q = async |query: &str, vars: Value| app.graphql(query, vars, Some(who)).await;
    Doors {
        search: q(
            "query($s: String!) { customers(first: 5, filter: {search: $s}) { totalCount } }",
            json!({ "s": "ann.l" }),
        )
        .await,
        lookup: q("query($v: String!) { customerByIdentity(kind: EMAIL, value: $v) { id } }", json!({ "v": EMAIL }))
            .await,
        by_name: q("{ customers(first: 5, orderBy: {field: NAME, direction: ASC}) { edges { cursor } } }", json!({}))
            .await,
        blank_search: q("{ customers(first: 5, filter: {search: \"  \"}) { totalCount } }", json!({})).await,
        facts: q(
            "query($c: ID!) { customer(id: $c) { interactions { edges { node { externalId } } } \
             feedback { externalId } } }",
            json!({ "c": ann }),
        )
        .await,
        merges: q("query($c: ID!) { customerMerges(customerId: $c) { evidence } }", json!({ "c": ann })).await,
    }
}

fn export_external_ids(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str::<Value>(l).expect("NDJSON line")["external_id"].clone()).collect()
}

async fn export(app: &TestApp, dataset: &str, who: &str) -> String {
    let resp =
        app.client.get(app.url(&format!("/export/{dataset}?format=ndjson"))).bearer_auth(who).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{dataset}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn masked_callers_cannot_match_on_or_read_around_personal_data() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let ann = plant(app, &admin).await;
        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        let reader = token(app, &admin, "CUSTOMERS_READ, INTERACTIONS_READ, EXPORT").await;
        let pii_reader = token(app, &admin, "CUSTOMERS_READ, INTERACTIONS_READ, EXPORT, PII_READ").await;

        for (who, caller) in [("analyst", &analyst), ("token without pii:read", &reader)] {
            let d = try_doors(app, caller, &ann).await;
            for (door, body) in [("search", &d.search), ("lookup", &d.lookup), ("order by name", &d.by_name)] {
                assert_eq!(error_code(body), Some("FORBIDDEN"), "[{who}] {door}: {body}");
                assert!(body["errors"][0]["message"].as_str().unwrap_or_default().contains("pii:read"), "{body}");
            }
            assert_eq!(d.search["data"]["customers"], Value::Null, "[{who}] no count leaks: {}", d.search);
            assert!(d.blank_search["errors"].is_null(), "[{who}] a blank search matches nothing: {}", d.blank_search);
            assert!(d.facts["errors"].is_null() && d.merges["errors"].is_null(), "[{who}] {} {}", d.facts, d.merges);
            let customer = &d.facts["data"]["customer"];
            assert!(customer["interactions"]["edges"][0]["node"].is_object(), "[{who}] {}", d.facts);
            assert!(customer["feedback"][0].is_object(), "[{who}] {}", d.facts);
            assert_eq!(customer["interactions"]["edges"][0]["node"]["externalId"], Value::Null, "[{who}] {}", d.facts);
            assert_eq!(customer["feedback"][0]["externalId"], Value::Null, "[{who}] {}", d.facts);
            let evidence = &d.merges["data"]["customerMerges"][0]["evidence"];
            assert_eq!(evidence["note"], Value::Null, "[{who}] {}", d.merges);
            assert_eq!(evidence["identityKinds"], json!(["phone"]), "[{who}] the rest of the evidence: {}", d.merges);
        }
        for dataset in ["interactions", "feedback"] {
            let masked = export(app, dataset, &reader).await;
            assert!(!masked.contains("ann.lee"), "{dataset} export without pii:read: {masked}");
            assert_eq!(export_external_ids(&masked), [Value::Null], "{dataset}: {masked}");
            let full = export(app, dataset, &pii_reader).await;
            assert_eq!(export_external_ids(&full), [json!(MESSAGE_ID)], "{dataset} with pii:read: {full}");
        }

        // A writer who sees masks learns that an identity is taken, not whose it is.
        let masked_writer = token(app, &admin, "CUSTOMERS_READ, CUSTOMERS_WRITE").await;
        let taken = app
            .graphql(
                "mutation($e: String!) { createCustomer(input: {identities: [{kind: EMAIL, value: $e}]}) { \
                 customerId userErrors { field code message } } }",
                json!({ "e": EMAIL }),
                Some(&masked_writer),
            )
            .await;
        let refusal = &taken["data"]["createCustomer"]["userErrors"][0];
        assert_eq!(refusal["code"], "CONFLICT", "{taken}");
        assert!(!taken.to_string().contains(&ann), "the owner stays unnamed: {taken}");
        // A token that reads conversations but not customers gets the id, not the customer.
        let conversations_only = token(app, &admin, "INTERACTIONS_READ, PII_READ").await;
        let queue = app
            .graphql(
                "{ conversations(first: 5) { edges { node { customerId customer { displayName } } } } }",
                json!({}),
                Some(&conversations_only),
            )
            .await;
        assert_eq!(error_code(&queue), Some("FORBIDDEN"), "{queue}");
        assert_eq!(queue["data"]["conversations"]["edges"][0]["node"]["customerId"], ann.as_str(), "{queue}");
        assert!(!queue.to_string().contains("Ann Lee"), "{queue}");

        // Those who may read personal data still find and read it all.
        for (who, caller) in [("agent", &agent), ("admin", &admin), ("token with pii:read", &pii_reader)] {
            let d = try_doors(app, caller, &ann).await;
            assert_eq!(d.search["data"]["customers"]["totalCount"], 1, "[{who}] {}", d.search);
            assert_eq!(d.lookup["data"]["customerByIdentity"]["id"], ann.as_str(), "[{who}] {}", d.lookup);
            assert!(d.by_name["errors"].is_null(), "[{who}] {}", d.by_name);
            let customer = &d.facts["data"]["customer"];
            assert_eq!(customer["interactions"]["edges"][0]["node"]["externalId"], MESSAGE_ID, "[{who}] {}", d.facts);
            assert_eq!(customer["feedback"][0]["externalId"], MESSAGE_ID, "[{who}] {}", d.facts);
            assert_eq!(d.merges["data"]["customerMerges"][0]["evidence"]["note"], NOTE, "[{who}] {}", d.merges);
        }
    })
    .await;
}

/// A writer's answer carries ids and status, not what somebody else stored.
#[tokio::test]
async fn writers_get_back_ids_not_what_others_stored() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let secret = "card ending 4111";
        let first = app
            .graphql(
                "mutation($b: String!) { recordInteraction(input: {channel: SMS, direction: INBOUND, body: $b, \
                 externalId: \"sms-1\", identities: [{kind: PHONE, value: \"+442079460111\"}], \
                 customerName: \"Ann Lee\"}) { interaction { id customerId } userErrors { field code message } } }",
                json!({ "b": secret }),
                Some(&admin),
            )
            .await;
        let stored = &first["data"]["recordInteraction"]["interaction"];
        assert!(stored["id"].is_string(), "{first}");
        let feedback = app
            .graphql(
                "mutation($c: ID!) { submitFeedback(input: {kind: CSAT, score: 2, channel: SMS, customerId: $c, \
                 externalId: \"fb-1\", comment: \"card ending 4111 was charged twice\"}) { feedback { id } } }",
                json!({ "c": stored["customerId"] }),
                Some(&admin),
            )
            .await;
        let feedback_id = feedback["data"]["submitFeedback"]["feedback"]["id"].clone();
        assert!(feedback_id.is_string(), "{feedback}");

        let interactions_writer = token(app, &admin, "INTERACTIONS_WRITE").await;
        let replay = app
            .graphql(
                "mutation { recordInteraction(input: {channel: SMS, direction: INBOUND, body: \"hi\", externalId: \"sms-1\", \
                 identities: [{kind: PHONE, value: \"+442079460222\"}]}) { duplicate interactionId \
                 interaction { body customerId } } }",
                json!({}),
                Some(&interactions_writer),
            )
            .await;
        let batch = app
            .graphql(
                "mutation { ingestInteractions(inputs: [{channel: SMS, direction: INBOUND, body: \"hi\", externalId: \"sms-1\", \
                 identities: [{kind: PHONE, value: \"+442079460222\"}]}]) { results { status interactionId \
                 interaction { body } } } }",
                json!({}),
                Some(&interactions_writer),
            )
            .await;
        let customers_writer = token(app, &admin, "CUSTOMERS_WRITE").await;
        let resolved = app
            .graphql(
                "mutation { resolveCustomer(input: {identities: [{kind: PHONE, value: \"+442079460111\"}]}) { created \
                 customerId customer { displayName interactions { edges { node { body } } } } } }",
                json!({}),
                Some(&customers_writer),
            )
            .await;
        let feedback_writer = token(app, &admin, "FEEDBACK_WRITE").await;
        let resubmitted = app
            .graphql(
                "mutation($c: ID!) { submitFeedback(input: {kind: CSAT, score: 5, channel: SMS, customerId: $c, \
                 externalId: \"fb-1\"}) { duplicate feedbackId feedback { comment score } } }",
                json!({ "c": stored["customerId"] }),
                Some(&feedback_writer),
            )
            .await;

        for (what, answer, field) in [
            ("recordInteraction", &replay, "interaction"),
            ("ingestInteractions", &batch, "interaction"),
            ("resolveCustomer", &resolved, "customer"),
            ("submitFeedback", &resubmitted, "feedback"),
        ] {
            let text = answer.to_string();
            assert!(!text.contains("4111") && !text.contains("Ann"), "{what} answers with what was stored: {text}");
            assert_eq!(error_code(answer), Some("FORBIDDEN"), "{what}: {answer}");
            assert_eq!(answer["errors"][0]["path"].as_array().and_then(|p| p.last()), Some(&json!(field)), "{answer}");
        }
        let r = &replay["data"]["recordInteraction"];
        assert_eq!((r["duplicate"].clone(), r["interactionId"].clone()), (json!(true), stored["id"].clone()), "{replay}");
        let item = &batch["data"]["ingestInteractions"]["results"][0];
        assert_eq!((item["status"].clone(), item["interactionId"].clone()), (json!("DUPLICATE"), stored["id"].clone()));
        let c = &resolved["data"]["resolveCustomer"];
        assert_eq!((c["created"].clone(), c["customerId"].clone()), (json!(false), stored["customerId"].clone()));
        let f = &resubmitted["data"]["submitFeedback"];
        assert_eq!((f["duplicate"].clone(), f["feedbackId"].clone()), (json!(true), feedback_id));

        // A writer who may also read gets the whole answer.
        let both = token(app, &admin, "INTERACTIONS_WRITE, INTERACTIONS_READ, PII_READ").await;
        let full = app
            .graphql(
                "mutation { recordInteraction(input: {channel: SMS, direction: INBOUND, body: \"hi\", externalId: \"sms-1\", \
                 identities: [{kind: PHONE, value: \"+442079460111\"}]}) { duplicate interaction { body } } }",
                json!({}),
                Some(&both),
            )
            .await;
        assert_eq!(full["data"]["recordInteraction"]["interaction"]["body"], secret, "{full}");
    })
    .await;
}

/// A token limited to TWITTER sees, in a customer's 360, only what happened on
/// Twitter: feedback, touchpoints, journey positions and metrics too, not just the
/// interactions and conversations — through the one-statement read of the page and
/// through the per-field loaders alike.
#[tokio::test]
async fn a_channel_limited_token_sees_only_its_channels_in_every_list_and_figure() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let saved = app
            .graphql(
                "mutation { saveJourney(input: {name: \"Care\", stages: [{name: \"Ask\"}, {name: \"Solved\"}]}) \
                 { journey { id } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        let journey = saved["data"]["saveJourney"]["journey"]["id"].as_str().unwrap_or_else(|| panic!("{saved}"));
        let handle = "@ann_on_twitter";
        let created = app
            .graphql(
                "mutation($h: String!) { createCustomer(input: {displayName: \"Ann\", \
                 identities: [{kind: EMAIL, value: \"ann@example.com\"}, {kind: TWITTER, value: $h}]}) { customer { id } } }",
                json!({ "h": handle }),
                Some(&admin),
            )
            .await;
        let ann = created["data"]["createCustomer"]["customer"]["id"].as_str().unwrap_or_else(|| panic!("{created}"));
        for (channel, stage, kind, score) in [("TWITTER", "Ask", "CSAT", 2), ("EMAIL", "Solved", "NPS", 9)] {
            let writes = [
                (
                    "mutation($c: ID!, $ch: Channel!, $k: FeedbackKind!, $s: Int!) { submitFeedback(input: \
                     {kind: $k, score: $s, channel: $ch, customerId: $c, comment: \"said so\"}) { userErrors { code } } }",
                    json!({ "c": ann, "ch": channel, "k": kind, "s": score }),
                ),
                (
                    "mutation($j: ID!, $st: String!, $ch: Channel!, $c: ID!) { recordTouchpoint(input: {journeyId: $j, \
                     stage: {name: $st}, channel: $ch, name: $st, outcome: SUCCESS, source: \"t\", customerId: $c}) \
                     { userErrors { code } } }",
                    json!({ "j": journey, "st": stage, "ch": channel, "c": ann }),
                ),
                (
                    "mutation($ch: Channel!, $x: String!, $h: String!) { recordInteraction(input: {channel: $ch, \
                     direction: INBOUND, body: \"hi\", externalId: $x, identities: [{kind: TWITTER, value: $h}]}) \
                     { userErrors { code } } }",
                    json!({ "ch": channel, "x": format!("m-{channel}"), "h": handle }),
                ),
            ];
            for (document, variables) in writes {
                let body = app.graphql(document, variables, Some(&admin)).await;
                assert!(body["errors"].is_null(), "{body}");
            }
        }
        let limited = token_on(app, &admin, "CUSTOMERS_READ, INTERACTIONS_READ", Some("TWITTER")).await;
        let fields = "feedback { channel kind } touchpoints { channel } \
                      journeys { stageName path { stageName touchpoints } } \
                      metrics { interactionCount interactionsByChannel { channel count } csatResponses latestNps { score } }";
        let one = format!("query($id: ID!) {{ customer(id: $id) {{ {fields} }} }}");
        let page = format!("{{ customers(first: 5) {{ nodes {{ {fields} }} }} }}");
        for (who, token) in [("admin", admin.as_str()), ("limited", limited.as_str())] {
            let by_id = app.graphql(&one, json!({ "id": ann }), Some(token)).await;
            let listed = app.graphql(&page, json!({}), Some(token)).await;
            for c in [&by_id["data"]["customer"], &listed["data"]["customers"]["nodes"][0]] {
                assert!(c.is_object(), "[{}] {who}: {by_id} {listed}", app.backend.name());
                let channels = |list: &str| -> Vec<&str> {
                    let mut v: Vec<&str> =
                        c[list].as_array().unwrap().iter().map(|x| x["channel"].as_str().unwrap()).collect();
                    v.sort_unstable();
                    v
                };
                let stages: Vec<&str> =
                    c["journeys"][0]["path"].as_array().unwrap().iter().map(|s| s["stageName"].as_str().unwrap()).collect();
                let m = &c["metrics"];
                if who == "admin" {
                    assert_eq!(channels("feedback"), ["EMAIL", "TWITTER"], "{c}");
                    assert_eq!(channels("touchpoints"), ["EMAIL", "TWITTER"], "{c}");
                    assert_eq!(stages, ["Ask", "Solved"], "{c}");
                    assert_eq!(m["interactionCount"], 2, "{c}");
                    assert_eq!(m["latestNps"]["score"], 9, "{c}");
                } else {
                    assert_eq!(channels("feedback"), ["TWITTER"], "{c}");
                    assert_eq!(channels("touchpoints"), ["TWITTER"], "{c}");
                    assert_eq!(stages, ["Ask"], "the e-mail stage is not on the path: {c}");
                    assert_eq!(c["journeys"][0]["stageName"], "Ask", "{c}");
                    assert_eq!(m["interactionCount"], 1, "{c}");
                    assert_eq!(m["interactionsByChannel"], json!([{ "channel": "TWITTER", "count": 1 }]), "{c}");
                    assert_eq!(m["csatResponses"], 1, "{c}");
                    assert!(m["latestNps"].is_null(), "the NPS came by e-mail: {c}");
                }
            }
        }

        // The customer list's filters stay within its channels, and refuse figures
        // computed over every channel; its latest contact is on its channels.
        let by_mail = app.graphql("{ customers(filter: {channels: [EMAIL]}) { nodes { id } } }", json!({}), Some(&limited)).await;
        assert_eq!(by_mail["data"]["customers"]["nodes"], json!([]), "{by_mail}");
        let by_tweet =
            app.graphql("{ customers(filter: {channels: [TWITTER]}) { nodes { id } } }", json!({}), Some(&limited)).await;
        assert_eq!(by_tweet["data"]["customers"]["nodes"][0]["id"], ann, "{by_tweet}");
        for f in ["npsCategory: PROMOTER", "hasOpenConversation: true", "lastContactFrom: \"2020-01-01T00:00:00Z\""] {
            let q = format!("{{ customers(filter: {{{f}}}) {{ nodes {{ id }} }} }}");
            let refused = app.graphql(&q, json!({}), Some(&limited)).await;
            assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{f}: {refused}");
            let fine = app.graphql(&q, json!({}), Some(&admin)).await;
            assert!(fine["errors"].is_null(), "{f}: {fine}");
        }
        let last = "query($id: ID!) { customer(id: $id) { lastContactAt metrics { lastContactAt } } }";
        let mine = app.graphql(last, json!({ "id": ann }), Some(&limited)).await;
        let all = app.graphql(last, json!({ "id": ann }), Some(&admin)).await;
        let at = |b: &Value, path: &str| -> chrono::DateTime<chrono::Utc> {
            let v = if path == "metrics" { &b["data"]["customer"]["metrics"]["lastContactAt"] } else { &b["data"]["customer"]["lastContactAt"] };
            v.as_str().unwrap_or_else(|| panic!("{b}")).parse().unwrap()
        };
        assert!(at(&mine, "profile") < at(&all, "profile"), "the e-mail came last: {mine} {all}");
        assert_eq!(at(&mine, "profile"), at(&mine, "metrics"), "{mine}");

        // Alerts too: a limited reader of alerts sees those of its channels only.
        use sea_orm::{ActiveModelTrait, IntoActiveModel};
        for channel in [Some(entity::enums::Channel::Twitter), Some(entity::enums::Channel::Email), None] {
            let now = chrono::Utc::now();
            entity::alert::Model {
                id: uuid::Uuid::now_v7(),
                kind: "negative_spike".into(),
                severity: entity::enums::AlertSeverity::Warning,
                status: entity::enums::AlertStatus::Open,
                title: format!("spike on {channel:?}"),
                channel,
                topic_id: None,
                conversation_id: None,
                details: json!({}),
                dedupe_key: format!("test-{channel:?}"),
                raised_at: now,
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: None,
                scope: channel.map(|c| format!("channel:{c:?}")),
                window_start: None,
                window_end: None,
                backfill: false,
            }
            .into_active_model()
            .insert(&app.db)
            .await
            .unwrap();
        }
        let watcher = token_on(app, &admin, "INSIGHTS_READ", Some("TWITTER")).await;
        let alerts = "{ alerts(first: 10) { edges { node { channel } } } }";
        let seen = |body: &Value| -> Vec<Value> {
            body["data"]["alerts"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["channel"].clone()).collect()
        };
        let all = app.graphql(alerts, json!({}), Some(&admin)).await;
        assert_eq!(seen(&all).len(), 3, "{all}");
        let limited = app.graphql(alerts, json!({}), Some(&watcher)).await;
        assert_eq!(seen(&limited), [json!("TWITTER")], "{limited}");
    })
    .await;
}
