//! Agent adapters: how each agent CLI is started for one turn and how its output reads.
//!
//! foreman runs one process per turn. The first turn starts a conversation; each later turn
//! (a worker's result for the manager, a human's answer, a supervisor's poke) starts the CLI
//! again on the same conversation (`claude --resume ID`, `codex exec resume ID`). Nothing is
//! held in memory between turns, so an idle session costs nothing, and a session interrupted
//! by a restart resumes through the very path every turn takes.
//!
//! An adapter only *describes* a turn ([`Adapter::command`]) and *reads* its output
//! ([`Adapter::parse_line`]); the runtime owns the process (its group, environment, timeout
//! and kill), so every adapter gets the same isolation.

pub mod claude;
pub mod codex;
pub mod command;
pub mod prompts;
pub mod tools;

use std::path::PathBuf;

use secrecy::SecretString;

use crate::model::{AgentKind, Role, SessionId};

/// The MCP server name agents see foreman's tools under (`mcp__foreman__spawn_worker`).
pub const MCP_SERVER_NAME: &str = "foreman";

/// How to reach foreman's tools: the URL and this session's bearer token.
#[derive(Debug, Clone)]
pub struct McpEndpoint {
    pub url: String,
    pub token: SecretString,
}

/// Everything an adapter needs to describe one turn.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub session_id: SessionId,
    pub role: Role,
    /// This turn's message to the agent.
    pub prompt: String,
    /// The conversation to continue (from an earlier turn's [`AgentEvent::Conversation`]).
    pub resume: Option<String>,
    /// Where the agent works (its checkout).
    pub workdir: PathBuf,
    /// A private directory for the agent's own state and config files.
    pub state_dir: PathBuf,
    pub mcp: McpEndpoint,
    /// The MCP tools this session's role may call.
    pub tools: Vec<&'static str>,
    /// The program to run (`claude`, `codex`, or the command's path).
    pub program: String,
    pub model: Option<String>,
    pub extra_args: Vec<String>,
    /// The most this turn may cost, in dollars: what is left of the objective's cost budget
    /// (`None`: no cost budget). Passed to CLIs that can cap a run's spend.
    pub max_cost_usd: Option<f64>,
}

/// A process to run for one turn.
#[derive(Debug, Clone, Default)]
pub struct TurnCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Variables added to the agent's minimal environment. Values may be secrets of the
    /// session (its MCP token), never foreman's own.
    pub env: Vec<(String, SecretString)>,
    /// Files to write (under the state directory) before starting, e.g. a config file.
    pub files: Vec<(PathBuf, String)>,
    /// Text piped to the process's standard input (for prompts too long for argv).
    pub stdin: Option<String>,
}

/// What an agent's output says, one event at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The conversation id to resume later turns with.
    Conversation(String),
    /// Text the agent wrote.
    Output(String),
    /// The agent called a tool.
    ToolCall(String),
    /// Tokens and cost, as far as the agent reports them (cumulative for the turn).
    Usage {
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: Option<f64>,
    },
    /// foreman's MCP server could not be reached or refused the token: a failed start.
    McpUnavailable(String),
    /// The turn is over. `result` is the agent's final message, if it gave one.
    TurnEnded {
        result: Option<String>,
        is_error: bool,
    },
}

/// Per-turn state an adapter keeps while reading output.
#[derive(Debug, Default)]
pub struct ParseState {
    /// The last text the agent wrote, for a worker that reports no result.
    pub last_output: Option<String>,
}

/// One kind of agent CLI.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> AgentKind;
    /// The process that runs this turn.
    fn command(&self, turn: &TurnRequest) -> anyhow::Result<TurnCommand>;
    /// Reads one line of the process's standard output.
    fn parse_line(&self, line: &str, state: &mut ParseState) -> Vec<AgentEvent>;
    /// Reads one line of its standard error, for the few things some CLIs say only there.
    fn parse_stderr(&self, _line: &str) -> Option<AgentEvent> {
        None
    }
}

/// The adapter for a kind of agent.
pub fn adapter(kind: AgentKind) -> &'static dyn Adapter {
    match kind {
        AgentKind::Command => &command::CommandAdapter,
        AgentKind::Claude => &claude::ClaudeAdapter,
        AgentKind::Codex => &codex::CodexAdapter,
    }
}
