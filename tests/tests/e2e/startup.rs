//! Start-up: migrations applied, first admin and demo data created once, SQLite
//! settings, health and readiness.

use cxgraph::config::DemoData;
use cxgraph::startup::bootstrap;
use cxgraph_tests::{ADMIN_EMAIL, Backend, TestApp, backends, on_each_backend};
use entity::prelude::*;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, Statement};

#[tokio::test]
async fn first_start_creates_admin_and_demo_data_once() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
        let who = backend.name();
        let (email, generated) = app.bootstrap.admin_created.clone().expect("admin created on empty database");
        assert_eq!(email, ADMIN_EMAIL, "[{who}]");
        assert!(generated.is_none(), "[{who}] password came from settings, nothing generated");
        let seeded = app.bootstrap.demo_data.expect("demo data loaded");
        assert_eq!(seeded.customers, 300, "[{who}]");
        assert_eq!(Customer::find().count(&app.db).await.unwrap(), 300, "[{who}]");
        for (table, rows) in [
            ("identities", CustomerIdentity::find().count(&app.db).await.unwrap()),
            ("conversations", Conversation::find().count(&app.db).await.unwrap()),
            ("interactions", Interaction::find().count(&app.db).await.unwrap()),
            ("touchpoints", Touchpoint::find().count(&app.db).await.unwrap()),
            ("feedback", Feedback::find().count(&app.db).await.unwrap()),
            ("journeys", Journey::find().count(&app.db).await.unwrap()),
        ] {
            assert!(rows > 0, "[{who}] demo data has no {table}");
        }
        assert_eq!(seeded.interactions, Interaction::find().count(&app.db).await.unwrap(), "[{who}]");

        // A second start on the same database changes nothing.
        let again = bootstrap(&app.db, &app.settings).await.unwrap();
        assert!(again.admin_created.is_none(), "[{who}] admin created twice");
        assert!(again.demo_data.is_none(), "[{who}] demo data loaded twice");
        assert_eq!(Customer::find().count(&app.db).await.unwrap(), 300, "[{who}]");
        assert_eq!(User::find().count(&app.db).await.unwrap(), 1, "[{who}]");
        app.stop().await;
    }
}

#[tokio::test]
async fn generated_admin_password_is_returned_once_and_works() {
    for backend in backends() {
        let app = TestApp::spawn_with(&backend, |s| s.admin_password = None).await;
        let (email, password) = app.bootstrap.admin_created.clone().unwrap();
        let password = password.expect("a generated password is reported");
        assert!(password.len() >= 20, "generated password is long");
        let session = app.login(&email, &password).await;
        assert!(!session.access.is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn demo_data_is_deterministic_for_a_seed() {
    let backend = Backend::Sqlite;
    let a = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
    let b = TestApp::spawn_with(&backend, |s| s.demo_data = DemoData::Always).await;
    let names = async |app: &TestApp| {
        let rows = app
            .db
            .query_all_raw(Statement::from_string(
                app.db.get_database_backend(),
                "SELECT display_name, segment FROM customers ORDER BY created_at, display_name",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.try_get::<String>("", "display_name").unwrap(), r.try_get::<String>("", "segment").unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(a.bootstrap.demo_data, b.bootstrap.demo_data, "same sizes for the same seed");
    assert_eq!(names(&a).await, names(&b).await, "same customers for the same seed");
    a.stop().await;
    b.stop().await;
}

/// The benchmark's sizes are totals: the generator lands near each (activity is
/// random and skewed, so not exactly), tags what it writes as ingest would (nothing is
/// left for the re-tagging job), and its funnels thin out stage by stage.
#[tokio::test]
async fn seed_generates_the_requested_totals_tagged() {
    on_each_backend(async |app: &TestApp| {
        let who = app.backend.name();
        let args = cxgraph::config::SeedArgs {
            customers: 400,
            interactions: Some(8_000),
            touchpoints: Some(2_000),
            feedback: Some(1_000),
            seed: 7,
        };
        let report = cxgraph::dataset::generate(&app.db, &args).await.unwrap();
        assert_eq!(report.customers, 400, "[{who}]");
        let near = |got: u64, want: f64| (got as f64 - want).abs() / want < 0.15;
        assert!(near(report.interactions, 8_000.0), "[{who}] {report:?}");
        assert!(near(report.touchpoints, 2_000.0), "[{who}] {report:?}");
        assert!(near(report.feedback, 1_000.0), "[{who}] {report:?}");
        assert_eq!(Interaction::find().count(&app.db).await.unwrap(), report.interactions, "[{who}]");
        let count = async |sql: &str| {
            let row =
                app.db.query_one_raw(Statement::from_string(app.db.get_database_backend(), sql)).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        };
        let tagged = count("SELECT count(*) FROM interaction_topics").await;
        assert!(tagged > 0, "[{who}] inbound messages tagged at generation");
        let untagged_parcels = count(
            "SELECT count(*) FROM interactions i WHERE i.direction = 'inbound' AND i.body LIKE '%parcel%' \
             AND NOT EXISTS (SELECT 1 FROM interaction_topics t WHERE t.interaction_id = i.id)",
        )
        .await;
        assert_eq!(untagged_parcels, 0, "[{who}] every message about a parcel has the Delivery topic");
        assert!(count("SELECT count(*) FROM feedback_topics").await > 0, "[{who}]");
        let pending = Topic::find().all(&app.db).await.unwrap();
        assert!(pending.iter().all(|t| !cxgraph::feedback::topics::retag_pending_for(t)), "[{who}] nothing to re-tag");
        // Later stages are reached by fewer touchpoints than the first.
        let by_stage = app
            .db
            .query_all_raw(Statement::from_string(
                app.db.get_database_backend(),
                "SELECT s.position AS position, count(*) AS n FROM touchpoints t JOIN journey_stages s ON s.id = t.stage_id \
                 JOIN journeys j ON j.id = s.journey_id WHERE j.name = 'Purchase' GROUP BY s.position ORDER BY s.position",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<i64>("", "n").unwrap())
            .collect::<Vec<_>>();
        assert_eq!(by_stage.len(), 5, "[{who}] {by_stage:?}");
        assert!(by_stage.windows(2).all(|w| w[1] < w[0]), "[{who}] the funnel thins out: {by_stage:?}");
    })
    .await;
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let pragma = async |name: &str| {
        let row = app
            .db
            .query_one_raw(Statement::from_string(sea_orm::DatabaseBackend::Sqlite, format!("PRAGMA {name}")))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).map(|v| v.to_string()).or_else(|_| row.try_get_by_index::<String>(0)).unwrap()
    };
    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("foreign_keys").await, "1");
    assert_eq!(pragma("synchronous").await, "2", "FULL: acknowledged writes survive a crash");
    assert!(pragma("busy_timeout").await.parse::<i64>().unwrap() >= 1000);
    assert_eq!(pragma("soft_heap_limit").await, "16777216", "the page caches share a bounded heap");
    app.stop().await;
}

#[tokio::test]
async fn postgres_sessions_start_with_jit_off() {
    for backend in cxgraph_tests::backends() {
        if !matches!(backend, Backend::Postgres(_)) {
            continue;
        }
        let app = TestApp::spawn(&backend).await;
        let row = app
            .db
            .query_one_raw(Statement::from_string(sea_orm::DatabaseBackend::Postgres, "SHOW jit"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "off", "JIT compile time never pays back here");
        app.stop().await;
    }
}

#[tokio::test]
async fn health_and_readiness() {
    on_each_backend(async |app: &TestApp| {
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["database"], "ok");
    })
    .await;
}

/// PostgreSQL only: an embedded SQLite file cannot become unreachable under an open pool.
#[tokio::test]
async fn readiness_turns_red_when_postgres_refuses_connections() {
    let Some(backend) = backends().into_iter().find(|b| matches!(b, Backend::Postgres(_))) else {
        eprintln!("PostgreSQL not configured: readiness-failure test runs on PostgreSQL only");
        return;
    };
    let Backend::Postgres(server) = &backend else { unreachable!() };
    let app = TestApp::spawn_with(&backend, |s| s.db_acquire_timeout = 1).await;
    let name = app.database.url.rsplit('/').next().unwrap().to_owned();
    let admin = sea_orm::Database::connect(server.as_str()).await.unwrap();
    let lock_out = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false");
    admin.execute_unprepared(&lock_out).await.unwrap();
    let kill = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
    admin.execute_unprepared(&kill).await.unwrap();

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the process is still up");

    let allow = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true");
    admin.execute_unprepared(&allow).await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready again once the database is back");
    admin.close().await.ok();
    app.stop().await;
}

#[tokio::test]
async fn replicas_starting_together_on_an_empty_database_create_one_admin() {
    for backend in cxgraph_tests::backends() {
        let database = cxgraph_tests::TestDatabase::create(&backend).await;
        let settings = cxgraph_tests::test_settings(&database.url);
        let (a, b) = tokio::join!(
            cxgraph::startup::Application::build(settings.clone()),
            cxgraph::startup::Application::build(settings.clone())
        );
        let (a, b) = (a.expect("first replica starts"), b.expect("second replica starts"));
        let created = [a.1.admin_created.is_some(), b.1.admin_created.is_some()];
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "[{}] exactly one created the admin", backend.name());
        let db = database.connect().await;
        assert_eq!(entity::user::Entity::find().count(&db).await.unwrap(), 1);
        drop((a, b));
        db.close().await.ok();
    }
}
