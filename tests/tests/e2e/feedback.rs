//! Feedback on both backends: survey answers checked against their scale, unsolicited
//! mentions, sentiment on every comment, topic tagging at ingest (feedback and inbound
//! interactions), idempotency, batches, and re-tagging the history as a background job
//! after a topic's keywords change.

use std::time::Duration;

use cxgraph_tests::{TestApp, backends};
use entity::prelude::*;
use entity::{feedback_topic, interaction_topic};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const SUBMIT: &str = "mutation($input: SubmitFeedbackInput!) { submitFeedback(input: $input) { duplicate \
    feedback { id kind score comment sentimentLabel sentimentScore channel topics { name } } \
    userErrors { field code message } } }";

async fn submit(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app.graphql(SUBMIT, json!({ "input": input }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["submitFeedback"].clone()
}

async fn save_topic(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app
        .graphql(
            "mutation($input: SaveTopicInput!) { saveTopic(input: $input) { topic { id name keywords retagPending } \
             userErrors { field code } } }",
            json!({ "input": input }),
            Some(token),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["saveTopic"].clone()
}

async fn topic_links(app: &TestApp, topic: Uuid) -> (u64, u64) {
    let f = FeedbackTopic::find().filter(feedback_topic::Column::TopicId.eq(topic)).count(&app.db).await.unwrap();
    let i = InteractionTopic::find().filter(interaction_topic::Column::TopicId.eq(topic)).count(&app.db).await.unwrap();
    (f, i)
}

fn codes(payload: &Value) -> Vec<(String, String)> {
    payload["userErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_array().unwrap().last().unwrap().as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn feedback_is_validated_scored_tagged_and_retagged() {
    for backend in backends() {
        let owned = TestApp::spawn_with(&backend, |s| s.insights_job_interval = 1).await;
        let app = &owned;
        let admin = app.login_admin().await.access;
        let survey = app
            .graphql(
                "mutation { saveSurvey(input: {name: \"Relationship\", kind: NPS, question: \"Recommend us?\"}) { survey { id minScore maxScore } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        let survey_id = survey["data"]["saveSurvey"]["survey"]["id"].as_str().unwrap().to_owned();
        assert_eq!(survey["data"]["saveSurvey"]["survey"]["maxScore"], 10);
        let delivery =
            save_topic(app, &admin, json!({ "name": "Delivery", "keywords": ["parcel", "Late Delivery"] })).await;
        let delivery_id: Uuid = delivery["topic"]["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(delivery["topic"]["keywords"], json!(["late delivery", "parcel"]), "normalised");

        let who = json!([{ "kind": "EMAIL", "value": "nina@example.com" }]);
        let out_of_range =
            submit(app, &admin, json!({ "surveyId": survey_id, "score": 11, "channel": "EMAIL", "identities": who }))
                .await;
        assert_eq!(codes(&out_of_range), [("score".to_owned(), "OUT_OF_RANGE".to_owned())]);
        let no_score =
            submit(app, &admin, json!({ "surveyId": survey_id, "channel": "EMAIL", "identities": who })).await;
        assert_eq!(codes(&no_score), [("score".to_owned(), "REQUIRED".to_owned())]);
        let mismatch = submit(
            app,
            &admin,
            json!({ "surveyId": survey_id, "kind": "CSAT", "score": 3, "channel": "EMAIL", "identities": who }),
        )
        .await;
        assert_eq!(codes(&mismatch), [("kind".to_owned(), "MISMATCH".to_owned())]);
        let mention_without_text =
            submit(app, &admin, json!({ "kind": "SOCIAL_MENTION", "channel": "TWITTER", "identities": who })).await;
        assert_eq!(codes(&mention_without_text), [("comment".to_owned(), "REQUIRED".to_owned())]);
        let mention_with_score = submit(
            app,
            &admin,
            json!({ "kind": "SOCIAL_MENTION", "score": 3, "comment": "hm", "channel": "TWITTER", "identities": who }),
        )
        .await;
        assert_eq!(codes(&mention_with_score), [("score".to_owned(), "NOT_ALLOWED".to_owned())]);

        let answer = json!({ "surveyId": survey_id, "score": 3, "comment": "Terrible: a very late delivery and the parcel was damaged",
            "channel": "EMAIL", "source": "survey-vendor", "externalId": "resp-1", "identities": who });
        let stored = submit(app, &admin, answer.clone()).await;
        assert_eq!(stored["feedback"]["kind"], "NPS", "{stored}");
        assert_eq!(stored["feedback"]["sentimentLabel"], "NEGATIVE");
        assert_eq!(submit(app, &admin, answer).await["duplicate"], true);
        assert_eq!(topic_links(app, delivery_id).await.0, 1, "tagged at ingest");
        assert_eq!(stored["feedback"]["topics"], json!([{ "name": "Delivery" }]), "and shown on the feedback");

        // A mention and an inbound message that only a later keyword catches.
        let mention = submit(app, &admin, json!({ "kind": "SOCIAL_MENTION", "comment": "My courier never showed up", "channel": "TWITTER", "identities": who })).await;
        assert!(codes(&mention).is_empty(), "{mention}");
        let message = app
            .graphql(
                "mutation { recordInteraction(input: {channel: CHAT, direction: INBOUND, body: \"where is the parcel? the courier is lost\", \
                 externalId: \"chat-1\", identities: [{kind: EMAIL, value: \"nina@example.com\"}]}) { interaction { id topics { name } } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        assert!(message["errors"].is_null(), "{message}");
        assert_eq!(message["data"]["recordInteraction"]["interaction"]["topics"], json!([{ "name": "Delivery" }]));
        assert_eq!(topic_links(app, delivery_id).await, (1, 1), "inbound interactions are tagged at ingest too");

        let changed = save_topic(app, &admin, json!({ "id": delivery_id.to_string(), "keywords": ["courier"] })).await;
        assert_eq!(changed["topic"]["retagPending"], true, "{changed}");
        let mut waited = 0;
        loop {
            let topics = app.graphql("{ topics { name retagPending } }", json!({}), Some(&admin)).await;
            if topics["data"]["topics"][0]["retagPending"] == false {
                break;
            }
            waited += 1;
            assert!(waited < 100, "re-tagging never finished: {topics}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            topic_links(app, delivery_id).await,
            (1, 1),
            "the mention and the message, not the NPS answer any more"
        );

        let batch = app
            .graphql(
                "mutation($inputs: [SubmitFeedbackInput!]!) { ingestFeedback(inputs: $inputs) { created duplicates rejected \
                 results { status userErrors { field code } } } }",
                json!({ "inputs": [
                    { "kind": "CSAT", "score": 5, "channel": "CHAT", "identities": who },
                    { "kind": "CES", "score": 0, "channel": "CHAT", "identities": who },
                    { "kind": "REVIEW", "score": 4, "channel": "REVIEW", "identities": who },
                ] }),
                Some(&admin),
            )
            .await;
        let p = &batch["data"]["ingestFeedback"];
        assert_eq!((p["created"].as_i64(), p["rejected"].as_i64()), (Some(2), Some(1)), "{batch}");
        assert_eq!(p["results"][1]["userErrors"][0]["field"], json!(["inputs", "1", "score"]));
        owned.stop().await;
    }
}

/// A batch lands whole, with the audit entry that counts it: while its last item
/// waits for its customer (held here by another writer), none of the earlier items
/// can be seen, and then all of them and the entry appear together. Each item still
/// answers for itself.
#[tokio::test]
async fn a_feedback_batch_commits_whole_with_its_audit_entry() {
    use cxgraph_tests::{Writer, on_each_backend, until_waiting};
    use entity::{audit_entry, feedback};
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let (first, last) =
            (cxgraph_tests::insert_customer(&app.db, None).await, cxgraph_tests::insert_customer(&app.db, None).await);
        let item = |customer: Uuid, comment: &str| {
            json!({ "kind": "COMMENT", "comment": comment, "channel": "WEB", "customerId": customer.to_string() })
        };
        let inputs = json!([item(first, "late again"), item(first, "still late"), item(last, "fine")]);
        let held = Writer::start(app, "UPDATE customers SET updated_at = updated_at WHERE id = ?", last).await;
        let batch = app.graphql(
            "mutation($inputs: [SubmitFeedbackInput!]!) { ingestFeedback(inputs: $inputs) { created rejected } }",
            json!({ "inputs": inputs }),
            Some(&admin),
        );
        let rows = |customer: Uuid| Feedback::find().filter(feedback::Column::CustomerId.eq(customer)).count(&app.db);
        let audited = || AuditEntry::find().filter(audit_entry::Column::Operation.eq("ingestFeedback")).all(&app.db);
        let meanwhile = async {
            until_waiting(app, 1).await;
            let seen = (rows(first).await.unwrap(), audited().await.unwrap().len());
            held.finish().await.unwrap();
            seen
        };
        let (answer, seen) = tokio::join!(batch, meanwhile);
        let name = app.backend.name();
        assert_eq!(seen, (0, 0), "[{name}] nothing of the batch shows before it commits");
        let p = &answer["data"]["ingestFeedback"];
        assert_eq!((p["created"].as_i64(), p["rejected"].as_i64()), (Some(3), Some(0)), "[{name}] {answer}");
        assert_eq!((rows(first).await.unwrap(), rows(last).await.unwrap()), (2, 1));
        let entries = audited().await.unwrap();
        assert_eq!(entries.len(), 1, "[{name}]");
        assert_eq!(entries[0].changes, json!({ "created": 3, "duplicates": 0, "rejected": 0 }));
    })
    .await;
}
