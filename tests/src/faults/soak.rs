//! A long mixed load with no fault injected: readers (customer 360, the agent queue,
//! customer lists), ingest and mutation writers, and subscriptions opening and
//! closing all the time. The server's resident memory and open file descriptors are
//! sampled every second; after warm-up they must stay flat, and no request may fail.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Drift, Ledger, Outcome, Scale, Spawned, batch_ids, count_graphql, deliver};
use crate::process;
use crate::{Backend, Subscription};

const READERS: usize = 4;
/// Customers the writes are spread over, so that what one read costs stays the same
/// while the data grows (a soak measures the server, not a customer with ten times
/// the history every few minutes).
const CUSTOMERS: usize = 50;
const INGESTERS: usize = 2;
/// Allowed growth after warm-up: resident memory, KiB, and descriptors.
const RSS_SLACK_KIB: u64 = 16 * 1024;
const FD_SLACK: usize = 8;

const CUSTOMER_360: &str = "query($id: ID!) { customer(id: $id) { id displayName identities { kind value } \
    interactions(first: 20) { edges { node { id channel body sentimentLabel } } } \
    conversations(status: [OPEN, PENDING]) { id status priority } feedback(first: 10) { score } } }";
const QUEUE: &str = "{ conversations(filter: {status: [OPEN]}, orderBy: DUE, first: 50) \
    { edges { node { id channel priority firstResponseDueAt } } } }";
const LIST: &str = "{ customers(first: 50) { edges { node { id displayName segment } } } }";

/// The median of the samples in `range` (fractions of the run).
fn median(samples: &[(u64, usize)], from: f64, to: f64, pick: impl Fn(&(u64, usize)) -> u64) -> u64 {
    let (a, b) = ((samples.len() as f64 * from) as usize, (samples.len() as f64 * to) as usize);
    let mut window: Vec<u64> = samples[a..b.max(a + 1).min(samples.len())].iter().map(pick).collect();
    window.sort_unstable();
    window.get(window.len() / 2).copied().unwrap_or(0)
}

/// `scale.pick(20 s, 15 min)` of mixed load on `backend`.
pub async fn mixed(scale: Scale, backend: &Backend) -> Outcome {
    let started = Instant::now();
    let duration = scale.pick(Duration::from_secs(20), Duration::from_secs(900));
    let mut outcome = Outcome::new("soak: mixed load, subscriptions churning", backend.name());
    let mut spawned = Spawned::start(backend, "soak").await;
    let pid = spawned.server.pid();
    let target = spawned.target.clone();
    let mut customers = Vec::new();
    for n in 0..CUSTOMERS {
        customers.push(target.create_customer(&format!("Soak customer {n}")).await);
    }
    let customers = Arc::new(customers);
    let host = spawned.server.base.trim_start_matches("http://").to_owned();

    let prefix = "soak-";
    let done = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let subscriptions = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for reader in 0..READERS {
        let (t, customers, ledger, done) =
            (target.clone(), Arc::clone(&customers), Arc::clone(&ledger), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut n = reader;
            while !done.load(Ordering::Relaxed) {
                let sent = match n % 3 {
                    0 => t.graphql(CUSTOMER_360, json!({ "id": customers[(n / 3) % CUSTOMERS] })).await,
                    1 => t.graphql(QUEUE, json!({})).await,
                    _ => t.graphql(LIST, json!({})).await,
                };
                count_graphql(&ledger, sent, false);
                n += 1;
            }
        }));
    }
    for client in 0..INGESTERS {
        let (t, customers, ledger, done) =
            (target.clone(), Arc::clone(&customers), Arc::clone(&ledger), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut batch = 0;
            while !done.load(Ordering::Relaxed) {
                let customer = &customers[(batch * INGESTERS + client) % CUSTOMERS];
                deliver(&t, customer, &batch_ids(prefix, client, batch, 10), &ledger, false).await;
                batch += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        let (t, ledger, done) = (target.clone(), Arc::clone(&ledger), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let sent = t
                    .graphql(
                        "mutation($n: String!) { createCustomer(input: {displayName: $n}) { customer { id } } }",
                        json!({ "n": format!("Soak {n}") }),
                    )
                    .await;
                count_graphql(&ledger, sent, false);
                n += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    {
        // Subscriptions: open, wait for an event (or a second), close; again.
        let (token, done, opened, ledger) =
            (target.token.clone(), Arc::clone(&done), Arc::clone(&subscriptions), Arc::clone(&ledger));
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                match Subscription::start_at(&host, Some(&token), "subscription { interactionReceived { id } }").await {
                    Ok(mut sub) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        let _ = sub.next_message(1).await;
                    }
                    Err(refused) => {
                        ledger.lock().expect("ledger").unclean.push(format!("subscription refused: {refused}"))
                    }
                }
            }
        }));
    }
    // Samples of (RSS KiB, open descriptors), one a second, for the whole run (set-up
    // not counted).
    let mut samples = Vec::new();
    let load_started = Instant::now();
    while load_started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((process::rss_kib(pid), process::open_fds(pid)));
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    // Warm-up is the first quarter; compare the median of the second quarter with
    // the median of the last.
    let drift = Drift {
        rss_after_warmup_kib: median(&samples, 0.25, 0.5, |s| s.0),
        rss_end_kib: median(&samples, 0.75, 1.0, |s| s.0),
        fds_after_warmup: median(&samples, 0.25, 0.5, |s| s.1 as u64) as usize,
        fds_end: median(&samples, 0.75, 1.0, |s| s.1 as u64) as usize,
    };
    if drift.rss_end_kib > drift.rss_after_warmup_kib + RSS_SLACK_KIB {
        outcome.violations.push(format!(
            "resident memory grew from {} to {} KiB after warm-up",
            drift.rss_after_warmup_kib, drift.rss_end_kib
        ));
    }
    if drift.fds_end > drift.fds_after_warmup + FD_SLACK {
        outcome
            .violations
            .push(format!("open descriptors grew from {} to {} after warm-up", drift.fds_after_warmup, drift.fds_end));
    }
    let requests = spawned.settle(prefix, &ledger, &mut outcome).await;
    if !outcome.clean_failures.is_empty() {
        outcome.violations.push(format!("requests failed with nothing broken: {:?}", outcome.clean_failures));
    }
    let opened = subscriptions.load(Ordering::Relaxed);
    if opened == 0 {
        outcome.violations.push("no subscription was opened".into());
    }
    let peak = samples.iter().map(|s| s.0).max().unwrap_or(0);
    outcome.drift = Some(drift);
    outcome.load = format!(
        "{READERS} readers (360, queue, list), {INGESTERS} ingest clients over {CUSTOMERS} customers, \
         1 mutation writer, 1 subscriber reconnecting, {} s",
        duration.as_secs()
    );
    outcome.faults = "none (soak)".into();
    outcome.notes.push(format!("{:.0} req/s", requests as f64 / duration.as_secs_f64()));
    outcome.notes.push(format!("{opened} subscriptions opened and closed"));
    outcome.notes.push(format!("peak RSS {:.1} MiB", peak as f64 / 1024.0));
    // The shape of the curve tells a cache filling (growth slowing to a plateau) from
    // a leak (growth in step with the work done).
    let quarters: Vec<String> = (0..4)
        .map(|q| format!("{:.1}", median(&samples, q as f64 / 4.0, (q + 1) as f64 / 4.0, |s| s.0) as f64 / 1024.0))
        .collect();
    outcome.notes.push(format!("RSS median by quarter {} MiB", quarters.join(" → ")));
    outcome.elapsed = started.elapsed();
    spawned.server.kill();
    outcome
}
