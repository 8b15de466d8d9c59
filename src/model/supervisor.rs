//! The supervisor's rules, as a pure function of what the store holds and the time.
//!
//! A manager can end its turn mid-task ("done X, next I'll do Y") or die, and then nothing
//! drives its objective. Each tick, for each active objective, the supervisor:
//!
//! 1. leaves it alone while any worker or follow-up is not finished (a long quiet build is
//!    activity), while a question waits for a human, or while its open pull requests are
//!    healthy and only wait for a human to merge them — no poke ever asks a human to merge;
//! 2. **pokes** a live manager whose turn has ended and who has been quiet for `idle_after`:
//!    a new turn with the state of things and the instruction to act now;
//! 3. **respawns** a manager when there is no live one, as a resume of the work so far, with
//!    the last manager's agent — within a budget of attempts that really started and a hard
//!    cap on manager sessions;
//! 4. past that budget, **escalates** once: a question to the humans, and no more respawns
//!    until it is answered;
//!
//! and acts at most once per objective per `cooldown`, whose clock is kept in the store.

use std::time::Duration;

use crate::model::AgentKind;
use crate::model::{ObjectiveId, SessionStatus, Timestamp};

/// The supervisor's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a manager's turn must have been over before it is poked.
    pub idle_after: Duration,
    /// Least time between two actions on one objective.
    pub cooldown: Duration,
    /// Manager attempts that really started, per budget (reset when a human says go on).
    pub max_attempts: u32,
    /// Manager sessions of any kind, per budget.
    pub max_managers: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_after: Duration::from_secs(90),
            cooldown: Duration::from_secs(90),
            max_attempts: 4,
            max_managers: 16,
        }
    }
}

/// The objective's current manager, as the supervisor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manager {
    pub status: SessionStatus,
    pub agent: AgentKind,
    /// When it last did anything (its turn start, or output).
    pub last_activity_at: Option<Timestamp>,
    /// Whether messages wait for its next turn (it will get a turn without a poke).
    pub has_messages: bool,
}

/// One active objective, as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectiveView {
    pub id: ObjectiveId,
    pub manager: Option<Manager>,
    /// Workers and follow-ups that are not finished.
    pub live_workers: u32,
    /// Questions waiting for a human.
    pub open_questions: u32,
    /// Open pull requests, and how many pull requests need the manager (open with failing
    /// checks or a conflict, or closed without merge and not yet decided about).
    pub open_pulls: u32,
    pub unhealthy_pulls: u32,
    /// Manager sessions that really started (took a turn), since the budget was last reset.
    pub attempts: u32,
    /// Manager sessions of any kind since the budget was last reset.
    pub managers: u32,
    /// When the supervisor last acted on it.
    pub supervised_at: Option<Timestamp>,
    /// Whether an escalation was raised and not yet answered.
    pub escalated: bool,
}

/// What the supervisor does to one objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Give the idle manager a turn with the state of things.
    Poke(ObjectiveId),
    /// Start a new manager (with this agent) to resume the work.
    Respawn(ObjectiveId, Option<AgentKind>),
    /// Ask the humans whether to continue, re-scope or stop.
    Escalate(ObjectiveId),
}

impl Action {
    pub fn objective(self) -> ObjectiveId {
        match self {
            Action::Poke(id) | Action::Respawn(id, _) | Action::Escalate(id) => id,
        }
    }
}

/// Decides what to do to each objective now.
pub fn decide(objectives: &[ObjectiveView], settings: &Settings, now: Timestamp) -> Vec<Action> {
    objectives
        .iter()
        .filter_map(|o| decide_one(o, settings, now))
        .collect()
}

fn decide_one(o: &ObjectiveView, s: &Settings, now: Timestamp) -> Option<Action> {
    // Work in progress, a human being asked, or pull requests waiting to be merged.
    if o.live_workers > 0 || o.open_questions > 0 {
        return None;
    }
    if o.open_pulls > 0 && o.unhealthy_pulls == 0 {
        return None;
    }
    if o.supervised_at.is_some_and(|at| now.since(at) < s.cooldown) {
        return None;
    }
    match o.manager {
        Some(m) if !m.status.is_terminal() => {
            // Queued, starting or mid-turn: it is working. Waiting: on a human.
            let idle = m.status == SessionStatus::Idle;
            let quiet = m
                .last_activity_at
                .is_none_or(|at| now.since(at) >= s.idle_after);
            (idle && quiet && !m.has_messages).then_some(Action::Poke(o.id))
        }
        last => {
            if o.escalated {
                return None; // asked once; wait for the answer
            }
            if o.attempts >= s.max_attempts || o.managers >= s.max_managers {
                return Some(Action::Escalate(o.id));
            }
            Some(Action::Respawn(o.id, last.map(|m| m.agent)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000_000);

    fn at(secs: u64) -> Timestamp {
        T0.plus(Duration::from_secs(secs))
    }

    fn manager(status: SessionStatus, last: u64) -> Option<Manager> {
        Some(Manager {
            status,
            agent: AgentKind::Codex,
            last_activity_at: Some(at(last)),
            has_messages: false,
        })
    }

    fn objective(m: Option<Manager>) -> ObjectiveView {
        ObjectiveView {
            id: ObjectiveId(1),
            manager: m,
            live_workers: 0,
            open_questions: 0,
            open_pulls: 0,
            unhealthy_pulls: 0,
            attempts: 1,
            managers: 1,
            supervised_at: None,
            escalated: false,
        }
    }

    fn one(o: &ObjectiveView, now: u64) -> Option<Action> {
        decide(std::slice::from_ref(o), &Settings::default(), at(now))
            .into_iter()
            .next()
    }

    #[test]
    fn an_idle_quiet_manager_is_poked_but_not_a_just_active_one() {
        let o = objective(manager(SessionStatus::Idle, 0));
        assert_eq!(one(&o, 89), None, "just active");
        assert_eq!(one(&o, 90), Some(Action::Poke(ObjectiveId(1))));
    }

    #[test]
    fn a_manager_mid_turn_queued_starting_or_waiting_is_not_poked() {
        for status in [
            SessionStatus::Running,
            SessionStatus::Queued,
            SessionStatus::Starting,
            SessionStatus::Waiting,
        ] {
            assert_eq!(
                one(&objective(manager(status, 0)), 10_000),
                None,
                "{status:?}"
            );
        }
        let mut o = objective(manager(SessionStatus::Idle, 0));
        o.manager.as_mut().unwrap().has_messages = true;
        assert_eq!(one(&o, 10_000), None, "news will give it a turn anyway");
    }

    #[test]
    fn live_workers_questions_and_healthy_pulls_leave_it_alone() {
        let mut o = objective(manager(SessionStatus::Idle, 0));
        o.live_workers = 1;
        assert_eq!(one(&o, 10_000), None, "a long quiet build is activity");
        o.live_workers = 0;
        o.open_questions = 1;
        assert_eq!(one(&o, 10_000), None, "waiting on a human");
        o.open_questions = 0;
        o.open_pulls = 2;
        assert_eq!(one(&o, 10_000), None, "never ask a human to merge");
        o.unhealthy_pulls = 1;
        assert_eq!(
            one(&o, 10_000),
            Some(Action::Poke(ObjectiveId(1))),
            "a failing PR needs the manager"
        );
    }

    #[test]
    fn the_cooldown_holds() {
        let mut o = objective(manager(SessionStatus::Idle, 0));
        o.supervised_at = Some(at(1000));
        assert_eq!(one(&o, 1089), None);
        assert_eq!(one(&o, 1090), Some(Action::Poke(ObjectiveId(1))));
    }

    #[test]
    fn a_dead_manager_is_respawned_with_its_agent_then_escalated_once() {
        let mut o = objective(manager(SessionStatus::Failed, 0));
        assert_eq!(
            one(&o, 1),
            Some(Action::Respawn(ObjectiveId(1), Some(AgentKind::Codex)))
        );
        o.manager = None;
        assert_eq!(one(&o, 1), Some(Action::Respawn(ObjectiveId(1), None)));
        o.attempts = 4;
        assert_eq!(one(&o, 1), Some(Action::Escalate(ObjectiveId(1))));
        o.attempts = 1;
        o.managers = 16;
        assert_eq!(
            one(&o, 1),
            Some(Action::Escalate(ObjectiveId(1))),
            "hard cap"
        );
        o.escalated = true;
        assert_eq!(one(&o, 1), None, "escalates once");
    }

    #[test]
    fn failed_before_start_attempts_do_not_count() {
        // Three managers died before their agent ran: attempts stay low, managers grow.
        let mut o = objective(manager(SessionStatus::Failed, 0));
        o.attempts = 1;
        o.managers = 4;
        assert_eq!(
            one(&o, 1),
            Some(Action::Respawn(ObjectiveId(1), Some(AgentKind::Codex)))
        );
    }

    /// A tiny deterministic generator for the property test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn random_histories_keep_the_rules() {
        let s = Settings::default();
        let statuses = [
            SessionStatus::Queued,
            SessionStatus::Starting,
            SessionStatus::Running,
            SessionStatus::Idle,
            SessionStatus::Waiting,
            SessionStatus::Succeeded,
            SessionStatus::Failed,
            SessionStatus::Cancelled,
        ];
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        for _ in 0..200 {
            let mut o = objective(manager(SessionStatus::Idle, 0));
            let mut open_escalation = false;
            let mut last_action: Option<Timestamp> = None;
            let mut now = T0;
            for _ in 0..300 {
                now = now.plus(Duration::from_secs(rng.next(60)));
                // The world changes at random.
                o.live_workers = rng.next(3) as u32 % 2 * rng.next(2) as u32;
                o.open_questions = u32::from(open_escalation) + (rng.next(5) == 0) as u32;
                o.open_pulls = rng.next(3) as u32;
                o.unhealthy_pulls = rng.next(2) as u32 * o.open_pulls.min(1);
                let status = statuses[rng.next(statuses.len() as u64) as usize];
                o.manager = manager(
                    status,
                    now.since(T0).as_secs().saturating_sub(rng.next(200)),
                );
                if rng.next(20) == 0 {
                    open_escalation = false; // a human answered
                    o.escalated = false;
                    o.attempts = 0;
                    o.managers = 0;
                }
                o.supervised_at = last_action;
                let actions = decide(std::slice::from_ref(&o), &s, now);
                assert!(actions.len() <= 1);
                if let Some(action) = actions.first() {
                    if let Some(prev) = last_action {
                        assert!(
                            now.since(prev) >= s.cooldown,
                            "two actions within the cooldown"
                        );
                    }
                    assert_eq!(o.live_workers, 0, "acted while a worker was live");
                    assert_eq!(o.open_questions, 0, "acted while a question was open");
                    if let Action::Poke(_) = action {
                        assert_eq!(o.manager.unwrap().status, SessionStatus::Idle);
                    }
                    if let Action::Escalate(_) = action {
                        assert!(!open_escalation, "two open escalations");
                        open_escalation = true;
                        o.escalated = true;
                    }
                    if let Action::Respawn(..) = action {
                        o.attempts += 1;
                        o.managers += 1;
                    }
                    last_action = Some(now);
                }
            }
        }
    }
}
