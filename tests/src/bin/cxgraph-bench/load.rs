//! The load generator: a fixed number of clients on loopback, each sending its next
//! request as soon as the previous answer is read (closed loop), for a fixed time.
//! Every answer is checked, not only its status: a GraphQL 200 can carry `errors`,
//! an ingest 200 can reject lines. Latencies are kept whole (a few hundred thousand
//! numbers per run) and sorted once, so percentiles are exact.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One request to send.
pub struct Call {
    pub method: reqwest::Method,
    /// Path and query, e.g. `/graphql`.
    pub path: String,
    pub body: Option<Vec<u8>>,
    pub content_type: &'static str,
    /// Units of work it carries (events in an ingest batch; 1 otherwise); 0 counts
    /// the lines of the answer after the first (rows of a CSV export).
    pub units: u64,
}

impl Call {
    pub fn graphql(query: &str, variables: serde_json::Value) -> Call {
        let body = serde_json::json!({ "query": query, "variables": variables });
        Call {
            method: reqwest::Method::POST,
            path: "/graphql".into(),
            body: Some(body.to_string().into_bytes()),
            content_type: "application/json",
            units: 1,
        }
    }
}

/// Builds the next call of a workload from the client's random stream.
pub type Maker = Arc<dyn Fn(&mut ChaCha8Rng) -> Call + Send + Sync>;

/// One unit of load: answers the units of work done, or why it failed.
pub type Job = Arc<dyn Fn(&mut ChaCha8Rng) -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

/// Requests drawn from `make`, sent by `send`.
pub fn http_job(send: Sender, make: Maker) -> Job {
    Arc::new(move |rng: &mut ChaCha8Rng| send(make(rng)))
}

/// Sends a call; answers the units of work done or why it failed.
pub type Sender = Arc<dyn Fn(Call) -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

/// A `Sender` over HTTP that counts an answer as good only when its status is 2xx, a
/// GraphQL answer has no `errors` and an ingest answer rejected nothing.
pub fn http_sender(client: reqwest::Client, base: String, token: Option<String>) -> Sender {
    Arc::new(move |call: Call| {
        let client = client.clone();
        let url = format!("{base}{}", call.path);
        let token = token.clone();
        Box::pin(async move {
            let units = call.units;
            let mut request = client.request(call.method, url).header("content-type", call.content_type);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(body) = call.body {
                request = request.body(body);
            }
            let response = request.send().await.map_err(|e| format!("send: {e}"))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| format!("read: {e}"))?;
            if !status.is_success() {
                return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
            }
            let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
            if has(b"\"errors\"") || has(b"\"rejected\"") {
                return Err(format!("errors in a 200: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
            }
            if units == 0 {
                let lines = body.iter().filter(|b| **b == b'\n').count() as u64;
                return Ok(lines.saturating_sub(1));
            }
            Ok(units)
        })
    })
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub requests: u64,
    pub units: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Microseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Run {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn units_per_second(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0–1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        f64::from(self.latencies[rank - 1]) / 1000.0
    }
}

/// How the clients pace themselves.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each client sends its next request as soon as the previous answer is read.
    Closed,
    /// Requests start on a fixed schedule of this many a second, shared by the clients;
    /// a request's latency counts from its scheduled start, so a stalled server is
    /// charged for the requests that queued behind it (no coordinated omission).
    Rate(f64),
}

/// Runs `clients` clients for `duration`, each drawing jobs with its own seeded
/// stream.
pub async fn run(job: &Job, clients: usize, duration: Duration, pace: Pace, seed: u64) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let ticket = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let job = Arc::clone(job);
        let ticket = Arc::clone(&ticket);
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(client as u64));
            let mut run = Run::default();
            while Instant::now() < deadline {
                let next = job(&mut rng);
                let at = match pace {
                    Pace::Closed => Instant::now(),
                    Pace::Rate(per_second) => {
                        let n = ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let at = started + Duration::from_secs_f64(n as f64 / per_second.max(1e-3));
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                };
                let answer = next.await;
                let took = at.elapsed();
                run.requests += 1;
                match answer {
                    Ok(units) => {
                        run.units += units;
                        run.latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                    }
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for task in tasks {
        let Ok(run) = task.await else { continue };
        total.requests += run.requests;
        total.units += run.units;
        total.errors += run.errors;
        if total.first_error.is_none() {
            total.first_error = run.first_error;
        }
        total.latencies.extend(run.latencies);
    }
    // At a fixed rate the last request may end before the time is up; the rate is
    // still per second of the run.
    total.elapsed = started.elapsed().max(duration);
    total.latencies.sort_unstable();
    total
}
