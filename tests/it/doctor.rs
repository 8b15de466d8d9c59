//! `foreman doctor` on a healthy configuration (the fake GitHub, a stub agent program, a
//! migrated database) and on a broken one: one line per check, what to do for each
//! failure, and the exit code.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use secrecy::ExposeSecret;

use crate::on_both_backends;
use crate::support::fake_github::FakeGitHub;
use crate::support::{Kind, TestDb, WEBHOOK_SECRET, with_db};

/// The checks a report has, in order (the `agent keys` line appears only for Claude or
/// Codex agents).
const CHECKS: [&str; 9] = [
    "database",
    "github app",
    "webhook secret",
    "git",
    "manager agent",
    "worker agent",
    "sandbox",
    "network",
    "work root",
];

/// The agent sandbox the tests use (`none`, warned about, where bubblewrap cannot start).
fn sandbox_env() -> Vec<(&'static str, String)> {
    crate::support::sandbox_env(&crate::support::sandbox_args(&[]))
}

pub async fn doctor(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
    command
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("run foreman doctor")
}

/// A stand-in agent CLI: prints a version.
fn stub_agent(dir: &Path) -> PathBuf {
    let path = dir.join("stub-agent");
    std::fs::write(&path, "#!/bin/sh\necho \"stub-agent 1.2.3\"\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The report's line for `check`.
pub fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{check:<15}")))
        })
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{report}"))
}

async fn a_healthy_configuration_passes(db: TestDb) {
    db.store().await; // migrated
    let fake = FakeGitHub::start().await;
    let manifest = foreman::setup::manifest::for_public_url("https://foreman.example.com", None);
    fake.register_manifest_code(&manifest, None);
    fake.add_installation("octo");
    let stub = stub_agent(&db.dir());
    let work = db.dir().join("work");
    let key = fake.private_key_pem();
    let app_id = fake.app_id().to_string();
    let url = db.url.expose_secret().to_owned();
    let sandbox = sandbox_env();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("GITHUB_APP_ID", app_id.as_str()),
        ("GITHUB_PRIVATE_KEY", key.as_str()),
        ("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("GITHUB_API_URL", &fake.url()),
        ("FOREMAN_WORK_ROOT", work.to_str().unwrap()),
        ("FOREMAN_MIN_FREE_DISK", "1MiB"),
        ("FOREMAN_MANAGER_AGENT", "command"),
        ("FOREMAN_MANAGER_COMMAND", stub.to_str().unwrap()),
        ("FOREMAN_WORKER_AGENT", "command"),
        ("FOREMAN_WORKER_COMMAND", "stub-agent"),
        (
            "PATH",
            &format!(
                "{}:{}",
                db.dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
    ];
    let env: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain(sandbox.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    let out = doctor(&db.dir(), &env).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in CHECKS {
        // Without bubblewrap here, the tests run agents unconfined: a warning, not a failure.
        let unconfined = ["sandbox", "network"].contains(&check);
        let expected = if unconfined && !crate::support::sandboxed() {
            "warn"
        } else {
            "ok "
        };
        assert!(
            line(&report, check).starts_with(expected),
            "{check}:\n{report}"
        );
    }
    assert_eq!(report.lines().count(), CHECKS.len() + 1, "{report}");
    assert!(report.ends_with("all 9 checks passed\n"), "{report}");
    assert!(line(&report, "database").contains("all"), "{report}");
    assert!(
        line(&report, "github app").contains("App foreman-test (id 424242) of foreman-dev"),
        "{report}"
    );
    assert!(line(&report, "git").contains("git version"), "{report}");
    assert!(
        line(&report, "manager agent").contains("stub-agent 1.2.3"),
        "{report}"
    );
    assert!(
        line(&report, "work root").contains("created on first use"),
        "{report}"
    );
    assert_eq!(fake.count("GET", "/app"), 1, "one GET /app with the JWT");
    assert!(!report.contains(WEBHOOK_SECRET) && !report.contains("PRIVATE KEY"));
}
on_both_backends!(a_healthy_configuration_passes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_configuration_fails_with_what_to_do() {
    let fake = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("work-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let key = fake.private_key_pem();
    let env = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing"),
        ("GITHUB_APP_ID", "1"), // not the App the key belongs to
        ("GITHUB_PRIVATE_KEY", key.as_str()),
        ("GITHUB_API_URL", &fake.url()),
        ("FOREMAN_GIT", "/nonexistent/git"),
        ("FOREMAN_WORK_ROOT", not_a_dir.to_str().unwrap()),
        ("FOREMAN_MANAGER_AGENT", "claude"),
        ("FOREMAN_MANAGER_COMMAND", "no-such-claude-here"),
        ("FOREMAN_WORKER_AGENT", "command"),
        ("FOREMAN_WORKER_COMMAND", "/nonexistent/agent"),
        ("FOREMAN_BWRAP", "/nonexistent/bwrap"),
    ];
    let out = doctor(dir.path(), &env).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{report}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for check in CHECKS {
        let l = line(&report, check);
        assert!(l.starts_with("FAIL"), "{check}:\n{report}");
        assert!(l.contains(" -> "), "a failure says what to do: {l}");
    }
    assert!(
        line(&report, "database").contains("cannot connect"),
        "{report}"
    );
    assert!(line(&report, "github app").contains("401"), "{report}");
    assert!(
        line(&report, "webhook secret").contains("GITHUB_WEBHOOK_SECRET"),
        "{report}"
    );
    assert!(
        line(&report, "manager agent").contains("npm install -g @anthropic-ai/claude-code"),
        "{report}"
    );
    assert!(
        line(&report, "work root").contains("not a directory"),
        "{report}"
    );
    assert!(line(&report, "agent keys").starts_with("warn"), "{report}");
    assert!(
        line(&report, "sandbox").contains("apt-get install bubblewrap"),
        "{report}"
    );
    assert!(report.ends_with("9 of 10 checks failed\n"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_app_and_a_new_database_say_what_to_do_and_change_nothing() {
    with_db(Kind::Sqlite, |db| async move {
        let url = db.url.expose_secret().to_owned();
        let no_version = db.dir().join("no-version");
        std::fs::write(&no_version, "#!/bin/sh\nexit 2\n").unwrap();
        std::fs::set_permissions(&no_version, std::fs::Permissions::from_mode(0o755)).unwrap();
        let no_version = no_version.to_str().unwrap().to_owned();
        let sandbox = sandbox_env();
        let mut env = vec![
            ("DATABASE_URL", url.as_str()),
            ("FOREMAN_MANAGER_AGENT", "command"),
            ("FOREMAN_MANAGER_COMMAND", no_version.as_str()),
            ("FOREMAN_WORKER_AGENT", "command"),
            ("FOREMAN_WORKER_COMMAND", no_version.as_str()),
            ("FOREMAN_MIN_FREE_DISK", "0"),
        ];
        env.extend(sandbox.iter().map(|(k, v)| (*k, v.as_str())));
        let out = doctor(&db.dir(), &env).await;
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success(), "{report}");
        let database = line(&report, "database");
        assert!(
            database.starts_with("warn") && database.contains("does not exist yet"),
            "{report}"
        );
        assert!(
            !db.dir().join("foreman.db").exists(),
            "doctor created the database"
        );
        assert!(
            line(&report, "github app").contains("setup page"),
            "{report}"
        );
        // A command that takes no --version is fine for a command agent: a warning.
        assert!(
            line(&report, "manager agent").starts_with("warn"),
            "{report}"
        );
        assert!(report.ends_with("2 of 9 checks failed\n"), "{report}");
    })
    .await;
}
