//! A scripted agent for foreman's tests: a real child process that speaks MCP (Streamable
//! HTTP, JSON-RPC) to foreman with the bearer token foreman gave it, following a plan file.
//! It is built with the tests (`cargo test` builds examples) and starts in about a
//! millisecond, so the suite's hundreds of agent turns cost little.
//!
//! Run by foreman's `command` adapter as `scripted_agent PLAN.json`. It reads its environment
//! (FOREMAN_MCP_URL, FOREMAN_MCP_TOKEN, FOREMAN_ROLE, FOREMAN_PROMPT_FILE) and performs one
//! turn:
//!
//! ```text
//! plan = {
//!   "manager": [turn, turn, ...],      // the manager's turns: each turn runs every unused one
//!                                      // whose "when" text is in its prompt, else the first
//!                                      // unused one without a "when"; one with "unless" is
//!                                      // skipped while that text is in the prompt
//!   "workers": {"<title>": turn, ...}, // a worker's turn (or list of turns, by turn number
//!                                      // unless one's "when" is in the prompt), by its title
//!   "default_worker": turn             // for workers without their own entry
//! }
//! turn = {"when": "text", "calls": [call, ...], "print": ["line", ...], "sleep": seconds,
//!         "exit": code, "spawn_sleeper": seconds, "expect_prompt": "text",
//!         "write": {"path": "content"}, "expect_files": ["path"],
//!         "run": ["shell command", ...]}  // run in the working directory, after "write"; a
//!                                         // command that fails ends the turn with exit 6
//! call = {"tool": "name", "args": {...}, "expect_error": bool, "save": "var"}
//!        // "$var" in args is replaced by a number saved from an earlier call's result
//! ```
//!
//! Or, for the supervisor's simulation, `plan = {"sim": {"steps": N, "seed": S, "stall": p,
//! "crash": p, "exit_early": p}}`: a manager that, each turn, at random crashes (exit 1)
//! before doing anything, stalls (ends its turn with only a plan), or acts: spawns the first
//! of the workers "step-0" … "step-N-1" it does not know of — it knows what it spawned itself
//! and what the snapshots in its prompts listed — or, knowing them all, marks the objective
//! done; having spawned, it may crash right after. Workers just succeed.
//!
//! What it saw and did is left in its state directory (the prompt file's): `prompts.txt`,
//! `calls.jsonl`, `token`, `environ.json`, `sleeper.pid`, `scripted_state.json`.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};
use std::time::Duration;

use serde_json::{Map, Value, json};

const PROTOCOL: &str = "2025-06-18";

fn main() {
    let plan_path = std::env::args()
        .nth(1)
        .expect("usage: scripted_agent PLAN.json");
    let plan: Value = serde_json::from_str(&read(Path::new(&plan_path))).expect("plan JSON");
    let role = env("FOREMAN_ROLE");
    let prompt_file = PathBuf::from(env("FOREMAN_PROMPT_FILE"));
    let state_dir = prompt_file.parent().expect("state dir").to_path_buf();
    let prompt = read(&prompt_file);
    let mut state = State::load(&state_dir);
    let turn_index = state.turn();
    state.0["turn"] = json!(turn_index + 1);
    if role != "manager" {
        // A worker's title is in its first prompt only: keep it for the later turns, in the
        // same write as the turn counter (a turn can be killed right after its prompt is logged).
        let title = prompt
            .lines()
            .find_map(|l| {
                l.split_once("Your task: ")
                    .map(|(_, t)| t.trim().to_owned())
            })
            .or_else(|| state.0["title"].as_str().map(str::to_owned))
            .unwrap_or_default();
        state.0["title"] = json!(title);
    }
    state.save();
    append(
        &state_dir.join("prompts.txt"),
        &format!("=== turn {turn_index} ===\n{prompt}\n"),
    );
    if let Some(sim) = plan.get("sim") {
        simulate(sim, &role, &prompt, &mut state);
    }

    let turn = if role == "manager" {
        manager_turn(&plan, &prompt, &mut state)
    } else {
        let title = state.0["title"].as_str().unwrap_or_default().to_owned();
        let turn = plan
            .get("workers")
            .and_then(|w| w.get(&title))
            .or_else(|| plan.get("default_worker"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        match turn {
            // By turn number, unless one has a "when" that is in the prompt.
            Value::Array(list) => list
                .iter()
                .find(|t| {
                    t.get("when")
                        .and_then(Value::as_str)
                        .is_some_and(|w| !w.is_empty() && prompt.contains(w))
                })
                .or_else(|| list.get(turn_index as usize))
                .cloned()
                .unwrap_or(json!({})),
            other => other,
        }
    };
    run_turn(&turn, &prompt, &mut state);
}

/// The manager's turn: every unused one whose "when" is in the prompt, else the first unused
/// one without a "when", merged.
fn manager_turn(plan: &Value, prompt: &str, state: &mut State) -> Value {
    let turns = plan
        .get("manager")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let used: Vec<u64> = state.0["used"]
        .as_array()
        .map(|u| u.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let text = |t: &Value, key: &str| t.get(key).and_then(Value::as_str).map(str::to_owned);
    let unused = |i: usize| !used.contains(&(i as u64));
    let mut chosen: Vec<usize> = turns
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            unused(*i)
                && text(t, "when").is_some_and(|w| !w.is_empty() && prompt.contains(&w))
                && !text(t, "unless").is_some_and(|u| !u.is_empty() && prompt.contains(&u))
        })
        .map(|(i, _)| i)
        .collect();
    if chosen.is_empty() {
        chosen = turns
            .iter()
            .enumerate()
            .filter(|(i, t)| unused(*i) && text(t, "when").is_none_or(|w| w.is_empty()))
            .map(|(i, _)| i)
            .take(1)
            .collect();
    }
    let mut turn = Map::new();
    let mut now_used = used.clone();
    for index in chosen {
        now_used.push(index as u64);
        for (key, value) in turns[index].as_object().into_iter().flatten() {
            match key.as_str() {
                "calls" => {
                    let calls = turn.entry("calls").or_insert_with(|| json!([]));
                    if let (Some(all), Some(more)) = (calls.as_array_mut(), value.as_array()) {
                        all.extend(more.iter().cloned());
                    }
                }
                "when" | "unless" => {}
                _ => {
                    turn.insert(key.clone(), value.clone());
                }
            }
        }
    }
    state.0["used"] = json!(now_used);
    state.save();
    Value::Object(turn)
}

fn run_turn(turn: &Value, prompt: &str, state: &mut State) {
    let dir = state.1.clone();
    fs::write(dir.join("token"), env("FOREMAN_MCP_TOKEN")).expect("write token");
    let environ: Map<String, Value> = std::env::vars().map(|(k, v)| (k, json!(v))).collect();
    fs::write(dir.join("environ.json"), Value::Object(environ).to_string()).expect("environ");
    for path in strings(turn, "expect_files") {
        if !Path::new(&path).exists() {
            eprintln!("expected {path} in the working directory");
            exit(5);
        }
    }
    for (path, content) in turn
        .get("write")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            fs::create_dir_all(parent).expect("create directories");
        }
        fs::write(path, content.as_str().unwrap_or_default()).expect("write file");
    }
    for command in strings(turn, "run") {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("command failed: {command}");
            exit(6);
        }
    }
    if let Some(expected) = turn.get("expect_prompt").and_then(Value::as_str)
        && !prompt.contains(expected)
    {
        eprintln!("expected {expected:?} in the prompt");
        exit(3);
    }
    if let Some(seconds) = turn.get("spawn_sleeper").filter(|s| truthy(s)) {
        // Left running on purpose: foreman must kill the turn's whole process group.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("sleep")
            .arg(seconds.to_string())
            .spawn()
            .expect("start sleep");
        fs::write(dir.join("sleeper.pid"), child.id().to_string()).expect("sleeper.pid");
        println!("sleeper {}", child.id());
    }
    let calls = turn
        .get("calls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !calls.is_empty() {
        let mut mcp = Mcp::connect();
        let tools = mcp.request("tools/list", json!({}));
        let names: Vec<&str> = tools["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        println!("tools: {}", names.join(","));
        for call in calls {
            let tool = call["tool"].as_str().unwrap_or_default();
            let args = substitute(call.get("args").unwrap_or(&json!({})), &state.0["vars"]);
            let (text, is_error) = mcp.call(tool, args, &dir);
            let expected = call.get("expect_error").and_then(Value::as_bool);
            if expected.is_some_and(|e| e != is_error) {
                eprintln!("unexpected outcome of {tool}");
                exit(4);
            }
            if let Some(var) = call.get("save").and_then(Value::as_str) {
                state.0["vars"][var] = first_number(&text).map_or(Value::Null, |n| json!(n));
                state.save();
            }
        }
    }
    for line in strings(turn, "print") {
        println!("{line}");
    }
    if let Some(seconds) = turn.get("sleep").and_then(Value::as_f64) {
        std::thread::sleep(Duration::from_secs_f64(seconds));
    }
    exit(turn.get("exit").and_then(Value::as_i64).unwrap_or(0) as i32);
}

/// One turn of the supervisor simulation (see the module's description).
fn simulate(sim: &Value, role: &str, prompt: &str, state: &mut State) -> ! {
    if role != "manager" {
        println!("done");
        exit(0);
    }
    let number = |key: &str| sim[key].as_f64().unwrap_or(0.0);
    let seed = format!("{}-{}-{}", sim["seed"], state.1.display(), state.turn());
    let mut rng = Rng::new(&seed);
    let roll = rng.next();
    // What it knows: what it spawned and every snapshot it was given (its conversation, which
    // it keeps whatever it does with this turn).
    let mut known: Vec<String> = state.0["known"]
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for line in prompt.lines() {
        if let Some(step) = listed_step(line)
            && !known.contains(&step)
        {
            known.push(step);
        }
    }
    known.sort();
    state.0["known"] = json!(known);
    state.save();
    if roll < number("crash") {
        eprintln!("crashing before doing anything");
        exit(1);
    }
    if roll < number("crash") + number("stall") {
        println!("Done for now; next I will spawn the next step.");
        exit(0);
    }
    let steps = sim["steps"].as_u64().unwrap_or(0);
    let missing = (0..steps)
        .map(|i| format!("step-{i}"))
        .find(|s| !known.contains(s));
    let mut mcp = Mcp::connect();
    let (tool, args) = match &missing {
        Some(step) => {
            known.push(step.clone());
            state.0["known"] = json!(known);
            (
                "spawn_worker",
                json!({"title": step, "instructions": format!("Do {step}.")}),
            )
        }
        None => (
            "mark_objective_done",
            json!({"summary": "every step is done"}),
        ),
    };
    mcp.call(tool, args, &state.1.clone());
    state.save();
    if missing.is_some() && rng.next() < number("exit_early") {
        eprintln!("crashing right after acting");
        exit(1);
    }
    exit(0);
}

/// `step-N` from a snapshot line `- #12 step-N (worker, …` (or `followup`).
fn listed_step(line: &str) -> Option<String> {
    let rest = line.strip_prefix("- #")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].strip_prefix(" step-")?;
    let n = rest.find(|c: char| !c.is_ascii_digit())?;
    if n == 0 {
        return None;
    }
    let after = &rest[n..];
    (after.starts_with(" (worker, ") || after.starts_with(" (followup, "))
        .then(|| format!("step-{}", &rest[..n]))
}

/// The agent's remembered state: what `scripted_state.json` holds, and its directory.
struct State(Value, PathBuf);

impl State {
    fn load(dir: &Path) -> State {
        let path = dir.join("scripted_state.json");
        let value = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({"turn": 0, "vars": {}}));
        State(value, dir.to_path_buf())
    }

    fn turn(&self) -> u64 {
        self.0["turn"].as_u64().unwrap_or(0)
    }

    fn save(&self) {
        fs::write(self.1.join("scripted_state.json"), self.0.to_string()).expect("save state");
    }
}

/// A minimal MCP client over Streamable HTTP (JSON or an SSE stream per response).
struct Mcp {
    url: String,
    token: String,
    session: Option<String>,
    next_id: u64,
}

impl Mcp {
    fn connect() -> Mcp {
        let mut mcp = Mcp {
            url: env("FOREMAN_MCP_URL"),
            token: env("FOREMAN_MCP_TOKEN"),
            session: None,
            next_id: 1,
        };
        mcp.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "scripted-agent", "version": "1"},
            }),
        );
        mcp.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        mcp
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let reply =
            self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        match reply {
            Some(mut r) if r.get("error").is_none() => r["result"].take(),
            other => panic!("{method} failed: {other:?}"),
        }
    }

    /// Calls a tool, prints and logs what came back; returns its text and whether it failed.
    fn call(&mut self, tool: &str, args: Value, dir: &Path) -> (String, bool) {
        let result = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let text: String = result["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["text"].as_str())
            .collect();
        let is_error = result["isError"].as_bool().unwrap_or(false);
        println!("{tool} -> {}{text}", if is_error { "ERROR " } else { "" });
        // One JSON object a line, spaced like Python's `json.dumps` (tests read it as text).
        let entry = format!(
            "{{\"tool\": {}, \"error\": {is_error}, \"text\": {}}}\n",
            json!(tool),
            json!(text)
        );
        append(&dir.join("calls.jsonl"), &entry);
        (text, is_error)
    }

    fn post(&mut self, message: &Value) -> Option<Value> {
        let rest = self
            .url
            .strip_prefix("http://")
            .expect("an http:// MCP URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let body = message.to_string();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nAuthorization: Bearer {}\r\n\
             MCP-Protocol-Version: {PROTOCOL}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.token,
            body.len()
        );
        if let Some(session) = &self.session {
            head.push_str(&format!("Mcp-Session-Id: {session}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(host).expect("connect to foreman's MCP server");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        stream.write_all(head.as_bytes()).expect("send");
        stream.write_all(body.as_bytes()).expect("send");
        let mut reader = std::io::BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let mut raw = Vec::new();
        reader.read_to_end(&mut raw).expect("body");
        let raw = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            dechunk(&raw)
        } else {
            raw
        };
        let text = String::from_utf8_lossy(&raw).into_owned();
        assert!(
            (200..300).contains(&code),
            "HTTP {code} from foreman's MCP server: {text}"
        );
        if let Some(session) = header("mcp-session-id") {
            self.session = Some(session.to_owned());
        }
        if header("content-type").is_some_and(|t| t.starts_with("text/event-stream")) {
            return text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter(|d| !d.trim().is_empty())
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|d| d.get("id") == message.get("id"));
        }
        (!text.trim().is_empty()).then(|| serde_json::from_str(&text).expect("JSON reply"))
    }
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        let stop = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..stop]);
        raw = &raw[(stop + 2).min(raw.len())..];
    }
    out
}

/// A small deterministic generator seeded from text (FNV-1a, then SplitMix64).
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in seed.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(hash)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn substitute(value: &Value, vars: &Value) -> Value {
    match value {
        Value::String(s) if s.starts_with('$') => vars[&s[1..]].clone(),
        Value::Array(list) => Value::Array(list.iter().map(|v| substitute(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn first_number(text: &str) -> Option<u64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn strings(turn: &Value, key: &str) -> Vec<String> {
    turn.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
