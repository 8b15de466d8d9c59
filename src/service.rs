//! `foreman serve`: wires the store, the engine's loops and the HTTP server together, and
//! takes them down in order on SIGTERM — stop accepting, finish the delivery in hand, give
//! the tick lease up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, redact_url};
use crate::engine::ingest::inbox;
use crate::engine::periodic::gc::{GcSettings, GcTask};
use crate::engine::periodic::outbox::Outbox;
use crate::engine::periodic::question_comments::QuestionComments;
use crate::engine::periodic::reconcile::Reconcile;
use crate::engine::periodic::scheduler::Scheduler;
use crate::engine::periodic::status::StatusComments;
use crate::engine::periodic::supervisor::Supervisor;
use crate::engine::periodic::tick;
use crate::engine::periodic::tick::{InboxRetention, TickSettings, TickTask};
use crate::engine::{AgentSettings, Engine};
use crate::github::app::GitHubApp;
use crate::model::{Clock, SystemClock};
use crate::store::{Backend, Store};
use crate::workspace::{WorkspaceSettings, Workspaces};

/// How long shutdown waits for the agents' turns to stop and record it.
const TURNS_GRACE: Duration = Duration::from_secs(3);
/// How long shutdown waits for open connections to finish before closing them.
const SERVER_GRACE: Duration = Duration::from_secs(2);

/// How long handled deliveries are kept before the retention task deletes them.
const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A running foreman: its address, its engine, and the handles to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    /// The setup flow (its token is in the startup log while no App is configured).
    pub setup: Arc<crate::setup::Setup>,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    loops: Vec<JoinHandle<()>>,
}

/// Keeps foreman's own secrets from the processes it starts: whatever foreman creates from
/// now on is its user's alone (umask 077: the database and its `-wal`/`-shm` files, the
/// credentials file, checkouts), and its process cannot be read by another process of its
/// user (not dumpable: `/proc/<pid>/environ`, `mem` and `fd` are closed).
fn protect_self() -> Result<()> {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    crate::sandbox::protect_process()
}

/// Large buffers go back to the system as soon as they are freed. A webhook payload can be
/// 25 MiB; glibc's allocator otherwise raises its threshold for giving memory back after the
/// first such buffer is freed, and keeps the next ones in heaps it rarely returns, so the
/// memory of one delivery would linger (and add up across threads) after it is handled.
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the C allocator; 4 MiB is a valid threshold.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// Says how agents will run: the sandbox ready, not ready (and why), or off.
async fn announce_sandbox(agents: &AgentSettings) {
    let sandbox = &agents.sandbox;
    if !sandbox.confines() {
        tracing::warn!(
            "FOREMAN_SANDBOX=none: agents run unconfined as foreman's user and can read \
             whatever it can (checkouts of other repositories, files in its home). Use \
             FOREMAN_SANDBOX=bwrap unless every agent and repository is trusted"
        );
    }
    if let Err(why) = sandbox.ready().await {
        tracing::error!(why, "agents will wait until the sandbox can start");
    }
    match (agents.network.mode, sandbox.confines()) {
        (crate::model::network::NetworkMode::Open, _) => tracing::warn!(
            "FOREMAN_NETWORK=open: agents can send what they read to any host. Use \
             FOREMAN_NETWORK=allowlist (the default) and list the hosts they need"
        ),
        (_, false) => tracing::warn!(
            "the network allowlist is not enforced without the sandbox: agents have \
             foreman's network"
        ),
        (_, true) => tracing::info!(
            hosts = agents.network.allow.len(),
            "agents reach only their model API, foreman and the allowed hosts"
        ),
    }
}

/// Connects to the database and applies migrations, with messages that say what failed.
pub async fn open_store(url: &secrecy::SecretString) -> Result<Store> {
    crate::store::private_database_files(url)?;
    let store = Store::connect(url).await?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// Starts everything `foreman serve` runs and returns once the server is listening.
pub async fn start(args: &ServeArgs, clock: Arc<dyn Clock>) -> Result<Running> {
    protect_self()?;
    return_large_buffers();
    let identity = crate::setup::credentials::resolve(&args.github, &args.setup)?;
    let mut agents = AgentSettings::from_args(&args.agents, &args.protected_paths())?;
    announce_sandbox(&agents).await;
    let store = open_store(&args.database.url).await?;
    let backend = match store.backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    tracing::info!(
        database = %redact_url(args.database.url.expose_secret()),
        backend,
        "database ready, migrations applied"
    );
    // Listening first: agents are told where the MCP tools are, which is known only now.
    let addr = args.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    agents.heartbeat = crate::engine::runtime::turns::heartbeat_for(args.tick_lease);
    if agents.mcp_url.is_empty() {
        agents.mcp_url = default_mcp_url(addr);
    }
    let holder = args.instance_id();
    let workspaces = Workspaces::new(WorkspaceSettings::from_args(
        &args.git,
        agents.work_root.clone(),
        agents.sandbox.clone(),
    ));
    let engine = Arc::new(Engine::assemble(
        store,
        clock.clone(),
        agents,
        workspaces,
        holder.clone(),
        args.github.posting(),
    ));
    let app = identity
        .app
        .as_ref()
        .map(|c| GitHubApp::new(c, &args.github.api_url, clock.clone()).map(Arc::new))
        .transpose()?;
    engine.github.set(app, identity.webhook_secrets.clone());
    engine.github.set_public_url(args.setup.public_url.clone());
    engine.gc.configure(GcSettings::from_args(&args.gc));
    let setup = Arc::new(crate::setup::Setup::new(
        engine.github.clone(),
        clock.clone(),
        args,
        &identity,
    ));
    let missing = identity.missing();
    if missing.is_empty() {
        let from = match identity.source {
            crate::setup::credentials::Source::File => "the credentials file",
            _ => "the settings",
        };
        tracing::info!(api = %args.github.api_url, "GitHub App configured from {from}");
    } else {
        tracing::warn!(
            "GitHub App settings missing: {}. Webhooks are refused (503) until the webhook \
             secret is set, and nothing is done on GitHub until the App id and key are set.",
            missing.join(", ")
        );
    }

    let stop = CancellationToken::new();

    let inbox_settings = inbox::InboxSettings {
        holder: holder.clone(),
        concurrency: args.inbox_concurrency.max(1),
        max_attempts: args.inbox_max_attempts.max(1),
        retry_base: args.inbox_retry_base,
        claim_ttl: args.inbox_claim_ttl.max(Duration::from_secs(1)),
    };
    let tick_settings = TickSettings {
        holder,
        interval: args.tick_interval,
        lease: args.tick_lease,
    };
    let tasks: Vec<Box<dyn TickTask>> = vec![
        Box::new(Scheduler {
            takeover_after: crate::engine::periodic::scheduler::takeover_after(args.tick_lease),
        }),
        Box::new(Supervisor {
            settings: args.supervisor.settings(),
        }),
        Box::new(Reconcile::new(
            args.reconcile.every,
            args.reconcile.pulls_every,
        )),
        Box::new(Outbox),
        Box::new(StatusComments::default()),
        Box::new(QuestionComments),
        Box::new(InboxRetention {
            keep: INBOX_RETENTION,
        }),
        // Starts passes in a task of their own: a slow removal never holds the loop up.
        Box::new(GcTask),
    ];
    let loops = vec![
        tokio::spawn(inbox::run(
            engine.ingest.clone(),
            inbox_settings,
            stop.clone(),
        )),
        tokio::spawn(tick::run(
            engine.periodic.clone(),
            tick_settings,
            tasks,
            stop.clone(),
        )),
    ];
    let webhooks = crate::server::WebhookLimits {
        buffer_mib: args.webhook_buffer_mib,
        read_timeout: args.webhook_read_timeout,
    };
    let web = crate::web::WebSettings {
        web_url: args.github.web_url.clone(),
        api_url: args.github.api_url.clone(),
        client_id: args.github.client_id.clone(),
        client_secret: args.github.client_secret.clone(),
        app_file: args.setup.app_file.clone(),
    };
    let router = crate::server::router(&engine, args.metrics_token.clone(), webhooks)
        .merge(crate::server::setup::routes(setup.clone()))
        .merge(crate::web::router(&engine, web));
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { server_stop.cancelled().await })
            .await
    });
    tracing::info!("listening on http://{addr}");
    if !setup.is_configured() {
        tracing::warn!(
            "no GitHub App yet: register one from the setup page, {}",
            setup.link(addr)
        );
    }
    Ok(Running {
        addr,
        engine,
        setup,
        stop,
        server,
        loops,
    })
}

impl Running {
    /// Stops accepting requests, stops the agents' turns (their sessions stay resumable), lets
    /// the loops finish what they hold, and waits for them — within seconds, well inside the
    /// grace a platform gives before it kills (Docker 10 s, Fly.io 30 s by default).
    pub async fn shutdown(self) {
        self.stop.cancel();
        // Agents first: a running agent holds MCP connections open, which a graceful server
        // would wait for, and the end of its turn must be recorded before the store closes.
        self.engine.runtime.stop_turns(TURNS_GRACE).await;
        let mut server = self.server;
        match tokio::time::timeout(SERVER_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!("connections still open after {SERVER_GRACE:?}; closing them");
                server.abort();
            }
        }
        for handle in self.loops {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "background loop failed");
            }
        }
        self.engine.store.close().await;
    }
}

/// Agents on this machine reach the MCP endpoint over loopback, whatever address serves it.
fn default_mcp_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}/mcp", addr.port())
}

/// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let running = start(&args, Arc::new(SystemClock)).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: no new requests; finishing the deliveries in hand");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
