//! Merge and unmerge, GDPR export and erasure (with canary strings hunted in every
//! column of every table), and the retention job, on both backends.

use chrono::{Duration, Utc};
use cxgraph::customers::privacy::{RetentionPolicy, apply_retention};
use cxgraph_tests::{TestApp, Writer, error_code, on_each_backend, until_waiting};
use entity::enums::*;
use entity::prelude::*;
use entity::{conversation, feedback, interaction, journey, journey_stage, touchpoint};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, Statement,
};
use serde_json::{Value, json};
use uuid::Uuid;

const CREATE: &str = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { customer { id } \
                      userErrors { code message } } }";

async fn create(app: &TestApp, token: &str, input: Value) -> Uuid {
    let body = app.graphql(CREATE, json!({ "input": input }), Some(token)).await;
    let id = body["data"]["createCustomer"]["customer"]["id"].as_str().unwrap_or_else(|| panic!("{body}"));
    Uuid::parse_str(id).unwrap()
}

/// A journey with one stage, for touchpoints.
async fn stage(db: &DatabaseConnection) -> (Uuid, Uuid) {
    let now = Utc::now();
    let j = journey::Model {
        id: Uuid::now_v7(),
        name: format!("J{}", Uuid::now_v7()),
        description: None,
        created_at: now,
        updated_at: now,
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
    let s = journey_stage::Model {
        id: Uuid::now_v7(),
        journey_id: j.id,
        name: "Checkout".into(),
        position: 0,
        created_at: now,
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
    (j.id, s.id)
}

/// One conversation with two interactions, a touchpoint and a feedback, all carrying `tag`.
async fn add_facts(db: &DatabaseConnection, customer_id: Uuid, tag: &str, at: chrono::DateTime<Utc>) {
    let (journey_id, stage_id) = stage(db).await;
    let conversation_id = Uuid::now_v7();
    conversation::Model {
        id: conversation_id,
        inbox: Some("support".into()),
        subject: Some(format!("subject {tag}")),
        tags: json!([format!("asked-by-{tag}")]),
        ..cxgraph_tests::open_conversation(customer_id, Channel::Email, at)
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
    for n in 0..2 {
        interaction::Model {
            id: Uuid::now_v7(),
            customer_id,
            conversation_id: Some(conversation_id),
            channel: Channel::Email,
            direction: Direction::Inbound,
            visibility: Visibility::Private,
            author_kind: AuthorKind::Customer,
            author_user_id: None,
            inbox: Some("support".into()),
            body: Some(format!("my name is {tag}, message {n}")),
            sentiment_score: Some(-0.5),
            sentiment_label: Some(SentimentLabel::Negative),
            external_id: Some(format!("{tag}-msg-{n}-{}", Uuid::now_v7())),
            occurred_at: at,
            created_at: at,
            updated_at: at,
        }
        .into_active_model()
        .insert(db)
        .await
        .unwrap();
    }
    let touchpoint_id = Uuid::now_v7();
    touchpoint::Model {
        id: touchpoint_id,
        customer_id,
        journey_id,
        stage_id,
        channel: Channel::Web,
        name: "checkout".into(),
        outcome: TouchpointOutcome::Success,
        interaction_id: None,
        source: "shop".into(),
        external_id: Some(format!("{tag}-order-{}", Uuid::now_v7())),
        occurred_at: at,
        created_at: at,
        updated_at: at,
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
    feedback::Model {
        id: Uuid::now_v7(),
        customer_id,
        survey_id: None,
        kind: FeedbackKind::Comment,
        score: None,
        comment: Some(format!("{tag} says the parcel was late")),
        channel: Channel::Email,
        touchpoint_id: Some(touchpoint_id),
        interaction_id: None,
        sentiment_score: Some(-0.4),
        sentiment_label: Some(SentimentLabel::Negative),
        source: "survey-vendor".into(),
        external_id: Some(format!("{tag}-fb-{}", Uuid::now_v7())),
        occurred_at: at,
        created_at: at,
        updated_at: at,
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
}

/// Rows owned by a customer in each moved table.
async fn owned(db: &DatabaseConnection, id: Uuid) -> [u64; 5] {
    [
        CustomerIdentity::find().filter(entity::customer_identity::Column::CustomerId.eq(id)).count(db).await.unwrap(),
        Conversation::find().filter(conversation::Column::CustomerId.eq(id)).count(db).await.unwrap(),
        Interaction::find().filter(interaction::Column::CustomerId.eq(id)).count(db).await.unwrap(),
        Touchpoint::find().filter(touchpoint::Column::CustomerId.eq(id)).count(db).await.unwrap(),
        Feedback::find().filter(feedback::Column::CustomerId.eq(id)).count(db).await.unwrap(),
    ]
}

const MERGE: &str = "mutation($s: ID!, $d: ID!) { mergeCustomers(input: {survivorId: $s, duplicateId: $d, \
    identityKinds: [EMAIL], note: \"same person\"}) { merge { id survivorId duplicateId evidence } \
    survivor { id } moved { table rows } userErrors { field code message } } }";
const UNMERGE: &str = "mutation($m: ID!) { unmergeCustomers(input: {mergeId: $m}) { merge { unmergedAt } \
    moved { table rows } userErrors { code } } }";

#[tokio::test]
async fn merge_moves_everything_and_unmerge_undoes_exactly_that() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let now = Utc::now();
        let ann = create(
            app,
            &admin,
            json!({ "displayName": "Ann", "identities": [{ "kind": "EMAIL", "value": "ann@example.com" }] }),
        )
        .await;
        let dup = create(
            app,
            &admin,
            json!({ "displayName": "Ann L", "identities": [
            { "kind": "TWITTER", "value": "annl" }, { "kind": "PHONE", "value": "+442079460958" }] }),
        )
        .await;
        add_facts(&app.db, ann, "ann", now).await;
        add_facts(&app.db, dup, "dup", now).await;
        let before_ann = owned(&app.db, ann).await;
        let before_dup = owned(&app.db, dup).await;

        let body = app.graphql(MERGE, json!({ "s": ann.to_string(), "d": dup.to_string() }), Some(&admin)).await;
        let m = &body["data"]["mergeCustomers"];
        assert_eq!(m["userErrors"], json!([]), "{body}");
        let merge_id = m["merge"]["id"].as_str().unwrap().to_owned();
        assert_eq!(m["merge"]["evidence"]["identityKinds"], json!(["email"]));
        let moved: u64 = m["moved"].as_array().unwrap().iter().map(|r| r["rows"].as_u64().unwrap()).sum();
        assert_eq!(moved, before_dup.iter().sum::<u64>(), "every row of the duplicate moved");
        let after = owned(&app.db, ann).await;
        for i in 0..5 {
            assert_eq!(after[i], before_ann[i] + before_dup[i], "table {i}");
        }
        assert_eq!(owned(&app.db, dup).await, [0; 5]);

        // The old id redirects; the tombstone says where it went.
        let q = "query($id: ID!, $f: Boolean!) { customer(id: $id, followMerges: $f) { id mergedIntoId } }";
        let redirect = app.graphql(q, json!({ "id": dup.to_string(), "f": true }), Some(&admin)).await;
        assert_eq!(redirect["data"]["customer"]["id"], ann.to_string());
        let tomb = app.graphql(q, json!({ "id": dup.to_string(), "f": false }), Some(&admin)).await;
        assert_eq!(tomb["data"]["customer"]["mergedIntoId"], ann.to_string());
        // The twitter handle of the duplicate now finds the survivor.
        let by = "{ customerByIdentity(kind: TWITTER, value: \"annl\") { id } }";
        assert_eq!(app.graphql(by, json!({}), Some(&admin)).await["data"]["customerByIdentity"]["id"], ann.to_string());

        // Clear errors for impossible merges.
        for (s, d, code) in [(ann, ann, "SAME_CUSTOMER"), (ann, dup, "MERGED"), (dup, ann, "MERGED")] {
            let body = app.graphql(MERGE, json!({ "s": s.to_string(), "d": d.to_string() }), Some(&admin)).await;
            assert_eq!(body["data"]["mergeCustomers"]["userErrors"][0]["code"], code, "{body}");
        }
        let missing =
            app.graphql(MERGE, json!({ "s": ann.to_string(), "d": Uuid::now_v7().to_string() }), Some(&admin)).await;
        assert_eq!(error_code(&missing), Some("NOT_FOUND"));

        // Something new arrives for the survivor after the merge: it stays on unmerge.
        add_facts(&app.db, ann, "later", now + Duration::minutes(5)).await;
        let undone = app.graphql(UNMERGE, json!({ "m": merge_id }), Some(&admin)).await;
        assert_eq!(undone["data"]["unmergeCustomers"]["userErrors"], json!([]), "{undone}");
        assert!(undone["data"]["unmergeCustomers"]["merge"]["unmergedAt"].is_string());
        assert_eq!(owned(&app.db, dup).await, before_dup, "exactly the duplicate's rows went back");
        let ann_now = owned(&app.db, ann).await;
        assert_eq!(ann_now[1..], [before_ann[1] + 1, before_ann[2] + 2, before_ann[3] + 1, before_ann[4] + 1]);
        let live = app.graphql(q, json!({ "id": dup.to_string(), "f": false }), Some(&admin)).await;
        assert!(live["data"]["customer"]["mergedIntoId"].is_null(), "duplicate is live again");
        let again = app.graphql(UNMERGE, json!({ "m": merge_id }), Some(&admin)).await;
        assert_eq!(again["data"]["unmergeCustomers"]["userErrors"][0]["code"], "ALREADY_UNMERGED");

        // Audited, and only admins and managers may merge.
        let ops: Vec<String> = AuditEntry::find()
            .filter(entity::audit_entry::Column::TargetId.eq(ann.to_string()))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.operation)
            .collect();
        assert!(ops.contains(&"mergeCustomers".to_owned()) && ops.contains(&"unmergeCustomers".to_owned()), "{ops:?}");
        let events: Vec<String> = OutboxEvent::find()
            .filter(entity::outbox_event::Column::AggregateId.eq(ann))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(events, ["customer.created", "customer.merged", "customer.unmerged"], "events in the outbox");
        let (email, password) = app.create_user(Role::Agent).await;
        let agent = app.login(&email, &password).await.access;
        let denied = app.graphql(MERGE, json!({ "s": ann.to_string(), "d": dup.to_string() }), Some(&agent)).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"));
    })
    .await;
}

/// Every (table, column) of the schema.
async fn columns(db: &DatabaseConnection) -> Vec<(String, String)> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Sqlite => {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'"
        }
        _ => "SELECT table_name AS t, column_name AS c FROM information_schema.columns WHERE table_schema = 'public'",
    };
    let rows = db.query_all_raw(Statement::from_string(backend, sql)).await.unwrap();
    rows.iter().map(|r| (r.try_get::<String>("", "t").unwrap(), r.try_get::<String>("", "c").unwrap())).collect()
}

/// Where a string occurs in the database, as `table.column` (case-insensitive).
async fn occurrences(db: &DatabaseConnection, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (table, column) in columns(db).await {
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE LOWER(CAST({column} AS TEXT)) LIKE '%{needle}%'");
        let n: i64 = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        if n > 0 {
            out.push(format!("{table}.{column}"));
        }
    }
    out
}

const DATASETS: [&str; 5] = ["customers", "interactions", "conversations", "touchpoints", "feedback"];

/// What a BI tool keeps: every exported row by (dataset, id), upserted on each pull.
#[derive(Default)]
struct Warehouse {
    rows: std::collections::HashMap<(String, String), Value>,
}

impl Warehouse {
    /// Pulls a dataset (everything, or what changed since a watermark) and upserts it;
    /// answers the watermark for the next pull.
    async fn pull(&mut self, app: &TestApp, token: &str, dataset: &str, since: Option<&str>) -> String {
        let mut request =
            app.client.get(app.url(&format!("/export/{dataset}"))).query(&[("format", "ndjson")]).bearer_auth(token);
        if let Some(since) = since {
            request = request.query(&[("updated_since", since)]);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{dataset}");
        let watermark = resp.headers()["x-export-watermark"].to_str().unwrap().to_owned();
        for line in resp.text().await.unwrap().lines() {
            let row: Value = serde_json::from_str(line).expect("an NDJSON line");
            let id = row["id"].as_str().expect("an id").to_owned();
            self.rows.insert((dataset.to_owned(), id), row);
        }
        watermark
    }

    /// How many rows hold `needle` anywhere.
    fn holding(&self, needle: &str) -> usize {
        self.rows.values().filter(|row| row.to_string().contains(needle)).count()
    }
}

#[tokio::test]
async fn erasure_leaves_no_trace_of_the_person_and_spares_everyone_else() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let now = Utc::now();
        let canary = "zqcanary";
        let victim = create(
            app,
            &admin,
            json!({
                "displayName": format!("Ann {canary}"), "segment": "premium",
                "attributes": { "note": format!("lives at {canary} street") },
                "identities": [
                    { "kind": "EMAIL", "value": format!("{canary}@example.com") },
                    { "kind": "TWITTER", "value": canary },
                    { "kind": "EXTERNAL_ID", "value": format!("crm-{canary}") },
                ],
            }),
        )
        .await;
        // A tombstone merged into the victim carries the canary too.
        let old = create(
            app,
            &admin,
            json!({ "displayName": format!("Old {canary}"), "identities": [
            { "kind": "WEB", "value": format!("device-{canary}") }] }),
        )
        .await;
        add_facts(&app.db, victim, canary, now).await;
        add_facts(&app.db, old, canary, now).await;
        let body = app.graphql(MERGE, json!({ "s": victim.to_string(), "d": old.to_string() }), Some(&admin)).await;
        assert_eq!(body["data"]["mergeCustomers"]["userErrors"], json!([]), "{body}");
        let bystander_tag = "zqbystander";
        let bystander = create(
            app,
            &admin,
            json!({ "displayName": format!("Bob {bystander_tag}"), "identities": [
            { "kind": "EMAIL", "value": format!("{bystander_tag}@example.com") }] }),
        )
        .await;
        add_facts(&app.db, bystander, bystander_tag, now).await;
        assert!(!occurrences(&app.db, canary).await.is_empty(), "canaries are planted");
        let bystander_before = occurrences(&app.db, bystander_tag).await;
        let interactions_before = Interaction::find().count(&app.db).await.unwrap();

        // A warehouse holds a full pull of every dataset, canaries included.
        let mut warehouse = Warehouse::default();
        let mut watermarks = Vec::new();
        for dataset in DATASETS {
            watermarks.push(warehouse.pull(app, &admin, dataset, None).await);
        }
        assert!(warehouse.holding(canary) > 0, "the warehouse holds the canary before");

        let erase = "mutation($id: ID!) { eraseCustomer(input: {id: $id}) { erasedCustomerId customers identities \
                     interactions conversations feedback userErrors { code } } }";
        let erased = app.graphql(erase, json!({ "id": victim.to_string() }), Some(&admin)).await;
        let e = &erased["data"]["eraseCustomer"];
        assert_eq!(e["userErrors"], json!([]), "{erased}");
        assert_eq!(e["customers"], 2, "the customer and its tombstone");
        assert_eq!(e["identities"], 4);
        assert_eq!(e["interactions"], 4);

        let left = occurrences(&app.db, canary).await;
        assert!(left.is_empty(), "[{}] personal data survives erasure in {left:?}", app.backend.name());
        // Its next incremental pull, upserted by id as the README says, leaves none.
        for (dataset, since) in DATASETS.into_iter().zip(watermarks) {
            warehouse.pull(app, &admin, dataset, Some(&since)).await;
        }
        assert_eq!(warehouse.holding(canary), 0, "[{}] the warehouse keeps erased data", app.backend.name());
        // Nor in the bytes of SQLite's files: free space, slack of rewritten cells and
        // the write-ahead log's older frames held it before `secure_delete` and the
        // checkpoint after an erasure.
        for (i, file) in app.database.sqlite_files().into_iter().flatten().enumerate() {
            // The database file must be there; its log may be gone or empty.
            let bytes = if i == 0 {
                std::fs::read(&file).expect("the database file")
            } else {
                std::fs::read(&file).unwrap_or_default()
            };
            let found = bytes.windows(canary.len()).filter(|w| *w == canary.as_bytes()).count();
            assert_eq!(found, 0, "{} holds the erased text {found} times", file.display());
        }
        assert_eq!(occurrences(&app.db, bystander_tag).await, bystander_before, "other customers untouched");
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), interactions_before, "anonymous rows stay");
        let kept = Customer::find_by_id(victim).one(&app.db).await.unwrap().unwrap();
        assert_eq!(kept.segment.as_deref(), Some("premium"), "non-personal fields stay for aggregates");
        assert!(kept.erased_at.is_some());
        let audit = AuditEntry::find()
            .filter(entity::audit_entry::Column::Operation.eq("eraseCustomer"))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert!(audit.actor_user_id.is_some(), "who erased is recorded");
        let erased_events = OutboxEvent::find()
            .filter(entity::outbox_event::Column::EventType.eq("customer.erased"))
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(erased_events, 1);

        // It cannot be undone or written to.
        let again = app.graphql(erase, json!({ "id": victim.to_string() }), Some(&admin)).await;
        assert_eq!(again["data"]["eraseCustomer"]["userErrors"][0]["code"], "ERASED");
        let update =
            "mutation($id: ID!) { updateCustomer(input: {id: $id, displayName: \"Back\"}) { userErrors { code } } }";
        let refused = app.graphql(update, json!({ "id": victim.to_string() }), Some(&admin)).await;
        assert_eq!(refused["data"]["updateCustomer"]["userErrors"][0]["code"], "ERASED", "{refused}");
        let merge_id = app
            .graphql(
                "query($c: ID!) { customerMerges(customerId: $c) { id } }",
                json!({ "c": victim.to_string() }),
                Some(&admin),
            )
            .await["data"]["customerMerges"][0]["id"]
            .clone();
        let unmerge = app.graphql(UNMERGE, json!({ "m": merge_id }), Some(&admin)).await;
        assert!(!unmerge["data"]["unmergeCustomers"]["userErrors"].as_array().unwrap().is_empty(), "{unmerge}");
    })
    .await;
}

#[tokio::test]
async fn export_returns_everything_held_and_is_admin_only() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let id = create(
            app,
            &admin,
            json!({ "displayName": "Eve", "identities": [{ "kind": "EMAIL", "value": "eve@example.com" }] }),
        )
        .await;
        add_facts(&app.db, id, "eve", Utc::now()).await;
        let q = "query($id: ID!) { exportCustomerData(id: $id) }";
        let body = app.graphql(q, json!({ "id": id.to_string() }), Some(&admin)).await;
        let doc = &body["data"]["exportCustomerData"];
        assert_eq!(doc["customer"]["displayName"], "Eve", "{body}");
        assert_eq!(doc["identities"][0]["value"], "eve@example.com");
        assert_eq!(doc["interactions"].as_array().unwrap().len(), 2);
        assert_eq!(doc["conversations"].as_array().unwrap().len(), 1);
        assert_eq!(doc["touchpoints"].as_array().unwrap().len(), 1);
        assert_eq!(doc["feedback"][0]["comment"], "eve says the parcel was late");
        assert!(doc["auditTrail"].as_array().unwrap().iter().any(|a| a["operation"] == "createCustomer"));
        let exported = AuditEntry::find()
            .filter(entity::audit_entry::Column::Operation.eq("exportCustomerData"))
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(exported, 1, "the export is audited");
        let (email, password) = app.create_user(Role::Manager).await;
        let manager = app.login(&email, &password).await.access;
        let denied = app.graphql(q, json!({ "id": id.to_string() }), Some(&manager)).await;
        assert_eq!(error_code(&denied), Some("FORBIDDEN"));
    })
    .await;
}

#[tokio::test]
async fn retention_removes_old_text_once_and_keeps_the_rest() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let id = create(app, &admin, json!({ "displayName": "Old timer" })).await;
        add_facts(&app.db, id, "ancient", Utc::now() - Duration::days(400)).await;
        add_facts(&app.db, id, "recent", Utc::now() - Duration::days(10)).await;
        let policy = RetentionPolicy { text_days: 365 };
        let first = apply_retention(&app.db, policy).await.map_err(|e| e.message()).unwrap();
        assert_eq!(first, 4, "two bodies, one comment, one subject");
        let second = apply_retention(&app.db, policy).await.map_err(|e| e.message()).unwrap();
        assert_eq!(second, 0, "idempotent");
        assert!(occurrences(&app.db, "my name is ancient").await.is_empty());
        assert_eq!(occurrences(&app.db, "my name is recent").await, ["interactions.body"]);
        // Nor in SQLite's files (free pages zeroed, the log checkpointed and truncated).
        let gone = b"my name is ancient";
        for file in app.database.sqlite_files().into_iter().flatten() {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let found = bytes.windows(gone.len()).filter(|w| w == gone).count();
            assert_eq!(found, 0, "{} holds text the retention removed", file.display());
        }
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), 4, "rows stay");
    })
    .await;
}

#[tokio::test]
async fn the_server_runs_the_retention_job_when_configured() {
    for backend in cxgraph_tests::backends() {
        let app = TestApp::spawn_with(&backend, |s| {
            s.retention_text_days = Some(30);
            s.retention_interval = 1;
        })
        .await;
        let admin = app.login_admin().await.access;
        let id = create(&app, &admin, json!({ "displayName": "Job" })).await;
        add_facts(&app.db, id, "stale", Utc::now() - Duration::days(31)).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !occurrences(&app.db, "my name is stale").await.is_empty() {
            assert!(std::time::Instant::now() < deadline, "[{}] the job never ran", backend.name());
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        app.stop().await;
    }
}

/// Batches writing for a customer while it is merged away all land, and none of
/// their messages or conversations stays behind on the tombstone: a batch either
/// commits before the merge moves the rows, or finds the customer merged and writes
/// to the survivor.
#[tokio::test]
async fn a_merge_during_ingest_leaves_nothing_on_the_tombstone() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let survivor = cxgraph_tests::insert_customer(&app.db, None).await;
        let duplicate = cxgraph_tests::insert_customer(&app.db, None).await;
        const INGEST: &str = "mutation($inputs: [RecordInteractionInput!]!) { ingestInteractions(inputs: $inputs) { \
            created rejected } }";
        let batches = (0..6).map(|n| {
            let inputs: Vec<Value> = (0..20)
                .map(|i| {
                    let channel = ["EMAIL", "CHAT", "SMS"][i % 3];
                    json!({ "channel": channel, "direction": "INBOUND", "externalId": format!("m-{n}-{i}"),
                        "customerId": duplicate.to_string(), "body": "hello again" })
                })
                .collect();
            let admin = &admin;
            async move { app.graphql(INGEST, json!({ "inputs": inputs }), Some(admin)).await }
        });
        let merge = app.graphql(MERGE, json!({ "s": survivor.to_string(), "d": duplicate.to_string() }), Some(&admin));
        let (answers, merged) = tokio::join!(futures::future::join_all(batches), merge);
        let errors = merged["data"]["mergeCustomers"]["userErrors"].as_array();
        assert!(errors.unwrap_or_else(|| panic!("[{}] {merged}", app.backend.name())).is_empty(), "{merged}");
        for body in answers {
            assert_eq!(body["data"]["ingestInteractions"]["created"], 20, "{body}");
        }
        let on = |id: Uuid| Interaction::find().filter(interaction::Column::CustomerId.eq(id)).count(&app.db);
        assert_eq!(on(duplicate).await.unwrap(), 0, "[{}] nothing stays on the tombstone", app.backend.name());
        assert_eq!(on(survivor).await.unwrap(), 120);
        let left = Conversation::find().filter(conversation::Column::CustomerId.eq(duplicate)).count(&app.db);
        assert_eq!(left.await.unwrap(), 0);
    })
    .await;
}

/// A write that holds one of the duplicate's conversations and then needs the
/// duplicate's row (what an ingest batch does: its conversations first, its customers
/// last) is not failed by a merge that starts in between, and the merge answers too:
/// it waits for the write, then moves everything. (The merge used to lock the
/// customers first, holding the row the write needs while waiting for its
/// conversation; PostgreSQL failed one of the two, and the merge answered INTERNAL.
/// Either today's lock order or the merge's retry of a deadlock would pass this.) On
/// SQLite the writer's lock covers the file and the merge waits for its commit.
#[tokio::test]
async fn a_merge_waits_for_a_write_holding_the_duplicates_conversation() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let survivor = cxgraph_tests::insert_customer(&app.db, None).await;
        let duplicate = cxgraph_tests::insert_customer(&app.db, None).await;
        const INGEST: &str = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { \
            interaction { conversationId } userErrors { code } } }";
        let input = json!({ "channel": "EMAIL", "direction": "INBOUND", "externalId": "held",
            "customerId": duplicate.to_string(), "body": "where is my parcel" });
        let body = app.graphql(INGEST, json!({ "input": input }), Some(&admin)).await;
        let held = body["data"]["recordInteraction"]["interaction"]["conversationId"].as_str().map(str::to_owned);
        let held = Uuid::parse_str(&held.unwrap_or_else(|| panic!("{body}"))).unwrap();

        let writer = Writer::start(app, "UPDATE conversations SET updated_at = updated_at WHERE id = ?", held).await;
        let merge = app.graphql(MERGE, json!({ "s": survivor.to_string(), "d": duplicate.to_string() }), Some(&admin));
        let write_on = async {
            until_waiting(app, 1).await;
            let wrote = writer.run("UPDATE customers SET last_contact_at = CURRENT_TIMESTAMP WHERE id = ?", duplicate);
            (wrote.await, writer.finish().await)
        };
        let (merged, (wrote, committed)) = tokio::join!(merge, write_on);
        let name = app.backend.name();
        assert_eq!(wrote.map_err(|e| e.to_string()), Ok(1), "[{name}] the writer was not failed");
        committed.unwrap_or_else(|e| panic!("[{name}] {e}"));
        let errors = merged["data"]["mergeCustomers"]["userErrors"].as_array();
        assert!(errors.unwrap_or_else(|| panic!("[{name}] {merged}")).is_empty(), "{merged}");
        let moved = Conversation::find_by_id(held).one(&app.db).await.unwrap().unwrap();
        assert_eq!(moved.customer_id, survivor, "[{name}] the held conversation moved after the writer committed");
    })
    .await;
}

/// A touchpoint and a feedback response recorded for a customer while it is being
/// merged away land on the survivor. Here the merge holds both customers and waits
/// for a writer holding one of the duplicate's identities; the two requests, which
/// read the duplicate as live, wait for the merge and then follow it. (Before they
/// held their customer, the foreign key check waited for the merge and then let the
/// rows through onto the tombstone.)
#[tokio::test]
async fn touchpoints_and_feedback_recorded_during_a_merge_follow_it() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let survivor = cxgraph_tests::insert_customer(&app.db, None).await;
        let duplicate = create(
            app,
            &admin,
            json!({ "displayName": "Dee", "identities": [{ "kind": "EMAIL", "value": "dee@example.com" }] }),
        )
        .await;
        let (journey, _) = stage(&app.db).await;
        const TOUCHPOINT: &str = "mutation($j: ID!, $c: ID!) { recordTouchpoint(input: {journeyId: $j, \
            stage: {name: \"Checkout\"}, channel: WEB, name: \"checkout\", outcome: SUCCESS, customerId: $c}) { \
            touchpoint { id } userErrors { code } } }";
        const FEEDBACK: &str = "mutation($c: ID!) { submitFeedback(input: {kind: COMMENT, comment: \"slow delivery\", \
            channel: WEB, customerId: $c}) { feedback { id } userErrors { code } } }";

        let identity = "UPDATE customer_identities SET value = value WHERE customer_id = ?";
        let writer = Writer::start(app, identity, duplicate).await;
        let merge = app.graphql(MERGE, json!({ "s": survivor.to_string(), "d": duplicate.to_string() }), Some(&admin));
        let during = async {
            until_waiting(app, 1).await;
            let c = duplicate.to_string();
            let touchpoint = app.graphql(TOUCHPOINT, json!({ "j": journey.to_string(), "c": c }), Some(&admin));
            let feedback = app.graphql(FEEDBACK, json!({ "c": c }), Some(&admin));
            let release = async {
                until_waiting(app, 3).await;
                writer.finish().await
            };
            tokio::join!(touchpoint, feedback, release)
        };
        let (merged, (touchpoint, feedback, released)) = tokio::join!(merge, during);
        let name = app.backend.name();
        released.unwrap_or_else(|e| panic!("[{name}] {e}"));
        let errors = merged["data"]["mergeCustomers"]["userErrors"].as_array();
        assert!(errors.unwrap_or_else(|| panic!("[{name}] {merged}")).is_empty(), "{merged}");
        let id = |body: &Value, field: &str, row: &str| {
            let id = body["data"][field][row]["id"].as_str().unwrap_or_else(|| panic!("[{name}] {body}"));
            Uuid::parse_str(id).unwrap()
        };
        let t = Touchpoint::find_by_id(id(&touchpoint, "recordTouchpoint", "touchpoint")).one(&app.db).await.unwrap();
        assert_eq!(t.unwrap().customer_id, survivor, "[{name}] the touchpoint is not on the tombstone");
        let f = Feedback::find_by_id(id(&feedback, "submitFeedback", "feedback")).one(&app.db).await.unwrap();
        assert_eq!(f.unwrap().customer_id, survivor, "[{name}] the feedback is not on the tombstone");
    })
    .await;
}

/// Erasure takes its locks in ingest's order too: a write holding one of the
/// customer's conversations, which then needs the customer's row, is not failed by
/// an erasure that starts in between; the erasure waits for it and then scrubs the
/// conversation too.
#[tokio::test]
async fn an_erasure_waits_for_a_write_holding_the_customers_conversation() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let customer = cxgraph_tests::insert_customer(&app.db, None).await;
        add_facts(&app.db, customer, "held", Utc::now()).await;
        let held = Conversation::find().filter(conversation::Column::CustomerId.eq(customer)).one(&app.db).await;
        let held = held.unwrap().expect("a conversation").id;

        let writer = Writer::start(app, "UPDATE conversations SET updated_at = updated_at WHERE id = ?", held).await;
        let erase = "mutation($id: ID!) { eraseCustomer(input: {id: $id}) { conversations userErrors { code } } }";
        let erased = app.graphql(erase, json!({ "id": customer.to_string() }), Some(&admin));
        let write_on = async {
            until_waiting(app, 1).await;
            let wrote = writer.run("UPDATE customers SET last_contact_at = CURRENT_TIMESTAMP WHERE id = ?", customer);
            (wrote.await, writer.finish().await)
        };
        let (erased, (wrote, committed)) = tokio::join!(erased, write_on);
        let name = app.backend.name();
        assert_eq!(wrote.map_err(|e| e.to_string()), Ok(1), "[{name}] the writer was not failed");
        committed.unwrap_or_else(|e| panic!("[{name}] {e}"));
        let e = &erased["data"]["eraseCustomer"];
        assert_eq!(e["userErrors"], json!([]), "[{name}] {erased}");
        assert_eq!(e["conversations"], 1, "[{name}] {erased}");
        let scrubbed = Conversation::find_by_id(held).one(&app.db).await.unwrap().unwrap();
        assert_eq!(scrubbed.subject, None, "[{name}] the held conversation was scrubbed after the writer committed");
    })
    .await;
}

const TWEET: &str = "mutation($x: String!) { recordInteraction(input: {channel: TWITTER, direction: INBOUND, \
                     body: \"still waiting\", externalId: $x, identities: [{kind: TWITTER, value: \"dupl\"}]}) \
                     { interaction { id conversationId customerId } userErrors { code } } }";

/// The rule of unmerge for what arrived while merged: what the duplicate wrote in its
/// own threads goes back with them (and the feedback about it), also when the
/// duplicate keeps writing while the unmerge runs; what the survivor did meanwhile
/// stays. An incremental export hands the moved rows out again with their owner.
#[tokio::test]
async fn unmerge_takes_back_what_arrived_in_the_duplicates_threads_while_merged() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let ann = create(
            app,
            &admin,
            json!({ "displayName": "Ann", "identities": [{ "kind": "EMAIL", "value": "ann@example.com" }] }),
        )
        .await;
        let dup = create(app, &admin, json!({ "identities": [{ "kind": "TWITTER", "value": "dupl" }] })).await;
        let tweet = async |n: usize| {
            let body = app.graphql(TWEET, json!({ "x": format!("t-{n}") }), Some(&admin)).await;
            let i = body["data"]["recordInteraction"]["interaction"].clone();
            assert!(i["id"].is_string(), "[{}] {body}", app.backend.name());
            i
        };
        let first = tweet(0).await;
        assert_eq!(first["customerId"], dup.to_string());
        let thread = first["conversationId"].clone();

        let body = app.graphql(MERGE, json!({ "s": ann.to_string(), "d": dup.to_string() }), Some(&admin)).await;
        let merge_id = body["data"]["mergeCustomers"]["merge"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
        // While merged: the duplicate tweets again, in its old thread, and rates it.
        let again = tweet(1).await;
        assert_eq!((&again["customerId"], &again["conversationId"]), (&json!(ann.to_string()), &thread));
        let rated = app
            .graphql(
                "mutation($i: ID!) { submitFeedback(input: {kind: CSAT, score: 1, channel: TWITTER, interactionId: $i, \
                 identities: [{kind: TWITTER, value: \"dupl\"}]}) { feedbackId userErrors { code } } }",
                json!({ "i": again["id"] }),
                Some(&admin),
            )
            .await;
        let rating = rated["data"]["submitFeedback"]["feedbackId"].as_str().unwrap_or_else(|| panic!("{rated}")).to_owned();
        // And Ann writes by e-mail: hers.
        let mail = app
            .graphql(
                "mutation { recordInteraction(input: {channel: EMAIL, direction: INBOUND, body: \"hello\", \
                 externalId: \"m-1\", identities: [{kind: EMAIL, value: \"ann@example.com\"}]}) { interaction { id } } }",
                json!({}),
                Some(&admin),
            )
            .await;
        let ann_mail = mail["data"]["recordInteraction"]["interaction"]["id"].clone();
        let since = (Utc::now() - Duration::seconds(1)).to_rfc3339();

        // The unmerge races more tweets.
        let racing = futures::future::join_all((2..8).map(tweet));
        let unmerge = app.graphql(UNMERGE, json!({ "m": merge_id }), Some(&admin));
        let (tweets, undone) = tokio::join!(racing, unmerge);
        assert_eq!(undone["data"]["unmergeCustomers"]["userErrors"], json!([]), "{undone}");
        assert!(tweets.iter().all(|t| t["id"].is_string()));

        // Every tweet is the duplicate's, in its one thread; the rating too; Ann keeps her mail.
        let tweets_now: Vec<interaction::Model> = Interaction::find()
            .filter(interaction::Column::ExternalId.starts_with("t-"))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(tweets_now.len(), 8);
        for t in &tweets_now {
            assert_eq!(t.customer_id, dup, "[{}] {:?} stayed on the survivor", app.backend.name(), t.external_id);
            assert_eq!(t.conversation_id.map(|c| c.to_string()), thread.as_str().map(str::to_owned));
        }
        let rating = Feedback::find_by_id(Uuid::parse_str(&rating).unwrap()).one(&app.db).await.unwrap().unwrap();
        assert_eq!(rating.customer_id, dup, "the rating of the duplicate's tweet follows it");
        let mail = Interaction::find_by_id(Uuid::parse_str(ann_mail.as_str().unwrap()).unwrap())
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mail.customer_id, ann, "the survivor's own mail stays");

        // A warehouse pulling what changed since sees the moved rows with their owner.
        let resp = app
            .client
            .get(app.url("/export/interactions"))
            .query(&[("format", "ndjson"), ("updated_since", since.as_str())])
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        let pulled: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let moved = pulled.iter().filter(|r| r["external_id"] == "t-1").collect::<Vec<_>>();
        assert_eq!(moved.len(), 1, "the tweet written while merged is pulled again: {text}");
        assert_eq!(moved[0]["customer_id"], dup.to_string());
    })
    .await;
}

/// A write naming identities held by two customers lands on the owner of the first
/// one held (the other keeps its identity), on both backends, and is not refused by
/// the check that follows unmerges (which once expected every identity on one owner).
#[tokio::test]
async fn a_write_naming_two_customers_identities_lands_on_the_first_owner() {
    on_each_backend(async |app: &TestApp| {
        let admin = app.login_admin().await.access;
        let x = create(app, &admin, json!({ "identities": [{ "kind": "EMAIL", "value": "x@example.com" }] })).await;
        let y = create(app, &admin, json!({ "identities": [{ "kind": "PHONE", "value": "+442079460958" }] })).await;
        let both =
            json!([{ "kind": "EMAIL", "value": "x@example.com" }, { "kind": "PHONE", "value": "+442079460958" }]);
        let recorded = app
            .graphql(
                "mutation($ids: [IdentityValueInput!]!) { recordInteraction(input: {channel: SMS, direction: INBOUND, \
                 body: \"hi\", externalId: \"two-owners\", identities: $ids}) { interactionId userErrors { code } } }",
                json!({ "ids": both }),
                Some(&admin),
            )
            .await;
        assert!(
            recorded["data"]["recordInteraction"]["interactionId"].is_string(),
            "[{}] {recorded}",
            app.backend.name()
        );
        let rated = app
            .graphql(
                "mutation($ids: [IdentityValueInput!]!) { submitFeedback(input: {kind: CSAT, score: 4, channel: SMS, \
                 identities: $ids}) { feedbackId userErrors { code } } }",
                json!({ "ids": both }),
                Some(&admin),
            )
            .await;
        let rating = rated["data"]["submitFeedback"]["feedbackId"].as_str().unwrap_or_else(|| panic!("{rated}"));
        let stored = Interaction::find().filter(interaction::Column::ExternalId.eq("two-owners")).one(&app.db).await;
        assert_eq!(stored.unwrap().unwrap().customer_id, x);
        let rating = Feedback::find_by_id(Uuid::parse_str(rating).unwrap()).one(&app.db).await.unwrap().unwrap();
        assert_eq!(rating.customer_id, x);
        let phone_owner = CustomerIdentity::find()
            .filter(entity::customer_identity::Column::Value.eq("+442079460958"))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(phone_owner.customer_id, y, "the other owner keeps its identity");
    })
    .await;
}
