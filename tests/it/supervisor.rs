//! The supervisor against the real store, with a clock the test moves: pokes, respawns with
//! the last manager's agent, the budget of attempts that really started, one escalation at a
//! time, a cooldown kept in the database (so it holds across a restart), and the audit trail
//! and metrics of each action.

use std::sync::Arc;
use std::time::Duration;

use foreman::engine::Engine;
use foreman::engine::objective::lifecycle;
use foreman::engine::periodic::supervisor::{Pass, supervise};
use foreman::model::supervisor::Settings;
use foreman::model::{
    ManualClock, ObjectiveId, ObjectiveStatus, Role, SessionId, SessionStatus, Timestamp,
};
use foreman::store::{NewPull, NewSession, Store, TurnStart};

use crate::agents::new_objective;
use crate::on_both_backends;
use crate::support::TestDb;

const SETTINGS: Settings = Settings {
    idle_after: Duration::from_secs(30),
    cooldown: Duration::from_secs(90),
    max_attempts: 4,
    max_managers: 16,
};

struct World {
    clock: Arc<ManualClock>,
    engine: Engine,
}

impl World {
    async fn new(db: &TestDb) -> World {
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        World::on(db.store().await, clock)
    }

    fn on(store: Store, clock: Arc<ManualClock>) -> World {
        let engine = Engine::new(store, clock.clone());
        World { clock, engine }
    }

    fn store(&self) -> &Store {
        &self.engine.store
    }

    fn at(&self, secs: u64) {
        let target = Timestamp(1_800_000_000_000).plus(Duration::from_secs(secs));
        let now = self.engine.clock.now();
        self.clock.advance(target.since(now));
    }

    async fn supervise(&self) -> Pass {
        supervise(&self.engine.periodic, &SETTINGS).await.unwrap()
    }

    async fn start(&self, issue: u64) -> (ObjectiveId, SessionId) {
        lifecycle::start(&self.engine.objectives, &new_objective(issue))
            .await
            .unwrap()
            .unwrap()
    }

    async fn manager(&self, objective: ObjectiveId) -> foreman::model::Session {
        let o = self.store().objective(objective).await.unwrap().unwrap();
        self.store()
            .session(o.manager.unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    /// A turn of the session: it starts (taking its messages) and ends idle. Returns the
    /// messages it was given.
    async fn turn(&self, session: SessionId) -> Vec<String> {
        let now = self.engine.clock.now();
        let start = TurnStart {
            token_hash: &format!("hash-{session}-{}", now.0),
            runner: "test",
            workdir: "/nowhere",
            target: "local",
            capacity: 100,
        };
        let messages = self
            .store()
            .begin_turn(
                session,
                &[SessionStatus::Queued, SessionStatus::Idle],
                &start,
                now,
            )
            .await
            .unwrap()
            .expect("the session could start a turn");
        self.set(session, SessionStatus::Idle).await;
        messages
    }

    async fn set(&self, session: SessionId, status: SessionStatus) {
        let now = self.engine.clock.now();
        assert!(
            self.store()
                .set_session_status(session, status, Some("test"), now)
                .await
                .unwrap(),
            "session {session} to {status:?}"
        );
    }

    async fn audit_kinds(&self, objective: ObjectiveId) -> Vec<String> {
        self.store()
            .audit_of(objective)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.kind)
            .filter(|k| k.starts_with("supervisor."))
            .collect()
    }
}

fn metric(engine: &Engine, name: &str) -> u64 {
    let text = engine.metrics.render(None);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .parse()
        .unwrap()
}

async fn an_idle_manager_is_poked_once_quiet_and_the_cooldown_survives_a_restart(db: TestDb) {
    let w = World::new(&db).await;
    let (objective, manager) = w.start(1).await;
    w.at(0);
    w.turn(manager).await;

    w.at(29);
    assert_eq!(w.supervise().await.pokes, 0, "just active: not poked");
    w.at(30);
    let pass = w.supervise().await;
    assert_eq!((pass.objectives, pass.pokes), (1, 1));
    assert_eq!(
        w.supervise().await.pokes,
        0,
        "the poke is waiting for its turn"
    );
    assert_eq!(w.audit_kinds(objective).await, ["supervisor.poke"]);
    assert_eq!(metric(&w.engine, "foreman_supervisor_pokes_total"), 1);

    // The poke is the manager's next turn, with the state of things in it.
    w.at(31);
    let messages = w.turn(manager).await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("supervisor"), "{}", messages[0]);
    assert!(messages[0].contains("Workers:\n(none)"), "{}", messages[0]);

    // foreman restarts: a new engine on the same store. The manager is quiet again long
    // enough, but the cooldown of the last poke (kept in the database) still holds.
    let w = World::on(w.engine.store.clone(), w.clock.clone());
    w.at(70);
    assert_eq!(
        w.supervise().await,
        Pass {
            objectives: 1,
            ..Pass::default()
        }
    );
    w.at(120);
    assert_eq!(w.supervise().await.pokes, 1, "cooldown over");
}
on_both_backends!(an_idle_manager_is_poked_once_quiet_and_the_cooldown_survives_a_restart);

async fn live_work_open_questions_and_healthy_pulls_are_left_alone(db: TestDb) {
    let w = World::new(&db).await;
    let (objective, manager) = w.start(2).await;
    w.at(0);
    w.turn(manager).await;

    // A worker that is queued, then running for a long quiet build.
    let mut tx = w.store().begin().await.unwrap();
    let worker = tx
        .insert_session(
            &NewSession {
                objective_id: objective,
                role: Role::Worker,
                agent: foreman::model::AgentKind::Command,
                title: "build".into(),
                instructions: "build it".into(),
                spawned_by: Some(manager),
                depends_on: Vec::new(),
            },
            w.engine.clock.now(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    w.at(1000);
    assert_eq!(w.supervise().await.pokes, 0, "a queued worker is activity");
    w.turn(worker).await;
    w.set(worker, SessionStatus::Succeeded).await;

    // An open pull request with checks passing waits for a human to merge: no poke.
    w.store()
        .upsert_pull(
            &NewPull {
                objective_id: objective,
                workspace_id: None,
                session_id: Some(worker),
                repository: "octo/widgets",
                number: 7,
                branch: "foreman/2-build",
                base_ref: "main",
                head_sha: "abc",
                state: foreman::model::pulls::PullState::Open,
                title: "Build it",
                url: "http://example/7",
                closes_issue: true,
            },
            w.engine.clock.now(),
        )
        .await
        .unwrap();
    w.at(2000);
    assert_eq!(w.supervise().await.pokes, 0, "never ask a human to merge");
    db.execute("UPDATE pull_requests SET checks = 'failing'")
        .await;
    assert_eq!(
        w.supervise().await.pokes,
        1,
        "a failing pull request needs the manager"
    );
    let poke = w.turn(manager).await.join("\n");
    assert!(
        poke.contains("#7 Build it (open, checks failing)"),
        "{poke}"
    );
    assert!(
        poke.contains(&format!("#{worker} build (worker, succeeded)")),
        "{poke}"
    );

    // A question waiting for a human: the objective is waiting, and left alone.
    let o = w.store().objective(objective).await.unwrap().unwrap();
    let mut tx = w.store().begin().await.unwrap();
    foreman::engine::objective::questions::ask_in(
        &w.engine.objectives,
        &mut tx,
        &o,
        None,
        foreman::model::question::QuestionKind::Agent,
        "Which colour?",
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    w.at(5000);
    assert_eq!(w.supervise().await, Pass::default());
}
on_both_backends!(live_work_open_questions_and_healthy_pulls_are_left_alone);

async fn dead_managers_are_respawned_within_budget_then_escalated_once(db: TestDb) {
    let w = World::new(&db).await;
    let (objective, first) = w.start(3).await;
    db.execute(&format!(
        "UPDATE sessions SET agent_kind = 'codex' WHERE id = {first}"
    ))
    .await;
    let mut secs = 0;
    let mut step = |w: &World| {
        secs += 100; // past the cooldown each time
        w.at(secs);
    };

    // The first manager ran and died: attempt 1 of 4.
    w.turn(first).await;
    w.set(first, SessionStatus::Failed).await;
    step(&w);
    assert_eq!(w.supervise().await.respawns, 1);
    let second = w.manager(objective).await;
    assert_ne!(second.id, first, "the manager pointer moved");
    assert_eq!(
        second.agent,
        foreman::model::AgentKind::Codex,
        "the last manager's agent"
    );

    // Three respawns fail before their agent runs (a full disk): they do not count.
    let mut current = second.id;
    for _ in 0..3 {
        w.set(current, SessionStatus::Failed).await;
        step(&w);
        assert_eq!(w.supervise().await.respawns, 1);
        current = w.manager(objective).await.id;
    }
    // Three that really start and die: attempts 2, 3 and 4.
    for _ in 0..3 {
        w.turn(current).await;
        w.set(current, SessionStatus::Failed).await;
        step(&w);
        let pass = w.supervise().await;
        if pass.respawns == 1 {
            current = w.manager(objective).await.id;
        } else {
            assert_eq!(pass.escalations, 1);
        }
    }
    let managers = |w: &World| {
        let store = w.store().clone();
        async move {
            store
                .sessions_of(objective)
                .await
                .unwrap()
                .iter()
                .filter(|s| s.role == Role::Manager)
                .count()
        }
    };
    assert_eq!(managers(&w).await, 7, "1 + 3 that never started + 3 more");
    let questions = w.store().questions_of(objective).await.unwrap();
    let escalations: Vec<_> = questions
        .iter()
        .filter(|q| q.kind == foreman::model::question::QuestionKind::Escalation)
        .collect();
    assert_eq!(escalations.len(), 1);
    assert!(
        escalations[0].text.contains("Should it continue"),
        "{}",
        escalations[0].text
    );
    let o = w.store().objective(objective).await.unwrap().unwrap();
    assert_eq!(o.status, ObjectiveStatus::Waiting);

    // No more respawns or escalations until it is answered.
    for _ in 0..3 {
        step(&w);
        assert_eq!(w.supervise().await, Pass::default());
    }

    // A human says go on: a new manager starts at once and the budget counts afresh.
    let mut tx = w.store().begin().await.unwrap();
    lifecycle::resume_in(&w.engine.objectives, &mut tx, &o, "alice")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let resumed = w.manager(objective).await;
    assert_eq!(resumed.status, SessionStatus::Queued);
    let messages = w.turn(resumed.id).await.join("\n");
    assert!(
        messages.contains("@alice asked you to continue"),
        "{messages}"
    );
    let mut current = resumed.id;
    let mut escalated = 0;
    for _ in 0..4 {
        w.set(current, SessionStatus::Failed).await;
        step(&w);
        let pass = w.supervise().await;
        escalated += pass.escalations;
        if pass.respawns == 1 {
            current = w.manager(objective).await.id;
            w.turn(current).await;
        }
    }
    assert_eq!(escalated, 1, "escalates again once the new budget is spent");
    let open: Vec<_> = w
        .store()
        .questions_of(objective)
        .await
        .unwrap()
        .into_iter()
        .filter(|q| q.status == foreman::model::question::QuestionStatus::Open)
        .collect();
    assert_eq!(open.len(), 1, "never two open escalations");
    assert_eq!(metric(&w.engine, "foreman_supervisor_escalations_total"), 2);
    let kinds = w.audit_kinds(objective).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "supervisor.escalate").count(),
        2
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "supervisor.respawn").count(),
        9
    );
}
on_both_backends!(dead_managers_are_respawned_within_budget_then_escalated_once);

async fn the_hard_cap_counts_every_manager_session(db: TestDb) {
    let w = World::new(&db).await;
    let (objective, mut current) = w.start(4).await;
    let mut escalations = 0;
    for i in 1..=20u64 {
        if escalations == 0 {
            w.set(current, SessionStatus::Failed).await; // never starts
        }
        w.at(i * 100);
        let pass = w.supervise().await;
        escalations += pass.escalations;
        if pass.respawns == 1 {
            current = w.manager(objective).await.id;
        }
    }
    assert_eq!(escalations, 1);
    let managers = w
        .store()
        .sessions_of(objective)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.role == Role::Manager)
        .count();
    assert_eq!(managers, 16, "the hard cap");
}
on_both_backends!(the_hard_cap_counts_every_manager_session);

/// Objectives in the simulation.
const SIMULATED: u64 = 200;

/// The supervisor with the real scheduler and real agent processes: 200 objectives whose
/// managers (the scripted agent's simulation mode) at random stall mid-task, crash before
/// acting, or crash right after spawning a worker. Every objective must end done, or with
/// exactly one open escalation; no step may be spawned twice (a respawned manager knows what
/// ran only from the snapshot it is given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_of_stalling_and_crashing_managers_ends_every_objective() {
    crate::support::with_db(crate::support::Kind::Sqlite, simulation).await
}

async fn simulation(db: TestDb) {
    crate::support::write_plan(
        &db,
        &serde_json::json!({"sim": {
            "steps": 2, "seed": 11, "stall": 0.2, "crash": 0.15, "exit_early": 0.25
        }}),
    );
    let mut args = crate::support::serve_args(&db);
    args.agents.max_sessions = 8;
    args.agents.max_workers = 2;
    args.agents.budget_sessions = 40;
    args.supervisor = foreman::config::SupervisorArgs {
        idle_after: Duration::from_millis(300),
        cooldown: Duration::from_millis(300),
        max_attempts: 4,
        max_managers: 16,
    };
    let server = crate::support::TestServer::start(&args).await;
    let engine = server.running.engine.clone();
    let store = server.store().clone();
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for issue in 1..=SIMULATED {
        let (id, _) = lifecycle::start(&engine.objectives, &new_objective(issue))
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    let deadline = started + Duration::from_secs(600);
    let (done, escalated) = loop {
        let (mut settled, mut done, mut escalated) = (0, 0, 0);
        for &id in &ids {
            let o = store.objective(id).await.unwrap().unwrap();
            let open: Vec<&str> = store
                .questions_of(id)
                .await
                .unwrap()
                .into_iter()
                .filter(|q| q.status == foreman::model::question::QuestionStatus::Open)
                .map(|q| q.kind.as_str())
                .collect();
            assert!(open.len() <= 1, "objective {id}: open questions {open:?}");
            match o.status {
                ObjectiveStatus::Done => done += 1,
                ObjectiveStatus::Waiting if open == ["escalation"] => escalated += 1,
                s => {
                    assert!(!s.is_terminal(), "objective {id} ended {s:?}");
                    continue;
                }
            }
            settled += 1;
        }
        if settled == ids.len() {
            break (done, escalated);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{settled} of {} objectives settled ({done} done, {escalated} escalated)",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut duplicates = 0;
    let mut managers = 0;
    for &id in &ids {
        let sessions = store.sessions_of(id).await.unwrap();
        let mut steps: Vec<&str> = sessions
            .iter()
            .filter(|s| s.role != Role::Manager)
            .map(|s| s.title.as_str())
            .collect();
        managers += sessions.iter().filter(|s| s.role == Role::Manager).count();
        let all = steps.len();
        steps.sort();
        steps.dedup();
        if all != steps.len() {
            for s in &sessions {
                eprintln!(
                    "objective {id}: #{} {} {:?} {:?} by {:?}",
                    s.id, s.title, s.role, s.status, s.spawned_by
                );
                if s.role == Role::Manager {
                    eprintln!("{}", crate::agents::state_file(&db, s.id, "prompts.txt"));
                }
            }
        }
        duplicates += all - steps.len();
    }
    let m = |name| metric(&engine, name);
    println!(
        "simulation: {SIMULATED} objectives in {:.1} s: {done} done, {escalated} escalated; \
         {managers} manager sessions; supervisor pokes {}, respawns {}, escalations {}",
        started.elapsed().as_secs_f64(),
        m("foreman_supervisor_pokes_total"),
        m("foreman_supervisor_respawns_total"),
        m("foreman_supervisor_escalations_total"),
    );
    assert_eq!(duplicates, 0, "a step was spawned twice");
    assert!(m("foreman_supervisor_pokes_total") > 0, "stalls were poked");
    assert!(
        m("foreman_supervisor_respawns_total") > 0,
        "crashes were respawned"
    );
    assert_eq!(
        m("foreman_supervisor_escalations_total"),
        escalated as u64,
        "one escalation per escalated objective"
    );
    server.shutdown().await;
}
