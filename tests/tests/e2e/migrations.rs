//! Migrations: up, down and up again on both backends, and the constraints they make.

use chrono::Utc;
use cxgraph_tests::{TestDatabase, backends};
use entity::enums::IdentityKind;
use entity::{customer, customer_identity};
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
    "feedback",
    "feedback_rollups",
    "feedback_topics",
    "interaction_rollups",
    "interaction_topics",
    "interactions",
    "journey_stages",
    "journey_steps",
    "journey_steps_dirty",
    "journeys",
    "outbox_events",
    "refresh_tokens",
    "rollup_dirty",
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
