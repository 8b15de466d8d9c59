//! The `command` adapter: any program can be an agent. It gets the turn's prompt in a file
//! (`FOREMAN_PROMPT_FILE`), foreman's MCP endpoint and its session token in the environment,
//! and every line it prints is output; its last line is its result unless it reports one
//! through the `report_result` tool. A line `FOREMAN_USAGE <input tokens> <output tokens>
//! <cost in dollars>` reports what the turn has used so far, as the real CLIs do (and, like
//! theirs, a turn whose cost crosses what is left of the budget is stopped); the most it may
//! spend is in `FOREMAN_MAX_COST_USD` when the objective has a cost budget. This is what tests
//! and people with their own agents use.

use anyhow::Result;
use secrecy::SecretString;

use super::{Adapter, AgentEvent, ParseState, TurnCommand, TurnRequest};
use crate::model::AgentKind;

/// Runs a configured program for each turn.
pub struct CommandAdapter;

impl Adapter for CommandAdapter {
    fn kind(&self) -> AgentKind {
        AgentKind::Command
    }

    fn command(&self, turn: &TurnRequest) -> Result<TurnCommand> {
        let prompt_file = turn.state_dir.join("prompt.md");
        let plain = |v: String| SecretString::from(v);
        let mut env = vec![
            (
                "FOREMAN_PROMPT_FILE".to_owned(),
                plain(prompt_file.display().to_string()),
            ),
            ("FOREMAN_MCP_URL".to_owned(), plain(turn.mcp.url.clone())),
            ("FOREMAN_MCP_TOKEN".to_owned(), turn.mcp.token.clone()),
            (
                "FOREMAN_SESSION_ID".to_owned(),
                plain(turn.session_id.to_string()),
            ),
            (
                "FOREMAN_ROLE".to_owned(),
                plain(turn.role.as_str().to_owned()),
            ),
            ("FOREMAN_TOOLS".to_owned(), plain(turn.tools.join(","))),
        ];
        if turn.resume.is_some() {
            env.push(("FOREMAN_RESUME".to_owned(), plain("1".to_owned())));
        }
        if let Some(model) = &turn.model {
            env.push(("FOREMAN_MODEL".to_owned(), plain(model.clone())));
        }
        if let Some(cap) = turn.max_cost_usd {
            env.push((
                "FOREMAN_MAX_COST_USD".to_owned(),
                plain(format!("{cap:.2}")),
            ));
        }
        Ok(TurnCommand {
            program: turn.program.clone(),
            args: turn.extra_args.clone(),
            env,
            files: vec![(prompt_file, turn.prompt.clone())],
            stdin: None,
        })
    }

    fn parse_line(&self, line: &str, state: &mut ParseState) -> Vec<AgentEvent> {
        let line = line.trim_end();
        if line.trim().is_empty() {
            return Vec::new();
        }
        if let Some(usage) = line.strip_prefix("FOREMAN_USAGE ") {
            let mut figures = usage.split_whitespace();
            let mut next = || figures.next().and_then(|f| f.parse::<f64>().ok());
            if let (Some(input), Some(output), Some(cost)) = (next(), next(), next()) {
                return vec![AgentEvent::Usage {
                    input_tokens: input as u64,
                    output_tokens: output as u64,
                    cost_usd: Some(cost),
                }];
            }
        }
        state.last_output = Some(line.to_owned());
        vec![AgentEvent::Output(line.to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::McpEndpoint;
    use crate::model::{Role, SessionId};
    use secrecy::ExposeSecret;

    #[test]
    fn the_turn_is_described_in_the_environment_and_a_prompt_file() {
        let turn = TurnRequest {
            session_id: SessionId(7),
            role: Role::Worker,
            prompt: "do it".into(),
            resume: Some("x".into()),
            workdir: "/w".into(),
            state_dir: "/s".into(),
            mcp: McpEndpoint {
                url: "http://127.0.0.1:1/mcp".into(),
                token: SecretString::from("tok".to_owned()),
            },
            tools: vec!["report_result", "note"],
            program: "/bin/agent".into(),
            model: None,
            extra_args: vec!["--fast".into()],
            max_cost_usd: None,
        };
        let cmd = CommandAdapter.command(&turn).unwrap();
        assert_eq!(cmd.program, "/bin/agent");
        assert_eq!(cmd.args, ["--fast"]);
        let env: Vec<(String, String)> = cmd
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect();
        for expected in [
            ("FOREMAN_PROMPT_FILE", "/s/prompt.md"),
            ("FOREMAN_MCP_TOKEN", "tok"),
            ("FOREMAN_SESSION_ID", "7"),
            ("FOREMAN_ROLE", "worker"),
            ("FOREMAN_TOOLS", "report_result,note"),
            ("FOREMAN_RESUME", "1"),
        ] {
            assert!(
                env.contains(&(expected.0.into(), expected.1.into())),
                "{expected:?}"
            );
        }
        assert_eq!(cmd.files, [("/s/prompt.md".into(), "do it".to_owned())]);
    }

    #[test]
    fn lines_are_output_and_the_last_is_remembered() {
        let mut state = ParseState::default();
        assert!(CommandAdapter.parse_line("   ", &mut state).is_empty());
        assert_eq!(
            CommandAdapter.parse_line("built it\n", &mut state),
            [AgentEvent::Output("built it".into())]
        );
        assert_eq!(state.last_output.as_deref(), Some("built it"));
        assert_eq!(
            CommandAdapter.parse_line("FOREMAN_USAGE 1200 300 0.75", &mut state),
            [AgentEvent::Usage {
                input_tokens: 1200,
                output_tokens: 300,
                cost_usd: Some(0.75)
            }]
        );
        assert_eq!(
            state.last_output.as_deref(),
            Some("built it"),
            "usage is not output"
        );
    }
}
