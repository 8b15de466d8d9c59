//! Agents in their sandbox, end to end: a real `foreman serve` with the App's credentials, the
//! fake GitHub, real git, and a scripted worker that tries every way out it knows
//! (`tests/agents/escape_probe.sh`) before doing its task. Nothing of foreman's — its key,
//! webhook secret, database, installation tokens, process or other checkouts — may reach
//! what the agent saw or wrote, and nothing it planted in its checkout may change what
//! foreman runs or where foreman pushes.
//!
//! Skipped (and said so) where bubblewrap cannot start; CI requires it
//! (`FOREMAN_TEST_SANDBOX=bwrap`).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use foreman::engine::objective::lifecycle;
use foreman::model::{InstallationId, SessionId, SessionStatus};
use serde_json::json;

use crate::agents::{new_objective, reaches};
use crate::on_both_backends;
use crate::support::fake_github::FakeGitHub;
use crate::support::{
    Process, TestDb, WEBHOOK_SECRET, agents_dir, checkout_of, engine_on, eventually,
    files_containing, git, origins, processes_in, sandboxed, write_plan,
};
use secrecy::ExposeSecret;

const REPO: &str = "octo/widgets";

/// One probe of `escape_probe.sh`: the command, what it printed, how it exited.
#[derive(Debug)]
struct Probe {
    command: String,
    output: String,
    exit: i32,
}

fn probes(saw: &str) -> Vec<Probe> {
    let mut found = Vec::new();
    let mut current: Option<Probe> = None;
    for line in saw.lines() {
        if let Some(code) = line.strip_prefix("=== exit ") {
            if let Some(mut probe) = current.take() {
                probe.exit = code.trim().parse().unwrap_or(-1);
                found.push(probe);
            }
        } else if let Some(command) = line.strip_prefix("=== ") {
            current = Some(Probe {
                command: command.to_owned(),
                output: String::new(),
                exit: -1,
            });
        } else if let Some(probe) = current.as_mut() {
            probe.output.push_str(line);
            probe.output.push('\n');
        }
    }
    found
}

fn probe<'a>(all: &'a [Probe], starts: &str) -> &'a Probe {
    all.iter()
        .find(|p| p.command.starts_with(starts))
        .unwrap_or_else(|| panic!("no probe `{starts}` in {all:#?}"))
}

/// An HTTP server playing "elsewhere": it counts the connections it gets.
async fn elsewhere_server() -> (String, Arc<AtomicUsize>) {
    let (addr, hits) = crate::support::counting_server("127.0.0.1:0").await;
    (format!("http://{addr}"), hits)
}

async fn an_agent_that_tries_every_escape_sees_and_changes_nothing_of_foremans(db: TestDb) {
    if !sandboxed() {
        eprintln!("SKIPPED: the agent sandbox cannot start on this machine");
        return;
    }
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, REPO);
    let issue = fake.create_issue(REPO, "alice", "Widgets", "They break.");
    fake.add_label(REPO, issue, "foreman");
    let data = db.dir();
    // The credentials file, as the setup page leaves it (mode 0600), with the canaries.
    let key = fake.private_key_pem();
    let app_file = data.join("github-app.json");
    std::fs::write(
        &app_file,
        serde_json::to_vec(&json!({
            "app_id": fake.app_id(),
            "slug": fake.app_slug(),
            "client_secret": "canary-client-secret",
            "private_key": key,
            "webhook_secret": WEBHOOK_SECRET,
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&app_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // "Elsewhere": a bare repository and an HTTP server that must receive nothing.
    let elsewhere = data.join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("stolen.git")).unwrap();
    git(
        &elsewhere.join("stolen.git"),
        &["init", "--quiet", "--bare"],
    );
    let (elsewhere_url, hits) = elsewhere_server().await;
    let origin_url = format!("file://{}/{REPO}.git", origins(&db).display());

    let (app_id, api) = (fake.app_id().to_string(), fake.url());
    let env = [
        ("GITHUB_APP_ID", app_id.as_str()),
        ("GITHUB_PRIVATE_KEY", key.as_str()),
        ("GITHUB_API_URL", api.as_str()),
        ("FOREMAN_APP_FILE", app_file.to_str().unwrap()),
    ];
    let process = Process::serve_scripted(&db, &env).await;
    let work = data.join("work");
    // In a fresh database the manager is session 1: its checkout is the one to raid.
    let neighbour = checkout_of(&db, SessionId(1));
    let probe_script = agents_dir().join("escape_probe.sh");
    let command = format!(
        "sh {} {} {} {} {} {} {} {}",
        probe_script.display(),
        process.child.id().unwrap(),
        data.display(),
        work.display(),
        neighbour.display(),
        elsewhere.display(),
        elsewhere_url,
        origin_url,
    );
    write_plan(
        &db,
        &json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Escape", "instructions": "x"}, "save": "w"}]},
                {"when": "\"Escape\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$w", "title": "Feature", "body": "x", "closes_issue": true}}
                ]}
            ],
            "workers": {"Escape": {
                "write": {"feature.txt": "the intended change\n"},
                "run": [command],
                "print": ["done"]
            }}
        }),
    );
    let (store, engine) = engine_on(&db).await;
    let mut objective = new_objective(issue);
    objective.installation_id = Some(InstallationId(installation));
    let (objective, _) = lifecycle::start(&engine.objectives, &objective)
        .await
        .unwrap()
        .unwrap();
    let worker = reaches(&store, objective, "Escape", SessionStatus::Succeeded).await;
    let manager = store.objective(objective).await.unwrap().unwrap().manager;
    assert_eq!(
        manager,
        Some(SessionId(1)),
        "the raided checkout is the manager's"
    );
    let pull = eventually("the pull request", || async {
        store.pulls_of(objective).await.unwrap().into_iter().next()
    })
    .await;

    // What the agent saw.
    let state = work
        .join("sessions")
        .join(worker.id.to_string())
        .join("state");
    let saw = std::fs::read_to_string(state.join("saw.txt")).expect("the probe's report");
    let all = probes(&saw);
    assert_eq!(
        probe(&all, "echo started a background sleeper").exit,
        0,
        "{saw}"
    );
    for refused in [
        format!("cat '{}/github-app.json'", data.display()),
        "cat ../../../github-app.json".to_owned(),
        format!("cat '{}/README.md'", neighbour.display()),
        format!("echo pwned > '{}/pwned.txt'", neighbour.display()),
        "cat /etc/shadow".to_owned(),
    ] {
        let p = probe(&all, &refused);
        assert!(p.exit != 0, "the agent could: {refused}\n{}", p.output);
    }
    for database in ["foreman.db'", "foreman.db-wal'"] {
        let p = probe(&all, &format!("cat '{}/{database}", data.display()));
        assert!(!p.output.contains("SQLite format"), "{}", p.output);
    }
    // Listings show none of foreman's files, nor other sessions' checkouts and state.
    let listed = |starts: &str| probe(&all, starts).output.clone();
    let data_listing = listed(&format!("ls -la '{}'", data.display()));
    let work_listing = listed(&format!("ls -la '{}'", work.display()));
    for (listing, name) in [
        (&data_listing, "foreman.db"),
        (&data_listing, "github-app.json"),
        (&data_listing, "origins"),
        (&work_listing, "s1"),
        (&work_listing, "1"),
        (&work_listing, "widgets.checkout-config"),
    ] {
        assert!(
            !listing
                .lines()
                .any(|l| !l.starts_with("total") && l.ends_with(&format!(" {name}"))),
            "the agent saw {name}:\n{listing}"
        );
    }
    for found in [
        "find / -xdev -name 'github-app.json'",
        "find / -xdev -name 'foreman.db*'",
    ] {
        assert!(
            listed(found).trim().is_empty(),
            "{found}: {}",
            listed(found)
        );
    }
    // Its /proc is its own: foreman's process is not in it.
    let cmdline = listed(&format!(
        "cat /proc/{}/cmdline",
        process.child.id().unwrap()
    ));
    assert!(!cmdline.contains("serve"), "{cmdline}");
    assert!(!neighbour.join("pwned.txt").exists());

    // The canaries are nowhere in what it saw, wrote, or said.
    let key_body = key.lines().nth(1).expect("a PEM body line").to_owned();
    let mut canaries = vec![
        key_body,
        WEBHOOK_SECRET.to_owned(),
        "canary-client-secret".to_owned(),
        db.url.expose_secret().to_owned(),
    ];
    canaries.extend(fake.issued_tokens());
    assert!(canaries.len() > 3, "foreman asked for installation tokens");
    let checkout = checkout_of(&db, worker.id);
    for canary in &canaries {
        assert!(
            !saw.contains(canary.as_str()),
            "the agent saw `{canary}`:\n{saw}"
        );
        for dir in [&state, &checkout] {
            let leaked = files_containing(dir, canary);
            assert!(leaked.is_empty(), "`{canary}` reached {leaked:?}");
        }
        for session in store.sessions_of(objective).await.unwrap() {
            let transcript = store.transcript(session.id).await.unwrap();
            assert!(
                transcript.iter().all(|l| !l.line.contains(canary.as_str())),
                "`{canary}` in the transcript of #{}",
                session.id
            );
        }
    }

    // Nothing it planted ran when foreman committed, took and pushed its work.
    let marks: Vec<String> = std::fs::read_dir(checkout.join(".git"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ran-"))
        .collect();
    assert!(marks.is_empty(), "planted programs ran: {marks:?}");
    let left: Vec<String> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["stolen.git"], "something reached elsewhere");
    assert!(
        git(&elsewhere.join("stolen.git"), &["for-each-ref"]).is_empty(),
        "a push went elsewhere"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "elsewhere's HTTP server was called"
    );

    // The pull request holds only the intended change.
    let origin = origins(&db).join(format!("{REPO}.git"));
    let changed = git(
        &origin,
        &[
            "diff",
            "--name-only",
            "main",
            &format!("refs/heads/{}", pull.branch),
        ],
    );
    assert_eq!(changed, "feature.txt", "the branch's changes");
    let content = git(
        &origin,
        &["show", &format!("refs/heads/{}:feature.txt", pull.branch)],
    );
    assert_eq!(content, "the intended change");

    // The background server it started did not outlive its turn.
    eventually("nothing of the worker's turn left running", || async {
        processes_in(&checkout).is_empty().then_some(())
    })
    .await;

    // Every token foreman asked for was for this repository only, and for what it needed.
    for asked in fake.token_requests() {
        assert_eq!(asked["repositories"], json!(["widgets"]), "{asked}");
        assert!(asked["permissions"].is_object(), "{asked}");
    }
    let log = process.log.lock().unwrap().clone();
    for canary in &canaries[..3] {
        assert!(
            !log.contains(canary.as_str()),
            "`{canary}` in foreman's log"
        );
    }
    process.terminate().await;
}
on_both_backends!(an_agent_that_tries_every_escape_sees_and_changes_nothing_of_foremans);

/// Where the sandbox cannot start (here: its program is missing), no agent runs unconfined:
/// the session waits, saying why and what to install; it starts once the sandbox can.
async fn sessions_wait_while_the_sandbox_cannot_start(db: TestDb) {
    let mut args = crate::support::serve_args(&db);
    args.agents.sandbox.mode = foreman::config::SandboxMode::Bwrap;
    args.agents.sandbox.bwrap = "/nonexistent/bwrap".to_owned();
    let server = crate::support::TestServer::start(&args).await;
    let engine = &server.running.engine;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(7))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    let manager = eventually("the manager to say why it waits", || async {
        let manager = store
            .sessions_of(objective)
            .await
            .unwrap()
            .into_iter()
            .next()?;
        manager
            .activity
            .as_deref()
            .is_some_and(|a| a.starts_with(foreman::engine::periodic::scheduler::SANDBOX_WAIT))
            .then_some(manager)
    })
    .await;
    assert_eq!(manager.status, SessionStatus::Queued);
    let why = manager.activity.unwrap();
    assert!(
        why.contains("bubblewrap") && why.contains("apt-get install bubblewrap"),
        "{why}"
    );
    // It stays that way: nothing was started without the sandbox.
    server.tick().await;
    server.tick().await;
    let manager = store.session(manager.id).await.unwrap().unwrap();
    assert_eq!(manager.status, SessionStatus::Queued);
    assert!(manager.pid.is_none());
    server.shutdown().await;
}
on_both_backends!(sessions_wait_while_the_sandbox_cannot_start);

/// A worker that leaves a server running in the background, detached from its session: the
/// turn's end takes it down with everything else in the sandbox.
async fn nothing_a_turn_started_outlives_it(db: TestDb) {
    if !sandboxed() {
        eprintln!("SKIPPED: the agent sandbox cannot start on this machine");
        return;
    }
    write_plan(
        &db,
        &json!({
            "manager": [{"calls": [{"tool": "spawn_worker", "args": {"title": "Daemon", "instructions": "x"}}]}],
            "workers": {"Daemon": {
                "run": ["setsid nohup sleep 600 > /dev/null 2>&1 &", "nohup sleep 601 > /dev/null 2>&1 &"],
                "print": ["left two sleepers behind"]
            }}
        }),
    );
    let server = crate::support::TestServer::start(&crate::support::serve_args(&db)).await;
    let (objective, _) = lifecycle::start(&server.running.engine.objectives, &new_objective(8))
        .await
        .unwrap()
        .unwrap();
    let worker = reaches(
        server.store(),
        objective,
        "Daemon",
        SessionStatus::Succeeded,
    )
    .await;
    let checkout = checkout_of(&db, worker.id);
    eventually("the worker's background processes to be gone", || async {
        processes_in(&checkout).is_empty().then_some(())
    })
    .await;
    server.shutdown().await;
}
on_both_backends!(nothing_a_turn_started_outlives_it);

/// foreman's database and its WAL are its user's alone, whatever the umask it started with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    crate::support::with_db(crate::support::Kind::Sqlite, |db| async move {
        let path = db.dir().join("foreman.db");
        // An older foreman left it readable to everyone.
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let server = crate::support::TestServer::start(&crate::support::serve_args(&db)).await;
        server.store().live_objectives().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
        server.shutdown().await;
    })
    .await;
}
