//! The hostile families: what callers without credentials (and one with) used to take
//! the server down with, each against a server process of its own, judged from the
//! outside. Every answer must be below 500 and coded as the README says, the process
//! must still be serving at the end, and its memory must stay within the README's
//! bound for the family. Each family records the server's CPU time per request and
//! the growth of its peak resident memory: the figures `RELIABILITY.md` publishes.
//!
//! The families: value literals nested past any stack (POST, GET, WebSocket), fragment
//! fan-outs and chains, a flood of anonymous sockets, a flood of log-ins (oversized and
//! concurrent), and a NUL in every string argument of every root field and in NDJSON.
//! The per-address request limit is off here (`CXGRAPH_ANONYMOUS_RATE_LIMIT=0`) so
//! that every request reaches the code under test: the figures are per request, the
//! rate multiplies them.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::fuzz::{INTROSPECTION, SPARED, Schema, named};
use super::{Outcome, Scale, Spawned, leaks_internals};
use crate::Backend;
use crate::process;

/// Growth of peak resident memory a family may cause (MiB): the log-in flood's
/// hashing (one 19 MiB argon2 block per core at once) with room for the allocator.
pub const MEMORY_BOUND_MIB: u64 = 96;

/// Every family on `backend`.
pub async fn families(scale: Scale, backend: &Backend) -> Vec<Outcome> {
    vec![
        literal_depth(scale, backend).await,
        fragment_fan_out(scale, backend).await,
        socket_flood(scale, backend).await,
        login_flood(scale, backend).await,
        nul_everywhere(scale, backend).await,
    ]
}

/// A family's server, its CPU and memory before the family ran.
struct Measured {
    spawned: Spawned,
    cpu_before: Duration,
    rss_before_kib: u64,
    started: Instant,
    requests: u64,
}

impl Measured {
    async fn start(backend: &Backend, name: &str) -> Measured {
        Self::start_with(backend, name, &[]).await
    }

    async fn start_with(backend: &Backend, name: &str, env: &[(&str, &str)]) -> Measured {
        let mut env = env.to_vec();
        env.push(("CXGRAPH_ANONYMOUS_RATE_LIMIT", "0"));
        let spawned = Spawned::start_with(backend, name, &env).await;
        let pid = spawned.server.pid();
        // Warm the server up (log-in, schema, pools) before measuring from here.
        let _ = spawned.target.graphql("{ me { id } }", json!({})).await;
        process::reset_peak(pid);
        let usage = process::usage(pid);
        Measured {
            spawned,
            cpu_before: usage.cpu,
            rss_before_kib: usage.peak_rss_kib,
            started: Instant::now(),
            requests: 0,
        }
    }

    /// Judges one answer: below 500, no internals, and (when given) the expected code.
    fn judge(&mut self, outcome: &mut Outcome, what: &str, status: u16, body: &str, code: Option<&str>) {
        self.requests += 1;
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let got = parsed["errors"][0]["extensions"]["code"].as_str();
        if status >= 500 || leaks_internals(body) || got == Some("INTERNAL") {
            outcome.violations.push(format!("{what}: {status} {}", &body[..body.len().min(300)]));
        } else if code.is_some() && got != code {
            outcome
                .violations
                .push(format!("{what}: expected {code:?}, got {status} {}", &body[..body.len().min(300)]));
        } else {
            *outcome.clean_failures.entry(got.unwrap_or("ok").to_owned()).or_default() += 1;
        }
    }

    /// Closes the family: the server must still answer, memory within the bound;
    /// the notes say what it cost.
    async fn finish(mut self, mut outcome: Outcome) -> Outcome {
        let pid = self.spawned.server.pid();
        let health = self.spawned.target.client.get(format!("{}/healthz", self.spawned.server.base)).send().await;
        if !health.is_ok_and(|r| r.status() == 200) || !self.spawned.server.running() {
            outcome.violations.push("the server no longer answers /healthz".into());
        }
        let usage = process::usage(pid);
        let cpu = usage.cpu.saturating_sub(self.cpu_before);
        let grown_mib = usage.peak_rss_kib.saturating_sub(self.rss_before_kib) / 1024;
        if grown_mib > MEMORY_BOUND_MIB {
            outcome.violations.push(format!("peak memory grew {grown_mib} MiB, over the {MEMORY_BOUND_MIB} MiB bound"));
        }
        let logged = std::fs::read_to_string(&self.spawned.log).unwrap_or_default();
        if logged.contains("panicked") || logged.contains("overflowed its stack") {
            outcome.violations.push("a panic in the server log".into());
        }
        let per_request = cpu.as_secs_f64() * 1000.0 / self.requests.max(1) as f64;
        outcome.notes.push(format!(
            "server CPU {:.0} ms ({per_request:.2} ms a request); peak RSS {:.1} → {:.1} MiB (+{grown_mib})",
            cpu.as_secs_f64() * 1000.0,
            self.rss_before_kib as f64 / 1024.0,
            usage.peak_rss_kib as f64 / 1024.0,
        ));
        outcome.ok = self.requests;
        outcome.elapsed = self.started.elapsed();
        self.spawned.server.kill();
        outcome
    }
}

/// `[[[…1…]]]` and `{a:{a:…1…}}`, `n` deep, in an argument and in a variable default.
fn deep_documents(n: usize) -> Vec<String> {
    let list = format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let object = format!("{}1{}", "{a:".repeat(n), "}".repeat(n));
    vec![
        format!("{{ me {{ id(x: {list}) }} }}"),
        format!("{{ me {{ id(x: {object}) }} }}"),
        format!("query($v: JSON = {list}) {{ me {{ id }} }}"),
    ]
}

/// An admin's `graphql-transport-ws` socket, acknowledged.
async fn admin_socket(
    base: &str,
    token: &str,
) -> Option<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    let url = format!("{}/graphql", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().ok()?;
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().ok()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.ok()?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::Text(init.to_string().into())).await.ok()?;
    match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.contains("connection_ack") => Some(socket),
        _ => None,
    }
}

/// The next text message of a socket (pings skipped), or what ended it.
async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> String {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return format!("closed: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait).await.unwrap_or_else(|_| "no answer".into())
}

/// Literals nested far past any stack, on every transport.
pub async fn literal_depth(scale: Scale, backend: &Backend) -> Outcome {
    let mut outcome = Outcome::new("hostile: value literals nested past any stack", backend.name());
    let mut m = Measured::start(backend, "hostile-depth").await;
    let rounds = scale.pick(2, 30);
    let base = m.spawned.server.base.clone();
    let client = m.spawned.target.client.clone();
    let Some(mut socket) = admin_socket(&base, &m.spawned.target.token).await else {
        outcome.violations.push("the admin's socket was not acknowledged".into());
        return m.finish(outcome).await;
    };
    for round in 0..rounds {
        for query in [2_000, 100_000].into_iter().flat_map(deep_documents) {
            let sent = client.post(format!("{base}/graphql")).json(&json!({ "query": query })).send().await;
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    m.judge(&mut outcome, "POST", status, &text, Some("GRAPHQL_PARSE_FAILED"));
                }
                Err(e) => outcome.violations.push(format!("POST: no answer: {e}")),
            }
        }
        for query in deep_documents(5_000) {
            match client.get(format!("{base}/graphql")).query(&[("query", &query)]).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    m.judge(&mut outcome, "GET", status, &text, Some("GRAPHQL_PARSE_FAILED"));
                }
                Err(e) => outcome.violations.push(format!("GET: no answer: {e}")),
            }
        }
        for (i, query) in deep_documents(10_000).into_iter().enumerate() {
            let subscribe = json!({ "id": format!("{round}-{i}"), "type": "subscribe", "payload": { "query": query } });
            if socket.send(Message::Text(subscribe.to_string().into())).await.is_err() {
                outcome.violations.push("the socket closed under a deep subscription".into());
                break;
            }
            let answer = next_text(&mut socket).await;
            let payload: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
            let errors =
                if payload["payload"].is_array() { &payload["payload"] } else { &payload["payload"]["errors"] };
            let code = errors[0]["extensions"]["code"].as_str().map(str::to_owned);
            let body = json!({ "errors": errors }).to_string();
            m.judge(&mut outcome, "WebSocket", 200, &body, Some("GRAPHQL_PARSE_FAILED"));
            if code.is_none() {
                outcome.violations.push(format!("WebSocket: {}", &answer[..answer.len().min(200)]));
            }
            // The `complete` that may follow an error is not an answer of its own.
            let _ = tokio::time::timeout(Duration::from_millis(50), socket.next()).await;
        }
    }
    outcome.load =
        format!("{rounds} rounds: 6 POSTs (2,000 and 100,000 deep), 3 GETs (5,000), 3 subscriptions (10,000)");
    outcome.faults = "anonymous POST and GET; an admin's WebSocket".into();
    m.finish(outcome).await
}

/// Fragments spreading each other (exponentially and in long chains), and the widest
/// document admitted, from two clients at once while a third probes `/healthz`.
pub async fn fragment_fan_out(scale: Scale, backend: &Backend) -> Outcome {
    let mut outcome = Outcome::new("hostile: fragment fan-outs and chains", backend.name());
    let mut m = Measured::start(backend, "hostile-fragments").await;
    let rounds = scale.pick(5, 200);
    let fan = |levels: usize| {
        let mut doc = format!("query {{ me {{ ...F{levels} }} }} fragment F0 on User {{ id }}");
        for i in 1..=levels {
            doc.push_str(&format!(" fragment F{i} on User {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        doc
    };
    let mut chain = String::from("query { me { ...C0 } } fragment C900 on User { id }");
    for i in 0..900 {
        chain.push_str(&format!(" fragment C{i} on User {{ ...C{} }}", i + 1));
    }
    let mut empty = String::from("query { ...E30 } fragment E0 on Query { ...Missing }");
    for i in 1..=30 {
        empty.push_str(&format!(" fragment E{i} on Query {{ ...E{p} ...E{p} ...E{p} ...E{p} }}", p = i - 1));
    }
    let cases = [
        (fan(30), "GRAPHQL_VALIDATION_FAILED"),
        (chain, "GRAPHQL_VALIDATION_FAILED"),
        (empty, "GRAPHQL_VALIDATION_FAILED"),
        // The widest fan-out admitted (4,585 selections inlined): validated, then
        // refused by the policy, anonymous.
        (fan(9), "UNAUTHENTICATED"),
        // One field repeated with 1,650 arguments (once 8 million validation errors).
        (format!("{{ me {{ id({}) {} }} }}", "x: 1 ".repeat(1_650), "id ".repeat(4_850)), "GRAPHQL_VALIDATION_FAILED"),
    ];
    let base = m.spawned.server.base.clone();
    let client = m.spawned.target.client.clone();
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probe = {
        let (client, base, probing) = (client.clone(), base.clone(), std::sync::Arc::clone(&probing));
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let _ = client.get(format!("{base}/healthz")).send().await;
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            slowest
        })
    };
    let send = |query: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client.post(format!("{base}/graphql")).json(&json!({ "query": query })).send().await;
            match r {
                Ok(r) => Ok((r.status().as_u16(), r.text().await.unwrap_or_default())),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    for _ in 0..rounds {
        for (query, code) in &cases {
            let (a, b) = tokio::join!(send(query.clone()), send(query.clone()));
            for answer in [a, b] {
                match answer {
                    Ok((status, text)) => m.judge(&mut outcome, "fragments", status, &text, Some(code)),
                    Err(e) => outcome.violations.push(format!("fragments: no answer: {e}")),
                }
            }
        }
    }
    probing.store(false, std::sync::atomic::Ordering::Relaxed);
    let slowest = probe.await.unwrap_or_default();
    outcome.notes.push(format!("slowest /healthz meanwhile {:.0} ms", slowest.as_secs_f64() * 1000.0));
    outcome.load = format!(
        "{rounds} rounds × 2 clients: 30-level fan-outs of fields and of empty fragments, a 900-fragment chain, a 9-level fan-out, a field with 1,650 arguments repeated 4,850 times"
    );
    outcome.faults = "anonymous POSTs".into();
    m.finish(outcome).await
}

/// Anonymous sockets that send an empty `connection_init` and ping, many at once
/// from many addresses (the server trusts `x-forwarded-for` here, as behind a proxy);
/// a manager's socket must still be served.
pub async fn socket_flood(scale: Scale, backend: &Backend) -> Outcome {
    let mut outcome = Outcome::new("hostile: a flood of anonymous WebSockets", backend.name());
    let mut m =
        Measured::start_with(backend, "hostile-sockets", &[("CXGRAPH_CLIENT_IP_HEADER", "x-forwarded-for")]).await;
    let total: usize = scale.pick(200, 1_000);
    let addresses = 125;
    let base = m.spawned.server.base.clone();
    let url = format!("{}/graphql", base.replacen("http://", "ws://", 1));
    let open = |url: String, address: String| async move {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().map_err(|_| "header")?);
        request.headers_mut().insert("x-forwarded-for", address.parse().map_err(|_| "header")?);
        let mut socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                return Ok(format!("upgrade {}", r.status().as_u16()));
            }
            Err(e) => return Err(e.to_string()),
        };
        let init = json!({ "type": "connection_init", "payload": {} }).to_string();
        let _ = socket.send(Message::Text(init.into())).await;
        let _ = socket.send(Message::Text(json!({ "type": "ping" }).to_string().into())).await;
        let got = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(t))) if t.contains("pong") => continue,
                    other => return other,
                }
            }
        })
        .await;
        Ok(match got {
            Ok(Some(Ok(Message::Close(Some(frame))))) => format!("closed {}", u16::from(frame.code)),
            Ok(Some(Ok(Message::Text(t)))) if t.contains("connection_ack") => "acknowledged".to_owned(),
            other => format!("other {other:?}"),
        })
    };
    let mut seen: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for wave in 0..total.div_ceil(100) {
        let batch: Vec<_> = (0..100.min(total - wave * 100))
            .map(|i| {
                open(
                    url.clone(),
                    format!("198.18.{}.{}", (wave * 100 + i) % addresses / 250, (wave * 100 + i) % addresses % 250 + 1),
                )
            })
            .collect();
        for result in futures::future::join_all(batch).await {
            m.requests += 1;
            match result {
                Ok(kind) => *seen.entry(kind).or_default() += 1,
                Err(e) => *seen.entry(format!("error {}", &e[..e.len().min(60)])).or_default() += 1,
            }
        }
    }
    for (kind, n) in &seen {
        if !(kind == "closed 4403" || kind == "upgrade 429") {
            outcome.violations.push(format!("{n} sockets: {kind}"));
        }
    }
    if admin_socket(&base, &m.spawned.target.token).await.is_none() {
        outcome.violations.push("after the flood the admin's socket was refused".into());
    }
    outcome.notes.push(format!("answers {seen:?}"));
    outcome.load = format!(
        "{total} anonymous sockets from {addresses} addresses in waves of 100, each `connection_init {{}}` and a ping"
    );
    outcome.faults = "no credentials".into();
    m.finish(outcome).await
}

/// Log-ins with megabyte e-mails, then many wrong log-ins at once.
pub async fn login_flood(scale: Scale, backend: &Backend) -> Outcome {
    let mut outcome = Outcome::new("hostile: log-in floods", backend.name());
    let mut m = Measured::start(backend, "hostile-login").await;
    let base = m.spawned.server.base.clone();
    let client = m.spawned.target.client.clone();
    let login =
        "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { userErrors { code } } }";
    let huge = format!("{}@example.com", "a".repeat(1 << 20));
    for _ in 0..scale.pick(10, 40) {
        match client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": login, "variables": { "e": huge, "p": "x" } }))
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                m.judge(&mut outcome, "huge e-mail", status, &text, None);
                if !text.contains("TOO_LONG") {
                    outcome
                        .violations
                        .push(format!("a megabyte e-mail was not refused: {}", &text[..text.len().min(200)]));
                }
            }
            Err(e) => outcome.violations.push(format!("huge e-mail: no answer: {e}")),
        }
    }
    let concurrent = 48;
    for wave in 0..scale.pick(1, 5) {
        let sends: Vec<_> = (0..concurrent)
            .map(|i| {
                let body = json!({ "query": login, "variables": { "e": format!("guess-{wave}-{i}@example.com"), "p": "wrong" } });
                client.post(format!("{base}/graphql")).json(&body).send()
            })
            .collect();
        for sent in futures::future::join_all(sends).await {
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    m.judge(&mut outcome, "concurrent log-in", status, &text, None);
                }
                Err(e) => outcome.violations.push(format!("concurrent log-in: no answer: {e}")),
            }
        }
    }
    outcome.load = format!(
        "{} log-ins with 1 MiB e-mails, then waves of {concurrent} concurrent wrong log-ins",
        scale.pick(10, 40)
    );
    outcome.faults = "anonymous, one address".into();
    m.finish(outcome).await
}

/// Input types marked `@oneOf` (introspection as the fuzzer asks it does not say).
const ONE_OF: [&str; 1] = ["StageRefInput"];

/// A GraphQL literal for an input type with every string `"\u0000"`, only required
/// fields besides strings.
fn nul_value(schema: &Schema, t: &Value, depth: usize) -> Option<String> {
    match t["kind"].as_str() {
        Some("NON_NULL") => nul_value(schema, &t["ofType"], depth),
        Some("LIST") => nul_value(schema, &t["ofType"], depth).map(|v| format!("[{v}]")),
        Some("ENUM") => {
            let def = schema.types.get(t["name"].as_str().unwrap_or(""))?;
            def["enumValues"][0]["name"].as_str().map(str::to_owned)
        }
        Some("INPUT_OBJECT") if depth < 4 => {
            let def = schema.types.get(t["name"].as_str().unwrap_or(""))?;
            let fields: Vec<String> = def["inputFields"]
                .as_array()?
                .iter()
                .filter_map(|f| {
                    let value = nul_value(schema, &f["type"], depth + 1)?;
                    Some(format!("{}: {value}", f["name"].as_str()?))
                })
                .collect();
            // A oneOf input takes one field: the first that holds a string, else the first.
            let oneof = ONE_OF.contains(&t["name"].as_str().unwrap_or(""));
            let fields = if oneof {
                fields.iter().find(|f| f.contains("\\u0000")).or(fields.first()).into_iter().cloned().collect()
            } else {
                fields
            };
            Some(format!("{{{}}}", fields.join(", ")))
        }
        _ => Some(match t["name"].as_str().unwrap_or("") {
            "String" => "\"\\u0000\"".to_owned(),
            "Int" => "1".to_owned(),
            "Float" => "1.0".to_owned(),
            "Boolean" => "true".to_owned(),
            "ID" => format!("\"{}\"", uuid::Uuid::nil()),
            "DateTime" => "\"2026-01-01T00:00:00Z\"".to_owned(),
            "JSON" => "{a: \"\\u0000\"}".to_owned(),
            _ => "null".to_owned(),
        }),
    }
}

/// A NUL in every string argument of every root field, and in NDJSON lines.
pub async fn nul_everywhere(_scale: Scale, backend: &Backend) -> Outcome {
    let mut outcome = Outcome::new("hostile: a NUL in every string input", backend.name());
    let mut m = Measured::start(backend, "hostile-nul").await;
    let target = m.spawned.target.clone();
    let (_, introspection) = target.graphql(INTROSPECTION, json!({})).await.unwrap_or_default();
    let schema = Schema::from_introspection(&serde_json::from_str(&introspection).unwrap_or(Value::Null));
    let mut tried = 0;
    for (keyword, root) in [("query", Some(schema.query.clone())), ("mutation", schema.mutation.clone())] {
        let Some(root) = root else { continue };
        for field in schema.types[&root]["fields"].as_array().into_iter().flatten() {
            let name = field["name"].as_str().unwrap_or("");
            if SPARED.contains(&name) {
                continue;
            }
            let args: Vec<String> = field["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| Some(format!("{}: {}", a["name"].as_str()?, nul_value(&schema, &a["type"], 0)?)))
                .collect();
            let joined = args.join(", ");
            if !joined.contains("\\u0000") {
                continue;
            }
            let selection = match named(&field["type"])["kind"].as_str() {
                Some("OBJECT" | "INTERFACE" | "UNION") => " { __typename }",
                _ => "",
            };
            let document = format!("{keyword} {{ {name}({joined}){selection} }}");
            tried += 1;
            match target.graphql(&document, json!({})).await {
                Ok((status, text)) => {
                    let before = outcome.violations.len();
                    m.judge(&mut outcome, name, status, &text, Some("BAD_USER_INPUT"));
                    if outcome.violations.len() > before {
                        outcome.violations.push(format!("  sent: {}", &document[..document.len().min(300)]));
                    }
                }
                Err(e) => outcome.violations.push(format!("{name}: no answer: {e}")),
            }
        }
    }
    // NDJSON: each string field of an event holding a NUL, beside valid lines.
    let fields = ["body", "externalId", "inbox", "customerName", "channel"];
    let mut lines = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let mut event = json!({ "channel": "SMS", "direction": "INBOUND", "externalId": format!("ok-{i}"),
            "identities": [{ "kind": "PHONE", "value": "+447911123456" }] });
        lines.push(event.to_string());
        event["externalId"] = json!(format!("nul-{i}"));
        event[field] = json!("x\u{0}y");
        lines.push(event.to_string());
    }
    let sent = target
        .client
        .post(format!("{}/ingest/interactions", target.base))
        .bearer_auth(&target.token)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            m.judge(&mut outcome, "NDJSON", status, &text, None);
            let statuses: Vec<String> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|v| v["status"].as_str().unwrap_or("").to_owned())
                .collect();
            let expected: Vec<&str> = fields.iter().flat_map(|_| ["created", "rejected"]).collect();
            if statuses != expected {
                outcome.violations.push(format!("NDJSON answered {statuses:?}, expected {expected:?}"));
            }
        }
        Err(e) => outcome.violations.push(format!("NDJSON: no answer: {e}")),
    }
    outcome.load = format!("{tried} root fields with every string argument NUL; {} NDJSON lines", lines.len());
    outcome.faults = "NUL in text".into();
    m.finish(outcome).await
}
