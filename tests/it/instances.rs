//! Two `foreman serve` processes on one database, each with a work root of its own (a volume
//! per machine), both receiving webhooks as a load balancer and GitHub's redeliveries would
//! send them. A burst over several repositories ends as it would with one instance: every
//! comment, session, follow-up and pull request once. Then the lease holder, which runs the agents, is
//! killed mid-turn and its disk goes with it: the survivor takes the periodic work and the
//! sessions over, on fresh checkouts, and the objective still ends in a merged pull request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use foreman::model::{Clock, Objective, ObjectiveStatus, PullRequest, Role, SessionStatus};
use foreman::store::Store;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::on_both_backends;
use crate::support::fake_github::FakeGitHub;
use crate::support::{Process, TestDb, eventually, make_origin, origins, post_webhook, write_plan};

const REPOS: [&str; 2] = ["octo/widgets", "octo/gadgets"];
const ISSUES_PER_REPO: usize = 2;
/// What the moved session's prompt says (prompts/moved.md).
const MOVED: &str = "another foreman instance that has stopped";

/// The scripted agents' plan. The manager that publishes the slow work runs on the survivor,
/// which has none of what the first manager saved: it is told the worker's id.
fn plan(slow_worker: i64) -> Value {
    json!({
        "manager": [
            {"when": "Slow thing", "unless": MOVED, "calls": [
                {"tool": "spawn_worker", "args": {"title": "Slow", "instructions": "Take your time."}}
            ]},
            {"when": "Your job is to get this issue resolved", "unless": "Slow thing", "calls": [
                {"tool": "spawn_worker", "args": {"title": "Work", "instructions": "Do the work."}, "save": "w"}
            ]},
            {"when": "\"Work\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": "$w", "title": "The work", "body": "Does it.", "closes_issue": true}}
            ]},
            {"when": "\"Slow\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": slow_worker, "title": "The slow work", "body": "Done at last.", "closes_issue": true}}
            ]},
            // A manager taken over after the news was given to its lost conversation learns
            // it from the snapshot.
            {"when": "Slow (worker, succeeded)", "unless": "\"Slow\" succeeded", "calls": [
                {"tool": "publish_pr", "args": {"worker": slow_worker, "title": "The slow work", "body": "Done at last.", "closes_issue": true}}
            ]},
            {"when": "was merged", "calls": [
                {"tool": "mark_objective_done", "args": {"summary": "Merged."}}
            ]}
        ],
        "default_worker": {"write": {"fix.txt": "fixed\n"}, "calls": [{"tool": "report_result", "args": {"summary": "fixed"}}]},
        "workers": {
            // Different work for each issue of a repository: identical commits would share
            // their checks.
            "Work": [
                {"when": "Fix 0", "write": {"work.txt": "work 0\n"}, "calls": [{"tool": "report_result", "args": {"summary": "did it"}}]},
                {"when": "Fix 1", "write": {"work.txt": "work 1\n"}, "calls": [{"tool": "report_result", "args": {"summary": "did it"}}]}
            ],
            "Slow": [
                {"print": ["working"], "sleep": 300},
                {"when": MOVED, "write": {"slow.txt": "slow\n"}, "calls": [{"tool": "report_result", "args": {"summary": "redone"}}]}
            ]
        }
    })
}

struct Cluster {
    fake: FakeGitHub,
    installation: i64,
    client: reqwest::Client,
    store: Store,
}

static DELIVERY: AtomicU64 = AtomicU64::new(0);

impl Cluster {
    /// Sends a webhook to `first`, and GitHub's redelivery of it (same delivery id) to
    /// `again`.
    async fn deliver(&self, first: &Process, again: &Process, event: &str, payload: Value) {
        let id = format!("i-{event}-{}", DELIVERY.fetch_add(1, Ordering::Relaxed));
        for to in [first, again] {
            let response = post_webhook(
                &self.client,
                &to.url("/webhooks/github"),
                event,
                &id,
                payload.to_string().as_bytes(),
            )
            .await;
            assert_eq!(response.status(), 202, "{event} {id}");
        }
    }

    fn envelope(&self, repo: &str, sender: &str, mut payload: Value) -> Value {
        payload["repository"] = self.fake.repo_json(repo);
        payload["installation"] = json!({"id": self.installation});
        payload["sender"] = self.fake.user_json(sender);
        payload
    }

    async fn objective(&self, repo: &str, issue: u64) -> Objective {
        eventually(&format!("an objective for {repo}#{issue}"), || async {
            self.store.latest_objective(repo, issue).await.unwrap()
        })
        .await
    }

    /// The issue's objective's pull request, once it is published.
    async fn pull(&self, repo: &str, issue: u64) -> PullRequest {
        let objective = self.objective(repo, issue).await;
        eventually(&format!("the pull request of {repo}#{issue}"), || async {
            self.store
                .pulls_of(objective.id)
                .await
                .unwrap()
                .into_iter()
                .next()
        })
        .await
    }

    /// Waits for the objective's pull request, then merges it on GitHub and sends the
    /// webhooks of the merge and a passing check, each to both instances.
    async fn merge(&self, a: &Process, b: &Process, repo: &str, issue: u64) {
        let pull = self.pull(repo, issue).await;
        let sha = self.fake.pull(repo, pull.number).head_sha;
        let run = self
            .fake
            .add_check_run(repo, &sha, "test", "completed", Some("success"));
        let check =
            json!({"action": "completed", "check_run": self.fake.check_run_json(repo, run)});
        self.deliver(
            b,
            a,
            "check_run",
            self.envelope(repo, "github-actions[bot]", check),
        )
        .await;
        self.fake.merge_pull(repo, pull.number);
        let closed = json!({"action": "closed", "number": pull.number, "pull_request": self.fake.pull_json(repo, pull.number)});
        self.deliver(a, b, "pull_request", self.envelope(repo, "alice", closed))
            .await;
    }

    async fn done(&self, repo: &str, issue: u64) -> Objective {
        let id = self.objective(repo, issue).await.id;
        eventually(&format!("{repo}#{issue} done"), || async {
            let o = self.store.objective(id).await.unwrap()?;
            (o.status == ObjectiveStatus::Done).then_some(o)
        })
        .await
    }

    /// Everything one objective left: its sessions by role, pull requests, and the comments
    /// foreman made on its issue by kind.
    async fn outcome(&self, repo: &str, issue: u64) -> (usize, usize, usize, usize, usize) {
        let id = self.objective(repo, issue).await.id;
        let sessions = self.store.sessions_of(id).await.unwrap();
        let count = |role| sessions.iter().filter(|s| s.role == role).count();
        let bot = self.fake.bot_login();
        let status_comments = self
            .fake
            .comments(repo, issue)
            .iter()
            .filter(|c| c.author == bot && c.body.contains("<!-- foreman:status-"))
            .count();
        (
            count(Role::Manager),
            count(Role::Worker),
            count(Role::Followup),
            self.store.pulls_of(id).await.unwrap().len(),
            status_comments,
        )
    }
}

/// The settings of instance `name`: the fake GitHub, its own work root and identity, and a
/// short tick lease so a survivor takes over quickly.
fn settings(fake: &FakeGitHub, work_root: &Path, name: &str) -> Vec<(String, String)> {
    vec![
        ("GITHUB_APP_ID".into(), fake.app_id().to_string()),
        ("GITHUB_PRIVATE_KEY".into(), fake.private_key_pem()),
        ("GITHUB_API_URL".into(), fake.url()),
        ("GITHUB_WEB_URL".into(), fake.url()),
        ("FOREMAN_WORK_ROOT".into(), work_root.display().to_string()),
        ("FOREMAN_INSTANCE_ID".into(), name.into()),
        ("FOREMAN_TICK_LEASE".into(), "2s".into()),
        ("FOREMAN_TICK_INTERVAL".into(), "200ms".into()),
        ("FOREMAN_INBOX_CLAIM_TTL".into(), "2s".into()),
    ]
}

async fn serve(db: &TestDb, settings: &[(String, String)]) -> Process {
    let env: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Process::serve_scripted(db, &env).await
}

/// Prints what the instances logged if the test fails.
struct LogsOnFailure(Vec<(&'static str, std::sync::Arc<std::sync::Mutex<String>>)>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, log) in &self.0 {
                eprintln!("--- instance {name}:\n{}", log.lock().unwrap());
            }
        }
    }
}

/// Files under `root` named `name`, anywhere below it.
fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found
}

async fn two_instances_share_the_work_and_a_survivor_takes_over(db: TestDb) {
    write_plan(&db, &plan(0));
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    let origins = origins(&db);
    make_origin(&origins, "octo/gadgets", &[("README.md", "# Gadgets\n")]);
    let mut issues = Vec::new();
    for repo in REPOS {
        fake.add_repo(installation, repo);
        fake.follow_git(repo, &origins.join(format!("{repo}.git")));
        fake.set_permission(repo, "alice", "write");
        for i in 0..ISSUES_PER_REPO {
            let n = fake.create_issue(repo, "alice", &format!("Fix {i}"), "Please fix.");
            issues.push((repo, n));
        }
    }
    let slow = fake.create_issue(REPOS[0], "alice", "Slow thing", "Takes long.");
    let (root_a, root_b) = (db.dir().join("work-a"), db.dir().join("work-b"));
    let a = serve(&db, &settings(&fake, &root_a, "a")).await;
    let b = serve(&db, &settings(&fake, &root_b, "b")).await;
    let _logs = LogsOnFailure(vec![("a", a.log.clone()), ("b", b.log.clone())]);
    let cluster = Cluster {
        fake,
        installation,
        client: reqwest::Client::new(),
        store: db.store().await,
    };
    let c = &cluster;

    // The burst: every label and comment goes to one instance and is redelivered to the
    // other, alternately, all at once.
    let mut sent = JoinSet::new();
    for (i, (repo, n)) in issues.iter().copied().enumerate() {
        let (first, again) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        c.fake.add_label(repo, n, "foreman");
        let labeled = json!({"action": "labeled", "issue": c.fake.issue_json(repo, n), "label": {"name": "foreman"}});
        let payload = c.envelope(repo, "alice", labeled);
        let (first, again) = (first.url(""), again.url(""));
        let client = c.client.clone();
        sent.spawn(async move {
            let id = format!("burst-label-{}-{n}", repo.replace('/', "-"));
            for url in [first, again] {
                let url = format!("{url}/webhooks/github");
                let r = post_webhook(&client, &url, "issues", &id, payload.to_string().as_bytes())
                    .await;
                assert_eq!(r.status(), 202);
            }
        });
    }
    sent.join_all().await;
    for (i, (repo, n)) in issues.iter().copied().enumerate() {
        let (first, again) = if i % 2 == 0 { (&b, &a) } else { (&a, &b) };
        let id = c
            .fake
            .add_comment_as(repo, n, "alice", "Thanks, please keep it small.");
        let created = json!({"action": "created", "issue": c.fake.issue_json(repo, n), "comment": c.fake.comment_json(repo, id)});
        c.deliver(
            first,
            again,
            "issue_comment",
            c.envelope(repo, "alice", created),
        )
        .await;
    }
    // One pull request's check fails, and both instances are told: one CI follow-up fixes it.
    let (repo, n) = issues[0];
    let first = c.objective(repo, n).await;
    let pull = c.pull(repo, n).await;
    let failing = c.fake.pull(repo, pull.number).head_sha;
    let run = c
        .fake
        .add_check_run(repo, &failing, "lint", "completed", Some("failure"));
    let check = json!({"action": "completed", "check_run": c.fake.check_run_json(repo, run)});
    c.deliver(
        &b,
        &a,
        "check_run",
        c.envelope(repo, "github-actions[bot]", check),
    )
    .await;
    eventually("the follow-up's fix pushed", || async {
        let fixed = c.fake.pull(repo, pull.number).head_sha != failing;
        let done = c
            .store
            .sessions_of(first.id)
            .await
            .unwrap()
            .iter()
            .any(|s| s.role == Role::Followup && s.status == SessionStatus::Succeeded);
        (fixed && done).then_some(())
    })
    .await;
    for (repo, n) in issues.iter().copied() {
        c.merge(&a, &b, repo, n).await;
    }
    for (i, (repo, n)) in issues.iter().copied().enumerate() {
        c.done(repo, n).await;
        let followups = usize::from(i == 0);
        assert_eq!(
            c.outcome(repo, n).await,
            (1, 1, followups, 1, 1),
            "{repo}#{n}: one manager, one worker, {followups} follow-up, one pull request, one status comment"
        );
        let work = c
            .store
            .sessions_of(c.objective(repo, n).await.id)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.role == Role::Worker)
            .unwrap();
        assert_eq!(work.turns, 1, "{repo}#{n}: the worker's turn ran once");
    }
    let steered = find(&root_a, "prompts.txt")
        .into_iter()
        .chain(find(&root_b, "prompts.txt"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .map(|p| p.matches("Thanks, please keep it small.").count())
        .sum::<usize>();
    assert_eq!(
        steered,
        issues.len(),
        "each comment reached its manager once"
    );

    // The lease holder runs the agents. Kill it in the middle of the slow worker's turn, and
    // its disk with it.
    let holder = c
        .store
        .lease_holder("tick", foreman::model::SystemClock.now())
        .await
        .unwrap()
        .expect("a lease holder");
    c.fake.add_label(REPOS[0], slow, "foreman");
    let labeled = json!({"action": "labeled", "issue": c.fake.issue_json(REPOS[0], slow), "label": {"name": "foreman"}});
    c.deliver(&a, &b, "issues", c.envelope(REPOS[0], "alice", labeled))
        .await;
    let objective = c.objective(REPOS[0], slow).await;
    let worker = eventually("the slow worker running", || async {
        c.store
            .sessions_of(objective.id)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.title == "Slow" && s.status == SessionStatus::Running && s.turns == 1)
    })
    .await;
    assert_eq!(worker.runner.as_deref(), Some(holder.as_str()));
    write_plan(&db, &plan(worker.id.0));
    let (dead, survivor, dead_root, survivor_root) = if holder == "a" {
        (a, b, root_a, root_b)
    } else {
        (b, a, root_b, root_a)
    };
    eventually("the slow turn under way", || async {
        find(&dead_root, "prompts.txt")
            .iter()
            .any(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .contains("Take your time.")
            })
            .then_some(())
    })
    .await;
    dead.kill().await;
    std::fs::remove_dir_all(&dead_root).unwrap();
    let survivor_name = if holder == "a" { "b" } else { "a" };
    eventually("the survivor to take the lease", || async {
        let now = foreman::model::SystemClock.now();
        let holder = c.store.lease_holder("tick", now).await.unwrap();
        (holder.as_deref() == Some(survivor_name)).then_some(())
    })
    .await;

    // The worker is redone on a fresh checkout on the survivor; the manager goes on there.
    let pull = c.pull(REPOS[0], slow).await;
    let redone = c.store.session(worker.id).await.unwrap().unwrap();
    assert_eq!(redone.status, SessionStatus::Succeeded);
    assert_eq!(redone.result.as_deref(), Some("redone"));
    assert_eq!(redone.runner.as_deref(), Some(survivor_name));
    let prompts = find(&survivor_root, "prompts.txt")
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|p| p.contains("Take your time."))
        .expect("the worker's prompts on the survivor");
    assert!(prompts.contains(MOVED), "{prompts}");
    assert!(
        prompts.contains("Nothing of your work had been pushed"),
        "{prompts}"
    );
    let lost = c
        .store
        .audit_of(objective.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "workspace.lost")
        .count();
    assert!(lost >= 1, "the lost checkouts are on record");
    let head = c.fake.pull(REPOS[0], pull.number).head_ref;
    let origin = origins.join(format!("{}.git", REPOS[0]));
    let files = crate::support::git(&origin, &["ls-tree", "-r", "--name-only", &head]);
    assert!(files.lines().any(|f| f == "slow.txt"), "{files}");

    // Merged through the survivor alone.
    c.merge(&survivor, &survivor, REPOS[0], slow).await;
    c.done(REPOS[0], slow).await;
    let (managers, workers, followups, pulls, status) = c.outcome(REPOS[0], slow).await;
    assert_eq!((workers, followups, pulls, status), (1, 0, 1, 1));
    assert!(managers >= 1);
    survivor.terminate().await;
}
on_both_backends!(two_instances_share_the_work_and_a_survivor_takes_over);
