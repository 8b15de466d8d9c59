//! The engine: what foreman does with what it stores. The inbox processor hands deliveries to
//! event handlers; the tick loop runs periodic work. Everything here reads from and writes to
//! the store; the HTTP layer only feeds it.

pub mod ingest;
pub mod objective;
pub mod periodic;
pub mod runtime;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Notify;

use crate::config::{AgentArgs, AgentProfile, Posting};
use crate::github::app::GitHubApp;
use crate::github::repos;
use crate::metrics::Metrics;
use crate::model::AgentKind;
use crate::model::repo_config::ModelPolicy;
use crate::model::{Budget, Clock, Role, SessionId};
use crate::sandbox::Sandbox;
use crate::store::Store;
use crate::workspace::{WorkspaceSettings, Workspaces};
use periodic::gc;
use runtime::turns;

/// How agents run: the settings of [`crate::config::AgentArgs`], checked.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Directory for checkouts and agent state.
    pub work_root: PathBuf,
    pub manager: AgentProfile,
    pub worker: AgentProfile,
    /// Variables passed from foreman's environment to agents.
    pub passthrough_env: Vec<String>,
    /// Turns running at once, across objectives.
    pub max_sessions: usize,
    /// Workers running at once per objective.
    pub max_workers: usize,
    pub turn_timeout: Duration,
    /// The budget new objectives get.
    pub budget: Budget,
    /// The most a repository's config may give an objective.
    pub budget_ceiling: Budget,
    /// The most an objective's agents may post per hour (a repository may ask for less).
    pub posting: crate::model::repo_config::PostingLimits,
    /// Which models a repository's config may choose.
    pub repo_models: ModelPolicy,
    /// The sandbox agents (and git in their checkouts) run in.
    pub sandbox: Arc<Sandbox>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        let claude = AgentProfile {
            kind: AgentKind::Claude,
            program: "claude".to_owned(),
            model: None,
            args: Vec::new(),
        };
        let budget = Budget {
            sessions: 20,
            turns: 200,
            wall: Duration::from_secs(24 * 60 * 60),
            cost_micros: None,
        };
        AgentSettings {
            work_root: PathBuf::from("foreman-work"),
            manager: claude.clone(),
            worker: claude,
            passthrough_env: Vec::new(),
            max_sessions: 4,
            max_workers: 3,
            turn_timeout: Duration::from_secs(60 * 60),
            budget,
            // Unless the operator says otherwise, a repository can only narrow the budget.
            budget_ceiling: budget,
            posting: Default::default(),
            repo_models: ModelPolicy::Any,
            sandbox: Arc::new(Sandbox::bwrap()),
        }
    }
}

impl AgentSettings {
    /// The settings of the command line, checked: a role whose agent cannot be started is a
    /// startup error. `protected` are foreman's own files and directories (database,
    /// credentials, work root: [`crate::config::ServeArgs::protected_paths`]), which no agent
    /// may see.
    pub fn from_args(args: &AgentArgs, protected: &[PathBuf]) -> anyhow::Result<AgentSettings> {
        use anyhow::Context;
        let work_root = std::path::absolute(&args.work_root).with_context(|| {
            format!(
                "FOREMAN_WORK_ROOT {} is not usable",
                args.work_root.display()
            )
        })?;
        Ok(AgentSettings {
            sandbox: Arc::new(Sandbox::from_args(&args.sandbox, protected)?),
            repo_models: ModelPolicy::parse(&args.repo_models),
            work_root,
            manager: args.profile(Role::Manager)?,
            worker: args.profile(Role::Worker)?,
            passthrough_env: args.passthrough_env()?,
            max_sessions: args.max_sessions.max(1),
            max_workers: args.max_workers.max(1),
            turn_timeout: args.turn_timeout,
            budget: args.budget(),
            budget_ceiling: args.budget_ceiling(),
            posting: crate::model::repo_config::PostingLimits {
                comments_per_hour: args.max_comments_per_hour,
                questions_per_hour: args.max_questions_per_hour,
            },
        })
    }

    /// How a session of `role` whose agent is `kind` runs: the role's profile when it names
    /// that kind, otherwise the kind's own CLI with no extras (the configuration changed
    /// after the session was created). A `command` session needs its configured program.
    pub fn profile(&self, role: Role, kind: AgentKind) -> anyhow::Result<AgentProfile> {
        let configured = match role {
            Role::Manager => &self.manager,
            Role::Worker | Role::Followup => &self.worker,
        };
        match kind {
            _ if configured.kind == kind => Ok(configured.clone()),
            AgentKind::Command => anyhow::bail!(
                "this session runs a `command` agent, but the {} agent is now {}",
                role.as_str(),
                configured.kind.as_str()
            ),
            AgentKind::Claude | AgentKind::Codex => Ok(AgentProfile {
                kind,
                program: kind.as_str().to_owned(),
                model: None,
                args: Vec::new(),
            }),
        }
    }

    /// Where a session's agent keeps its own state and config files (outside the checkout,
    /// so nothing of it can be committed).
    pub fn state_dir(&self, id: SessionId) -> PathBuf {
        self.work_root
            .join("sessions")
            .join(id.to_string())
            .join("state")
    }

    /// The environment every agent process starts from: a search path, its state directory
    /// as its home, a locale, a temporary directory of its own, and the configured
    /// pass-through variables — nothing else of foreman's.
    ///
    /// The temporary directory is `tmp` in the state directory ([`turns::SessionDirs::tmp`]),
    /// never the system's: Codex refuses to set up its helpers (its command sandbox among
    /// them) under the temporary directory, so a work root under `/tmp` left it unable to run
    /// any command.
    pub fn base_env(&self, dirs: &turns::SessionDirs) -> Vec<(String, String)> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let tmp = dirs.tmp().display().to_string();
        let mut env = vec![
            (
                "PATH".to_owned(),
                var("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ),
            ("HOME".to_owned(), dirs.state.display().to_string()),
            (
                "LANG".to_owned(),
                var("LANG").unwrap_or_else(|| "C.UTF-8".to_owned()),
            ),
            ("TMPDIR".to_owned(), tmp),
        ];
        for name in &self.passthrough_env {
            if let Some(value) = var(name) {
                env.push((name.clone(), value));
            }
        }
        env
    }
}

/// What every part of foreman shares: the store, the clock, the GitHub App identity (which
/// the setup flow may install while running), metrics, and the bells that wake the loops.
pub struct Engine {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub agents: AgentSettings,
    pub workspaces: Workspaces,
    /// Workspace GC: its settings, its pass lock, the targets checkouts live on.
    pub gc: gc::Gc,
    /// Repository configs and permissions, cached.
    pub repos: repos::Repos,
    /// This instance's name on leases, claims and the sessions it runs.
    pub runner: String,
    /// How the outbox posts to GitHub.
    pub posting: Posting,
    mcp_url: OnceLock<String>,
    turns: Mutex<HashMap<SessionId, turns::LocalTurn>>,
    /// Rung when a delivery is stored.
    pub inbox_bell: Notify,
    /// Rung when something changed that periodic work should look at soon: the store's due
    /// bell, which every committed transaction that made work due rings by itself.
    pub tick_bell: Arc<Notify>,
    /// Counts the tick loop's complete passes, so that a caller can wait for one that began
    /// after something it did (tests step the loop this way instead of sleeping).
    pub tick_passes: tokio::sync::watch::Sender<u64>,
    identity: RwLock<Identity>,
}

/// The GitHub-facing credentials, replaceable at run time.
#[derive(Default)]
struct Identity {
    app: Option<Arc<GitHubApp>>,
    webhook_secrets: Arc<Vec<SecretString>>,
}

impl Engine {
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

    /// An engine from all its parts.
    pub fn assemble(
        store: Store,
        clock: Arc<dyn Clock>,
        agents: AgentSettings,
        workspaces: Workspaces,
        runner: String,
        posting: Posting,
    ) -> Engine {
        Engine {
            tick_bell: store.due_bell(),
            store,
            clock,
            metrics: Metrics::default(),
            repos: repos::Repos::new(agents.repo_models.clone()),
            agents,
            gc: gc::Gc::new(&runner),
            workspaces,
            runner,
            posting,
            mcp_url: OnceLock::new(),
            turns: Mutex::new(HashMap::new()),
            inbox_bell: Notify::new(),
            tick_passes: tokio::sync::watch::Sender::new(0),
            identity: RwLock::new(Identity::default()),
        }
    }

    /// The GitHub App, when its credentials are configured.
    pub fn github(&self) -> Option<Arc<GitHubApp>> {
        self.identity().app.clone()
    }

    /// A client for one repository of the installation an event came through (its token
    /// scoped to that repository): none when the event names no installation or the App is
    /// not configured.
    pub async fn installation_client(
        &self,
        installation: Option<i64>,
        repository: &str,
    ) -> anyhow::Result<Option<octocrab::Octocrab>> {
        match (installation, self.github()) {
            (Some(id), Some(app)) => {
                let id = crate::model::InstallationId(id);
                self.may_act(id, repository).await?;
                Ok(Some(app.installation_client(id, repository).await?))
            }
            _ => Ok(None),
        }
    }

    /// Refuses, saying why, when foreman may not act for `repository` through `installation`
    /// (suspended, uninstalled, or the repository removed): nothing is posted or pushed there.
    pub async fn may_act(
        &self,
        installation: crate::model::InstallationId,
        repository: &str,
    ) -> anyhow::Result<()> {
        match self.store.standing(installation, Some(repository)).await? {
            Some(why) => anyhow::bail!("foreman may not act for {repository}: {why}"),
            None => Ok(()),
        }
    }

    /// Secret values no agent's post may carry: foreman's webhook secrets and the values of
    /// the variables passed to agents whose names say they are keys, tokens or secrets.
    pub fn known_secrets(&self) -> Vec<SecretString> {
        let mut known: Vec<SecretString> = self.webhook_secrets().iter().cloned().collect();
        let secret_name = |n: &str| {
            ["KEY", "TOKEN", "SECRET", "PASSWORD"]
                .iter()
                .any(|w| n.to_ascii_uppercase().contains(w))
        };
        for name in self
            .agents
            .passthrough_env
            .iter()
            .filter(|n| secret_name(n))
        {
            if let Ok(value) = std::env::var(name)
                && !value.is_empty()
            {
                known.push(SecretString::from(value));
            }
        }
        known
    }

    /// The webhook secrets accepted now (empty: none configured).
    pub fn webhook_secrets(&self) -> Arc<Vec<SecretString>> {
        self.identity().webhook_secrets.clone()
    }

    /// Installs (or replaces) the App identity and webhook secrets.
    pub fn set_identity(&self, app: Option<Arc<GitHubApp>>, webhook_secrets: Vec<SecretString>) {
        let mut identity = self.identity.write().unwrap_or_else(|e| e.into_inner());
        identity.app = app;
        identity.webhook_secrets = Arc::new(webhook_secrets);
    }

    /// Where agents reach foreman's MCP tools (set once the server listens).
    pub fn mcp_url(&self) -> String {
        self.mcp_url.get().cloned().unwrap_or_default()
    }

    pub fn set_mcp_url(&self, url: String) {
        let _ = self.mcp_url.set(url);
    }

    /// The turns this process runs.
    pub fn turns(&self) -> MutexGuard<'_, HashMap<SessionId, turns::LocalTurn>> {
        self.turns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn identity(&self) -> std::sync::RwLockReadGuard<'_, Identity> {
        self.identity.read().unwrap_or_else(|e| e.into_inner())
    }
}
