//! The engine: what foreman does with what it stores. It is four parts, each a folder and each
//! with the context it works in, built once here:
//! - [`ingest`] ([`ingest::Ingest`]): the inbox processor hands deliveries to event handlers;
//! - [`objective`] ([`objective::Objectives`]): what can happen to an objective, called by
//!   the handlers, the agents' tools and periodic work alike;
//! - [`runtime`] ([`runtime::Runtime`]): agents' turns as sandboxed processes;
//! - [`periodic`] ([`periodic::Periodic`]): the tick loop and its tasks.
//!
//! `ingest` and `periodic` use `objective`, which uses `runtime`; nothing uses a part above it.
//! Everything reads from and writes to the store; the HTTP layer only feeds it.

pub mod identity;
pub mod ingest;
pub mod objective;
pub mod periodic;
pub mod runtime;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::Posting;
use crate::github::repos::Repos;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::store::Store;
use crate::workspace::gc::Gc;
use crate::workspace::{WorkspaceSettings, Workspaces};
use identity::Identity;
use ingest::Ingest;
use objective::Objectives;
use periodic::Periodic;
pub use runtime::AgentSettings;
use runtime::Runtime;

/// foreman's parts, wired together: what `foreman serve` starts its loops and routes from.
/// The parts share the store, the clock, the metrics, the GitHub identity and GC's state;
/// no part sees this whole.
pub struct Engine {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub github: Arc<Identity>,
    pub gc: Arc<Gc>,
    pub runtime: Arc<Runtime>,
    pub objectives: Arc<Objectives>,
    pub ingest: Arc<Ingest>,
    pub periodic: Arc<Periodic>,
    /// Wakes the tick loop: the store's due bell.
    pub tick_bell: Arc<Notify>,
}

impl Engine {
    /// An engine with the default agent settings (tests that run no agents).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Engine {
        let agents = AgentSettings::default();
        Engine::configured(
            store,
            clock,
            agents,
            "foreman".to_owned(),
            Posting::default(),
        )
    }

    /// An engine whose checkouts come from GitHub.
    pub fn configured(
        store: Store,
        clock: Arc<dyn Clock>,
        agents: AgentSettings,
        runner: String,
        posting: Posting,
    ) -> Engine {
        let workspaces = Workspaces::new(WorkspaceSettings::github(
            agents.work_root.clone(),
            agents.sandbox.clone(),
        ));
        Engine::assemble(store, clock, agents, workspaces, runner, posting)
    }

    /// An engine from all its parts. `runner` is this instance's name on leases, claims and
    /// the sessions it runs.
    pub fn assemble(
        store: Store,
        clock: Arc<dyn Clock>,
        agents: AgentSettings,
        workspaces: Workspaces,
        runner: String,
        posting: Posting,
    ) -> Engine {
        let metrics = Arc::new(Metrics::default());
        let github = Arc::new(Identity::new(store.clone(), agents.passthrough_env.clone()));
        let gc = Arc::new(Gc::new(&runner));
        let sites = Arc::new(crate::workspace::remote::Sites::new(
            &agents.targets,
            agents.work_root.join("ssh"),
            &agents.mcp_url,
        ));
        for name in sites.names() {
            gc.set_target(
                &name,
                Arc::new(crate::workspace::target::RemoteTarget {
                    name: name.clone(),
                    sites: sites.clone(),
                }),
            );
        }
        let runtime = Arc::new(Runtime {
            store: store.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            agents: agents.clone(),
            workspaces: Arc::new(workspaces),
            gc: gc.clone(),
            github: github.clone(),
            runner,
            tick_bell: store.due_bell(),
            shutdown: Default::default(),
            turns: Mutex::new(HashMap::new()),
            sites,
        });
        let objectives = Arc::new(Objectives {
            store: store.clone(),
            clock: clock.clone(),
            agents: agents.clone(),
            github: github.clone(),
            runtime: runtime.clone(),
        });
        let repos = Arc::new(Repos::new(
            agents.repo_models.clone(),
            agents.network.clone(),
        ));
        let inbox_bell = Arc::new(Notify::new());
        let ingest = Arc::new(Ingest {
            store: store.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            github: github.clone(),
            repos: repos.clone(),
            objectives: objectives.clone(),
            inbox_bell: inbox_bell.clone(),
            receiving: Default::default(),
        });
        let periodic = Arc::new(Periodic {
            store: store.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            github: github.clone(),
            posting,
            gc: gc.clone(),
            objectives: objectives.clone(),
            runtime: runtime.clone(),
            repos,
            inbox_bell,
            tick_bell: store.due_bell(),
            tick_passes: tokio::sync::watch::Sender::new(0),
        });
        Engine {
            tick_bell: store.due_bell(),
            store,
            clock,
            metrics,
            github,
            gc,
            runtime,
            objectives,
            ingest,
            periodic,
        }
    }
}
