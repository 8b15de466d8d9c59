//! Inbox drain benchmark: 10,000 deliveries that need no call to GitHub (labels foreman does
//! not act on, comments on issues it has no objective for, events and actions it ignores,
//! pings), spread over 16 repositories, are stored first; then `foreman serve` (the real
//! binary, in its own process) is started and timed until the inbox is empty. Prints the
//! drain rate and the server's memory: idle before the burst is stored and at its peak, on
//! SQLite and on PostgreSQL.
//!
//! Run with `cargo bench --bench drain`. PostgreSQL is reached at `FOREMAN_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); a fresh database is made and
//! dropped. Set `FOREMAN_TEST_POSTGRES=skip` to bench SQLite alone.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use foreman::model::{Clock, DeliveryId, SystemClock};
use foreman::store::Store;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// Deliveries in the burst.
const BURST: usize = 10_000;
/// Repositories they are spread over.
const REPOSITORIES: u64 = 16;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

/// The kinds of delivery in the burst: (event header, payload), none of which makes foreman
/// call GitHub.
fn kinds() -> Vec<(&'static str, Value)> {
    let labeled = fixture("issues.labeled"); // label `bug`: not foreman's
    let comment = fixture("issue_comment.created"); // no objective on that issue
    let mut unknown_action = fixture("issues.opened");
    unknown_action["action"] = json!("pinned");
    let unknown_event = json!({"action": "created", "starred_at": null,
        "repository": labeled["repository"].clone(), "sender": labeled["sender"].clone()});
    let mut ping = fixture("ping");
    ping["repository"] = labeled["repository"].clone();
    vec![
        ("issues", labeled),
        ("issue_comment", comment),
        ("issues", unknown_action),
        ("star", unknown_event),
        ("ping", ping),
    ]
}

async fn store_burst(store: &Store) {
    let kinds = kinds();
    let mut pending = Vec::with_capacity(BURST);
    for i in 0..BURST {
        let (event, template) = &kinds[i % kinds.len()];
        let mut payload = template.clone();
        let repo = (i as u64) % REPOSITORIES;
        payload["repository"]["id"] = json!(1_000 + repo);
        payload["repository"]["full_name"] = json!(format!("bench/repo-{repo}"));
        payload.as_object_mut().unwrap().remove("installation");
        let body = serde_json::to_vec(&payload).unwrap();
        let delivery = foreman::github::events::envelope(&body)
            .expect("envelope")
            .into_delivery(
                DeliveryId(format!("drain-{i}")),
                event,
                String::from_utf8(body).unwrap(),
                SystemClock.now(),
            );
        let store = store.clone();
        pending.push(tokio::spawn(async move {
            store.insert_delivery(delivery).await
        }));
    }
    for p in pending {
        p.await.unwrap().expect("stored");
    }
}

/// A figure from the process's `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn start_server(database_url: &str, dir: &std::path::Path) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("FOREMAN_LISTEN", "127.0.0.1:0")
        .env("FOREMAN_WORK_ROOT", dir.join("work"))
        .env("GITHUB_WEBHOOK_SECRET", "bench-secret")
        .env("FOREMAN_LOG", "error,foreman::service=info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn foreman");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("foreman exited before listening");
        if line.contains("listening on http://") {
            break;
        }
    }
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ERROR") {
                eprintln!("foreman: {line}");
            }
        }
    });
    child
}

async fn bench(name: &str, database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let url = SecretString::from(database_url.to_owned());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();

    // Idle: the server started on an empty inbox, settled.
    let server = start_server(database_url, dir.path()).await;
    let pid = server.id().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = status_mib(pid, "VmRSS:");
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stored_at = Instant::now();
    store_burst(&store).await;
    let stored_in = stored_at.elapsed();
    assert_eq!(store.inbox_depth().await.unwrap(), BURST as u64);

    let server = start_server(database_url, dir.path()).await;
    let pid = server.id().unwrap();
    let started = Instant::now();
    loop {
        let depth = store.inbox_depth().await.unwrap();
        if depth == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{depth} deliveries still pending after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained_in = started.elapsed();
    let peak = status_mib(pid, "VmHWM:");
    let dead = store
        .list_deliveries(foreman::store::DeliveryFilter {
            status: Some(foreman::model::delivery::DeliveryStatus::Dead),
            limit: 10,
        })
        .await
        .unwrap();
    assert!(dead.is_empty(), "deliveries died: {dead:?}");
    drop(server);
    println!(
        "{name:<9} drain: {BURST} deliveries over {REPOSITORIES} repositories in {:.2}s = {:.0}/s \
         (stored beforehand in {:.2}s); RSS idle {idle:.1} MiB, peak {peak:.1} MiB",
        drained_in.as_secs_f64(),
        BURST as f64 / drained_in.as_secs_f64(),
        stored_in.as_secs_f64(),
    );
    store.close().await;
}

fn main() {
    common::on_both_backends("drain", bench);
}
