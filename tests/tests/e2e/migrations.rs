//! Migrations: up, down and up again on both backends, the constraints they make, and
//! the data a migration carries over.

use chrono::{DateTime, Utc};
use cxgraph_tests::{TestDatabase, backends};
use entity::enums::{AuthorKind, Channel, Direction, FeedbackKind, IdentityKind, SentimentLabel, Visibility};
use entity::{customer, customer_identity, feedback, interaction};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel, PaginatorTrait, Statement,
};
use serde_json::json;
use uuid::Uuid;

async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        _ => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        }
    };
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect()
}

const TABLES: &[&str] = &[
    "alerts",
    "api_tokens",
    "audit_entries",
    "conversations",
    "customer_identities",
    "customer_merge_rows",
    "customer_merges",
    "customers",
    "detector_cursors",
    "duration_buckets",
    "feedback",
    "feedback_rollup_deltas",
    "feedback_rollups",
    "feedback_topics",
    "interaction_rollup_deltas",
    "interaction_rollups",
    "interaction_topics",
    "interactions",
    "journey_stages",
    "journey_step_rollups",
    "journey_steps",
    "journey_steps_dirty",
    "journeys",
    "outbox_events",
    "refresh_tokens",
    "routing_rules",
    "seaql_migrations",
    "sla_policies",
    "surveys",
    "teams",
    "topics",
    "touchpoints",
    "users",
    "webhook_deliveries",
    "webhook_endpoints",
];

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    for backend in backends() {
        let database = TestDatabase::create(&backend).await;
        let db = database.connect().await;
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(table_names(&db).await, TABLES, "[{}] after up", backend.name());
        Migrator::down(&db, None).await.unwrap();
        assert_eq!(table_names(&db).await, ["seaql_migrations"], "[{}] after down", backend.name());
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(table_names(&db).await, TABLES, "[{}] after up again", backend.name());
        assert!(Migrator::get_pending_migrations(&db).await.unwrap().is_empty());
        db.close().await.ok();
    }
}

fn new_customer() -> customer::Model {
    let now = Utc::now();
    customer::Model {
        id: Uuid::now_v7(),
        display_name: Some("Test".into()),
        segment: None,
        attributes: json!({}),
        merged_into_id: None,
        erased_at: None,
        last_contact_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn identity(customer_id: Uuid, value: &str) -> customer_identity::Model {
    customer_identity::Model {
        id: Uuid::now_v7(),
        customer_id,
        kind: IdentityKind::Email,
        value: value.into(),
        verified: false,
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn schema_enforces_foreign_keys_and_identity_uniqueness() {
    for backend in backends() {
        let who = backend.name();
        let database = TestDatabase::create(&backend).await;
        let db = database.connect().await;
        Migrator::up(&db, None).await.unwrap();

        let orphan = identity(Uuid::now_v7(), "nobody@example.com").into_active_model().insert(&db).await;
        assert!(orphan.is_err(), "[{who}] an identity of a missing customer is refused");

        let a = new_customer().into_active_model().insert(&db).await.unwrap();
        let b = new_customer().into_active_model().insert(&db).await.unwrap();
        identity(a.id, "ann@example.com").into_active_model().insert(&db).await.unwrap();
        let taken = identity(b.id, "ann@example.com").into_active_model().insert(&db).await;
        assert!(taken.is_err(), "[{who}] one identity belongs to one customer");

        // Identities go with their customer (ON DELETE CASCADE).
        customer::Entity::delete_by_id(a.id).exec(&db).await.unwrap();
        let left = customer_identity::Entity::find().count(&db).await.unwrap();
        assert_eq!(left, 0, "[{who}] identities cascade with their customer");
        db.close().await.ok();
    }
}

/// Hours still dirty when migration 16 replaced dirty marks with deltas become deltas
/// (their facts less their stale hour rows): one fold leaves every hour and day row
/// equal to its facts.
#[tokio::test]
async fn dirty_hours_become_deltas_when_the_rollups_move_to_deltas() {
    for backend in backends() {
        let who = backend.name();
        let database = TestDatabase::create(&backend).await;
        let db = database.connect().await;
        Migrator::up(&db, Some(15)).await.unwrap();
        let c = new_customer().into_active_model().insert(&db).await.unwrap();
        let answer = |kind: FeedbackKind, score: i16, at: &str| feedback::Model {
            id: Uuid::now_v7(),
            customer_id: c.id,
            survey_id: None,
            kind,
            score: Some(score),
            comment: None,
            channel: Channel::Email,
            touchpoint_id: None,
            interaction_id: None,
            sentiment_score: None,
            sentiment_label: None,
            source: "test".into(),
            external_id: None,
            occurred_at: at.parse::<DateTime<Utc>>().unwrap(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        for (kind, score, at) in [
            (FeedbackKind::Nps, 10, "2026-11-20T10:15:00Z"),
            (FeedbackKind::Nps, 3, "2026-11-20T10:40:00Z"),
            (FeedbackKind::Csat, 5, "2026-11-20T14:05:00Z"),
        ] {
            // Written as that schema had it: no `updated_at` yet (migration 21).
            let mut row = answer(kind, score, at).into_active_model();
            row.updated_at = sea_orm::ActiveValue::NotSet;
            feedback::Entity::insert(row).exec_without_returning(&db).await.unwrap();
        }
        // The rows a refresh between the first answer and the second left: the first
        // answer in its hour and its day. (The triggers marked all three answers.)
        let hour = "2026-11-20T10:00:00Z".parse::<DateTime<Utc>>().unwrap().timestamp() / 3600;
        let day = hour - hour % 24;
        let stale = |hours: i64, start: i64| {
            format!(
                "INSERT INTO feedback_rollups (hours, start_hour, channel, responses, promoters, passives, detractors, \
                 csat_n, csat_sat, csat_sum, csat_sq, ces_n, ces_sum, ces_sq, s_n, s_sum, s_sq, s_neg) \
                 VALUES ({hours}, {start}, 'email', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"
            )
        };
        db.execute_unprepared(&stale(1, hour)).await.unwrap();
        db.execute_unprepared(&stale(24, day)).await.unwrap();

        Migrator::up(&db, None).await.unwrap();
        cxgraph::insights::rollups::refresh(&db, 10).await.unwrap();
        let sql = "SELECT CAST(hours AS BIGINT) AS hours, start_hour, responses, promoters, detractors, csat_n, csat_sum FROM feedback_rollups \
                   WHERE responses <> 0 ORDER BY hours, start_hour";
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        let rows: Vec<[i64; 7]> = rows
            .iter()
            .map(|r| {
                ["hours", "start_hour", "responses", "promoters", "detractors", "csat_n", "csat_sum"]
                    .map(|c| r.try_get::<i64>("", c).unwrap())
            })
            .collect();
        assert_eq!(
            rows,
            [[1, hour, 2, 1, 1, 0, 0], [1, hour + 4, 1, 0, 0, 1, 5], [24, day, 3, 1, 1, 1, 5]],
            "[{who}] hour and day rows equal their facts"
        );
        db.close().await.ok();
    }
}

#[tokio::test]
async fn stored_sentiment_labels_move_to_the_schemas_thresholds_and_insights_follow() {
    for backend in backends() {
        let who = backend.name();
        let database = TestDatabase::create(&backend).await;
        let db = database.connect().await;
        Migrator::up(&db, Some(23)).await.unwrap();
        let c = new_customer().into_active_model().insert(&db).await.unwrap();
        let at: DateTime<Utc> = "2026-11-20T10:15:00Z".parse().unwrap();
        // Labelled at ±0.1, as before: 0.15 was positive, −0.2 negative.
        let mut ids = Vec::new();
        for (score, label) in [
            (Some(0.15), Some(SentimentLabel::Positive)),
            (Some(-0.2), Some(SentimentLabel::Negative)),
            (Some(-0.3), Some(SentimentLabel::Negative)),
            (Some(0.6), Some(SentimentLabel::Positive)),
            (None, None),
        ] {
            let id = Uuid::now_v7();
            ids.push(id);
            interaction::Model {
                id,
                customer_id: c.id,
                conversation_id: None,
                channel: Channel::Email,
                direction: Direction::Inbound,
                visibility: Visibility::Private,
                author_kind: AuthorKind::Customer,
                author_user_id: None,
                inbox: None,
                body: Some("text".into()),
                sentiment_score: score,
                sentiment_label: label,
                external_id: None,
                occurred_at: at,
                created_at: at,
                updated_at: at,
            }
            .into_active_model()
            .insert(&db)
            .await
            .unwrap();
        }
        cxgraph::insights::rollups::refresh(&db, 10).await.unwrap();
        let before = Utc::now();
        Migrator::up(&db, None).await.unwrap();
        let mut labels = Vec::new();
        let mut restamped = Vec::new();
        for id in &ids {
            let row = interaction::Entity::find_by_id(*id).one(&db).await.unwrap().unwrap();
            labels.push(row.sentiment_label);
            restamped.push(row.updated_at >= before);
        }
        use SentimentLabel::*;
        assert_eq!(labels, [Some(Neutral), Some(Neutral), Some(Negative), Some(Positive), None], "[{who}]");
        // A relabelled fact is a changed fact: an incremental export picks it up.
        assert_eq!(restamped, [true, true, false, false, false], "[{who}] only what changed is stamped");
        // The rollup of that hour was marked dirty by the relabelling: recomputed, it
        // counts one negative.
        cxgraph::insights::rollups::refresh(&db, 10).await.unwrap();
        let sql = "SELECT s_neg FROM interaction_rollups WHERE hours = 1 AND s_n <> 0";
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        let negatives: Vec<i64> = rows.iter().map(|r| r.try_get::<i64>("", "s_neg").unwrap()).collect();
        assert_eq!(negatives, [1], "[{who}]");
        db.close().await.ok();
    }
}
