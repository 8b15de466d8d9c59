//! The Claude Code adapter: `claude -p` headless, one process per turn, output read from its
//! `stream-json` events.
//!
//! What one turn runs (checked against Claude Code 2.1.197):
//!
//! ```text
//! claude -p --output-format stream-json --verbose --setting-sources "" --add-dir WORKDIR
//!        --mcp-config STATE/claude-mcp.json --strict-mcp-config
//!        --tools Read,Glob,Grep --allowedTools mcp__foreman__spawn_worker,…,Read,Glob,Grep
//!        --permission-mode acceptEdits [--model M] [--resume SESSION_ID] EXTRA_ARGS…
//! ```
//!
//! - The repository cannot reconfigure the agent: `--setting-sources ""` loads no settings
//!   file at all — not the checkout's `.claude/settings.json` or `settings.local.json`
//!   (whose `env` could point `ANTHROPIC_BASE_URL`, and with it the API key, elsewhere, whose
//!   `model`, hooks and `defaultMode: bypassPermissions` would apply), nor one the agent
//!   wrote into its own config directory. Without project settings Claude Code skips the
//!   repository's `CLAUDE.md`, which users expect their agents to read: `--add-dir WORKDIR`
//!   with `CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD=1` loads it (and `.claude/rules`)
//!   back as instructions, settings still ignored (checked against 2.1.197).
//!
//! - The prompt goes to **standard input** ([`TurnCommand::stdin`]): `-p` with no prompt
//!   argument reads it from there. An argv prompt would be visible in `ps`, and Linux refuses
//!   a single argument over 128 KiB (`E2BIG`), which an issue with long comments reaches.
//! - foreman's MCP server is the only one (`--strict-mcp-config` ignores the user's and the
//!   repository's `.mcp.json`). Its config file holds `Authorization: Bearer
//!   ${FOREMAN_MCP_TOKEN}`; Claude Code expands the variable from its environment when it
//!   connects, so the token is in neither argv nor the file (and Claude Code's MCP log
//!   redacts the header).
//! - `--tools` is the hard limit on built-in tools (a manager cannot run Bash at all, and
//!   the model is not shown tools it may not use: a first request shrinks from about 76 KB to
//!   12 KB); `--allowedTools` pre-approves exactly those plus the role's foreman tools, so
//!   nothing waits for a permission prompt that headless mode cannot show.
//!   `--permission-mode acceptEdits` is the default; `extra_args` come last and can
//!   override it (Claude Code takes the last occurrence of a flag).
//! - `CLAUDE_CONFIG_DIR` is a directory of the session's own (`STATE/claude`): its
//!   transcripts (which `--resume` reads), settings and `.claude.json` are not shared with
//!   other sessions running at the same time, nor with the host user's `~/.claude`. So
//!   Claude Code authenticates with `ANTHROPIC_API_KEY` (or another variable the runtime
//!   passes through, such as `CLAUDE_CODE_OAUTH_TOKEN`), never with a host login.
//!   `--resume` also needs the same working directory every turn (transcripts are kept per
//!   directory), which a session's checkout is.
//! - `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` stops update checks and telemetry;
//!   `ENABLE_TOOL_SEARCH=false` keeps MCP tools in the tool list instead of behind a search.
//!
//! Reading the events: `system`/`init` carries the session id and each MCP server's status;
//! a `foreman` server that is not `connected` (`failed`, `needs-auth`, …) means foreman's
//! tools are missing, yet Claude Code carries on and exits 0, so that is reported as
//! [`AgentEvent::McpUnavailable`]. `assistant` messages carry text and tool calls; the final
//! `result` event carries the answer, `is_error`, tokens and cost.

use anyhow::Result;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{Adapter, AgentEvent, MCP_SERVER_NAME, ParseState, TurnCommand, TurnRequest};
use crate::model::{AgentKind, Role};

/// The variable the MCP config's `Authorization` header is expanded from.
pub const MCP_TOKEN_ENV: &str = "FOREMAN_MCP_TOKEN";
/// The MCP config file, in the session's state directory.
const MCP_CONFIG_FILE: &str = "claude-mcp.json";
/// Claude Code's own config and transcript directory, in the session's state directory.
const CONFIG_DIR: &str = "claude";
/// The permission mode unless `extra_args` say otherwise.
pub const DEFAULT_PERMISSION_MODE: &str = "acceptEdits";
/// Built-in tools a manager may use: it reads the code to plan, and changes nothing itself.
pub const MANAGER_TOOLS: &[&str] = &["Read", "Glob", "Grep"];
/// Built-in tools a worker or follow-up may use: read, edit, and run the project's commands.
pub const WORKER_TOOLS: &[&str] = &["Read", "Edit", "Write", "Bash", "Glob", "Grep"];
/// The `init` status of a usable MCP server.
const CONNECTED: &str = "connected";

/// Runs Claude Code headless for each turn.
pub struct ClaudeAdapter;

/// The built-in Claude Code tools a role may use.
pub fn builtin_tools(role: Role) -> &'static [&'static str] {
    match role {
        Role::Manager => MANAGER_TOOLS,
        Role::Worker | Role::Followup => WORKER_TOOLS,
    }
}

/// Claude Code's name for one of foreman's MCP tools (`mcp__foreman__report_result`).
pub fn mcp_tool_name(tool: &str) -> String {
    format!("mcp__{MCP_SERVER_NAME}__{tool}")
}

/// The `--mcp-config` file: foreman's server, its token left as `${FOREMAN_MCP_TOKEN}`.
fn mcp_config(url: &str) -> String {
    let config = json!({
        "mcpServers": {
            MCP_SERVER_NAME: {
                "type": "http",
                "url": url,
                "headers": { "Authorization": format!("Bearer ${{{MCP_TOKEN_ENV}}}") },
            }
        }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

impl Adapter for ClaudeAdapter {
    fn kind(&self) -> AgentKind {
        AgentKind::Claude
    }

    fn command(&self, turn: &TurnRequest) -> Result<TurnCommand> {
        let config_path = turn.state_dir.join(MCP_CONFIG_FILE);
        let builtins = builtin_tools(turn.role);
        let allowed: Vec<String> = turn
            .tools
            .iter()
            .map(|t| mcp_tool_name(t))
            .chain(builtins.iter().map(|t| (*t).to_owned()))
            .collect();
        let mut args: Vec<String> = vec![
            "-p".into(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
            "--setting-sources".into(),
            String::new(),
            "--add-dir".into(),
            turn.workdir.display().to_string(),
            "--mcp-config".into(),
            config_path.display().to_string(),
            "--strict-mcp-config".into(),
            "--tools".into(),
            builtins.join(","),
            "--allowedTools".into(),
            allowed.join(","),
            "--permission-mode".into(),
            DEFAULT_PERMISSION_MODE.into(),
        ];
        if let Some(model) = &turn.model {
            args.extend(["--model".into(), model.clone()]);
        }
        if let Some(session) = &turn.resume {
            args.extend(["--resume".into(), session.clone()]);
        }
        if let Some(cap) = turn.max_cost_usd {
            // Claude Code stops the run once it has spent this much.
            args.extend(["--max-budget-usd".into(), format!("{:.2}", cap.max(0.01))]);
        }
        args.extend(turn.extra_args.iter().cloned());
        let plain = |v: &str| SecretString::from(v.to_owned());
        let env = vec![
            (MCP_TOKEN_ENV.to_owned(), turn.mcp.token.clone()),
            (
                "CLAUDE_CONFIG_DIR".to_owned(),
                plain(&turn.state_dir.join(CONFIG_DIR).display().to_string()),
            ),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                plain("1"),
            ),
            ("ENABLE_TOOL_SEARCH".to_owned(), plain("false")),
            (
                "CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD".to_owned(),
                plain("1"),
            ),
        ];
        Ok(TurnCommand {
            program: turn.program.clone(),
            args,
            env,
            files: vec![(config_path, mcp_config(&turn.mcp.url))],
            stdin: Some(turn.prompt.clone()),
        })
    }

    fn parse_line(&self, line: &str, state: &mut ParseState) -> Vec<AgentEvent> {
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            return parse_non_json(line, state);
        };
        match event["type"].as_str() {
            Some("system") if event["subtype"] == "init" => parse_init(&event),
            Some("assistant") => parse_assistant(&event, state),
            Some("result") => parse_result(&event, state),
            _ => Vec::new(),
        }
    }
}

/// A line that is not JSON: Claude Code printing plain text (a warning, an error before
/// streaming starts), or a `result` line cut short by the runtime's line limit.
fn parse_non_json(line: &str, state: &mut ParseState) -> Vec<AgentEvent> {
    if line.starts_with(r#"{"type":"result""#) {
        // Truncated, but it still says the turn is over; the answer is the last text seen.
        return vec![AgentEvent::TurnEnded {
            result: state.last_output.clone(),
            is_error: line.contains(r#""is_error":true"#),
        }];
    }
    if line.starts_with('{') {
        return Vec::new();
    }
    vec![AgentEvent::Output(line.to_owned())]
}

fn parse_init(event: &Value) -> Vec<AgentEvent> {
    let mut events = Vec::new();
    if let Some(id) = event["session_id"].as_str().filter(|s| !s.is_empty()) {
        events.push(AgentEvent::Conversation(id.to_owned()));
    }
    let foreman = event["mcp_servers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == MCP_SERVER_NAME);
    match foreman {
        Some(server) => {
            let status = server["status"].as_str().unwrap_or("unknown");
            if status != CONNECTED {
                let mut reason = format!("the {MCP_SERVER_NAME} MCP server's status is {status}");
                if let Some(error) = server["error"].as_str() {
                    reason.push_str(&format!(": {error}"));
                }
                events.push(AgentEvent::McpUnavailable(reason));
            }
        }
        None => events.push(AgentEvent::McpUnavailable(format!(
            "the {MCP_SERVER_NAME} MCP server was not loaded"
        ))),
    }
    events
}

fn parse_assistant(event: &Value, state: &mut ParseState) -> Vec<AgentEvent> {
    let mut events = Vec::new();
    for block in event["message"]["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => {
                let text = block["text"].as_str().unwrap_or_default().trim();
                if !text.is_empty() {
                    state.last_output = Some(text.to_owned());
                    events.push(AgentEvent::Output(text.to_owned()));
                }
            }
            Some("tool_use") => {
                if let Some(name) = block["name"].as_str() {
                    events.push(AgentEvent::ToolCall(name.to_owned()));
                }
            }
            _ => {}
        }
    }
    events
}

fn parse_result(event: &Value, state: &mut ParseState) -> Vec<AgentEvent> {
    let usage = &event["usage"];
    let count = |key: &str| usage[key].as_u64().unwrap_or(0);
    // Anthropic counts cached prompt tokens apart; all of them were processed.
    let input_tokens = count("input_tokens")
        + count("cache_creation_input_tokens")
        + count("cache_read_input_tokens");
    let is_error = event["is_error"].as_bool().unwrap_or(false)
        || event["subtype"]
            .as_str()
            .is_some_and(|s| s.starts_with("error"));
    let result = event["result"]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| state.last_output.clone());
    vec![
        AgentEvent::Usage {
            input_tokens,
            output_tokens: count("output_tokens"),
            cost_usd: event["total_cost_usd"].as_f64(),
        },
        AgentEvent::TurnEnded { result, is_error },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::McpEndpoint;
    use crate::model::SessionId;
    use secrecy::ExposeSecret;

    const TOKEN: &str = "tok-secret-123";

    fn turn(role: Role, resume: Option<&str>) -> TurnRequest {
        TurnRequest {
            session_id: SessionId(3),
            role,
            prompt: "Plan the work.".into(),
            resume: resume.map(str::to_owned),
            workdir: "/w".into(),
            state_dir: "/s".into(),
            mcp: McpEndpoint {
                url: "http://127.0.0.1:4000/mcp".into(),
                token: SecretString::from(TOKEN.to_owned()),
            },
            tools: vec!["spawn_worker", "report_result"],
            program: "claude".into(),
            model: None,
            extra_args: vec![],
            max_cost_usd: None,
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).map(String::as_str)
    }

    #[test]
    fn a_first_manager_turn_is_headless_read_only_and_only_talks_to_foreman() {
        let cmd = ClaudeAdapter.command(&turn(Role::Manager, None)).unwrap();
        assert_eq!(cmd.program, "claude");
        let args = &cmd.args;
        assert_eq!(args[0], "-p");
        assert_eq!(value_after(args, "--output-format"), Some("stream-json"));
        assert!(args.contains(&"--verbose".to_owned()));
        assert!(args.contains(&"--strict-mcp-config".to_owned()));
        assert_eq!(
            value_after(args, "--mcp-config"),
            Some("/s/claude-mcp.json")
        );
        assert_eq!(value_after(args, "--tools"), Some("Read,Glob,Grep"));
        assert_eq!(
            value_after(args, "--allowedTools"),
            Some("mcp__foreman__spawn_worker,mcp__foreman__report_result,Read,Glob,Grep")
        );
        assert_eq!(value_after(args, "--permission-mode"), Some("acceptEdits"));
        // No settings file of the repository's (or the agent's) is read; CLAUDE.md still is.
        assert_eq!(value_after(args, "--setting-sources"), Some(""));
        assert_eq!(value_after(args, "--add-dir"), Some("/w"));
        assert!(cmd.env.iter().any(|(k, v)| {
            k == "CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD" && v.expose_secret() == "1"
        }));
        assert!(!args.iter().any(|a| a == "--resume" || a == "--model"));
        assert!(
            !args.iter().any(|a| a == "--max-budget-usd"),
            "no cost budget, no cap"
        );
        // The prompt is piped, not an argument.
        assert_eq!(cmd.stdin.as_deref(), Some("Plan the work."));
        assert!(!args.iter().any(|a| a.contains("Plan the work")));
    }

    #[test]
    fn workers_may_edit_and_run_commands() {
        let cmd = ClaudeAdapter.command(&turn(Role::Worker, None)).unwrap();
        assert_eq!(
            value_after(&cmd.args, "--tools"),
            Some("Read,Edit,Write,Bash,Glob,Grep")
        );
        let followup = ClaudeAdapter.command(&turn(Role::Followup, None)).unwrap();
        assert_eq!(followup.args, cmd.args);
    }

    #[test]
    fn a_turn_cannot_spend_more_than_the_cost_budget_has_left() {
        let mut t = turn(Role::Worker, None);
        t.max_cost_usd = Some(1.234);
        let cmd = ClaudeAdapter.command(&t).unwrap();
        assert_eq!(value_after(&cmd.args, "--max-budget-usd"), Some("1.23"));
        t.max_cost_usd = Some(0.0);
        let spent = ClaudeAdapter.command(&t).unwrap();
        assert_eq!(
            value_after(&spent.args, "--max-budget-usd"),
            Some("0.01"),
            "Claude Code needs a positive cap"
        );
    }

    #[test]
    fn later_turns_resume_and_model_and_extra_args_are_passed() {
        let mut t = turn(Role::Worker, Some("0f6c-session"));
        t.model = Some("sonnet".into());
        t.extra_args = vec!["--permission-mode".into(), "default".into()];
        let cmd = ClaudeAdapter.command(&t).unwrap();
        assert_eq!(value_after(&cmd.args, "--resume"), Some("0f6c-session"));
        assert_eq!(value_after(&cmd.args, "--model"), Some("sonnet"));
        // Extra arguments come last, so they win over the defaults.
        assert_eq!(
            cmd.args[cmd.args.len() - 2..],
            ["--permission-mode", "default"]
        );
    }

    #[test]
    fn the_token_travels_only_in_the_environment() {
        let cmd = ClaudeAdapter.command(&turn(Role::Manager, None)).unwrap();
        assert!(!cmd.args.iter().any(|a| a.contains(TOKEN)));
        assert!(!cmd.files.iter().any(|(_, content)| content.contains(TOKEN)));
        assert!(!cmd.stdin.as_deref().unwrap_or_default().contains(TOKEN));
        let env: Vec<(String, String)> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect();
        for expected in [
            ("FOREMAN_MCP_TOKEN", TOKEN),
            ("CLAUDE_CONFIG_DIR", "/s/claude"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("ENABLE_TOOL_SEARCH", "false"),
        ] {
            assert!(
                env.contains(&(expected.0.into(), expected.1.into())),
                "{expected:?}"
            );
        }
        let [(path, content)] = &cmd.files[..] else {
            panic!("one file: {:?}", cmd.files)
        };
        assert_eq!(path, &std::path::PathBuf::from("/s/claude-mcp.json"));
        let config: Value = serde_json::from_str(content).unwrap();
        assert_eq!(
            config,
            json!({ "mcpServers": { "foreman": {
                "type": "http",
                "url": "http://127.0.0.1:4000/mcp",
                "headers": { "Authorization": "Bearer ${FOREMAN_MCP_TOKEN}" },
            }}})
        );
    }

    // Lines below were captured from Claude Code 2.1.197 talking to the test fake model
    // (long lists shortened).
    const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/tmp/work","session_id":"e309c311-39a6-4b37-a677-4e11e9f652c0","tools":["Glob","Grep","Read","mcp__foreman__note","mcp__foreman__report_result"],"mcp_servers":[{"name":"foreman","status":"connected"}],"model":"claude-opus-4-8[1m]","permissionMode":"acceptEdits","slash_commands":["clear","compact"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.197","output_style":"default","agents":["claude","Explore"],"skills":[],"plugins":[],"analytics_disabled":true,"product_feedback_disabled":true,"uuid":"4822e757-b0b5-44f2-b0e0-ea289cadc863","memory_paths":{"auto":"/tmp/state/claude/projects/-tmp-work/memory/"},"fast_mode_state":"off"}"#;
    const INIT_FAILED: &str = r#"{"type":"system","subtype":"init","cwd":"/tmp/work","session_id":"f1570b34-aed4-4f64-8de8-414a43d5648f","tools":["Glob","Grep","Read"],"mcp_servers":[{"name":"foreman","status":"failed"}],"model":"claude-opus-4-8[1m]","permissionMode":"acceptEdits","apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.197","uuid":"2af33f36-ebab-473f-ac7b-142de9c2efd7"}"#;
    const TOOL_USE: &str = r#"{"type":"assistant","message":{"content":[{"id":"toolu_fake0002","input":{"summary":"did it"},"name":"mcp__foreman__report_result","type":"tool_use"}],"id":"msg_fake0002","model":"claude-opus-4-8","role":"assistant","stop_reason":null,"stop_sequence":null,"type":"message","usage":{"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"input_tokens":19162,"output_tokens":1},"context_management":null},"parent_tool_use_id":null,"session_id":"e309c311-39a6-4b37-a677-4e11e9f652c0","uuid":"eea25fce-57da-48f9-a260-23aeea1bb3eb","tool_use_meta":[{"id":"toolu_fake0002","display_name":"Report Result","server_display_name":"rmcp"}]}"#;
    const TOOL_RESULT: &str = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_fake0002","type":"tool_result","content":[{"type":"text","text":"recorded report_result"}]}]},"parent_tool_use_id":null,"session_id":"e309c311-39a6-4b37-a677-4e11e9f652c0","uuid":"4aa1f813-25ce-4f7b-8a85-7181532f25ec","timestamp":"2026-11-26T15:37:08.390Z","tool_use_result":[{"type":"text","text":"recorded report_result"}]}"#;
    const TEXT: &str = r#"{"type":"assistant","message":{"content":[{"text":"All done.","type":"text"}],"id":"msg_fake0003","model":"claude-opus-4-8","role":"assistant","stop_reason":null,"stop_sequence":null,"type":"message","usage":{"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"input_tokens":19233,"output_tokens":1},"context_management":null},"parent_tool_use_id":null,"session_id":"e309c311-39a6-4b37-a677-4e11e9f652c0","uuid":"3caab3fb-f601-4768-93f7-ed18722677d3"}"#;
    const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":97,"duration_api_ms":43,"num_turns":2,"result":"All done.","stop_reason":"end_turn","session_id":"e309c311-39a6-4b37-a677-4e11e9f652c0","total_cost_usd":0.19215,"usage":{"input_tokens":38395,"cache_creation_input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard"},"modelUsage":{"claude-opus-4-8[1m]":{"inputTokens":38395,"outputTokens":7,"costUSD":0.19215}},"permission_denials":[],"terminal_reason":"completed","uuid":"48e21bde-bb00-4723-ad16-f80a9d741d26"}"#;
    const RESULT_ERROR: &str = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":404,"duration_ms":77,"duration_api_ms":0,"num_turns":1,"result":"There's an issue with the selected model (claude-opus-4-8[1m]). It may not exist or you may not have access to it. Run --model to pick a different model.","stop_reason":"stop_sequence","session_id":"bebd14e4-d165-460b-9f64-062920b1aa0b","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#;

    fn parse_all(lines: &[&str]) -> (Vec<AgentEvent>, ParseState) {
        let mut state = ParseState::default();
        let events = lines
            .iter()
            .flat_map(|l| ClaudeAdapter.parse_line(l, &mut state))
            .collect();
        (events, state)
    }

    #[test]
    fn a_real_turn_reads_as_conversation_tool_call_output_usage_and_end() {
        let (events, state) = parse_all(&[INIT, TOOL_USE, TOOL_RESULT, TEXT, RESULT]);
        assert_eq!(
            events,
            [
                AgentEvent::Conversation("e309c311-39a6-4b37-a677-4e11e9f652c0".into()),
                AgentEvent::ToolCall("mcp__foreman__report_result".into()),
                AgentEvent::Output("All done.".into()),
                AgentEvent::Usage {
                    input_tokens: 38410,
                    output_tokens: 7,
                    cost_usd: Some(0.19215),
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
    fn a_foreman_server_that_did_not_connect_is_unavailable() {
        let (events, _) = parse_all(&[INIT_FAILED]);
        assert_eq!(
            events,
            [
                AgentEvent::Conversation("f1570b34-aed4-4f64-8de8-414a43d5648f".into()),
                AgentEvent::McpUnavailable("the foreman MCP server's status is failed".into()),
            ]
        );
        let needs_auth = INIT_FAILED.replace(r#""failed""#, r#""needs-auth""#);
        let (events, _) = parse_all(&[&needs_auth]);
        assert!(matches!(&events[1], AgentEvent::McpUnavailable(r) if r.contains("needs-auth")));
        let missing = INIT_FAILED.replace(r#"{"name":"foreman","status":"failed"}"#, "");
        let (events, _) = parse_all(&[&missing]);
        assert!(matches!(&events[1], AgentEvent::McpUnavailable(r) if r.contains("not loaded")));
    }

    #[test]
    fn an_api_error_ends_the_turn_as_an_error() {
        let (events, _) = parse_all(&[RESULT_ERROR]);
        assert!(matches!(
            &events[1],
            AgentEvent::TurnEnded { result: Some(r), is_error: true } if r.contains("issue with the selected model")
        ));
        let max_turns = r#"{"type":"result","subtype":"error_max_turns","is_error":false,"session_id":"x","usage":{}}"#;
        let (events, _) = parse_all(&[TEXT, max_turns]);
        assert_eq!(
            events[2],
            AgentEvent::TurnEnded {
                result: Some("All done.".into()),
                is_error: true
            }
        );
    }

    #[test]
    fn garbage_and_unknown_events_never_panic() {
        let (events, _) = parse_all(&[
            "",
            "   ",
            "{",
            "[1,2]",
            "null",
            "42",
            r#"{"type":"assistant"}"#,
            r#"{"type":"assistant","message":{"content":"text"}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use"},{"type":"text","text":7}]}}"#,
            r#"{"type":"system","subtype":"init"}"#,
            r#"{"type":"system","subtype":"api_retry","attempt":1}"#,
            r#"{"type":"result"}"#,
            r#"{"type":"stream_event","event":{}}"#,
            r#"{"type":"rate_limit_event"}"#,
        ]);
        assert!(events.contains(&AgentEvent::McpUnavailable(
            "the foreman MCP server was not loaded".into()
        )));
        assert!(events.contains(&AgentEvent::TurnEnded {
            result: None,
            is_error: false
        }));
        let (events, _) = parse_all(&["Error: something went wrong"]);
        assert_eq!(
            events,
            [AgentEvent::Output("Error: something went wrong".into())]
        );
    }

    #[test]
    fn a_result_line_cut_short_still_ends_the_turn() {
        let cut = &RESULT[..60];
        let (events, _) = parse_all(&[TEXT, cut]);
        assert_eq!(
            events[1],
            AgentEvent::TurnEnded {
                result: Some("All done.".into()),
                is_error: false
            }
        );
        let cut_error = &RESULT_ERROR[..60];
        let (events, _) = parse_all(&[cut_error]);
        assert!(matches!(
            events[0],
            AgentEvent::TurnEnded { is_error: true, .. }
        ));
    }
}
