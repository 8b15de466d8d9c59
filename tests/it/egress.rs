//! Agents' network under the allowlist: loopback servers stand in for hosts (only addresses on
//! this machine), a probe inside the real sandbox tries every way out it knows, and a worker
//! of a whole objective is refused a host that then shows in the status comment. A
//! repository's config cannot widen the operator's list.
//!
//! The enforcement needs the sandbox (a network namespace of the agent's own): where
//! bubblewrap cannot start, those tests say so and skip; CI requires it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use foreman::egress::Gate;
use foreman::model::ObjectiveStatus;
use foreman::model::network::{Allowlist, HostRule};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::issues::{replies, world, world_with};
use crate::on_both_backends;
use crate::support::{TestDb, agents_dir, sandboxed};

/// A loopback HTTP server standing in for a host: it answers every request with `name` and
/// counts the connections it gets.
pub async fn host(name: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

/// What one probe of `egress_probe.sh` printed, and its exit code.
fn probe<'a>(saw: &'a str, name: &str) -> (&'a str, i32) {
    let start = saw
        .find(&format!("=== {name}\n"))
        .unwrap_or_else(|| panic!("no probe `{name}` in:\n{saw}"));
    let body = &saw[start + name.len() + 5..];
    let end = body.find("\n=== exit ").expect("the probe's exit");
    let code = body[end + 10..]
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(-1);
    (&body[..end], code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_way_out_but_the_proxy() {
    if !sandboxed() {
        eprintln!("SKIPPED: the agent sandbox cannot start here, so no allowlist is enforced");
        return;
    }
    let (allowed, allowed_hits) = host("allowed host").await;
    let (blocked, blocked_hits) = host("blocked host").await;
    // A TCP server on every address of this machine.
    let (raw, raw_hits) = crate::support::counting_server("0.0.0.0:0").await;
    let raw = raw.port();
    // A Unix socket in the abstract namespace, which network namespaces separate.
    let abstract_name = format!("foreman-egress-test-{}", std::process::id());
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
        std::os::unix::net::UnixListener::bind_addr(&addr).unwrap()
    };
    abstract_listener.set_nonblocking(true).unwrap();
    let list = Allowlist {
        rules: vec![HostRule::endpoint("127.0.0.1", allowed)],
    };
    let gate = Gate::open(list, &[], Arc::new(foreman::model::SystemClock)).unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sandbox = crate::support::test_sandbox();
    let jail = foreman::sandbox::Jail {
        cwd: dir.path().to_owned(),
        writable: vec![dir.path().to_owned()],
        read_only: vec![agents_dir()],
        overlays: Vec::new(),
        network: true,
        egress: Some(gate.exits(std::path::Path::new(env!("CARGO_BIN_EXE_foreman")))),
    };
    let outside = crate::support::outside_address();
    let mut args = vec![
        agents_dir().join("egress_probe.sh").display().to_string(),
        allowed.to_string(),
        blocked.to_string(),
        raw.to_string(),
        abstract_name.clone(),
    ];
    args.extend(outside.clone());
    let mut command = sandbox.command(&jail, "bash", &args).unwrap();
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(gate.env())
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("the probe finished")
        .unwrap();
    let saw = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{saw}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Nothing but a loopback of its own.
    let (interfaces, _) = probe(&saw, "interfaces");
    let names: Vec<&str> = interfaces
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{interfaces}");
    let (vars, _) = probe(&saw, "proxy variables");
    assert!(vars.contains("HTTPS_PROXY=http://127.0.0.1:"), "{vars}");

    // The allowed host, through the proxy, by plain HTTP and through a tunnel.
    for name in ["proxy get allowed", "tunnel allowed"] {
        let (got, code) = probe(&saw, name);
        assert!(got.contains("allowed host") && code == 0, "{name}: {got}");
    }
    // Every other way to the blocked host, refused or unreachable.
    for name in ["proxy get blocked", "tunnel blocked", "the socket itself"] {
        let (got, _) = probe(&saw, name);
        assert!(
            got.contains("403") && got.contains("not on this repository's network allowlist"),
            "{name}: {got}"
        );
    }
    let (by_name, code) = probe(&saw, "tunnel by name");
    assert!(by_name.contains("403") && code != 0, "{by_name}");
    let mut direct = vec![
        "direct allowed",
        "direct blocked",
        "direct raw",
        "without proxy variables",
        "abstract socket",
        "postgres socket",
    ];
    if outside.is_some() {
        direct.push("direct outside");
    }
    for name in direct {
        let (got, code) = probe(&saw, name);
        assert_ne!(code, 0, "{name} connected: {got}");
    }
    assert_eq!(blocked_hits.load(Ordering::SeqCst), 0, "{saw}");
    assert_eq!(raw_hits.load(Ordering::SeqCst), 0, "{saw}");
    assert!(
        abstract_listener.accept().is_err(),
        "the abstract socket was reached: {saw}"
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 2, "{saw}");

    // Each refusal is recorded, by destination.
    let mut refused: Vec<(String, u64)> = gate
        .take_blocked()
        .into_iter()
        .map(|b| (b.host, b.attempts))
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            (format!("127.0.0.1:{blocked}"), 3),
            ("blocked.example:443".to_owned(), 1)
        ]
    );
}

/// A worker of a real objective reaches the host the operator allows and is refused another,
/// which the store records and the status comment lists; foreman's own tools keep working
/// through the forward of its MCP endpoint (the worker reports, the manager finishes).
async fn a_refused_host_is_recorded_and_shown_on_the_issue(db: TestDb) {
    if !sandboxed() {
        eprintln!("SKIPPED: the agent sandbox cannot start here, so no allowlist is enforced");
        return;
    }
    let (allowed, allowed_hits) = host("allowed host").await;
    let script = agents_dir().join("egress_worker.sh");
    let plan = json!({
        "manager": [
            {"calls": [{"tool": "spawn_worker", "args": {"title": "Fetch", "instructions": "Fetch things."}}]},
            {"when": "\"Fetch\" succeeded", "calls": [{"tool": "mark_objective_done", "args": {"summary": "Fetched."}}]}
        ],
        "workers": {"Fetch": {
            "run": [format!("bash {} {allowed}", script.display())],
            "calls": [{"tool": "report_result", "args": {"summary": "fetched"}}]
        }}
    });
    let w = world_with(&db, plan, |args| {
        args.agents.network.network_allow = format!("127.0.0.1:{allowed}");
    })
    .await;
    w.label("d-egress", "foreman", "alice", true).await;
    let done = w.objective_in(ObjectiveStatus::Done).await;
    assert!(allowed_hits.load(Ordering::SeqCst) >= 1);
    let store = w.server.store();
    let blocked = store.blocked_egress_of(done.id).await.unwrap();
    let sessions = store.sessions_of(done.id).await.unwrap();
    let worker = sessions.iter().find(|s| s.title == "Fetch").unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0].0, worker.id);
    assert_eq!(blocked[0].1.host, "evil.example:443");
    assert_eq!(blocked[0].1.attempts, 1);
    let status = w.status_saying("`evil.example:443` — 1 attempt").await;
    assert!(status.body.contains("network.allow"), "{}", status.body);
    w.server.shutdown().await;
}
on_both_backends!(a_refused_host_is_recorded_and_shown_on_the_issue);

/// A repository's list narrows the operator's and adds only what the operator permits; a
/// wider one, or `open` under an allowlist, is a config mistake reported on the issue.
async fn a_repository_cannot_widen_the_operators_list(db: TestDb) {
    let w = world(&db, json!({})).await;
    for (n, (text, says)) in [
        (
            "network:\n  allow: [evil.example]\n",
            "`evil.example` is not a host this server lets repositories allow",
        ),
        (
            "network:\n  allow: ['*.npmjs.org']\n",
            "`*.npmjs.org` is not a host this server lets repositories allow",
        ),
        (
            "network:\n  mode: open\n",
            "`open` is not a repository's to choose",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        w.set_config(text);
        w.label(&format!("d-wide-{n}"), "foreman", "alice", true)
            .await;
        let said = crate::support::eventually("the config reply", || async {
            replies(&w).into_iter().find(|r| r.contains(says))
        })
        .await;
        assert!(said.contains(".github/foreman.yml"), "{said}");
        w.label(&format!("d-unlabel-{n}"), "foreman", "alice", false)
            .await;
    }
    assert!(w.objectives().await.is_empty());
    // Narrowing is the repository's to do.
    w.set_config("network:\n  allow: [registry.npmjs.org]\n");
    w.label("d-narrow", "foreman", "alice", true).await;
    let started = crate::support::eventually("an objective", || async {
        w.objectives().await.into_iter().next()
    })
    .await;
    assert_eq!(
        started.config.network.allow.as_deref(),
        Some(&["registry.npmjs.org".to_owned()][..])
    );
    w.server.shutdown().await;
}
on_both_backends!(a_repository_cannot_widen_the_operators_list);
