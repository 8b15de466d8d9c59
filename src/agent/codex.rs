//! The Codex adapter: `codex exec --json`, one process per turn, output read from its JSONL
//! events.
//!
//! What one turn runs (checked against Codex CLI 0.171.0):
//!
//! ```text
//! CODEX_HOME=STATE/codex-home codex exec --json --skip-git-repo-check [--model M] EXTRA_ARGS… -
//! CODEX_HOME=STATE/codex-home codex exec resume --json --skip-git-repo-check [--model M] EXTRA_ARGS… THREAD_ID -
//! ```
//!
//! - The prompt goes to **standard input** ([`TurnCommand::stdin`]; the trailing `-` says
//!   so), for the same reasons as Claude Code's: argv is visible in `ps` and capped at
//!   128 KiB per argument.
//! - `exec resume` takes no `--sandbox` flag, so everything that must hold on every turn is
//!   in `CODEX_HOME/config.toml`, which foreman writes before each turn (and makes read-only
//!   in the agent's sandbox), and the provider, sandbox mode and approval policy are also
//!   given as `-c` overrides, which beat every config file.
//! - The repository cannot reconfigure the agent: Codex reads a checkout's
//!   `.codex/config.toml` only for a project marked trusted in `CODEX_HOME/config.toml`, and
//!   foreman never marks one (an explicit `untrusted` would also drop `AGENTS.md`, which
//!   users expect their agents to read); it never takes a model provider from a project
//!   (checked against 0.171.0). `CODEX_HOME` is the
//!   session's own directory: its threads (which `resume` reads) are kept apart from other
//!   sessions and from the host user's `~/.codex`.
//! - config.toml (every key verified with `codex exec --strict-config`):
//!   - `approval_policy = "never"`: nobody is there to approve anything.
//!   - `sandbox_mode`: `read-only` for a manager, `workspace-write` for workers and
//!     follow-ups (they edit files in the checkout; their commands get no network).
//!   - `[mcp_servers.foreman]` with `url`, `bearer_token_env_var = "FOREMAN_MCP_TOKEN"` (the
//!     token is in the environment only), `enabled_tools` = the role's tools,
//!     `default_tools_approval_mode = "approve"` (without it a call fails with "MCP tool call
//!     requires approval, but approval policy is never"), and `required = true`: a server
//!     that does not start, or refuses the token, makes Codex exit 1 before the model is
//!     called, instead of carrying on without foreman's tools (see [`stderr_event`]).
//!   - `[analytics] enabled = false`, `[features] plugins = false`: no other traffic.
//!   - `model_provider = "foreman"`, a Responses-API provider whose key is
//!     `OPENAI_API_KEY` and whose `base_url` is `FOREMAN_CODEX_BASE_URL` when foreman's
//!     environment sets it, else OpenAI's. Codex ignores `OPENAI_BASE_URL`, and its built-in
//!     OpenAI provider does not send `OPENAI_API_KEY` (it wants a login stored in
//!     `CODEX_HOME`, or `CODEX_API_KEY`), so the provider is always configured.
//!
//! Reading the events: `thread.started` carries the thread id (the same one on resume);
//! `item.completed` items are the agent's messages (`agent_message`), MCP calls
//! (`mcp_tool_call`, server and tool apart) and its own tools (`command_execution`,
//! `file_change`, …); `turn.completed` carries the turn's tokens; `turn.failed` ends a turn
//! that failed. Top-level `error` events are not the end: Codex prints one per retry
//! ("Reconnecting... 2/5") before it either recovers or fails the turn. An `error` *item* is
//! a warning (for example unknown model metadata).

use std::fmt::Write as _;

use anyhow::Result;
use secrecy::SecretString;
use serde_json::Value;

use super::{Adapter, AgentEvent, MCP_SERVER_NAME, ParseState, TurnCommand, TurnRequest};
use crate::model::{AgentKind, Role};

/// The variable Codex reads foreman's MCP token from (`bearer_token_env_var`).
pub const MCP_TOKEN_ENV: &str = "FOREMAN_MCP_TOKEN";
/// Set in foreman's environment: the Responses API base URL agents' Codex talks to.
pub const BASE_URL_ENV: &str = "FOREMAN_CODEX_BASE_URL";
/// Where the model provider lives unless [`BASE_URL_ENV`] says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The variable holding the model provider's API key.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";
/// The name of the model provider foreman configures.
const PROVIDER: &str = "foreman";
/// Codex's home (config, threads), in the session's state directory.
const HOME_DIR: &str = "codex-home";
/// What Codex prints on standard error when a `required` MCP server failed to start.
const REQUIRED_MCP_FAILED: &str = "required MCP servers failed to initialize";

/// Runs `codex exec` for each turn.
pub struct CodexAdapter;

/// The sandbox a role's commands run in.
pub fn sandbox_mode(role: Role) -> &'static str {
    match role {
        Role::Manager => "read-only",
        Role::Worker | Role::Followup => "workspace-write",
    }
}

/// A TOML basic string: quoted, with quotes, backslashes and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `config.toml` for one turn. `base_url` is the model provider's, if not OpenAI's.
/// It holds no secret: the MCP token and the API key are named, not written.
pub fn config_toml(turn: &TurnRequest, base_url: Option<&str>) -> String {
    let tools: Vec<String> = turn.tools.iter().map(|t| toml_string(t)).collect();
    let q = toml_string;
    format!(
        "# Written by foreman for this session's turn; rewritten before every turn.\n\
         approval_policy = \"never\"\n\
         sandbox_mode = {sandbox}\n\
         model_provider = {provider}\n\
         \n\
         [model_providers.{PROVIDER}]\n\
         name = {provider}\n\
         base_url = {base_url}\n\
         wire_api = \"responses\"\n\
         env_key = {API_KEY_ENV:?}\n\
         \n\
         [mcp_servers.{MCP_SERVER_NAME}]\n\
         url = {url}\n\
         bearer_token_env_var = {MCP_TOKEN_ENV:?}\n\
         enabled_tools = [{tools}]\n\
         default_tools_approval_mode = \"approve\"\n\
         required = true\n\
         \n\
         [analytics]\n\
         enabled = false\n\
         \n\
         [features]\n\
         plugins = false\n",
        sandbox = q(sandbox_mode(turn.role)),
        provider = q(PROVIDER),
        base_url = q(base_url.unwrap_or(DEFAULT_BASE_URL)),
        url = q(&turn.mcp.url),
        tools = tools.join(", "),
    )
}

/// Reads one line of Codex's standard error: a `required` MCP server that failed to start
/// (unreachable, or the token refused) is reported only there, just before Codex exits 1.
fn stderr_event(line: &str) -> Option<AgentEvent> {
    let at = line.find(REQUIRED_MCP_FAILED)?;
    Some(AgentEvent::McpUnavailable(
        line[at..].chars().take(300).collect(),
    ))
}

impl Adapter for CodexAdapter {
    fn kind(&self) -> AgentKind {
        AgentKind::Codex
    }

    fn parse_stderr(&self, line: &str) -> Option<AgentEvent> {
        stderr_event(line)
    }

    fn command(&self, turn: &TurnRequest) -> Result<TurnCommand> {
        let home = turn.state_dir.join(HOME_DIR);
        let base_url = std::env::var(BASE_URL_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        let mut args: Vec<String> = vec!["exec".into()];
        if turn.resume.is_some() {
            args.push("resume".into());
        }
        args.extend(["--json".into(), "--skip-git-repo-check".into()]);
        // Command-line settings win over every config file, a repository's included.
        for setting in [
            format!("model_provider={}", toml_string(PROVIDER)),
            format!("sandbox_mode={}", toml_string(sandbox_mode(turn.role))),
            "approval_policy=\"never\"".to_owned(),
        ] {
            args.extend(["-c".into(), setting]);
        }
        if let Some(model) = &turn.model {
            args.extend(["--model".into(), model.clone()]);
        }
        args.extend(turn.extra_args.iter().cloned());
        if let Some(thread) = &turn.resume {
            args.push(thread.clone());
        }
        args.push("-".into());
        let env = vec![
            (MCP_TOKEN_ENV.to_owned(), turn.mcp.token.clone()),
            (
                "CODEX_HOME".to_owned(),
                SecretString::from(home.display().to_string()),
            ),
        ];
        Ok(TurnCommand {
            program: turn.program.clone(),
            args,
            env,
            files: vec![(
                home.join("config.toml"),
                config_toml(turn, base_url.as_deref()),
            )],
            stdin: Some(turn.prompt.clone()),
        })
    }

    fn parse_line(&self, line: &str, state: &mut ParseState) -> Vec<AgentEvent> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            if line.starts_with('{') {
                return Vec::new();
            }
            return vec![AgentEvent::Output(line.to_owned())];
        };
        match event["type"].as_str() {
            Some("thread.started") => event["thread_id"]
                .as_str()
                .filter(|id| !id.is_empty())
                .map(|id| AgentEvent::Conversation(id.to_owned()))
                .into_iter()
                .collect(),
            Some("item.completed") => parse_item(&event["item"], state),
            Some("turn.completed") => {
                let usage = &event["usage"];
                vec![
                    AgentEvent::Usage {
                        input_tokens: usage["input_tokens"].as_u64().unwrap_or(0),
                        output_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
                        cost_usd: None,
                    },
                    AgentEvent::TurnEnded {
                        result: state.last_output.clone(),
                        is_error: false,
                    },
                ]
            }
            Some("turn.failed") => {
                let message = event["error"]["message"]
                    .as_str()
                    .unwrap_or("the turn failed")
                    .to_owned();
                vec![AgentEvent::TurnEnded {
                    result: Some(message),
                    is_error: true,
                }]
            }
            _ => Vec::new(),
        }
    }
}

fn parse_item(item: &Value, state: &mut ParseState) -> Vec<AgentEvent> {
    match item["type"].as_str() {
        Some("agent_message") => {
            let text = item["text"].as_str().unwrap_or_default().trim();
            if text.is_empty() {
                return Vec::new();
            }
            state.last_output = Some(text.to_owned());
            vec![AgentEvent::Output(text.to_owned())]
        }
        Some("mcp_tool_call") => {
            let server = item["server"].as_str().unwrap_or_default();
            let tool = item["tool"].as_str().unwrap_or_default();
            // Named as Claude Code names MCP tools, so both adapters report the same name.
            vec![AgentEvent::ToolCall(format!("mcp__{server}__{tool}"))]
        }
        Some(kind @ ("command_execution" | "file_change" | "web_search")) => {
            vec![AgentEvent::ToolCall(kind.to_owned())]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::McpEndpoint;
    use crate::model::SessionId;
    use secrecy::ExposeSecret;

    const TOKEN: &str = "tok-secret-456";

    fn turn(role: Role, resume: Option<&str>) -> TurnRequest {
        TurnRequest {
            session_id: SessionId(9),
            role,
            prompt: "Fix the bug.".into(),
            resume: resume.map(str::to_owned),
            workdir: "/w".into(),
            state_dir: "/s".into(),
            mcp: McpEndpoint {
                url: "http://127.0.0.1:4000/mcp".into(),
                token: SecretString::from(TOKEN.to_owned()),
            },
            tools: vec!["report_result", "ask_human"],
            program: "codex".into(),
            model: None,
            extra_args: vec![],
            max_cost_usd: None,
        }
    }

    fn env_of(cmd: &TurnCommand) -> Vec<(String, String)> {
        cmd.env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect()
    }

    #[test]
    fn a_first_turn_is_exec_json_with_the_prompt_on_stdin() {
        let cmd = CodexAdapter.command(&turn(Role::Worker, None)).unwrap();
        assert_eq!(cmd.program, "codex");
        assert_eq!(
            cmd.args,
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "-c",
                "model_provider=\"foreman\"",
                "-c",
                "sandbox_mode=\"workspace-write\"",
                "-c",
                "approval_policy=\"never\"",
                "-"
            ]
        );
        assert_eq!(cmd.stdin.as_deref(), Some("Fix the bug."));
        let env = env_of(&cmd);
        assert!(env.contains(&("CODEX_HOME".into(), "/s/codex-home".into())));
        assert!(env.contains(&("FOREMAN_MCP_TOKEN".into(), TOKEN.into())));
        assert_eq!(cmd.files.len(), 1);
        assert_eq!(
            cmd.files[0].0,
            std::path::PathBuf::from("/s/codex-home/config.toml")
        );
    }

    #[test]
    fn a_later_turn_resumes_the_thread() {
        let mut t = turn(Role::Manager, Some("01a21881-b543-7332-853b-f00f8a9bc2d4"));
        t.model = Some("gpt-5-codex".into());
        t.extra_args = vec!["-c".into(), "model_reasoning_effort=\"high\"".into()];
        let cmd = CodexAdapter.command(&t).unwrap();
        assert_eq!(
            cmd.args,
            [
                "exec",
                "resume",
                "--json",
                "--skip-git-repo-check",
                "-c",
                "model_provider=\"foreman\"",
                "-c",
                "sandbox_mode=\"read-only\"",
                "-c",
                "approval_policy=\"never\"",
                "--model",
                "gpt-5-codex",
                "-c",
                "model_reasoning_effort=\"high\"",
                "01a21881-b543-7332-853b-f00f8a9bc2d4",
                "-",
            ]
        );
    }

    #[test]
    fn the_config_names_the_token_variable_and_never_holds_the_token() {
        let cmd = CodexAdapter.command(&turn(Role::Worker, None)).unwrap();
        assert!(!cmd.args.iter().any(|a| a.contains(TOKEN)));
        assert!(!cmd.files.iter().any(|(_, c)| c.contains(TOKEN)));
        let config = config_toml(&turn(Role::Worker, None), None);
        for line in [
            "approval_policy = \"never\"",
            "sandbox_mode = \"workspace-write\"",
            "model_provider = \"foreman\"",
            "[model_providers.foreman]",
            "base_url = \"https://api.openai.com/v1\"",
            "wire_api = \"responses\"",
            "env_key = \"OPENAI_API_KEY\"",
            "[mcp_servers.foreman]",
            "url = \"http://127.0.0.1:4000/mcp\"",
            "bearer_token_env_var = \"FOREMAN_MCP_TOKEN\"",
            "enabled_tools = [\"report_result\", \"ask_human\"]",
            "default_tools_approval_mode = \"approve\"",
            "required = true",
            "[analytics]\nenabled = false",
            "[features]\nplugins = false",
        ] {
            assert!(config.contains(line), "{line:?} missing from\n{config}");
        }
    }

    #[test]
    fn managers_are_read_only_and_a_base_url_is_honoured() {
        let config = config_toml(&turn(Role::Manager, None), Some("http://127.0.0.1:9/v1\"x"));
        assert!(config.contains("sandbox_mode = \"read-only\""));
        assert!(config.contains(r#"base_url = "http://127.0.0.1:9/v1\"x""#));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("l1\nl2\u{7}"), r#""l1\nl2\u0007""#);
    }

    // Lines below were captured from Codex 0.171.0 talking to the test fake model.
    const STARTED: &str =
        r#"{"type":"thread.started","thread_id":"01a21882-0645-7083-bce4-e8b6417cdd0f"}"#;
    const WARNING: &str = r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `gpt-fake` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}"#;
    const TURN_STARTED: &str = r#"{"type":"turn.started"}"#;
    const MCP_STARTED: &str = r#"{"type":"item.started","item":{"id":"item_1","type":"mcp_tool_call","server":"foreman","tool":"report_result","arguments":{"summary":"did it"},"result":null,"error":null,"status":"in_progress"}}"#;
    const MCP_DONE: &str = r#"{"type":"item.completed","item":{"id":"item_1","type":"mcp_tool_call","server":"foreman","tool":"report_result","arguments":{"summary":"did it"},"result":{"content":[{"type":"text","text":"recorded report_result"}],"structured_content":null},"error":null,"status":"completed"}}"#;
    const MESSAGE: &str = r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"All done."}}"#;
    const COMPLETED: &str = r#"{"type":"turn.completed","usage":{"input_tokens":21796,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":7,"reasoning_output_tokens":0}}"#;
    const COMMAND: &str = r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'echo hi > made-by-agent.txt'","aggregated_output":"","exit_code":0,"status":"completed"}}"#;
    const RETRY: &str = r#"{"type":"error","message":"Reconnecting... 1/5 (unexpected status 404 Not Found: not found, url: http://127.0.0.1:37943/nope/v1/responses)"}"#;
    const FAILED: &str = r#"{"type":"turn.failed","error":{"message":"unexpected status 404 Not Found: not found, url: http://127.0.0.1:37943/nope/v1/responses"}}"#;

    fn parse_all(lines: &[&str]) -> (Vec<AgentEvent>, ParseState) {
        let mut state = ParseState::default();
        let events = lines
            .iter()
            .flat_map(|l| CodexAdapter.parse_line(l, &mut state))
            .collect();
        (events, state)
    }

    #[test]
    fn a_real_turn_reads_as_conversation_tool_call_output_usage_and_end() {
        let (events, state) = parse_all(&[
            STARTED,
            WARNING,
            TURN_STARTED,
            MCP_STARTED,
            MCP_DONE,
            COMMAND,
            MESSAGE,
            COMPLETED,
        ]);
        assert_eq!(
            events,
            [
                AgentEvent::Conversation("01a21882-0645-7083-bce4-e8b6417cdd0f".into()),
                AgentEvent::ToolCall("mcp__foreman__report_result".into()),
                AgentEvent::ToolCall("command_execution".into()),
                AgentEvent::Output("All done.".into()),
                AgentEvent::Usage {
                    input_tokens: 21796,
                    output_tokens: 7,
                    cost_usd: None,
                },
                AgentEvent::TurnEnded {
                    result: Some("All done.".into()),
                    is_error: false,
                },
            ]
        );
        assert_eq!(state.last_output.as_deref(), Some("All done."));
    }

    #[test]
    fn retries_are_not_the_end_but_a_failed_turn_is() {
        let (events, _) = parse_all(&[STARTED, TURN_STARTED, RETRY, RETRY, FAILED]);
        assert_eq!(
            events,
            [
                AgentEvent::Conversation("01a21882-0645-7083-bce4-e8b6417cdd0f".into()),
                AgentEvent::TurnEnded {
                    result: Some(
                        "unexpected status 404 Not Found: not found, url: \
                         http://127.0.0.1:37943/nope/v1/responses"
                            .into()
                    ),
                    is_error: true,
                },
            ]
        );
    }

    #[test]
    fn a_required_server_that_failed_is_seen_on_stderr() {
        // Captured (shortened) from Codex 0.171.0 with a refused token.
        let line = "Error: thread/start: thread/start failed: error creating thread: Fatal \
                    error: Failed to initialize session: required MCP servers failed to \
                    initialize: foreman: handshaking with MCP server failed: unexpected server \
                    response: HTTP 401: bad token, when send initialize request (code -32603)";
        let Some(AgentEvent::McpUnavailable(reason)) = stderr_event(line) else {
            panic!("not recognised");
        };
        assert!(reason.starts_with("required MCP servers failed to initialize: foreman"));
        assert_eq!(
            stderr_event("WARNING: proceeding, even though we could not create PATH aliases"),
            None
        );
    }

    #[test]
    fn garbage_and_unknown_events_never_panic() {
        let (events, _) = parse_all(&[
            "",
            "{",
            "[]",
            "7",
            r#"{"type":"thread.started"}"#,
            r#"{"type":"item.completed"}"#,
            r#"{"type":"item.completed","item":{"type":"agent_message","text":null}}"#,
            r#"{"type":"item.completed","item":{"type":"mcp_tool_call"}}"#,
            r#"{"type":"item.completed","item":{"type":"reasoning","text":"hmm"}}"#,
            r#"{"type":"turn.completed"}"#,
            r#"{"type":"turn.failed"}"#,
            r#"{"type":"something.new","x":1}"#,
        ]);
        assert!(events.contains(&AgentEvent::TurnEnded {
            result: Some("the turn failed".into()),
            is_error: true
        }));
        let (events, _) = parse_all(&["plain text"]);
        assert_eq!(events, [AgentEvent::Output("plain text".into())]);
    }
}
