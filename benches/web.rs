//! Web view benchmark: how long a session's page with 1,000 transcript events and its
//! objective's page take to serve (the store read and the server-side rendering, through
//! foreman's router over HTTP), and how much memory 100 people following a live transcript
//! cost, on SQLite and on PostgreSQL.
//!
//! GitHub's answer to "what may this person read" comes from a stand-in server on loopback
//! (the same JSON GitHub sends); the signed-in session is made in the store directly.
//! Memory is this process's resident size before and while the 100 followers are connected
//! and receiving lines, so it counts the followers' side of each connection too: an upper
//! bound for foreman's.
//!
//! Run with `cargo bench --bench web`.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use foreman::engine::Engine;
use foreman::engine::objective::lifecycle;
use foreman::engine::runtime::tokens::token_hash;
use foreman::model::{Clock, SessionId, SystemClock, Timestamp};
use foreman::store::{NewObjective, Store, TranscriptLine, WebSession};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Transcript events on the page.
const EVENTS: usize = 1_000;
/// People following the live transcript.
const FOLLOWERS: usize = 100;
/// Requests timed per page.
const ROUNDS: usize = 30;
const COOKIE: &str = "bench-session-cookie";

/// A Claude Code turn's output, one event per line: a tool call, its result, some text.
fn event(i: usize) -> String {
    match i % 3 {
        0 => json!({"type": "assistant", "message": {"content": [{"type": "tool_use", "id": format!("toolu_{i}"),
            "name": "Read", "input": {"file_path": format!("src/module_{i}.rs")}}],
            "usage": {"input_tokens": 1200 + i, "output_tokens": 40}}}),
        1 => json!({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": format!("toolu_{}", i - 1), "content": [{"type": "text",
            "text": "fn parse(input: &str) -> Result<Ast, Error> {\n    // ...\n}\n".repeat(8)}]}]}}),
        _ => json!({"type": "assistant", "message": {"content": [{"type": "text",
            "text": format!("Step {i}: the lexer splits nested braces <b>wrongly</b>; the parser then sees an unbalanced block and gives up, so I will change the brace counter and add a test for it.")}],
            "usage": {"input_tokens": 1300 + i, "output_tokens": 120}}}),
    }
    .to_string()
}

/// Stands in for GitHub's `GET /repos/{owner}/{repo}` with the person's permissions.
async fn github() -> String {
    let router = Router::new().route(
        "/repos/{owner}/{repo}",
        get(|| async {
            axum::Json(json!({"full_name": "octo/widgets", "private": true,
                "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn seed(store: &Store, engine: &Engine) -> (i64, SessionId) {
    let new = NewObjective {
        installation_id: None,
        repository_id: Some(1),
        repository: "octo/widgets".into(),
        issue_number: 7,
        title: "Widgets break on nested braces".into(),
        body: "They break.".into(),
        author: "alice".into(),
        author_permission: "write".into(),
        budget: foreman::model::Budget {
            sessions: 20,
            turns: 200,
            wall: Duration::from_secs(3600),
            cost_micros: None,
        },
        config: Default::default(),
        trigger_key: None,
        previous: None,
        started_by: None,
    };
    let (objective, manager) = lifecycle::start(&engine.objectives, &new)
        .await
        .unwrap()
        .unwrap();
    let now = SystemClock.now();
    let lines: Vec<TranscriptLine> = (0..EVENTS)
        .map(|i| TranscriptLine {
            at: now,
            stream: "out".into(),
            line: event(i),
        })
        .collect();
    store
        .append_transcript(manager, &lines, 100_000)
        .await
        .unwrap();
    store
        .create_web_session(&WebSession {
            id_hash: token_hash(&SecretString::from(COOKIE.to_owned())),
            login: "alice".into(),
            user_id: 1,
            token: SecretString::from("ghu_bench".to_owned()),
            csrf: "csrf".into(),
            created_at: now,
            expires_at: Timestamp(now.0 + 3_600_000),
        })
        .await
        .unwrap();
    (objective.0, manager)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn time_page(client: &reqwest::Client, url: &str, expect: &str) -> (f64, f64, f64, usize) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut size = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let response = client
            .get(url)
            .header("cookie", format!("foreman_session={COOKIE}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body = response.text().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(body.contains(expect), "{url}");
        size = body.len();
    }
    times.sort_by(f64::total_cmp);
    (
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        size,
    )
}

/// Opens a follower: a raw HTTP request for the live transcript, read until closed; `fed`
/// counts the followers that received new lines.
async fn follow(
    addr: std::net::SocketAddr,
    session: SessionId,
    after: i64,
    fed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /sessions/{session}/live?after={after} HTTP/1.1\r\nHost: bench\r\nCookie: foreman_session={COOKIE}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let mut counted = false;
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if !counted && buf[..n].windows(12).any(|w| w == b"event: lines") {
                counted = true;
                fed.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
}

fn main() {
    common::on_both_backends("web", async |backend, url| {
        let store = Store::connect(&SecretString::from(url.to_owned()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let engine = Engine::new(store.clone(), Arc::new(SystemClock));
        let (objective, manager) = seed(&store, &engine).await;
        let settings = foreman::web::WebSettings {
            api_url: github().await,
            ..Default::default()
        };
        let router = foreman::web::router(&engine, settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();

        let (min, median, max, size) = time_page(
            &client,
            &format!("http://{addr}/sessions/{manager}"),
            "Step 998",
        )
        .await;
        println!(
            "{backend}: session page with {EVENTS} transcript events ({} KiB): min {min:.1} ms, median {median:.1} ms, max {max:.1} ms",
            size / 1024
        );
        let (min, median, max, size) = time_page(
            &client,
            &format!("http://{addr}/objectives/{objective}"),
            "Widgets break",
        )
        .await;
        println!(
            "{backend}: objective page ({} KiB): min {min:.1} ms, median {median:.1} ms, max {max:.1} ms",
            size / 1024
        );

        // Followers: connected, then fed a line every 50 ms for 3 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib();
        let fed = Arc::new(AtomicUsize::new(0));
        let mut followers = Vec::with_capacity(FOLLOWERS);
        for _ in 0..FOLLOWERS {
            followers.push(follow(addr, manager, EVENTS as i64, fed.clone()).await);
        }
        let mut peak = before;
        for i in 0..60 {
            let line = TranscriptLine {
                at: SystemClock.now(),
                stream: "out".into(),
                line: event(EVENTS + i),
            };
            store
                .append_transcript(manager, &[line], 100_000)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            peak = peak.max(rss_kib());
        }
        assert_eq!(
            fed.load(Ordering::SeqCst),
            FOLLOWERS,
            "every follower received new lines"
        );
        for f in followers {
            f.abort();
        }
        println!(
            "{backend}: {FOLLOWERS} followers of a live transcript: {:.1} MiB more resident memory (before {:.1} MiB, peak {:.1} MiB)",
            (peak.saturating_sub(before)) as f64 / 1024.0,
            before as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    });
}
