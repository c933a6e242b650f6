//! Ingest over HTTP on both backends: resolution, threading, routing, SLA due times,
//! the first reply stopping the clock, sentiment, idempotency (also under concurrent
//! delivery), batches with bad items, and the NDJSON endpoint.

use chrono::{Duration, Utc};
use cxgraph_tests::{TestApp, backends, error_code, on_each_backend};
use entity::enums::{Channel, ConversationStatus, Priority, Role};
use entity::prelude::*;
use entity::{interaction, routing_rule, sla_policy, team};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const RECORD: &str = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { \
    duplicate interaction { id customerId conversationId channel direction sentimentScore sentimentLabel body } \
    userErrors { field code message } } }";

async fn record(app: &TestApp, token: &str, input: Value) -> Value {
    let body = app.graphql(RECORD, json!({ "input": input }), Some(token)).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["recordInteraction"].clone()
}

/// A social-care team, a rule sending public complaints about refunds to it at high
/// priority, and SLA policies: public social 30 min, the rest 24 h.
async fn configure(app: &TestApp) -> (Uuid, Uuid) {
    let now = Utc::now();
    let team_id = team::Model { id: Uuid::now_v7(), name: "Social care".into(), created_at: now }
        .into_active_model()
        .insert(&app.db)
        .await
        .unwrap()
        .id;
    let rule_id = routing_rule::Model {
        id: Uuid::now_v7(),
        name: "Public refund complaints".into(),
        position: 1,
        enabled: true,
        conditions: json!({ "channels": ["twitter"], "visibility": "public_post", "keywords": ["refund"] }),
        team_id: Some(team_id),
        set_priority: Some(Priority::High),
        add_tags: json!(["refund", "public"]),
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .insert(&app.db)
    .await
    .unwrap()
    .id;
    for (channel, priority, first, resolve) in
        [(Some(Channel::Twitter), Some(Priority::High), 30, 240), (None, None, 24 * 60, 72 * 60)]
    {
        sla_policy::Model {
            id: Uuid::now_v7(),
            name: format!("{channel:?} {priority:?}"),
            channel,
            priority,
            first_response_minutes: first,
            resolution_minutes: resolve,
            active: true,
            business_hours: None,
            created_at: now,
            updated_at: now,
        }
        .into_active_model()
        .insert(&app.db)
        .await
        .unwrap();
    }
    (team_id, rule_id)
}

#[tokio::test]
async fn ingest_resolves_threads_routes_and_starts_the_sla_clock() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let (team_id, rule_id) = configure(app).await;
        let at = Utc::now() - Duration::minutes(10);
        let first = record(
            app,
            &admin,
            json!({
                "channel": "TWITTER", "direction": "INBOUND", "visibility": "PUBLIC_POST", "inbox": "@AcmeCare",
                "body": "Still waiting for my refund, absolutely furious!!", "externalId": "tw-1",
                "occurredAt": at.to_rfc3339(), "identities": [{ "kind": "TWITTER", "value": "@AngryAnn" }],
                "customerName": "Ann",
            }),
        )
        .await;
        assert_eq!(first["userErrors"], json!([]), "{first}");
        assert_eq!(first["duplicate"], false);
        let i = &first["interaction"];
        assert_eq!(i["sentimentLabel"], "NEGATIVE", "{first}");
        assert!(i["sentimentScore"].as_f64().unwrap() < -0.3);
        let customer_id = Uuid::parse_str(i["customerId"].as_str().unwrap()).unwrap();
        let conversation_id = Uuid::parse_str(i["conversationId"].as_str().unwrap()).unwrap();

        let c = Conversation::find_by_id(conversation_id).one(&app.db).await.unwrap().unwrap();
        assert_eq!(c.customer_id, customer_id);
        assert_eq!((c.team_id, c.routing_rule_id, c.priority), (Some(team_id), Some(rule_id), Priority::High));
        assert_eq!(c.tags, json!(["refund", "public"]));
        assert_eq!(c.status, ConversationStatus::Open);
        let due = c.first_response_due_at.unwrap();
        assert!((due - (at + Duration::minutes(30))).num_seconds().abs() <= 1, "30-minute public social SLA: {due}");
        let customer = Customer::find_by_id(customer_id).one(&app.db).await.unwrap().unwrap();
        assert_eq!(customer.display_name.as_deref(), Some("Ann"));
        assert!(customer.last_contact_at.is_some());

        // The same customer again on the same channel joins the open conversation.
        let second = record(
            app,
            &admin,
            json!({
                "channel": "TWITTER", "direction": "INBOUND", "visibility": "PUBLIC_POST", "body": "hello??",
                "externalId": "tw-2", "identities": [{ "kind": "TWITTER", "value": "angryann" }],
            }),
        )
        .await;
        assert_eq!(second["interaction"]["conversationId"], conversation_id.to_string());
        assert_eq!(second["interaction"]["customerId"], customer_id.to_string());

        // Our first reply stops the first-response clock, in time.
        let reply = record(
            app,
            &admin,
            json!({
                "channel": "TWITTER", "direction": "OUTBOUND", "visibility": "PUBLIC_POST", "body": "Sorry Ann, DM us",
                "externalId": "tw-3", "customerId": customer_id.to_string(),
            }),
        )
        .await;
        assert_eq!(reply["interaction"]["conversationId"], conversation_id.to_string(), "{reply}");
        assert!(reply["interaction"]["sentimentScore"].is_null(), "only inbound text is scored");
        let c = Conversation::find_by_id(conversation_id).one(&app.db).await.unwrap().unwrap();
        assert!(c.first_response_at.is_some());
        assert!(!c.first_response_breached);

        // Another channel opens another conversation, under the default policy and route.
        let email = record(
            app,
            &admin,
            json!({
                "channel": "EMAIL", "direction": "INBOUND", "body": "Can I change my address?", "externalId": "m-1",
                "customerId": customer_id.to_string(),
            }),
        )
        .await;
        let other = Uuid::parse_str(email["interaction"]["conversationId"].as_str().unwrap()).unwrap();
        assert_ne!(other, conversation_id);
        let c = Conversation::find_by_id(other).one(&app.db).await.unwrap().unwrap();
        assert_eq!((c.team_id, c.routing_rule_id, c.priority), (None, None, Priority::Normal));
        assert!(c.first_response_due_at.unwrap() > Utc::now() + Duration::hours(23), "24 h default SLA");
    })
    .await;
}

#[tokio::test]
async fn a_resolved_conversation_reopens_on_a_new_inbound_message() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let ids = json!([{ "kind": "EMAIL", "value": "re@example.com" }]);
        let first = record(
            app,
            &admin,
            json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "help",
            "externalId": "r-1", "identities": ids }),
        )
        .await;
        let conversation_id = Uuid::parse_str(first["interaction"]["conversationId"].as_str().unwrap()).unwrap();
        let mut c = Conversation::find_by_id(conversation_id).one(&app.db).await.unwrap().unwrap().into_active_model();
        c.status = sea_orm::Set(ConversationStatus::Resolved);
        c.resolved_at = sea_orm::Set(Some(Utc::now()));
        c.update(&app.db).await.unwrap();
        let again = record(
            app,
            &admin,
            json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "still broken",
            "externalId": "r-2", "identities": ids }),
        )
        .await;
        assert_eq!(again["interaction"]["conversationId"], conversation_id.to_string());
        let c = Conversation::find_by_id(conversation_id).one(&app.db).await.unwrap().unwrap();
        assert_eq!(c.status, ConversationStatus::Open);
        assert!(c.resolved_at.is_none());
    })
    .await;
}

#[tokio::test]
async fn the_same_event_twice_is_one_interaction_also_when_delivered_concurrently() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.db_max_connections = 10).await;
        let admin = app.login_admin().await.access;
        let event = json!({ "channel": "SMS", "direction": "INBOUND", "body": "where is my order",
            "externalId": "sms-42", "identities": [{ "kind": "PHONE", "value": "+44 20 7946 0958" }] });
        let first = record(&app, &admin, event.clone()).await;
        let again = record(&app, &admin, event.clone()).await;
        assert_eq!(again["duplicate"], true, "[{}] {again}", backend.name());
        assert_eq!(again["interaction"]["id"], first["interaction"]["id"]);

        let burst = json!({ "channel": "WHATSAPP", "direction": "INBOUND", "body": "hi",
            "externalId": "wa-7", "identities": [{ "kind": "WHATSAPP", "value": "+12025550143" }] });
        let answers =
            futures::future::join_all((0..12).map(|_| app.graphql(RECORD, json!({ "input": burst }), Some(&admin))))
                .await;
        let mut ids: Vec<String> = answers
            .iter()
            .map(|a| {
                a["data"]["recordInteraction"]["interaction"]["id"].as_str().unwrap_or_else(|| panic!("{a}")).to_owned()
            })
            .collect();
        ids.dedup();
        assert_eq!(ids.len(), 1, "[{}] every copy answers with the one interaction", backend.name());
        let created = answers.iter().filter(|a| a["data"]["recordInteraction"]["duplicate"] == false).count();
        assert_eq!(created, 1, "[{}] exactly one copy created it", backend.name());
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), 2);
        assert_eq!(Customer::find().count(&app.db).await.unwrap(), 2, "and one customer each");
        assert_eq!(Conversation::find().count(&app.db).await.unwrap(), 2);
        app.stop().await;
    }
}

const INGEST: &str = "mutation($inputs: [RecordInteractionInput!]!) { ingestInteractions(inputs: $inputs) { \
    created duplicates rejected results { index status interaction { id } userErrors { field code } errorCode } } }";

#[tokio::test]
async fn a_batch_answers_per_item_and_a_bad_item_loses_nothing_else() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let item = |ext: &str, value: &str| {
            json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "hi", "externalId": ext,
                "identities": [{ "kind": "EMAIL", "value": value }] })
        };
        let inputs = json!([
            item("b-1", "one@example.com"),
            item("b-2", "not-an-email"),
            item("b-3", "three@example.com"),
            item("b-1", "one@example.com"),
            { "channel": "EMAIL", "direction": "INBOUND", "externalId": "b-5", "customerId": "nope" },
            { "channel": "EMAIL", "direction": "INBOUND", "externalId": "b-6", "customerId": Uuid::now_v7().to_string() },
        ]);
        let body = app.graphql(INGEST, json!({ "inputs": inputs }), Some(&admin)).await;
        let p = &body["data"]["ingestInteractions"];
        assert_eq!((p["created"].as_i64(), p["duplicates"].as_i64(), p["rejected"].as_i64()), (Some(2), Some(1), Some(3)), "{body}");
        let statuses: Vec<&str> = p["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["CREATED", "REJECTED", "CREATED", "DUPLICATE", "REJECTED", "REJECTED"]);
        assert_eq!(p["results"][1]["userErrors"][0]["field"], json!(["inputs", "1", "identities", "0", "value"]));
        assert_eq!(p["results"][4]["userErrors"][0]["field"], json!(["inputs", "4", "customerId"]));
        assert_eq!(p["results"][5]["errorCode"], "NOT_FOUND");
        assert_eq!(p["results"][3]["interaction"]["id"], p["results"][0]["interaction"]["id"]);
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), 2);
        assert_eq!(Customer::find().count(&app.db).await.unwrap(), 2, "the rejected item created no customer");
        // One audit entry, written with the batch, counts every item: those refused
        // before the write (bad identity, bad id) and inside it (unknown customer).
        let audited = AuditEntry::find()
            .filter(entity::audit_entry::Column::Operation.eq("ingestInteractions"))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(audited.len(), 1);
        assert_eq!(audited[0].changes, json!({ "created": 2, "duplicates": 1, "rejected": 3 }));
    })
    .await;
}

/// A batch is written set-based, yet threads like one event after another: messages
/// of one customer on one channel share a conversation (continuing the one open
/// before the batch), our reply stops the first-response clock, and the customer's
/// last contact is the latest message.
#[tokio::test]
async fn a_batch_threads_in_order_like_single_events() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let at = |minutes: i64| (Utc::now() - Duration::minutes(120 - minutes)).to_rfc3339();
        let who = json!([{ "kind": "EMAIL", "value": "thread@example.com" }]);
        let before = record(
            app,
            &admin,
            json!({ "channel": "EMAIL", "direction": "INBOUND", "externalId": "t-0",
            "body": "first", "identities": who, "occurredAt": at(0) }),
        )
        .await;
        let open_before = before["interaction"]["conversationId"].clone();
        let item = |ext: &str, channel: &str, direction: &str, minutes: i64| {
            json!({ "channel": channel, "direction": direction, "externalId": ext, "body": "msg",
                "identities": who, "occurredAt": at(minutes) })
        };
        let inputs = json!([
            item("t-1", "EMAIL", "OUTBOUND", 10),
            item("t-2", "EMAIL", "INBOUND", 20),
            item("t-3", "CHAT", "INBOUND", 30),
            item("t-4", "CHAT", "OUTBOUND", 40),
        ]);
        let body = app.graphql(INGEST, json!({ "inputs": inputs }), Some(&admin)).await;
        assert_eq!(body["data"]["ingestInteractions"]["created"], 4, "{body}");
        let rows = Interaction::find().all(&app.db).await.unwrap();
        let conversation_of = |ext: &str| {
            rows.iter().find(|r| r.external_id.as_deref() == Some(ext)).unwrap().conversation_id.unwrap().to_string()
        };
        assert_eq!(json!(conversation_of("t-1")), open_before, "the open e-mail conversation continues");
        assert_eq!(conversation_of("t-2"), conversation_of("t-1"));
        assert_eq!(conversation_of("t-4"), conversation_of("t-3"), "one chat conversation for both chat messages");
        assert_ne!(conversation_of("t-3"), conversation_of("t-1"));
        assert_eq!(Conversation::find().count(&app.db).await.unwrap(), 2);
        let email = Conversation::find_by_id(conversation_of("t-1").parse::<Uuid>().unwrap())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let reply = rows.iter().find(|r| r.external_id.as_deref() == Some("t-1")).unwrap().occurred_at;
        assert_eq!(email.first_response_at, Some(reply), "our reply in the batch stopped the clock");
        assert_eq!(
            email.last_message_at,
            rows.iter().find(|r| r.external_id.as_deref() == Some("t-2")).unwrap().occurred_at
        );
        let chat = Conversation::find_by_id(conversation_of("t-3").parse::<Uuid>().unwrap())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(chat.status, ConversationStatus::Open);
        assert!(chat.first_response_at.is_some(), "the chat reply in the same batch counts too");
        let customer = Customer::find().one(&app.db).await.unwrap().unwrap();
        let latest = rows.iter().map(|r| r.occurred_at).max().unwrap();
        assert_eq!(customer.last_contact_at, Some(latest));
    })
    .await;
}

/// Batches naming the same customers in opposite orders, all at once: each lands
/// whole (a deadlock or a lost race is retried, never reported).
#[tokio::test]
async fn concurrent_batches_over_the_same_customers_all_land() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let a = cxgraph_tests::insert_customer(&app.db, None).await.to_string();
        let b = cxgraph_tests::insert_customer(&app.db, None).await.to_string();
        let batches = (0..8).map(|n| {
            let order = if n % 2 == 0 { [&a, &b] } else { [&b, &a] };
            let inputs: Vec<Value> = (0..10)
                .map(|i| {
                    json!({ "channel": "CHAT", "direction": "INBOUND", "externalId": format!("c-{n}-{i}"),
                    "customerId": order[i % 2], "body": "hello" })
                })
                .collect();
            let admin = &admin;
            async move { app.graphql(INGEST, json!({ "inputs": inputs }), Some(admin)).await }
        });
        for body in futures::future::join_all(batches).await {
            assert_eq!(body["data"]["ingestInteractions"]["created"], 10, "{body}");
        }
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), 80);
        assert_eq!(Conversation::find().count(&app.db).await.unwrap(), 2, "one chat conversation per customer");
    })
    .await;
}

#[tokio::test]
async fn ndjson_ingest_for_connectors() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let lines = [
            json!({ "channel": "FACEBOOK", "direction": "INBOUND", "visibility": "PUBLIC_POST", "externalId": "fb-1",
                "body": "Love the new app!", "identities": [{ "kind": "FACEBOOK", "value": "Ann.Lee" }] })
            .to_string(),
            "{not json".to_owned(),
            json!({ "channel": "CARRIER_PIGEON", "direction": "INBOUND", "externalId": "x" }).to_string(),
            json!({ "channel": "facebook", "direction": "inbound", "externalId": "fb-1",
                "identities": [{ "kind": "FACEBOOK", "value": "ann.lee" }] })
            .to_string(),
        ];
        let (text, answers) = app.ingest_ndjson(&admin, lines.join("\n").into_bytes()).await;
        let statuses: Vec<&str> = answers.iter().map(|a| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["created", "rejected", "rejected", "duplicate"], "{text}");
        assert_eq!(answers[1]["errors"][0]["code"], "MALFORMED");
        assert_eq!(answers[2]["errors"][0]["field"], json!(["channel"]), "paths start inside the line's event");
        assert_eq!(answers[3]["interactionId"], answers[0]["interactionId"]);
        let stored =
            Interaction::find().filter(interaction::Column::ExternalId.eq("fb-1")).one(&app.db).await.unwrap().unwrap();
        assert_eq!(stored.sentiment_label, Some(entity::enums::SentimentLabel::Positive));

        let anonymous = app.client.post(app.url("/ingest/interactions")).body(lines[0].clone()).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let denied = app
            .client
            .post(app.url("/ingest/interactions"))
            .bearer_auth(analyst)
            .body(lines[0].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 403);
        let body: Value = denied.json().await.unwrap();
        assert_eq!(error_code(&body), Some("FORBIDDEN"));
    })
    .await;
}

const STATUS: &str = "mutation($id: ID!, $s: ConversationStatus!) { setConversationStatus(input: \
    {conversationId: $id, status: $s}) { conversation { status } userErrors { code message } } }";

async fn set_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    app.graphql(STATUS, json!({ "id": id, "s": status }), Some(token)).await["data"]["setConversationStatus"].clone()
}

#[tokio::test]
async fn the_conversation_workflow_moves_its_clocks_and_refuses_invalid_moves() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        configure(app).await;
        let ids = json!([{ "kind": "EMAIL", "value": "flow@example.com" }]);
        let first = record(app, &admin, json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "my order?",
            "externalId": "f-1", "identities": ids })).await;
        let id = first["interaction"]["conversationId"].as_str().unwrap().to_owned();
        let uuid = Uuid::parse_str(&id).unwrap();

        let closed = set_status(app, &admin, &id, "CLOSED").await;
        assert_eq!(closed["userErrors"][0]["code"], "INVALID_TRANSITION", "{closed}");

        let reply = "mutation($id: ID!, $b: String!) { replyToConversation(input: {conversationId: $id, body: $b}) { \
                     conversation { firstResponseAt status } interaction { direction authorKind body } userErrors { code } } }";
        let r = app.graphql(reply, json!({ "id": id, "b": "On its way!" }), Some(&admin)).await;
        let r = &r["data"]["replyToConversation"];
        assert!(r["conversation"]["firstResponseAt"].is_string(), "{r}");
        assert_eq!(r["interaction"]["direction"], "OUTBOUND");
        assert_eq!(r["interaction"]["authorKind"], "AGENT");

        // Pending pauses the resolution clock; the customer's answer resumes it later.
        let due_before = Conversation::find_by_id(uuid).one(&app.db).await.unwrap().unwrap().resolution_due_at.unwrap();
        assert_eq!(set_status(app, &admin, &id, "PENDING").await["conversation"]["status"], "PENDING");
        let pending = Conversation::find_by_id(uuid).one(&app.db).await.unwrap().unwrap();
        assert!(pending.pending_since.is_some() && pending.next_due_at.is_none(), "no clock runs while pending");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        record(app, &admin, json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "thanks", "externalId": "f-2",
            "identities": ids })).await;
        let resumed = Conversation::find_by_id(uuid).one(&app.db).await.unwrap().unwrap();
        assert_eq!(resumed.status, ConversationStatus::Open);
        assert!(resumed.resolution_due_at.unwrap() >= due_before + Duration::seconds(1), "due time moved on by the pause");
        assert_eq!(resumed.next_due_at, resumed.resolution_due_at, "the resolution clock runs again");

        let resolve = "mutation($id: ID!) { resolveConversation(input: {conversationId: $id}) { conversation { status resolvedAt } userErrors { code } } }";
        let done = app.graphql(resolve, json!({ "id": id }), Some(&admin)).await;
        assert_eq!(done["data"]["resolveConversation"]["conversation"]["status"], "RESOLVED", "{done}");
        let reopen = "mutation($id: ID!) { reopenConversation(input: {conversationId: $id}) { conversation { status resolvedAt } } }";
        let again = app.graphql(reopen, json!({ "id": id }), Some(&admin)).await;
        assert_eq!(again["data"]["reopenConversation"]["conversation"]["status"], "OPEN");
        assert!(again["data"]["reopenConversation"]["conversation"]["resolvedAt"].is_null());
        app.graphql(resolve, json!({ "id": id }), Some(&admin)).await;
        assert_eq!(set_status(app, &admin, &id, "CLOSED").await["conversation"]["status"], "CLOSED");
        let late = app.graphql(reply, json!({ "id": id, "b": "hello?" }), Some(&admin)).await;
        assert_eq!(late["data"]["replyToConversation"]["userErrors"][0]["code"], "CLOSED");
        // A new message after closing opens a new conversation.
        let after = record(app, &admin, json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "one more thing",
            "externalId": "f-3", "identities": ids })).await;
        assert_ne!(after["interaction"]["conversationId"], id.as_str());

        // Priority, assignment and tags.
        let other = after["interaction"]["conversationId"].as_str().unwrap().to_owned();
        let prio = "mutation($id: ID!) { setConversationPriority(input: {conversationId: $id, priority: URGENT}) { \
                    conversation { priority } } }";
        assert_eq!(app.graphql(prio, json!({ "id": other }), Some(&admin)).await["data"]["setConversationPriority"]["conversation"]["priority"], "URGENT");
        let assign = "mutation($id: ID!, $t: ID) { assignConversation(input: {conversationId: $id, teamId: $t}) { \
                      conversation { teamId } userErrors { field code } } }";
        let bad = app.graphql(assign, json!({ "id": other, "t": Uuid::now_v7().to_string() }), Some(&admin)).await;
        assert_eq!(bad["data"]["assignConversation"]["userErrors"][0]["code"], "NOT_FOUND", "{bad}");
        let team_id = Team::find().one(&app.db).await.unwrap().unwrap().id.to_string();
        let good = app.graphql(assign, json!({ "id": other, "t": team_id }), Some(&admin)).await;
        assert_eq!(good["data"]["assignConversation"]["conversation"]["teamId"], team_id.as_str());
        let tag = "mutation($id: ID!) { tagConversation(input: {conversationId: $id, add: [\" VIP \", \"late\"], remove: [\"late\"]}) { \
                   conversation { tags } } }";
        assert_eq!(app.graphql(tag, json!({ "id": other }), Some(&admin)).await["data"]["tagConversation"]["conversation"]["tags"], json!(["vip"]));

        let (email, password) = app.create_user(Role::Analyst).await;
        let analyst = app.login(&email, &password).await.access;
        let denied = app.graphql(reply, json!({ "id": other, "b": "x" }), Some(&analyst)).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"));
    })
    .await;
}

#[tokio::test]
async fn the_queue_sorts_by_due_time_and_filters() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        configure(app).await;
        // Public refund complaints get a 30-minute clock; e-mails 24 hours.
        for (i, (channel, visibility, body)) in [
            ("EMAIL", "PRIVATE", "address change"),
            ("TWITTER", "PUBLIC_POST", "where is my refund"),
            ("EMAIL", "PRIVATE", "invoice please"),
        ]
        .iter()
        .enumerate()
        {
            record(
                app,
                &admin,
                json!({ "channel": channel, "direction": "INBOUND", "visibility": visibility, "body": body,
                "externalId": format!("q-{i}"), "identities": [{ "kind": "WEB", "value": format!("dev-{i}") }] }),
            )
            .await;
        }
        let q = "query($f: ConversationFilter) { conversations(filter: $f, first: 10) { edges { node { channel \
                 status teamId customer { identities { value } } } } } }";
        let all = app.graphql(q, json!({}), Some(&admin)).await;
        let channels: Vec<&str> = all["data"]["conversations"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["TWITTER", "EMAIL", "EMAIL"], "soonest due first: {all}");
        assert_eq!(all["data"]["conversations"]["edges"][0]["node"]["customer"]["identities"][0]["value"], "dev-1");
        let soon = app.graphql(q, json!({ "f": { "dueWithinMinutes": 60 } }), Some(&admin)).await;
        assert_eq!(soon["data"]["conversations"]["edges"].as_array().unwrap().len(), 1, "{soon}");
        let routed = app.graphql(q, json!({ "f": { "unassigned": true, "channels": ["EMAIL"] } }), Some(&admin)).await;
        assert_eq!(routed["data"]["conversations"]["edges"].as_array().unwrap().len(), 2);

        let feed = "query($f: InteractionFilter) { interactions(filter: $f, first: 10) { edges { node { channel \
                    visibility sentimentLabel } } } }";
        let public = app.graphql(feed, json!({ "f": { "visibility": "PUBLIC_POST" } }), Some(&admin)).await;
        let edges = public["data"]["interactions"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "{public}");
        assert_eq!(edges[0]["node"]["channel"], "TWITTER");
        let everything = app.graphql(feed, json!({}), Some(&admin)).await;
        assert_eq!(everything["data"]["interactions"]["edges"].as_array().unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn the_sweeper_marks_breaches_and_alerts_exactly_once_across_replicas() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.sla_sweep_interval = 1).await;
        let admin = app.login_admin().await.access;
        configure(&app).await;
        let now = Utc::now();
        let event = |ext: &str, handle: &str, minutes_ago: i64| {
            json!({ "channel": "TWITTER", "direction": "INBOUND", "visibility": "PUBLIC_POST",
                "body": "where is my refund", "externalId": ext, "occurredAt": (now - Duration::minutes(minutes_ago)).to_rfc3339(),
                "identities": [{ "kind": "TWITTER", "value": handle }] })
        };
        let late = record(&app, &admin, event("s-1", "late_one", 40)).await;
        let close = record(&app, &admin, event("s-2", "close_one", 25)).await;
        record(
            &app,
            &admin,
            json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "no rush", "externalId": "s-3",
            "identities": [{ "kind": "EMAIL", "value": "calm@example.com" }] }),
        )
        .await;

        // Three more "replicas" sweep at the same time as the server's own sweeper.
        let at_risk = Duration::minutes(10);
        let sweeps = futures::future::join_all(
            (0..3).map(|_| cxgraph::interactions::sweeper::sweep(&app.db, Utc::now(), at_risk)),
        )
        .await;
        for s in &sweeps {
            assert!(s.is_ok(), "[{}] sweep failed", backend.name());
        }
        // Let the server's sweeper run too.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let alerts = Alert::find().all(&app.db).await.unwrap();
        let mut kinds: Vec<(String, Option<Uuid>)> =
            alerts.iter().map(|a| (a.kind.clone(), a.conversation_id)).collect();
        kinds.sort();
        let late_conv = Uuid::parse_str(late["interaction"]["conversationId"].as_str().unwrap()).unwrap();
        let close_conv = Uuid::parse_str(close["interaction"]["conversationId"].as_str().unwrap()).unwrap();
        let mut expected =
            vec![("sla_at_risk".to_owned(), Some(close_conv)), ("sla_breached".to_owned(), Some(late_conv))];
        expected.sort();
        assert_eq!(kinds, expected, "[{}] one alert per conversation and clock", backend.name());
        let c = Conversation::find_by_id(late_conv).one(&app.db).await.unwrap().unwrap();
        assert!(c.first_response_breached, "[{}] the breach is marked", backend.name());

        // Answering late keeps the breach on record.
        let reply = "mutation($id: ID!) { replyToConversation(input: {conversationId: $id, body: \"sorry!\"}) { conversation { firstResponseBreached } } }";
        let r = app.graphql(reply, json!({ "id": late_conv.to_string() }), Some(&admin)).await;
        assert_eq!(r["data"]["replyToConversation"]["conversation"]["firstResponseBreached"], true, "{r}");
        app.stop().await;
    }
}

/// A conversation on EMAIL for `customer`, running (`OPEN`), due at `due`; answered
/// (first response given) when `answered`.
fn running(customer: Uuid, due: chrono::DateTime<Utc>, answered: bool) -> entity::conversation::Model {
    let opened = due - Duration::hours(2);
    entity::conversation::Model {
        first_response_due_at: (!answered).then_some(due),
        resolution_due_at: Some(due),
        first_response_at: answered.then_some(opened + Duration::minutes(5)),
        next_due_at: Some(due),
        ..cxgraph_tests::open_conversation(customer, Channel::Email, opened)
    }
}

#[tokio::test]
async fn the_sweeper_works_through_a_backlog_larger_than_a_round_and_a_quiet_sweep_writes_nothing() {
    use cxgraph::interactions::sweeper::{SweepReport, sweep_in_rounds_of};
    for backend in backends() {
        // The server's own sweeper runs once at start, then not again during the test;
        // the test sweeps as of a month ahead, so that run finds none of these rows due
        // whenever it happens.
        let app = TestApp::spawn_with(&backend, |s| s.sla_sweep_interval = 3600).await;
        let now = Utc::now() + Duration::days(30);
        let customer = entity::customer::Model {
            id: Uuid::now_v7(),
            display_name: Some("Backlog".into()),
            segment: None,
            attributes: json!({}),
            merged_into_id: None,
            erased_at: None,
            last_contact_at: None,
            created_at: now,
            updated_at: now,
        };
        Customer::insert(customer.clone().into_active_model()).exec(&app.db).await.unwrap();
        // Seven overdue (five waiting for a first response, two answered), one overdue
        // whose breach is marked already, three due within the window, one due later.
        let mut overdue: Vec<_> =
            (0..7).map(|i| running(customer.id, now - Duration::minutes(60 - i), i >= 5)).collect();
        let mut marked = running(customer.id, now - Duration::minutes(90), false);
        marked.first_response_breached = true;
        let soon: Vec<_> = (0..3).map(|i| running(customer.id, now + Duration::minutes(2 + i), false)).collect();
        let later = running(customer.id, now + Duration::hours(5), false);
        let rows = overdue.iter().chain([&marked]).chain(&soon).chain([&later]);
        Conversation::insert_many(rows.map(|c| c.clone().into_active_model())).exec(&app.db).await.unwrap();

        // Rounds of two: the backlog takes four rounds, the window two pages.
        let report = sweep_in_rounds_of(&app.db, now, Duration::minutes(10), 2).await.unwrap();
        assert_eq!(report, SweepReport { breaches_raised: 7, at_risk_raised: 3 }, "[{}]", backend.name());
        let alerts = Alert::find().all(&app.db).await.unwrap();
        let mut keys: Vec<String> = alerts.iter().map(|a| a.dedupe_key.clone()).collect();
        keys.sort();
        overdue.sort_by_key(|c| c.id);
        let mut expected: Vec<String> = overdue
            .iter()
            .map(|c| {
                let clock = if c.first_response_at.is_some() { "resolution" } else { "first_response" };
                format!("sla_breached:{clock}:{}", c.id)
            })
            .chain(soon.iter().map(|c| format!("sla_at_risk:first_response:{}", c.id)))
            .collect();
        expected.sort();
        assert_eq!(keys, expected, "[{}] one alert per conversation and running clock", backend.name());
        for c in &overdue {
            let now_stored = Conversation::find_by_id(c.id).one(&app.db).await.unwrap().unwrap();
            let answered = c.first_response_at.is_some();
            assert_eq!(
                (now_stored.first_response_breached, now_stored.resolution_breached),
                (!answered, answered),
                "[{}] the running clock is marked breached, the other not",
                backend.name()
            );
        }
        let events =
            || OutboxEvent::find().filter(entity::outbox_event::Column::EventType.eq("sla.alert")).count(&app.db);
        assert_eq!(events().await.unwrap(), 10, "[{}] one event per alert raised", backend.name());

        // Nothing new: a sweep raises nothing and writes nothing.
        let again = sweep_in_rounds_of(&app.db, now, Duration::minutes(10), 2).await.unwrap();
        assert_eq!(again, SweepReport::default(), "[{}]", backend.name());
        assert_eq!(Alert::find().count(&app.db).await.unwrap(), 10, "[{}]", backend.name());
        assert_eq!(events().await.unwrap(), 10, "[{}]", backend.name());
        app.stop().await;
    }
}

const SAVE_RULE: &str = "mutation($input: RoutingRuleInput!) { saveRoutingRule(input: $input) { \
    routingRule { id name position enabled conditions { channels keywords businessHours { start end } } teamId setPriority addTags } \
    userErrors { field code } } }";
const SAVE_POLICY: &str = "mutation($input: SlaPolicyInput!) { saveSlaPolicy(input: $input) { \
    slaPolicy { id channel priority firstResponseMinutes } userErrors { field code } } }";

#[tokio::test]
async fn managers_configure_routing_and_slas_that_ingest_then_follows() {
    on_each_backend(async |app: &TestApp| {
        let (email, password) = app.create_user(Role::Manager).await;
        let manager = app.login(&email, &password).await.access;
        let team_id = team::Model { id: Uuid::now_v7(), name: "Billing".into(), created_at: Utc::now() }
            .into_active_model()
            .insert(&app.db)
            .await
            .unwrap()
            .id
            .to_string();

        let bad = app.graphql(SAVE_RULE, json!({ "input": { "name": "x", "teamId": Uuid::now_v7().to_string(),
            "conditions": { "businessHours": { "days": [1], "start": 18, "end": 9 } } } }), Some(&manager)).await;
        let fields: Vec<Value> = bad["data"]["saveRoutingRule"]["userErrors"].as_array().unwrap().iter().map(|e| e["field"].clone()).collect();
        assert_eq!(fields, [json!(["input", "conditions", "businessHours"]), json!(["input", "teamId"])], "{bad}");

        let saved = app.graphql(SAVE_RULE, json!({ "input": { "name": "Billing words", "position": 1, "teamId": team_id,
            "setPriority": "HIGH", "addTags": ["Billing"], "conditions": { "keywords": ["invoice", "charged"] } } }), Some(&manager)).await;
        let rule = &saved["data"]["saveRoutingRule"]["routingRule"];
        assert_eq!(rule["conditions"]["keywords"], json!(["invoice", "charged"]), "{saved}");
        assert_eq!(rule["addTags"], json!(["billing"]));
        let rule_id = rule["id"].as_str().unwrap().to_owned();

        let policy = app.graphql(SAVE_POLICY, json!({ "input": { "name": "Email high", "channel": "EMAIL", "priority": "HIGH",
            "firstResponseMinutes": 60, "resolutionMinutes": 480 } }), Some(&manager)).await;
        assert_eq!(policy["data"]["saveSlaPolicy"]["slaPolicy"]["firstResponseMinutes"], 60, "{policy}");
        let missing = app.graphql(SAVE_POLICY, json!({ "input": { "name": "half" } }), Some(&manager)).await;
        assert_eq!(missing["data"]["saveSlaPolicy"]["userErrors"].as_array().unwrap().len(), 2, "{missing}");

        let admin = app.login_admin().await.access;
        let at = Utc::now();
        let got = record(app, &admin, json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "I was charged twice",
            "externalId": "cfg-1", "occurredAt": at.to_rfc3339(), "identities": [{ "kind": "EMAIL", "value": "bill@example.com" }] })).await;
        let conv = Uuid::parse_str(got["interaction"]["conversationId"].as_str().unwrap()).unwrap();
        let c = Conversation::find_by_id(conv).one(&app.db).await.unwrap().unwrap();
        assert_eq!(c.routing_rule_id.map(|r| r.to_string()), Some(rule_id.clone()), "routed by the rule");
        assert_eq!(c.priority, Priority::High);
        assert!((c.first_response_due_at.unwrap() - (at + Duration::minutes(60))).num_seconds().abs() <= 1);

        // Disabled, the rule no longer routes.
        app.graphql(SAVE_RULE, json!({ "input": { "id": rule_id, "enabled": false } }), Some(&manager)).await;
        let next = record(app, &admin, json!({ "channel": "SMS", "direction": "INBOUND", "body": "invoice?",
            "externalId": "cfg-2", "identities": [{ "kind": "PHONE", "value": "+12025550143" }] })).await;
        let c = Conversation::find_by_id(Uuid::parse_str(next["interaction"]["conversationId"].as_str().unwrap()).unwrap())
            .one(&app.db).await.unwrap().unwrap();
        assert!(c.routing_rule_id.is_none());

        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        let denied = app.graphql("{ routingRules { id } }", json!({}), Some(&agent)).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"));
        let listed = app.graphql("{ routingRules { id enabled } slaPolicies { id } }", json!({}), Some(&manager)).await;
        assert_eq!(listed["data"]["routingRules"][0]["enabled"], false);
        let deleted = app.graphql("mutation($id: ID!) { deleteRoutingRule(id: $id) }", json!({ "id": rule_id }), Some(&manager)).await;
        assert_eq!(deleted["data"]["deleteRoutingRule"], rule_id.as_str());
        let gone = app.graphql("mutation($id: ID!) { deleteRoutingRule(id: $id) }", json!({ "id": rule_id }), Some(&manager)).await;
        assert_eq!(error_code(&gone), Some("NOT_FOUND"));
    })
    .await;
}

#[tokio::test]
async fn business_hours_policies_count_only_open_hours() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let policy = app.graphql(SAVE_POLICY, json!({ "input": { "name": "Office email", "channel": "EMAIL",
            "firstResponseMinutes": 60, "resolutionMinutes": 480,
            "businessHours": { "days": [1, 2, 3, 4, 5], "start": 9, "end": 17 } } }), Some(&admin)).await;
        assert_eq!(policy["data"]["saveSlaPolicy"]["userErrors"], json!([]), "{policy}");
        // Saturday 21 November 2026, noon: the clock starts Monday 9:00.
        let saturday = chrono::DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().with_timezone(&Utc);
        let got = record(app, &admin, json!({ "channel": "EMAIL", "direction": "INBOUND", "body": "weekend question",
            "externalId": "bh-1", "occurredAt": saturday.to_rfc3339(), "identities": [{ "kind": "EMAIL", "value": "wk@example.com" }] })).await;
        let c = Conversation::find_by_id(Uuid::parse_str(got["interaction"]["conversationId"].as_str().unwrap()).unwrap())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let monday = |h: u32, m: u32| chrono::DateTime::parse_from_rfc3339(&format!("2026-11-23T{h:02}:{m:02}:00Z")).unwrap();
        assert_eq!(c.first_response_due_at.unwrap(), monday(10, 0), "one business hour after Monday 9:00");
        assert_eq!(c.resolution_due_at.unwrap(), monday(17, 0), "eight business hours");
        let bad = app.graphql(SAVE_POLICY, json!({ "input": { "name": "x", "firstResponseMinutes": 1, "resolutionMinutes": 2,
            "businessHours": { "days": [9], "start": 9, "end": 17 } } }), Some(&admin)).await;
        assert_eq!(bad["data"]["saveSlaPolicy"]["userErrors"][0]["field"], json!(["input", "businessHours"]), "{bad}");
    })
    .await;
}

/// Every batch mutation names an item by its place in the caller's list, whatever
/// failed before it: items refused while their input was read (a malformed id) used to
/// drop out, and the service numbered the rest from zero, so item 1 came back as
/// `inputs.0`. The size cap counts every item, refused ones too.
#[tokio::test]
async fn batch_answers_name_each_item_by_its_place() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let malformed =
            json!({ "channel": "EMAIL", "direction": "INBOUND", "externalId": "d-0", "customerId": "nope" });
        let bad_identity = json!({ "channel": "EMAIL", "direction": "INBOUND", "externalId": "d-1",
            "identities": [{ "kind": "EMAIL", "value": "not-an-email" }] });
        let body = app.graphql(INGEST, json!({ "inputs": [malformed, bad_identity] }), Some(&admin)).await;
        let results = &body["data"]["ingestInteractions"]["results"];
        assert_eq!(results[0]["userErrors"][0]["field"], json!(["inputs", "0", "customerId"]), "{body}");
        assert_eq!(results[1]["userErrors"][0]["field"], json!(["inputs", "1", "identities", "0", "value"]), "{body}");

        let touchpoints = "mutation($inputs: [RecordTouchpointInput!]!) { recordTouchpoints(inputs: $inputs) { \
                           results { userErrors { field code } } } }";
        let item = |journey: &str| {
            json!({ "journeyId": journey, "stage": { "name": "x" }, "channel": "WEB", "name": "n", "outcome": "SUCCESS",
                "occurredAt": "1969-12-31T23:59:59Z", "identities": [{ "kind": "WEB", "value": "device-1" }] })
        };
        let body = app
            .graphql(touchpoints, json!({ "inputs": [item("nope"), item(&Uuid::now_v7().to_string())] }), Some(&admin))
            .await;
        let fields: Vec<Value> = body["data"]["recordTouchpoints"]["results"][1]["userErrors"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert!(!fields.is_empty() && fields.iter().all(|f| f[1] == "1"), "{body}");

        let feedback = "mutation($inputs: [SubmitFeedbackInput!]!) { ingestFeedback(inputs: $inputs) { \
                        results { userErrors { field code } } } }";
        let who = json!([{ "kind": "EMAIL", "value": "fb@example.com" }]);
        let body = app
            .graphql(
                feedback,
                json!({ "inputs": [
                    { "kind": "CSAT", "score": 5, "channel": "CHAT", "customerId": "nope" },
                    { "kind": "CES", "score": 0, "channel": "CHAT", "identities": who },
                ] }),
                Some(&admin),
            )
            .await;
        assert_eq!(
            body["data"]["ingestFeedback"]["results"][1]["userErrors"][0]["field"],
            json!(["inputs", "1", "score"]),
            "{body}"
        );

        // A thousand good items and one malformed: over the cap, refused whole.
        let mut inputs: Vec<Value> = (0..1000)
            .map(|i| {
                json!({ "channel": "SMS", "direction": "INBOUND", "externalId": format!("cap-{i}"),
                "identities": [{ "kind": "PHONE", "value": "+447911123456" }] })
            })
            .collect();
        inputs.push(json!({ "channel": "SMS", "direction": "INBOUND", "externalId": "cap-x", "customerId": "nope" }));
        let body = app.graphql(INGEST, json!({ "inputs": inputs }), Some(&admin)).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{}", body["errors"]);
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), 0, "nothing of it was stored");
    })
    .await;
}
