//! Fuzzing the served API: GraphQL documents generated from the schema the server
//! itself reports (introspection), with arguments drawn from hostile values (SQL
//! meta-characters, NUL, very long strings, extreme numbers, malformed ids and dates,
//! values of the wrong type), the same documents with bytes flipped, and random bytes
//! at `/graphql` and `/ingest/interactions` under assorted content types. Every
//! answer must be below 500 with no internals in it, and the server must still be
//! running, with no panic in its log, at the end.
//!
//! The generator is ours, seeded and deterministic (ChaCha8): a failure names the
//! seed and the document, so it can be replayed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Outcome, Scale, Spawned, Target, leaks_internals};
use crate::Backend;
use crate::process;

/// Root fields the fuzzer leaves alone: they end its own session.
pub(super) const SPARED: [&str; 1] = ["logout"];

pub(super) const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } types { kind name \
    fields { name args { name type { ...T } } type { ...T } } inputFields { name type { ...T } } \
    enumValues { name } possibleTypes { name } } } } \
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

const HOSTILE_STRINGS: [&str; 14] = [
    "",
    "' OR '1'='1' --",
    "\"; DROP TABLE customers; --",
    "%_%",
    "\\",
    "\u{0}",
    "nul\u{0}inside",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "${jndi:ldap://x/a}",
    "😀 ünïcödé \u{202e}rtl",
    "NaN",
    "2026-13-45T25:61:61Z",
    "00000000-0000-0000-0000-000000000000",
];

/// The schema as the server reports it, by type name.
pub(super) struct Schema {
    pub(super) types: HashMap<String, Value>,
    pub(super) query: String,
    pub(super) mutation: Option<String>,
}

impl Schema {
    pub(super) fn from_introspection(body: &Value) -> Schema {
        let s = &body["data"]["__schema"];
        let types = s["types"]
            .as_array()
            .map(|ts| ts.iter().filter_map(|t| Some((t["name"].as_str()?.to_owned(), t.clone()))).collect())
            .unwrap_or_default();
        Schema {
            types,
            query: s["queryType"]["name"].as_str().unwrap_or("Query").to_owned(),
            mutation: s["mutationType"]["name"].as_str().map(str::to_owned),
        }
    }
}

/// The named type under list and non-null wrappers.
pub(super) fn named(t: &Value) -> &Value {
    if t["ofType"].is_object() { named(&t["ofType"]) } else { t }
}

/// Generates documents; every choice comes from `rng`.
struct Generator<'a> {
    schema: &'a Schema,
    rng: ChaCha8Rng,
}

impl Generator<'_> {
    fn document(&mut self) -> String {
        let mutation = self.schema.mutation.clone().filter(|_| self.rng.gen_bool(0.3));
        let (keyword, root) = match &mutation {
            Some(m) => ("mutation", m.clone()),
            None => ("query", self.schema.query.clone()),
        };
        let fields: Vec<Value> = self.schema.types[&root]["fields"]
            .as_array()
            .map(|f| f.iter().filter(|f| !SPARED.contains(&f["name"].as_str().unwrap_or(""))).cloned().collect())
            .unwrap_or_default();
        let n = self.rng.gen_range(1..=3);
        let mut body = String::new();
        for i in 0..n {
            let Some(field) = fields.choose(&mut self.rng) else { break };
            body += &format!("f{i}: {} ", self.field(field, 0));
        }
        format!("{keyword} {{ {body}}}")
    }

    /// A field with arguments and, for composite types, a selection.
    fn field(&mut self, field: &Value, depth: usize) -> String {
        let name = field["name"].as_str().unwrap_or("__typename");
        let mut out = name.to_owned();
        let mut args = Vec::new();
        for a in field["args"].as_array().into_iter().flatten() {
            if a["type"]["kind"] == "NON_NULL" || self.rng.gen_bool(0.5) {
                args.push(format!("{}: {}", a["name"].as_str().unwrap_or("x"), self.value(&a["type"], 0)));
            }
        }
        if !args.is_empty() {
            out += &format!("({})", args.join(", "));
        }
        let t = named(&field["type"]);
        if let Some("OBJECT" | "INTERFACE" | "UNION") = t["kind"].as_str() {
            out += &format!(" {{ {} }}", self.selection(t, depth + 1));
        }
        out
    }

    fn selection(&mut self, t: &Value, depth: usize) -> String {
        let name = t["name"].as_str().unwrap_or("");
        let def = self.schema.types.get(name).cloned().unwrap_or(Value::Null);
        if def["kind"] == "UNION" {
            let options: Vec<String> = def["possibleTypes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .map(str::to_owned)
                .collect();
            let mut out = "__typename".to_owned();
            if let Some(choice) = options.choose(&mut self.rng).cloned() {
                let inner = self.selection(&json!({ "name": choice }), depth);
                out += &format!(" ... on {choice} {{ {inner} }}");
            }
            return out;
        }
        let fields: Vec<Value> = def["fields"].as_array().cloned().unwrap_or_default();
        let mut out = vec!["__typename".to_owned()];
        for _ in 0..self.rng.gen_range(1..=4) {
            let Some(f) = fields.choose(&mut self.rng) else { break };
            let leaf = !matches!(named(&f["type"])["kind"].as_str(), Some("OBJECT" | "INTERFACE" | "UNION"));
            if leaf || depth < 3 {
                out.push(self.field(f, depth));
            }
        }
        out.join(" ")
    }

    /// A GraphQL literal for an input type: usually of the right shape with a hostile
    /// value, sometimes of the wrong type altogether.
    fn value(&mut self, t: &Value, depth: usize) -> String {
        if self.rng.gen_bool(0.04) {
            return ["1", "\"x\"", "true", "null", "[]", "{}", "-1.5e308", "ENUM_NOPE"]
                .choose(&mut self.rng)
                .map_or("null".into(), |v| (*v).to_owned());
        }
        match t["kind"].as_str() {
            Some("NON_NULL") => self.value(&t["ofType"], depth),
            Some("LIST") => {
                let n = self.rng.gen_range(0..=3);
                let items: Vec<String> = (0..n).map(|_| self.value(&t["ofType"], depth)).collect();
                format!("[{}]", items.join(", "))
            }
            Some("ENUM") => {
                let def = self.schema.types.get(t["name"].as_str().unwrap_or("")).cloned().unwrap_or(Value::Null);
                let values: Vec<String> = def["enumValues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["name"].as_str())
                    .map(str::to_owned)
                    .collect();
                values.choose(&mut self.rng).cloned().unwrap_or_else(|| "NOPE".into())
            }
            Some("INPUT_OBJECT") => {
                let def = self.schema.types.get(t["name"].as_str().unwrap_or("")).cloned().unwrap_or(Value::Null);
                let mut fields = Vec::new();
                for f in def["inputFields"].as_array().into_iter().flatten() {
                    if f["type"]["kind"] == "NON_NULL" || (depth < 3 && self.rng.gen_bool(0.5)) {
                        fields.push(format!(
                            "{}: {}",
                            f["name"].as_str().unwrap_or("x"),
                            self.value(&f["type"], depth + 1)
                        ));
                    }
                }
                format!("{{{}}}", fields.join(", "))
            }
            _ => self.scalar(t["name"].as_str().unwrap_or("String")),
        }
    }

    fn scalar(&mut self, name: &str) -> String {
        match name {
            "Int" => ["0", "1", "-1", "2147483647", "-2147483648", "1000000", "42"]
                .choose(&mut self.rng)
                .map_or("0".into(), |v| (*v).to_owned()),
            "Float" => ["0.0", "-0.5", "1e300", "3.14"].choose(&mut self.rng).map_or("0".into(), |v| (*v).to_owned()),
            "Boolean" => self.rng.gen_bool(0.5).to_string(),
            "ID" if self.rng.gen_bool(0.5) => json!(uuid::Uuid::from_u128(self.rng.r#gen()).to_string()).to_string(),
            "DateTime" if self.rng.gen_bool(0.6) => json!(format!(
                "20{:02}-{:02}-{:02}T10:00:00Z",
                self.rng.gen_range(0..40),
                self.rng.gen_range(1..13),
                self.rng.gen_range(1..29)
            ))
            .to_string(),
            "JSON" if self.rng.gen_bool(0.5) => "{a: [1, \"b\", {c: null}]}".into(),
            _ => {
                let s = if self.rng.gen_bool(0.1) {
                    "x".repeat(self.rng.gen_range(1_000..70_000))
                } else {
                    HOSTILE_STRINGS.choose(&mut self.rng).map_or(String::new(), |s| (*s).to_owned())
                };
                json!(s).to_string()
            }
        }
    }
}

/// Flips, drops or duplicates a few bytes.
fn mangle(rng: &mut ChaCha8Rng, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..=5) {
        if bytes.is_empty() {
            break;
        }
        let i = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..3) {
            0 => bytes[i] = rng.r#gen(),
            1 => {
                bytes.remove(i);
            }
            _ => bytes.insert(i, bytes[i]),
        }
    }
    bytes
}

const CONTENT_TYPES: [&str; 6] = [
    "application/json",
    "application/graphql-response+json",
    "text/plain",
    "application/x-ndjson",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin1",
];

/// Posts a body; answers (status, text) or the transport error.
async fn post(target: &Target, path: &str, content_type: &str, body: Vec<u8>) -> Result<(u16, String), String> {
    let response = target
        .client
        .post(format!("{}{path}", target.base))
        .bearer_auth(&target.token)
        .header("content-type", content_type)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// `scale.pick(400, 20_000)` generated documents, as many mangled ones and random
/// blobs, on `backend`, from `seed`.
pub async fn documents(scale: Scale, backend: &Backend, seed: u64) -> Outcome {
    let started = Instant::now();
    let count = scale.pick(400, 20_000);
    let mut outcome = Outcome::new("fuzzing: generated documents and random bytes", backend.name());
    let mut spawned = Spawned::start(backend, "fuzz").await;
    let mut target = spawned.target.clone();
    let (_, introspection) = target.graphql(INTROSPECTION, json!({})).await.expect("introspection answered");
    let schema = Schema::from_introspection(&serde_json::from_str(&introspection).unwrap_or(Value::Null));
    assert!(!schema.types.is_empty(), "introspection answered no types: {introspection}");
    let mut generator = Generator { schema: &schema, rng: ChaCha8Rng::seed_from_u64(seed) };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut statuses: HashMap<u16, u64> = HashMap::new();
    let mut refused = 0u64;
    for i in 0..count {
        let document = generator.document();
        let sends: [(&str, &str, Vec<u8>); 3] = [
            ("/graphql", "application/json", json!({ "query": document }).to_string().into_bytes()),
            ("/graphql", "application/json", mangle(&mut rng, &json!({ "query": document }).to_string())),
            if i % 2 == 0 {
                (
                    "/graphql",
                    CONTENT_TYPES[i % CONTENT_TYPES.len()],
                    (0..rng.gen_range(0..2_000)).map(|_| rng.r#gen()).collect(),
                )
            } else {
                let line =
                    json!({ "channel": "CHAT", "direction": "INBOUND", "externalId": format!("fz-{i}") }).to_string();
                ("/ingest/interactions", CONTENT_TYPES[i % CONTENT_TYPES.len()], mangle(&mut rng, &line))
            },
        ];
        for (path, content_type, body) in sends {
            let shown = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
            match post(&target, path, content_type, body).await {
                Ok((status, text)) => {
                    *statuses.entry(status).or_default() += 1;
                    if status >= 500 || leaks_internals(&text) {
                        outcome.violations.push(format!(
                            "seed {seed}, document {i}, {path}: {status} {} for {shown}",
                            &text[..text.len().min(300)]
                        ));
                    } else if status < 300 && !text.contains("\"errors\"") {
                        outcome.ok += 1;
                    } else {
                        refused += 1;
                    }
                    if text.contains("UNAUTHENTICATED") {
                        target = Target::login(&target.base, process::ADMIN_EMAIL, process::ADMIN_PASSWORD).await;
                    }
                }
                Err(e) => {
                    outcome.violations.push(format!("seed {seed}, document {i}, {path}: no answer ({e}) for {shown}"))
                }
            }
        }
        if !spawned.server.running() {
            outcome.violations.push(format!("the server died at document {i} (seed {seed})"));
            break;
        }
    }
    let logged = std::fs::read_to_string(&spawned.log).unwrap_or_default();
    let panics = logged.lines().filter(|l| l.contains("panicked")).count();
    if panics > 0 {
        outcome.violations.push(format!("{panics} panics in the server log"));
    }
    let mut seen: Vec<_> = statuses.into_iter().collect();
    seen.sort_unstable();
    outcome.load = format!("{count} generated documents, {count} mangled ones, {count} random bodies (seed {seed})");
    outcome.faults = "hostile input".into();
    outcome.notes.push(format!("{refused} refused with a 4xx or GraphQL errors, statuses {seen:?}"));
    outcome.elapsed = started.elapsed();
    spawned.server.kill();
    outcome
}
