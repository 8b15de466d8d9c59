//! Workspace GC with real checkouts (real git, local bare origins) on both backends: which
//! checkouts go and which stay, removals that fail or race, the startup sweep after a crash,
//! disk pressure, and the mirror cache.
//!
//! Most tests build their world directly in the store — an objective, sessions moved along
//! their state machine, checkouts prepared by the real workspace code — and run passes by
//! hand, so each rule is exercised deterministically. The rest run the real server (the tick
//! loop, the scheduler, scripted agents) or the real binary.
//!
//! Tests run as root, where permissions cannot make a directory impossible to remove, so a
//! failing removal is made by putting a [`Probe`] in place of the local target: it delegates
//! to the real one but can refuse a removal, slow it down, or pause before an inspection or a
//! removal until the test lets it go.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foreman::engine::objective::{lifecycle, requests};
use foreman::engine::periodic::gc::{self, GcSettings, PassReport};
use foreman::engine::{AgentSettings, Engine};
use foreman::model::AgentKind;
use foreman::model::gc::{Inspection, Trigger};
use foreman::model::{
    ObjectiveId, ObjectiveStatus, Role, SessionId, SessionStatus, SystemClock, WorkspaceId,
    WorkspaceStatus,
};
use foreman::store::{NewPull, NewSession, NewWorkspace, Store};
use foreman::workspace::target::{LocalTarget, Target};
use foreman::workspace::{Inspect, Prepare, WorkspaceSettings, Workspaces};
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::Notify;

use crate::agents::{new_objective, reaches};
use crate::on_both_backends;
use crate::support::{
    Process, TestDb, TestServer, eventually, git, origins, scripted_agents, serve_args, write_plan,
};

const REPO: &str = "octo/widgets";

/// A one-time stop: the target signals `reached` and waits for `release`.
#[derive(Default, Clone)]
struct Gate {
    reached: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    async fn pass(&self) {
        self.reached.notify_one();
        self.release.notified().await;
    }
}

/// The local target, with a hand on it.
#[derive(Default)]
struct Probe {
    removals: Mutex<Vec<PathBuf>>,
    inspections: AtomicUsize,
    /// Removals still to refuse.
    fail_next: AtomicUsize,
    slow: Mutex<Option<Duration>>,
    pause_inspect: Mutex<Option<Gate>>,
    pause_remove: Mutex<Option<Gate>>,
}

impl Probe {
    fn removed(&self) -> Vec<PathBuf> {
        self.removals.lock().unwrap().clone()
    }

    fn gate(slot: &Mutex<Option<Gate>>) -> Gate {
        let gate = Gate::default();
        *slot.lock().unwrap() = Some(gate.clone());
        gate
    }
}

impl Target for Probe {
    fn exists<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, anyhow::Result<bool>> {
        LocalTarget.exists(path)
    }

    fn inspect<'a>(
        &'a self,
        workspaces: &'a Workspaces,
        what: &'a Inspect<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Inspection>> {
        Box::pin(async move {
            self.inspections.fetch_add(1, Ordering::SeqCst);
            let gate = self.pause_inspect.lock().unwrap().take();
            if let Some(gate) = gate {
                gate.pass().await;
            }
            LocalTarget.inspect(workspaces, what).await
        })
    }

    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, anyhow::Result<u64>> {
        Box::pin(async move {
            let gate = self.pause_remove.lock().unwrap().take();
            if let Some(gate) = gate {
                gate.pass().await;
            }
            let slow = *self.slow.lock().unwrap();
            if let Some(slow) = slow {
                tokio::time::sleep(slow).await;
            }
            let refuse = self
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if refuse {
                anyhow::bail!("the target refused to remove {}", path.display());
            }
            self.removals.lock().unwrap().push(path.to_owned());
            LocalTarget.remove(path).await
        })
    }
}

/// An engine on the test database, with no loops running, whose local target is a probe.
async fn engine(db: &TestDb, runner: &str) -> (Arc<Engine>, Arc<Probe>) {
    let agents = AgentSettings::from_args(&scripted_agents(db), &[]).unwrap();
    let mut settings = WorkspaceSettings::github(agents.work_root.clone(), agents.sandbox.clone());
    settings.git_url = format!("file://{}", origins(db).display());
    let engine = Arc::new(Engine::assemble(
        db.store().await,
        Arc::new(SystemClock),
        agents,
        Workspaces::new(settings),
        runner.to_owned(),
        foreman::config::Posting::default(),
    ));
    let probe = Arc::new(Probe::default());
    engine.gc.set_target("local", probe.clone());
    (engine, probe)
}

/// An objective built by hand in the store, with real checkouts.
struct World {
    db: TestDb,
    engine: Arc<Engine>,
    probe: Arc<Probe>,
    objective: ObjectiveId,
    manager: SessionId,
}

impl World {
    async fn new(db: &TestDb) -> World {
        let (engine, probe) = engine(db, "gc-test").await;
        let (objective, manager) = lifecycle::start(&engine.objectives, &new_objective(42))
            .await
            .unwrap()
            .unwrap();
        World {
            db: db.clone(),
            engine,
            probe,
            objective,
            manager,
        }
    }

    fn store(&self) -> &Store {
        &self.engine.store
    }

    async fn session(&self, role: Role, title: &str, deps: &[SessionId]) -> SessionId {
        let mut tx = self.store().begin().await.unwrap();
        let id = tx
            .insert_session(
                &NewSession {
                    objective_id: self.objective,
                    role,
                    agent: AgentKind::Command,
                    title: title.to_owned(),
                    instructions: "x".to_owned(),
                    spawned_by: Some(self.manager),
                    depends_on: deps.to_vec(),
                },
                self.engine.clock.now(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// Moves a session along its state machine.
    async fn moves(&self, id: SessionId, path: &[SessionStatus]) {
        for to in path {
            let moved = self
                .store()
                .set_session_status(id, *to, None, self.engine.clock.now())
                .await
                .unwrap();
            assert!(moved, "session {id} cannot become {to:?}");
        }
    }

    async fn run(&self, id: SessionId) {
        self.moves(id, &[SessionStatus::Starting, SessionStatus::Running])
            .await;
    }

    /// A real checkout for `session`, on its own branch or read-only.
    async fn checkout(&self, session: SessionId, branch: bool) -> (WorkspaceId, PathBuf) {
        let path = self
            .engine
            .runtime
            .agents
            .work_root
            .join("workspaces")
            .join(format!("s{session}"));
        let branch = branch.then(|| format!("foreman/42-work-s{session}"));
        let mut tx = self.store().begin().await.unwrap();
        let id = tx
            .insert_workspace(
                &NewWorkspace {
                    objective_id: self.objective,
                    created_by: session,
                    repository: REPO,
                    target: "local",
                    path: &path.display().to_string(),
                    branch: branch.as_deref(),
                    base_ref: "",
                },
                self.engine.clock.now(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let prepared = self
            .engine
            .runtime
            .workspaces
            .prepare(&Prepare {
                repository: REPO,
                base: None,
                path: &path,
                branch: branch.as_deref(),
                start_at: None,
                auth: None,
            })
            .await
            .unwrap();
        self.store()
            .finish_workspace(
                id,
                Ok((&prepared.base_ref, &prepared.base_sha)),
                self.engine.clock.now(),
            )
            .await
            .unwrap();
        (id, path)
    }

    /// A worker that ran to its end in a checkout of its own.
    async fn finished_worker(&self, title: &str) -> (SessionId, WorkspaceId, PathBuf) {
        let id = self.session(Role::Worker, title, &[]).await;
        self.run(id).await;
        let (ws, path) = self.checkout(id, true).await;
        self.moves(id, &[SessionStatus::Succeeded]).await;
        (id, ws, path)
    }

    async fn end_objective(&self, to: ObjectiveStatus) {
        let mut tx = self.store().begin().await.unwrap();
        assert!(
            tx.set_objective_status(self.objective, to, Some("test"), self.engine.clock.now())
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
    }

    async fn pass(&self) -> PassReport {
        gc::run_pass(&self.engine.periodic, Trigger::Manual)
            .await
            .unwrap()
            .expect("no other pass runs")
    }

    async fn status(&self, ws: WorkspaceId) -> WorkspaceStatus {
        self.store().workspace(ws).await.unwrap().unwrap().status
    }

    async fn note(&self, ws: WorkspaceId) -> Option<String> {
        self.store()
            .workspace_gc_info(ws)
            .await
            .unwrap()
            .unwrap()
            .note
    }

    async fn pull(&self, ws: WorkspaceId, session: SessionId, number: u64, state: &str) {
        let workspace = self.store().workspace(ws).await.unwrap().unwrap();
        let head = git(Path::new(&workspace.path), &["rev-parse", "HEAD"]);
        self.store()
            .upsert_pull(
                &NewPull {
                    objective_id: self.objective,
                    workspace_id: Some(ws),
                    session_id: Some(session),
                    repository: REPO,
                    number,
                    branch: workspace.branch.as_deref().unwrap(),
                    base_ref: "main",
                    head_sha: &head,
                    state: foreman::model::pulls::PullState::parse(state).unwrap(),
                    title: "Work",
                    url: "https://example.com/pull",
                    closes_issue: false,
                },
                self.engine.clock.now(),
            )
            .await
            .unwrap();
    }

    fn origin(&self) -> PathBuf {
        origins(&self.db).join(format!("{REPO}.git"))
    }

    /// Commits a new file in the checkout.
    fn commit(&self, path: &Path, file: &str) {
        std::fs::write(path.join(file), format!("{file}\n")).unwrap();
        git(path, &["add", "--all"]);
        git(path, &["commit", "--quiet", "-m", file]);
    }

    /// Pushes the checkout's HEAD to its branch upstream.
    fn push(&self, path: &Path) {
        let branch = git(path, &["symbolic-ref", "--short", "HEAD"]);
        git(
            path,
            &[
                "push",
                "--quiet",
                self.origin().to_str().unwrap(),
                &format!("HEAD:refs/heads/{branch}"),
            ],
        );
    }
}

fn kept_because(report: &PassReport, ws: WorkspaceId) -> String {
    report
        .kept
        .iter()
        .find(|(w, _)| *w == ws)
        .map(|(_, why)| why.clone())
        .unwrap_or_else(|| panic!("workspace {ws} was not kept: {report:?}"))
}

async fn an_ended_objectives_checkouts_are_reclaimed(db: TestDb) {
    let world = World::new(&db).await;
    world.run(world.manager).await;
    let (manager_ws, manager_path) = world.checkout(world.manager, false).await;
    let (worker, published, published_path) = world.finished_worker("Publish").await;
    world.commit(&published_path, "feature.txt");
    world.push(&published_path);
    world.pull(published, worker, 7, "merged").await;
    let (_, idle, idle_path) = world.finished_worker("Nothing").await;
    world
        .moves(world.manager, &[SessionStatus::Succeeded])
        .await;
    world.end_objective(ObjectiveStatus::Done).await;

    let report = world.pass().await;
    let mut reclaimed = report.reclaimed.clone();
    reclaimed.sort();
    assert_eq!(reclaimed, [manager_ws, published, idle], "{report:?}");
    for path in [&manager_path, &published_path, &idle_path] {
        assert!(!path.exists(), "{} is gone", path.display());
    }
    let mirror = db.dir().join("work/mirrors/octo/widgets.git");
    assert!(mirror.join("HEAD").exists(), "the mirror is kept");
    for ws in [manager_ws, published, idle] {
        let info = world.store().workspace_gc_info(ws).await.unwrap().unwrap();
        assert_eq!(info.status, WorkspaceStatus::Archived);
        assert!(info.reclaimed_bytes.unwrap() > 0 && info.archived_at.is_some());
    }
    assert!(report.bytes_freed > 0);
    let audit = world.store().recent_audit(20).await.unwrap();
    let entries: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == "workspace.reclaimed")
        .collect();
    assert_eq!(entries.len(), 3, "{audit:?}");
    assert!(
        entries.iter().all(|e| e
            .detail
            .starts_with(&format!("objective {}: workspace ", world.objective))
            && e.detail.contains("its objective is done")),
        "{entries:?}"
    );
    let metrics = world.engine.metrics.render(None);
    assert!(
        metrics.contains("foreman_gc_workspaces_reclaimed_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "foreman_gc_bytes_freed_total {}",
        report.bytes_freed
    )));
    assert!(
        metrics.contains("foreman_work_root_free_bytes "),
        "{metrics}"
    );

    // Archived workspaces are skipped: a second pass has nothing to do.
    let again = world.pass().await;
    assert!(
        again.reclaimed.is_empty() && again.kept.is_empty(),
        "{again:?}"
    );
    assert_eq!(world.probe.removed().len(), 3);
}
on_both_backends!(an_ended_objectives_checkouts_are_reclaimed);

async fn a_checkout_a_live_session_uses_or_holds_is_kept(db: TestDb) {
    let world = World::new(&db).await;
    world.run(world.manager).await;
    world.moves(world.manager, &[SessionStatus::Idle]).await;
    let (manager_ws, _) = world.checkout(world.manager, false).await;
    let running = world.session(Role::Worker, "Running", &[]).await;
    world.run(running).await;
    let (running_ws, running_path) = world.checkout(running, true).await;
    let (_, held, held_path) = world.finished_worker("Held").await;
    // The manager is publishing the finished worker's checkout.
    assert!(
        world
            .store()
            .acquire_workspace(held, world.manager, world.engine.clock.now())
            .await
            .unwrap()
    );
    // Even once the objective has ended, a live session's checkout stays.
    world.end_objective(ObjectiveStatus::Cancelled).await;
    let report = world.pass().await;
    assert!(report.reclaimed.is_empty(), "{report:?}");
    assert_eq!(
        kept_because(&report, running_ws),
        format!("session #{running} works in it")
    );
    assert_eq!(
        kept_because(&report, manager_ws),
        format!("session #{} works in it", world.manager)
    );
    assert_eq!(
        kept_because(&report, held),
        format!("session #{} holds it", world.manager)
    );
    assert!(running_path.join(".git").exists() && held_path.join(".git").exists());
    assert_eq!(world.probe.inspections.load(Ordering::SeqCst), 0);

    world
        .store()
        .release_workspace(held, world.manager)
        .await
        .unwrap();
    world.moves(running, &[SessionStatus::Succeeded]).await;
    let report = world.pass().await;
    let mut reclaimed = report.reclaimed.clone();
    reclaimed.sort();
    assert_eq!(reclaimed, [running_ws, held], "{report:?}");
    world
        .moves(world.manager, &[SessionStatus::Succeeded])
        .await;
    assert_eq!(world.pass().await.reclaimed, [manager_ws]);
}
on_both_backends!(a_checkout_a_live_session_uses_or_holds_is_kept);

async fn a_dependents_inherited_checkout_is_kept_while_the_dependent_lives(db: TestDb) {
    let world = World::new(&db).await;
    let (first, ws, path) = world.finished_worker("First").await;
    // Nothing was published from it, which alone would let it go mid-objective — but a
    // dependent waits to continue in it.
    let second = world.session(Role::Worker, "Second", &[first]).await;
    let third = world.session(Role::Worker, "Third", &[second]).await;
    let report = world.pass().await;
    assert_eq!(
        kept_because(&report, ws),
        format!("session #{second} depends on session #{first}, whose checkout it is")
    );
    // The dependent takes it over (as the scheduler does) and works in it.
    world.run(second).await;
    let now = world.engine.clock.now();
    assert!(
        world
            .store()
            .acquire_workspace(ws, second, now)
            .await
            .unwrap()
    );
    world.store().attach_workspace(second, ws).await.unwrap();
    let report = world.pass().await;
    assert!(
        matches!(kept_because(&report, ws).as_str(), why if why.contains(&format!("session #{second}"))),
        "{report:?}"
    );
    // Its own dependent keeps it too, once it has finished.
    world.moves(second, &[SessionStatus::Succeeded]).await;
    let report = world.pass().await;
    assert_eq!(
        kept_because(&report, ws),
        format!("session #{third} depends on session #{second}, whose checkout it is")
    );
    world.moves(third, &[SessionStatus::Cancelled]).await;
    assert_eq!(world.pass().await.reclaimed, [ws]);
    assert!(!path.exists());
}
on_both_backends!(a_dependents_inherited_checkout_is_kept_while_the_dependent_lives);

async fn a_merged_pull_requests_checkout_is_reclaimed_while_the_objective_goes_on(db: TestDb) {
    let world = World::new(&db).await;
    let (open_worker, open, open_path) = world.finished_worker("Open").await;
    world.commit(&open_path, "open.txt");
    world.push(&open_path);
    world.pull(open, open_worker, 1, "open").await;
    let (closed_worker, closed, closed_path) = world.finished_worker("Closed").await;
    world.commit(&closed_path, "closed.txt");
    world.push(&closed_path);
    world.pull(closed, closed_worker, 2, "closed").await;
    let (late_worker, late, late_path) = world.finished_worker("Late").await;
    world.commit(&late_path, "late.txt");
    world.push(&late_path);
    world.pull(late, late_worker, 3, "merged").await;
    // A commit made after the merge was never pushed anywhere.
    world.commit(&late_path, "after-merge.txt");
    // An earlier manager that died, with its read-only checkout.
    let old_manager = world.session(Role::Manager, "old manager", &[]).await;
    world.run(old_manager).await;
    let (old_manager_ws, _) = world.checkout(old_manager, false).await;
    world.moves(old_manager, &[SessionStatus::Failed]).await;

    let report = world.pass().await;
    let mut reclaimed = report.reclaimed.clone();
    reclaimed.sort();
    assert_eq!(reclaimed, [closed, old_manager_ws], "{report:?}");
    assert_eq!(kept_because(&report, open), "its pull request #1 is open");
    assert_eq!(
        kept_because(&report, late),
        "it holds 1 commit(s) that exist nowhere else"
    );
    assert!(!closed_path.exists() && open_path.exists() && late_path.exists());
    assert_eq!(world.status(late).await, WorkspaceStatus::Ready);
    let audit = world.store().recent_audit(10).await.unwrap();
    assert!(
        audit.iter().any(|e| e.kind == "workspace.reclaimed"
            && e.detail
                .contains("its work is in pull requests that ended (#2 closed)")),
        "{audit:?}"
    );

    world.pull(open, open_worker, 1, "merged").await;
    assert_eq!(world.pass().await.reclaimed, [open]);
    let objective = world
        .store()
        .objective(world.objective)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(objective.status, ObjectiveStatus::Active);
}
on_both_backends!(a_merged_pull_requests_checkout_is_reclaimed_while_the_objective_goes_on);

async fn a_checkout_with_work_that_exists_nowhere_else_is_kept(db: TestDb) {
    let world = World::new(&db).await;
    world.run(world.manager).await;
    let (manager_ws, manager_path) = world.checkout(world.manager, false).await;
    world
        .moves(world.manager, &[SessionStatus::Succeeded])
        .await;
    world.commit(&manager_path, "detached.txt");
    let (_, unpushed, unpushed_path) = world.finished_worker("Unpushed").await;
    world.commit(&unpushed_path, "mine.txt");
    let (_, dirty, dirty_path) = world.finished_worker("Dirty").await;
    std::fs::write(dirty_path.join("untracked.txt"), "not committed\n").unwrap();
    let (_, stashed, stashed_path) = world.finished_worker("Stashed").await;
    std::fs::write(stashed_path.join("README.md"), "changed\n").unwrap();
    git(&stashed_path, &["stash", "--quiet"]);
    assert_eq!(git(&stashed_path, &["status", "--porcelain"]), "");
    world.end_objective(ObjectiveStatus::Failed).await;

    for round in 0..2 {
        let report = world.pass().await;
        assert!(report.reclaimed.is_empty(), "{report:?}");
        for (ws, why) in [
            (manager_ws, "it holds 1 commit(s) that exist nowhere else"),
            (unpushed, "it holds 1 commit(s) that exist nowhere else"),
            (dirty, "it has uncommitted changes"),
            (stashed, "it holds 2 commit(s) that exist nowhere else"),
        ] {
            assert_eq!(kept_because(&report, ws), why, "round {round}");
            assert_eq!(world.note(ws).await.as_deref(), Some(why));
            assert_eq!(
                world.status(ws).await,
                WorkspaceStatus::Ready,
                "never claimed, not even briefly: it stays usable"
            );
        }
    }
    assert!(world.probe.removed().is_empty());

    // Once the commit is upstream (pushed by the agent itself: no pull request knows it) and
    // the stray file is gone, they go.
    world.push(&unpushed_path);
    std::fs::remove_file(dirty_path.join("untracked.txt")).unwrap();
    let report = world.pass().await;
    let mut reclaimed = report.reclaimed.clone();
    reclaimed.sort();
    assert_eq!(reclaimed, [unpushed, dirty], "{report:?}");
    assert!(manager_path.exists() && stashed_path.exists());
}
on_both_backends!(a_checkout_with_work_that_exists_nowhere_else_is_kept);

async fn a_failed_removal_is_tried_again_by_the_next_pass(db: TestDb) {
    let world = World::new(&db).await;
    let (_, ws, path) = world.finished_worker("Done").await;
    world.end_objective(ObjectiveStatus::Done).await;
    world.probe.fail_next.store(2, Ordering::SeqCst);
    for attempt in 1..=2 {
        let report = world.pass().await;
        assert_eq!(report.failures, 1, "{report:?}");
        assert!(report.reclaimed.is_empty());
        assert!(
            path.join(".git").exists(),
            "still there after attempt {attempt}"
        );
        assert_eq!(
            world.status(ws).await,
            WorkspaceStatus::Reclaiming,
            "decided: no session may start using it any more"
        );
        let note = world.note(ws).await.unwrap();
        assert!(
            note.starts_with("removal failed: the target refused to remove"),
            "{note}"
        );
    }
    let metrics = world.engine.metrics.render(None);
    assert!(
        metrics.contains("foreman_gc_removal_failures_total 2"),
        "{metrics}"
    );
    let report = world.pass().await;
    assert_eq!(report.reclaimed, [ws], "{report:?}");
    assert!(!path.exists());
    let info = world.store().workspace_gc_info(ws).await.unwrap().unwrap();
    assert_eq!((info.status, info.note), (WorkspaceStatus::Archived, None));
    assert_eq!(world.probe.removed(), [path]);
}
on_both_backends!(a_failed_removal_is_tried_again_by_the_next_pass);

async fn a_vanished_checkout_or_target_is_archived_without_removal(db: TestDb) {
    let world = World::new(&db).await;
    let (_, gone, gone_path) = world.finished_worker("Gone").await;
    let (_, elsewhere, elsewhere_path) = world.finished_worker("Elsewhere").await;
    world.end_objective(ObjectiveStatus::Done).await;
    std::fs::remove_dir_all(&gone_path).unwrap();
    // A target that foreman no longer has (a remote host taken out of service).
    db.execute(&format!(
        "UPDATE workspaces SET target = 'retired-host' WHERE id = {elsewhere}"
    ))
    .await;
    let report = world.pass().await;
    let mut vanished = report.vanished.clone();
    vanished.sort();
    assert_eq!(vanished, [gone, elsewhere], "{report:?}");
    assert!(report.reclaimed.is_empty() && report.failures == 0);
    assert!(world.probe.removed().is_empty(), "nothing was removed");
    assert!(
        elsewhere_path.exists(),
        "nothing is touched where the target was"
    );
    for ws in [gone, elsewhere] {
        assert_eq!(world.status(ws).await, WorkspaceStatus::Archived);
    }
    let audit = world.store().recent_audit(10).await.unwrap();
    let details: Vec<&str> = audit
        .iter()
        .filter(|e| e.kind == "workspace.archived")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(details.len(), 2, "{audit:?}");
    assert!(
        details
            .iter()
            .any(|d| d.ends_with("its checkout is already gone"))
    );
    assert!(
        details
            .iter()
            .any(|d| d.ends_with("its target `retired-host` no longer exists"))
    );
    assert!(world.pass().await.vanished.is_empty(), "archived once");
}
on_both_backends!(a_vanished_checkout_or_target_is_archived_without_removal);

async fn overlapping_passes_remove_each_checkout_once(db: TestDb) {
    let world = World::new(&db).await;
    let (_, first, _) = world.finished_worker("First").await;
    world.end_objective(ObjectiveStatus::Done).await;
    // Two passes triggered at once in one process: the second does not run.
    let (a, b) = tokio::join!(
        gc::run_pass(&world.engine.periodic, Trigger::Manual),
        gc::run_pass(&world.engine.periodic, Trigger::Manual)
    );
    let ran: Vec<PassReport> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(ran.len(), 1, "one pass at a time in a process");
    assert_eq!(ran[0].reclaimed, [first]);

    // Two instances (a lease changing hands mid-pass): claims keep them apart.
    let mut more = Vec::new();
    for title in ["A", "B", "C", "D"] {
        more.push(world.finished_worker(title).await);
    }
    let (other, other_probe) = engine(&db, "gc-other").await;
    for probe in [&world.probe, &other_probe] {
        *probe.slow.lock().unwrap() = Some(Duration::from_millis(100));
    }
    let (a, b) = tokio::join!(
        gc::run_pass(&world.engine.periodic, Trigger::Manual),
        gc::run_pass(&other.periodic, Trigger::Manual)
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let mut reclaimed: Vec<WorkspaceId> = a.reclaimed.iter().chain(&b.reclaimed).copied().collect();
    reclaimed.sort();
    let mut expected: Vec<WorkspaceId> = more.iter().map(|(_, ws, _)| *ws).collect();
    expected.sort();
    assert_eq!(reclaimed, expected, "each exactly once: {a:?} {b:?}");
    let mut removed = world.probe.removed();
    removed.extend(other_probe.removed());
    assert_eq!(removed.len(), 1 + more.len(), "{removed:?}");
    let audit = world.store().recent_audit(50).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.kind == "workspace.reclaimed")
            .count(),
        1 + more.len()
    );
    for (_, ws, path) in &more {
        assert_eq!(world.status(*ws).await, WorkspaceStatus::Archived);
        assert!(!path.exists());
    }
}
on_both_backends!(overlapping_passes_remove_each_checkout_once);

async fn mirror_maintenance_never_drops_an_object_a_checkout_may_borrow(db: TestDb) {
    let world = World::new(&db).await;
    let working = world.session(Role::Worker, "Work", &[]).await;
    world.run(working).await;
    let (_, path) = world.checkout(working, true).await;
    let mirror = db.dir().join("work/mirrors/octo/widgets.git");
    // An object only a checkout refers to: unreachable from any ref of the mirror.
    let tree = git(&mirror, &["rev-parse", "HEAD^{tree}"]);
    let orphan = git(&mirror, &["commit-tree", &tree, "-m", "borrowed"]);
    world.pass().await;
    let first = world
        .store()
        .mirror_gc_at(REPO)
        .await
        .unwrap()
        .expect("first seen");
    world.engine.gc.configure(GcSettings {
        mirror_gc_every: Duration::ZERO,
        ..world.engine.gc.settings()
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    world.pass().await;
    let second = world.store().mirror_gc_at(REPO).await.unwrap().unwrap();
    assert!(second > first, "git gc ran and was remembered");
    git(&mirror, &["cat-file", "-e", &orphan]);
    assert_eq!(git(&mirror, &["config", "gc.pruneExpire"]), "never");
    assert_eq!(
        git(&mirror, &["count-objects", "-v"]).lines().next(),
        Some("count: 0"),
        "repacked"
    );
    // Checkouts made before and after still work.
    assert_eq!(git(&path, &["status", "--porcelain"]), "");
    world.finished_worker("After").await;
    world.engine.gc.configure(GcSettings {
        mirror_gc_every: Duration::from_secs(3600),
        ..world.engine.gc.settings()
    });
    world.pass().await;
    assert_eq!(
        world.store().mirror_gc_at(REPO).await.unwrap(),
        Some(second),
        "at most every so often"
    );
}
on_both_backends!(mirror_maintenance_never_drops_an_object_a_checkout_may_borrow);

/// A plan where the manager has one worker look and, once it has, declares the work done.
pub fn look_and_finish() -> serde_json::Value {
    json!({
        "manager": [
            {"calls": [{"tool": "spawn_worker", "args": {"title": "Look", "instructions": "x"}}]},
            {"when": "\"Look\" succeeded", "calls": [
                {"tool": "mark_objective_done", "args": {"summary": "Nothing needed changing."}}
            ]}
        ],
        "workers": {
            "Look": {"calls": [{"tool": "report_result", "args": {"summary": "all fine"}}]}
        }
    })
}

/// Waits until the objective is done and its manager has finished.
async fn done(store: &Store, objective: ObjectiveId) {
    eventually("the objective and its manager to finish", || async {
        let o = store.objective(objective).await.unwrap().unwrap();
        let manager = store.session(o.manager?).await.unwrap()?;
        (o.status == ObjectiveStatus::Done && manager.status == SessionStatus::Succeeded)
            .then_some(())
    })
    .await;
}

/// Waits until all of the objective's workspaces (at least `n`) are archived.
async fn all_archived(
    store: &Store,
    objective: ObjectiveId,
    n: usize,
) -> Vec<foreman::model::Workspace> {
    eventually("the objective's checkouts to be reclaimed", || async {
        let all = store.workspaces_of(objective).await.unwrap();
        (all.len() >= n && all.iter().all(|w| w.status == WorkspaceStatus::Archived)).then_some(all)
    })
    .await
}

async fn an_ended_objective_is_swept_by_the_tick_loop(db: TestDb) {
    write_plan(&db, &look_and_finish());
    let mut args = serve_args(&db);
    args.gc.interval = Duration::from_millis(200);
    let server = TestServer::start(&args).await;
    let engine = &server.running.engine;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(5))
        .await
        .unwrap()
        .unwrap();
    let store = server.store();
    done(store, objective).await;
    let workspaces = all_archived(store, objective, 2).await;
    for w in &workspaces {
        assert!(!Path::new(&w.path).exists(), "{}", w.path);
    }
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("foreman_gc_workspaces_reclaimed_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("foreman_gc_removal_failures_total 0"));
    assert!(metrics.contains("foreman_work_root_free_bytes "));
    let freed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("foreman_gc_bytes_freed_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(freed > 0);
    server.shutdown().await;
}
on_both_backends!(an_ended_objective_is_swept_by_the_tick_loop);

async fn a_pass_racing_a_session_starting_in_a_checkout_never_removes_it(db: TestDb) {
    write_plan(
        &db,
        &json!({
            "manager": [
                {"calls": [{"tool": "spawn_worker", "args": {"title": "Look", "instructions": "x"}}]}
            ],
            "workers": {
                "Look": {"calls": [{"tool": "report_result", "args": {"summary": "nothing"}}]},
                "Peek": {"calls": [{"tool": "report_result", "args": {"summary": "nothing"}}]},
                "Continue": {"write": {"continued.txt": "c\n"}},
                "Later": {"write": {"later.txt": "l\n"}}
            }
        }),
    );
    let mut args = serve_args(&db);
    args.gc.interval = Duration::from_secs(3600);
    let server = TestServer::start(&args).await;
    let engine = &server.running.engine;
    let probe = Arc::new(Probe::default());
    engine.gc.set_target("local", probe.clone());
    let store = server.store();
    let (objective, manager) = lifecycle::start(&engine.objectives, &new_objective(6))
        .await
        .unwrap()
        .unwrap();
    let look = reaches(store, objective, "Look", SessionStatus::Succeeded).await;
    let look_ws = look.workspace_id.unwrap();
    let look_path = PathBuf::from(store.workspace(look_ws).await.unwrap().unwrap().path);
    eventually("the startup pass to be over", || async {
        (!engine.gc.is_running()).then_some(())
    })
    .await;
    let manager = store.session(manager).await.unwrap().unwrap();

    // 1. The session gets there first. The pass has looked (the checkout published nothing:
    //    it may go) and is about to claim it when a dependent starts to continue in it.
    let gate = Probe::gate(&probe.pause_inspect);
    let pass = tokio::spawn({
        let engine = engine.clone();
        async move { gc::run_pass(&engine.periodic, Trigger::Manual).await }
    });
    gate.reached.notified().await;
    let cont = requests::spawn_worker(&engine.objectives, &manager, "Continue", "x", &[look.id])
        .await
        .unwrap();
    eventually("the dependent to take the checkout over", || async {
        let s = store.session(cont).await.unwrap().unwrap();
        (s.workspace_id == Some(look_ws)).then_some(())
    })
    .await;
    gate.release.notify_one();
    let report = pass.await.unwrap().unwrap().unwrap();
    assert!(!report.reclaimed.contains(&look_ws), "{report:?}");
    let cont = reaches(store, objective, "Continue", SessionStatus::Succeeded).await;
    assert_eq!(cont.workspace_id, Some(look_ws));
    assert_eq!(
        std::fs::read_to_string(look_path.join("continued.txt")).unwrap(),
        "c\n"
    );
    assert_eq!(
        store.workspace(look_ws).await.unwrap().unwrap().status,
        WorkspaceStatus::Ready
    );
    assert!(probe.removed().is_empty());

    // 2. The pass gets there first: it has claimed a finished checkout and is removing it when
    //    a dependent wants to continue in it. The dependent waits, then starts afresh.
    requests::spawn_worker(&engine.objectives, &manager, "Peek", "x", &[])
        .await
        .unwrap();
    let peek = reaches(store, objective, "Peek", SessionStatus::Succeeded).await;
    let peek_ws = peek.workspace_id.unwrap();
    let peek_path = PathBuf::from(store.workspace(peek_ws).await.unwrap().unwrap().path);
    let gate = Probe::gate(&probe.pause_remove);
    let pass = tokio::spawn({
        let engine = engine.clone();
        async move { gc::run_pass(&engine.periodic, Trigger::Manual).await }
    });
    gate.reached.notified().await;
    assert_eq!(
        store.workspace(peek_ws).await.unwrap().unwrap().status,
        WorkspaceStatus::Reclaiming
    );
    let later = requests::spawn_worker(&engine.objectives, &manager, "Later", "x", &[peek.id])
        .await
        .unwrap();
    // A few scheduler passes: it tries, finds the checkout being reclaimed, and waits.
    for _ in 0..3 {
        server.tick().await;
    }
    let waiting = store.session(later).await.unwrap().unwrap();
    assert!(
        matches!(
            waiting.status,
            SessionStatus::Queued | SessionStatus::Starting
        ),
        "{:?}",
        waiting.status
    );
    assert_ne!(waiting.workspace_id, Some(peek_ws));
    gate.release.notify_one();
    let report = pass.await.unwrap().unwrap().unwrap();
    assert_eq!(report.reclaimed, [peek_ws], "{report:?}");
    assert!(!peek_path.exists());
    let later = reaches(store, objective, "Later", SessionStatus::Succeeded).await;
    let later_ws = store
        .workspace(later.workspace_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(later_ws.id, peek_ws, "a fresh checkout");
    assert!(Path::new(&later_ws.path).join("later.txt").exists());
    assert_eq!(probe.removed(), [peek_path]);
    server.shutdown().await;
}
on_both_backends!(a_pass_racing_a_session_starting_in_a_checkout_never_removes_it);

async fn the_startup_pass_sweeps_what_a_crashed_process_left(db: TestDb) {
    write_plan(&db, &look_and_finish());
    let env = [
        ("FOREMAN_TICK_INTERVAL", "100ms"),
        ("FOREMAN_TICK_LEASE", "1s"),
        ("FOREMAN_GC_INTERVAL", "1h"),
        ("FOREMAN_INSTANCE_ID", "gc-crash"),
    ];
    let first = Process::serve_scripted(&db, &env).await;
    let (store, engine) = crate::support::engine_on(&db).await;
    let (objective, _) = lifecycle::start(&engine.objectives, &new_objective(9))
        .await
        .unwrap()
        .unwrap();
    done(&store, objective).await;
    let workspaces = store.workspaces_of(objective).await.unwrap();
    assert_eq!(workspaces.len(), 2);
    assert!(
        workspaces
            .iter()
            .all(|w| w.status == WorkspaceStatus::Ready),
        "only the startup pass has run, before there was anything"
    );
    first.kill().await;

    // The crash came in the middle of removing one of them: half of it is gone already.
    let half = &workspaces[1];
    let now = foreman::model::Clock::now(&SystemClock).0;
    db.execute(&format!(
        "UPDATE workspaces SET status = 'reclaiming', gc_claim = 'gc-crash#dead',
             gc_claimed_by = 'gc-crash', gc_claimed_at = {now}, gc_removing = 1
         WHERE id = {}",
        half.id
    ))
    .await;
    std::fs::remove_dir_all(Path::new(&half.path).join(".git")).unwrap();

    let second = Process::serve_scripted(&db, &env).await;
    let swept = all_archived(&store, objective, 2).await;
    for w in &swept {
        assert!(!Path::new(&w.path).exists(), "{}", w.path);
    }
    let audit = store.recent_audit(20).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.kind == "workspace.reclaimed")
            .count(),
        2,
        "{audit:?}"
    );
    let status = second.terminate().await;
    assert!(status.success(), "{status}");
}
on_both_backends!(the_startup_pass_sweeps_what_a_crashed_process_left);

async fn under_disk_pressure_a_pass_runs_at_once_and_new_checkouts_wait(db: TestDb) {
    write_plan(&db, &look_and_finish());
    let mut args = serve_args(&db);
    args.gc.interval = Duration::from_secs(3600);
    let server = TestServer::start(&args).await;
    let engine = &server.running.engine;
    let store = server.store();
    let (first, _) = lifecycle::start(&engine.objectives, &new_objective(11))
        .await
        .unwrap()
        .unwrap();
    done(store, first).await;
    assert!(
        store
            .workspaces_of(first)
            .await
            .unwrap()
            .iter()
            .all(|w| w.status == WorkspaceStatus::Ready)
    );
    // Free space falls under the threshold (raised here above what any disk has).
    let roomy = engine.gc.settings();
    engine.gc.configure(GcSettings {
        min_free_disk: u64::MAX / 2,
        ..roomy.clone()
    });
    all_archived(store, first, 2).await;

    let (second, manager) = lifecycle::start(&engine.objectives, &new_objective(12))
        .await
        .unwrap()
        .unwrap();
    let waiting = eventually("the new manager to wait for disk space", || async {
        store.session(manager).await.unwrap().filter(|s| {
            s.activity
                .as_deref()
                .is_some_and(|a| a.starts_with("waiting for disk space"))
        })
    })
    .await;
    assert!(
        matches!(
            waiting.status,
            SessionStatus::Queued | SessionStatus::Starting
        ),
        "it waits, it does not fail: {:?}",
        waiting.status
    );
    assert!(
        waiting
            .activity
            .unwrap()
            .contains("needed for a new checkout"),
    );
    assert!(store.workspaces_of(second).await.unwrap().is_empty());
    let metrics = engine.metrics.render(None);
    assert!(
        !metrics.contains("foreman_checkouts_refused_total 0"),
        "{metrics}"
    );

    engine.gc.configure(roomy);
    done(store, second).await;
    let manager = store.session(manager).await.unwrap().unwrap();
    assert!(manager.activity.is_none());
    server.shutdown().await;
}
on_both_backends!(under_disk_pressure_a_pass_runs_at_once_and_new_checkouts_wait);
