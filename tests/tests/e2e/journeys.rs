//! Journeys and touchpoints on both backends: configuring ordered stages (rename,
//! reorder, refusing to drop a stage with history), recording touchpoints by stage
//! name or id with idempotency, batches answered per item, channel-limited tokens, and
//! the customer's current stage in the 360 view.

use cxgraph_tests::{TestApp, on_each_backend};
use serde_json::{Value, json};

const SAVE: &str = "mutation($input: SaveJourneyInput!) { saveJourney(input: $input) { \
    journey { id name description stages { id name position } } userErrors { field code message } } }";

const RECORD: &str = "mutation($input: RecordTouchpointInput!) { recordTouchpoint(input: $input) { \
    duplicate touchpoint { id customerId stageId channel name outcome source externalId } userErrors { field code } } }";

async fn save(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app.graphql(SAVE, json!({ "input": input }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["saveJourney"].clone()
}

async fn record(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app.graphql(RECORD, json!({ "input": input }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["recordTouchpoint"].clone()
}

fn codes(payload: &Value) -> Vec<String> {
    payload["userErrors"].as_array().unwrap().iter().map(|e| e["code"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn journeys_keep_ordered_stages_and_their_history() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let bad = save(app, &admin, json!({ "name": "Buy", "stages": [{ "name": "Cart" }, { "name": "cart" }] })).await;
        assert_eq!(codes(&bad), ["DUPLICATE"], "{bad}");
        let none = save(app, &admin, json!({ "name": "Buy" })).await;
        assert_eq!(codes(&none), ["REQUIRED"]);

        let created = save(
            app,
            &admin,
            json!({ "name": "Buy", "description": "From browsing to delivery",
                    "stages": [{ "name": "Browse" }, { "name": "Cart" }, { "name": "Checkout" }] }),
        )
        .await;
        let journey = &created["journey"];
        let journey_id = journey["id"].as_str().unwrap().to_owned();
        let stage = |i: usize| journey["stages"][i]["id"].as_str().unwrap().to_owned();
        let (browse, cart, checkout) = (stage(0), stage(1), stage(2));
        let taken = save(app, &admin, json!({ "name": "Buy", "stages": [{ "name": "x" }] })).await;
        assert_eq!(codes(&taken), ["TAKEN"]);

        // Swap Cart and Checkout and rename Browse in one save.
        let moved = save(
            app,
            &admin,
            json!({ "id": journey_id, "stages": [{ "id": browse, "name": "Discover" }, { "id": checkout, "name": "Checkout" },
                    { "id": cart, "name": "Cart" }] }),
        )
        .await;
        let names: Vec<&str> =
            moved["journey"]["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Discover", "Checkout", "Cart"], "{moved}");
        assert_eq!(moved["journey"]["description"], "From browsing to delivery", "absent fields stay");

        // A touchpoint by stage name, for a customer found by identity.
        let input = json!({ "journeyId": journey_id, "stage": { "name": "checkout" }, "channel": "WEB", "name": "checkout",
            "outcome": "ABANDONED", "source": "shop", "externalId": "order-1",
            "identities": [{ "kind": "EMAIL", "value": "Tess@Example.com" }], "customerName": "Tess" });
        let first = record(app, &admin, input.clone()).await;
        assert_eq!(first["duplicate"], false, "{first}");
        assert_eq!(first["touchpoint"]["stageId"], checkout.as_str());
        assert_eq!(first["touchpoint"]["outcome"], "ABANDONED");
        let again = record(app, &admin, input.clone()).await;
        assert_eq!(again["duplicate"], true);
        assert_eq!(again["touchpoint"]["id"], first["touchpoint"]["id"]);
        let customer_id = first["touchpoint"]["customerId"].as_str().unwrap().to_owned();

        // Later the same customer reaches Cart (by stage id): it is their current stage.
        let later = record(
            app,
            &admin,
            json!({ "journeyId": journey_id, "stage": { "id": cart }, "channel": "WEB", "name": "cart",
                    "outcome": "SUCCESS", "customerId": customer_id }),
        )
        .await;
        assert!(codes(&later).is_empty(), "{later}");
        let view = app
            .graphql(
                "query($id: ID!) { customer(id: $id) { journeys { journeyName stageName outcome path { stageName touchpoints lastOutcome } } } }",
                json!({ "id": customer_id }),
                Some(&admin),
            )
            .await;
        assert_eq!(view["data"]["customer"]["journeys"][0]["stageName"], "Cart", "{view}");
        let path: Vec<(&str, &str)> = view["data"]["customer"]["journeys"][0]["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["stageName"].as_str().unwrap(), s["lastOutcome"].as_str().unwrap()))
            .collect();
        assert_eq!(path, [("Checkout", "ABANDONED"), ("Cart", "SUCCESS")], "in journey order (Checkout was moved first)");

        // Dropping a stage with touchpoints is refused; dropping an unused one works.
        let drop_used = save(app, &admin, json!({ "id": journey_id, "stages": [{ "id": browse, "name": "Discover" }, { "id": cart, "name": "Cart" }] })).await;
        assert_eq!(codes(&drop_used), ["STAGE_IN_USE"], "{drop_used}");
        let drop_unused = save(
            app,
            &admin,
            json!({ "id": journey_id, "stages": [{ "id": checkout, "name": "Checkout" }, { "id": cart, "name": "Cart" }] }),
        )
        .await;
        assert!(codes(&drop_unused).is_empty(), "{drop_unused}");
        let deleted = app
            .graphql("mutation($id: ID!) { deleteJourney(id: $id) { deletedId userErrors { code } } }", json!({ "id": journey_id }), Some(&admin))
            .await;
        assert_eq!(deleted["data"]["deleteJourney"]["userErrors"][0]["code"], "JOURNEY_IN_USE", "{deleted}");
    })
    .await;
}

#[tokio::test]
async fn touchpoint_batches_answer_per_item_and_tokens_keep_to_their_channels() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let created = save(app, &admin, json!({ "name": "Onboarding", "stages": [{ "name": "Sign-up" }, { "name": "First use" }] })).await;
        let journey_id = created["journey"]["id"].as_str().unwrap().to_owned();
        let item = |stage: &str, ext: &str, channel: &str| {
            json!({ "journeyId": journey_id, "stage": { "name": stage }, "channel": channel, "name": "step",
                    "outcome": "SUCCESS", "source": "app", "externalId": ext,
                    "identities": [{ "kind": "WEB", "value": format!("device-{ext}") }] })
        };
        let batch = app
            .graphql(
                "mutation($inputs: [RecordTouchpointInput!]!) { recordTouchpoints(inputs: $inputs) { created duplicates rejected \
                 results { index status errorCode userErrors { field code } touchpoint { id } } } }",
                json!({ "inputs": [item("Sign-up", "a", "WEB"), item("Nowhere", "b", "WEB"), item("First use", "c", "WEB"),
                                   item("Sign-up", "a", "WEB"), { "journeyId": "nope", "stage": { "name": "x" }, "channel": "WEB",
                                   "name": "n", "outcome": "SUCCESS", "customerId": "also-nope" }] }),
                Some(&admin),
            )
            .await;
        let p = &batch["data"]["recordTouchpoints"];
        assert_eq!((p["created"].as_i64(), p["duplicates"].as_i64(), p["rejected"].as_i64()), (Some(2), Some(1), Some(2)), "{batch}");
        assert_eq!(p["results"][1]["userErrors"][0]["field"], json!(["inputs", "1", "stage"]));
        assert_eq!(p["results"][3]["status"], "DUPLICATE");
        assert_eq!(p["results"][4]["errorCode"], "BAD_USER_INPUT");

        // A partner limited to the app channel cannot write web touchpoints.
        let token = app.api_token(&admin, "{name: \"app vendor\", scopes: [TOUCHPOINTS_WRITE], channels: [CHAT]}").await;
        // A writer that may not read customers gets the id back, not the touchpoint.
        let write_only = "mutation($input: RecordTouchpointInput!) { recordTouchpoint(input: $input) { \
                          duplicate touchpointId userErrors { field code } } }";
        let refused = app.graphql(write_only, json!({ "input": item("Sign-up", "d", "WEB") }), Some(&token)).await;
        assert_eq!(cxgraph_tests::error_code(&refused), Some("FORBIDDEN"), "{refused}");
        assert_eq!(refused["errors"][0]["path"], json!(["recordTouchpoint"]), "the write itself: {refused}");
        let allowed = app.graphql(write_only, json!({ "input": item("Sign-up", "e", "CHAT") }), Some(&token)).await;
        let allowed = &allowed["data"]["recordTouchpoint"];
        assert_eq!(allowed["duplicate"], false, "{allowed}");
        assert!(allowed["touchpointId"].is_string(), "{allowed}");
        let journeys = app.graphql("{ journeys { name stages { name } } }", json!({}), Some(&token)).await;
        assert_eq!(journeys["data"]["journeys"][0]["stages"][1]["name"], "First use", "a writer can read the catalogue");
    })
    .await;
}
