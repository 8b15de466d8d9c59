//! Webhook ingress benchmark: posts signed deliveries to a running `foreman serve` (the real
//! binary, in its own process) and prints sustained throughput and the acknowledgement latency
//! at a steady 500 deliveries/s, on SQLite and on PostgreSQL. Every acknowledged delivery is
//! then checked to be in the store.
//!
//! Run with `cargo bench --bench ingress`. PostgreSQL is reached at `FOREMAN_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); a fresh database is made and
//! dropped. Set `FOREMAN_TEST_POSTGRES=skip` to bench SQLite alone.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::io::AsyncBufReadExt;

/// Deliveries posted in the throughput run.
const BURST: usize = 20_000;
/// Requests in flight at once in the throughput run.
const CONCURRENCY: usize = 64;
/// The steady rate of the latency run.
const RATE_PER_SECOND: u64 = 500;
/// Length of the latency run.
const STEADY_FOR: Duration = Duration::from_secs(10);
const SECRET: &str = "bench-secret";

struct Server {
    child: tokio::process::Child,
    url: String,
}

async fn start_server(database_url: &str, dir: &std::path::Path) -> Server {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("FOREMAN_LISTEN", "127.0.0.1:0")
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("FOREMAN_LOG", "warn,foreman::service=info")
        .current_dir(dir)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn foreman");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("foreman exited before listening");
        if let Some(at) = line.split("listening on http://").nth(1) {
            break format!("http://{}/webhooks/github", at.trim());
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, url }
}

fn payload() -> Arc<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/webhooks/issue_comment.created.json"
    );
    Arc::new(std::fs::read(path).expect("fixture"))
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Arc<Vec<u8>>,
    signature: &str,
    id: &str,
) -> Duration {
    let started = Instant::now();
    let response = client
        .post(url)
        .header("x-github-event", "issue_comment")
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", signature)
        .body(body.as_ref().clone())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 202, "delivery {id} not acknowledged");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn bench(name: &str, database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(database_url, dir.path()).await;
    let body = payload();
    let signature = foreman::github::signature::sign(&SecretString::from(SECRET.to_owned()), &body);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();

    // Warm up connections and caches.
    for i in 0..200 {
        post(
            &client,
            &server.url,
            &body,
            &signature,
            &format!("warm-{i}"),
        )
        .await;
    }

    // Latency at a steady rate (open loop: requests go out on schedule, whatever the answers).
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    let total = (RATE_PER_SECOND * STEADY_FOR.as_secs()) as usize;
    let mut pending = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (client, url, body, signature) = (
            client.clone(),
            server.url.clone(),
            body.clone(),
            signature.clone(),
        );
        pending.push(tokio::spawn(async move {
            post(&client, &url, &body, &signature, &format!("steady-{i}")).await
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for p in pending {
        latencies.push(p.await.unwrap());
    }
    latencies.sort();

    // Sustained throughput: CONCURRENCY clients posting as fast as they are answered.
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, body, signature, next) = (
            client.clone(),
            server.url.clone(),
            body.clone(),
            signature.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= BURST {
                    return;
                }
                post(&client, &url, &body, &signature, &format!("burst-{i}")).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let throughput = BURST as f64 / elapsed.as_secs_f64();

    // Every acknowledged delivery is in the store.
    let store = foreman::store::Store::connect(&SecretString::from(database_url.to_owned()))
        .await
        .unwrap();
    let stored = store.delivery_count().await.unwrap();
    let depth_after_burst = store.inbox_depth().await.unwrap();
    let drain_started = Instant::now();
    while store.inbox_depth().await.unwrap() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_in = drain_started.elapsed();
    let expected = (200 + BURST + total) as u64;
    assert_eq!(
        stored, expected,
        "acknowledged deliveries missing from the store"
    );
    server.child.kill().await.ok();

    let processed_during = BURST as u64 - depth_after_burst;
    println!(
        "{name:<10} processing: {:.0} deliveries/s during the burst; {depth_after_burst} left after it, drained in {:.2}s",
        processed_during as f64 / elapsed.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    println!(
        "{name:<10} throughput {throughput:>7.0} deliveries/s ({BURST} in {:.2}s, {CONCURRENCY} concurrent)",
        elapsed.as_secs_f64()
    );
    println!(
        "{name:<10} at {RATE_PER_SECOND}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({total} deliveries); {stored} stored",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn main() {
    common::on_both_backends("bench", bench);
}
