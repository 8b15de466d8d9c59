//! The scheduler: which session runs next. Each tick (and whenever work is created or ends)
//! it starts queued sessions whose dependencies succeeded, within the global cap and each
//! objective's worker cap; gives idle and waiting sessions the messages that arrived for
//! them; cancels sessions whose dependency failed; stops an objective's new work when its
//! budget is reached; and recovers sessions whose process is gone.
//!
//! [`decide`] is a pure function of a snapshot; [`Scheduler`] loads the snapshot and applies
//! what it decided.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::engine::objective::requests;
use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::engine::runtime::process;
use crate::engine::runtime::turns::{self, TurnKind};
use crate::model::targets::{LOCAL, Targets, Want, place, unplaceable};
use crate::model::{
    Objective, ObjectiveId, ObjectiveStatus, Role, Session, SessionId, SessionStatus, Timestamp,
    Usage,
};
use crate::store::Orphaned;
use futures_util::future::BoxFuture;

/// How long a session whose runner (another instance) has gone silent waits before a survivor
/// takes it over: as long as that instance's tick lease would, and never less than three of
/// a running turn's heartbeats.
pub fn takeover_after(tick_lease: Duration) -> Duration {
    tick_lease.max(3 * turns::heartbeat_for(tick_lease))
}
/// How a session waiting for the agent sandbox says so (the start of its `activity`).
pub const SANDBOX_WAIT: &str = "waiting for the agent sandbox";
/// How a session no target can take says so.
pub const PLACE_WAIT: &str = "waiting for a target";
/// How often an interrupted session is resumed before it is failed instead.
pub const MAX_RECOVERIES: u32 = 2;

/// What the scheduler sees.
pub struct Snapshot<'a> {
    /// Live objectives.
    pub objectives: &'a [Objective],
    /// Their non-terminal sessions.
    pub sessions: &'a [Session],
    /// Statuses of finished sessions that live ones depend on.
    pub finished: &'a HashMap<SessionId, SessionStatus>,
    /// Sessions with messages waiting for their next turn.
    pub with_messages: &'a HashSet<SessionId>,
    /// What each live objective has used.
    pub usage: &'a HashMap<ObjectiveId, Usage>,
    /// Where turns may run, and how many at once on each.
    pub targets: &'a Targets,
    /// The targets finished sessions that live ones depend on ran on (a dependent inherits
    /// the checkout its dependency left there).
    pub finished_on: &'a HashMap<SessionId, String>,
    /// Targets that cannot be reached now, and why.
    pub down: &'a HashMap<String, String>,
    pub max_workers: usize,
}

/// What the scheduler does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the first turn of a queued session, on this target.
    Start(SessionId, String),
    /// Start a turn of an idle or waiting session with its waiting messages, on this target.
    Deliver(SessionId, SessionStatus, String),
    /// No target can ever take the session as things are: it waits, saying why.
    Unplaceable(SessionId, String),
    /// The session's target (where its checkout and conversation are) is lost: it fails,
    /// and its manager is told (a manager is respawned elsewhere by the supervisor).
    Lost(SessionId, String),
    /// Cancel a queued session whose dependency did not succeed.
    Cancel(SessionId, String),
    /// An objective's budget is reached: stop its new work and ask a human.
    BudgetReached(ObjectiveId, String),
}

/// Decides what to start, deliver and cancel.
pub fn decide(s: &Snapshot<'_>) -> Vec<Action> {
    let mut actions = Vec::new();
    let target_of = |x: &Session| x.target.clone().unwrap_or_else(|| LOCAL.to_owned());
    let mut running: HashMap<String, u32> = HashMap::new();
    for x in s.sessions.iter().filter(|x| x.status.is_active_turn()) {
        *running.entry(target_of(x)).or_default() += 1;
    }
    let mut workers_running: HashMap<ObjectiveId, usize> = HashMap::new();
    for x in s
        .sessions
        .iter()
        .filter(|x| x.status.is_active_turn() && x.role != Role::Manager)
    {
        *workers_running.entry(x.objective_id).or_default() += 1;
    }
    let status_of = |id: SessionId| -> Option<SessionStatus> {
        s.sessions
            .iter()
            .find(|x| x.id == id)
            .map(|x| x.status)
            .or_else(|| s.finished.get(&id).copied())
    };
    let placed_on = |id: SessionId| -> Option<&str> {
        s.sessions
            .iter()
            .find(|x| x.id == id)
            .and_then(|x| x.target.as_deref())
            .or_else(|| s.finished_on.get(&id).map(String::as_str))
    };
    let mut held_back: HashSet<ObjectiveId> = HashSet::new();
    for objective in s.objectives {
        if objective.budget_blocked.is_some() || objective.held.is_some() {
            held_back.insert(objective.id);
        } else if let Some(reached) = s
            .usage
            .get(&objective.id)
            .and_then(|u| objective.budget.exceeded_by(&turn_budget_view(u)))
        {
            held_back.insert(objective.id);
            // Only when there is work to hold back; an objective at rest is left alone.
            let wants_work = s.sessions.iter().any(|x| {
                x.objective_id == objective.id
                    && (x.status == SessionStatus::Queued || s.with_messages.contains(&x.id))
            });
            if wants_work {
                actions.push(Action::BudgetReached(objective.id, reached));
            }
        }
    }
    for session in s.sessions {
        let turn_wanted = match session.status {
            SessionStatus::Queued => {
                let deps: Vec<(SessionId, Option<SessionStatus>)> = session
                    .depends_on
                    .iter()
                    .map(|d| (*d, status_of(*d)))
                    .collect();
                if let Some((dep, status)) = deps.iter().find(|(_, st)| {
                    matches!(
                        st,
                        Some(SessionStatus::Failed | SessionStatus::Cancelled) | None
                    )
                }) {
                    let why = status.map_or("is gone".to_owned(), |st| st.as_str().to_owned());
                    actions.push(Action::Cancel(
                        session.id,
                        format!("its dependency #{dep} {why}"),
                    ));
                    continue;
                }
                if !deps
                    .iter()
                    .all(|(_, st)| *st == Some(SessionStatus::Succeeded))
                {
                    continue;
                }
                Some(None)
            }
            SessionStatus::Idle | SessionStatus::Waiting
                if s.with_messages.contains(&session.id) =>
            {
                Some(Some(session.status))
            }
            _ => None,
        };
        let Some(deliver) = turn_wanted else { continue };
        if held_back.contains(&session.objective_id) {
            continue;
        }
        let Some(objective) = s.objectives.iter().find(|o| o.id == session.objective_id) else {
            continue; // its objective ended since the sessions were read
        };
        if let Some(target) = session.target.as_deref()
            && let Some(why) = s.down.get(target)
        {
            actions.push(Action::Lost(
                session.id,
                format!("its target `{target}` cannot be reached: {why}"),
            ));
            continue;
        }
        // A session stays where it took turns; a new one goes where the checkout it inherits
        // is (unless that target is down: then it gets a new checkout elsewhere), or else
        // where there is room, near its objective's other work.
        let pinned = session.target.as_deref().or_else(|| {
            session
                .depends_on
                .iter()
                .find_map(|d| placed_on(*d))
                .filter(|t| !s.down.contains_key(*t))
        });
        let down: Vec<&str> = s.down.keys().map(String::as_str).collect();
        let objective_on: Vec<&str> = s
            .sessions
            .iter()
            .filter(|x| x.objective_id == session.objective_id && x.id != session.id)
            .filter_map(|x| x.target.as_deref())
            .collect();
        let labels = objective.config.target_labels.as_slice();
        let want = Want {
            pinned,
            labels,
            objective_on: &objective_on,
            down: &down,
        };
        let Some(target) = place(s.targets, &running, &want) else {
            if let Some(why) = unplaceable(s.targets, &want) {
                actions.push(Action::Unplaceable(session.id, why));
            }
            continue;
        };
        if session.role != Role::Manager {
            let cap = objective
                .config
                .workers
                .max_parallel
                .map_or(s.max_workers, |asked| asked.min(s.max_workers));
            let count = workers_running.entry(session.objective_id).or_default();
            if *count >= cap {
                continue;
            }
            *count += 1;
        }
        *running.entry(target.to_owned()).or_default() += 1;
        actions.push(match deliver {
            None => Action::Start(session.id, target.to_owned()),
            Some(from) => Action::Deliver(session.id, from, target.to_owned()),
        });
    }
    actions
}

/// The budget as it bears on starting turns: sessions are counted when spawned (a queued
/// session already counts), so only turns, time and cost hold a turn back here.
fn turn_budget_view(usage: &Usage) -> Usage {
    Usage {
        sessions: 0,
        ..*usage
    }
}

/// The tick task that loads the snapshot and applies [`decide`].
pub struct Scheduler {
    /// How long another instance's silent turn is left before it is taken over
    /// ([`takeover_after`]).
    pub takeover_after: Duration,
}

impl TickTask for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            recover_lost(periodic, self.takeover_after).await?;
            stop_orphans(periodic).await?;
            schedule(periodic).await
        })
    }
}

/// One scheduling pass.
pub async fn schedule(periodic: &Arc<Periodic>) -> Result<()> {
    let store = &periodic.store;
    let now = periodic.clock.now();
    // Sessions first: every live session's objective is then in the objectives read after
    // (one started in between has its objective in both).
    let sessions = store.live_sessions().await?;
    let objectives = store.live_objectives().await?;
    let live: HashSet<SessionId> = sessions.iter().map(|s| s.id).collect();
    let deps: Vec<SessionId> = sessions
        .iter()
        .flat_map(|s| s.depends_on.iter().copied())
        .filter(|d| !live.contains(d))
        .collect();
    let finished: HashMap<SessionId, SessionStatus> =
        store.statuses(&deps).await?.into_iter().collect();
    let finished_on: HashMap<SessionId, String> =
        store.targets_of(&deps).await?.into_iter().collect();
    let with_messages: HashSet<SessionId> =
        store.sessions_with_messages().await?.into_iter().collect();
    let mut usage = HashMap::new();
    for objective in &objectives {
        usage.insert(
            objective.id,
            store.objective_usage(objective.id, now).await?,
        );
    }
    let actions = decide(&Snapshot {
        objectives: &objectives,
        sessions: &sessions,
        finished: &finished,
        with_messages: &with_messages,
        usage: &usage,
        targets: &periodic.runtime.agents.targets,
        finished_on: &finished_on,
        down: &periodic.runtime.sites.down(),
        max_workers: periodic.runtime.agents.max_workers,
    });
    for action in actions {
        tracing::debug!(?action, "scheduler");
        if let Err(e) = apply(periodic, &sessions, &action).await {
            tracing::warn!(?action, error = %format!("{e:#}"), "scheduler action failed");
        }
    }
    Ok(())
}

async fn apply(periodic: &Arc<Periodic>, sessions: &[Session], action: &Action) -> Result<()> {
    let session = |id: SessionId| sessions.iter().find(|s| s.id == id);
    if let Action::Start(id, _) | Action::Deliver(id, _, _) = action
        && let Err(why) = periodic.runtime.agents.sandbox.ready().await
    {
        // No agent runs outside its sandbox: the session waits, saying why.
        periodic
            .store
            .note_session_waiting(*id, &format!("{SANDBOX_WAIT}: {why}"))
            .await?;
        return Ok(());
    }
    match action {
        Action::Start(id, target) => {
            if let Some(s) = session(*id) {
                start_or_fail(
                    periodic,
                    s,
                    &[SessionStatus::Queued],
                    TurnKind::First,
                    target,
                )
                .await?;
            }
        }
        Action::Deliver(id, from, target) => {
            if let Some(s) = session(*id) {
                start_or_fail(periodic, s, &[*from], TurnKind::Messages, target).await?;
            }
        }
        Action::Lost(id, why) => {
            if let Some(s) = session(*id) {
                turns::fail(&periodic.runtime, s, why).await;
            }
        }
        Action::Unplaceable(id, why) => {
            periodic
                .store
                .note_session_waiting(*id, &format!("{PLACE_WAIT}: {why}"))
                .await?;
        }
        Action::Cancel(id, reason) => {
            if turns::cancel(&periodic.runtime, *id, reason).await?
                && let Some(s) = session(*id)
                && s.role.is_one_task()
            {
                turns::tell_manager(&periodic.runtime, s, &format!("was cancelled: {reason}"))
                    .await?;
            }
        }
        Action::BudgetReached(objective, reached) => {
            requests::budget_reached(&periodic.objectives, *objective, reached).await?;
        }
    }
    Ok(())
}

/// Starts a turn; a turn that cannot even be set up fails its session with the reason.
async fn start_or_fail(
    periodic: &Arc<Periodic>,
    session: &Session,
    from: &[SessionStatus],
    kind: TurnKind,
    target: &str,
) -> Result<()> {
    if let Err(e) = turns::start(&periodic.runtime, session, from, kind, target).await {
        let reason = format!("cannot start a turn: {e:#}");
        tracing::warn!(session = %session.id, reason, "turn not started");
        periodic
            .store
            .set_session_status(
                session.id,
                SessionStatus::Failed,
                Some(&reason),
                periodic.clock.now(),
            )
            .await?;
    }
    Ok(())
}

/// Cancels what still runs of objectives that have ended (stopped, failed, or done with a
/// session left over) or whose work is held. A manager finishing the turn in which it marked its objective done is
/// left to finish.
pub async fn stop_orphans(periodic: &Arc<Periodic>) -> Result<()> {
    for (session, why) in periodic.store.orphaned_sessions().await? {
        let reason = match why {
            Orphaned::Ended(ObjectiveStatus::Done) if session.status.is_active_turn() => continue,
            Orphaned::Ended(status) => format!("its objective is {}", status.as_str()),
            Orphaned::Held(why) => format!("the work is held: {why}"),
        };
        turns::cancel(&periodic.runtime, session.id, &reason).await?;
    }
    Ok(())
}

/// Finds sessions whose turn has no process any more — this instance restarted, or the
/// instance running it went silent — and resumes them (a new turn in the same conversation)
/// or, after too many interruptions, fails them.
pub async fn recover_lost(periodic: &Arc<Periodic>, takeover_after: Duration) -> Result<()> {
    let now = periodic.clock.now();
    for session in periodic.store.sessions_in_turn().await? {
        if !is_lost(periodic, &session, now, takeover_after) {
            continue;
        }
        if session.runner.as_deref() == Some(periodic.runtime.runner.as_str())
            && let Some(pid) = session.pid
            && let Ok(pid) = u32::try_from(pid)
            && process::group_alive(pid)
        {
            // An orphan of an earlier life of this instance: stop it before resuming.
            process::kill_group(pid);
        }
        recover(periodic, &session).await?;
    }
    Ok(())
}

fn is_lost(
    periodic: &Periodic,
    session: &Session,
    now: Timestamp,
    takeover_after: Duration,
) -> bool {
    if turns::is_local(&periodic.runtime, session.id) {
        return false;
    }
    let mine = session.runner.as_deref() == Some(periodic.runtime.runner.as_str());
    let silent = session
        .heartbeat_at
        .is_none_or(|at| now.since(at) >= takeover_after);
    mine || silent
}

async fn recover(periodic: &Arc<Periodic>, session: &Session) -> Result<()> {
    let now = periodic.clock.now();
    let store = &periodic.store;
    if session.status == SessionStatus::Starting {
        store
            .set_session_status(session.id, SessionStatus::Queued, None, now)
            .await?;
        return Ok(());
    }
    if periodic.runtime.agents.sandbox.ready().await.is_err() {
        // It cannot be resumed before the sandbox can start; that costs it no recovery.
        return Ok(());
    }
    let recoveries = store.count_recovery(session.id).await?;
    if recoveries > MAX_RECOVERIES {
        let reason = format!("its turn was interrupted {recoveries} times; giving up");
        if store
            .set_session_status(session.id, SessionStatus::Failed, Some(&reason), now)
            .await?
            && session.role.is_one_task()
        {
            turns::tell_manager(&periodic.runtime, session, &format!("failed: {reason}")).await?;
        }
        return Ok(());
    }
    tracing::warn!(session = %session.id, recoveries, "resuming a session whose turn was interrupted");
    let kind =
        if session.conversation_id.is_some() || session.agent == crate::model::AgentKind::Command {
            TurnKind::Interrupted
        } else {
            TurnKind::First
        };
    let target = session.target.as_deref().unwrap_or(LOCAL);
    start_or_fail(periodic, session, &[SessionStatus::Running], kind, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_instance_s_turns_are_taken_over_after_its_lease() {
        assert_eq!(
            takeover_after(Duration::from_secs(120)),
            Duration::from_secs(120)
        );
        // Heartbeats keep pace with the lease: three to a lease, at most 15 s apart, at
        // least 200 ms; never taken over before three have been missed.
        assert_eq!(
            takeover_after(Duration::from_secs(6)),
            Duration::from_secs(6)
        );
        assert_eq!(
            turns::heartbeat_for(Duration::from_secs(120)),
            turns::HEARTBEAT
        );
        assert_eq!(
            takeover_after(Duration::from_millis(100)),
            Duration::from_millis(600)
        );
    }

    use crate::model::session::fixtures::objective;

    fn session(
        id: i64,
        objective: i64,
        role: Role,
        status: SessionStatus,
        deps: &[i64],
    ) -> Session {
        let mut s = crate::model::session::fixtures::session(id, objective, role, status);
        s.depends_on = deps.iter().map(|d| SessionId(*d)).collect();
        s
    }

    struct World {
        objectives: Vec<Objective>,
        sessions: Vec<Session>,
        finished: HashMap<SessionId, SessionStatus>,
        messages: HashSet<SessionId>,
        usage: HashMap<ObjectiveId, Usage>,
        finished_on: HashMap<SessionId, String>,
        down: HashMap<String, String>,
    }

    impl World {
        fn new(sessions: Vec<Session>) -> World {
            World {
                objectives: vec![objective(1), objective(2)],
                sessions,
                finished: HashMap::new(),
                messages: HashSet::new(),
                usage: HashMap::new(),
                finished_on: HashMap::new(),
                down: HashMap::new(),
            }
        }

        fn decide(&self, max_sessions: u32, max_workers: usize) -> Vec<Action> {
            self.decide_on(&Targets::local_only(max_sessions), max_workers)
        }

        fn decide_on(&self, targets: &Targets, max_workers: usize) -> Vec<Action> {
            decide(&Snapshot {
                objectives: &self.objectives,
                sessions: &self.sessions,
                finished: &self.finished,
                with_messages: &self.messages,
                usage: &self.usage,
                targets,
                finished_on: &self.finished_on,
                down: &self.down,
                max_workers,
            })
        }
    }

    use Role::{Manager, Worker};
    use SessionStatus::{Idle, Queued, Running, Waiting};

    #[test]
    fn queued_sessions_start_within_the_caps() {
        let world = World::new(vec![
            session(1, 1, Manager, Running, &[]),
            session(2, 1, Worker, Queued, &[]),
            session(3, 1, Worker, Queued, &[]),
            session(4, 1, Worker, Queued, &[]),
            session(5, 2, Manager, Queued, &[]),
        ]);
        assert_eq!(
            world.decide(10, 2),
            [
                Action::Start(SessionId(2), LOCAL.into()),
                Action::Start(SessionId(3), LOCAL.into()),
                Action::Start(SessionId(5), LOCAL.into())
            ]
        );
        assert_eq!(
            world.decide(2, 2),
            [Action::Start(SessionId(2), LOCAL.into())],
            "global cap"
        );
    }

    #[test]
    fn sessions_on_a_lost_target_fail_and_new_ones_go_elsewhere() {
        let targets = Targets::parse(
            "[targets.t1]\nssh = \"a\"\nwork_root = \"/w\"\ncapacity = 2\n\
             [targets.t2]\nssh = \"b\"\nwork_root = \"/w\"\ncapacity = 1\n",
            1,
        )
        .unwrap();
        let mut manager = session(1, 1, Manager, Idle, &[]);
        manager.target = Some("t1".into());
        let mut world = World::new(vec![
            manager,
            session(2, 1, Worker, Queued, &[]),
            session(3, 2, Manager, Queued, &[]),
        ]);
        world.messages = [SessionId(1)].into();
        assert_eq!(
            world.decide_on(&targets, 10),
            [
                Action::Deliver(SessionId(1), Idle, "t1".into()),
                Action::Start(SessionId(2), "t1".into()),
                Action::Start(SessionId(3), "local".into()),
            ],
            "with its objective, then where there is most room"
        );
        world.down.insert("t1".into(), "refused".into());
        assert_eq!(
            world.decide_on(&targets, 10),
            [
                Action::Lost(
                    SessionId(1),
                    "its target `t1` cannot be reached: refused".into()
                ),
                Action::Start(SessionId(2), "local".into()),
                Action::Start(SessionId(3), "t2".into()),
            ]
        );
    }

    #[test]
    fn a_session_whose_objective_is_not_in_the_snapshot_waits_for_the_next_pass() {
        // Its objective asks for a label only t1 has: placing it without the objective would
        // put it anywhere.
        let targets = Targets::parse(
            "[targets.t1]\nssh = \"a\"\nwork_root = \"/w\"\ncapacity = 2\nlabels = [\"gpu\"]\n",
            1,
        )
        .unwrap();
        let mut world = World::new(vec![session(1, 3, Manager, Queued, &[])]);
        assert_eq!(world.decide_on(&targets, 10), []);
        let mut third = objective(3);
        third.config.target_labels = vec!["gpu".into()];
        world.objectives.push(third);
        assert_eq!(
            world.decide_on(&targets, 10),
            [Action::Start(SessionId(1), "t1".into())]
        );
    }

    #[test]
    fn a_repositorys_max_parallel_narrows_the_servers_and_never_widens_it() {
        let queued = |n: i64| session(n, 1, Worker, Queued, &[]);
        let mut world = World::new((2..=7).map(queued).collect());
        world.objectives[0].config.workers.max_parallel = Some(500);
        assert_eq!(world.decide(10, 2).len(), 2, "the server's cap holds");
        world.objectives[0].config.workers.max_parallel = Some(1);
        assert_eq!(
            world.decide(10, 2).len(),
            1,
            "the repository may ask for fewer"
        );
    }

    #[test]
    fn dependencies_must_succeed_first_and_failures_cancel_dependents() {
        let mut world = World::new(vec![
            session(2, 1, Worker, Running, &[]),
            session(3, 1, Worker, Queued, &[2]),
            session(4, 1, Worker, Queued, &[9]),
            session(5, 1, Worker, Queued, &[8]),
        ]);
        world.finished.insert(SessionId(9), SessionStatus::Failed);
        world
            .finished
            .insert(SessionId(8), SessionStatus::Succeeded);
        assert_eq!(
            world.decide(10, 10),
            [
                Action::Cancel(SessionId(4), "its dependency #9 failed".into()),
                Action::Start(SessionId(5), LOCAL.into()),
            ]
        );
    }

    #[test]
    fn messages_wake_idle_and_waiting_sessions_but_never_a_running_one() {
        let mut world = World::new(vec![
            session(1, 1, Manager, Idle, &[]),
            session(2, 1, Worker, Running, &[]),
            session(3, 1, Worker, Waiting, &[]),
            session(4, 2, Manager, Idle, &[]),
        ]);
        world.messages = [SessionId(1), SessionId(2), SessionId(3)].into();
        assert_eq!(
            world.decide(10, 10),
            [
                Action::Deliver(SessionId(1), Idle, LOCAL.into()),
                Action::Deliver(SessionId(3), Waiting, LOCAL.into())
            ]
        );
    }

    #[test]
    fn a_reached_budget_holds_work_back_and_is_reported() {
        let mut world = World::new(vec![
            session(1, 1, Manager, Idle, &[]),
            session(2, 1, Worker, Queued, &[]),
            session(3, 2, Worker, Queued, &[]),
        ]);
        world.messages = [SessionId(1)].into();
        world.usage.insert(
            ObjectiveId(1),
            Usage {
                turns: 100,
                ..Usage::default()
            },
        );
        world.usage.insert(
            ObjectiveId(2),
            Usage {
                sessions: 500,
                ..Usage::default()
            },
        );
        assert_eq!(
            world.decide(10, 10),
            [
                Action::BudgetReached(ObjectiveId(1), "turns: 100 of 100".into()),
                Action::Start(SessionId(3), LOCAL.into()),
            ],
            "sessions are counted at spawn, not here"
        );
        world.objectives[0].budget_blocked = Some("turns".into());
        assert_eq!(
            world.decide(10, 10),
            [Action::Start(SessionId(3), LOCAL.into())],
            "asked once"
        );
    }
}
