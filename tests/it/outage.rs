//! foreman stopped for a day: on restart, objectives in every state pick up where they were,
//! without a burst — one poke for the manager that stopped mid-task, nothing for the rest, no
//! comment posted twice, no time budget "exceeded" by the outage, and GitHub asked only what
//! reconciliation needs.

use std::time::Duration;

use foreman::model::{ObjectiveStatus, SessionStatus};
use serde_json::json;

use crate::issues::{REPO, World, world};
use crate::on_both_backends;
use crate::support::{TestDb, eventually};

const DAY: Duration = Duration::from_secs(25 * 60 * 60);

/// `sender` puts foreman's label on issue `number`, with its webhook.
async fn label(w: &World, number: u64, delivery: &str) -> foreman::model::Objective {
    w.fake.add_label(REPO, number, "foreman");
    let payload = json!({
        "action": "labeled",
        "issue": w.fake.issue_json(REPO, number),
        "label": {"name": "foreman"},
        "repository": w.fake.repo_json(REPO),
        "sender": w.fake.user_json("alice"),
        "installation": {"id": w.installation},
    });
    w.post("issues", delivery, &payload).await;
    let store = w.server.store();
    eventually("the objective started", || async {
        store.latest_objective(REPO, number).await.unwrap()
    })
    .await
}

async fn a_restart_after_a_day_resumes_without_a_burst(db: TestDb) {
    let w = world(
        &db,
        json!({"manager": [
            {"when": "Idle thing", "calls": []},
            {"when": "Asking thing", "calls": [{"tool": "ask_user", "args": {"question": "Which colour?"}}]},
            {"when": "Done thing", "calls": [{"tool": "mark_objective_done", "args": {"summary": "nothing to do", "no_change_needed": true}}]},
            {"calls": []}
        ]}),
    )
    .await;
    let idle = w
        .fake
        .create_issue(REPO, "dana", "Idle thing", "Stops mid-task.");
    let asking = w.fake.create_issue(REPO, "dana", "Asking thing", "Asks.");
    let done = w.fake.create_issue(REPO, "dana", "Done thing", "Ends.");
    let idle = label(&w, idle, "d-idle").await;
    let asking = label(&w, asking, "d-asking").await;
    let done = label(&w, done, "d-done").await;
    let store = w.server.store();
    eventually("the idle manager's turn over", || async {
        let manager = store.objective(idle.id).await.unwrap()?.manager?;
        let session = store.session(manager).await.unwrap()?;
        (session.status == SessionStatus::Idle).then_some(())
    })
    .await;
    eventually("the question asked", || async {
        (store.questions_of(asking.id).await.unwrap().len() == 1).then_some(())
    })
    .await;
    eventually("the done objective ended", || async {
        let o = store.objective(done.id).await.unwrap().unwrap();
        o.status.is_terminal().then_some(())
    })
    .await;
    w.settle().await;
    let comments_before: Vec<usize> = [idle.issue_number, asking.issue_number, done.issue_number]
        .iter()
        .map(|n| w.fake.comments(REPO, *n).len())
        .collect();

    // Down for a day, then up again.
    let w = w.restart(&db, Some(DAY)).await;
    w.fake.clear_requests();
    w.settle().await;
    w.settle().await;
    let store = w.server.store();
    let now = w.server.running.engine.clock.now();

    // The manager that stopped mid-task is poked once; the one waiting for an answer and the
    // ended objective are left alone.
    let kinds = |audit: Vec<foreman::store::AuditEntry>, kind: &str| {
        audit.iter().filter(|e| e.kind == kind).count()
    };
    let pokes = |o| async move { kinds(store.audit_of(o).await.unwrap(), "supervisor.poke") };
    assert_eq!(pokes(idle.id).await, 1, "one poke for the idle manager");
    assert_eq!(pokes(asking.id).await, 0, "a question waits for its answer");
    assert_eq!(pokes(done.id).await, 0);
    for o in [idle.id, asking.id] {
        let objective = store.objective(o).await.unwrap().unwrap();
        assert!(
            !objective.status.is_terminal() && objective.budget_blocked.is_none(),
            "the outage is not spent from the time budget: {objective:?}"
        );
        let wall = store.objective_usage(o, now).await.unwrap().wall;
        assert!(wall < Duration::from_secs(3600), "{wall:?}");
    }
    assert_eq!(store.questions_of(idle.id).await.unwrap().len(), 0);
    assert_eq!(store.questions_of(asking.id).await.unwrap().len(), 1);
    assert_eq!(
        store.objective(done.id).await.unwrap().unwrap().status,
        ObjectiveStatus::Done
    );

    // No comment posted twice: the issues hold what they held (edits aside).
    let comments_after: Vec<usize> = [idle.issue_number, asking.issue_number, done.issue_number]
        .iter()
        .map(|n| w.fake.comments(REPO, *n).len())
        .collect();
    assert_eq!(comments_after, comments_before);

    // What GitHub was asked: reconciliation's reads, a bounded few per objective.
    let requests = w.fake.requests();
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .filter(|r| !r.ends_with("/access_tokens"))
        .collect();
    println!(
        "after a day's outage: {} requests to GitHub for 3 objectives, writes {writes:?}",
        requests.len()
    );
    assert!(
        writes.iter().all(|r| r.starts_with("PATCH ")),
        "only edits of foreman's own comments: {writes:?}"
    );
    assert!(writes.len() <= 3, "{writes:?}");
    assert!(requests.len() <= 40, "{} requests", requests.len());
    w.server.shutdown().await;
}
on_both_backends!(a_restart_after_a_day_resumes_without_a_burst);
