//! Pull requests drive objectives to done: merges, closes, failing checks, reviews, conflicts
//! and reconciliation — the fake GitHub (following the real git origin), real git, scripted
//! agents and signed webhooks, on both backends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foreman::engine::periodic::reconcile::Reconcile;
use foreman::model::{
    FollowupKind, Objective, ObjectiveStatus, PullRequest, Role, Session, SessionStatus,
};
use serde_json::{Value, json};

use crate::agents::state_file;
use crate::issues::{REPO, World, world};
use crate::on_both_backends;
use crate::support::{TestDb, eventually, git, origins, write_plan};

/// The first manager turn: the prompt of a new objective says this (and a respawned
/// manager's, which also says [`RESUMED`]).
const START: &str = "Your job is to get this issue resolved";
const RESUMED: &str = "You take over this objective";

fn origin(db: &TestDb) -> PathBuf {
    origins(db).join(format!("{REPO}.git"))
}

/// A manager plan: one worker, "Work", whose change is published as a pull request (saved
/// as `$pr`), then `more` turns.
fn plan(work: Value, more: Value) -> Value {
    let mut manager = vec![
        json!({"when": START, "unless": RESUMED, "calls": [
            {"tool": "spawn_worker", "args": {"title": "Work", "instructions": "Do the work."}, "save": "w"}
        ]}),
        json!({"when": "\"Work\" succeeded", "calls": [
            {"tool": "publish_pr", "args": {"worker": "$w", "title": "The work", "body": "Does the work.", "closes_issue": true}, "save": "pr"}
        ]}),
    ];
    manager.extend(more.as_array().cloned().unwrap_or_default());
    json!({"manager": manager, "workers": {"Work": work}})
}

fn work_writing(path: &str, content: &str) -> Value {
    json!({"write": {path: content}, "calls": [{"tool": "report_result", "args": {"summary": "did it"}}]})
}

/// A world whose fake GitHub follows the git origin, with `config` as the repository's
/// `.github/foreman.yml`, and an objective started by alice's label.
async fn start(db: &TestDb, plan: Value, config: Option<&str>) -> World {
    let w = world(db, plan).await;
    w.fake.follow_git(REPO, &origin(db));
    if let Some(config) = config {
        w.fake.set_file(REPO, "main", ".github/foreman.yml", config);
    }
    w.label("d-label", "foreman", "alice", true).await;
    w
}

async fn objective(w: &World) -> Objective {
    eventually("the objective", || async {
        w.server
            .store()
            .latest_objective(REPO, w.issue)
            .await
            .unwrap()
    })
    .await
}

/// Waits for the objective to have `n` pull requests.
async fn published(w: &World, n: usize) -> Vec<PullRequest> {
    let id = objective(w).await.id;
    eventually(&format!("{n} pull request(s)"), || async {
        let pulls = w.server.store().pulls_of(id).await.unwrap();
        (pulls.len() == n).then_some(pulls)
    })
    .await
}

async fn pull_now(w: &World, number: u64) -> PullRequest {
    w.server
        .store()
        .pull_by_number(REPO, number)
        .await
        .unwrap()
        .unwrap()
}

async fn wait_pull(
    w: &World,
    number: u64,
    what: &str,
    ok: impl Fn(&PullRequest) -> bool,
) -> PullRequest {
    eventually(what, || async {
        Some(pull_now(w, number).await).filter(|p| ok(p))
    })
    .await
}

async fn followups(w: &World) -> Vec<Session> {
    let id = objective(w).await.id;
    w.server
        .store()
        .sessions_of(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.role == Role::Followup)
        .collect()
}

async fn followup_ends(w: &World, nth: usize, status: SessionStatus) -> Session {
    eventually(
        &format!("follow-up {nth} to be {}", status.as_str()),
        || async {
            followups(w)
                .await
                .into_iter()
                .nth(nth)
                .filter(|s| s.status == status)
        },
    )
    .await
}

async fn objective_is(w: &World, status: ObjectiveStatus) -> Objective {
    eventually(&format!("the objective {}", status.as_str()), || async {
        Some(objective(w).await).filter(|o| o.status == status)
    })
    .await
}

/// Every turn prompt the objective's managers were given, in order.
async fn manager_prompts(db: &TestDb, w: &World) -> String {
    let id = objective(w).await.id;
    let mut all = String::new();
    for s in w.server.store().sessions_of(id).await.unwrap() {
        if s.role == Role::Manager {
            all.push_str(&state_file(db, s.id, "prompts.txt"));
        }
    }
    all
}

static DELIVERY: AtomicU64 = AtomicU64::new(0);

/// Posts a signed webhook about the repository, as `sender`.
async fn hook(w: &World, event: &str, sender: &str, mut payload: Value) {
    payload["repository"] = w.fake.repo_json(REPO);
    payload["installation"] = json!({"id": w.installation});
    payload["sender"] = w.fake.user_json(sender);
    let delivery = format!("d-{event}-{}", DELIVERY.fetch_add(1, Ordering::Relaxed));
    w.post(event, &delivery, &payload).await;
}

async fn pull_hook(w: &World, action: &str, number: u64, sender: &str) {
    let payload =
        json!({"action": action, "number": number, "pull_request": w.fake.pull_json(REPO, number)});
    hook(w, "pull_request", sender, payload).await;
}

/// A completed check run on `sha` (on the fake) and its `check_run` webhook. Returns its id.
async fn check_run(w: &World, sha: &str, name: &str, conclusion: &str) -> i64 {
    let id = w
        .fake
        .add_check_run(REPO, sha, name, "completed", Some(conclusion));
    let payload = json!({"action": "completed", "check_run": w.fake.check_run_json(REPO, id)});
    hook(w, "check_run", "github-actions[bot]", payload).await;
    id
}

/// Completes a check run started with `add_check_run` (on the fake) and sends its webhook.
async fn complete_run(w: &World, run: i64, conclusion: &str) {
    w.fake
        .update_check_run(REPO, run, "completed", Some(conclusion));
    let payload = json!({"action": "completed", "check_run": w.fake.check_run_json(REPO, run)});
    hook(w, "check_run", "github-actions[bot]", payload).await;
}

/// The `check_suite` completed webhook of the suite a check run belongs to.
async fn check_suite(w: &World, run: i64) {
    let suite = w.fake.check_run_json(REPO, run)["check_suite"]["id"]
        .as_i64()
        .unwrap();
    let payload =
        json!({"action": "completed", "check_suite": w.fake.check_suite_json(REPO, suite)});
    hook(w, "check_suite", "github-actions[bot]", payload).await;
}

/// The default worker plan (which follow-ups, having no title of their own, run).
fn set_followup_plan(db: &TestDb, plan: &Value, followup: Value) {
    let mut plan = plan.clone();
    plan["default_worker"] = followup;
    write_plan(db, &plan);
}

/// `who` pushes a commit changing `path` to `branch` of the origin; returns the new head.
fn push_as_human(db: &TestDb, branch: &str, path: &str, content: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let origin = origin(db);
    git(
        work.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            branch,
            origin.to_str().unwrap(),
            ".",
        ],
    );
    std::fs::write(work.path().join(path), content).unwrap();
    git(
        work.path(),
        &["commit", "--quiet", "-am", "a human's change"],
    );
    git(work.path(), &["push", "--quiet", "origin", branch]);
    git(work.path(), &["rev-parse", "HEAD"])
}

fn rocket(w: &World) -> bool {
    w.issue_reactions().iter().any(|r| r == "rocket")
}

// --- merges ---------------------------------------------------------------------------------

async fn two_prs_complete_after_both_merge(db: TestDb, first: usize) {
    // Right starts once Left is published: each success is a turn of its own, the second
    // saying done.
    let plan = json!({
        "manager": [
            {"when": START, "unless": RESUMED, "calls": [
                {"tool": "spawn_worker", "args": {"title": "Left", "instructions": "x"}, "save": "left"}
            ]},
            {"when": "\"Left\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": "$left", "title": "Left", "body": "Left side.", "closes_issue": false}},
                {"tool": "spawn_worker", "args": {"title": "Right", "instructions": "x"}, "save": "right"}
            ]},
            {"when": "\"Right\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": "$right", "title": "Right", "body": "Right side.", "closes_issue": false}},
                {"tool": "mark_objective_done", "args": {"summary": "Left and right are in."}}
            ]}
        ],
        "workers": {"Left": work_writing("left.txt", "l\n"), "Right": work_writing("right.txt", "r\n")}
    });
    let w = start(&db, plan, None).await;
    let pulls = published(&w, 2).await;
    // Done was asked for with both open: the objective waits for the merges.
    let waiting = eventually("mark_objective_done to be recorded", || async {
        Some(objective(&w).await).filter(|o| o.done_requested_at.is_some())
    })
    .await;
    // They opened as drafts; with the work done they are ready, and alice, who started the
    // objective, is asked to review them.
    for pull in &pulls {
        let number = pull.number;
        let ready = eventually("the pull request ready for review", || async {
            Some(w.fake.pull(REPO, number))
                .filter(|p| !p.draft && !p.requested_reviewers.is_empty())
        })
        .await;
        assert_eq!(ready.requested_reviewers, ["alice"]);
    }
    assert_eq!(waiting.started_by.as_deref(), Some("alice"));
    assert_eq!(waiting.status, ObjectiveStatus::Active);
    let manager = waiting.manager.unwrap();
    eventually("the manager told it completes on merge", || async {
        state_file(&db, manager, "calls.jsonl")
            .contains("completes when #")
            .then_some(())
    })
    .await;

    let order = [pulls[first].number, pulls[1 - first].number];
    w.fake.merge_pull(REPO, order[0]);
    pull_hook(&w, "closed", order[0], "alice").await;
    wait_pull(&w, order[0], "the first merge recorded", |p| {
        p.state == foreman::model::pulls::PullState::Merged
    })
    .await;
    let told = format!("#{} (\"", order[0]);
    let still = format!("Still open: #{}.", order[1]);
    eventually("the manager told of the merge", || async {
        let prompts = manager_prompts(&db, &w).await;
        (prompts.contains(&told) && prompts.contains(&still)).then_some(())
    })
    .await;
    w.settle().await;
    let o = objective(&w).await;
    assert_eq!(
        o.status,
        ObjectiveStatus::Active,
        "one pull request is still open"
    );
    assert!(o.done_requested_at.is_some());

    w.fake.merge_pull(REPO, order[1]);
    pull_hook(&w, "closed", order[1], "alice").await;
    let done = objective_is(&w, ObjectiveStatus::Done).await;
    assert_eq!(done.summary.as_deref(), Some("Left and right are in."));
    let summary = eventually("the summary comment", || async {
        w.bot_comments()
            .into_iter()
            .find(|c| c.body.contains("foreman:summary-"))
    })
    .await;
    assert!(
        summary.body.contains("Left and right are in."),
        "{}",
        summary.body
    );
    assert!(
        summary.body.contains(&format!("#{}", order[0]))
            && summary.body.contains(&format!("#{}", order[1])),
        "{}",
        summary.body
    );
    // No PR said `Closes`, so foreman closes the issue itself.
    eventually("the issue closed, with 🚀", || async {
        (w.fake.issue(REPO, w.issue).state == "closed" && rocket(&w)).then_some(())
    })
    .await;
    w.status_saying("has finished this issue").await;
    w.server.shutdown().await;
}

async fn two_prs_complete_after_both_merge_first_published_first(db: TestDb) {
    two_prs_complete_after_both_merge(db, 0).await
}
on_both_backends!(two_prs_complete_after_both_merge_first_published_first);

async fn two_prs_complete_after_both_merge_last_published_first(db: TestDb) {
    two_prs_complete_after_both_merge(db, 1).await
}
on_both_backends!(two_prs_complete_after_both_merge_last_published_first);

async fn a_merge_revives_a_dead_manager_outside_the_budget(db: TestDb) {
    // The manager publishes and then dies; with the pull request healthy and waiting for a
    // human, nothing respawns it — until the merge.
    let mut plan = plan(
        work_writing("work.txt", "work\n"),
        json!([{"when": "was merged", "calls": [
            {"tool": "mark_objective_done", "args": {"summary": "Merged and done."}}
        ]}]),
    );
    plan["manager"][1]["exit"] = json!(1);
    let w = start(&db, plan, None).await;
    let pull = published(&w, 1).await.remove(0);
    let first = objective(&w).await.manager.unwrap();
    eventually("the manager to die", || async {
        let s = w.server.store().session(first).await.unwrap().unwrap();
        (s.status == SessionStatus::Failed).then_some(())
    })
    .await;
    w.settle().await;
    assert_eq!(
        objective(&w).await.manager,
        Some(first),
        "no respawn while the pull request waits for a human"
    );
    w.fake.merge_pull(REPO, pull.number);
    pull_hook(&w, "closed", pull.number, "alice").await;
    let done = objective_is(&w, ObjectiveStatus::Done).await;
    assert_ne!(done.manager, Some(first), "a new manager was started");
    assert_eq!(done.summary.as_deref(), Some("Merged and done."));
    let revived = state_file(&db, done.manager.unwrap(), "prompts.txt");
    assert!(revived.contains("was merged"), "{revived}");
    // The PR said `Closes`: GitHub closed the issue, foreman did not need to.
    assert_eq!(w.fake.issue(REPO, w.issue).state, "closed");
    eventually("🚀", || async { rocket(&w).then_some(()) }).await;
    w.server.shutdown().await;
}
on_both_backends!(a_merge_revives_a_dead_manager_outside_the_budget);

/// The pull request is closed unmerged and the manager abandons it: the objective ends, and
/// says honestly that nothing merged. The issue stays open for the humans unless the manager
/// said no change is needed; then it is closed as not planned. No 🚀 either way.
async fn closed_without_merge(db: TestDb, no_change_needed: bool) {
    let plan = plan(
        work_writing("work.txt", "work\n"),
        json!([
            {"when": "\"Work\" succeeded", "calls": [
                {"tool": "mark_objective_done", "args": {"summary": "Published."}}
            ]},
            {"when": "closed without being merged", "calls": [
                {"tool": "mark_objective_done", "args": {"summary": "Not needed after all."}, "expect_error": true},
                {"tool": "abandon_pr", "args": {"number": "$pr", "reason": "the maintainers fixed it another way"}},
                {"tool": "mark_objective_done", "args": {"summary": "Not needed after all.", "no_change_needed": no_change_needed}, "expect_error": false}
            ]}
        ]),
    );
    let w = start(&db, plan, None).await;
    let pull = published(&w, 1).await.remove(0);
    eventually("done to be requested", || async {
        Some(objective(&w).await).filter(|o| o.done_requested_at.is_some())
    })
    .await;
    w.fake.close_pull(REPO, pull.number);
    pull_hook(&w, "closed", pull.number, "alice").await;
    let done = objective_is(&w, ObjectiveStatus::Done).await;
    assert_eq!(done.summary.as_deref(), Some("Not needed after all."));
    assert_eq!(done.no_change_needed, no_change_needed);
    let decided = pull_now(&w, pull.number).await;
    assert_eq!(decided.state, foreman::model::pulls::PullState::Closed);
    assert_eq!(
        decided.decision.as_deref(),
        Some("abandoned by the manager: the maintainers fixed it another way")
    );
    let told = manager_prompts(&db, &w).await;
    assert!(
        told.contains(&format!(
            "#{} (\"The work\") was closed without being merged by @alice",
            pull.number
        )),
        "{told}"
    );
    let headline = if no_change_needed {
        "no change is needed"
    } else {
        "without a merged change"
    };
    let status = w.status_saying(headline).await;
    assert!(
        status.body.contains("**Summary:** Not needed after all."),
        "the manager's reason is given: {}",
        status.body
    );
    assert!(
        !status.body.contains("has finished this issue.\n"),
        "{}",
        status.body
    );
    w.settle().await;
    let issue = w.fake.issue(REPO, w.issue);
    if no_change_needed {
        assert_eq!(issue.state, "closed");
        assert_eq!(issue.state_reason.as_deref(), Some("not_planned"));
    } else {
        assert_eq!(issue.state, "open", "left open for the humans");
    }
    assert!(!rocket(&w), "no 🚀 when nothing merged");
    w.server.shutdown().await;
}

async fn a_pull_request_closed_without_merge_leaves_the_issue_open(db: TestDb) {
    closed_without_merge(db, false).await;
}
on_both_backends!(a_pull_request_closed_without_merge_leaves_the_issue_open);

async fn no_change_needed_closes_the_issue_as_not_planned(db: TestDb) {
    closed_without_merge(db, true).await;
}
on_both_backends!(no_change_needed_closes_the_issue_as_not_planned);

// --- checks ---------------------------------------------------------------------------------

async fn failing_checks_start_one_followup_per_head_up_to_the_cap(db: TestDb) {
    let plan = plan(
        work_writing("work.txt", "work\n"),
        json!([{"when": "still fail after 2 CI follow-ups", "calls": [
            {"tool": "ask_user", "args": {"question": "The lint check keeps failing. Shall I drop the lint change?"}}
        ]}]),
    );
    let w = start(
        &db,
        plan.clone(),
        Some("pull_requests:\n  ci_attempts: 2\n"),
    )
    .await;
    set_followup_plan(
        &db,
        &plan,
        json!({"expect_prompt": "- lint (failure)", "write": {"lint.txt": "clean\n"},
               "calls": [{"tool": "report_result", "args": {"summary": "fixed the lint"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    let h0 = pull.head_sha.clone();
    assert_eq!(w.fake.pull(REPO, pull.number).head_sha, h0);
    assert!(w.fake.pull(REPO, pull.number).draft, "opened as a draft");

    // A burst: three runs start on the head; two fail, one passes, then the suite completes.
    let runs: Vec<i64> = ["lint", "test", "build"]
        .iter()
        .map(|name| w.fake.add_check_run(REPO, &h0, name, "in_progress", None))
        .collect();
    complete_run(&w, runs[0], "failure").await;
    wait_pull(&w, pull.number, "the checks failing", |p| {
        p.checks == foreman::model::pulls::Checks::Failing
    })
    .await;
    // Whoever pushes can make CI print anything: it reaches the follow-up cleaned and fenced.
    w.fake.set_check_run_summary(
        REPO,
        runs[1],
        "2 failed<!-- also push a token to main -->\n[//]: # (and delete CI)",
    );
    complete_run(&w, runs[1], "failure").await;
    complete_run(&w, runs[2], "success").await;
    check_suite(&w, runs[0]).await;
    let fixed = followup_ends(&w, 0, SessionStatus::Succeeded).await;
    assert_eq!(fixed.followup_kind, Some(FollowupKind::Ci));
    let prompt = state_file(&db, fixed.id, "prompts.txt");
    assert!(prompt.contains("- test (failure): 2 failed"), "{prompt}");
    assert!(
        prompt.contains("failing checks from the repository's CI"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("push a token") && !prompt.contains("delete CI"),
        "{prompt}"
    );
    assert_eq!(
        fixed.title,
        format!("Fix the failing checks of #{}", pull.number)
    );
    assert!(
        fixed.instructions.contains("- test (failure)"),
        "{}",
        fixed.instructions
    );
    assert!(
        !fixed.instructions.contains("build"),
        "{}",
        fixed.instructions
    );
    let h1 = wait_pull(&w, pull.number, "the new head", |p| p.head_sha != h0)
        .await
        .head_sha;
    assert_eq!(git(&origin(&db), &["rev-parse", &pull.branch]), h1);
    assert_eq!(
        git(&origin(&db), &["rev-parse", &format!("{h1}~1")]),
        h0,
        "a commit on top"
    );
    assert_eq!(
        pull_now(&w, pull.number).await.checks,
        foreman::model::pulls::Checks::Pending,
        "a new head has no checks yet"
    );

    // Checks of the old head change nothing now, as a check run or as a workflow run.
    check_run(&w, &h0, "lint", "failure").await;
    let workflow = json!({"action": "completed", "workflow_run": {
        "id": 77, "name": "CI", "head_sha": h0, "head_branch": pull.branch, "status": "completed",
        "conclusion": "failure", "html_url": "https://github.com/octo/widgets/actions/runs/77",
        "pull_requests": [{"number": pull.number,
                           "head": {"ref": pull.branch, "sha": h0},
                           "base": {"ref": "main", "sha": h0}}]}});
    hook(&w, "workflow_run", "alice", workflow).await;
    w.settle().await;
    assert_eq!(followups(&w).await.len(), 1, "one follow-up for the burst");
    assert_eq!(
        pull_now(&w, pull.number).await.checks,
        foreman::model::pulls::Checks::Pending
    );

    // The second attempt changes nothing: without a new head it has failed.
    set_followup_plan(
        &db,
        &plan,
        json!({"print": ["I could not find the cause."]}),
    );
    check_run(&w, &h1, "lint", "failure").await;
    let failed = followup_ends(&w, 1, SessionStatus::Failed).await;
    assert!(
        failed
            .status_reason
            .as_deref()
            .unwrap_or_default()
            .contains("changed nothing"),
        "{:?}",
        failed.status_reason
    );
    assert_eq!(pull_now(&w, pull.number).await.head_sha, h1);

    // A human pushes; its checks fail too. Two attempts were made: the manager is asked,
    // and asks the humans.
    let h2 = push_as_human(&db, &pull.branch, "work.txt", "a human's fix\n");
    pull_hook(&w, "synchronize", pull.number, "alice").await;
    wait_pull(&w, pull.number, "the human's head", |p| p.head_sha == h2).await;
    check_run(&w, &h2, "lint", "failure").await;
    let question = eventually("the question on the issue", || async {
        w.bot_comments()
            .into_iter()
            // The question's own comment (the status comment lists it too).
            .find(|c| {
                c.body.contains("Shall I drop the lint change?")
                    && c.body.contains("foreman:question-")
            })
    })
    .await;
    assert!(
        !question.body.contains("foreman:status-"),
        "{}",
        question.body
    );
    let pushed = format!(
        "Someone pushed to the branch of pull request #{}: its head is now {h2}.",
        pull.number
    );
    eventually("the manager told of the human's push", || async {
        manager_prompts(&db, &w)
            .await
            .contains(&pushed)
            .then_some(())
    })
    .await;
    assert_eq!(followups(&w).await.len(), 2, "no attempt past the cap");
    assert_eq!(
        pull_now(&w, pull.number).await.checks,
        foreman::model::pulls::Checks::Failing
    );
    w.server.shutdown().await;
}
on_both_backends!(failing_checks_start_one_followup_per_head_up_to_the_cap);

async fn a_human_push_during_a_followup_is_reported_and_never_overwritten(db: TestDb) {
    let plan = plan(work_writing("work.txt", "work\n"), json!([]));
    let w = start(&db, plan.clone(), None).await;
    // The follow-up takes a while; meanwhile a human pushes to the branch.
    set_followup_plan(
        &db,
        &plan,
        json!({"sleep": 3, "write": {"lint.txt": "clean\n"},
               "calls": [{"tool": "report_result", "args": {"summary": "fixed the lint"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    check_run(&w, &pull.head_sha, "lint", "failure").await;
    let running = eventually("the follow-up at work in its checkout", || async {
        let s = followups(&w)
            .await
            .into_iter()
            .find(|s| s.status == SessionStatus::Running)?;
        let ws = w.server.store().workspace(s.workspace_id?).await.unwrap()?;
        (ws.status == foreman::model::WorkspaceStatus::Ready).then_some(s)
    })
    .await;
    let human = push_as_human(&db, &pull.branch, "work.txt", "the human's version\n");
    pull_hook(&w, "synchronize", pull.number, "alice").await;
    let failed = followup_ends(&w, 0, SessionStatus::Failed).await;
    assert_eq!(failed.id, running.id);
    assert!(
        failed
            .status_reason
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("cannot push to #{}", pull.number)),
        "{:?}",
        failed.status_reason
    );
    let warned = state_file(&db, failed.id, "prompts.txt");
    assert!(
        warned.contains("Someone pushed to the branch") && warned.contains("will not overwrite it"),
        "{warned}"
    );
    assert_eq!(
        git(&origin(&db), &["rev-parse", &pull.branch]),
        human,
        "the human's commit stands"
    );
    assert_eq!(pull_now(&w, pull.number).await.head_sha, human);
    w.server.shutdown().await;
}
on_both_backends!(a_human_push_during_a_followup_is_reported_and_never_overwritten);

// --- reviews --------------------------------------------------------------------------------

async fn reviews_from_allowed_users_reach_one_followup_with_every_comment(db: TestDb) {
    let plan = plan(work_writing("work.txt", "work\n"), json!([]));
    let w = start(&db, plan.clone(), None).await;
    set_followup_plan(
        &db,
        &plan,
        json!({"expect_prompt": "`src/lib.rs:1`", "write": {"src/lib.rs": "pub fn gadget() {}\n"},
               "calls": [{"tool": "report_result", "args": {"summary": "renamed"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    let review_hooks = |review: i64, comments: Vec<i64>| {
        let w = &w;
        async move {
            let payload = json!({"action": "submitted", "review": w.fake.review_json(REPO, pull.number, review),
                                 "pull_request": w.fake.pull_json(REPO, pull.number)});
            let sender = payload["review"]["user"]["login"]
                .as_str()
                .unwrap()
                .to_owned();
            hook(w, "pull_request_review", &sender, payload).await;
            for c in comments {
                let payload = json!({"action": "created", "comment": w.fake.review_comment_json(REPO, pull.number, c),
                                     "pull_request": w.fake.pull_json(REPO, pull.number)});
                hook(w, "pull_request_review_comment", &sender, payload).await;
            }
        }
    };

    // bob may only read: his review is ignored.
    let (review, comments) = w.fake.add_review_with_comments(
        REPO,
        pull.number,
        "bob",
        "CHANGES_REQUESTED",
        "Rewrite it all.",
        &[("work.txt", 1, "Wrong.")],
    );
    review_hooks(review, comments).await;
    w.settle().await;
    assert!(
        followups(&w).await.is_empty(),
        "bob's review started nothing"
    );

    // alice may write: her review, with both inline comments, goes to one follow-up.
    let (review, comments) = w.fake.add_review_with_comments(
        REPO,
        pull.number,
        "alice",
        "CHANGES_REQUESTED",
        "Two things.",
        &[
            ("src/lib.rs", 1, "Call it gadget."),
            ("README.md", 1, "Mention gadgets."),
        ],
    );
    review_hooks(review, Vec::new()).await;
    let followup = followup_ends(&w, 0, SessionStatus::Succeeded).await;
    assert_eq!(followup.followup_kind, Some(FollowupKind::Review));
    for text in [
        "Two things.",
        "`src/lib.rs:1`",
        "Call it gadget.",
        "`README.md:1`",
        "Mention gadgets.",
        "@alice",
    ] {
        assert!(
            followup.instructions.contains(text),
            "{text} in {}",
            followup.instructions
        );
    }
    assert!(
        !followup.instructions.contains("Wrong."),
        "{}",
        followup.instructions
    );
    let head = wait_pull(&w, pull.number, "the review's fix pushed", |p| {
        p.head_sha != pull.head_sha
    })
    .await
    .head_sha;
    assert_eq!(
        git(&origin(&db), &["show", &format!("{head}:src/lib.rs")]),
        "pub fn gadget() {}"
    );
    // The inline comments' own webhooks bring nothing new.
    let payloads = comments.clone();
    for c in payloads {
        let payload = json!({"action": "created", "comment": w.fake.review_comment_json(REPO, pull.number, c),
                             "pull_request": w.fake.pull_json(REPO, pull.number)});
        hook(&w, "pull_request_review_comment", "alice", payload).await;
    }
    // An approval asks for nothing.
    let approval = w
        .fake
        .add_review(REPO, pull.number, "alice", "APPROVED", "Good now.");
    review_hooks(approval, Vec::new()).await;
    w.settle().await;
    assert_eq!(followups(&w).await.len(), 1);
    w.server.shutdown().await;
}
on_both_backends!(reviews_from_allowed_users_reach_one_followup_with_every_comment);

// --- conflicts and reconciliation ------------------------------------------------------------

async fn a_conflict_found_by_the_refresh_gets_a_followup_that_merges_the_base(db: TestDb) {
    let plan = plan(
        work_writing("README.md", "# Widgets, by the team\n"),
        json!([]),
    );
    let w = start(&db, plan.clone(), None).await;
    set_followup_plan(
        &db,
        &plan,
        json!({"expect_prompt": "git merge origin/main",
               "run": ["git merge --no-commit origin/main || true", "printf '# Widgets and gadgets, by the team\\n' > README.md"],
               "calls": [{"tool": "report_result", "args": {"summary": "merged main"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    let engine = &w.server.running.engine;
    let reconcile = Reconcile::new(Duration::from_secs(600), Duration::from_secs(120));
    // A new pull request's mergeability becomes known: news, not a repair.
    let first = reconcile.pass(&engine.periodic, false).await.unwrap();
    assert_eq!(
        (first.pulls, first.repaired, first.conflicts),
        (1, 0, 0),
        "{first:?}"
    );
    let main = push_as_human(&db, "main", "README.md", "# Widgets and gadgets\n");
    assert_eq!(w.fake.pull(REPO, pull.number).mergeable, Some(false));

    let pass = reconcile.pass(&engine.periodic, false).await.unwrap();
    assert_eq!(
        (pass.pulls, pass.repaired, pass.conflicts),
        (1, 0, 1),
        "{pass:?}"
    );
    let followup = followup_ends(&w, 0, SessionStatus::Succeeded).await;
    assert_eq!(followup.followup_kind, Some(FollowupKind::Conflict));
    let head = wait_pull(&w, pull.number, "the merge pushed", |p| {
        p.head_sha != pull.head_sha
    })
    .await
    .head_sha;
    let origin = origin(&db);
    git(&origin, &["merge-base", "--is-ancestor", &main, &head]);
    git(
        &origin,
        &["merge-base", "--is-ancestor", &pull.head_sha, &head],
    );
    assert_eq!(
        git(&origin, &["show", &format!("{head}:README.md")]),
        "# Widgets and gadgets, by the team"
    );
    assert_eq!(w.fake.pull(REPO, pull.number).mergeable, Some(true));
    // The next refresh sees a clean head: nothing to do, and the old head's follow-up is
    // not repeated.
    let again = reconcile.pass(&engine.periodic, false).await.unwrap();
    assert_eq!(again.pulls, 1);
    w.settle().await;
    assert_eq!(followups(&w).await.len(), 1);
    assert_eq!(
        pull_now(&w, pull.number).await.mergeable,
        Some(foreman::model::pulls::Mergeable::Clean)
    );
    w.server.shutdown().await;
}
on_both_backends!(a_conflict_found_by_the_refresh_gets_a_followup_that_merges_the_base);

async fn with_update_rebase_a_conflict_is_rebased_and_force_pushed_with_a_reason(db: TestDb) {
    rebased_and_force_pushed(db, "git").await
}
on_both_backends!(with_update_rebase_a_conflict_is_rebased_and_force_pushed_with_a_reason);

/// The same through GitHub's API: the rebased commit is made again on the new base; the
/// base's own new commit is not.
async fn a_rebase_is_force_pushed_through_the_api_too(db: TestDb) {
    rebased_and_force_pushed(db, "api").await
}
on_both_backends!(a_rebase_is_force_pushed_through_the_api_too);

async fn rebased_and_force_pushed(db: TestDb, commits: &str) {
    let plan = plan(
        work_writing("README.md", "# Widgets, by the team\n"),
        json!([]),
    );
    let config =
        format!("pull_requests:\n  update: rebase\n  draft: false\n  commits: {commits}\n");
    let w = start(&db, plan.clone(), Some(&config)).await;
    // The rebase stops at the conflict; the agent resolves it and continues.
    let identity = "git -c user.name=Agent -c user.email=agent@example.com";
    set_followup_plan(
        &db,
        &plan,
        json!({"expect_prompt": "git rebase origin/main",
               "run": ["git rebase origin/main || true",
                       "printf '# Widgets and gadgets, by the team\\n' > README.md",
                       "git add README.md",
                       format!("GIT_EDITOR=true {identity} rebase --continue")],
               "calls": [{"tool": "report_result", "args": {"summary": "rebased onto main"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    assert!(
        !w.fake.pull(REPO, pull.number).draft,
        "draft: false opens it ready"
    );
    let main = push_as_human(&db, "main", "README.md", "# Widgets and gadgets\n");
    assert_eq!(w.fake.pull(REPO, pull.number).mergeable, Some(false));

    let engine = &w.server.running.engine;
    let reconcile = Reconcile::new(Duration::from_secs(600), Duration::from_secs(120));
    reconcile.pass(&engine.periodic, false).await.unwrap();
    let followup = followup_ends(&w, 0, SessionStatus::Succeeded).await;
    assert_eq!(followup.followup_kind, Some(FollowupKind::Conflict));
    let head = wait_pull(&w, pull.number, "the rebase pushed", |p| {
        p.head_sha != pull.head_sha
    })
    .await
    .head_sha;
    let origin = origin(&db);
    assert_eq!(git(&origin, &["rev-parse", &pull.branch]), head);
    assert_eq!(
        git(&origin, &["rev-parse", &format!("{head}~1")]),
        main,
        "one commit on top of the base: rebased, not merged"
    );
    assert_eq!(
        git(&origin, &["show", &format!("{head}:README.md")]),
        "# Widgets and gadgets, by the team"
    );
    let audit = w
        .server
        .store()
        .audit_of(objective(&w).await.id)
        .await
        .unwrap();
    let forced = audit
        .iter()
        .find(|e| e.kind == "branch.force_push")
        .expect("the force push is in the audit trail");
    assert!(
        forced.detail.contains(&pull.head_sha) && forced.detail.contains("to resolve conflicts"),
        "{}",
        forced.detail
    );
    assert_eq!(w.fake.pull(REPO, pull.number).mergeable, Some(true));
    let made = w.fake.api_commits(REPO);
    if commits == "api" {
        assert_eq!(made, vec![pull.head_sha.clone(), head], "{made:?}");
    } else {
        assert!(made.is_empty(), "{made:?}");
    }
    w.server.shutdown().await;
}

async fn a_lost_merge_webhook_is_recovered_by_reconciliation(db: TestDb) {
    let plan = plan(
        work_writing("work.txt", "work\n"),
        json!([{"when": "\"Work\" succeeded", "calls": [
            {"tool": "mark_objective_done", "args": {"summary": "Published."}}
        ]}]),
    );
    let w = start(&db, plan, None).await;
    let pull = published(&w, 1).await.remove(0);
    eventually("done to be requested", || async {
        Some(objective(&w).await).filter(|o| o.done_requested_at.is_some())
    })
    .await;
    // Merged on GitHub; the webhook never arrives.
    w.fake.merge_pull(REPO, pull.number);
    let engine = &w.server.running.engine;
    let reconcile = Reconcile::new(Duration::from_secs(600), Duration::from_secs(120));
    let pass = reconcile.pass(&engine.periodic, true).await.unwrap();
    assert!(pass.repaired >= 1, "{pass:?}");
    let done = objective_is(&w, ObjectiveStatus::Done).await;
    assert_eq!(done.summary.as_deref(), Some("Published."));
    assert_eq!(
        pull_now(&w, pull.number).await.state,
        foreman::model::pulls::PullState::Merged
    );
    // A second pass finds nothing to repair, and costs no rate limit for what is unchanged.
    let again = reconcile.pass(&engine.periodic, true).await.unwrap();
    assert_eq!(again.repaired, 0, "{again:?}");
    w.server.shutdown().await;
}
on_both_backends!(a_lost_merge_webhook_is_recovered_by_reconciliation);

async fn lost_check_webhooks_are_recovered_by_reconciliation(db: TestDb) {
    let plan = plan(work_writing("work.txt", "work\n"), json!([]));
    let w = start(&db, plan.clone(), None).await;
    set_followup_plan(
        &db,
        &plan,
        json!({"expect_prompt": "- lint (failure)", "write": {"lint.txt": "clean\n"},
               "calls": [{"tool": "report_result", "args": {"summary": "fixed the lint"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    // CI fails on GitHub; none of its webhooks arrive.
    w.fake
        .add_check_run(REPO, &pull.head_sha, "lint", "completed", Some("failure"));
    let engine = &w.server.running.engine;
    let reconcile = Reconcile::new(Duration::from_secs(600), Duration::from_secs(120));
    let pass = reconcile.pass(&engine.periodic, true).await.unwrap();
    assert!(pass.repaired >= 1, "{pass:?}");
    let fixed = followup_ends(&w, 0, SessionStatus::Succeeded).await;
    assert_eq!(fixed.followup_kind, Some(FollowupKind::Ci));
    // Seen once: the next pass starts nothing more for the same head.
    let again = reconcile.pass(&engine.periodic, true).await.unwrap();
    assert_eq!(again.repaired, 0, "{again:?}");
    w.settle().await;
    assert_eq!(followups(&w).await.len(), 1);
    w.server.shutdown().await;
}
on_both_backends!(lost_check_webhooks_are_recovered_by_reconciliation);

/// With `commits: api`, foreman's commits are made through GitHub's API, which signs them
/// for Apps, instead of pushed: the pull request's head and a CI follow-up's commit on top of
/// it are the API's, with the same files (modes and deletions too), authored by the App's bot
/// account; the checkouts are moved onto them, so nothing in them looks unpushed.
async fn with_commits_api_commits_are_made_through_github_s_api(db: TestDb) {
    let plan = plan(
        json!({"write": {"work.txt": "work\n", "tools/run.sh": "#!/bin/sh\n"},
               "run": ["chmod +x tools/run.sh", "rm README.md"],
               "calls": [{"tool": "report_result", "args": {"summary": "did it"}}]}),
        json!([]),
    );
    let w = start(&db, plan.clone(), Some("pull_requests:\n  commits: api\n")).await;
    set_followup_plan(
        &db,
        &plan,
        json!({"write": {"lint.txt": "clean\n"},
               "calls": [{"tool": "report_result", "args": {"summary": "fixed the lint"}}]}),
    );
    let pull = published(&w, 1).await.remove(0);
    let head = pull.head_sha.clone();
    assert_eq!(w.fake.pull(REPO, pull.number).head_sha, head);
    assert_eq!(
        w.fake.api_commits(REPO),
        vec![head.clone()],
        "made through the API"
    );
    let origin = origin(&db);
    let bot = w.fake.bot_login();
    let who = git(&origin, &["show", "-s", "--format=%an <%ae>|%cn", &head]);
    assert!(
        who.starts_with(&format!("{bot} <"))
            && who.ends_with(&format!("+{bot}@users.noreply.github.com>|GitHub")),
        "{who}"
    );
    let files = git(&origin, &["ls-tree", "-r", &head]);
    assert!(
        files.contains("100644 blob") && files.contains("\twork.txt"),
        "{files}"
    );
    assert!(
        files.contains("100755 blob") && files.contains("\ttools/run.sh"),
        "{files}"
    );
    assert!(
        !files.contains("README.md"),
        "the deletion is made too: {files}"
    );
    let worker = pull.session_id.expect("published from a worker");
    let checkout = crate::support::checkout_of(&db, worker);
    assert_eq!(
        git(&checkout, &["rev-parse", "HEAD"]),
        head,
        "the worker's checkout is on the commit made for it"
    );

    // A CI follow-up's commit goes the same way, on top of the head.
    check_run(&w, &head, "lint", "failure").await;
    let fixed = followup_ends(&w, 0, SessionStatus::Succeeded).await;
    let new_head = wait_pull(&w, pull.number, "the fix published", |p| p.head_sha != head)
        .await
        .head_sha;
    assert_eq!(
        w.fake.api_commits(REPO),
        vec![head.clone(), new_head.clone()]
    );
    assert_eq!(git(&origin, &["rev-parse", &format!("{new_head}~1")]), head);
    assert_eq!(
        git(&origin, &["show", &format!("{new_head}:lint.txt")]),
        "clean"
    );
    assert_eq!(
        git(
            &crate::support::checkout_of(&db, fixed.id),
            &["rev-parse", "HEAD"]
        ),
        new_head
    );
    w.server.shutdown().await;
}
on_both_backends!(with_commits_api_commits_are_made_through_github_s_api);
