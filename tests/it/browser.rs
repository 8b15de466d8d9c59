//! The web view in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/web.mjs`) against a foreman with the fake GitHub and scripted agents. It
//! signs in through the fake's OAuth endpoints, sees only the readable repository, opens the
//! running objective, watches the manager's transcript grow live while it sends the manager a
//! message, and stops the objective; the status comment then says so. Screenshots of each
//! page are kept in `target/browser-shots/`.
//!
//! Skipped, and said so, without Chromium (`FOREMAN_TEST_CHROMIUM`, default
//! `/usr/bin/chromium`) or playwright-core (`FOREMAN_TEST_PLAYWRIGHT`: the npm prefix it is
//! installed under); `.ci/run` installs both.

use std::path::PathBuf;

use foreman::model::ObjectiveStatus;

use crate::support::{Kind, with_db};
use crate::web::{secret_objective, started, web_world_with};

/// Chromium and playwright-core, when both are here.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(
        std::env::var("FOREMAN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    let Some(playwright) = std::env::var_os("FOREMAN_TEST_PLAYWRIGHT").map(PathBuf::from) else {
        eprintln!("SKIPPED: FOREMAN_TEST_PLAYWRIGHT is not set (.ci/run installs playwright-core)");
        return None;
    };
    if !chromium.exists() || !playwright.join("node_modules/playwright-core").is_dir() {
        eprintln!(
            "SKIPPED: no Chromium at {} or no playwright-core under {} (.ci/run installs both)",
            chromium.display(),
            playwright.display()
        );
        return None;
    }
    Some((chromium, playwright))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_in_a_real_browser() {
    let Some((chromium, playwright)) = browser() else {
        return;
    };
    with_db(Kind::Sqlite, |db| async move {
        // A manager that plans two workers, the second after the first, then waits; a
        // message from the web view is its next turn.
        let plan = serde_json::json!({
            "manager": [
                {"unless": "A message from the web view", "calls": [
                    {"tool": "spawn_worker", "args": {"title": "Fix the parser", "instructions": "Make nested braces parse."}, "save": "parser"},
                    {"tool": "spawn_worker", "args": {"title": "Add tests", "instructions": "Cover nested braces.", "depends_on": ["$parser"]}}
                ], "print": ["planning the widgets: the parser first, then its tests"]},
                {"when": "A message from the web view", "print": ["got the message"]}
            ],
            "workers": {
                "Fix the parser": {"print": ["reading the lexer"], "calls": [{"tool": "report_result", "args": {"summary": "Nested braces parse now."}}]},
                "Add tests": {"print": ["writing tests"], "calls": [{"tool": "report_result", "args": {"summary": "Twelve tests cover nested braces."}}]}
            }
        });
        let w = web_world_with(&db, plan).await;
        let (objective, manager) = started(&w).await;
        secret_objective(&w).await;
        w.fake.sign_in_as("alice");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("browser-shots");
        std::fs::create_dir_all(&shots).unwrap();
        let script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/web.mjs"));
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(180),
            tokio::process::Command::new("node")
                .arg(&script)
                .env("PLAYWRIGHT", &playwright)
                .env("CHROMIUM", &chromium)
                .env("FOREMAN_URL", w.server.url(""))
                .env("OBJECTIVE", objective.to_string())
                .env("MANAGER", manager.to_string())
                .env("SHOTS", &shots)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the browser test finished")
        .expect("node runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{said}");
        for shot in ["objectives", "objective", "session", "stopped"] {
            let file = shots.join(format!("{shot}.png"));
            assert!(
                std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
                "no screenshot {}",
                file.display()
            );
        }
        w.objective_in(ObjectiveStatus::Cancelled).await;
        w.status_saying("stopped by @alice from foreman's web view")
            .await;
        let prompts = crate::agents::state_file(&db, manager, "prompts.txt");
        assert!(prompts.contains("Please use blue."), "{prompts}");
        w.server.shutdown().await;
    })
    .await;
}
