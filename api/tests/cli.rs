//! The `cxgraph` command line: the schema it prints is the committed one, `--help`
//! documents every setting, bad settings stop start-up with one clear line, and the
//! maintenance subcommands work on a real SQLite file.

// Test helpers: a failed expectation is the assertion.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Output};

fn cxgraph(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxgraph"));
    cmd.args(args).env_remove("DATABASE_URL");
    for (k, _) in std::env::vars() {
        if k.starts_with("CXGRAPH_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cxgraph runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = cxgraph(&["schema"], &[]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).unwrap();
    assert!(stdout(&out) == committed, "schema.graphql is out of date: run `cargo run -q -- schema > schema.graphql`");
}

/// The `KEY: value` pairs of the `environment:` block of a compose service.
fn compose_environment(compose: &str, service: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut in_service, mut in_env) = (false, false);
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 2 {
            in_service = trimmed == format!("{service}:");
            in_env = false;
        } else if in_service && indent == 4 {
            in_env = trimmed == "environment:";
        } else if in_service
            && in_env
            && indent == 6
            && let Some((k, v)) = trimmed.split_once(':')
        {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

#[test]
fn the_docker_files_use_only_settings_the_binary_knows() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let compose = std::fs::read_to_string(format!("{root}/docker/compose.yaml")).unwrap();
    let help = stdout(&cxgraph(&["--help"], &[]));
    let env = compose_environment(&compose, "api");
    assert!(env.iter().any(|(k, _)| k == "DATABASE_URL"), "the api service is configured: {env:?}");
    for (key, value) in &env {
        if key.starts_with("CXGRAPH_") || key.starts_with("OTEL_") || key == "DATABASE_URL" {
            assert!(help.contains(&format!("env: {key}")), "compose sets {key}, which `cxgraph --help` does not know");
        }
        // Every literal value must be accepted by the binary (checked by `--help`
        // parsing them: a bad value is a one-line error and a failure).
        if !value.contains("${") && (key.starts_with("CXGRAPH_") || key.starts_with("OTEL_")) {
            let out = cxgraph(&["schema"], &[(key.as_str(), value.as_str())]);
            assert!(out.status.success(), "compose's {key}={value} is refused: {}", stderr(&out));
        }
    }
    // The proxy publishes the API and balances over the replicas on the port they
    // bind; metrics are not published.
    let bind = env.iter().find(|(k, _)| k == "CXGRAPH_BIND").map(|(_, v)| v.clone()).unwrap();
    let port = bind.rsplit(':').next().unwrap();
    let nginx = std::fs::read_to_string(format!("{root}/docker/nginx.conf")).unwrap();
    assert!(nginx.contains(&format!("server api:{port};")), "nginx proxies to api:{port}");
    assert!(nginx.contains("proxy_set_header Upgrade"), "nginx passes WebSocket upgrades");
    assert!(compose.contains("replicas: 2"), "two API replicas");
    let metrics = env.iter().find(|(k, _)| k == "CXGRAPH_METRICS_BIND").map(|(_, v)| v.clone()).unwrap();
    let metrics_port = metrics.rsplit(':').next().unwrap();
    assert!(!compose.contains(&format!("\"{metrics_port}:{metrics_port}\"")), "metrics stay inside the network");
    // Migrations run as their own step, with a subcommand the binary has.
    assert!(compose.contains("command: [\"migrate\"]"));
    assert!(cxgraph(&["migrate", "--help"], &[]).status.success());
    // The collector listens where the API sends traces.
    let otlp = env.iter().find(|(k, _)| k == "OTEL_EXPORTER_OTLP_ENDPOINT").map(|(_, v)| v.clone()).unwrap();
    let collector = std::fs::read_to_string(format!("{root}/docker/otel-collector.yaml")).unwrap();
    let otlp_port = otlp.rsplit(':').next().unwrap();
    assert!(
        collector.contains(&format!("http:\n        endpoint: 0.0.0.0:{otlp_port}")),
        "collector's OTLP/HTTP port is {otlp_port}"
    );
    // The image runs the binary the workspace builds.
    let dockerfile = std::fs::read_to_string(format!("{root}/docker/Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release"), "the Dockerfile builds the release binary");
    assert!(dockerfile.contains("cxgraph"), "and runs cxgraph");
}

#[test]
fn help_lists_every_setting() {
    let out = cxgraph(&["--help"], &[]);
    assert!(out.status.success());
    let help = stdout(&out);
    for var in [
        "DATABASE_URL",
        "DATABASE_READ_URL",
        "CXGRAPH_BIND",
        "CXGRAPH_JWT_SECRET",
        "CXGRAPH_ACCESS_TOKEN_TTL",
        "CXGRAPH_REFRESH_TOKEN_TTL",
        "CXGRAPH_ADMIN_EMAIL",
        "CXGRAPH_ADMIN_PASSWORD",
        "CXGRAPH_DEMO_DATA",
        "CXGRAPH_DB_MAX_CONNECTIONS",
        "CXGRAPH_DB_ACQUIRE_TIMEOUT",
        "CXGRAPH_BODY_LIMIT",
        "CXGRAPH_REQUEST_TIMEOUT",
        "CXGRAPH_INTROSPECTION",
        "CXGRAPH_RETENTION_TEXT_DAYS",
        "CXGRAPH_RETENTION_INTERVAL",
        "CXGRAPH_SLA_SWEEP_INTERVAL",
        "CXGRAPH_INSIGHTS_JOB_INTERVAL",
        "CXGRAPH_ROLLUP_INTERVAL",
        "CXGRAPH_METRICS_BIND",
        "CXGRAPH_RATE_LIMIT",
        "CXGRAPH_COST_BUDGET",
        "CXGRAPH_WS_MAX_CONNECTIONS",
        "CXGRAPH_WS_MAX_PER_CALLER",
        "CXGRAPH_PERSISTED_QUERIES",
        "CXGRAPH_PERSISTED_QUERIES_ONLY",
        "CXGRAPH_SUGGESTIONS",
        "CXGRAPH_JWT_PREVIOUS_SECRETS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_SERVICE_NAME",
        "CXGRAPH_SPIKE_STEP_MINUTES",
        "CXGRAPH_SPIKE_WINDOW_MINUTES",
        "CXGRAPH_SPIKE_HISTORY_DAYS",
        "CXGRAPH_SPIKE_MIN_HISTORY_DAYS",
        "CXGRAPH_SPIKE_SIGNIFICANCE",
        "CXGRAPH_SPIKE_MIN_COUNT",
        "CXGRAPH_SPIKE_MIN_DISPERSION",
        "CXGRAPH_SPIKE_BACKFILL_AFTER_MINUTES",
        "CXGRAPH_SPIKE_PAGE_BACKFILL",
        "CXGRAPH_SPIKE_RAISE_PRIORITY",
        "CXGRAPH_SLA_AT_RISK_MINUTES",
        "CXGRAPH_WEBHOOK_RETRY_BASE_MS",
        "CXGRAPH_WEBHOOK_GIVE_UP_HOURS",
        "CXGRAPH_WEBHOOK_DISABLE_AFTER",
        "CXGRAPH_LOG_FORMAT",
        "CXGRAPH_LOG",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    for sub in ["serve", "migrate", "seed", "schema", "user"] {
        assert!(help.contains(sub), "--help does not list `{sub}`");
    }
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail");
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("cxgraph: error:"), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_settings_stop_with_one_clear_line() {
    assert_one_line_error(&cxgraph(&["schema"], &[("CXGRAPH_BIND", "not-an-address")]), "--bind");
    assert_one_line_error(&cxgraph(&["schema"], &[("CXGRAPH_ACCESS_TOKEN_TTL", "0")]), "--access-token-ttl");
    assert_one_line_error(&cxgraph(&["--demo-data", "sometimes"], &[]), "--demo-data");
    assert_one_line_error(&cxgraph(&["serve"], &[("DATABASE_URL", "postgres://127.0.0.1:1/x")]), "CXGRAPH_JWT_SECRET");
    assert_one_line_error(
        &cxgraph(&["serve"], &[("CXGRAPH_JWT_SECRET", "short"), ("DATABASE_URL", "sqlite::memory:")]),
        "at least 32 bytes",
    );
    assert_one_line_error(&cxgraph(&["schema"], &[("CXGRAPH_SPIKE_SIGNIFICANCE", "2")]), "--spike-significance");
    let memory = ("DATABASE_URL", "sqlite::memory:");
    assert_one_line_error(
        &cxgraph(&["serve"], &[("CXGRAPH_SPIKE_WINDOW_MINUTES", "50"), memory]),
        "whole number of steps",
    );
    assert_one_line_error(&cxgraph(&["serve"], &[("CXGRAPH_SPIKE_STEP_MINUTES", "7"), memory]), "divide a day");
    assert_one_line_error(&cxgraph(&["serve"], &[("CXGRAPH_SPIKE_MIN_DISPERSION", "5"), memory]), "dispersion");
    assert_one_line_error(
        &cxgraph(&["serve"], &[("CXGRAPH_SPIKE_THRESHOLD", "3"), memory]),
        "CXGRAPH_SPIKE_SIGNIFICANCE",
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/no/such/dir/x.db?mode=rwc", dir.path().display());
    assert_one_line_error(&cxgraph(&["migrate"], &[("DATABASE_URL", &url)]), "cannot open database");
}

#[test]
fn migrate_user_create_and_seed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/cx.db?mode=rwc", dir.path().display());
    let env = [("DATABASE_URL", url.as_str())];

    let out = cxgraph(&["migrate"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = cxgraph(&["migrate", "status"], &env);
    let status = stdout(&status);
    assert!(status.lines().count() >= 5 && status.lines().all(|l| l.starts_with("applied")), "{status}");

    let create = ["user", "create", "--email", "Agent@Example.com", "--role", "agent"];
    let out = cxgraph(&create, &[("DATABASE_URL", url.as_str()), ("CXGRAPH_USER_PASSWORD", "long-enough-password")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("agent@example.com"), "e-mail normalised: {}", stdout(&out));
    let again = cxgraph(&create, &[("DATABASE_URL", url.as_str()), ("CXGRAPH_USER_PASSWORD", "long-enough-password")]);
    assert_one_line_error(&again, "already exists");
    let weak = ["user", "create", "--email", "b@example.com", "--role", "agent", "--password", "short"];
    assert_one_line_error(&cxgraph(&weak, &env), "at least 12 characters");

    let out = cxgraph(&["seed", "--customers", "25"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("customers: 25"), "{}", stdout(&out));
    let more = cxgraph(&["seed", "--customers", "10", "--seed", "7"], &env);
    assert!(more.status.success(), "seeding again adds customers: {}", stderr(&more));

    let down = cxgraph(&["migrate", "down", "--steps", "99"], &env);
    assert!(down.status.success(), "{}", stderr(&down));
    let status = stdout(&cxgraph(&["migrate", "status"], &env));
    assert!(status.lines().all(|l| l.starts_with("pending")), "{status}");
}

/// A plain HTTP/1.1 GET over a TCP socket; returns the whole response.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_prints_where_to_go_loads_demo_data_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/demo.db?mode=rwc", dir.path().display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxgraph"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CXGRAPH_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("DATABASE_URL", &url)
        .env("CXGRAPH_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = Vec::new();
    let mut addr = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        banner.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("GraphiQL:") {
            addr = Some(rest.trim().trim_start_matches("http://").trim_end_matches('/').to_owned());
        }
        if line.contains("Demo data loaded") {
            break;
        }
    }
    // Keep reading what the server prints later, as a terminal or supervisor would.
    std::thread::spawn(move || lines.for_each(drop));
    let banner = banner.join("\n");
    let addr = addr.unwrap_or_else(|| panic!("no address in the banner:\n{banner}"));
    assert!(banner.contains("Password (shown once"), "{banner}");
    assert!(banner.contains("Demo data loaded: 300 customers"), "{banner}");
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&addr, "/").to_lowercase().contains("graphiql"));
    // The server turns transparent huge pages off for itself (see main.rs); kernels
    // before 5.0 do not report it.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn token_create_prints_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tok.db?mode=rwc", dir.path().display());
    let env = [("DATABASE_URL", url.as_str())];
    let args = ["token", "create", "--name", "Survey vendor", "--scope", "feedback:write", "--channel", "email"];
    let out = cxgraph(&args, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secret = text.lines().find_map(|l| l.strip_prefix("secret (shown once, store it now): ")).unwrap_or_default();
    assert!(secret.starts_with("cxt_") && secret.len() > 40, "{text}");
    assert_one_line_error(&cxgraph(&["token", "create", "--name", "x", "--scope", "root"], &env), "unknown scope");
    assert_one_line_error(
        &cxgraph(&["token", "create", "--name", "x", "--scope", "export", "--channel", "fax"], &env),
        "unknown channel",
    );
}
