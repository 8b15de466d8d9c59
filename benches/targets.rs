//! Targets benchmark: what running on a remote target adds to the start of a turn. Twelve
//! sessions at once over three targets (four each) take turns one after another; each turn
//! starts through foreman's runtime exactly as an agent's does on a target
//! ([`process::spawn_remote`]: its files written there, the sandbox there, its output
//! streamed back over the target's one multiplexed SSH connection), and is timed until its
//! output has ended and it has exited. The same twelve at once on the local target
//! ([`process::spawn`], the same sandbox) are the baseline. Prints the median and 95th
//! percentile of both and of the difference: the added start latency per turn.
//!
//! The targets are real `sshd` hosts made as the tests make them (network namespaces on this
//! machine: it needs root, bubblewrap and Debian's openssh-server; it says so and stops
//! without). Run with `cargo bench --bench targets`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foreman::engine::runtime::process;
use foreman::model::targets::SshSpec;
use foreman::sandbox::{Jail, Sandbox};
use foreman::workspace::remote::{Connection, Remote, Site};

#[allow(dead_code)]
#[path = "../tests/it/support/ssh_host.rs"]
mod ssh_host;
mod starts;

/// Sessions taking turns at once.
const SESSIONS: usize = 12;
/// Remote targets they are spread over.
const TARGETS: usize = 3;
/// Turns each session takes, timed, after [`WARMUP`] untimed ones.
const TURNS: usize = 25;
const WARMUP: usize = 3;

/// Where a session's turns run: its checkout and state directory, and the jail over them.
struct Dirs {
    state: PathBuf,
    jail: Jail,
}

fn dirs(root: &Path, session: usize) -> Dirs {
    let work = root.join(format!("workspaces/s{session}"));
    let state = root.join(format!("sessions/{session}/state"));
    let objects = root.join("mirrors/o/r.git/objects");
    for dir in [&work, &state, &objects] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let jail = Jail {
        cwd: work.clone(),
        writable: vec![work, state.clone()],
        read_only: vec![objects],
        overlays: Vec::new(),
        network: true,
        egress: None,
    };
    Dirs { state, jail }
}

/// One session's turns, one after another (on `site`, or here without one); the timed ones.
async fn session(sandbox: Arc<Sandbox>, dirs: Dirs, site: Option<Arc<Site>>) -> Vec<Duration> {
    let cmd = starts::command(&dirs.state);
    let env = starts::env(&dirs.state);
    let mut times = Vec::with_capacity(TURNS);
    for turn in 0..WARMUP + TURNS {
        let started = Instant::now();
        let process = match &site {
            None => process::spawn(&cmd, &sandbox, &dirs.jail, &dirs.state, &env).await,
            Some(site) => {
                process::spawn_remote(
                    &cmd,
                    &process::RemoteStart {
                        site,
                        jail: &dirs.jail,
                        files_root: &dirs.state,
                        base_env: &env,
                        extra: &[],
                        make: &[],
                    },
                )
                .await
            }
        };
        starts::finish(process.expect("start the turn")).await;
        if turn >= WARMUP {
            times.push(started.elapsed());
        }
    }
    times
}

/// Every session at once; all their timed turns, sorted.
async fn run(sandbox: &Arc<Sandbox>, places: Vec<(Dirs, Option<Arc<Site>>)>) -> Vec<Duration> {
    let tasks: Vec<_> = places
        .into_iter()
        .map(|(dirs, site)| tokio::spawn(session(sandbox.clone(), dirs, site)))
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a session"));
    }
    all.sort();
    all
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sandbox = Arc::new(Sandbox::bwrap());
    if let Err(why) = sandbox.check().await {
        println!("targets bench skipped: {why}");
        return;
    }
    if !ssh_host::available() {
        println!("targets bench skipped: test hosts cannot be made here (see above)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (login, login_public) = ssh_host::key_pair(dir.path(), "foreman_login");
    let mut hosts = Vec::new();
    let mut sites = Vec::new();
    for i in 0..TARGETS {
        let host = ssh_host::SshHost::start(&login_public).await;
        let spec = SshSpec {
            user: Some("root".to_owned()),
            host: host.addr.to_string(),
            port: 22,
            key: Some(login.clone()),
            known_hosts: Some(host.known_hosts(dir.path())),
            accept_new_host_key: false,
        };
        let connection = Connection::open(Remote::new(spec), dir.path())
            .await
            .unwrap_or_else(|e| panic!("connect to test host {i}: {e:?}"));
        sites.push(Arc::new(Site::new(
            &format!("t{i}"),
            connection,
            host.work_root.clone(),
            String::new(),
        )));
        hosts.push(host);
    }
    let local_root = dir.path().join("local");
    let local: Vec<_> = (0..SESSIONS)
        .map(|s| (dirs(&local_root, s), None))
        .collect();
    // (The test hosts share this machine's file system: their directories are made here.)
    let remote: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let site = sites[s % TARGETS].clone();
            (dirs(&site.work_root, s), Some(site))
        })
        .collect();
    let local = run(&sandbox, local).await;
    let remote = run(&sandbox, remote).await;
    println!(
        "turn start, {SESSIONS} sessions at once, {TURNS} turns each (spawn, output, exit), \
         sandboxed:"
    );
    println!("{}", starts::line("local", &local));
    println!("{}", starts::line(&format!("{TARGETS} targets"), &remote));
    println!("{}", starts::added(&remote, &local));
    drop(hosts);
}
