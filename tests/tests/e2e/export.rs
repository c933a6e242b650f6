//! The BI export over HTTP on both backends: CSV and NDJSON, what the conversations
//! export carries (times, SLA outcome, CSAT, tags, topics), personal data masked for
//! analysts, channel-limited tokens held to their channels, incremental pulls with
//! `updated_since`, the audit entry, and clean refusals.

use std::collections::HashMap;

use cxgraph_tests::{TestApp, on_each_backend};
use entity::audit_entry;
use entity::enums::Role;
use entity::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> (u16, HashMap<String, String>, String) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    (status, headers, resp.text().await.unwrap())
}

/// CSV rows as maps from the header (the test data holds no commas or quotes).
fn csv(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines.map(|l| header.iter().map(|h| (*h).to_owned()).zip(l.split(',').map(str::to_owned)).collect()).collect()
}

async fn setup(app: &TestApp, admin: &str) {
    let topic = app
        .graphql(
            "mutation { saveTopic(input: {name: \"Billing\", keywords: [\"refund\"]}) { topic { id } } }",
            json!({}),
            Some(admin),
        )
        .await;
    assert!(topic["errors"].is_null(), "{topic}");
    let record = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { interaction { id conversationId } } }";
    let inbound = app
        .graphql(
            record,
            json!({ "input": { "channel": "TWITTER", "direction": "INBOUND", "visibility": "PUBLIC_POST",
                "body": "I want a refund now", "externalId": "tw-1", "occurredAt": "2026-03-02T10:00:00Z",
                "identities": [{ "kind": "TWITTER", "value": "ann_lee" }], "customerName": "Ann Lee" } }),
            Some(admin),
        )
        .await;
    let conversation = inbound["data"]["recordInteraction"]["interaction"]["conversationId"].clone();
    let interaction = inbound["data"]["recordInteraction"]["interaction"]["id"].clone();
    let reply = app
        .graphql(
            record,
            json!({ "input": { "channel": "TWITTER", "direction": "OUTBOUND", "body": "Sorry, on it", "externalId": "tw-2",
                "occurredAt": "2026-03-02T10:15:00Z", "identities": [{ "kind": "TWITTER", "value": "ann_lee" }] } }),
            Some(admin),
        )
        .await;
    assert!(reply["errors"].is_null(), "{reply}");
    let tagged = app
        .graphql(
            "mutation($id: ID!) { tagConversation(input: {conversationId: $id, add: [\"vip\", \"refund\"]}) { userErrors { code } } }",
            json!({ "id": conversation }),
            Some(admin),
        )
        .await;
    assert!(tagged["errors"].is_null(), "{tagged}");
    let csat = app
        .graphql(
            "mutation($input: SubmitFeedbackInput!) { submitFeedback(input: $input) { userErrors { code } } }",
            json!({ "input": { "kind": "CSAT", "score": 4, "comment": "Quick answer thanks", "channel": "TWITTER",
                "interactionId": interaction, "identities": [{ "kind": "TWITTER", "value": "ann_lee" }] } }),
            Some(admin),
        )
        .await;
    assert!(csat["errors"].is_null(), "{csat}");
    let email = app
        .graphql(
            record,
            json!({ "input": { "channel": "EMAIL", "direction": "INBOUND", "body": "Hello", "externalId": "em-1",
                "identities": [{ "kind": "EMAIL", "value": "bo@example.com" }], "customerName": "Bo Park" } }),
            Some(admin),
        )
        .await;
    assert!(email["errors"].is_null(), "{email}");
}

#[tokio::test]
async fn exports_carry_what_bi_needs_and_mask_what_callers_may_not_read() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        setup(app, &admin).await;

        let (status, headers, body) = get(app, "/export/conversations", Some(&admin)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        assert!(headers.contains_key("x-export-watermark"));
        let rows = csv(&body);
        let twitter = rows.iter().find(|r| r["channel"] == "TWITTER").unwrap_or_else(|| panic!("{body}"));
        assert_eq!(twitter["first_response_seconds"].parse::<f64>().unwrap().round(), 900.0, "{body}");
        assert_eq!(twitter["csat"].parse::<f64>().unwrap(), 4.0);
        assert_eq!(twitter["tags"], "vip;refund");
        assert_eq!(twitter["topics"], "Billing");
        assert_eq!(twitter["status"], "OPEN");

        // NDJSON of interactions, with bodies for an admin.
        let (status, headers, body) = get(app, "/export/interactions?format=ndjson&channels=TWITTER", Some(&admin)).await;
        assert_eq!((status, headers["content-type"].as_str()), (200, "application/x-ndjson"));
        let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{body}");
        assert_eq!(lines[0]["body"], "I want a refund now");
        assert_eq!(lines[0]["topics"], "Billing");

        // An analyst sees everything, personal data masked.
        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let (_, _, customers) = get(app, "/export/customers", Some(&analyst)).await;
        let names: Vec<String> = csv(&customers).into_iter().map(|r| r["display_name"].clone()).collect();
        assert!(names.contains(&"A*** L***".to_owned()), "{customers}");
        let (_, _, feedback) = get(app, "/export/feedback?format=ndjson", Some(&analyst)).await;
        let first: Value = serde_json::from_str(feedback.lines().next().unwrap()).unwrap();
        assert!(first["comment"].is_null() && first["score"] == 4, "{feedback}");

        // A social agency's token: its channels only, and no customers.
        let token = app.api_token(&admin, "{name: \"agency\", scopes: [EXPORT], channels: [TWITTER]}").await;
        let (_, _, limited) = get(app, "/export/interactions?channels=TWITTER,EMAIL", Some(&token)).await;
        assert!(csv(&limited).iter().all(|r| r["channel"] == "TWITTER"), "{limited}");
        assert!(csv(&limited).iter().all(|r| r["body"].is_empty()), "no pii:read, no bodies");
        assert_eq!(get(app, "/export/customers", Some(&token)).await.0, 403);
        let (status, _, nothing) = get(app, "/export/interactions?channels=EMAIL", Some(&token)).await;
        assert_eq!((status, csv(&nothing).len()), (200, 0), "no channel left: an empty export, not an error");

        // Incremental: only what changed since.
        let since = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let later = app
            .graphql(
                "mutation { recordInteraction(input: {channel: CHAT, direction: INBOUND, body: \"late\", externalId: \"chat-9\", \
                 identities: [{kind: EMAIL, value: \"bo@example.com\"}]}) { interaction { id } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        let late_id = later["data"]["recordInteraction"]["interaction"]["id"].as_str().unwrap().to_owned();
        let path = format!("/export/interactions?updated_since={}", since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B"));
        let (_, _, delta) = get(app, &path, Some(&admin)).await;
        let ids: Vec<String> = csv(&delta).into_iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, [late_id], "{delta}");

        // Refusals, and the audit trail.
        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        assert_eq!(get(app, "/export/feedback", Some(&agent)).await.0, 403);
        assert_eq!(get(app, "/export/feedback", None).await.0, 401);
        assert_eq!(get(app, "/export/users", Some(&admin)).await.0, 404);
        assert_eq!(get(app, "/export/feedback?format=xlsx", Some(&admin)).await.0, 400);
        assert_eq!(get(app, "/export/feedback?from=yesterday", Some(&admin)).await.0, 400);
        let audited = AuditEntry::find().filter(audit_entry::Column::Operation.eq("export")).all(&app.db).await.unwrap();
        assert!(audited.len() >= 5, "every export is audited");
    })
    .await;
}
