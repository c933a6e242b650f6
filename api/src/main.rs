//! The `cxgraph` command: `serve` (default), `migrate`, `seed`, `schema`, `user create`.
//! Every failure ends in one line on stderr and a non-zero exit code, never a panic.

use std::process::ExitCode;

use clap::Parser;
use cxgraph::config::{Cli, Command, MigrateAction, Settings, UserAction};
use cxgraph::startup::{self, Application};
use cxgraph::{dataset, db, graphql, telemetry, users};
use migration::{Migrator, MigratorTrait};

#[tokio::main]
async fn main() -> ExitCode {
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
    telemetry::init(filter, settings.log_format());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Serve => serve(settings).await,
        Command::Migrate { action } => migrate(&settings, action.unwrap_or(MigrateAction::Up)).await,
        Command::Seed(args) => {
            let db = startup::open_database(&settings).await?;
            let report =
                dataset::generate(&db, &args).await.map_err(|e| anyhow::anyhow!("seeding failed: {}", e.message()))?;
            println!("seeded {report:?}");
            Ok(())
        }
        Command::User { action: UserAction::Create { email, name, role, password } } => {
            let db = startup::open_database(&settings).await?;
            let new = users::NewUser { email, display_name: name, role: role.into(), password };
            let user = users::create(&db, new).await.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            println!("created {:?} user {} ({})", user.role, user.email, user.id);
            Ok(())
        }
    }
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    let db = db::connect(settings).await.map_err(|e| anyhow::anyhow!("cannot open database: {e}"))?;
    match action {
        MigrateAction::Up => Migrator::up(&db, None).await?,
        MigrateAction::Down { steps } => Migrator::down(&db, Some(steps)).await?,
        MigrateAction::Status => {
            let applied: Vec<String> =
                Migrator::get_applied_migrations(&db).await?.iter().map(|m| m.name().to_owned()).collect();
            for m in Migrator::migrations() {
                let state = if applied.iter().any(|a| a == m.name()) { "applied" } else { "pending" };
                println!("{state:8} {}", m.name());
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
    println!();
    println!("  cxgraph is serving on {backend}");
    println!("  GraphiQL:  http://{addr}/");
    println!("  GraphQL:   http://{addr}/graphql");
    if let Some((email, password)) = &report.admin_created {
        match password {
            Some(password) => {
                println!("  Admin account created: {email}");
                println!("  Password (shown once, store it now): {password}");
            }
            None => {
                println!("  Admin account created: {email} (password from CXGRAPH_ADMIN_PASSWORD)")
            }
        }
    }
    if let Some(seeded) = report.demo_data {
        println!(
            "  Demo data loaded: {} customers, {} conversations, {} interactions, {} touchpoints, {} feedback",
            seeded.customers, seeded.conversations, seeded.interactions, seeded.touchpoints, seeded.feedback
        );
    }
    println!();
    app.run_until(startup::shutdown_signal()).await
}
