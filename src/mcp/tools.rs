//! The tool catalogue and the handler that runs tool calls.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::agent::tools::{TOOLS, ToolSpec};
use crate::engine::objective::Objectives;
use crate::engine::objective::publish::{PublishRequest, publish};
use crate::engine::objective::{Refused, requests};
use crate::model::text::one_line;
use crate::model::{Role, Session, SessionId};
use crate::store::AuditEntry;
use secrecy::ExposeSecret;

/// Longest title of a worker.
pub const MAX_TITLE: usize = 200;
/// Longest instructions, messages, questions, results and summaries.
pub const MAX_TEXT: usize = 20_000;
/// Longest issue comment (GitHub allows 65,536 characters; the marker needs a little).
pub const MAX_COMMENT: usize = 60_000;
/// Longest progress note.
pub const MAX_NOTE: usize = 2_000;

impl ToolSpec {
    /// The tool as MCP describes it: a JSON Schema object whose `required` is always an
    /// array (some clients reject a missing or null one).
    pub fn to_tool(&self) -> Tool {
        let mut properties = serde_json::Map::new();
        for (name, kind, description, _) in self.params {
            let mut schema = json!({ "type": kind, "description": description });
            if *kind == "array" {
                schema["items"] = json!({ "type": "integer" });
            }
            properties.insert((*name).to_owned(), schema);
        }
        let required: Vec<&str> = self.params.iter().filter(|p| p.3).map(|p| p.0).collect();
        let schema = json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        let Value::Object(schema) = schema else {
            unreachable!("built as an object")
        };
        Tool::new(self.name, self.description, Arc::new(schema))
    }
}

/// The MCP server handler: one per MCP session, all sharing the objective services.
#[derive(Clone)]
pub struct ForemanTools {
    objectives: Arc<Objectives>,
}

impl ForemanTools {
    pub fn new(objectives: Arc<Objectives>) -> Self {
        ForemanTools { objectives }
    }
}

/// The authenticated caller of a request.
fn caller(context: &RequestContext<RoleServer>) -> Result<Session, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .map(|c| c.0.clone())
        .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))
}

impl rmcp::ServerHandler for ForemanTools {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("foreman", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "foreman's tools for the agents it runs. Each session sees the tools of its role.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let role = caller(&context)?.role;
        let tools = TOOLS
            .iter()
            .filter(|t| t.roles.contains(&role))
            .map(ToolSpec::to_tool)
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        let args = Value::Object(request.arguments.unwrap_or_default());
        let name = request.name.as_ref();
        let result = match TOOLS.iter().find(|t| t.name == name) {
            None => Err(format!("there is no tool `{name}`")),
            Some(spec) if !spec.roles.contains(&caller.role) => Err(format!(
                "`{name}` is not a tool of a {}; yours are: {}",
                caller.role.as_str(),
                crate::agent::tools::tools_of(caller.role).join(", ")
            )),
            Some(_) => {
                let args = self.scrubbed(&caller, name, args).await;
                self.call(&caller, name, args).await
            }
        };
        match &result {
            Ok(_) => tracing::info!(session = %caller.id, tool = name, ok = true, "tool call"),
            // What the agent is told (its own input is not repeated here).
            Err(error) => {
                tracing::info!(session = %caller.id, tool = name, ok = false, error = %one_line(error, 300), "tool call")
            }
        }
        let result = match result {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }
}

/// Scrubs every string inside `value`, collecting what kinds were redacted.
fn scrub_value(value: &mut Value, known: &[&str], kinds: &mut Vec<&'static str>) {
    match value {
        Value::String(text) => {
            let (clean, found) = crate::model::secrets::scrub(text, known);
            if !found.is_empty() {
                *text = clean;
                kinds.extend(found);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, known, kinds)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_value(v, known, kinds)),
        _ => {}
    }
}

/// What an agent is told when its tool call failed. A refusal ([`Refused`]: a rule of the
/// objective said no) and a failure of the work itself (git's verdict on a checkout, say) are
/// told as they are: the agent can act on them. A failure of foreman's own machinery — the
/// database, the GitHub API, the file system — is logged with a reference, and the agent hears
/// only that it happened: its details are no business of an agent's and may name internals.
fn explain(caller: &Session, tool: &str, e: anyhow::Error) -> String {
    if let Some(refused) = e.downcast_ref::<Refused>() {
        return refused.0.clone();
    }
    let internal = e.chain().any(|cause| {
        cause.is::<sqlx::Error>()
            || cause.is::<octocrab::Error>()
            || cause.is::<crate::github::rest::RestError>()
            || cause.is::<std::io::Error>()
    });
    if !internal {
        return format!("{e:#}");
    }
    let reference = crate::model::markers::new_marker();
    tracing::error!(
        session = %caller.id,
        tool,
        reference,
        error = %format!("{e:#}"),
        "a tool call failed inside foreman"
    );
    format!(
        "foreman could not complete `{tool}` because of an internal error (reference \
         {reference}, logged for its operators). Try again in a while; if it keeps failing, \
         carry on without it and say so in your result."
    )
}

/// Refuses text over `max` characters, naming the field.
fn capped(field: &str, text: &str, max: usize) -> Result<(), String> {
    let n = text.chars().count();
    if n > max {
        return Err(format!("`{field}` is {n} characters; the limit is {max}"));
    }
    if text.trim().is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnWorker {
    title: String,
    instructions: String,
    #[serde(default)]
    depends_on: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Worker {
    worker: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageWorker {
    worker: i64,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishPr {
    worker: i64,
    title: String,
    body: String,
    closes_issue: bool,
    force_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    plan: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Question {
    question: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Summary {
    summary: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Done {
    summary: String,
    #[serde(default)]
    no_change_needed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Abandon {
    number: u64,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// A tool call, typed: the tool's name picks the variant, its arguments fill it (unknown
/// arguments are refused). The catalogue ([`TOOLS`]) describes the same tools to agents; a
/// test keeps the two in step.
#[derive(Deserialize)]
#[serde(tag = "name", content = "arguments", rename_all = "snake_case")]
enum ToolCall {
    SpawnWorker(SpawnWorker),
    ListWorkers(NoArgs),
    MessageWorker(MessageWorker),
    CancelWorker(Worker),
    PublishPr(PublishPr),
    ProposePlan(Plan),
    AskUser(Question),
    CommentIssue(Body),
    MarkObjectiveDone(Done),
    AbandonPr(Abandon),
    ReportResult(Summary),
    Note(Note),
}

impl ToolCall {
    /// The call of tool `name` with `args`, or what is wrong with them.
    fn parse(name: &str, args: Value) -> Result<ToolCall, String> {
        serde_json::from_value(json!({ "name": name, "arguments": args }))
            .map_err(|e| format!("invalid arguments for `{name}`: {e}"))
    }
}

impl ForemanTools {
    /// The arguments with every secret-shaped string redacted (whatever an agent writes may
    /// end up on GitHub: comments, questions, pull requests, commit messages); each redaction
    /// is recorded in the objective's audit trail.
    async fn scrubbed(&self, caller: &Session, tool: &str, mut args: Value) -> Value {
        let known = self.objectives.github.known_secrets();
        let known: Vec<&str> = known.iter().map(|s| s.expose_secret()).collect();
        let mut kinds = Vec::new();
        scrub_value(&mut args, &known, &mut kinds);
        if kinds.is_empty() {
            return args;
        }
        tracing::warn!(session = %caller.id, tool, ?kinds, "redacted secret-shaped text an agent wrote");
        let objectives = &*self.objectives;
        let recorded = async {
            let Some(objective) = objectives.store.objective(caller.objective_id).await? else {
                return Ok(());
            };
            let mut tx = objectives.store.begin().await?;
            let detail = format!(
                "#{} ({}) wrote to `{tool}`: redacted {}",
                caller.id,
                caller.role.as_str(),
                kinds.join(", ")
            );
            tx.audit(&AuditEntry::about(
                &objective,
                objectives.clock.now(),
                "agent.redacted",
                detail,
            ))
            .await?;
            tx.commit().await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(error = %format!("{e:#}"), "cannot record a redaction");
        }
        args
    }

    async fn call(&self, caller: &Session, name: &str, args: Value) -> Result<String, String> {
        let objectives = &*self.objectives;
        let internal = |e: anyhow::Error| explain(caller, name, e);
        let call = ToolCall::parse(name, args)?;
        objectives.still_live(caller).await.map_err(internal)?;
        match call {
            ToolCall::SpawnWorker(a) => {
                capped("title", &a.title, MAX_TITLE)?;
                capped("instructions", &a.instructions, MAX_TEXT)?;
                let deps: Vec<SessionId> = a.depends_on.into_iter().map(SessionId).collect();
                let id =
                    requests::spawn_worker(objectives, caller, &a.title, &a.instructions, &deps)
                        .await
                        .map_err(internal)?;
                Ok(format!(
                    "Worker #{id} is queued. You will get a message when it finishes."
                ))
            }
            ToolCall::ListWorkers(NoArgs {}) => {
                let sessions = objectives
                    .store
                    .sessions_of(caller.objective_id)
                    .await
                    .map_err(internal)?;
                let lines: Vec<String> = sessions
                    .iter()
                    .filter(|s| s.role != Role::Manager)
                    .map(describe_worker)
                    .collect();
                Ok(if lines.is_empty() {
                    "No workers yet.".to_owned()
                } else {
                    lines.join("\n")
                })
            }
            ToolCall::MessageWorker(a) => {
                capped("message", &a.message, MAX_TEXT)?;
                requests::message_worker(objectives, caller, SessionId(a.worker), &a.message)
                    .await
                    .map_err(internal)?;
                Ok(format!("Message left for worker #{}.", a.worker))
            }
            ToolCall::CancelWorker(a) => {
                let cancelled = requests::cancel_worker(objectives, caller, SessionId(a.worker))
                    .await
                    .map_err(internal)?;
                Ok(if cancelled {
                    format!("Worker #{} is cancelled.", a.worker)
                } else {
                    format!("Worker #{} had already finished.", a.worker)
                })
            }
            ToolCall::PublishPr(a) => {
                capped("title", &a.title, MAX_TITLE)?;
                capped("body", &a.body, MAX_COMMENT)?;
                if let Some(reason) = &a.force_reason {
                    capped("force_reason", reason, MAX_NOTE)?;
                }
                let request = PublishRequest {
                    worker: SessionId(a.worker),
                    title: a.title,
                    body: a.body,
                    closes_issue: a.closes_issue,
                    force_reason: a.force_reason,
                };
                publish(objectives, caller, &request)
                    .await
                    .map_err(internal)
            }
            ToolCall::ProposePlan(a) => {
                capped("plan", &a.plan, MAX_TEXT)?;
                requests::propose_plan(objectives, caller, &a.plan)
                    .await
                    .map_err(internal)
            }
            ToolCall::AskUser(a) => {
                capped("question", &a.question, MAX_TEXT)?;
                let id = requests::ask_user(objectives, caller, &a.question)
                    .await
                    .map_err(internal)?;
                Ok(format!(
                    "Question {id} is recorded for the humans on the issue. End your turn now; \
                     the answer will arrive as a new message."
                ))
            }
            ToolCall::CommentIssue(a) => {
                capped("body", &a.body, MAX_COMMENT)?;
                requests::comment_issue(objectives, caller, &a.body)
                    .await
                    .map_err(internal)?;
                Ok("The comment is queued and will appear on the issue shortly.".to_owned())
            }
            ToolCall::MarkObjectiveDone(a) => {
                capped("summary", &a.summary, MAX_TEXT)?;
                requests::mark_done(objectives, caller, &a.summary, a.no_change_needed)
                    .await
                    .map_err(internal)
            }
            ToolCall::AbandonPr(a) => {
                capped("reason", &a.reason, MAX_NOTE)?;
                crate::engine::objective::pulls::abandon(objectives, caller, a.number, &a.reason)
                    .await
                    .map_err(internal)
            }
            ToolCall::ReportResult(a) => {
                capped("summary", &a.summary, MAX_TEXT)?;
                objectives
                    .store
                    .set_session_text(caller.id, Some(&a.summary), None)
                    .await
                    .map_err(internal)?;
                Ok("Result recorded; your manager gets it when your turn ends.".to_owned())
            }
            ToolCall::Note(a) => {
                capped("text", &a.text, MAX_NOTE)?;
                objectives
                    .store
                    .set_session_text(caller.id, None, Some(&a.text))
                    .await
                    .map_err(internal)?;
                Ok("Noted.".to_owned())
            }
        }
    }
}

fn describe_worker(s: &Session) -> String {
    let result = s
        .result
        .as_deref()
        .or(s.status_reason.as_deref())
        .map(|r| format!(" — {}", one_line(r, 300)))
        .unwrap_or_default();
    let deps = if s.depends_on.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = s.depends_on.iter().map(|d| format!("#{d}")).collect();
        format!(" (after {})", ids.join(", "))
    };
    format!(
        "#{} [{}] {}{deps}{result}",
        s.id,
        s.status.as_str(),
        s.title
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogued_tool_has_a_typed_call_and_its_schema_fits_it() {
        for spec in TOOLS {
            // The required parameters, each with a value of its declared type.
            let mut args = serde_json::Map::new();
            for (name, kind, _, required) in spec.params {
                if !required {
                    continue;
                }
                let value = match *kind {
                    "string" => json!("text"),
                    "integer" => json!(1),
                    "boolean" => json!(true),
                    "array" => json!([1]),
                    other => panic!("{}: unknown parameter type {other}", spec.name),
                };
                args.insert((*name).to_owned(), value);
            }
            let parsed = ToolCall::parse(spec.name, Value::Object(args.clone()));
            assert!(parsed.is_ok(), "{}: {:?}", spec.name, parsed.err());
            // And nothing beyond the schema is taken.
            args.insert("surplus".into(), json!(1));
            assert!(
                ToolCall::parse(spec.name, Value::Object(args)).is_err(),
                "{}",
                spec.name
            );
        }
    }

    #[test]
    fn refusals_and_failed_work_are_told_internal_errors_only_referenced() {
        use crate::model::session::fixtures;
        use crate::model::{Role, SessionStatus};
        let caller = fixtures::session(3, 1, Role::Manager, SessionStatus::Running);
        let refused =
            anyhow::Error::new(Refused("worker 9 is not yours".into())).context("while spawning");
        assert_eq!(
            explain(&caller, "spawn_worker", refused),
            "worker 9 is not yours"
        );
        let work = anyhow::anyhow!("it changed nothing, so there was nothing to push to #4");
        assert!(explain(&caller, "publish_pr", work).contains("nothing to push"));
        let database = anyhow::Error::new(sqlx::Error::PoolTimedOut)
            .context("cannot read session 3 at postgres://db.internal/foreman");
        let told = explain(&caller, "list_workers", database);
        assert!(told.contains("internal error (reference "), "{told}");
        assert!(
            !told.contains("db.internal") && !told.contains("pool"),
            "{told}"
        );
    }

    #[test]
    fn every_schema_has_a_required_array() {
        for spec in TOOLS {
            let tool = spec.to_tool();
            let schema = Value::Object((*tool.input_schema).clone());
            assert!(schema["required"].is_array(), "{}", spec.name);
            assert_eq!(schema["type"], "object");
        }
        let spawn = TOOLS
            .iter()
            .find(|t| t.name == "spawn_worker")
            .unwrap()
            .to_tool();
        let schema = Value::Object((*spawn.input_schema).clone());
        assert_eq!(schema["required"], json!(["title", "instructions"]));
        assert_eq!(
            schema["properties"]["depends_on"]["items"]["type"],
            "integer"
        );
    }

    #[test]
    fn roles_see_their_own_tools() {
        let worker = crate::agent::tools::tools_of(Role::Worker);
        assert_eq!(worker, ["ask_user", "report_result", "note"]);
        let manager = crate::agent::tools::tools_of(Role::Manager);
        assert!(manager.contains(&"spawn_worker") && !manager.contains(&"report_result"));
    }

    #[test]
    fn text_limits_name_the_field() {
        assert!(capped("title", &"x".repeat(MAX_TITLE), MAX_TITLE).is_ok());
        let err = capped("title", &"x".repeat(MAX_TITLE + 1), MAX_TITLE).unwrap_err();
        assert_eq!(err, "`title` is 201 characters; the limit is 200");
        assert_eq!(capped("body", "  ", 10).unwrap_err(), "`body` is empty");
    }
}
