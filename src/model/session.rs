//! Objectives and sessions, and the state machines they move along. The store applies a
//! transition with a conditional update (`… WHERE status IN (allowed predecessors)`), so a
//! transition that is not allowed — a completion arriving after a cancel, say — changes
//! nothing, whatever the order things happen in.

use serde::{Deserialize, Serialize};

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Plans, spawns workers, publishes their work; lives as long as the objective.
    Manager,
    /// Does one task and reports its result.
    Worker,
    /// Fixes one thing on an existing pull request (failing checks, review comments).
    Followup,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
            Role::Followup => "followup",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "manager" => Role::Manager,
            "worker" => Role::Worker,
            "followup" => Role::Followup,
            _ => return None,
        })
    }

    /// Workers and follow-ups do one task: when their turn ends they are finished.
    pub fn is_one_task(self) -> bool {
        !matches!(self, Role::Manager)
    }
}

/// Which kind of agent CLI runs a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Claude Code, headless (`claude -p … --output-format stream-json`).
    Claude,
    /// OpenAI Codex CLI (`codex exec --json`).
    Codex,
    /// Any program: gets the prompt and the MCP endpoint in its environment.
    Command,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Codex => "codex",
            AgentKind::Command => "command",
        }
    }

    pub fn parse(s: &str) -> Option<AgentKind> {
        Some(match s {
            "claude" => AgentKind::Claude,
            "codex" => AgentKind::Codex,
            "command" => AgentKind::Command,
            _ => return None,
        })
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Created; waits for its dependencies and for capacity.
    Queued,
    /// Its workspace and process are being set up.
    Starting,
    /// A turn is in progress.
    Running,
    /// Between turns (managers only): the conversation can take a new message.
    Idle,
    /// Its turn ended with a question open: waits for a human's answer.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 8] = [
        SessionStatus::Queued,
        SessionStatus::Starting,
        SessionStatus::Running,
        SessionStatus::Idle,
        SessionStatus::Waiting,
        SessionStatus::Succeeded,
        SessionStatus::Failed,
        SessionStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Queued => "queued",
            SessionStatus::Starting => "starting",
            SessionStatus::Running => "running",
            SessionStatus::Idle => "idle",
            SessionStatus::Waiting => "waiting",
            SessionStatus::Succeeded => "succeeded",
            SessionStatus::Failed => "failed",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        SessionStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Succeeded, failed and cancelled are final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionStatus::Succeeded | SessionStatus::Failed | SessionStatus::Cancelled
        )
    }

    /// A process is (being) started or runs for it.
    pub fn is_active_turn(self) -> bool {
        matches!(self, SessionStatus::Starting | SessionStatus::Running)
    }

    /// The states a session may move to this one from.
    pub fn predecessors(self) -> &'static [SessionStatus] {
        use SessionStatus::*;
        match self {
            Queued => &[Starting],
            Starting => &[Queued],
            Running => &[Starting, Idle, Waiting],
            Idle => &[Running],
            Waiting => &[Running],
            Succeeded => &[Running, Idle, Waiting],
            Failed => &[Queued, Starting, Running, Idle, Waiting],
            Cancelled => &[Queued, Starting, Running, Idle, Waiting],
        }
    }

    /// Whether `self → to` is allowed.
    pub fn can_become(self, to: SessionStatus) -> bool {
        to.predecessors().contains(&self)
    }
}

/// Where an objective stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveStatus {
    Active,
    /// Waiting on a human (an open question).
    Waiting,
    Done,
    Failed,
    Cancelled,
}

impl ObjectiveStatus {
    pub const ALL: [ObjectiveStatus; 5] = [
        ObjectiveStatus::Active,
        ObjectiveStatus::Waiting,
        ObjectiveStatus::Done,
        ObjectiveStatus::Failed,
        ObjectiveStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectiveStatus::Active => "active",
            ObjectiveStatus::Waiting => "waiting",
            ObjectiveStatus::Done => "done",
            ObjectiveStatus::Failed => "failed",
            ObjectiveStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectiveStatus> {
        ObjectiveStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ObjectiveStatus::Done | ObjectiveStatus::Failed | ObjectiveStatus::Cancelled
        )
    }

    /// The states an objective may move to this one from.
    pub fn predecessors(self) -> &'static [ObjectiveStatus] {
        use ObjectiveStatus::*;
        match self {
            Active => &[Waiting],
            Waiting => &[Active],
            Done | Failed | Cancelled => &[Active, Waiting],
        }
    }
}

/// Whether foreman's label, put on an issue at `labelled_at`, went unanswered: no objective
/// ever worked on the issue, or the latest one had ended before the label was put on (a
/// label from before it ended is the one that started it, or one it outlived).
pub fn label_missed(latest: Option<&Objective>, labelled_at: super::Timestamp) -> bool {
    match latest {
        None => true,
        Some(o) if !o.status.is_terminal() => false,
        Some(o) => o.ended_at.is_some_and(|ended| labelled_at > ended),
    }
}

/// Renders a list of states for an SQL `IN (…)` list. The values are our own constants.
pub fn sql_list<T: Copy>(states: &[T], name: fn(T) -> &'static str) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", name(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_missed_only_when_no_objective_answered_it() {
        use crate::model::Timestamp;
        let at = Timestamp(5_000);
        assert!(label_missed(None, at), "never worked on");
        let mut o = fixtures::objective(1);
        assert!(!label_missed(Some(&o), at), "one is working on it");
        o.status = ObjectiveStatus::Cancelled;
        o.ended_at = Some(Timestamp(9_000));
        assert!(!label_missed(Some(&o), at), "the label it ended with");
        o.ended_at = Some(Timestamp(1_000));
        assert!(label_missed(Some(&o), at), "put on again after it ended");
    }

    #[test]
    fn terminal_states_are_final() {
        for from in SessionStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in SessionStatus::ALL {
                assert!(!from.can_become(to), "{from:?} → {to:?}");
            }
        }
        for from in ObjectiveStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ObjectiveStatus::ALL {
                assert!(!to.predecessors().contains(&from), "{from:?} → {to:?}");
            }
        }
    }

    #[test]
    fn a_session_runs_turns_and_finishes() {
        use SessionStatus::*;
        let path = [
            Queued, Starting, Running, Idle, Running, Waiting, Running, Succeeded,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{:?} → {:?}", pair[0], pair[1]);
        }
        assert!(
            !Queued.can_become(Running),
            "a session starts before it runs"
        );
        assert!(!Queued.can_become(Succeeded));
        assert!(Running.can_become(Cancelled) && Idle.can_become(Failed));
    }

    #[test]
    fn names_round_trip() {
        for s in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(s.as_str()), Some(s));
        }
        for s in ObjectiveStatus::ALL {
            assert_eq!(ObjectiveStatus::parse(s.as_str()), Some(s));
        }
        for r in [Role::Manager, Role::Worker, Role::Followup] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(
            sql_list(
                &[SessionStatus::Queued, SessionStatus::Idle],
                SessionStatus::as_str
            ),
            "'queued', 'idle'"
        );
    }
}

/// Limits on what one objective may spend before a human is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Sessions of any role started for the objective.
    pub sessions: u32,
    /// Turns across all its sessions.
    pub turns: u32,
    /// Wall-clock time since the objective started.
    pub wall: std::time::Duration,
    /// Cost in millionths of a dollar, where agents report cost.
    pub cost_micros: Option<u64>,
}

/// What an objective has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub sessions: u32,
    pub turns: u32,
    pub wall: std::time::Duration,
    pub cost_micros: u64,
}

impl Budget {
    /// What is left of the cost budget after `usage`, in micro-dollars (`None`: no cost
    /// budget). A turn may spend at most this.
    pub fn cost_left(&self, usage: &Usage) -> Option<u64> {
        self.cost_micros
            .map(|limit| limit.saturating_sub(usage.cost_micros))
    }

    /// The first limit `usage` has reached, described for a human, if any.
    pub fn exceeded_by(&self, usage: &Usage) -> Option<String> {
        if usage.sessions >= self.sessions {
            return Some(format!("sessions: {} of {}", usage.sessions, self.sessions));
        }
        if usage.turns >= self.turns {
            return Some(format!("turns: {} of {}", usage.turns, self.turns));
        }
        if usage.wall >= self.wall {
            return Some(format!(
                "time: {} of {}",
                humantime::format_duration(round_to_minutes(usage.wall)),
                humantime::format_duration(round_to_minutes(self.wall))
            ));
        }
        if let Some(limit) = self.cost_micros
            && usage.cost_micros >= limit
        {
            return Some(format!(
                "cost: ${:.2} of ${:.2}",
                usage.cost_micros as f64 / 1e6,
                limit as f64 / 1e6
            ));
        }
        None
    }
}

fn round_to_minutes(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs() / 60 * 60)
}

/// An objective as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub id: super::ObjectiveId,
    pub installation_id: Option<super::InstallationId>,
    pub repository: String,
    pub issue_number: u64,
    pub title: String,
    pub body: String,
    pub author: String,
    pub author_permission: String,
    pub status: ObjectiveStatus,
    pub status_reason: Option<String>,
    pub manager: Option<super::SessionId>,
    pub summary: Option<String>,
    /// The manager said the issue needs no change at all (it is then closed as not planned).
    pub no_change_needed: bool,
    pub budget: Budget,
    /// Set while a reached budget holds new work back (what was reached).
    pub budget_blocked: Option<String>,
    pub created_at: super::Timestamp,
    /// The repository configuration the objective runs with.
    pub config: super::repo_config::RepoConfig,
    /// The objective on the same issue that came before this one.
    pub previous: Option<super::ObjectiveId>,
    /// foreman's status comment on the issue, once posted.
    pub status_comment_id: Option<i64>,
    /// The random part of the hidden markers of its comments (empty for older objectives).
    pub marker_nonce: String,
    /// When it ended, if it has.
    pub ended_at: Option<super::Timestamp>,
    /// Whether a human approved the manager's plan (when the repository asks for that).
    pub plan_approved: bool,
    /// When its manager said the work is done while pull requests were still open: it ends
    /// done when they are merged.
    pub done_requested_at: Option<super::Timestamp>,
    /// Why its work is held (foreman may not act for its repository), until a human resumes.
    pub held: Option<String>,
    /// Who edited the issue's text after it started without being allowed to start foreman:
    /// the agents keep the text it started from.
    pub text_edited_by: Option<String>,
    /// Who started it (the label's sender, or who said `/foreman retry`), when known.
    pub started_by: Option<String>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: super::SessionId,
    pub objective_id: super::ObjectiveId,
    pub role: Role,
    pub agent: AgentKind,
    pub title: String,
    pub instructions: String,
    pub status: SessionStatus,
    pub status_reason: Option<String>,
    pub spawned_by: Option<super::SessionId>,
    pub depends_on: Vec<super::SessionId>,
    pub conversation_id: Option<String>,
    pub result: Option<String>,
    pub activity: Option<String>,
    pub summary: Option<String>,
    pub turns: u32,
    pub recoveries: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub workdir: Option<String>,
    pub runner: Option<String>,
    pub pid: Option<i64>,
    pub heartbeat_at: Option<super::Timestamp>,
    pub created_at: super::Timestamp,
    pub last_activity_at: Option<super::Timestamp>,
    pub turn_started_at: Option<super::Timestamp>,
    /// The checkout it works in, once prepared.
    pub workspace_id: Option<super::WorkspaceId>,
    /// For a follow-up: the pull request it works on, and why.
    pub pull_request_id: Option<i64>,
    pub followup_kind: Option<FollowupKind>,
    /// The machine its turns run on, once its first was placed
    /// ([`crate::model::targets::place`]).
    pub target: Option<String>,
}

/// Why a follow-up works on one of foreman's pull requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowupKind {
    /// Its checks failed.
    Ci,
    /// A reviewer asked for changes.
    Review,
    /// It conflicts with its base.
    Conflict,
}

impl FollowupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowupKind::Ci => "ci",
            FollowupKind::Review => "review",
            FollowupKind::Conflict => "conflict",
        }
    }

    pub fn parse(text: &str) -> Option<FollowupKind> {
        [
            FollowupKind::Ci,
            FollowupKind::Review,
            FollowupKind::Conflict,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// The follow-up session's title.
    pub fn title(self, pull: &super::PullRequest) -> String {
        match self {
            FollowupKind::Ci => format!("Fix the failing checks of #{}", pull.number),
            FollowupKind::Review => format!("Address the review of #{}", pull.number),
            FollowupKind::Conflict => format!(
                "Resolve the conflicts of #{} with {}",
                pull.number, pull.base_ref
            ),
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_limit_reached_is_named() {
        let budget = Budget {
            sessions: 3,
            turns: 10,
            wall: Duration::from_secs(3600),
            cost_micros: Some(5_000_000),
        };
        let mut usage = Usage::default();
        assert_eq!(budget.exceeded_by(&usage), None);
        usage.turns = 10;
        assert_eq!(budget.exceeded_by(&usage).unwrap(), "turns: 10 of 10");
        usage.turns = 0;
        usage.cost_micros = 5_000_001;
        assert_eq!(budget.exceeded_by(&usage).unwrap(), "cost: $5.00 of $5.00");
        usage.wall = Duration::from_secs(3700);
        assert_eq!(budget.exceeded_by(&usage).unwrap(), "time: 1h 1m of 1h");
        usage.sessions = 3;
        assert_eq!(budget.exceeded_by(&usage).unwrap(), "sessions: 3 of 3");
    }
}

/// Objectives and sessions for unit tests, with every field set to something plain.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::model::{ObjectiveId, SessionId, Timestamp};
    use std::time::Duration;

    pub fn objective(id: i64) -> Objective {
        Objective {
            id: ObjectiveId(id),
            installation_id: None,
            repository: "octo/widgets".into(),
            issue_number: 42,
            title: "Widgets break".into(),
            body: "They break.".into(),
            author: "alice".into(),
            author_permission: "write".into(),
            status: ObjectiveStatus::Active,
            status_reason: None,
            manager: None,
            summary: None,
            no_change_needed: false,
            budget: Budget {
                sessions: 100,
                turns: 100,
                wall: Duration::from_secs(3600),
                cost_micros: None,
            },
            budget_blocked: None,
            created_at: Timestamp(0),
            config: Default::default(),
            previous: None,
            status_comment_id: None,
            marker_nonce: String::new(),
            ended_at: None,
            plan_approved: false,
            done_requested_at: None,
            held: None,
            text_edited_by: None,
            started_by: None,
        }
    }

    pub fn session(id: i64, objective: i64, role: Role, status: SessionStatus) -> Session {
        Session {
            id: SessionId(id),
            objective_id: ObjectiveId(objective),
            role,
            agent: AgentKind::Command,
            title: format!("Task {id}"),
            instructions: format!("Do task {id}."),
            status,
            status_reason: None,
            spawned_by: None,
            depends_on: Vec::new(),
            conversation_id: None,
            result: None,
            activity: None,
            summary: None,
            turns: 0,
            recoveries: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_micros: 0,
            workdir: None,
            runner: None,
            pid: None,
            heartbeat_at: None,
            created_at: Timestamp(0),
            last_activity_at: None,
            turn_started_at: None,
            workspace_id: None,
            pull_request_id: None,
            followup_kind: None,
            target: None,
        }
    }
}
