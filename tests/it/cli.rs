//! The binary itself: starting with no configuration at all, one-line configuration errors,
//! an unreachable database, and the operator commands for dead deliveries.

use std::process::Output;

use foreman::model::delivery::{NewDelivery, RetryDecision};
use foreman::model::{DeliveryId, Timestamp};
use secrecy::ExposeSecret;

use crate::on_both_backends;
use crate::support::{Kind, TestDb, eventually, with_db};

/// Runs the binary with exactly these environment variables (plus PATH) in `dir`.
async fn foreman(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("run foreman")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn serve_starts_with_no_configuration_at_all() {
    let dir = tempfile::tempdir().unwrap();
    // The default address may be taken on a developer's machine; everything else is default.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = {
        use tokio::io::AsyncBufReadExt;
        tokio::io::BufReader::new(child.stderr.take().unwrap()).lines()
    };
    let mut log = String::new();
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("exited:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if let Some(at) = line.split("listening on http://").nth(1) {
            break at.trim().parse().unwrap();
        }
    };
    assert!(addr.ip().is_loopback(), "{addr}");
    for missing in [
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY",
        "GITHUB_WEBHOOK_SECRET",
    ] {
        assert!(
            log.contains(missing),
            "the log should name {missing}:\n{log}"
        );
    }
    assert!(
        dir.path().join("foreman.db").exists(),
        "SQLite file created on first run"
    );
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_default_listen_address_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let out = foreman(dir.path(), &["check-config"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen          127.0.0.1:3000"), "{text}");
    assert!(text.contains("sqlite://foreman.db"), "{text}");
    assert!(
        text.contains("workspace gc    every 5m, keeps 2.0 GiB free on the work root"),
        "{text}"
    );
    let out = foreman(dir.path(), &["check-config"], &[("PORT", "8080")]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:8080"));
    let out = foreman(
        dir.path(),
        &["check-config"],
        &[("PORT", "8080"), ("FOREMAN_LISTEN", "0.0.0.0:9000")],
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("0.0.0.0:9000"));
}

#[tokio::test]
async fn configuration_errors_are_one_line_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("missing.pem");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("FOREMAN_LISTEN", "not-an-address")], "not-an-address"),
        (vec![("GITHUB_APP_ID", "twelve")], "twelve"),
        (vec![("FOREMAN_TICK_INTERVAL", "soon")], "not a duration"),
        (vec![("FOREMAN_MIN_FREE_DISK", "lots")], "not a size"),
        (
            vec![("DATABASE_URL", "mysql://db/foreman")],
            "sqlite:// or postgres://",
        ),
        (
            vec![("GITHUB_PRIVATE_KEY", "-----BEGIN NOTHING-----")],
            "not an RSA private key",
        ),
        (
            vec![("GITHUB_PRIVATE_KEY_PATH", key_path.to_str().unwrap())],
            "cannot read GITHUB_PRIVATE_KEY_PATH",
        ),
    ];
    for (env, expected) in cases {
        let out = foreman(dir.path(), &["check-config"], &env).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{env:?} should fail");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line for {env:?}:\n{err}"
        );
        assert!(err.contains(expected), "{env:?}: {err}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_output() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("GITHUB_WEBHOOK_SECRET", "hush-hush-webhook"),
        (
            "DATABASE_URL",
            "postgres://app:hush-hush-password@127.0.0.1:1/db",
        ),
    ];
    let config = foreman(dir.path(), &["check-config"], &env).await;
    let help = foreman(dir.path(), &["serve", "--help"], &env).await;
    let unreachable = foreman(dir.path(), &["migrate"], &env).await;
    for out in [config, help, unreachable] {
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!all.contains("hush-hush"), "secret leaked:\n{all}");
    }
}

#[tokio::test]
async fn an_unreachable_database_at_startup_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = foreman(
        dir.path(),
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing"),
            ("PORT", "0"),
        ],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.trim_end().lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with(
            "error: cannot connect to database postgres://postgres@127.0.0.1:1/nothing"
        ),
        "{err}"
    );

    let out = foreman(
        dir.path(),
        &["serve"],
        &[
            ("DATABASE_URL", "sqlite:///no/such/dir/foreman.db"),
            ("PORT", "0"),
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: cannot open SQLite database"),
        "{}",
        stderr(&out)
    );
}

async fn dead_deliveries_are_listed_and_replayed(db: TestDb) {
    let store = db.store().await;
    for id in ["dead-1", "dead-2", "fine"] {
        store
            .insert_delivery(NewDelivery {
                delivery_id: DeliveryId(id.into()),
                event: "ping".into(),
                action: None,
                installation_id: None,
                repository_id: None,
                repository: None,
                payload: "{}".into(),
                received_at: Timestamp(0),
            })
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let seq = store.ready_deliveries(Timestamp(0), 1).await.unwrap()[0];
        store
            .claim_delivery(seq, "t", Timestamp(0), std::time::Duration::from_secs(9))
            .await
            .unwrap();
        store
            .fail_delivery(seq, "t", "handler exploded", RetryDecision::Dead)
            .await
            .unwrap();
    }
    let url = db.url.expose_secret().to_owned();
    let env = [("DATABASE_URL", url.as_str())];
    let dir = db.dir();
    let list = foreman(&dir, &["deliveries", "list", "--status", "dead"], &env).await;
    assert!(list.status.success(), "{}", stderr(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("dead-1") && text.contains("dead-2") && !text.contains("fine"),
        "{text}"
    );
    assert!(text.contains("handler exploded"), "{text}");

    let one = foreman(&dir, &["deliveries", "replay", "dead-1"], &env).await;
    assert!(one.status.success(), "{}", stderr(&one));
    let again = foreman(&dir, &["deliveries", "replay", "dead-1"], &env).await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("delivery dead-1 is pending, not dead"));
    let all = foreman(&dir, &["deliveries", "replay", "--all"], &env).await;
    assert!(String::from_utf8_lossy(&all.stdout).starts_with("1 dead deliveries queued again"));
    let none = foreman(&dir, &["deliveries", "replay"], &env).await;
    assert!(!none.status.success());
}
on_both_backends!(dead_deliveries_are_listed_and_replayed);

async fn migrate_runs_alone(db: TestDb) {
    let url = db.url.expose_secret().to_owned();
    let out = foreman(&db.dir(), &["migrate"], &[("DATABASE_URL", url.as_str())]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    db.store().await.ping().await.unwrap();
}
on_both_backends!(migrate_runs_alone);

#[tokio::test]
async fn sigterm_finishes_and_exits_cleanly() {
    with_db(Kind::Sqlite, |db| async move {
        let process = crate::support::Process::serve(&db, &[]).await;
        let client = reqwest::Client::new();
        let response = crate::support::post_webhook(
            &client,
            &process.url("/webhooks/github"),
            "ping",
            "term-1",
            &crate::support::fixture("ping"),
        )
        .await;
        assert_eq!(response.status(), 202);
        let log = process.log.clone();
        let status = process.terminate().await;
        assert!(status.success(), "{status}");
        eventually("the shutdown to be logged", || async {
            log.lock().unwrap().contains("stopped").then_some(())
        })
        .await;
    })
    .await;
}
