//! The server as its own process, for the benchmark runner and the fault suite: its
//! memory, CPU and file descriptors are its own and not the load generator's, and it
//! can be killed with SIGKILL like a crash. Peak RSS comes from `/proc/<pid>/status`
//! (VmHWM, reset through `clear_refs`), CPU time from `/proc/<pid>/stat`, open files
//! from `/proc/<pid>/fd`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub const ADMIN_EMAIL: &str = "bench@cxgraph.local";
pub const ADMIN_PASSWORD: &str = "bench-admin-password-not-secret";
const JWT_SECRET: &str = "bench-jwt-secret-0123456789abcdef0123456789";

/// A running server process, stopped on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// From spawning the process to the first ready `/readyz`.
    pub cold_start: Duration,
}

/// The `cxgraph` binary, built now (so it is current) with the profile of the running
/// executable: `target/<profile>/cxgraph` beside a binary, or beside `deps/` for a
/// test.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "debug" || n == "release"))
        .with_context(|| format!("no target/<profile> directory above {}", exe.display()))?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // The workspace this harness was built from, wherever it is run from.
    build
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["build", "-q", "-p", "cxgraph", "--bin", "cxgraph"]);
    if release {
        build.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    without_package_env(&mut build);
    let started = Instant::now();
    if !build.status().context("running cargo build")?.success() {
        bail!("building the server failed");
    }
    if started.elapsed() > Duration::from_secs(5) {
        eprintln!("built the server in {:.0?}", started.elapsed());
    }
    let bin = profile_dir.join("cxgraph");
    if !bin.exists() {
        bail!("no server binary at {} after the build", bin.display());
    }
    Ok(bin)
}

/// Removes what cargo sets for the package under test, not for a build: a build
/// script that watches one of these (ring watches CARGO_MANIFEST_DIR) would otherwise
/// rebuild half the tree in a cargo run from a test, and again in the next plain
/// `cargo build`.
pub fn without_package_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_package =
            ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR"]
                .iter()
                .any(|p| key.starts_with(p));
        if per_package || key == "OUT_DIR" || key == "CARGO_RUSTC_CURRENT_DIR" {
            command.env_remove(key.as_ref());
        }
    }
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `cxgraph` with `args` on `database_url` to completion (migrate, seed).
pub fn command(bin: &Path, database_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("CXGRAPH_JWT_SECRET", JWT_SECRET)
        .env("CXGRAPH_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("cxgraph {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

impl Server {
    /// Starts the server and waits (at most a minute) until it is ready; its log lines
    /// are appended to `log`.
    pub async fn start(bin: &Path, database_url: &str, log: &Path) -> anyhow::Result<Server> {
        Self::start_with(bin, database_url, log, &[]).await
    }

    /// Starts the server with extra environment variables (they win over the
    /// defaults set here).
    pub async fn start_with(
        bin: &Path,
        database_url: &str,
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        Self::start_on(bin, database_url, log, free_port()?, env).await
    }

    /// Starts the server on a given port (a restart where the clients expect it).
    pub async fn start_on(
        bin: &Path,
        database_url: &str,
        log: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let started = Instant::now();
        let child = Command::new(bin)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("CXGRAPH_BIND", format!("127.0.0.1:{port}"))
            .env("CXGRAPH_JWT_SECRET", JWT_SECRET)
            .env("CXGRAPH_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("CXGRAPH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CXGRAPH_DEMO_DATA", "never")
            .env("CXGRAPH_ACCESS_TOKEN_TTL", "86400")
            // The benchmark measures the API, not the per-caller limits (one caller
            // sends thousands of requests a second here, all from one address).
            .env("CXGRAPH_RATE_LIMIT", "0")
            .env("CXGRAPH_ANONYMOUS_RATE_LIMIT", "0")
            .env("CXGRAPH_COST_BUDGET", "0")
            // The fuzzer reads the schema it generates from by introspection.
            .env("CXGRAPH_INTROSPECTION", "true")
            .env("CXGRAPH_METRICS_BIND", "off")
            .env("CXGRAPH_LOG", "warn")
            .env("CXGRAPH_LOG_FORMAT", "json")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file(log)?))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}"), cold_start: Duration::ZERO };
        let client = reqwest::Client::new();
        let ready = format!("{}/readyz", server.base);
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("the server exited during start-up: {status}");
            }
            if client.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
                server.cold_start = started.elapsed();
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("the server was not ready within a minute")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash: no shutdown, no flush, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and peak memory of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu: Duration,
    /// Peak resident set since the last `reset_peak`, KiB.
    pub peak_rss_kib: u64,
}

/// Clock ticks a second for `/proc/<pid>/stat` (CLK_TCK; 100 on Linux unless
/// `getconf` says otherwise).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Reads a process's CPU time and peak RSS; zero when `/proc` cannot be read.
pub fn usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state; utime and
    // stime are the 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let cpu_ticks = ticks(11) + ticks(12);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Usage { cpu: Duration::from_secs_f64(cpu_ticks as f64 / clock_ticks() as f64), peak_rss_kib }
}

/// A process's resident set now, KiB (0 when `/proc` cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How many file descriptors a process has open (sockets included).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resets a process's peak RSS to its current RSS (Linux `clear_refs` value 5).
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}
