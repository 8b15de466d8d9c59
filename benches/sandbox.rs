//! Sandbox benchmark: what bubblewrap adds to the start of an agent's turn. Each run starts a
//! process through foreman's own runtime ([`runtime::spawn`]) with the jail an agent gets —
//! its checkout and state directory writable, a file of foreman's bound read-only over the
//! state directory, a mirror's objects read-only, the network shared — reads its output to the
//! end and waits for it, exactly as a turn does; the same runs without the sandbox are the
//! baseline. Prints the median and 95th percentile of both and of the difference (the goal:
//! under 50 ms).
//!
//! Run with `cargo bench --bench sandbox` (needs bubblewrap; it says so and stops without).

use std::path::Path;
use std::time::{Duration, Instant};

use foreman::engine::runtime::process as runtime;
use foreman::sandbox::{Jail, Sandbox};

mod starts;

/// Process starts timed per mode, after the warm-up.
const RUNS: usize = 200;
/// Untimed starts first (page cache, binaries).
const WARMUP: usize = 20;

async fn time_starts(sandbox: &Sandbox, jail: &Jail, state: &Path, runs: usize) -> Vec<Duration> {
    let cmd = starts::command(state);
    let env = starts::env(state);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let process = runtime::spawn(&cmd, sandbox, jail, state, &env)
            .await
            .expect("start the process");
        starts::finish(process).await;
        times.push(started.elapsed());
    }
    times.sort();
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bwrap = Sandbox::bwrap();
    if let Err(why) = bwrap.check().await {
        println!("sandbox bench skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let [checkout, state, objects] = [
        "work/workspaces/s1",
        "work/sessions/1/state",
        "work/mirrors/o/r.git/objects",
    ]
    .map(|p| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(&path).unwrap();
        path
    });
    let jail = Jail {
        cwd: checkout.clone(),
        writable: vec![checkout, state.clone()],
        read_only: vec![objects, state.join("prompt.md")],
        overlays: Vec::new(),
        network: true,
        egress: None,
    };
    let plain = Sandbox::none(true);
    time_starts(&bwrap, &jail, &state, WARMUP).await;
    time_starts(&plain, &jail, &state, WARMUP).await;
    let sandboxed = time_starts(&bwrap, &jail, &state, RUNS).await;
    let unconfined = time_starts(&plain, &jail, &state, RUNS).await;
    println!("sandbox start-up per turn, {RUNS} process starts each (spawn, output, exit):");
    println!("{}", starts::line("bubblewrap", &sandboxed));
    println!("{}", starts::line("no sandbox", &unconfined));
    println!("{}", starts::added(&sandboxed, &unconfined));
}
