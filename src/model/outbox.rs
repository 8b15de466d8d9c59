//! The outbox's words: what an effect on GitHub does, and where it stands.

/// What an outbox item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Posts a comment on the issue.
    Comment,
    /// Posts the objective's status comment (later edits go to it).
    StatusComment,
    /// Reacts to the issue (`body` is the reaction).
    Reaction,
    /// Reacts to a comment (`target_id`; `body` is the reaction).
    CommentReaction,
    /// Posts a question (`target_id` is the question).
    Question,
    /// Closes the issue as completed.
    CloseIssue,
    /// Marks pull request `target_id` ready for review (if it is a draft) and asks `body` (a
    /// login; empty for nobody) to review it.
    ReadyForReview,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Comment => "issue_comment",
            OutboxKind::StatusComment => "status_comment",
            OutboxKind::Reaction => "reaction",
            OutboxKind::CommentReaction => "comment_reaction",
            OutboxKind::Question => "question",
            OutboxKind::CloseIssue => "close_issue",
            OutboxKind::ReadyForReview => "ready_for_review",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxKind> {
        Some(match s {
            "issue_comment" => OutboxKind::Comment,
            "status_comment" => OutboxKind::StatusComment,
            "reaction" => OutboxKind::Reaction,
            "comment_reaction" => OutboxKind::CommentReaction,
            "question" => OutboxKind::Question,
            "close_issue" => OutboxKind::CloseIssue,
            "ready_for_review" => OutboxKind::ReadyForReview,
            _ => return None,
        })
    }
}

/// Where a queued effect stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Not made yet (or to be retried).
    Pending,
    /// Made on GitHub.
    Done,
    /// Given up on: too many attempts, or its installation went away.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Done => "done",
            OutboxStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        [
            OutboxStatus::Pending,
            OutboxStatus::Done,
            OutboxStatus::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Why foreman closes an issue (GitHub's `state_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The work is done.
    Completed,
    /// Nothing needed doing.
    NotPlanned,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Completed => "completed",
            CloseReason::NotPlanned => "not_planned",
        }
    }

    /// A stored reason read back; anything else (rows from before reasons were kept) is
    /// [`CloseReason::Completed`].
    pub fn parse(text: &str) -> CloseReason {
        match text {
            "not_planned" => CloseReason::NotPlanned,
            _ => CloseReason::Completed,
        }
    }
}
