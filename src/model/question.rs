//! Questions for the humans on an issue: what each is about, where it stands.

use super::{ObjectiveId, QuestionId, SessionId, Timestamp};

/// What a question is about, which decides what an answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionKind {
    /// An agent's `ask_user`.
    Agent,
    /// A budget was reached; new work waits.
    Budget,
    /// The supervisor gave up respawning the manager.
    Escalation,
    /// The manager's plan waits for approval.
    Plan,
    /// A pull request was closed without being merged.
    ClosedPullRequest,
    /// A follow-up could not fix what it was sent to fix.
    FollowUp,
}

impl QuestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Agent => "agent",
            QuestionKind::Budget => "budget",
            QuestionKind::Escalation => "escalation",
            QuestionKind::Plan => "plan",
            QuestionKind::ClosedPullRequest => "closed_pull_request",
            QuestionKind::FollowUp => "followup",
        }
    }

    pub fn parse(s: &str) -> QuestionKind {
        match s {
            "budget" => QuestionKind::Budget,
            "escalation" => QuestionKind::Escalation,
            "plan" => QuestionKind::Plan,
            "closed_pull_request" => QuestionKind::ClosedPullRequest,
            "followup" => QuestionKind::FollowUp,
            _ => QuestionKind::Agent,
        }
    }

    /// Whether answering it lets stopped work go on (as `/foreman resume` does).
    pub fn resumes(self) -> bool {
        matches!(self, QuestionKind::Budget | QuestionKind::Escalation)
    }
}

/// Where a question stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionStatus {
    Open,
    Answered,
    /// Closed without an answer: the work it was for ended.
    Cancelled,
}

impl QuestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionStatus::Open => "open",
            QuestionStatus::Answered => "answered",
            QuestionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<QuestionStatus> {
        [
            QuestionStatus::Open,
            QuestionStatus::Answered,
            QuestionStatus::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// A stored question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: QuestionId,
    pub objective_id: ObjectiveId,
    pub session_id: Option<SessionId>,
    pub kind: QuestionKind,
    pub text: String,
    pub context: Option<String>,
    pub status: QuestionStatus,
    pub answer: Option<String>,
    pub answered_by: Option<String>,
    pub created_at: Timestamp,
    /// The comment that asks it on the issue, once posted.
    pub comment_id: Option<i64>,
    /// The comment that answered it.
    pub answer_comment_id: Option<i64>,
}
