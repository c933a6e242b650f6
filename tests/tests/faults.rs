//! Faults under load (the short suite, run by `cargo test`): PostgreSQL is killed
//! (`-m immediate`) and restarted several times while clients ingest with idempotency
//! keys and read. Every failure a client sees must be a clean `503 UNAVAILABLE`
//! (never another 5xx, never a hang), the API must recover by itself within seconds of
//! each restart, and afterwards the database must hold exactly the events the clients
//! sent — each once — checked against the clients' ledger. Clients retry a batch
//! until it is acknowledged, as a connector would; what the server acknowledged is
//! therefore never lost, and a retry of a batch that had landed is never counted twice.
//!
//! A separate test binary: it owns a PostgreSQL server and takes the machine's CPU
//! for a while, so it does not run beside the end-to-end tests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cxgraph_tests::{Backend, OwnedPostgres, TestApp};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

const CLIENTS: usize = 4;
const EVENTS_PER_BATCH: usize = 20;
const RESTARTS: usize = 3;

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    /// External ids of the events the clients sent.
    sent: BTreeSet<String>,
    /// External ids of acknowledged events.
    acknowledged: BTreeSet<String>,
    /// Status codes of failed attempts.
    failures: Vec<u16>,
    /// Bodies of failures that were not a clean 503.
    unclean: Vec<String>,
    reads_ok: u64,
}

/// Sends one batch until the server acknowledges every line (bounded: two minutes).
async fn deliver(app: &TestApp, token: &str, customer: &str, client: usize, batch: usize, ledger: &Mutex<Ledger>) {
    let ids: Vec<String> = (0..EVENTS_PER_BATCH).map(|e| format!("fault-{client}-{batch}-{e}")).collect();
    ledger.lock().unwrap().sent.extend(ids.iter().cloned());
    let body: String = ids
        .iter()
        .map(|id| {
            json!({ "channel": "CHAT", "direction": "INBOUND", "externalId": id, "customerId": customer,
                "body": "Where is my parcel?" })
            .to_string()
                + "\n"
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let sent = app
            .client
            .post(app.url("/ingest/interactions"))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let acknowledged = status == 200
                    && text.lines().count() == EVENTS_PER_BATCH
                    && text.lines().all(|l| l.contains("\"created\"") || l.contains("\"duplicate\""));
                if acknowledged {
                    ledger.lock().unwrap().acknowledged.extend(ids);
                    return;
                }
                let mut l = ledger.lock().unwrap();
                l.failures.push(status);
                let clean = status == 503 && text.contains("UNAVAILABLE");
                // A 200 whose lines were rejected as unavailable is clean too: the
                // batch is retried whole.
                let clean_lines = status == 200 && text.lines().all(|l| !l.contains("INTERNAL"));
                if !(clean || clean_lines) {
                    l.unclean.push(format!("{status}: {}", &text[..text.len().min(300)]));
                }
            }
            Err(e) => {
                let mut l = ledger.lock().unwrap();
                l.failures.push(0);
                l.unclean.push(format!("no answer: {e}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("batch {client}-{batch} was not acknowledged within two minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restarted_under_load_loses_and_duplicates_nothing() {
    let pg = Arc::new(OwnedPostgres::start());
    let app = Arc::new(TestApp::spawn_with(&Backend::Postgres(pg.url()), |s| s.db_acquire_timeout = 1).await);
    let token = app.login_admin().await.access;
    let customer = cxgraph_tests::insert_customer(&app.db, None).await.to_string();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Writers send batch after batch until the restarts are over.
    let mut writers = Vec::new();
    for client in 0..CLIENTS {
        let (app, token, customer, ledger, done) =
            (Arc::clone(&app), token.clone(), customer.clone(), Arc::clone(&ledger), Arc::clone(&done));
        writers.push(tokio::spawn(async move {
            let mut batch = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                deliver(&app, &token, &customer, client, batch, &ledger).await;
                batch += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // A reader beside them: the customer 360 page, counted when it answers cleanly.
    let reader = {
        let (app, token, ledger, done) = (Arc::clone(&app), token.clone(), Arc::clone(&ledger), Arc::clone(&done));
        let query = "query($id: ID!) { customer(id: $id) { id interactions(first: 5) { edges { cursor } } } }";
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let body = app.graphql(query, json!({ "id": customer }), Some(&token)).await;
                let code = cxgraph_tests::error_code(&body).map(str::to_owned);
                {
                    let mut l = ledger.lock().unwrap();
                    match code.as_deref() {
                        None => l.reads_ok += 1,
                        Some("UNAVAILABLE") => {}
                        Some(other) => l.unclean.push(format!("read answered {other}: {body}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Restarts while the load runs: down for a second each time.
    let mut recoveries = Vec::new();
    for _ in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let pg_down = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg_down.crash()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pg_up = Arc::clone(&pg);
        tokio::task::spawn_blocking(move || pg_up.resume()).await.unwrap();
        // Recovery: how long until a request succeeds again.
        let back = Instant::now();
        loop {
            let body = app.graphql("{ me { email } }", json!({}), Some(&token)).await;
            if body["errors"].is_null() {
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(15), "no recovery within 15 s: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        recoveries.push(back.elapsed());
    }
    // A little more load after the last restart, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    reader.await.unwrap();

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.unclean.is_empty(), "every failure was a clean UNAVAILABLE: {:?}", ledger.unclean);
    assert!(!ledger.failures.is_empty(), "the restarts were felt: some attempts failed");
    assert!(ledger.reads_ok > 0, "reads answered between the restarts");
    let sent = ledger.sent.len();
    assert_eq!(ledger.acknowledged, ledger.sent, "every batch was acknowledged in the end");
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT count(*) AS n, count(DISTINCT external_id) AS d FROM interactions WHERE external_id LIKE 'fault-%'",
        ))
        .await
        .unwrap()
        .unwrap();
    let (rows, distinct): (i64, i64) = (row.try_get("", "n").unwrap(), row.try_get("", "d").unwrap());
    assert_eq!(rows as usize, sent, "zero lost, zero duplicated");
    assert_eq!(distinct as usize, sent);
    let stored: BTreeSet<String> = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT external_id FROM interactions WHERE external_id LIKE 'fault-%'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "external_id").unwrap())
        .collect();
    assert_eq!(stored, ledger.acknowledged, "the database holds exactly the acknowledged events");
    let slowest = recoveries.iter().max().copied().unwrap_or_default();
    assert!(slowest < Duration::from_secs(10), "recovered within seconds of each restart: {recoveries:?}");
    eprintln!(
        "faults: {RESTARTS} restarts, {} failed attempts, {} events acknowledged, 0 lost, 0 duplicated, \
         {} clean reads, slowest recovery {slowest:?}",
        ledger.failures.len(),
        ledger.acknowledged.len(),
        ledger.reads_ok
    );
}
