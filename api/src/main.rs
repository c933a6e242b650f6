//! The `cxgraph` command: `serve` (default), `migrate`, `seed`, `schema`, `user create`.
//! Every failure ends in one line on stderr and a non-zero exit code, never a panic.
//!
//! The process allocates with mimalloc. With glibc's allocator the SQLite soak's
//! resident memory climbed for its whole quarter of an hour, and glibc's own
//! statistics (`malloc_stats`, taken from the running server) showed why: 114 MB
//! held from the system across 16 arenas (one per worker thread, SQLite's sixteen
//! included) against 14.5 MB in use. Freed memory stayed in the arena of the thread
//! that first allocated it. mimalloc purges freed pages on its own (README *Benchmarks*
//! has what that does to the benchmark's RSS figures).
//!
//! mimalloc also replaces `malloc` for the C code in the process (its `override`
//! feature): SQLite allocates its page caches and statements from each pooled
//! connection's own thread, and with glibc's `malloc` those threads kept their freed
//! memory in arenas of their own. The 15-minute SQLite soak grew 104.8 → 125.7 MiB
//! after warm-up with SQLite on glibc and 105.0 → 115.5 MiB with it on mimalloc
//! (one run each, at 67973fb and with this change; README *Reliability under faults*).
//!
//! The server turns transparent huge pages off for itself before anything else. With
//! the kernel's THP set to `always` (Debian's default, and this project's benchmark
//! machine), a touched byte of an aligned 2 MiB stretch of mimalloc's arena brings in
//! a whole huge page, and purging 64 KiB inside it frees nothing: the mixed
//! benchmark's peak RSS was 69.7 MiB with THP and 52–54 MiB with this switch, at the
//! same CPU time a request (0.68 ms). `MIMALLOC_ALLOW_THP=0` in the environment has
//! mimalloc do the same at its start, before the first allocation (47–49 MiB).

use std::process::ExitCode;

use clap::Parser;
use cxgraph::audit::Actor;
use cxgraph::auth::tokens::{self, NewToken};
use cxgraph::auth::{Principal, Scope};
use cxgraph::config::{Cli, Command, MigrateAction, Settings, TokenAction, UserAction};
use cxgraph::startup::{self, Application};
use cxgraph::{dataset, db, graphql, telemetry, users};
use entity::enums::Channel;
use migration::{Migrator, MigratorTrait};

/// Writes to stdout, ignoring a closed pipe (`cxgraph schema | head`, or a supervisor
/// that stopped reading): printing must never take the server down.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// See the module's comment. A kernel without the switch (before 3.15) or a sandbox
/// that refuses `prctl` leaves THP as it was: the server runs the same, with more RSS.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

#[tokio::main]
async fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let rendered = err.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("cxgraph: error: {first} (see `cxgraph --help`)");
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cxgraph: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    // Maintenance commands print their own results; their logs are warnings and errors
    // unless CXGRAPH_LOG asks for more.
    let serving = matches!(cli.command, None | Some(Command::Serve));
    let filter = if serving || std::env::var_os("CXGRAPH_LOG").is_some() { settings.log.as_str() } else { "warn" };
    let telemetry = telemetry::init(filter, settings.log_format(), &settings);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(graphql::sdl().as_bytes());
            Ok(())
        }
        Command::Serve => {
            let served = serve(settings).await;
            telemetry.shutdown();
            served
        }
        Command::Migrate { action } => migrate(&settings, action.unwrap_or(MigrateAction::Up)).await,
        Command::Seed(args) => {
            let db = startup::open_database(&settings).await?;
            let report =
                dataset::generate(&db, &args).await.map_err(|e| anyhow::anyhow!("seeding failed: {}", e.message()))?;
            say!("seeded {report:?}");
            Ok(())
        }
        Command::Token { action: TokenAction::Create { name, scopes, expires_in_days, channels } } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s).ok_or_else(|| anyhow::anyhow!("unknown scope `{s}`")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let channels = channels
                .iter()
                .map(|c| {
                    serde_json::from_value::<Channel>(serde_json::Value::String(c.to_lowercase()))
                        .map_err(|_| anyhow::anyhow!("unknown channel `{c}`"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let db = startup::open_database(&settings).await?;
            let new = NewToken {
                name,
                scopes,
                expires_at: expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d))),
                channels: (!channels.is_empty()).then_some(channels),
            };
            let system = Principal::Anonymous(None);
            let created = tokens::create(&db, Actor::new(&system, None), new)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            say!("created API token {} ({})", created.token.name, created.token.id);
            say!("secret (shown once, store it now): {}", created.secret);
            Ok(())
        }
        Command::User { action: UserAction::Create { email, name, role, password } } => {
            let db = startup::open_database(&settings).await?;
            let new = users::NewUser { email, display_name: name, role: role.into(), password };
            let user = users::create(&db, new).await.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            say!("created {:?} user {} ({})", user.role, user.email, user.id);
            Ok(())
        }
    }
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let db = db::connect(settings).await.map_err(|e| anyhow::anyhow!("cannot open database: {e}"))?;
    match action {
        MigrateAction::Up => db::migrate_exclusively(settings).await?,
        MigrateAction::Down { steps } => Migrator::down(&db, Some(steps)).await?,
        MigrateAction::Status => {
            let applied: Vec<String> =
                Migrator::get_applied_migrations(&db).await?.iter().map(|m| m.name().to_owned()).collect();
            for m in Migrator::migrations() {
                let state = if applied.iter().any(|a| a == m.name()) { "applied" } else { "pending" };
                say!("{state:8} {}", m.name());
            }
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (app, report) = Application::build(settings).await?;
    let addr = app.local_addr()?;
    let backend = db::backend_name(app.state().db());
    if report.ephemeral_jwt_secret {
        tracing::warn!("CXGRAPH_JWT_SECRET is not set: using a random key, sessions end when the server stops");
    }
    say!();
    say!("  cxgraph is serving on {backend}");
    say!("  GraphiQL:  http://{addr}/");
    say!("  GraphQL:   http://{addr}/graphql");
    if let Some((email, password)) = &report.admin_created {
        match password {
            Some(password) => {
                say!("  Admin account created: {email}");
                say!("  Password (shown once, store it now): {password}");
            }
            None => {
                say!("  Admin account created: {email} (password from CXGRAPH_ADMIN_PASSWORD)")
            }
        }
    }
    if let Some(seeded) = report.demo_data {
        say!(
            "  Demo data loaded: {} customers, {} conversations, {} interactions, {} touchpoints, {} feedback",
            seeded.customers,
            seeded.conversations,
            seeded.interactions,
            seeded.touchpoints,
            seeded.feedback
        );
    }
    say!();
    app.run_until(startup::shutdown_signal()).await
}
