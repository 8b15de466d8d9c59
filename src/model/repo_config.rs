//! A repository's `.github/foreman.yml`: what label starts foreman, which agents run, who may
//! start, command and answer, budgets. Read from the default branch only; absent keys take
//! the server's defaults; a mistake is reported with the key and line it is on.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::AgentKind;
use crate::model::Budget;
use crate::model::network::{HostRule, NetworkChoice};

/// The file's path in a repository.
pub const CONFIG_PATH: &str = ".github/foreman.yml";
/// The label that starts foreman when the file does not name another.
pub const DEFAULT_TRIGGER_LABEL: &str = "foreman";

/// A repository role, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::None => "none",
            Permission::Read => "read",
            Permission::Triage => "triage",
            Permission::Write => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }

    /// GitHub's words for roles, old and new.
    pub fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "none" => Permission::None,
            "read" | "pull" => Permission::Read,
            "triage" => Permission::Triage,
            "write" | "push" => Permission::Write,
            "maintain" => Permission::Maintain,
            "admin" => Permission::Admin,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Permission::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a permission (use read, triage, write, maintain or admin)"
            ))
        })
    }
}

/// Which agent CLI a role uses in this repository, and which model. Never its flags: those
/// are the operator's (a repository that could pass `--permission-mode bypassPermissions`, or
/// point Codex's model provider elsewhere, would own the agent and its API key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentChoice {
    /// `claude` or `codex` (a `command` agent is the server's to configure, not a repository's).
    #[serde(default, deserialize_with = "cli_kind")]
    pub agent: Option<AgentKind>,
    #[serde(default, deserialize_with = "model_name")]
    pub model: Option<String>,
    /// Refused when given (see [`refused_args`]); kept so the mistake gets a clear message.
    #[serde(default, skip_serializing, deserialize_with = "refused_args")]
    pub args: NoArgs,
}

/// Where a repository's `args:` would be: agent flags are the operator's, so it holds
/// nothing, and a non-empty `args:` is a config error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoArgs;

/// Workers' agent and how many run at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerChoice {
    #[serde(default, deserialize_with = "cli_kind")]
    pub agent: Option<AgentKind>,
    #[serde(default, deserialize_with = "model_name")]
    pub model: Option<String>,
    #[serde(default, skip_serializing, deserialize_with = "refused_args")]
    pub args: NoArgs,
    pub max_parallel: Option<usize>,
}

impl AgentChoice {
    pub fn new(agent: Option<AgentKind>, model: Option<String>) -> AgentChoice {
        AgentChoice {
            agent,
            model,
            args: NoArgs,
        }
    }
}

impl WorkerChoice {
    /// The agent part, as a manager's is given.
    pub fn agent(&self) -> AgentChoice {
        AgentChoice::new(self.agent, self.model.clone())
    }
}

/// Which models a repository may choose: the operator's `FOREMAN_REPO_MODELS`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ModelPolicy {
    /// Any model name.
    #[default]
    Any,
    /// Only these (none: the server's models only).
    Only(Vec<String>),
}

impl ModelPolicy {
    /// `*` is any model; otherwise a comma-separated list (empty: none).
    pub fn parse(text: &str) -> ModelPolicy {
        let names: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if names.iter().any(|n| n == "*") {
            ModelPolicy::Any
        } else {
            ModelPolicy::Only(names)
        }
    }

    /// Whether the config's models are all allowed; the error names the key.
    pub fn check(&self, config: &RepoConfig) -> Result<(), ConfigError> {
        let ModelPolicy::Only(allowed) = self else {
            return Ok(());
        };
        for (key, model) in [
            ("manager.model", &config.manager.model),
            ("workers.model", &config.workers.model),
        ] {
            if let Some(model) = model
                && !allowed.iter().any(|a| a == model)
            {
                let choices = if allowed.is_empty() {
                    "this server lets repositories choose no model".to_owned()
                } else {
                    format!("this server allows {}", allowed.join(", "))
                };
                return Err(ConfigError {
                    message: format!("{key}: `{model}` is not a model {choices}"),
                    line: None,
                });
            }
        }
        Ok(())
    }
}

/// Budget limits that replace the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetChoice {
    pub sessions: Option<u32>,
    pub turns: Option<u32>,
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "duration_out"
    )]
    pub time: Option<Duration>,
    /// US dollars.
    pub cost: Option<f64>,
}

impl BudgetChoice {
    /// The budget an objective gets: the server's `default` with what the repository asks
    /// for, none of it above the server's `ceiling` (a repository narrows the server's
    /// limits; only the operator widens them).
    pub fn apply(&self, default: &Budget, ceiling: &Budget) -> Budget {
        let cost = self
            .cost
            .map(|usd| (usd * 1e6).round().max(0.0) as u64)
            .or(default.cost_micros);
        Budget {
            sessions: self
                .sessions
                .unwrap_or(default.sessions)
                .min(ceiling.sessions),
            turns: self.turns.unwrap_or(default.turns).min(ceiling.turns),
            wall: self.time.unwrap_or(default.wall).min(ceiling.wall),
            cost_micros: match (cost, ceiling.cost_micros) {
                (Some(c), Some(max)) => Some(c.min(max)),
                (None, Some(max)) => Some(max),
                (c, None) => c,
            },
        }
    }
}

/// How much an objective's agents may post on the issue, per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingLimits {
    pub comments_per_hour: u32,
    pub questions_per_hour: u32,
}

impl Default for PostingLimits {
    fn default() -> Self {
        PostingLimits {
            comments_per_hour: 10,
            questions_per_hour: 5,
        }
    }
}

/// Posting limits a repository asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsChoice {
    pub comments_per_hour: Option<u32>,
    pub questions_per_hour: Option<u32>,
}

impl LimitsChoice {
    /// The limits an objective gets: what the repository asks for, none of it above the
    /// server's (which are also the default).
    pub fn apply(&self, server: &PostingLimits) -> PostingLimits {
        PostingLimits {
            comments_per_hour: self
                .comments_per_hour
                .map_or(server.comments_per_hour, |n| {
                    n.min(server.comments_per_hour)
                }),
            questions_per_hour: self
                .questions_per_hour
                .map_or(server.questions_per_hour, |n| {
                    n.min(server.questions_per_hour)
                }),
        }
    }
}

/// Who may do what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Least permission to start foreman with the label.
    #[serde(default = "write")]
    pub trigger: Permission,
    /// Least permission to use `/foreman` commands and steer with comments.
    #[serde(default = "write")]
    pub command: Permission,
    /// Least permission to answer foreman's questions.
    #[serde(default = "write")]
    pub answer: Permission,
    /// Least permission for a review on a foreman pull request to start a follow-up.
    #[serde(default = "write")]
    pub review: Permission,
    /// People allowed all of the above whatever their permission.
    #[serde(default)]
    pub users: Vec<String>,
    /// Whether the issue's author may answer questions on it.
    #[serde(default)]
    pub issue_author_may_answer: bool,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            trigger: Permission::Write,
            command: Permission::Write,
            answer: Permission::Write,
            review: Permission::Write,
            users: Vec::new(),
            issue_author_may_answer: false,
        }
    }
}

fn write() -> Permission {
    Permission::Write
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    #[serde(default = "default_label")]
    pub trigger_label: String,
    #[serde(default)]
    pub manager: AgentChoice,
    #[serde(default)]
    pub workers: WorkerChoice,
    #[serde(default)]
    pub budget: BudgetChoice,
    #[serde(default)]
    pub permissions: Permissions,
    /// The branch work starts from (default: the repository's default branch).
    pub base_branch: Option<String>,
    /// Whether a human must approve the manager's plan before workers start.
    #[serde(default)]
    pub plan_approval: bool,
    #[serde(default)]
    pub pull_requests: PullRequestChoice,
    /// How much the agents may post on the issue.
    #[serde(default)]
    pub limits: LimitsChoice,
    /// Where the agents may connect, within the operator's policy.
    #[serde(default)]
    pub network: NetworkChoice,
    /// Labels every target its agents run on must have (the operator gives targets labels
    /// such as `gpu` or `big` in the targets file).
    #[serde(default)]
    pub target_labels: Vec<String>,
}

/// How foreman looks after its pull requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequestChoice {
    /// CI follow-ups per pull request before the manager is asked what to do.
    #[serde(default = "three")]
    pub ci_attempts: u32,
    /// How a branch that conflicts with its base is brought up to date.
    #[serde(default)]
    pub update: UpdateStyle,
    /// Open pull requests as drafts, marked ready for review when the manager says the work
    /// is done.
    #[serde(default = "yes")]
    pub draft: bool,
    /// How foreman's commits reach GitHub: pushed with git (authored by the App's bot
    /// account, unsigned), or made through GitHub's API, which signs them — for branches
    /// that require signed commits.
    #[serde(default)]
    pub commits: CommitStyle,
}

impl Default for PullRequestChoice {
    fn default() -> Self {
        PullRequestChoice {
            ci_attempts: three(),
            update: UpdateStyle::Merge,
            draft: true,
            commits: CommitStyle::Git,
        }
    }
}

/// How commits reach GitHub (see [`PullRequestChoice::commits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitStyle {
    #[default]
    Git,
    Api,
}

fn yes() -> bool {
    true
}

fn three() -> u32 {
    3
}

/// Merge the base into the branch, or rebase the branch onto it (which rewrites the
/// published branch: foreman force-pushes it, and records why).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateStyle {
    #[default]
    Merge,
    Rebase,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            trigger_label: default_label(),
            manager: AgentChoice::default(),
            workers: WorkerChoice::default(),
            budget: BudgetChoice::default(),
            permissions: Permissions::default(),
            base_branch: None,
            plan_approval: false,
            pull_requests: PullRequestChoice::default(),
            limits: LimitsChoice::default(),
            network: NetworkChoice::default(),
            target_labels: Vec::new(),
        }
    }
}

fn default_label() -> String {
    DEFAULT_TRIGGER_LABEL.to_owned()
}

/// The largest config file read (a real one is a few hundred bytes).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// Limits for parsing a file foreman does not control: one document, shallow nesting, few
/// nodes, and anchors and aliases bounded, so a YAML bomb (aliases of aliases) is an error,
/// not gigabytes of memory.
fn yaml_limits() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_CONFIG_BYTES),
            max_events: 20_000,
            max_aliases: 64,
            max_anchors: 64,
            max_recorded_anchor_events: 2_000,
            max_recorded_anchor_bytes: MAX_CONFIG_BYTES,
            max_depth: 16,
            max_documents: 1,
            max_nodes: 5_000,
            max_total_scalar_bytes: MAX_CONFIG_BYTES,
        },
        with_snippet: false,
    }
}

/// The parser's message, on one line and without the location it also gives apart.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    let first = match first.find(" at line ") {
        Some(at) => &first[..at],
        None => first,
    };
    first.trim_end_matches('.').to_owned()
}

/// What is wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CONFIG_PATH}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ConfigError {
    pub message: String,
    /// 1-based line of the mistake, when known.
    pub line: Option<usize>,
}

impl RepoConfig {
    /// Parses the file; an empty file is the defaults.
    pub fn parse(text: &str) -> Result<RepoConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(RepoConfig::default());
        }
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError {
                message: format!(
                    "the file is {} bytes; at most {MAX_CONFIG_BYTES} are read",
                    text.len()
                ),
                line: None,
            });
        }
        let config: RepoConfig =
            serde_saphyr::from_str_with_options(text, yaml_limits()).map_err(|e| ConfigError {
                message: yaml_message(&e),
                line: e
                    .location()
                    .map(|l| usize::try_from(l.line()).unwrap_or(usize::MAX))
                    .filter(|l| *l > 0),
            })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let fail = |message: String| {
            Err(ConfigError {
                message,
                line: None,
            })
        };
        if self.trigger_label.trim().is_empty() {
            return fail("trigger_label: must not be empty".to_owned());
        }
        if self.workers.max_parallel == Some(0) {
            return fail("workers.max_parallel: must be at least 1".to_owned());
        }
        for (key, zero) in [
            ("budget.sessions", self.budget.sessions == Some(0)),
            ("budget.turns", self.budget.turns == Some(0)),
            ("budget.time", self.budget.time == Some(Duration::ZERO)),
        ] {
            if zero {
                return fail(format!("{key}: must be more than zero"));
            }
        }
        if self.budget.cost.is_some_and(|c| !c.is_finite() || c <= 0.0) {
            return fail("budget.cost: must be a positive number of dollars".to_owned());
        }
        if let Some(branch) = &self.base_branch
            && (branch.is_empty()
                || branch.contains(['\n', ' ', '~', '^', ':', '\\'])
                || branch.contains(".."))
        {
            return fail(format!("base_branch: `{branch}` is not a branch name"));
        }
        for entry in self.network.allow.iter().flatten() {
            if let Err(e) = HostRule::parse(entry) {
                return fail(format!("network.allow: {e}"));
            }
        }
        Ok(())
    }
}

fn cli_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AgentKind>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None => Ok(None),
        Some("claude") => Ok(Some(AgentKind::Claude)),
        Some("codex") => Ok(Some(AgentKind::Codex)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "`{other}` is not an agent this file can choose (use claude or codex)"
        ))),
    }
}

/// The message a repository's `args:` gets: agent flags are the operator's. An empty list (as
/// copies stored before this rule have) is accepted and means nothing.
fn refused_args<'de, D: Deserializer<'de>>(d: D) -> Result<NoArgs, D::Error> {
    let given = serde_json::Value::deserialize(d)?;
    match given {
        serde_json::Value::Null => Ok(NoArgs),
        serde_json::Value::Array(items) if items.is_empty() => Ok(NoArgs),
        _ => Err(serde::de::Error::custom(
            "`args` is not a repository's to set: agent flags come from the server's operator \
             (FOREMAN_MANAGER_ARGS, FOREMAN_WORKER_ARGS); a repository may choose the agent and \
             its model",
        )),
    }
}

/// Longest model name accepted.
const MAX_MODEL_NAME: usize = 100;

/// A model's name: letters, digits and `._:/@+-`, not starting with `-` (so it can never be
/// taken for a flag).
fn model_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(name) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let ok = !name.is_empty()
        && name.len() <= MAX_MODEL_NAME
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c));
    if ok {
        Ok(Some(name))
    } else {
        Err(serde::de::Error::custom(format!(
            "`{name}` is not a model name"
        )))
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    humantime::parse_duration(&s)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a duration like 90m or 24h")))
}

fn duration_out<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_or_empty_file_is_the_defaults() {
        assert_eq!(RepoConfig::parse("").unwrap(), RepoConfig::default());
        assert_eq!(
            RepoConfig::parse("# nothing\n").unwrap(),
            RepoConfig::default()
        );
        assert_eq!(RepoConfig::default().trigger_label, "foreman");
        assert_eq!(RepoConfig::default().permissions.trigger, Permission::Write);
    }

    #[test]
    fn every_key_reads() {
        let text = "\
trigger_label: ai
manager:
  agent: codex
  model: gpt-5
workers:
  agent: claude
  model: claude-sonnet-4-5
  max_parallel: 2
budget:
  sessions: 5
  turns: 50
  time: 2h
  cost: 12.5
permissions:
  trigger: maintain
  command: write
  answer: triage
  users: [dana]
  issue_author_may_answer: true
base_branch: develop
plan_approval: true
";
        let c = RepoConfig::parse(text).unwrap();
        assert_eq!(c.trigger_label, "ai");
        assert_eq!(c.manager.agent, Some(AgentKind::Codex));
        assert_eq!(
            c.workers.agent().model.as_deref(),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(c.workers.max_parallel, Some(2));
        assert_eq!(c.budget.time, Some(Duration::from_secs(7200)));
        assert_eq!(c.permissions.answer, Permission::Triage);
        assert!(c.permissions.issue_author_may_answer && c.plan_approval);
        assert_eq!(c.base_branch.as_deref(), Some("develop"));
        // It survives the round trip through the objective's stored copy, defaults too.
        for config in [c, RepoConfig::default()] {
            let stored = serde_json::to_string(&config).unwrap();
            assert_eq!(serde_json::from_str::<RepoConfig>(&stored).unwrap(), config);
        }
    }

    #[test]
    fn mistakes_name_the_key_and_line() {
        let e = RepoConfig::parse("trigger_label: x\nbudgit:\n  turns: 3\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("unknown field `budgit`"), "{e}");
        assert_eq!(
            e.to_string().split(':').next().unwrap(),
            ".github/foreman.yml line 2"
        );
        let e = RepoConfig::parse("permissions:\n  trigger: writer\n").unwrap_err();
        assert!(e.message.contains("`writer` is not a permission"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = RepoConfig::parse("manager:\n  agent: command\n").unwrap_err();
        assert!(
            e.message.contains("not an agent this file can choose"),
            "{e}"
        );
        let e = RepoConfig::parse("budget:\n  time: forever\n").unwrap_err();
        assert!(e.message.contains("not a duration"), "{e}");
        let e = RepoConfig::parse("workers:\n  agent: claude\n  colour: red\n").unwrap_err();
        assert!(
            e.message.contains("unknown field `colour`") && e.line == Some(3),
            "{e}"
        );
        let e = RepoConfig::parse("workers:\n  max_parallel: 0\n").unwrap_err();
        assert!(e.message.contains("workers.max_parallel"), "{e}");
        assert!(RepoConfig::parse("[not, a, map]").is_err());
        assert!(RepoConfig::parse("base_branch: '../x'").is_err());
        let e = RepoConfig::parse("budget:\n  cost: .inf\n").unwrap_err();
        assert!(e.message.contains("budget.cost"), "{e}");
    }

    #[test]
    fn posting_limits_are_narrowed_by_the_repository_never_widened() {
        let server = PostingLimits {
            comments_per_hour: 10,
            questions_per_hour: 5,
        };
        let asked =
            RepoConfig::parse("limits:\n  comments_per_hour: 1000\n  questions_per_hour: 0\n")
                .unwrap()
                .limits;
        assert_eq!(
            asked.apply(&server),
            PostingLimits {
                comments_per_hour: 10,
                questions_per_hour: 0
            }
        );
        assert_eq!(LimitsChoice::default().apply(&server), server);
        assert!(RepoConfig::parse("limits:\n  comments: 3\n").is_err());
        assert!(RepoConfig::parse("limits:\n  comments_per_hour: -1\n").is_err());
    }

    #[test]
    fn a_repository_narrows_the_servers_budget_and_never_widens_it() {
        let default = Budget {
            sessions: 20,
            turns: 200,
            wall: Duration::from_secs(3600),
            cost_micros: None,
        };
        let ceiling = Budget {
            sessions: 40,
            cost_micros: Some(50_000_000),
            ..default
        };
        let asked = RepoConfig::parse(
            "budget:\n  sessions: 1000000\n  turns: 5\n  time: 100h\n  cost: 900\n",
        )
        .unwrap()
        .budget;
        assert_eq!(
            asked.apply(&default, &ceiling),
            Budget {
                sessions: 40,
                turns: 5,
                wall: Duration::from_secs(3600),
                cost_micros: Some(50_000_000),
            }
        );
        // Silent on cost: the ceiling still bounds it.
        let none = BudgetChoice::default();
        assert_eq!(none.apply(&default, &ceiling).cost_micros, Some(50_000_000));
        assert_eq!(none.apply(&default, &default), default);
        for zero in [
            "budget:\n  sessions: 0\n",
            "budget:\n  time: 0s\n",
            "budget:\n  turns: -1\n",
        ] {
            assert!(RepoConfig::parse(zero).is_err(), "{zero}");
        }
    }

    #[test]
    fn a_yaml_bomb_is_a_config_error_not_a_memory_spike() {
        // Aliases past the limit (each would replay its anchor's events).
        let aliases = vec!["*a"; 100].join(", ");
        let text = format!("trigger_label: &a lol\npermissions:\n  users: [{aliases}]\n");
        let e = RepoConfig::parse(&text).unwrap_err();
        assert!(e.message.contains("alias"), "{e}");
        // The classic nested bomb, where any value is read (`args`, read whole before it is
        // refused): each level ten aliases of the one before.
        let mut bomb = String::from("manager:\n  args:\n    l0: &l0 [lol, lol, lol, lol, lol]\n");
        for level in 1..10 {
            let refs = vec![format!("*l{}", level - 1); 10].join(", ");
            bomb.push_str(&format!("    l{level}: &l{level} [{refs}]\n"));
        }
        let e = RepoConfig::parse(&bomb).unwrap_err();
        assert!(
            e.message.contains("budget breached"),
            "the bomb went off: {e}"
        );
        // Too deep.
        let deep = format!("manager:\n  args: {}{}\n", "[".repeat(40), "]".repeat(40));
        let e = RepoConfig::parse(&deep).unwrap_err();
        assert!(e.message.contains("Depth"), "read to any depth: {e}");
        let big = format!("trigger_label: {}\n", "x".repeat(MAX_CONFIG_BYTES));
        let e = RepoConfig::parse(&big).unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
    }

    #[test]
    fn agent_flags_are_refused_and_models_are_names_within_the_servers_list() {
        for text in [
            "manager:\n  args: [--permission-mode, bypassPermissions]\n",
            "workers:\n  args: ['-c', 'model_providers.x.base_url=https://evil']\n",
        ] {
            let e = RepoConfig::parse(text).unwrap_err();
            assert!(
                e.message.contains("`args` is not a repository's to set"),
                "{e}"
            );
            assert_eq!(e.line, Some(2), "{e}");
        }
        let e =
            RepoConfig::parse("manager:\n  model: --dangerously-skip-permissions\n").unwrap_err();
        assert!(e.message.contains("is not a model name"), "{e}");
        let config =
            RepoConfig::parse("manager:\n  model: opus\nworkers:\n  model: gpt-5\n").unwrap();
        assert!(ModelPolicy::parse("*").check(&config).is_ok());
        assert!(ModelPolicy::parse("opus, gpt-5").check(&config).is_ok());
        let e = ModelPolicy::parse("opus").check(&config).unwrap_err();
        assert!(e.message.starts_with("workers.model: `gpt-5`"), "{e}");
        let e = ModelPolicy::parse("").check(&config).unwrap_err();
        assert!(e.message.contains("no model"), "{e}");
        assert!(ModelPolicy::parse("").check(&RepoConfig::default()).is_ok());
        // A copy stored before the rule (with `args: []`) still reads.
        let stored = r#"{"agent":"claude","model":null,"args":[]}"#;
        assert_eq!(
            serde_json::from_str::<AgentChoice>(stored).unwrap(),
            AgentChoice::new(Some(AgentKind::Claude), None)
        );
    }
}
