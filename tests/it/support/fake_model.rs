//! A scripted model server, so the real agent CLIs (Claude Code, Codex) can run offline.
//!
//! It speaks just enough of two APIs, over real HTTP on 127.0.0.1:
//! - the Anthropic Messages API: `POST /v1/messages` (Claude Code 2.1 calls
//!   `/v1/messages?beta=true` with `stream: true`; the answer is the SSE sequence
//!   `message_start`, `content_block_start/delta/stop`, `message_delta`, `message_stop`, or
//!   one JSON message without `stream`), `POST /v1/messages/count_tokens`, and the
//!   `HEAD /` Claude Code sends before its first request;
//! - the OpenAI Responses API: `POST /v1/responses`, streamed (`response.created`,
//!   `response.output_item.added/done`, `response.completed`), which is what Codex 0.171
//!   calls on a custom `model_provider` whose `base_url` is [`FakeModel::openai_base_url`].
//!   (Its built-in OpenAI provider tries a WebSocket on `GET /v1/responses` first; that gets
//!   the unknown-path 404 and Codex falls back to the POST.)
//!
//! A test scripts the model's side: a queue of [`Reply`]s per API, each "call this tool
//! with these arguments" or "answer this text and stop". Only requests of the agent's own
//! loop (those that offer the model tools) take a reply from the queue; a side request
//! without tools (titles, summaries) gets [`SIDE_ANSWER`], and the agent loop gets
//! [`EXHAUSTED`] once its queue is empty. A request the CLI sends again unchanged (a retry
//! after a slow or cut-off answer, which a loaded machine causes) gets the answer it got the
//! first time, without taking the next one: the script follows the conversation, not the
//! number of HTTP requests.
//!
//! A scripted tool name is matched against the tools the request offers, so one script
//! works for both CLIs: `report_result` finds Claude Code's `mcp__foreman__report_result`,
//! the `report_result` of Codex's `mcp__foreman` namespace tool (answered with a
//! `function_call` carrying `namespace`), or, when Codex runs in "code mode" (its own
//! models: tools are called from JavaScript through a custom `exec` tool, MCP tools are
//! only named as a deferred namespace), an `exec` call running
//! `await tools.mcp__foreman__report_result(args)`. Built-in tools work the same way
//! (`Write` for Claude Code, `exec_command` for Codex).
//!
//! Every request is recorded ([`FakeModel::requests`]), so a test can check what the CLI
//! sent, and that a tool's result came back in the next request
//! ([`FakeModel::tool_results`]). Paths the fake does not know are recorded too, answered
//! with 404, logged to stderr and listed by [`FakeModel::unknown_paths`].
//!
//! ```ignore
//! let model = FakeModel::start().await;
//! model.script(Api::Anthropic, [
//!     Reply::tool("report_result", json!({"summary": "done"})),
//!     Reply::text("All done."),
//! ]);
//! // run `claude` with ANTHROPIC_BASE_URL = model.anthropic_base_url(), any ANTHROPIC_API_KEY
//! // run `codex` with a model_provider whose base_url = model.openai_base_url()
//! assert!(model.tool_results(Api::Anthropic).iter().any(|r| r.contains("recorded")));
//! assert_eq!(model.remaining(Api::Anthropic), 0);
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

/// What the agent loop hears once its script is used up.
pub const EXHAUSTED: &str = "(fake model: script exhausted)";
/// What side requests (no tools offered) hear.
pub const SIDE_ANSWER: &str = "ok";
/// The model name reported back when a request names none.
const DEFAULT_MODEL: &str = "fake-model";

/// Which API a reply or request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Anthropic Messages (Claude Code).
    Anthropic,
    /// OpenAI Responses (Codex).
    OpenAi,
}

/// One scripted model turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Call the tool named `name` (see the module docs for how it is matched) with `args`.
    Tool { name: String, args: Value },
    /// Answer with this text and stop.
    Text(String),
}

impl Reply {
    pub fn tool(name: &str, args: Value) -> Reply {
        Reply::Tool {
            name: name.to_owned(),
            args,
        }
    }

    pub fn text(text: &str) -> Reply {
        Reply::Text(text.to_owned())
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// The API this request was answered as, if any.
    pub api: Option<Api>,
    /// Whether it took a reply from the script.
    pub scripted: bool,
}

impl Request {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The names of the tools this request offers the model (namespaced tools as
    /// `namespace__name`, Codex's code-mode tools included).
    pub fn tool_names(&self) -> Vec<String> {
        let mut names = tool_names(&self.body);
        names.extend(code_mode_tool_names(&self.body));
        names
    }
}

#[derive(Default)]
struct Inner {
    anthropic: VecDeque<Reply>,
    openai: VecDeque<Reply>,
    /// The scripted reply each agent-loop request body got, for its retries.
    answered: std::collections::HashMap<String, Reply>,
    requests: Vec<Request>,
    next_id: u64,
}

/// The running fake model server. Dropping it stops the server.
pub struct FakeModel {
    addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeModel {
    /// Starts the server on a random port of 127.0.0.1.
    pub async fn start() -> FakeModel {
        FakeModel::start_at("127.0.0.1").await
    }

    /// Starts the server on a random port of `ip`, an address of this machine.
    pub async fn start_at(ip: &str) -> FakeModel {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new().fallback(serve).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind fake model");
        let addr = listener.local_addr().expect("fake model address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeModel {
            addr,
            inner,
            server,
        }
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The value for `ANTHROPIC_BASE_URL` (the client appends `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        self.url()
    }

    /// The `base_url` for a Codex `model_provider` (the client appends `/responses`).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Appends replies to an API's script.
    pub fn script(&self, api: Api, replies: impl IntoIterator<Item = Reply>) {
        let mut inner = self.lock();
        let queue = match api {
            Api::Anthropic => &mut inner.anthropic,
            Api::OpenAi => &mut inner.openai,
        };
        queue.extend(replies);
    }

    /// Replies not yet used.
    pub fn remaining(&self, api: Api) -> usize {
        let inner = self.lock();
        match api {
            Api::Anthropic => inner.anthropic.len(),
            Api::OpenAi => inner.openai.len(),
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The requests of the agent's own loop for `api` (the ones that offered tools).
    pub fn agent_requests(&self, api: Api) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.api == Some(api) && !r.tool_names().is_empty())
            .collect()
    }

    /// The text of every tool result the CLI sent back to the model, in order.
    pub fn tool_results(&self, api: Api) -> Vec<String> {
        let mut seen = Vec::new();
        for request in self.agent_requests(api) {
            for result in tool_results(api, &request.body) {
                if !seen.contains(&result) {
                    seen.push(result);
                }
            }
        }
        seen
    }

    /// One line per request of `api` received, for a failing test to print: whether it was an
    /// agent-loop request, how many tools it offered and how long its input was.
    pub fn describe(&self, api: Api) -> String {
        self.requests()
            .iter()
            .filter(|r| r.api == Some(api))
            .map(|r| {
                let input = r.body.get("input").or_else(|| r.body.get("messages"));
                format!(
                    "{} {}: {} tools, {} input items{}",
                    r.method,
                    r.uri,
                    r.tool_names().len(),
                    input.and_then(Value::as_array).map_or(0, Vec::len),
                    if r.scripted { ", scripted" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Method and path of every request no handler knew.
    pub fn unknown_paths(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.api.is_none())
            .map(|r| format!("{} {}", r.method, r.uri))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn serve(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().trim_end_matches('/');
    let mut request = Request {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body,
        api: None,
        scripted: false,
    };
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.next_id += 1;
    let id = inner.next_id;
    let response = match (&method, path) {
        (&Method::POST, "/v1/messages") => {
            request.api = Some(Api::Anthropic);
            let Inner {
                anthropic,
                answered,
                ..
            } = &mut *inner;
            let reply = next_reply(anthropic, answered, &mut request);
            anthropic_message(id, &request.body, &reply)
        }
        (&Method::POST, "/v1/messages/count_tokens") => {
            request.api = Some(Api::Anthropic);
            json_response(
                StatusCode::OK,
                json!({ "input_tokens": approx_tokens(&request.body) }),
            )
        }
        (&Method::POST, "/v1/responses") => {
            request.api = Some(Api::OpenAi);
            let Inner {
                openai, answered, ..
            } = &mut *inner;
            let reply = next_reply(openai, answered, &mut request);
            openai_response(id, &request.body, &reply)
        }
        // Claude Code's connectivity check before its first request.
        (&Method::HEAD, "") => {
            request.api = Some(Api::Anthropic);
            json_response(StatusCode::OK, Value::Null)
        }
        (&Method::GET, "/v1/models") => {
            request.api = Some(Api::OpenAi);
            json_response(
                StatusCode::OK,
                json!({ "object": "list", "data": [], "models": [] }),
            )
        }
        _ => {
            eprintln!("fake model: unknown request {method} {uri}");
            json_response(
                StatusCode::NOT_FOUND,
                json!({ "error": { "type": "not_found_error", "message": "not found" } }),
            )
        }
    };
    inner.requests.push(request);
    response
}

/// The reply for a request: from the script for the agent loop, canned for side requests.
fn next_reply(
    queue: &mut VecDeque<Reply>,
    answered: &mut std::collections::HashMap<String, Reply>,
    request: &mut Request,
) -> Reply {
    if request.tool_names().is_empty() {
        return Reply::text(SIDE_ANSWER);
    }
    request.scripted = true;
    let key = request.body.to_string();
    if let Some(reply) = answered.get(&key) {
        eprintln!("fake model: a request was sent again; it gets the same answer");
        return reply.clone();
    }
    let reply = queue.pop_front().unwrap_or_else(|| Reply::text(EXHAUSTED));
    answered.insert(key, reply.clone());
    reply
}

/// The tool the CLI offers under `wanted`: the exact name, or one ending in `__wanted`.
fn resolve_tool(body: &Value, wanted: &str) -> String {
    let names = tool_names(body);
    if names.iter().any(|n| n == wanted) {
        return wanted.to_owned();
    }
    let suffix = format!("__{wanted}");
    names
        .into_iter()
        .find(|n| n.ends_with(&suffix))
        .unwrap_or_else(|| wanted.to_owned())
}

/// The namespace tool (Responses API `{"type": "namespace", "name", "tools"}`) that holds a
/// tool named `wanted`, as (namespace, tool name).
fn namespaced_tool(body: &Value, wanted: &str) -> Option<(String, String)> {
    for tool in body["tools"].as_array().into_iter().flatten() {
        let (Some(ns), Some(inner)) = (tool["name"].as_str(), tool["tools"].as_array()) else {
            continue;
        };
        for t in inner {
            let name = t["name"].as_str().unwrap_or_default();
            if name == wanted || format!("{ns}__{name}").ends_with(&format!("__{wanted}")) {
                return Some((ns.to_owned(), name.to_owned()));
            }
        }
    }
    None
}

/// Tool names in an Anthropic (`tools[].name`) or Responses (`tools[].name`, also inside
/// `namespace` tools) request.
fn tool_names(body: &Value) -> Vec<String> {
    let mut names = Vec::new();
    let mut visit = |tools: &Value, prefix: &str| {
        for tool in tools.as_array().into_iter().flatten() {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                names.push(format!("{prefix}{name}"));
            }
        }
    };
    visit(&body["tools"], "");
    for tool in body["tools"].as_array().into_iter().flatten() {
        if let (Some(ns), Some(inner)) = (tool["name"].as_str(), tool.get("tools")) {
            visit(inner, &format!("{ns}__"));
        }
    }
    names
}

/// The text of the tool results in a request body.
fn tool_results(api: Api, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match api {
        Api::Anthropic => {
            for message in body["messages"].as_array().into_iter().flatten() {
                for block in message["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_result" {
                        out.push(flatten_text(&block["content"]));
                    }
                }
            }
        }
        Api::OpenAi => {
            for item in body["input"].as_array().into_iter().flatten() {
                let kind = item["type"].as_str().unwrap_or_default();
                if kind.ends_with("call_output") {
                    out.push(flatten_text(&item["output"]));
                }
            }
        }
    }
    out
}

/// A string, or the concatenated `text` fields of an array of content blocks.
fn flatten_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other["text"].as_str().unwrap_or_default().to_owned(),
            })
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A rough token count (4 bytes a token), so usage numbers are plausible and non-zero.
fn approx_tokens(body: &Value) -> u64 {
    (body.to_string().len() as u64 / 4).max(1)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn sse_response(events: Vec<(&'static str, Value)>) -> Response {
    let mut text = String::new();
    for (event, data) in events {
        text.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(text))
        .expect("response")
}

fn model_of(body: &Value) -> String {
    body["model"].as_str().unwrap_or(DEFAULT_MODEL).to_owned()
}

/// An Anthropic Messages answer: streamed (SSE) when the request asks for it, else JSON.
fn anthropic_message(id: u64, body: &Value, reply: &Reply) -> Response {
    let input_tokens = approx_tokens(body);
    let (block, stop_reason, output_tokens) = match reply {
        Reply::Text(text) => (
            json!({ "type": "text", "text": text }),
            "end_turn",
            (text.len() as u64 / 4).max(1),
        ),
        Reply::Tool { name, args } => (
            json!({
                "type": "tool_use",
                "id": format!("toolu_fake{id:04}"),
                "name": resolve_tool(body, name),
                "input": args,
            }),
            "tool_use",
            (args.to_string().len() as u64 / 4).max(1),
        ),
    };
    let usage = json!({
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    });
    let message_id = format!("msg_fake{id:04}");
    if body["stream"] != Value::Bool(true) {
        return json_response(
            StatusCode::OK,
            json!({
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model_of(body),
                "content": [block],
                "stop_reason": stop_reason,
                "stop_sequence": null,
                "usage": usage,
            }),
        );
    }
    let (start_block, delta) = match reply {
        Reply::Text(text) => (
            json!({ "type": "text", "text": "" }),
            json!({ "type": "text_delta", "text": text }),
        ),
        Reply::Tool { args, .. } => {
            let mut start = block.clone();
            start["input"] = json!({});
            (
                start,
                json!({ "type": "input_json_delta", "partial_json": args.to_string() }),
            )
        }
    };
    sse_response(vec![
        (
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model_of(body),
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": { "input_tokens": input_tokens, "output_tokens": 1,
                               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
                },
            }),
        ),
        (
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": start_block }),
        ),
        (
            "content_block_delta",
            json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        ),
        (
            "content_block_stop",
            json!({ "type": "content_block_stop", "index": 0 }),
        ),
        (
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": { "output_tokens": output_tokens },
            }),
        ),
        ("message_stop", json!({ "type": "message_stop" })),
    ])
}

/// A Responses API output item calling the tool the CLI offers under `wanted`:
/// - a `function_call` when it is offered as a function (`tools[]`), with its `namespace`
///   when it sits in a namespace tool (Codex puts MCP tools in `mcp__<server>`);
/// - in Codex's code mode (its own models: tools are reached from JavaScript run by a
///   custom `exec` tool, and MCP tools are "deferred", only named by namespace), a
///   `custom_tool_call` of `exec` whose script calls `tools.<name>(args)` and returns the
///   result as text.
fn openai_tool_call(id: u64, body: &Value, wanted: &str, args: &Value) -> Value {
    let call_id = format!("call_fake{id:04}");
    let function = |name: &str| {
        json!({
            "type": "function_call",
            "id": format!("fc_fake{id:04}"),
            "call_id": call_id,
            "name": name,
            "arguments": args.to_string(),
            "status": "completed",
        })
    };
    let top_level = body["tools"].as_array().into_iter().flatten();
    if top_level
        .filter(|t| t.get("tools").is_none())
        .any(|t| t["name"] == wanted)
    {
        return function(wanted);
    }
    if let Some((namespace, name)) = namespaced_tool(body, wanted) {
        let mut call = function(&name);
        call["namespace"] = json!(namespace);
        return call;
    }
    let resolved = resolve_tool(body, wanted);
    if tool_names(body).contains(&resolved) {
        return function(&resolved);
    }
    match code_mode_name(body, wanted) {
        Some(name) => json!({
            "type": "custom_tool_call",
            "id": format!("ctc_fake{id:04}"),
            "call_id": call_id,
            "name": CODE_MODE_TOOL,
            "input": format!("const result = await tools.{name}({args});\ntext(result);"),
            "status": "completed",
        }),
        None => function(&resolved),
    }
}

/// The tool Codex's code mode runs JavaScript with.
const CODE_MODE_TOOL: &str = "exec";

/// The tools offered in Codex's code mode: `input[]` items of type `additional_tools`,
/// namespaces flattened to `namespace__name`.
fn code_mode_tool_names(body: &Value) -> Vec<String> {
    fn visit(tools: &Value, prefix: &str, names: &mut Vec<String>) {
        for tool in tools.as_array().into_iter().flatten() {
            let Some(name) = tool["name"].as_str() else {
                continue;
            };
            match tool.get("tools") {
                Some(inner) => visit(inner, &format!("{prefix}{name}__"), names),
                None => names.push(format!("{prefix}{name}")),
            }
        }
    }
    let mut names = Vec::new();
    for item in body["input"].as_array().into_iter().flatten() {
        if item["type"] == "additional_tools" {
            visit(&item["tools"], "", &mut names);
        }
    }
    names
}

/// Every string in a JSON value, depth first.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// In code mode, the JavaScript name of the tool wanted: one the `exec` tool declares
/// (`declare const tools: { exec_command(…`), or one in the deferred namespace the
/// instructions name ("Deferred tool namespaces:\n- mcp__foreman" gives
/// `mcp__foreman__wanted`).
fn code_mode_name(body: &Value, wanted: &str) -> Option<String> {
    if !code_mode_tool_names(body)
        .iter()
        .any(|n| n.ends_with(&format!("__{CODE_MODE_TOOL}")) || n == CODE_MODE_TOOL)
    {
        return None;
    }
    let texts = strings(&body["input"]);
    let declared = texts
        .iter()
        .flat_map(|t| t.split("declare const tools: { ").skip(1))
        .filter_map(|rest| rest.split('(').next())
        .find(|name| *name == wanted || name.ends_with(&format!("__{wanted}")));
    if let Some(name) = declared {
        return Some(name.to_owned());
    }
    let namespace = texts.iter().find_map(|t| {
        let (_, after) = t.split_once("Deferred tool namespaces:")?;
        let line = after.lines().map(str::trim).find(|l| l.starts_with("- "))?;
        // "- mcp__foreman" or, when the server gives instructions, "- mcp__foreman: …".
        let entry = line.trim_start_matches("- ");
        Some(entry.split(':').next().unwrap_or(entry).trim().to_owned())
    })?;
    Some(format!("{namespace}__{wanted}"))
}

/// An OpenAI Responses answer, streamed as SSE.
fn openai_response(id: u64, body: &Value, reply: &Reply) -> Response {
    let response_id = format!("resp_fake{id:04}");
    let (item, output_tokens) = match reply {
        Reply::Text(text) => (
            json!({
                "type": "message",
                "id": format!("msg_fake{id:04}"),
                "role": "assistant",
                "status": "completed",
                "content": [{ "type": "output_text", "text": text, "annotations": [] }],
            }),
            (text.len() as u64 / 4).max(1),
        ),
        Reply::Tool { name, args } => (
            openai_tool_call(id, body, name, args),
            (args.to_string().len() as u64 / 4).max(1),
        ),
    };
    let input_tokens = approx_tokens(body);
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": { "cached_tokens": 0 },
        "output_tokens": output_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": input_tokens + output_tokens,
    });
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": response_id,
            "object": "response",
            "created_at": 0,
            "status": status,
            "model": model_of(body),
            "output": output,
            "usage": usage,
        })
    };
    let mut events = vec![(
        "response.created",
        json!({ "type": "response.created", "response": response("in_progress", json!([]), Value::Null) }),
    )];
    let mut added = item.clone();
    added["status"] = json!("in_progress");
    events.push((
        "response.output_item.added",
        json!({ "type": "response.output_item.added", "output_index": 0, "item": added }),
    ));
    if let Reply::Text(text) = reply {
        events.push((
            "response.output_text.delta",
            json!({
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": text,
            }),
        ));
    }
    events.push((
        "response.output_item.done",
        json!({ "type": "response.output_item.done", "output_index": 0, "item": item }),
    ));
    events.push((
        "response.completed",
        json!({ "type": "response.completed", "response": response("completed", json!([item]), usage) }),
    ));
    sse_response(events)
}
