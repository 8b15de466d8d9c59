//! Graceful operations on the real binary: SIGTERM while a delivery is in hand stops taking
//! requests, finishes that delivery, loses nothing acknowledged, and exits cleanly; SIGTERM
//! while an agent is mid-turn leaves its session to be resumed by the next start.

use std::time::Duration;

use foreman::engine::objective::lifecycle;
use foreman::model::delivery::DeliveryStatus;
use foreman::model::{DeliveryId, ObjectiveStatus, SessionStatus};
use serde_json::{Value, json};

use crate::agents::{new_objective, reaches, state_file};
use crate::on_both_backends;
use crate::support::fake_github::FakeGitHub;
use crate::support::{Process, TestDb, eventually, eventually_within, post_webhook, write_plan};

const REPO: &str = "octo/widgets";
/// How long the fake GitHub holds the in-hand delivery's first request.
const HELD_FOR: Duration = Duration::from_secs(2);

fn issues_event(fake: &FakeGitHub, installation: i64, issue: u64, action: &str) -> Value {
    json!({
        "action": action,
        "issue": fake.issue_json(REPO, issue),
        "repository": fake.repo_json(REPO),
        "sender": fake.user_json("carol"),
        "installation": {"id": installation},
    })
}

async fn sigterm_finishes_the_delivery_in_hand(db: TestDb) {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, REPO);
    let issue = fake.create_issue(REPO, "carol", "Widgets break", "They do.");
    let (app_id, key) = (fake.app_id().to_string(), fake.private_key_pem());
    let env = [
        ("GITHUB_APP_ID", app_id.as_str()),
        ("GITHUB_PRIVATE_KEY", key.as_str()),
        ("GITHUB_API_URL", &fake.url()),
    ];
    // The handler's first call to GitHub (its installation token) is slow.
    fake.hold_next("POST", "/app/installations/", HELD_FOR);
    let first = Process::serve(&db, &env).await;
    let client = reqwest::Client::new();
    let url = first.url("/webhooks/github");
    let in_hand = issues_event(&fake, installation, issue, "opened").to_string();
    let status = post_webhook(&client, &url, "issues", "in-hand", in_hand.as_bytes()).await;
    assert_eq!(status.status(), 202);
    eventually("the delivery to be in hand, waiting on GitHub", || async {
        (fake.held() == 1).then_some(())
    })
    .await;
    // Queued behind it (same repository, handled one at a time): acknowledged, not started.
    let queued = issues_event(&fake, installation, issue, "edited").to_string();
    let status = post_webhook(&client, &url, "issues", "queued", queued.as_bytes()).await;
    assert_eq!(status.status(), 202);

    let log = first.log.clone();
    let addr = first.addr;
    let started = tokio::time::Instant::now();
    let exit = tokio::spawn(first.terminate());
    // No new request is taken once SIGTERM arrived (a fresh connection is refused).
    eventually("the listener to close", || async {
        let fresh = reqwest::Client::new();
        let refused = fresh
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_err();
        refused.then_some(())
    })
    .await;
    let status = exit.await.unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() >= HELD_FOR / 2,
        "exited without waiting for the delivery in hand"
    );
    // The log is read in the background: its last lines may arrive just after the exit.
    eventually("foreman's last log line", || async {
        log.lock().unwrap().contains("stopped").then_some(())
    })
    .await;
    let log = log.lock().unwrap().clone();
    assert!(log.contains("finishing the deliveries in hand"), "{log}");

    let store = db.store().await;
    let handled = store
        .delivery(&DeliveryId("in-hand".into()))
        .await
        .unwrap()
        .expect("stored");
    assert_ne!(
        handled.status,
        DeliveryStatus::Pending,
        "the delivery in hand was finished: {handled:?}"
    );
    assert_eq!(handled.attempts, 1, "{handled:?}");
    assert_eq!(
        fake.count(
            "POST",
            &format!("/app/installations/{installation}/access_tokens")
        ),
        1
    );
    let waiting = store
        .delivery(&DeliveryId("queued".into()))
        .await
        .unwrap()
        .expect("an acknowledged delivery is stored");

    // The next start handles what was left, and nothing twice.
    let second = Process::serve(&db, &env).await;
    eventually("the queued delivery to be handled", || async {
        let d = store
            .delivery(&DeliveryId("queued".into()))
            .await
            .unwrap()?;
        (d.status != DeliveryStatus::Pending).then_some(())
    })
    .await;
    let again = store
        .delivery(&DeliveryId("in-hand".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 1, "handled once: {again:?}");
    eprintln!("at SIGTERM the queued delivery was {:?}", waiting.status);
    assert!(second.terminate().await.success());
}
on_both_backends!(sigterm_finishes_the_delivery_in_hand);

async fn sigterm_leaves_agent_sessions_resumable(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Long", "instructions": "Take your time."}}]},
                {"when": "\"Long\" succeeded", "calls": [{"tool": "mark_objective_done", "args": {"summary": "survived a SIGTERM"}}]}
            ],
            "workers": {"Long": [
                {"print": ["working"], "sleep": 300},
                {"expect_prompt": "foreman restarted", "calls": [{"tool": "report_result", "args": {"summary": "resumed after SIGTERM"}}]}
            ]}
        }),
    );
    let env = [
        ("FOREMAN_INSTANCE_ID", "sigterm-test"),
        ("FOREMAN_TICK_INTERVAL", "200ms"),
    ];
    let first = Process::serve_scripted(&db, &env).await;
    let (store, engine) = crate::support::engine_on(&db).await;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(21))
        .await
        .unwrap()
        .unwrap();
    let worker = reaches(&store, objective, "Long", SessionStatus::Running).await;
    eventually("the worker's first turn to start", || async {
        state_file(&db, worker.id, "prompts.txt")
            .contains("=== turn 0")
            .then_some(())
    })
    .await;
    let log = first.log.clone();
    let asked = std::time::Instant::now();
    let status = first.terminate().await;
    eprintln!(
        "foreman exited {:?} after SIGTERM with an agent's turn running",
        asked.elapsed()
    );
    assert!(status.success(), "{status}");
    // It did not wait for the agent: the turn was stopped (its processes gone with foreman)
    // and recorded as interrupted before the store closed. Killed processes may take a moment
    // to finish exiting on a loaded machine; an agent foreman did not kill sleeps for minutes.
    let checkout = crate::support::checkout_of(&db, worker.id);
    eventually_within(
        Duration::from_secs(5),
        "the agent's processes to be gone with foreman",
        || async {
            crate::support::processes_in(&checkout)
                .is_empty()
                .then_some(())
        },
    )
    .await;
    {
        let log = log.lock().unwrap();
        assert!(
            log.contains("turn stopped by foreman's shutdown"),
            "the turn was stopped, not waited for:\n{log}"
        );
        assert!(
            !log.contains("cannot record") && !log.contains("closed pool"),
            "the end of the turn was recorded without errors:\n{log}"
        );
    }
    let left = store.session(worker.id).await.unwrap().unwrap();
    assert_eq!(
        left.status,
        SessionStatus::Running,
        "a SIGTERM is not the session's failure"
    );

    let second = Process::serve_scripted(&db, &env).await;
    eventually("the objective to be done after the restart", || async {
        let o = store.objective(objective).await.unwrap().unwrap();
        (o.status == ObjectiveStatus::Done).then_some(())
    })
    .await;
    let resumed = store.session(worker.id).await.unwrap().unwrap();
    assert_eq!(resumed.status, SessionStatus::Succeeded);
    assert_eq!(resumed.result.as_deref(), Some("resumed after SIGTERM"));
    assert_eq!(resumed.recoveries, 1);
    assert!(
        state_file(&db, worker.id, "prompts.txt").contains("=== turn 1 ===\nforeman restarted")
    );
    assert!(second.terminate().await.success());
}
on_both_backends!(sigterm_leaves_agent_sessions_resumable);
