//! Targets over SSH, against real `sshd`s in network namespaces made by the test
//! ([`crate::support::ssh_host`]): `foreman doctor` checks each target (reachable, host key
//! known and unchanged, git, bubblewrap, the agent CLIs, free space) and says what to do;
//! a connection to a target streams a command's output, kills its whole process group, and
//! notices at once when the target's sshd dies.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use foreman::engine::Engine;
use foreman::engine::objective::lifecycle;
use foreman::model::{ManualClock, ObjectiveId, SessionStatus, Timestamp};
use serde_json::json;

use foreman::model::network::NetworkMode;
use foreman::model::targets::SshSpec;
use foreman::workspace::remote::{Connection, Remote, Site};
use foreman::workspace::{Checkout, Prepare, WorkspaceSettings, Workspaces};
use secrecy::SecretString;

use crate::agents::{new_objective, reaches};
use crate::doctor::{doctor, line};
use crate::gc::look_and_finish;
use crate::on_both_backends;
use crate::support::TestDb;
use crate::support::fake_github::FakeGitHub;
use crate::support::ssh_host::{self, SshHost, key_pair, sleeping};
use crate::support::{TestServer, eventually_within, origins};
use crate::workspaces::setup_with;

const REPO: &str = "octo/widgets";
/// How long a whole objective on a target may take in a test: its turns, checkouts and GC
/// take a few dozen SSH sessions each, slow when the suite loads the machine.
const REMOTE_WORK: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_target_over_ssh_and_refuses_unknown_or_changed_host_keys() {
    if !ssh_host::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (login, login_public) = key_pair(dir.path(), "foreman_login");
    let good = SshHost::start(&login_public).await;
    let other = SshHost::start(&login_public).await;
    let (_, impostor_key) = key_pair(dir.path(), "impostor");

    let known = |name: &str, content: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    // good: its key is known; changed: `other`'s address with a different key on record;
    // unknown: nothing on record; down: nothing listens.
    let good_known = known("good", good.known_hosts_line(&good.host_key));
    let changed_known = known("changed", other.known_hosts_line(&impostor_key));
    let unknown_known = known("unknown", String::new());
    let entry = |name: &str, host: &SshHost, known_hosts: &std::path::Path| {
        format!(
            "[targets.{name}]\nssh = \"root@{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\n\
             work_root = \"{}\"\ncapacity = 2\nlabels = [\"big\"]\n",
            host.addr,
            login.display(),
            known_hosts.display(),
            host.work_root.display()
        )
    };
    let mut file = String::from("[local]\ncapacity = 1\n");
    file.push_str(&entry("good", &good, &good_known));
    file.push_str(&entry("changed", &other, &changed_known));
    file.push_str(&entry("unknown", &other, &unknown_known));
    file.push_str(&format!(
        "[targets.down]\nssh = \"root@127.0.0.1:1\"\nkey = \"{}\"\nknown_hosts = \"{}\"\n\
         work_root = \"/srv/foreman\"\ncapacity = 1\n",
        login.display(),
        good_known.display()
    ));
    let targets = dir.path().join("targets.toml");
    std::fs::write(&targets, &file).unwrap();

    let env = [
        ("DATABASE_URL", "sqlite::memory:"),
        ("FOREMAN_TARGETS", targets.to_str().unwrap()),
        ("FOREMAN_MIN_FREE_DISK", "1MiB"),
        ("FOREMAN_MANAGER_AGENT", "command"),
        ("FOREMAN_MANAGER_COMMAND", "/bin/sh"),
        ("FOREMAN_WORKER_AGENT", "command"),
        ("FOREMAN_WORKER_COMMAND", "git"),
    ];
    let out = doctor(dir.path(), &env).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();

    // Ready, or ready with its slow login shell pointed out (this machine's root may have a
    // heavy `.bashrc`: the test hosts log in as root).
    let ready = line(&report, "target good");
    assert!(
        ready.starts_with("ok ")
            || (ready.starts_with("warn") && ready.contains("the login shell there took")),
        "{report}"
    );
    assert!(
        ready.contains(" ms"),
        "the login shell's start was measured: {ready}"
    );
    for found in [
        "root@",
        "git version",
        "bubblewrap",
        "agents /bin/sh, ",
        "capacity 2",
        "free in",
    ] {
        assert!(ready.contains(found), "{found}: {ready}");
    }
    let changed = line(&report, "target changed");
    assert!(
        changed.starts_with("FAIL") && changed.contains("has changed: refused"),
        "{report}"
    );
    let unknown = line(&report, "target unknown");
    assert!(
        unknown.starts_with("FAIL")
            && unknown.contains("is not known: refused")
            && unknown.contains(&format!("ssh-keyscan -p 22 {}", other.addr)),
        "{report}"
    );
    let down = line(&report, "target down");
    assert!(
        down.starts_with("FAIL") && down.contains("cannot reach 127.0.0.1:1"),
        "{report}"
    );
    assert!(!out.status.success(), "failed targets fail the run");
    // Trust was never extended on first use: nothing was added to the known hosts.
    assert_eq!(std::fs::read_to_string(&unknown_known).unwrap(), "");
    // A probe changes nothing on the target.
    assert!(!good.work_root.exists());
}

#[tokio::test]
async fn a_broken_targets_file_is_one_failed_check_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        "[targets.x]\nssh = \"-oProxyCommand=evil\"\nwork_root = \"/w\"\ncapacity = 1\n",
    )
    .unwrap();
    let env = [
        ("DATABASE_URL", "sqlite::memory:"),
        ("FOREMAN_TARGETS", targets.to_str().unwrap()),
    ];
    let out = doctor(dir.path(), &env).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let failed = line(&report, "targets");
    assert!(
        failed.starts_with("FAIL")
            && failed.contains("targets.toml")
            && failed.contains("[targets.x]: ssh: `-oProxyCommand=evil` is not a host"),
        "{report}"
    );
}

/// A host, the key to log in to it, and a connection's settings for it.
async fn reachable_host(dir: &std::path::Path) -> (SshHost, Remote) {
    let (login, login_public) = key_pair(dir, "foreman_login");
    let host = SshHost::start(&login_public).await;
    let spec = SshSpec {
        user: Some("root".to_owned()),
        host: host.addr.to_string(),
        port: 22,
        key: Some(login),
        known_hosts: Some(host.known_hosts(dir)),
        accept_new_host_key: false,
    };
    (host, Remote::new(spec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_command_streams_its_output_and_is_killed_with_its_whole_group() {
    if !ssh_host::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_host, remote) = reachable_host(dir.path()).await;
    let connection = Connection::open(remote, dir.path()).await.unwrap();
    // Seconds no other process sleeps for: how the test finds what the command started.
    let seconds = format!("{}", 700_000 + std::process::id());
    let mut child = connection
        .start(&format!(
            "echo started\nsleep {seconds} &\nsleep {seconds}\necho never\n"
        ))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), child.stdout.next_line())
        .await
        .expect("output streams while the command runs")
        .unwrap();
    assert_eq!(first.as_deref(), Some("started"));
    wait_for(|| sleeping(&seconds).len() == 2, "both sleeps started").await;

    connection.kill(&child).await.unwrap();
    wait_for(|| sleeping(&seconds).is_empty(), "the whole group killed").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.child.wait())
        .await
        .expect("the ssh command ends with its group")
        .unwrap();
    assert!(!status.success());
    assert_eq!(
        child.stdout.next_line().await.unwrap(),
        None,
        "never printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_sshd_dies_is_noticed_at_once() {
    if !ssh_host::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut host, remote) = reachable_host(dir.path()).await;
    let connection = Connection::open(remote, dir.path()).await.unwrap();
    let seconds = format!("{}", 800_000 + std::process::id());
    let child = connection
        .start(&format!("sleep {seconds}\n"))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), connection.closed())
            .await
            .is_err(),
        "the connection holds while the host lives"
    );
    host.kill_sshd();
    tokio::time::timeout(Duration::from_secs(10), connection.closed())
        .await
        .expect("a dead target is noticed within seconds");
    let mut child = child;
    tokio::time::timeout(Duration::from_secs(10), child.child.wait())
        .await
        .expect("its commands end with it")
        .unwrap();
    // What it left running on the (dead) host is this machine's to clean up.
    for pid in sleeping(&seconds) {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

async fn wait_for(done: impl Fn() -> bool, what: &str) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreman_is_reached_from_a_target_through_a_socket_the_connection_forwards() {
    if !ssh_host::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (host, remote) = reachable_host(dir.path()).await;
    let connection = Connection::open(remote, dir.path()).await.unwrap();
    // foreman's side: an endpoint on loopback only.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 18\r\nconnection: close\r\n\r\nhello from foreman")
                .await;
        }
    });
    let socket = host.dir.path().join("mcp.sock");
    let fetch = format!(
        "curl -s --max-time 5 --unix-socket {} http://foreman/; echo\n",
        socket.display()
    );

    connection
        .forward(&socket, &local.to_string())
        .await
        .unwrap();
    let mut child = connection.start(&fetch).await.unwrap();
    let answer = child.stdout.next_line().await.unwrap();
    assert_eq!(answer.as_deref(), Some("hello from foreman"));

    connection
        .cancel_forward(&socket, &local.to_string())
        .await
        .unwrap();
    let mut child = connection.start(&fetch).await.unwrap();
    let answer = child.stdout.next_line().await.unwrap();
    assert_eq!(
        answer.as_deref(),
        Some(""),
        "nothing answers once cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_is_made_on_a_target_and_its_work_comes_back_with_no_credential_there() {
    if !ssh_host::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (host, remote) = reachable_host(dir.path()).await;
    let site = Site::new(
        "t1",
        Connection::open(remote, dir.path()).await.unwrap(),
        host.work_root.clone(),
        String::new(),
    );
    let origins = dir.path().join("origins");
    let origin = crate::support::make_origin(&origins, REPO, &[("a.txt", "a")]);
    let mut settings =
        WorkspaceSettings::github(dir.path().join("work"), crate::support::test_sandbox());
    settings.git_url = format!("file://{}", origins.display());
    let workspaces = Workspaces::new(settings);
    // The credential foreman fetches upstream with: it must never reach the target.
    let canary = "ghs_CANARY7f3e9a1c";
    let token = SecretString::from(canary.to_owned());
    let path = host.work_root.join("workspaces/s1");
    let branch = "foreman/1-widgets-s1";
    let prepare = Prepare {
        repository: REPO,
        base: None,
        path: &path,
        branch: Some(branch),
        start_at: None,
        auth: Some(&token),
    };
    let prepared = workspaces.prepare_on(&site, &prepare).await.unwrap();
    let on_site = &site;
    let there = |script: String| async move { on_site.connection.run_script(&script).await };
    assert_eq!(
        there(format!(
            "cd {} && cat a.txt && echo && git rev-parse --abbrev-ref HEAD",
            path.display()
        ))
        .await
        .unwrap(),
        format!("a\n{branch}")
    );

    // The agent's work there, and what a hostile agent leaves in `.git`: a hook and a config
    // that would each leave a file behind if git ran them.
    there(format!(
        "set -e; cd {}; echo b > b.txt\n\
         printf '#!/bin/sh\\ntouch hooked\\n' > .git/hooks/post-commit; chmod +x .git/hooks/post-commit\n\
         printf '[core]\\n\\thooksPath = .git/hooks\\n\\tfsmonitor = touch monitored\\n' >> .git/config\n",
        path.display()
    ))
    .await
    .unwrap();
    let checkout = Checkout {
        path: &path,
        repository: REPO,
        site: Some(&site),
    };
    let taken = workspaces
        .take(&checkout, "Add b", &prepared.base_sha)
        .await
        .unwrap()
        .expect("new work");
    workspaces
        .push(REPO, &taken, branch, None, None)
        .await
        .unwrap();
    let files = crate::support::git(&origin, &["ls-tree", "-r", "--name-only", branch]);
    assert_eq!(files, "a.txt\nb.txt");
    assert_eq!(
        there(format!("cd {} && ls -A", path.display()))
            .await
            .unwrap(),
        ".git\na.txt\nb.txt",
        "no hook or fsmonitor of the agent's ran"
    );

    // A second checkout reuses the target's mirror; nothing new is a clean `None`.
    let path2 = host.work_root.join("workspaces/s2");
    let prepared2 = workspaces
        .prepare_on(
            &site,
            &Prepare {
                path: &path2,
                branch: None,
                ..prepare.clone()
            },
        )
        .await
        .unwrap();
    let read_only = Checkout {
        path: &path2,
        ..checkout
    };
    assert_eq!(
        workspaces
            .take(&read_only, "nothing", &prepared2.base_sha)
            .await
            .unwrap(),
        None
    );
    let leaked = there(format!(
        "grep -rl {canary} {} || true",
        host.work_root.display()
    ))
    .await
    .unwrap();
    assert_eq!(leaked, "", "the credential reached the target's disk");
}

/// Turns claim their place on a target in the database, under the target's lock: however
/// many instances claim at once, a target never holds more turns than its capacity.
async fn a_targets_capacity_holds_across_instances(db: TestDb) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let first = Engine::new(db.store().await, clock.clone());
    let second = db.store().await;
    let mut managers = Vec::new();
    for issue in 1..=24 {
        let (_, manager) = lifecycle::start(&first.objectives, &new_objective(issue))
            .await
            .unwrap()
            .unwrap();
        managers.push(manager);
    }
    let now = first.clock.now();
    // All at once.
    let go = Arc::new(tokio::sync::Barrier::new(managers.len()));
    let claims = managers.iter().enumerate().map(|(i, id)| {
        let store = if i % 2 == 0 {
            first.store.clone()
        } else {
            second.clone()
        };
        let id = *id;
        let go = go.clone();
        tokio::spawn(async move {
            go.wait().await;
            store.claim_start(id, "big", 3, now).await.unwrap()
        })
    });
    let claims: Vec<_> = claims.collect();
    let mut placed = 0;
    for claim in claims {
        placed += usize::from(claim.await.unwrap());
    }
    assert_eq!(placed, 3, "exactly the target's capacity");
    let placed_on = first.store.targets_of(&managers).await.unwrap();
    assert_eq!(placed_on.len(), 3);
    assert!(placed_on.iter().all(|(_, t)| t == "big"));
    // Another target has room of its own.
    let waiting: Vec<_> = managers
        .iter()
        .filter(|m| !placed_on.iter().any(|(p, _)| p == *m))
        .copied()
        .collect();
    assert!(
        second
            .claim_start(waiting[0], "small", 1, now)
            .await
            .unwrap()
    );
    assert!(
        !second
            .claim_start(waiting[1], "small", 1, now)
            .await
            .unwrap()
    );
}
on_both_backends!(a_targets_capacity_holds_across_instances);

/// An objective whose repository asks for a label only a remote target has: its manager and
/// worker run there (over one SSH connection, foreman's MCP endpoint reached through it),
/// their checkouts are made there from foreman's mirror, the worker's work comes back and
/// becomes a pull request — and no GitHub token or foreman secret is ever on the target.
async fn an_objective_runs_on_a_remote_target_and_its_pull_request_arrives(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let plan = json!({
        "manager": [
            {"calls": [
                {"tool": "spawn_worker", "args": {"title": "Remote", "instructions": "x"}, "save": "w"}
            ]},
            {"when": "\"Remote\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": "$w", "title": "From afar", "body": "Made on t1.", "closes_issue": true}}
            ]}
        ],
        "workers": {
            "Remote": {"write": {"far.txt": "far\n"}, "print": ["hello from t1"], "sleep": 0.5,
                       "calls": [{"tool": "report_result", "args": {"summary": "wrote far"}}]}
        }
    });
    let (host, server, fake, objective) = on_target(&db, plan, |_| {}).await;
    let (stop_watching, watching) = watch_processes(&host);
    let store = server.store();
    let pulls = eventually_within(REMOTE_WORK, "the pull request", || async {
        let pulls = store.pulls_of(objective).await.unwrap();
        (!pulls.is_empty()).then_some(pulls)
    })
    .await;
    let worker = reaches(store, objective, "Remote", SessionStatus::Succeeded).await;
    let sessions = store.sessions_of(objective).await.unwrap();
    assert!(
        sessions.iter().all(|s| s.target.as_deref() == Some("t1")),
        "every session ran on t1: {:?}",
        sessions.iter().map(|s| &s.target).collect::<Vec<_>>()
    );
    let files = crate::support::git(
        &origins(&db).join(format!("{REPO}.git")),
        &["ls-tree", "-r", "--name-only", &pulls[0].branch],
    );
    assert!(files.lines().any(|f| f == "far.txt"), "{files}");
    // The checkouts and the agents' state are on the target, not here.
    for w in store.workspaces_of(objective).await.unwrap() {
        assert_eq!(w.target, "t1");
        assert!(w.path.starts_with(&host.work_root.display().to_string()));
    }
    assert!(
        host.work_root
            .join(format!("sessions/{}/state/calls.jsonl", worker.id))
            .exists()
    );
    // Its output came back into the transcript as it came.
    let transcript = store.transcript(worker.id).await.unwrap();
    assert!(
        transcript.iter().any(|l| l.line.contains("hello from t1")),
        "{transcript:?}"
    );
    // Canaries: every token GitHub issued, the webhook secret, the App's key.
    let mut canaries = fake.issued_tokens();
    assert!(!canaries.is_empty());
    canaries.push(crate::support::WEBHOOK_SECRET.to_owned());
    canaries.push("PRIVATE KEY".to_owned());
    // None in the command line or environment of any process on the target.
    stop_watching.store(true, Ordering::SeqCst);
    let seen = watching.join().unwrap();
    assert!(
        seen.iter().any(|p| p.contains("bwrap"))
            && seen.iter().any(|p| p.contains("FOREMAN_MCP_TOKEN=")),
        "the watch saw the agents and their environment"
    );
    for canary in &canaries {
        assert!(
            !seen.iter().any(|p| p.contains(canary.as_str())),
            "`{canary}` was in a process's command line or environment"
        );
    }
    // Nor on the target's disk (`bin/` would hold foreman's own executable, the relay under
    // the allowlist, which names a key format).
    for canary in &canaries {
        let found = std::process::Command::new("grep")
            .args(["-rlF", "--exclude-dir=bin", canary])
            .arg(&host.work_root)
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "`{canary}` reached the target: {}",
            String::from_utf8_lossy(&found.stdout)
        );
    }
    server.shutdown().await;
}
on_both_backends!(an_objective_runs_on_a_remote_target_and_its_pull_request_arrives);

/// Collects, every 20 ms until stopped, the command line and environment of every process on
/// the test host (descended from its sshd); the join handle returns what it saw.
fn watch_processes(host: &SshHost) -> (Arc<AtomicBool>, std::thread::JoinHandle<HashSet<String>>) {
    let sshd = host.sshd_pid();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let watch = std::thread::spawn(move || {
        let mut seen = HashSet::new();
        while !stopped.load(Ordering::SeqCst) {
            for pid in ssh_host::descendants(sshd) {
                for what in ["cmdline", "environ"] {
                    if let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{what}")) {
                        seen.insert(String::from_utf8_lossy(&bytes).replace('\0', " "));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    (stop, watch)
}

/// A server with a test host as target `t1` (label `remote`), the fake GitHub, and an
/// objective following `plan` whose repository asks for that label.
async fn on_target(
    db: &TestDb,
    plan: serde_json::Value,
    change: impl FnOnce(&mut foreman::config::ServeArgs),
) -> (SshHost, TestServer, FakeGitHub, ObjectiveId) {
    let (mut hosts, server, fake, objective) =
        on_targets(db, 1, plan, |args, _| change(args)).await;
    (hosts.remove(0), server, fake, objective)
}

/// [`on_target`] with `n` test hosts, targets `t1`…`tN` (label `remote`, which the
/// repository asks for), each with room for two turns; `change` sees the hosts before the
/// server starts.
async fn on_targets(
    db: &TestDb,
    n: usize,
    plan: serde_json::Value,
    change: impl FnOnce(&mut foreman::config::ServeArgs, &[SshHost]),
) -> (Vec<SshHost>, TestServer, FakeGitHub, ObjectiveId) {
    on_targets_asking(db, n, &["remote"], plan, change).await
}

/// [`on_targets`] with the repository asking for `labels` (none: any target, `local`
/// included, which also has room for two).
async fn on_targets_asking(
    db: &TestDb,
    n: usize,
    labels: &[&str],
    plan: serde_json::Value,
    change: impl FnOnce(&mut foreman::config::ServeArgs, &[SshHost]),
) -> (Vec<SshHost>, TestServer, FakeGitHub, ObjectiveId) {
    let (login, login_public) = key_pair(&db.dir(), "foreman_login");
    let mut hosts = Vec::new();
    let mut file = String::from("[local]\ncapacity = 2\n");
    for i in 1..=n {
        let host = SshHost::start(&login_public).await;
        file.push_str(&format!(
            "\n[targets.t{i}]\nssh = \"root@{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\n\
             work_root = \"{}\"\ncapacity = 2\nlabels = [\"remote\"]\n",
            host.addr,
            login.display(),
            host.known_hosts(&db.dir()).display(),
            host.work_root.display()
        ));
        hosts.push(host);
    }
    let targets = db.dir().join("targets.toml");
    std::fs::write(&targets, file).unwrap();
    let (server, fake, objective) = setup_with(db, plan, |args, objective, fake| {
        args.agents.targets = Some(targets);
        // Open: under the allowlist every new test host gets its own copy of foreman's debug
        // executable (350 MB) as the relay; the allowlist on targets has a test of its own.
        args.agents.network.network_mode = NetworkMode::Open;
        change(args, &hosts);
        // The repository asks for them, whichever way its objective starts (here, or from the
        // label reconciliation finds).
        fake.set_file(
            REPO,
            "main",
            ".github/foreman.yml",
            &format!("target_labels: [{}]\n", labels.join(", ")),
        );
        objective.config.target_labels = labels.iter().map(|l| (*l).to_owned()).collect();
    })
    .await;
    (hosts, server, fake, objective)
}

/// A target whose sshd dies mid-turn: the turns there end saying so, the target is left out
/// of placement, and the objective goes on on the other target with a respawned manager.
/// A cancel kills what runs on a target, grandchildren included.
async fn a_lost_target_fails_its_sessions_and_the_objective_goes_on_elsewhere(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let plan = json!({
        "manager": [
            {"calls": [{"tool": "spawn_worker", "args": {"title": "Slow", "instructions": "x"}}]}
        ],
        "workers": {"Slow": {"spawn_sleeper": 731, "sleep": 731}}
    });
    let (mut hosts, server, _fake, objective) = on_targets(&db, 2, plan, |_, _| {}).await;
    let store = server.store();
    let worker = eventually_within(REMOTE_WORK, "the worker to run", || async {
        let w = crate::agents::session_titled(store, objective, "Slow").await?;
        let checkout = std::path::PathBuf::from(w.workdir.clone()?);
        (w.status == SessionStatus::Running && crate::support::processes_in(&checkout).len() >= 2)
            .then_some(w)
    })
    .await;
    let first = worker.target.clone().unwrap();
    let (lost, other) = if first == "t1" { (0, "t2") } else { (1, "t1") };
    hosts[lost].kill_sshd();
    let failed = eventually_within(REMOTE_WORK, "the worker to fail", || async {
        let w = store.session(worker.id).await.unwrap()?;
        (w.status == SessionStatus::Failed).then_some(w)
    })
    .await;
    let reason = failed.status_reason.unwrap_or_default();
    assert!(reason.contains(&format!("target `{first}`")), "{reason}");
    // The manager there is lost with it; the next one runs on the other target, and so does
    // the worker it spawns.
    let again = eventually_within(REMOTE_WORK, "work to go on elsewhere", || async {
        let sessions = store.sessions_of(objective).await.unwrap();
        sessions.into_iter().find(|s| {
            s.title == "Slow"
                && s.id != worker.id
                && s.status == SessionStatus::Running
                && s.target.as_deref() == Some(other)
        })
    })
    .await;
    let managers: Vec<_> = store
        .sessions_of(objective)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.role == foreman::model::Role::Manager)
        .collect();
    assert!(managers.len() >= 2, "{managers:?}");
    assert_eq!(managers[0].status, SessionStatus::Failed);
    assert_eq!(managers.last().unwrap().target.as_deref(), Some(other));
    // A cancel kills the worker's whole group there (its sleeper too).
    let checkout = std::path::PathBuf::from(again.workdir.clone().unwrap());
    eventually_within(REMOTE_WORK, "the worker and its sleeper there", || async {
        (crate::support::processes_in(&checkout).len() >= 2).then_some(())
    })
    .await;
    assert!(
        foreman::engine::runtime::turns::cancel(
            &server.running.engine.runtime,
            again.id,
            "test cancel"
        )
        .await
        .unwrap()
    );
    eventually_within(REMOTE_WORK, "the sleepers to die", || async {
        sleeping("731").is_empty().then_some(())
    })
    .await;
    server.shutdown().await;
}
on_both_backends!(a_lost_target_fails_its_sessions_and_the_objective_goes_on_elsewhere);

/// GC works on targets as here: once an objective that ran on one has ended, its checkouts
/// there are removed.
async fn an_ended_objectives_checkouts_on_a_target_are_reclaimed(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let (host, server, _fake, objective) = on_target(&db, look_and_finish(), |args| {
        args.gc.interval = Duration::from_millis(200);
    })
    .await;
    let store = server.store();
    let workspaces = eventually_within(
        REMOTE_WORK,
        "the checkouts on t1 to be reclaimed",
        || async {
            let all = store.workspaces_of(objective).await.unwrap();
            (all.len() == 2
                && all
                    .iter()
                    .all(|w| w.status == foreman::model::WorkspaceStatus::Archived))
            .then_some(all)
        },
    )
    .await;
    for w in &workspaces {
        assert_eq!(w.target, "t1");
        assert!(w.path.starts_with(&host.work_root.display().to_string()));
        assert!(!std::path::Path::new(&w.path).exists(), "{}", w.path);
    }
    let left: Vec<_> = std::fs::read_dir(host.work_root.join("workspaces"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    server.shutdown().await;
}
on_both_backends!(an_ended_objectives_checkouts_on_a_target_are_reclaimed);

/// A target whose host key changed is refused, whenever foreman connects: the session
/// placed there goes back in the queue (nothing of it was made there), the target is left
/// out of placement saying why, and the objective runs on the other target.
async fn a_target_whose_host_key_changed_is_refused_and_work_goes_elsewhere(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let (_, impostor) = key_pair(&db.dir(), "impostor");
    let (hosts, server, _fake, objective) = on_targets(&db, 2, look_and_finish(), |_, hosts| {
        // t1 (placed first: the two have the same room) now answers with another key.
        std::fs::write(
            db.dir().join(format!("known_hosts_{}", hosts[0].addr)),
            hosts[0].known_hosts_line(&impostor),
        )
        .unwrap();
    })
    .await;
    let store = server.store();
    let sessions = done_on_targets(store, objective).await;
    all_succeeded_on(&sessions, "t2");
    let down = server.running.engine.runtime.sites.down();
    let why = down.get("t1").expect("t1 is left out of placement");
    assert!(
        why.contains("target `t1`") && why.contains("changed"),
        "{why}"
    );
    assert!(!down.contains_key("t2"), "{down:?}");
    // Nothing was made on t1.
    assert!(!hosts[0].work_root.exists());
    server.shutdown().await;
}
on_both_backends!(a_target_whose_host_key_changed_is_refused_and_work_goes_elsewhere);

/// Disk pressure is measured on each target: with a target's work root short of space (a
/// small file system of its own there, while this machine has plenty), a session placed
/// there waits saying so instead of failing half-way through a checkout, and goes on once
/// there is room.
async fn a_target_short_of_disk_space_makes_its_session_wait(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let (mut hosts, server, _fake, objective) =
        on_targets(&db, 1, look_and_finish(), |args, hosts| {
            args.gc.min_free_disk = 64 << 20;
            // t1's work root: a small file system of its own, there only.
            let root = hosts[0].work_root.display().to_string();
            std::fs::create_dir_all(&root).unwrap();
            assert!(
                hosts[0].in_mounts(&["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", &root]),
                "mount a small file system over t1's work root"
            );
        })
        .await;
    let host = hosts.remove(0);
    let store = server.store();
    let manager = eventually_within(REMOTE_WORK, "the manager to wait for space", || async {
        let o = store.objective(objective).await.unwrap()?;
        let m = store.session(o.manager?).await.unwrap()?;
        (m.status == SessionStatus::Queued
            && m.activity
                .as_deref()
                .is_some_and(|a| a.starts_with("waiting for disk space")))
        .then_some(m)
    })
    .await;
    let why = manager.activity.unwrap();
    assert!(why.contains("target `t1`"), "{why}");
    assert!(manager.status_reason.is_none(), "it did not fail");
    // Room there (the small file system goes): the objective goes on, on t1.
    let root = host.work_root.display().to_string();
    assert!(host.in_mounts(&["umount", &root]));
    for s in done_on_targets(store, objective).await {
        assert_eq!(s.target.as_deref(), Some("t1"));
    }
    assert!(host.work_root.join("workspaces").exists());
    server.shutdown().await;
}
on_both_backends!(a_target_short_of_disk_space_makes_its_session_wait);

/// Every one of `sessions` ran on `target` and succeeded.
fn all_succeeded_on(sessions: &[foreman::model::Session], target: &str) {
    assert!(
        sessions
            .iter()
            .all(|s| s.target.as_deref() == Some(target) && s.status == SessionStatus::Succeeded),
        "{:?}",
        sessions
            .iter()
            .map(|s| (&s.target, s.status, &s.status_reason))
            .collect::<Vec<_>>()
    );
}

/// Waits until the objective is done and all its sessions have ended; its sessions.
async fn done_on_targets(
    store: &foreman::store::Store,
    objective: ObjectiveId,
) -> Vec<foreman::model::Session> {
    eventually_within(
        REMOTE_WORK,
        "the objective and its sessions to end",
        || async {
            let o = store.objective(objective).await.unwrap()?;
            let sessions = store.sessions_of(objective).await.unwrap();
            (o.status == foreman::model::ObjectiveStatus::Done
                && sessions.iter().all(|s| s.status.is_terminal()))
            .then_some(sessions)
        },
    )
    .await
}

/// A manager that spawns two workers and stays in its turn a while (holding its place on its
/// target, so the second worker finds no room beside the first), then publishes each worker's
/// pull request as it succeeds and, with the second (the slower), finishes.
fn two_workers() -> serde_json::Value {
    json!({
        "manager": [
            {"calls": [
                {"tool": "spawn_worker", "args": {"title": "Alpha", "instructions": "x"}, "save": "a"},
                {"tool": "spawn_worker", "args": {"title": "Beta", "instructions": "x"}, "save": "b"}
            ], "sleep": 3},
            {"when": "\"Alpha\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": "$a", "title": "Alpha", "body": "a", "closes_issue": false}}
            ]},
            {"when": "\"Beta\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": "$b", "title": "Beta", "body": "b", "closes_issue": true}},
                {"tool": "mark_objective_done", "args": {"summary": "Both published."}}
            ]}
        ],
        "workers": {
            "Alpha": {"write": {"alpha.txt": "a\n"}, "sleep": 1,
                      "calls": [{"tool": "report_result", "args": {"summary": "wrote alpha"}}]},
            "Beta": {"write": {"beta.txt": "b\n"}, "sleep": 8,
                     "calls": [{"tool": "report_result", "args": {"summary": "wrote beta"}}]}
        }
    })
}

/// Each of the two workers' branches has its file in the origin; once both are merged (which
/// foreman reads back from GitHub every half second here) the objective ends: its sessions,
/// by title.
async fn both_published(
    db: &TestDb,
    server: &TestServer,
    fake: &FakeGitHub,
    objective: ObjectiveId,
) -> std::collections::HashMap<String, foreman::model::Session> {
    let store = server.store();
    let pulls = eventually_within(REMOTE_WORK, "both pull requests", || async {
        let pulls = store.pulls_of(objective).await.unwrap();
        (pulls.len() == 2).then_some(pulls)
    })
    .await;
    for (pull, file) in pulls.iter().zip(["alpha.txt", "beta.txt"]) {
        let files = crate::support::git(
            &origins(db).join(format!("{REPO}.git")),
            &["ls-tree", "-r", "--name-only", &pull.branch],
        );
        assert!(files.lines().any(|f| f == file), "{file} in {files}");
        fake.merge_pull(REPO, pull.number);
    }
    done_on_targets(store, objective)
        .await
        .into_iter()
        .map(|s| (s.title.clone(), s))
        .collect()
}

/// Two workers at once over two targets with room for two turns each: the manager and the
/// first worker share a target, the second goes to the other (no room left beside them);
/// both pull requests arrive, and once the objective is done GC empties both hosts.
async fn two_workers_are_placed_by_capacity_over_two_targets(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let (hosts, server, fake, objective) = on_targets(&db, 2, two_workers(), |args, _| {
        args.gc.interval = Duration::from_millis(200);
        args.reconcile.pulls_every = Duration::from_millis(500);
    })
    .await;
    let store = server.store();
    let sessions = both_published(&db, &server, &fake, objective).await;
    let target = |title: &str| sessions[title].target.clone().unwrap_or_default();
    let manager = sessions
        .values()
        .find(|s| s.role == foreman::model::Role::Manager)
        .unwrap();
    assert_eq!(manager.target.as_deref(), Some(target("Alpha").as_str()));
    assert_ne!(target("Alpha"), target("Beta"), "{sessions:?}");
    assert!(["t1", "t2"].contains(&target("Beta").as_str()));
    // GC: every checkout on both hosts goes.
    eventually_within(REMOTE_WORK, "the checkouts on both hosts to go", || async {
        let all = store.workspaces_of(objective).await.unwrap();
        all.iter()
            .all(|w| w.status == foreman::model::WorkspaceStatus::Archived)
            .then_some(())
    })
    .await;
    for host in &hosts {
        let left: Vec<_> = std::fs::read_dir(host.work_root.join("workspaces"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{}: {left:?}", host.addr);
    }
    server.shutdown().await;
}
on_both_backends!(two_workers_are_placed_by_capacity_over_two_targets);

/// A repository that asks for no label: its manager runs on the foreman host, and the worker
/// that finds no room there runs on the remote target; the local manager follows it through
/// its turn and publishes its work from there.
async fn a_manager_here_publishes_a_worker_that_ran_on_a_target(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let (_hosts, server, fake, objective) =
        on_targets_asking(&db, 1, &[], two_workers(), |args, _| {
            args.reconcile.pulls_every = Duration::from_millis(500);
        })
        .await;
    let sessions = both_published(&db, &server, &fake, objective).await;
    let target = |title: &str| sessions[title].target.clone().unwrap_or_default();
    assert_eq!(target("Alpha"), "local", "{sessions:?}");
    assert_eq!(target("Beta"), "t1", "{sessions:?}");
    let manager = sessions
        .values()
        .find(|s| s.role == foreman::model::Role::Manager)
        .unwrap();
    assert_eq!(manager.target.as_deref(), Some("local"));
    server.shutdown().await;
}
on_both_backends!(a_manager_here_publishes_a_worker_that_ran_on_a_target);

/// Under the network allowlist (the default) an agent on a remote target has no network of
/// its own there: it reaches a host the operator allows only through foreman's proxy (that
/// host listens on foreman's loopback, which the target cannot reach), is refused others
/// (recorded), cannot connect to anything the target could, and reaches foreman's tools
/// through the turn's sockets forwarded there.
async fn an_agent_on_a_target_goes_out_only_through_foremans_allowlist(db: TestDb) {
    if !ssh_host::available() {
        return;
    }
    let (allowed, allowed_hits) = crate::egress::host("allowed host").await;
    let script = crate::support::agents_dir().join("egress_worker.sh");
    let plan = json!({
        "manager": [
            {"calls": [{"tool": "spawn_worker", "args": {"title": "Fetch", "instructions": "x"}}]},
            {"when": "\"Fetch\" succeeded", "calls": [{"tool": "mark_objective_done", "args": {"summary": "Fetched."}}]}
        ],
        "workers": {"Fetch": {
            "run": [
                format!("bash {} {allowed}", script.display()),
                // The target's own sshd, which a process sharing its network would reach (at
                // the target's address: an agent without that network sees none).
                "a=$(hostname -I | cut -d' ' -f1); [ -z \"$a\" ] || ! timeout 5 bash -c \"exec 5<>/dev/tcp/$a/22\"".to_owned()
            ],
            "calls": [{"tool": "report_result", "args": {"summary": "fetched"}}]
        }}
    });
    let (host, server, _fake, objective) = on_target(&db, plan, move |args| {
        args.agents.network.network_mode = NetworkMode::Allowlist;
        args.agents.network.network_allow = format!("127.0.0.1:{allowed}");
    })
    .await;
    let store = server.store();
    let sessions = done_on_targets(store, objective).await;
    all_succeeded_on(&sessions, "t1");
    assert!(allowed_hits.load(Ordering::SeqCst) >= 1);
    let worker = sessions.iter().find(|s| s.title == "Fetch").unwrap();
    let blocked = store.blocked_egress_of(objective).await.unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0].0, worker.id);
    assert_eq!(blocked[0].1.host, "evil.example:443");
    // The relay there is foreman's own executable, copied once.
    let shipped: Vec<_> = std::fs::read_dir(host.work_root.join("bin"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(shipped.len(), 1, "{shipped:?}");
    assert!(
        std::fs::read(&shipped[0]).unwrap()
            == std::fs::read(env!("CARGO_BIN_EXE_foreman")).unwrap(),
        "bin/ holds foreman's executable"
    );
    server.shutdown().await;
}
on_both_backends!(an_agent_on_a_target_goes_out_only_through_foremans_allowlist);
