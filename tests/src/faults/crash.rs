//! The API process killed (`SIGKILL`) again and again in the middle of batch ingest,
//! and started again on the same port, while clients retry every batch that was not
//! acknowledged. On SQLite this is also the durability check: what was acknowledged
//! before a kill is on disk after it (WAL with `synchronous = FULL`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Ledger, Outcome, Scale, Spawned, batch_ids, deliver};
use crate::Backend;

const WRITERS: usize = 4;
const BATCH: usize = 50;

/// Kills the server `scale.pick(3, 30)` times mid-ingest; checks the ledger after.
pub async fn kill_mid_ingest(scale: Scale, backend: &Backend) -> Outcome {
    let started = Instant::now();
    let kills = scale.pick(3, 30);
    let mut outcome = Outcome::new("API killed mid-ingest", backend.name());
    let mut spawned = Spawned::start(backend, "crash").await;
    let target = spawned.target.clone();
    let customer = target.create_customer("Crash customer").await;

    let prefix = "crash-";
    let done = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut writers = Vec::new();
    for client in 0..WRITERS {
        let (t, customer, ledger, done) = (target.clone(), customer.clone(), Arc::clone(&ledger), Arc::clone(&done));
        writers.push(tokio::spawn(async move {
            let mut batch = 0;
            while !done.load(Ordering::Relaxed) {
                deliver(&t, &customer, &batch_ids(prefix, client, batch, BATCH), &ledger, true).await;
                batch += 1;
            }
        }));
    }
    let mut restarts = Vec::new();
    for k in 0..kills {
        // Uneven gaps, so kills land at different points of a batch.
        tokio::time::sleep(Duration::from_millis(300 + (k as u64 * 137) % 600)).await;
        spawned.server.kill();
        let restarted = Instant::now();
        spawned.restart().await;
        restarts.push(restarted.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer task");
    }
    // Read what is stored with the server stopped the hard way once more, so the
    // check sees the disk, not a process's cache.
    spawned.server.kill();
    spawned.settle(prefix, &ledger, &mut outcome).await;
    let cut = outcome.clean_failures.iter().filter(|(k, _)| k.starts_with("no answer")).map(|(_, v)| v).sum::<u64>();
    if cut == 0 {
        outcome.violations.push("no request was cut by a kill: the scenario did not test what it says".into());
    }
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    outcome.load = format!("{WRITERS} ingest clients, {BATCH}-event batches, retried until acknowledged");
    outcome.faults = format!("{kills} × SIGKILL of the API, restarted on the same port");
    outcome.notes.push(format!("{cut} requests cut by a kill"));
    outcome.notes.push(format!("slowest restart to ready {:.2} s", slowest.as_secs_f64()));
    outcome.elapsed = started.elapsed();
    outcome
}
