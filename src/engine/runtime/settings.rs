//! How agents run: the settings of [`crate::config::AgentArgs`], checked once at startup.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AgentArgs, AgentProfile};
use crate::engine::runtime::turns;
use crate::model::AgentKind;
use crate::model::network::NetworkPolicy;
use crate::model::repo_config::ModelPolicy;
use crate::model::targets::Targets;
use crate::model::{Budget, Role, SessionId};
use crate::sandbox::Sandbox;

/// How agents run: the settings of [`crate::config::AgentArgs`], checked.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Directory for checkouts and agent state.
    pub work_root: PathBuf,
    pub manager: AgentProfile,
    pub worker: AgentProfile,
    /// Variables passed from foreman's environment to agents.
    pub passthrough_env: Vec<String>,
    /// The machines turns run on, and how many at once on each (`local`'s room is
    /// FOREMAN_MAX_SESSIONS unless the targets file says otherwise).
    pub targets: Targets,
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
    /// Where agents reach foreman's MCP tools (known once the server listens: see
    /// [`crate::service`]; empty where nothing serves them).
    pub mcp_url: String,
    /// How often a running turn proves its runner alive ([`turns::heartbeat_for`]).
    pub heartbeat: Duration,
    /// Where agents may connect.
    pub network: NetworkPolicy,
    /// The program that starts a sandbox under an allowlist ([`crate::egress::relay`]).
    pub relay: PathBuf,
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
            targets: Targets::local_only(4),
            max_workers: 3,
            turn_timeout: Duration::from_secs(60 * 60),
            budget,
            // Unless the operator says otherwise, a repository can only narrow the budget.
            budget_ceiling: budget,
            posting: Default::default(),
            repo_models: ModelPolicy::Any,
            sandbox: Arc::new(Sandbox::bwrap()),
            mcp_url: String::new(),
            heartbeat: turns::HEARTBEAT,
            network: NetworkPolicy::default(),
            relay: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("foreman")),
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
        let targets = args.targets()?;
        Ok(AgentSettings {
            sandbox: Arc::new(Sandbox::from_args(&args.sandbox, protected)?),
            repo_models: ModelPolicy::parse(&args.repo_models),
            work_root,
            manager: args.profile(Role::Manager)?,
            worker: args.profile(Role::Worker)?,
            passthrough_env: args.passthrough_env()?,
            targets,
            max_workers: args.max_workers.max(1),
            turn_timeout: args.turn_timeout,
            budget: args.budget(),
            budget_ceiling: args.budget_ceiling(),
            posting: crate::model::repo_config::PostingLimits {
                comments_per_hour: args.max_comments_per_hour,
                questions_per_hour: args.max_questions_per_hour,
            },
            mcp_url: args.mcp_url.clone().unwrap_or_default(),
            heartbeat: turns::HEARTBEAT,
            network: args.network.policy()?,
            relay: args.network.relay()?,
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

    /// The endpoints every agent needs: foreman's MCP tools and the model APIs (as foreman's
    /// environment sets them, else the vendors').
    pub fn endpoint_urls(&self) -> Vec<String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        vec![
            self.mcp_url.clone(),
            var("ANTHROPIC_BASE_URL").unwrap_or_else(|| "https://api.anthropic.com".to_owned()),
            var(crate::agent::codex::BASE_URL_ENV)
                .unwrap_or_else(|| crate::agent::codex::DEFAULT_BASE_URL.to_owned()),
        ]
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
