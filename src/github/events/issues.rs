//! `issues` and `issue_comment`: issues, their comments, and pull-request review comments.

use super::*;

/// An issue (or the issue side of a pull request, in `issue_comment` events).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    /// Issue number within the repository.
    pub number: i64,
    /// Title.
    pub title: String,
    /// Body; empty when GitHub sends `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub body: String,
    /// `open` or `closed`; missing in some actions (`pinned`).
    pub state: Option<String>,
    /// Author.
    pub user: Option<User>,
    /// Labels on the issue; empty when missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: Vec<Label>,
    /// Web URL.
    pub html_url: Option<String>,
    /// Present when this "issue" is really a pull request.
    pub pull_request: Option<PullRequestMarker>,
    /// The author's relation to the repository: `OWNER`, `MEMBER`, `NONE`, ...
    pub author_association: Option<String>,
    /// When the issue last changed (labels included).
    pub updated_at: Option<String>,
}

impl Issue {
    /// True when this issue is a pull request (GitHub sets `issue.pull_request`).
    pub fn is_pull_request(&self) -> bool {
        self.pull_request.is_some()
    }

    /// True when the issue carries the label `name` (ASCII case-insensitive).
    pub fn has_label(&self, name: &str) -> bool {
        has_label(&self.labels, name)
    }
}

/// The `issue.pull_request` marker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestMarker {
    /// Web URL of the pull request.
    pub html_url: Option<String>,
    /// When the pull request was merged, if it was.
    pub merged_at: Option<String>,
}

/// A comment on an issue or on a pull request's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Comment {
    /// Comment id.
    pub id: i64,
    /// Body; empty when GitHub sends `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub body: String,
    /// Author.
    pub user: Option<User>,
    /// Creation time, as GitHub sent it.
    pub created_at: Option<String>,
    /// Last edit time, as GitHub sent it.
    pub updated_at: Option<String>,
    /// Web URL.
    pub html_url: Option<String>,
    /// The author's relation to the repository.
    pub author_association: Option<String>,
}

/// A comment on a pull request's diff.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReviewComment {
    /// Comment id.
    pub id: i64,
    /// Body; empty when GitHub sends `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub body: String,
    /// Author.
    pub user: Option<User>,
    /// Creation time, as GitHub sent it.
    pub created_at: Option<String>,
    /// Last edit time, as GitHub sent it.
    pub updated_at: Option<String>,
    /// Web URL.
    pub html_url: Option<String>,
    /// The author's relation to the repository.
    pub author_association: Option<String>,
    /// File the comment is on.
    pub path: Option<String>,
    /// Line in the current diff; `None` when outdated or in older payloads.
    pub line: Option<i64>,
    /// Line in the diff the comment was made on.
    pub original_line: Option<i64>,
    /// The diff context shown with the comment.
    pub diff_hunk: Option<String>,
    /// The review this comment belongs to.
    pub pull_request_review_id: Option<i64>,
    /// The comment this one replies to.
    pub in_reply_to_id: Option<i64>,
}

/// `issues`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IssuesEvent {
    /// What happened.
    pub action: Action<IssuesAction>,
    /// The issue.
    pub issue: Issue,
    /// The label added or removed (labeled / unlabeled).
    pub label: Option<Label>,
    /// Previous values of edited fields (edited), as sent.
    pub changes: Option<serde_json::Value>,
    /// The repository.
    pub repository: Repository,
    /// Who did it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}

/// `issue_comment`: a comment on an issue or on a pull request's conversation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IssueCommentEvent {
    /// What happened.
    pub action: Action<IssueCommentAction>,
    /// The issue (or pull request) commented on.
    pub issue: Issue,
    /// The comment.
    pub comment: Comment,
    /// Previous body (edited), as sent.
    pub changes: Option<serde_json::Value>,
    /// The repository.
    pub repository: Repository,
    /// Who did it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}

impl IssueCommentEvent {
    /// True when the comment is on a pull request rather than an issue.
    pub fn is_pull_request(&self) -> bool {
        self.issue.is_pull_request()
    }
}
