//! The embedded default under many concurrent writers: ingest batches, single
//! `recordInteraction` mutations and new customers from every client at once, with
//! readers beside them. SQLite has one writer at a time; the server must queue the
//! rest (busy timeout, `BEGIN IMMEDIATE`) so that no client ever sees "database is
//! locked". At the end the server is killed (SIGKILL) and the file read directly:
//! every acknowledged write is there once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Answer, Ledger, Outcome, Scale, Spawned, Target, batch_ids, count_graphql, deliver, judge_graphql};
use crate::Backend;

const READERS: usize = 2;
const RECORD: &str = "mutation($c: ID!, $x: String!) { recordInteraction(input: {channel: EMAIL, direction: INBOUND, \
                      customerId: $c, externalId: $x, body: \"My order never arrived\"}) \
                      { duplicate interaction { id } userErrors { code message } } }";

/// Sends one `recordInteraction` until it is acknowledged (bounded: a minute).
async fn record(target: &Target, customer: &str, id: &str, ledger: &Mutex<Ledger>) {
    ledger.lock().expect("ledger").sent.insert(id.to_owned());
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let answer = match target.graphql(RECORD, json!({ "c": customer, "x": id })).await {
            Ok((status, body)) => match judge_graphql(status, &body) {
                Answer::Ok if body.contains("\"userErrors\":[]") => {
                    let mut l = ledger.lock().expect("ledger");
                    l.ok += 1;
                    l.acknowledged.insert(id.to_owned());
                    return;
                }
                Answer::Ok => Answer::Unclean(format!("refused: {body}")),
                other => other,
            },
            Err(e) => Answer::Unclean(format!("no answer: {e}")),
        };
        ledger.lock().expect("ledger").count(answer);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ledger.lock().expect("ledger").unclean.push(format!("{id} was not acknowledged in a minute"));
}

/// `scale.pick(16, 32)` writers for `scale.pick(15 s, 5 min)` on a SQLite file.
pub async fn many_writers(scale: Scale) -> Outcome {
    let started = Instant::now();
    let writers = scale.pick(16, 32);
    let duration = scale.pick(Duration::from_secs(15), Duration::from_secs(300));
    let mut outcome = Outcome::new("SQLite under concurrent writers", "sqlite");
    let mut spawned = Spawned::start(&Backend::Sqlite, "writers").await;
    let target = spawned.target.clone();
    let customer = target.create_customer("Busy customer").await;

    let prefix = "sqlite-";
    let done = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for client in 0..writers {
        let (t, customer, ledger, done) = (target.clone(), customer.clone(), Arc::clone(&ledger), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                match n % 3 {
                    0 => {
                        deliver(&t, &customer, &batch_ids(prefix, client, n, 1 + (n * 7 + client) % 40), &ledger, false)
                            .await
                    }
                    1 => record(&t, &customer, &format!("{prefix}{client}-{n}-single"), &ledger).await,
                    _ => {
                        let sent = t
                            .graphql(
                                "mutation($n: String!) { createCustomer(input: {displayName: $n, segment: \"load\"}) \
                                 { customer { id } userErrors { code } } }",
                                json!({ "n": format!("Writer {client}-{n}") }),
                            )
                            .await;
                        count_graphql(&ledger, sent, false);
                    }
                }
                n += 1;
            }
        }));
    }
    for _ in 0..READERS {
        let (t, ledger, done) = (target.clone(), Arc::clone(&ledger), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let sent = t.graphql("{ customers(first: 20) { edges { node { id displayName } } } }", json!({})).await;
                count_graphql(&ledger, sent, false);
            }
        }));
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    spawned.server.kill();
    let requests = spawned.settle(prefix, &ledger, &mut outcome).await;
    // The server's own log: "locked" must not appear there either (a retry inside
    // the server would hide it from clients but still cost time).
    let logged = std::fs::read_to_string(&spawned.log).unwrap_or_default();
    let locked = logged.lines().filter(|l| l.contains("locked")).count();
    if locked > 0 {
        outcome.violations.push(format!("{locked} \"locked\" lines in the server log"));
    }
    outcome.load = format!(
        "{writers} writers (ingest batches of 1–40, recordInteraction, createCustomer) + {READERS} readers for {} s",
        duration.as_secs()
    );
    outcome.faults = "SIGKILL at the end, then the file read directly".into();
    outcome.notes.push(format!("{:.0} writes+reads/s", requests as f64 / duration.as_secs_f64()));
    outcome.notes.push(format!("{locked} \"locked\" lines in the server log"));
    outcome.elapsed = started.elapsed();
    outcome
}
