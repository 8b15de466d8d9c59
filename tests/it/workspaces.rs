//! Workspaces end to end: real git with local bare repositories as origins, the fake GitHub
//! for the pull request API, scripted agents, both backends.

use std::path::{Path, PathBuf};

use foreman::engine::objective::lifecycle;
use foreman::model::{InstallationId, ObjectiveId, SessionStatus, WorkspaceStatus};
use foreman::workspace::Prepare;
use serde_json::json;

use crate::agents::{new_objective, reaches, state_file};
use crate::on_both_backends;
use crate::support::fake_github::FakeGitHub;
use crate::support::{
    TestDb, TestServer, eventually, git, origins, post_webhook, serve_args, use_fake_github,
    write_plan,
};

const REPO: &str = "octo/widgets";

/// A server whose GitHub is the fake, with `octo/widgets` installed and an issue to work on.
async fn setup(db: &TestDb, plan: serde_json::Value) -> (TestServer, FakeGitHub, ObjectiveId) {
    setup_with(db, plan, |_, _, _| {}).await
}

/// [`setup`], with the server's settings, the objective and the fake GitHub changed by
/// `change` first.
pub async fn setup_with(
    db: &TestDb,
    plan: serde_json::Value,
    change: impl FnOnce(&mut foreman::config::ServeArgs, &mut foreman::store::NewObjective, &FakeGitHub),
) -> (TestServer, FakeGitHub, ObjectiveId) {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, REPO);
    let issue = fake.create_issue(REPO, "alice", "Widgets", "They break.");
    // Labelled, as an objective's issue is: reconciliation ends one whose label is gone.
    fake.add_label(REPO, issue, "foreman");
    write_plan(db, &plan);
    let mut args = serve_args(db);
    use_fake_github(&mut args, &fake);
    let mut objective = new_objective(issue);
    objective.installation_id = Some(InstallationId(installation));
    change(&mut args, &mut objective, &fake);
    let server = TestServer::start(&args).await;
    let (objective, _) = lifecycle::start(&server.running.engine.objectives, &objective)
        .await
        .unwrap()
        .unwrap();
    (server, fake, objective)
}

fn origin(db: &TestDb) -> PathBuf {
    origins(db).join(format!("{REPO}.git"))
}

/// The files of a commit in the origin.
fn files_at(db: &TestDb, rev: &str) -> Vec<String> {
    let listing = git(&origin(db), &["ls-tree", "-r", "--name-only", rev]);
    listing.lines().map(str::to_owned).collect()
}

/// What the objective's manager called, and the results it got.
async fn manager_calls(
    db: &TestDb,
    server: &TestServer,
    objective: ObjectiveId,
) -> Vec<serde_json::Value> {
    let o = server.store().objective(objective).await.unwrap().unwrap();
    state_file(db, o.manager.unwrap(), "calls.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn two_workers_in_parallel_publish_separate_pull_requests(db: TestDb) {
    let (server, fake, objective) = setup(
        &db,
        json!({
            "manager": [
                {"calls": [
                    {"tool": "spawn_worker", "args": {"title": "Left", "instructions": "x"}, "save": "left"},
                    {"tool": "spawn_worker", "args": {"title": "Right", "instructions": "x"}, "save": "right"}
                ]},
                {"when": "\"Left\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$left", "title": "Left side", "body": "Adds left.", "closes_issue": false}}
                ]},
                {"when": "\"Right\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$right", "title": "Right side", "body": "Adds right.", "closes_issue": true}}
                ]}
            ],
            "workers": {
                "Left": {"write": {"left.txt": "left\n"}, "calls": [{"tool": "report_result", "args": {"summary": "wrote left"}}]},
                "Right": {"write": {"right.txt": "right\n"}, "calls": [{"tool": "report_result", "args": {"summary": "wrote right"}}]}
            }
        }),
    )
    .await;
    let store = server.store();
    let pulls = eventually("both pull requests", || async {
        let pulls = store.pulls_of(objective).await.unwrap();
        (pulls.len() == 2).then_some(pulls)
    })
    .await;
    let left = reaches(store, objective, "Left", SessionStatus::Succeeded).await;
    let right = reaches(store, objective, "Right", SessionStatus::Succeeded).await;
    assert_ne!(left.workspace_id, right.workspace_id);
    let workspaces = store.workspaces_of(objective).await.unwrap();
    assert_eq!(workspaces.len(), 3, "the manager's and one per worker");
    assert!(
        workspaces
            .iter()
            .all(|w| w.status == WorkspaceStatus::Ready && w.base_ref == "main")
    );
    assert_eq!(
        workspaces[0].branch, None,
        "the manager's checkout is read-only"
    );
    for (worker, file, other) in [
        (&left, "left.txt", "right.txt"),
        (&right, "right.txt", "left.txt"),
    ] {
        // Whichever finished first was published first: match them by worker.
        let pull = pulls
            .iter()
            .find(|p| p.session_id == Some(worker.id))
            .unwrap();
        assert!(
            pull.branch.starts_with("foreman/")
                && pull.branch.ends_with(&format!("-s{}", worker.id)),
            "{}",
            pull.branch
        );
        let upstream = git(
            &origin(&db),
            &["rev-parse", &format!("refs/heads/{}", pull.branch)],
        );
        assert_eq!(
            upstream, pull.head_sha,
            "the recorded head is what was pushed"
        );
        let files = files_at(&db, &pull.branch);
        assert!(
            files.contains(&file.to_owned()) && !files.contains(&other.to_owned()),
            "{files:?}"
        );
        let author = git(
            &origin(&db),
            &["log", "-1", "--format=%an <%ae>|%s", &pull.branch],
        );
        // The App's bot account, by the address GitHub links to it: its user id first.
        let bot = fake.user_json("foreman-test[bot]")["id"].as_u64().unwrap();
        assert_eq!(
            author,
            format!(
                "foreman-test[bot] <{bot}+foreman-test[bot]@users.noreply.github.com>|{}",
                pull.title
            )
        );
        // The agent's own commits in its checkout are the bot's too.
        let checkout = workspaces
            .iter()
            .find(|w| w.created_by == Some(worker.id))
            .unwrap();
        assert_eq!(
            git(Path::new(&checkout.path), &["config", "user.email"]),
            format!("{bot}+foreman-test[bot]@users.noreply.github.com")
        );
        let on_github = fake.pull(REPO, pull.number);
        assert_eq!(
            (on_github.head_ref.as_str(), on_github.base_ref.as_str()),
            (pull.branch.as_str(), "main")
        );
    }
    let issue = store
        .objective(objective)
        .await
        .unwrap()
        .unwrap()
        .issue_number;
    let body_of = |worker: &foreman::model::Session| {
        let pull = pulls
            .iter()
            .find(|p| p.session_id == Some(worker.id))
            .unwrap();
        fake.pull(REPO, pull.number).body.unwrap_or_default()
    };
    assert!(
        body_of(&left).contains(&format!("Part of #{issue}")),
        "{}",
        body_of(&left)
    );
    assert!(
        body_of(&right).contains(&format!("Closes #{issue}")),
        "{}",
        body_of(&right)
    );
    server.shutdown().await;
}
on_both_backends!(two_workers_in_parallel_publish_separate_pull_requests);

/// What agents post is scrubbed: a token in a comment, an API key in a result (which becomes
/// the commit message) are redacted and each redaction is audited; a pull request body closes
/// only the objective's own issue.
async fn what_agents_post_is_scrubbed_and_closes_only_their_issue(db: TestDb) {
    const TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
    const KEY: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz";
    let (server, fake, objective) = setup(
        &db,
        json!({
            "manager": [
                {"calls": [
                    {"tool": "comment_issue", "args": {"body": format!("Found a token: {TOKEN}")}},
                    {"tool": "spawn_worker", "args": {"title": "Change", "instructions": "x"}, "save": "w"}
                ]},
                {"when": "\"Change\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$w", "title": "Change",
                     "body": "Fixes #99. Also resolves octo/other#1.", "closes_issue": true}}
                ]}
            ],
            "workers": {"Change": {"write": {"change.txt": "c\n"}, "calls": [
                {"tool": "report_result", "args": {"summary": format!("done with key {KEY}; fixes #98")}}
            ]}}
        }),
    )
    .await;
    let store = server.store();
    let issue = store
        .objective(objective)
        .await
        .unwrap()
        .unwrap()
        .issue_number;
    let pull = eventually("the pull request", || async {
        store.pulls_of(objective).await.unwrap().into_iter().next()
    })
    .await;
    let comment = eventually("the agent's comment", || async {
        fake.comments(REPO, issue)
            .into_iter()
            .find(|c| c.body.contains("Found a token"))
    })
    .await;
    assert!(
        comment.body.contains("[REDACTED GitHub token]"),
        "{}",
        comment.body
    );
    assert!(!comment.body.contains(TOKEN));
    let body = fake.pull(REPO, pull.number).body.unwrap_or_default();
    assert!(
        body.contains("see #99") && body.contains("see octo/other#1"),
        "{body}"
    );
    assert!(body.contains(&format!("Closes #{issue}")), "{body}");
    let message = git(&origin(&db), &["log", "-1", "--format=%B", &pull.branch]);
    assert!(
        !message.contains(KEY) && message.contains("[REDACTED API key]"),
        "{message}"
    );
    assert!(message.contains("see #98"), "{message}");
    // The commit names the session whose work it is (by number: no public address here).
    let worker = pull.session_id.expect("the pull request's session");
    assert!(
        message
            .trim_end()
            .ends_with(&format!("Foreman-Session: #{worker}")),
        "{message}"
    );
    let audit = store.audit_of(objective).await.unwrap();
    let redactions: Vec<_> = audit
        .iter()
        .filter(|a| a.kind == "agent.redacted")
        .collect();
    assert_eq!(redactions.len(), 2, "{redactions:?}");
    server.shutdown().await;
}
on_both_backends!(what_agents_post_is_scrubbed_and_closes_only_their_issue);

async fn a_dependent_continues_on_its_dependencys_branch_and_republishing_updates_the_pr(
    db: TestDb,
) {
    let (server, fake, objective) = setup(
        &db,
        json!({
            "manager": [
                {"calls": [
                    {"tool": "spawn_worker", "args": {"title": "First", "instructions": "x"}, "save": "first"},
                    {"tool": "spawn_worker", "args": {"title": "Second", "instructions": "x", "depends_on": ["$first"]}, "save": "second"}
                ]},
                {"when": "\"First\" succeeded"},
                {"when": "\"Second\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$second", "title": "Both parts", "body": "Now complete.", "closes_issue": true}},
                    {"tool": "publish_pr", "args": {"worker": "$second", "title": "Both parts", "body": "Again.", "closes_issue": true}}
                ]}
            ],
            "workers": {
                "First": {"write": {"one.txt": "1\n"}, "calls": [{"tool": "report_result", "args": {"summary": "one"}}]},
                "Second": {"expect_files": ["one.txt"], "write": {"two.txt": "2\n"}, "calls": [{"tool": "report_result", "args": {"summary": "two"}}]}
            }
        }),
    )
    .await;
    let store = server.store();
    let calls = eventually("both publishes of the second worker", || async {
        let calls = manager_calls(&db, &server, objective).await;
        (calls.iter().filter(|c| c["tool"] == "publish_pr").count() == 2).then_some(calls)
    })
    .await;
    let first = reaches(store, objective, "First", SessionStatus::Succeeded).await;
    let second = reaches(store, objective, "Second", SessionStatus::Succeeded).await;
    assert_eq!(
        first.workspace_id, second.workspace_id,
        "the dependent inherited the checkout"
    );
    let publishes: Vec<&str> = calls
        .iter()
        .filter(|c| c["tool"] == "publish_pr")
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert!(publishes[0].contains("opened"), "{publishes:?}");
    assert!(publishes[1].contains("updated"), "{publishes:?}");
    let pulls = store.pulls_of(objective).await.unwrap();
    assert_eq!(pulls.len(), 1, "one pull request, updated: {pulls:?}");
    let on_github = fake.pulls(REPO);
    assert_eq!(on_github.len(), 1);
    assert_eq!(on_github[0].title, "Both parts");
    let files = files_at(&db, &pulls[0].branch);
    assert!(files.contains(&"one.txt".to_owned()) && files.contains(&"two.txt".to_owned()));
    // One commit: the first worker's changes were committed when its dependent's were.
    assert_eq!(
        git(
            &origin(&db),
            &["rev-list", "--count", &format!("main..{}", pulls[0].branch)]
        ),
        "1"
    );
    server.shutdown().await;
}
on_both_backends!(a_dependent_continues_on_its_dependencys_branch_and_republishing_updates_the_pr);

async fn an_agents_own_pull_request_is_adopted_and_a_merged_one_refused(db: TestDb) {
    let (server, fake, objective) = setup(
        &db,
        json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Solo", "instructions": "x"}, "save": "solo"}]},
                {"when": "\"Solo\" succeeded"},
                {"when": "adopted", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$solo", "title": "Solo work", "body": "Done.", "closes_issue": true}}
                ]},
                {"when": "was merged", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$solo", "title": "More", "body": "More.", "closes_issue": true}, "expect_error": true}
                ]}
            ],
            "workers": {"Solo": {"write": {"solo.txt": "solo\n"}, "calls": [{"tool": "report_result", "args": {"summary": "solo"}}]}}
        }),
    )
    .await;
    let store = server.store();
    let solo = reaches(store, objective, "Solo", SessionStatus::Succeeded).await;
    let workspace = store
        .workspace(solo.workspace_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    let branch = workspace.branch.clone().unwrap();
    // The agent pushed and opened a pull request by other means.
    let checkout = Path::new(&workspace.path);
    git(checkout, &["add", "--all"]);
    git(checkout, &["commit", "--quiet", "-m", "by hand"]);
    git(
        checkout,
        &[
            "push",
            "--quiet",
            origin(&db).to_str().unwrap(),
            &format!("HEAD:refs/heads/{branch}"),
        ],
    );
    let sha = git(checkout, &["rev-parse", "HEAD"]);
    fake.set_branch(REPO, &branch, &sha);
    let number = fake.create_pull(REPO, &branch, "main", "By hand", "", "foreman-test[bot]");
    let opened = json!({
        "action": "opened",
        "number": number,
        "pull_request": fake.pull_json(REPO, number),
        "repository": fake.repo_json(REPO),
        "installation": {"id": store.objective(objective).await.unwrap().unwrap().installation_id.unwrap().0},
        "sender": fake.user_json("alice"),
    });
    let response = post_webhook(
        &server.client,
        &server.url("/webhooks/github"),
        "pull_request",
        "d-opened",
        opened.to_string().as_bytes(),
    )
    .await;
    assert_eq!(response.status(), 202);
    let adopted = eventually("the pull request to be adopted", || async {
        store.pulls_of(objective).await.unwrap().into_iter().next()
    })
    .await;
    assert_eq!(
        (
            adopted.number,
            adopted.session_id,
            adopted.head_sha.as_str()
        ),
        (number, Some(solo.id), sha.as_str())
    );
    // Tell the manager; its publish updates the adopted pull request instead of opening another.
    let manager = store
        .objective(objective)
        .await
        .unwrap()
        .unwrap()
        .manager
        .unwrap();
    let engine = &server.running.engine;
    let mut tx = store.begin().await.unwrap();
    tx.push_message(
        manager,
        "Your worker's pull request was adopted.",
        engine.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    engine.tick_bell.notify_one();
    eventually("the republish", || async {
        let calls = manager_calls(&db, &server, objective).await;
        calls
            .iter()
            .any(|c| c["tool"] == "publish_pr")
            .then_some(())
    })
    .await;
    assert_eq!(fake.pulls(REPO).len(), 1, "never duplicated");
    assert_eq!(fake.pull(REPO, number).title, "Solo work");
    // Once merged, the branch is not pushed to again.
    fake.merge_pull(REPO, number);
    let merged = json!({
        "action": "closed",
        "number": number,
        "pull_request": fake.pull_json(REPO, number),
        "repository": fake.repo_json(REPO),
        "sender": fake.user_json("alice"),
    });
    post_webhook(
        &server.client,
        &server.url("/webhooks/github"),
        "pull_request",
        "d-merged",
        merged.to_string().as_bytes(),
    )
    .await;
    eventually("the pull request to be merged", || async {
        let p = store.pulls_of(objective).await.unwrap();
        (p[0].state == foreman::model::pulls::PullState::Merged).then_some(())
    })
    .await;
    let mut tx = store.begin().await.unwrap();
    tx.push_message(manager, "It was merged.", engine.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.tick_bell.notify_one();
    let refused = eventually("the refused publish", || async {
        let calls = manager_calls(&db, &server, objective).await;
        calls
            .into_iter()
            .filter(|c| c["tool"] == "publish_pr")
            .nth(1)
    })
    .await;
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("was merged; pushing more to it is refused"),
        "{refused}"
    );
    server.shutdown().await;
}
on_both_backends!(an_agents_own_pull_request_is_adopted_and_a_merged_one_refused);

async fn nothing_to_publish_and_a_branch_that_moved_are_clear_errors(db: TestDb) {
    let (server, _fake, objective) = setup(
        &db,
        json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Idle", "instructions": "x"}, "save": "w"}]},
                {"when": "\"Idle\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$w", "title": "Nothing", "body": "x", "closes_issue": false}, "expect_error": true},
                    {"tool": "spawn_worker", "args": {"title": "Writer", "instructions": "x"}, "save": "v"}
                ]},
                {"when": "\"Writer\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$v", "title": "Write", "body": "x", "closes_issue": false}}
                ]},
                {"when": "Go on", "calls": [
                    {"tool": "spawn_worker", "args": {"title": "More", "instructions": "x", "depends_on": ["$v"]}, "save": "m"}
                ]},
                {"when": "\"More\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$m", "title": "More", "body": "x", "closes_issue": false}, "expect_error": true},
                    {"tool": "publish_pr", "args": {"worker": "$m", "title": "More", "body": "x", "closes_issue": false, "force_reason": "the upstream commit was a mistake"}}
                ]}
            ],
            "workers": {
                "Idle": {"calls": [{"tool": "report_result", "args": {"summary": "looked, changed nothing"}}]},
                "Writer": {"write": {"w.txt": "w\n"}},
                "More": {"write": {"m.txt": "m\n"}}
            }
        }),
    )
    .await;
    let store = server.store();
    let writer = reaches(store, objective, "Writer", SessionStatus::Succeeded).await;
    let pull = eventually("the first publish", || async {
        store.pulls_of(objective).await.unwrap().into_iter().next()
    })
    .await;
    // Someone else pushes to the published branch meanwhile.
    let other = tempfile::tempdir().unwrap();
    git(
        other.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            &pull.branch,
            origin(&db).to_str().unwrap(),
            "c",
        ],
    );
    let c = other.path().join("c");
    std::fs::write(c.join("theirs.txt"), "theirs\n").unwrap();
    git(&c, &["add", "--all"]);
    git(&c, &["commit", "--quiet", "-m", "theirs"]);
    git(&c, &["push", "--quiet", "origin", &pull.branch]);
    let engine = &server.running.engine;
    let manager = store
        .objective(objective)
        .await
        .unwrap()
        .unwrap()
        .manager
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.push_message(manager, "Go on.", engine.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.tick_bell.notify_one();
    let calls = eventually("the forced publish", || async {
        let calls = manager_calls(&db, &server, objective).await;
        (calls.iter().filter(|c| c["tool"] == "publish_pr").count() == 4).then_some(calls)
    })
    .await;
    let publishes: Vec<&str> = calls
        .iter()
        .filter(|c| c["tool"] == "publish_pr")
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert!(
        publishes[0].contains("made no changes; there is nothing to publish"),
        "{publishes:?}"
    );
    assert!(publishes[2].contains("non-fast-forward"), "{publishes:?}");
    assert!(publishes[3].contains("updated"), "{publishes:?}");
    let files = files_at(&db, &pull.branch);
    assert!(
        files.contains(&"m.txt".to_owned()) && !files.contains(&"theirs.txt".to_owned()),
        "{files:?}"
    );
    let _ = writer;
    let audit = store.recent_audit(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.kind == "branch.force_push" && e.detail.contains("was a mistake")),
        "{audit:?}"
    );
    server.shutdown().await;
}
on_both_backends!(nothing_to_publish_and_a_branch_that_moved_are_clear_errors);

async fn a_follow_up_checkout_starts_at_the_pull_requests_head(db: TestDb) {
    let (server, _fake, objective) = setup(
        &db,
        json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Base", "instructions": "x"}, "save": "w"}]},
                {"when": "\"Base\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$w", "title": "Base", "body": "x", "closes_issue": true}}
                ]}
            ],
            "workers": {"Base": {"write": {"base.txt": "b\n"}}}
        }),
    )
    .await;
    let store = server.store();
    let pull = eventually("the pull request", || async {
        store.pulls_of(objective).await.unwrap().into_iter().next()
    })
    .await;
    let engine = &server.running.engine;
    let path = db.dir().join("followup");
    let prepared = engine
        .runtime
        .workspaces
        .prepare(&Prepare {
            repository: REPO,
            base: Some(&pull.branch),
            path: &path,
            branch: Some(&pull.branch),
            start_at: None,
            auth: None,
        })
        .await
        .unwrap();
    assert_eq!(prepared.base_sha, pull.head_sha);
    assert_eq!(git(&path, &["rev-parse", "HEAD"]), pull.head_sha);
    assert_eq!(
        git(&path, &["symbolic-ref", "--short", "HEAD"]),
        pull.branch
    );
    assert_eq!(
        std::fs::read_to_string(path.join("base.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(
        git(&path, &["status", "--porcelain"]),
        "",
        "the copied checkout is clean"
    );
    server.shutdown().await;
}
on_both_backends!(a_follow_up_checkout_starts_at_the_pull_requests_head);

#[tokio::test]
async fn bad_origins_and_branches_are_clear_errors_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let origins = dir.path().join("origins");
    crate::support::make_origin(&origins, "octo/widgets", &[("a.txt", "a")]);
    let mut settings = foreman::workspace::WorkspaceSettings::github(
        dir.path().join("work"),
        crate::support::test_sandbox(),
    );
    settings.git_url = format!("file://{}", origins.display());
    let workspaces = foreman::workspace::Workspaces::new(settings);
    let path = dir.path().join("checkout");
    let prepare = |repository, base| Prepare {
        repository,
        base,
        path: &path,
        branch: Some("foreman/1-x-s1"),
        start_at: None,
        auth: None,
    };
    let err = workspaces
        .prepare(&prepare("octo/missing", None))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot clone octo/missing"),
        "{err:#}"
    );
    assert!(!path.exists());
    let err = workspaces
        .prepare(&prepare("octo/widgets", Some("nope")))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot fetch the base branch `nope` of octo/widgets"),
        "{err:#}"
    );
    assert!(!path.exists());
    let err = workspaces
        .prepare(&prepare("../etc", None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not a repository name"),
        "{err}"
    );
    let ok = workspaces
        .prepare(&prepare("octo/widgets", None))
        .await
        .unwrap();
    assert_eq!(ok.base_ref, "main");
}

async fn the_installation_token_reaches_git_and_nowhere_else(db: TestDb) {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, REPO);
    let issue = fake.create_issue(REPO, "alice", "Widgets", "They break.");
    // Labelled, as an objective's issue is: reconciliation ends one whose label is gone.
    fake.add_label(REPO, issue, "foreman");
    write_plan(
        &db,
        &json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Change", "instructions": "x"}, "save": "w"}]},
                {"when": "\"Change\" succeeded", "calls": [
                    {"tool": "publish_pr", "args": {"worker": "$w", "title": "Change", "body": "x", "closes_issue": true}}
                ]}
            ],
            "workers": {"Change": {"write": {"change.txt": "c\n"}, "print": ["done"]}}
        }),
    );
    // A git that records its argv, and the credential it was handed, before running git.
    let spy = db.dir().join("spy");
    std::fs::create_dir_all(&spy).unwrap();
    let real_git = crate::support::git(Path::new("/"), &["--exec-path"]);
    let wrapper = spy.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {argv}\n\
             if [ \"$GIT_CONFIG_KEY_0\" = http.extraHeader ]; then\n\
               printf '%s\\n' \"$GIT_CONFIG_VALUE_0\" | cut -d' ' -f3 | base64 -d | cut -d: -f2 >> {secrets}\n\
               echo >> {secrets}\nfi\nexec {real}/git \"$@\"\n",
            argv = spy.join("argv.log").display(),
            secrets = spy.join("secrets.log").display(),
            real = real_git,
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let (app_id, key, api) = (
        fake.app_id().to_string(),
        fake.private_key_pem(),
        fake.url(),
    );
    let env = [
        ("GITHUB_APP_ID", app_id.as_str()),
        ("GITHUB_PRIVATE_KEY", key.as_str()),
        ("GITHUB_API_URL", api.as_str()),
        ("FOREMAN_GIT", wrapper.to_str().unwrap()),
        ("FOREMAN_LOG", "debug"),
        ("FOREMAN_TICK_INTERVAL", "200ms"),
    ];
    let process = crate::support::Process::serve_scripted(&db, &env).await;
    let (store, engine) = crate::support::engine_on(&db).await;
    let mut objective = new_objective(issue);
    objective.installation_id = Some(InstallationId(installation));
    let (objective, _) = lifecycle::start(&engine.objectives, &objective)
        .await
        .unwrap()
        .unwrap();
    eventually("the pull request", || async {
        store.pulls_of(objective).await.unwrap().into_iter().next()
    })
    .await;
    let tokens: Vec<String> = std::fs::read_to_string(spy.join("secrets.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ghs_"))
        .map(str::to_owned)
        .collect();
    assert!(
        !tokens.is_empty(),
        "git was handed the installation token for fetch and push"
    );
    let argv = std::fs::read_to_string(spy.join("argv.log")).unwrap();
    assert!(argv.contains("push") && argv.contains("fetch"), "{argv}");
    let log = process.log.lock().unwrap().clone();
    for token in &tokens {
        assert!(!argv.contains(token.as_str()), "token in a git argv");
        assert!(!log.contains(token.as_str()), "token in foreman's log");
        let leaked = crate::support::files_containing(
            &crate::support::scripted_agents(&db).work_root,
            token,
        );
        assert!(leaked.is_empty(), "token written to {leaked:?}");
        for session in store.sessions_of(objective).await.unwrap() {
            let transcript = store.transcript(session.id).await.unwrap();
            assert!(transcript.iter().all(|l| !l.line.contains(token.as_str())));
        }
    }
    // The agents' environment holds none of foreman's secrets.
    for session in store.sessions_of(objective).await.unwrap() {
        let environ = state_file(&db, session.id, "environ.json");
        let environ: std::collections::HashMap<String, String> =
            serde_json::from_str(&environ).unwrap();
        assert!(
            environ
                .keys()
                .all(|k| !k.starts_with("GITHUB_") && k != "DATABASE_URL"),
            "{environ:?}"
        );
        assert!(!environ.values().any(|v| v.contains("PRIVATE KEY")));
    }
    process.terminate().await;
}
on_both_backends!(the_installation_token_reaches_git_and_nowhere_else);
