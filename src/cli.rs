//! The command line: `serve`, `migrate`, `check-config`, and `deliveries` for operators.
//! Every failure ends as one line on stderr and a non-zero exit code.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret;

use crate::config::{DatabaseArgs, ServeArgs, redact_url};
use crate::model::delivery::DeliveryStatus;
use crate::model::{Clock, DeliveryId, SystemClock};
use crate::store::DeliveryFilter;

#[derive(Parser, Debug)]
#[command(
    name = "foreman",
    version,
    about = "Hands GitHub issues to a team of AI coding agents and supervises them."
)]
struct Cli {
    /// Log filter (tracing syntax, e.g. `info,foreman=debug`); RUST_LOG is used when unset.
    #[arg(long = "log", env = "FOREMAN_LOG", global = true)]
    log: Option<String>,
    /// Log format.
    #[arg(
        long = "log-format",
        env = "FOREMAN_LOG_FORMAT",
        global = true,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service: webhook server, inbox processor and tick loop.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit (for running before a rolling deploy).
    Migrate(DatabaseArgs),
    /// Check the configuration and print it (secrets hidden); exit non-zero if it is invalid.
    CheckConfig(Box<ServeArgs>),
    /// Check that this configuration works: database, GitHub App, webhook secret, git, agent
    /// CLIs and work root, one line each; exit non-zero if a required check fails.
    Doctor(Box<ServeArgs>),
    /// Inspect and replay stored webhook deliveries.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Inside an agent's sandbox: relay its loopback ports to foreman's egress sockets and run
    /// the agent (foreman starts it; not for use by hand).
    #[command(hide = true)]
    Relay(crate::egress::relay::RelayArgs),
}

#[derive(Subcommand, Debug)]
enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Only deliveries in this state.
        #[arg(long, value_parser = ["pending", "processed", "skipped", "dead"])]
        status: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Put dead deliveries back in the queue: one by its delivery id, or every one with --all.
    Replay {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The X-GitHub-Delivery id of the dead delivery.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead delivery.
        #[arg(long)]
        all: bool,
    },
}

/// Parses the command line, runs the command, and turns any error into one line and exit 1.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first}");
            return ExitCode::from(2);
        }
    };
    let command = match cli.command {
        Command::Relay(args) => return crate::egress::relay::main(args),
        command => command,
    };
    init_logging(&cli.log, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn init_logging(log: &Option<String>, format: LogFormat) {
    let filter = log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => crate::service::serve(*args).await,
        Command::Migrate(database) => {
            crate::service::open_store(&database.url).await?;
            println!(
                "migrations applied to {}",
                redact_url(database.url.expose_secret())
            );
            Ok(())
        }
        Command::CheckConfig(args) => check_config(&args),
        Command::Doctor(args) => {
            if crate::doctor::run(&args).await {
                Ok(())
            } else {
                bail!("doctor: some checks failed; see the lines above")
            }
        }
        Command::Deliveries(command) => deliveries(command).await,
        Command::Relay(_) => bail!("the relay runs without the async runtime"),
    }
}

fn check_config(args: &ServeArgs) -> Result<()> {
    crate::store::Backend::of_url(args.database.url.expose_secret())?;
    let identity = crate::setup::credentials::resolve(&args.github, &args.setup)?;
    let credentials = identity.app.clone();
    url::Url::parse(&args.github.api_url).map_err(|e| {
        anyhow::anyhow!(
            "GITHUB_API_URL `{}` is not a URL ({e})",
            args.github.api_url
        )
    })?;
    println!("listen          {}", args.listen_addr());
    println!(
        "database        {}",
        redact_url(args.database.url.expose_secret())
    );
    println!("github api      {}", args.github.api_url);
    println!(
        "github app      {}",
        match (&credentials, identity.source) {
            (Some(c), crate::setup::credentials::Source::File) => format!(
                "app id {} with a valid private key, from {}",
                c.app_id,
                args.setup.app_file.display()
            ),
            (Some(c), _) => format!("app id {} with a valid private key", c.app_id),
            (None, _) => "not configured (the setup page registers one)".to_owned(),
        }
    );
    println!(
        "webhook secrets {} configured",
        identity.webhook_secrets.len()
    );
    let agents = crate::engine::AgentSettings::from_args(&args.agents, &args.protected_paths())?;
    for (role, profile) in [("manager", &agents.manager), ("worker", &agents.worker)] {
        let model = profile.model.as_deref().map(|m| format!(", model {m}"));
        let extra =
            (!profile.args.is_empty()).then(|| format!(", args {}", profile.args.join(" ")));
        println!(
            "{role:<15} {} (`{}`{}{})",
            profile.kind.as_str(),
            profile.program,
            model.unwrap_or_default(),
            extra.unwrap_or_default(),
        );
    }
    println!("work root       {}", agents.work_root.display());
    println!(
        "sandbox         {}",
        match agents.sandbox.mode() {
            crate::config::SandboxMode::Bwrap => "bwrap (agents see only their checkout and state)",
            crate::config::SandboxMode::None => "none: agents run unconfined as foreman's user",
        }
    );
    if let crate::model::repo_config::ModelPolicy::Only(models) = &agents.repo_models {
        println!(
            "repo models     {}",
            if models.is_empty() {
                "none".to_owned()
            } else {
                models.join(", ")
            }
        );
    }
    let room: Vec<String> = agents
        .targets
        .all
        .iter()
        .map(|t| format!("{} {}", t.name, t.capacity))
        .collect();
    println!(
        "capacity        turns at once: {}; {} workers per objective, turn timeout {}",
        room.join(", "),
        agents.max_workers,
        humantime::format_duration(agents.turn_timeout)
    );
    println!(
        "workspace gc    every {}, keeps {} free on the work root, mirror gc every {}",
        humantime::format_duration(args.gc.interval),
        crate::model::text::human_bytes(args.gc.min_free_disk),
        humantime::format_duration(args.gc.mirror_gc_every)
    );
    let missing = identity.missing();
    if !missing.is_empty() {
        println!("missing         {}", missing.join(", "));
    }
    Ok(())
}

async fn deliveries(command: DeliveriesCommand) -> Result<()> {
    match command {
        DeliveriesCommand::List {
            database,
            status,
            limit,
        } => {
            let store = crate::service::open_store(&database.url).await?;
            let filter = DeliveryFilter {
                status: status.as_deref().and_then(DeliveryStatus::parse),
                limit,
            };
            let list = store.list_deliveries(filter).await?;
            if list.is_empty() {
                println!("no deliveries");
            }
            for d in list {
                println!(
                    "{}  {:<9}  {}{}  attempts={}  repo={}{}",
                    d.delivery_id,
                    d.status.as_str(),
                    d.event,
                    d.action.map(|a| format!(".{a}")).unwrap_or_default(),
                    d.attempts,
                    d.repository.as_deref().unwrap_or("-"),
                    d.last_error
                        .map(|e| format!("  error: {}", e.replace('\n', " ")))
                        .unwrap_or_default(),
                );
            }
            Ok(())
        }
        DeliveriesCommand::Replay { database, id, all } => {
            let store = crate::service::open_store(&database.url).await?;
            let id = id.map(DeliveryId);
            if id.is_none() && !all {
                bail!("name a delivery id or pass --all");
            }
            let n = store.replay_dead(id.as_ref(), SystemClock.now()).await?;
            println!("{n} dead deliveries queued again; a running foreman picks them up");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // Clap checks names, ids and defaults only when asked (or when a command is parsed).
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn the_relay_takes_its_forwards_and_the_program_after_them() {
        let cli = Cli::try_parse_from([
            "foreman",
            "relay",
            "--forward",
            "127.0.0.1:3128=/run/foreman-egress/proxy.sock",
            "--",
            "agent",
            "--flag",
        ])
        .unwrap();
        let Command::Relay(args) = cli.command else {
            panic!("not the relay")
        };
        assert_eq!(args.forwards.len(), 1);
        assert_eq!(args.command, ["agent", "--flag"]);
    }
}
