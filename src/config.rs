//! Every option foreman takes: a command-line flag and an environment variable each.
//!
//! Secrets (private key, webhook secrets, the database URL, which may hold a password) are
//! held as [`SecretString`] so that no `Debug`, log line or `--help` output ever shows them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::github::app::AppCredentials;
use crate::model::network::{self, NetworkMode, NetworkPolicy};
use crate::model::targets::Targets;
use crate::model::{AgentKind, Budget, Role};

/// Default listen address when neither `FOREMAN_LISTEN` nor `PORT` is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default database: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://foreman.db";
/// Default GitHub REST API base URL.
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
/// Default GitHub web address (App registration and installation pages).
pub const DEFAULT_GITHUB_WEB_URL: &str = "https://github.com";
/// Default file the setup flow stores the registered App's credentials in.
pub const DEFAULT_APP_FILE: &str = "github-app.json";

/// Where the database lives. Shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path.db` (default, created on first run) or `postgres://…`.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        hide_default_value = false,
        value_parser = parse_secret
    )]
    pub url: SecretString,
}

/// The GitHub App identity. Every field is optional so that `foreman serve` starts without
/// them (and says what is missing) instead of refusing to start.
#[derive(Args, Debug, Clone)]
pub struct GitHubArgs {
    /// The GitHub App's numeric id.
    #[arg(long = "github-app-id", env = "GITHUB_APP_ID")]
    pub app_id: Option<u64>,
    /// The App's private key as PEM text (PKCS#1 or PKCS#8). `\n` escapes are accepted.
    #[arg(
        long = "github-private-key",
        env = "GITHUB_PRIVATE_KEY",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub private_key: Option<SecretString>,
    /// Path to the App's private key PEM file (alternative to GITHUB_PRIVATE_KEY).
    #[arg(long = "github-private-key-path", env = "GITHUB_PRIVATE_KEY_PATH")]
    pub private_key_path: Option<PathBuf>,
    /// Webhook secret; several comma-separated secrets are all accepted (for rotation).
    #[arg(
        long = "github-webhook-secret",
        env = "GITHUB_WEBHOOK_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub webhook_secret: Option<SecretString>,
    /// GitHub REST API base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(long = "github-api-url", env = "GITHUB_API_URL", default_value = DEFAULT_GITHUB_API_URL)]
    pub api_url: String,
    /// GitHub's web address, where Apps are registered and installed (GitHub Enterprise
    /// Server: `https://HOST`).
    #[arg(long = "github-web-url", env = "GITHUB_WEB_URL", default_value = DEFAULT_GITHUB_WEB_URL)]
    pub web_url: String,
    /// The App's OAuth client id, for signing in to the web view (the setup page stores it;
    /// set it for an App registered by hand).
    #[arg(long = "github-client-id", env = "GITHUB_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The App's OAuth client secret (with GITHUB_CLIENT_ID).
    #[arg(
        long = "github-client-secret",
        env = "GITHUB_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<SecretString>,
    /// Pause between two comments foreman posts (GitHub asks integrations to space
    /// content-creating requests).
    #[arg(long = "comment-spacing", env = "FOREMAN_COMMENT_SPACING", default_value = "1s", value_parser = parse_duration)]
    pub comment_spacing: Duration,
    /// First retry delay of a comment that could not be posted; doubles per attempt.
    #[arg(long = "comment-retry-base", env = "FOREMAN_COMMENT_RETRY_BASE", default_value = "5s", value_parser = parse_duration)]
    pub comment_retry_base: Duration,
}

impl GitHubArgs {
    /// How the outbox posts.
    pub fn posting(&self) -> Posting {
        Posting {
            spacing: self.comment_spacing,
            retry_base: self.comment_retry_base,
        }
    }
}

/// How comments are posted: spaced out, and retried with backoff.
#[derive(Debug, Clone, Copy)]
pub struct Posting {
    /// Pause between two posts.
    pub spacing: Duration,
    /// First retry delay; doubles per attempt, at most ten minutes.
    pub retry_base: Duration,
}

impl Default for Posting {
    fn default() -> Self {
        Posting {
            spacing: Duration::from_secs(1),
            retry_base: Duration::from_secs(5),
        }
    }
}

/// How agents run: which CLI per role, where, how many at once, and each objective's budget.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Directory for checkouts and agent state.
    #[arg(
        long = "work-root",
        env = "FOREMAN_WORK_ROOT",
        default_value = "foreman-work"
    )]
    pub work_root: PathBuf,
    /// URL agents reach foreman's MCP tools at (default: http://127.0.0.1:<port>/mcp).
    #[arg(long = "mcp-url", env = "FOREMAN_MCP_URL")]
    pub mcp_url: Option<String>,
    /// Agent CLI of managers.
    #[arg(
        long = "manager-agent",
        env = "FOREMAN_MANAGER_AGENT",
        default_value = "claude",
        value_parser = parse_agent_kind
    )]
    pub manager_agent: AgentKind,
    /// Program run for managers (default: `claude` or `codex`; required for `command`).
    #[arg(long = "manager-command", env = "FOREMAN_MANAGER_COMMAND")]
    pub manager_command: Option<String>,
    /// Model for managers.
    #[arg(long = "manager-model", env = "FOREMAN_MANAGER_MODEL")]
    pub manager_model: Option<String>,
    /// Extra arguments for the managers' CLI, space-separated.
    #[arg(
        long = "manager-args",
        env = "FOREMAN_MANAGER_ARGS",
        default_value = ""
    )]
    pub manager_args: String,
    /// Agent CLI of workers and follow-ups.
    #[arg(
        long = "worker-agent",
        env = "FOREMAN_WORKER_AGENT",
        default_value = "claude",
        value_parser = parse_agent_kind
    )]
    pub worker_agent: AgentKind,
    /// Program run for workers (default: `claude` or `codex`; required for `command`).
    #[arg(long = "worker-command", env = "FOREMAN_WORKER_COMMAND")]
    pub worker_command: Option<String>,
    /// Model for workers.
    #[arg(long = "worker-model", env = "FOREMAN_WORKER_MODEL")]
    pub worker_model: Option<String>,
    /// Extra arguments for the workers' CLI, space-separated.
    #[arg(long = "worker-args", env = "FOREMAN_WORKER_ARGS", default_value = "")]
    pub worker_args: String,
    /// Names of environment variables passed through to agents (their API keys and
    /// endpoints), comma-separated. foreman's own secrets are never passed.
    #[arg(
        long = "agent-env",
        env = "FOREMAN_AGENT_ENV",
        default_value = "ANTHROPIC_API_KEY,ANTHROPIC_BASE_URL,CLAUDE_CODE_OAUTH_TOKEN,OPENAI_API_KEY,FOREMAN_CODEX_BASE_URL"
    )]
    pub agent_env: String,
    /// Agent turns running at once, across all objectives.
    #[arg(
        long = "max-sessions",
        env = "FOREMAN_MAX_SESSIONS",
        default_value_t = 4
    )]
    pub max_sessions: usize,
    /// A TOML file naming the machines agents may run on over SSH besides this one, and how
    /// many turns each takes (README, "Targets"). `foreman doctor` checks each.
    #[arg(long = "targets", env = "FOREMAN_TARGETS")]
    pub targets: Option<PathBuf>,
    /// Workers running at once per objective.
    #[arg(long = "max-workers", env = "FOREMAN_MAX_WORKERS", default_value_t = 3)]
    pub max_workers: usize,
    /// A turn running longer than this is cancelled and its session fails.
    #[arg(long = "turn-timeout", env = "FOREMAN_TURN_TIMEOUT", default_value = "60m", value_parser = parse_duration)]
    pub turn_timeout: Duration,
    /// Sessions one objective may start before a human is asked.
    #[arg(
        long = "budget-sessions",
        env = "FOREMAN_BUDGET_SESSIONS",
        default_value_t = 20
    )]
    pub budget_sessions: u32,
    /// Turns one objective may take before a human is asked.
    #[arg(
        long = "budget-turns",
        env = "FOREMAN_BUDGET_TURNS",
        default_value_t = 200
    )]
    pub budget_turns: u32,
    /// Time one objective may run before a human is asked.
    #[arg(long = "budget-time", env = "FOREMAN_BUDGET_TIME", default_value = "24h", value_parser = parse_duration)]
    pub budget_time: Duration,
    /// Cost in US dollars one objective may spend (where agents report cost).
    #[arg(long = "budget-cost", env = "FOREMAN_BUDGET_COST")]
    pub budget_cost: Option<f64>,
    /// The most sessions a repository's config may give an objective (default: FOREMAN_BUDGET_SESSIONS).
    #[arg(long = "max-budget-sessions", env = "FOREMAN_MAX_BUDGET_SESSIONS")]
    pub max_budget_sessions: Option<u32>,
    /// The most turns a repository's config may give an objective (default: FOREMAN_BUDGET_TURNS).
    #[arg(long = "max-budget-turns", env = "FOREMAN_MAX_BUDGET_TURNS")]
    pub max_budget_turns: Option<u32>,
    /// The most time a repository's config may give an objective (default: FOREMAN_BUDGET_TIME).
    #[arg(long = "max-budget-time", env = "FOREMAN_MAX_BUDGET_TIME", value_parser = parse_duration)]
    pub max_budget_time: Option<Duration>,
    /// The most dollars a repository's config may give an objective (default: FOREMAN_BUDGET_COST).
    #[arg(long = "max-budget-cost", env = "FOREMAN_MAX_BUDGET_COST")]
    pub max_budget_cost: Option<f64>,
    /// Comments an objective's agents may post on its issue per hour (a repository's config
    /// may lower it).
    #[arg(
        long = "max-comments-per-hour",
        env = "FOREMAN_MAX_COMMENTS_PER_HOUR",
        default_value_t = 10
    )]
    pub max_comments_per_hour: u32,
    /// Questions an objective's agents may ask per hour (a repository's config may lower it).
    #[arg(
        long = "max-questions-per-hour",
        env = "FOREMAN_MAX_QUESTIONS_PER_HOUR",
        default_value_t = 5
    )]
    pub max_questions_per_hour: u32,
    /// Models a repository's `.github/foreman.yml` may choose, comma-separated (`*`: any;
    /// empty: none, the server's models only).
    #[arg(long = "repo-models", env = "FOREMAN_REPO_MODELS", default_value = "*")]
    pub repo_models: String,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Where agents may connect (enforced outside the agent: see [`crate::egress`]).
#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// `allowlist` (the default: agents reach only their model API, foreman and the listed
    /// hosts, through foreman's proxy) or `open` (the host's network, unfiltered).
    #[arg(long = "network", env = "FOREMAN_NETWORK", default_value = "allowlist", value_parser = NetworkMode::parse)]
    pub network_mode: NetworkMode,
    /// Hosts every repository's agents may reach, comma-separated (`name`, `*.suffix`,
    /// address, each with an optional `:port`; without one, ports 80 and 443).
    #[arg(long = "network-allow", env = "FOREMAN_NETWORK_ALLOW", default_value = network::DEFAULT_ALLOW)]
    pub network_allow: String,
    /// Hosts a repository's `.github/foreman.yml` may add to its own list, comma-separated.
    #[arg(
        long = "network-permit",
        env = "FOREMAN_NETWORK_PERMIT",
        default_value = ""
    )]
    pub network_permit: String,
    /// The program that runs first in a sandbox under an allowlist (`foreman relay`; default:
    /// this executable).
    #[arg(long = "egress-relay", env = "FOREMAN_EGRESS_RELAY", hide = true)]
    pub egress_relay: Option<PathBuf>,
}

impl Default for NetworkArgs {
    fn default() -> Self {
        NetworkArgs {
            network_mode: NetworkMode::Allowlist,
            network_allow: network::DEFAULT_ALLOW.to_owned(),
            network_permit: String::new(),
            egress_relay: None,
        }
    }
}

impl NetworkArgs {
    /// The policy, checked: a bad entry is a startup error naming it.
    pub fn policy(&self) -> anyhow::Result<NetworkPolicy> {
        let list = |name: &str, text: &str| {
            network::parse_rules(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))
        };
        Ok(NetworkPolicy {
            mode: self.network_mode,
            allow: list("FOREMAN_NETWORK_ALLOW", &self.network_allow)?,
            permit: list("FOREMAN_NETWORK_PERMIT", &self.network_permit)?,
        })
    }

    /// The relay program: as configured, else this executable.
    pub fn relay(&self) -> anyhow::Result<PathBuf> {
        match &self.egress_relay {
            Some(path) => Ok(path.clone()),
            None => std::env::current_exe()
                .context("cannot find foreman's own executable, which relays agents' network"),
        }
    }
}

/// Whether agents run in a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// bubblewrap: namespaces, only the session's checkout and state writable.
    Bwrap,
    /// No sandbox: agents run as foreman's user (an explicit, warned-about choice).
    None,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Bwrap => "bwrap",
            SandboxMode::None => "none",
        }
    }
}

/// The sandbox agents (and git in their checkouts) run in.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// `bwrap` (bubblewrap, the default) or `none` (agents run unconfined as foreman's user).
    #[arg(long = "sandbox", env = "FOREMAN_SANDBOX", default_value = "bwrap")]
    pub mode: SandboxMode,
    /// The bubblewrap program.
    #[arg(long = "bwrap", env = "FOREMAN_BWRAP", default_value = "bwrap")]
    pub bwrap: String,
    /// Extra paths agents may read, comma-separated (for agent CLIs installed outside /usr).
    #[arg(
        long = "sandbox-read-only",
        env = "FOREMAN_SANDBOX_READ_ONLY",
        default_value = ""
    )]
    pub read_only: String,
    /// With FOREMAN_SANDBOX=none, run agents even though foreman runs as root.
    #[arg(
        long = "allow-root-agents",
        env = "FOREMAN_ALLOW_ROOT_AGENTS",
        default_value_t = false
    )]
    pub allow_root_agents: bool,
}

impl Default for SandboxArgs {
    fn default() -> Self {
        SandboxArgs {
            mode: SandboxMode::Bwrap,
            bwrap: "bwrap".to_owned(),
            read_only: String::new(),
            allow_root_agents: false,
        }
    }
}

impl AgentArgs {
    /// The default budget of a new objective.
    pub fn budget(&self) -> Budget {
        Budget {
            sessions: self.budget_sessions,
            turns: self.budget_turns,
            wall: self.budget_time,
            cost_micros: self
                .budget_cost
                .map(|usd| (usd * 1e6).round().max(0.0) as u64),
        }
    }

    /// The most a repository's config may give an objective: the `FOREMAN_MAX_BUDGET_*`
    /// settings, each defaulting to the server's own budget (so a repository can only narrow
    /// it unless the operator allows more).
    pub fn budget_ceiling(&self) -> Budget {
        let default = self.budget();
        Budget {
            sessions: self.max_budget_sessions.unwrap_or(default.sessions),
            turns: self.max_budget_turns.unwrap_or(default.turns),
            wall: self.max_budget_time.unwrap_or(default.wall),
            cost_micros: self
                .max_budget_cost
                .map(|usd| (usd * 1e6).round().max(0.0) as u64)
                .or(default.cost_micros),
        }
    }

    /// How a role's sessions run.
    pub fn profile(&self, role: Role) -> Result<AgentProfile> {
        let (kind, command, model, args) = match role {
            Role::Manager => (
                self.manager_agent,
                &self.manager_command,
                &self.manager_model,
                &self.manager_args,
            ),
            Role::Worker | Role::Followup => (
                self.worker_agent,
                &self.worker_command,
                &self.worker_model,
                &self.worker_args,
            ),
        };
        let program = match (kind, command) {
            (_, Some(program)) => program.clone(),
            (AgentKind::Claude, None) => "claude".to_owned(),
            (AgentKind::Codex, None) => "codex".to_owned(),
            (AgentKind::Command, None) => bail!(
                "the {} agent is `command` but no program is set (FOREMAN_{}_COMMAND)",
                role.as_str(),
                if role == Role::Manager {
                    "MANAGER"
                } else {
                    "WORKER"
                }
            ),
        };
        Ok(AgentProfile {
            kind,
            program,
            model: model.clone(),
            args: args.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// The machines agents may run on: `local` with room for FOREMAN_MAX_SESSIONS turns,
    /// and those of the targets file.
    pub fn targets(&self) -> Result<Targets> {
        let local = u32::try_from(self.max_sessions.max(1)).unwrap_or(u32::MAX);
        let Some(path) = &self.targets else {
            return Ok(Targets::local_only(local));
        };
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the targets file {} (FOREMAN_TARGETS)",
                path.display()
            )
        })?;
        Targets::parse(&text, local)
            .map_err(|e| anyhow!("the targets file {} (FOREMAN_TARGETS): {e}", path.display()))
    }

    /// The environment variables agents get from foreman's own environment.
    pub fn passthrough_env(&self) -> Result<Vec<String>> {
        let names: Vec<String> = self
            .agent_env
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(secret) = names.iter().find(|n| is_foreman_secret(n)) {
            bail!(
                "FOREMAN_AGENT_ENV names {secret}, one of foreman's own secrets; agents never get those"
            );
        }
        Ok(names)
    }
}

/// Variables holding foreman's own secrets, which never reach an agent.
fn is_foreman_secret(name: &str) -> bool {
    name.starts_with("GITHUB_")
        || name == "DATABASE_URL"
        || (name.starts_with("FOREMAN_") && name != "FOREMAN_CODEX_BASE_URL")
}

/// How git checkouts are made.
#[derive(Args, Debug, Clone)]
pub struct GitArgs {
    /// The git program.
    #[arg(long = "git", env = "FOREMAN_GIT", default_value = "git")]
    pub git: String,
    /// Base of repository clone URLs (GitHub Enterprise: `https://HOST`).
    #[arg(
        long = "git-url",
        env = "FOREMAN_GIT_URL",
        default_value = "https://github.com"
    )]
    pub git_url: String,
    /// Name foreman's commits are made as (default: the App's bot account, `<slug>[bot]`).
    #[arg(long = "git-author-name", env = "FOREMAN_GIT_AUTHOR_NAME")]
    pub author_name: Option<String>,
    /// Email foreman's commits are made as (default: the App's bot account's,
    /// `<bot user id>+<slug>[bot]@users.noreply.github.com`, which GitHub links to the App).
    #[arg(long = "git-author-email", env = "FOREMAN_GIT_AUTHOR_EMAIL")]
    pub author_email: Option<String>,
}

/// Workspace GC: how often it looks for checkouts to reclaim, and how much free space the
/// work root must keep.
#[derive(Args, Debug, Clone)]
pub struct GcArgs {
    /// Time between GC passes (one also runs at startup, and at once under disk pressure).
    #[arg(long = "gc-interval", env = "FOREMAN_GC_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Free space the work root must keep (`2GiB`, `500MiB`, bytes; `0` turns the check off):
    /// under it a GC pass runs at once and new checkouts wait.
    #[arg(long = "min-free-disk", env = "FOREMAN_MIN_FREE_DISK", default_value = "2GiB", value_parser = parse_bytes)]
    pub min_free_disk: u64,
    /// Least time between two `git gc` runs of one mirror.
    #[arg(long = "gc-mirror-every", env = "FOREMAN_GC_MIRROR_EVERY", default_value = "6h", value_parser = parse_duration)]
    pub mirror_gc_every: Duration,
}

impl Default for GcArgs {
    fn default() -> Self {
        GcArgs {
            interval: Duration::from_secs(5 * 60),
            min_free_disk: 2 << 30,
            mirror_gc_every: Duration::from_secs(6 * 60 * 60),
        }
    }
}

/// The supervisor: when a stalled manager is poked, how many times a dead one is replaced
/// before the humans are asked.
#[derive(Args, Debug, Clone)]
pub struct SupervisorArgs {
    /// How long a manager's turn must have been over, with nothing running, before it is
    /// poked.
    #[arg(long = "supervisor-idle-after", env = "FOREMAN_SUPERVISOR_IDLE_AFTER", default_value = "90s", value_parser = parse_duration)]
    pub idle_after: Duration,
    /// Least time between two supervisor actions on one objective.
    #[arg(long = "supervisor-cooldown", env = "FOREMAN_SUPERVISOR_COOLDOWN", default_value = "90s", value_parser = parse_duration)]
    pub cooldown: Duration,
    /// Manager attempts (that really started) before the humans are asked.
    #[arg(
        long = "supervisor-max-attempts",
        env = "FOREMAN_SUPERVISOR_MAX_ATTEMPTS",
        default_value_t = 4
    )]
    pub max_attempts: u32,
    /// Manager sessions of any kind before the humans are asked.
    #[arg(
        long = "supervisor-max-managers",
        env = "FOREMAN_SUPERVISOR_MAX_MANAGERS",
        default_value_t = 16
    )]
    pub max_managers: u32,
}

impl SupervisorArgs {
    pub fn settings(&self) -> crate::model::supervisor::Settings {
        crate::model::supervisor::Settings {
            idle_after: self.idle_after,
            cooldown: self.cooldown,
            max_attempts: self.max_attempts.max(1),
            max_managers: self.max_managers.max(1),
        }
    }
}

impl Default for SupervisorArgs {
    fn default() -> Self {
        let s = crate::model::supervisor::Settings::default();
        SupervisorArgs {
            idle_after: s.idle_after,
            cooldown: s.cooldown,
            max_attempts: s.max_attempts,
            max_managers: s.max_managers,
        }
    }
}

/// Reconciliation: how often foreman reads back its pull requests and issues, in case a
/// webhook was lost.
#[derive(Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// Time between full passes (pull requests, their checks, and the issues).
    #[arg(long = "reconcile-interval", env = "FOREMAN_RECONCILE_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub every: Duration,
    /// Time between reads of the open pull requests alone (merges, closes, pushes, conflicts).
    #[arg(long = "pull-refresh-interval", env = "FOREMAN_PULL_REFRESH_INTERVAL", default_value = "2m", value_parser = parse_duration)]
    pub pulls_every: Duration,
}

impl Default for ReconcileArgs {
    fn default() -> Self {
        ReconcileArgs {
            every: Duration::from_secs(10 * 60),
            pulls_every: Duration::from_secs(2 * 60),
        }
    }
}

/// How one role's sessions run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProfile {
    pub kind: AgentKind,
    pub program: String,
    pub model: Option<String>,
    pub args: Vec<String>,
}

impl AgentProfile {
    /// This profile with a repository's choice of model (its flags stay the operator's).
    pub fn with(mut self, choice: &crate::model::repo_config::AgentChoice) -> AgentProfile {
        if let Some(model) = &choice.model {
            self.model = Some(model.clone());
        }
        self
    }
}

/// The setup flow: where foreman is reached from outside, and where the credentials of an
/// App registered through its setup page are kept.
#[derive(Args, Debug, Clone)]
pub struct SetupArgs {
    /// foreman's public base URL (`https://foreman.example.com`), used in the App manifest
    /// for the webhook and redirect URLs. Default: from the setup request's
    /// `X-Forwarded-Proto`/`X-Forwarded-Host` or `Host` headers.
    #[arg(long = "public-url", env = "FOREMAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// File (mode 0600) holding the App's id, private key and webhook secret once the setup
    /// page registered it; read at startup for whatever the GITHUB_* settings leave out.
    #[arg(long = "app-file", env = "FOREMAN_APP_FILE", default_value = DEFAULT_APP_FILE)]
    pub app_file: PathBuf,
}

/// Options of the long-running service.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub github: GitHubArgs,
    #[command(flatten)]
    pub agents: AgentArgs,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub gc: GcArgs,
    #[command(flatten)]
    pub supervisor: SupervisorArgs,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Address to listen on. Defaults to 127.0.0.1:3000; `PORT` alone sets the port.
    #[arg(long = "listen", env = "FOREMAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Port to listen on when FOREMAN_LISTEN is not set (as set by many hosting platforms).
    #[arg(long = "port", env = "PORT")]
    pub port: Option<u16>,
    /// How often the tick loop runs its periodic work when nothing wakes it earlier.
    #[arg(long = "tick-interval", env = "FOREMAN_TICK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub tick_interval: Duration,
    /// How long the tick lease lasts before another instance may take it over.
    #[arg(long = "tick-lease", env = "FOREMAN_TICK_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub tick_lease: Duration,
    /// How many deliveries (of different repositories) are processed at once.
    #[arg(
        long = "inbox-concurrency",
        env = "FOREMAN_INBOX_CONCURRENCY",
        default_value_t = 8
    )]
    pub inbox_concurrency: usize,
    /// Attempts before a failing delivery is parked as dead.
    #[arg(
        long = "inbox-max-attempts",
        env = "FOREMAN_INBOX_MAX_ATTEMPTS",
        default_value_t = 6
    )]
    pub inbox_max_attempts: u32,
    /// First retry delay of a failing delivery; doubles on each attempt.
    #[arg(long = "inbox-retry-base", env = "FOREMAN_INBOX_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    pub inbox_retry_base: Duration,
    /// How long a delivery claim lasts without renewal; a crashed processor's deliveries are
    /// picked up again after this.
    #[arg(long = "inbox-claim-ttl", env = "FOREMAN_INBOX_CLAIM_TTL", default_value = "30s", value_parser = parse_duration)]
    pub inbox_claim_ttl: Duration,
    /// A name for this instance in leases, claims and the sessions it runs (default: the host
    /// name; set it when several instances share a host).
    #[arg(long = "instance-id", env = "FOREMAN_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// MiB of webhook bodies that may be being read at once (reserved by declared length); a
    /// delivery that finds no room within a second is refused with 503.
    #[arg(
        long = "webhook-buffer",
        env = "FOREMAN_WEBHOOK_BUFFER_MIB",
        default_value_t = 256
    )]
    pub webhook_buffer_mib: usize,
    /// The longest a webhook body may take to arrive (then 408).
    #[arg(long = "webhook-read-timeout", env = "FOREMAN_WEBHOOK_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_read_timeout: Duration,
    /// A bearer token `/metrics` requires (unset: `/metrics` is open).
    #[arg(
        long = "metrics-token",
        env = "FOREMAN_METRICS_TOKEN",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub metrics_token: Option<SecretString>,
}

impl ServeArgs {
    /// The address to bind: `FOREMAN_LISTEN`, else `127.0.0.1:$PORT`, else the default.
    pub fn listen_addr(&self) -> SocketAddr {
        if let Some(addr) = self.listen {
            return addr;
        }
        let mut addr: SocketAddr = DEFAULT_LISTEN.parse().expect("default listen address");
        if let Some(port) = self.port {
            addr.set_port(port);
        }
        addr
    }

    /// This instance's name in leases and claims.
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(default_instance_id)
    }

    /// foreman's own files, which no agent may ever see beyond its own checkout and state:
    /// the SQLite database, the credentials file, the App's key file, the work root.
    pub fn protected_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.setup.app_file.clone(), self.agents.work_root.clone()];
        paths.extend(sqlite_path(self.database.url.expose_secret()));
        paths.extend(self.github.private_key_path.clone());
        paths
            .into_iter()
            .filter_map(|p| std::path::absolute(p).ok())
            .collect()
    }
}

/// The file of a `sqlite://PATH[?…]` URL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

impl GitHubArgs {
    /// The webhook secrets accepted right now (empty when none is configured).
    pub fn webhook_secrets(&self) -> Vec<SecretString> {
        self.webhook_secret
            .as_ref()
            .map(|s| split_secrets(s.expose_secret()))
            .unwrap_or_default()
    }

    /// The App id and key, if both are configured. A key given both ways, an unreadable key
    /// file or a key that is not an RSA PEM is an error.
    pub fn app_credentials(&self) -> Result<Option<AppCredentials>> {
        let pem = match (&self.private_key, &self.private_key_path) {
            (Some(_), Some(_)) => {
                bail!("set only one of GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH")
            }
            (Some(key), None) => Some(SecretString::from(unescape_pem(key.expose_secret()))),
            (None, Some(path)) => Some(SecretString::from(
                std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read GITHUB_PRIVATE_KEY_PATH {}", path.display())
                })?,
            )),
            (None, None) => None,
        };
        if let Some(pem) = &pem {
            crate::github::app::check_private_key(pem)?;
        }
        Ok(match (self.app_id, pem) {
            (Some(app_id), Some(private_key_pem)) => Some(AppCredentials {
                app_id,
                private_key_pem,
            }),
            _ => None,
        })
    }

    /// Names of the GitHub App settings that are not set, for a clear startup message.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.app_id.is_none() {
            missing.push("GITHUB_APP_ID");
        }
        if self.private_key.is_none() && self.private_key_path.is_none() {
            missing.push("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH");
        }
        if self.webhook_secrets().is_empty() {
            missing.push("GITHUB_WEBHOOK_SECRET");
        }
        missing
    }
}

/// Splits a comma-separated list of secrets, dropping blanks.
pub fn split_secrets(list: &str) -> Vec<SecretString> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect()
}

/// Environment variables often carry a PEM with literal `\n` escapes; turn them into newlines.
fn unescape_pem(pem: &str) -> String {
    if pem.contains('\n') {
        pem.to_owned()
    } else {
        pem.replace("\\n", "\n")
    }
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

/// Parses a size such as `2GiB`, `500MiB`, `1.5G`, `64k` or a number of bytes (units are
/// powers of 1024, with or without the `i`).
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let bad = || format!("`{value}` is not a size like 2GiB, 500MiB or 1048576");
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    Ok((number * (1u64 << shift) as f64) as u64)
}

/// `claude`, `codex` or `command`.
fn parse_agent_kind(text: &str) -> Result<AgentKind, String> {
    AgentKind::parse(text)
        .ok_or_else(|| format!("`{text}` is not an agent: claude, codex or command"))
}

/// Parses a duration such as `90s`, `5m`, `1h 30m` or `250ms`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("`{value}` is not a duration like 90s, 5m or 1h ({e})"))
}

/// The host name: stable across restarts, so a restarted foreman knows which interrupted
/// sessions were its own. Two instances on one host need FOREMAN_INSTANCE_ID.
fn default_instance_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "foreman".to_owned())
}

/// A database URL safe to print: any password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_split_on_commas_and_skip_blanks() {
        let secrets = split_secrets(" one, two ,,three ");
        let exposed: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(exposed, ["one", "two", "three"]);
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert!(parse_bytes("lots").unwrap_err().contains("not a size"));
        assert!(parse_bytes("2 parsecs").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn redacted_urls_hide_passwords() {
        let shown = redact_url("postgres://app:hunter2@db.internal:5432/foreman");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"));
    }

    #[test]
    fn agents_never_get_foremans_secrets() {
        for name in [
            "GITHUB_PRIVATE_KEY",
            "GITHUB_WEBHOOK_SECRET",
            "DATABASE_URL",
            "FOREMAN_X",
        ] {
            assert!(is_foreman_secret(name), "{name}");
        }
        for name in [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "FOREMAN_CODEX_BASE_URL",
        ] {
            assert!(!is_foreman_secret(name), "{name}");
        }
    }

    #[test]
    fn escaped_pem_newlines_are_restored() {
        assert_eq!(unescape_pem("a\\nb"), "a\nb");
        assert_eq!(unescape_pem("a\nb\\n"), "a\nb\\n");
    }
}
