//! The fault-and-load suite at its short scale (seconds per scenario), run by
//! `cargo test`: each scenario of `cxgraph_tests::faults` must keep every promise.
//! The long scale is `cxgraph-faults` (README: "Reliability under faults").
//!
//! A separate test binary: its scenarios own servers, kill processes and take the
//! machine's CPU, so they run one at a time and not beside the end-to-end tests.

use cxgraph_tests::faults::{Scale, crash, database, fuzz, hostile, soak, sqlite};
use cxgraph_tests::{Backend, backends};

/// One scenario at a time: they measure timings and kill processes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn postgres() -> Option<Backend> {
    backends().into_iter().find(|b| matches!(b, Backend::Postgres(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restarted_under_load_loses_and_duplicates_nothing() {
    let _one = SERIAL.lock().await;
    database::restart(Scale::Short).await.assert_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_fails_requests_fast_and_turns_readiness_red() {
    let _one = SERIAL.lock().await;
    database::freeze(Scale::Short).await.assert_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_killed_mid_ingest_loses_and_duplicates_nothing() {
    let _one = SERIAL.lock().await;
    for backend in backends() {
        crash::kill_mid_ingest(Scale::Short, &backend).await.assert_kept();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_under_many_writers_never_answers_locked() {
    let _one = SERIAL.lock().await;
    sqlite::many_writers(Scale::Short).await.assert_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_soak_keeps_memory_and_descriptors_flat() {
    let _one = SERIAL.lock().await;
    for backend in backends() {
        soak::mixed(Scale::Short, &backend).await.assert_kept();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_and_random_input_never_gets_a_5xx() {
    let _one = SERIAL.lock().await;
    for backend in backends() {
        fuzz::documents(Scale::Short, &backend, 20261201).await.assert_kept();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_callers_cannot_take_the_server_down() {
    let _one = SERIAL.lock().await;
    for backend in backends() {
        for outcome in hostile::families(Scale::Short, &backend).await {
            outcome.assert_kept();
        }
    }
}

/// The restart and freeze scenarios own a PostgreSQL server; the shared one only
/// needs to exist for the others, so this only checks the suite is not skipping.
#[test]
fn the_suite_runs_on_postgresql_under_ci() {
    if std::env::var_os("CI").is_some() {
        assert!(postgres().is_some(), "CI runs the fault suite on PostgreSQL too");
    }
}
