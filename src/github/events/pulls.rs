//! `pull_request`, `pull_request_review` and `pull_request_review_comment`.

use super::*;

/// A branch tip: `head` or `base` of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BranchRef {
    /// Branch name (`ref` in the payload).
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Commit sha of the tip.
    pub sha: String,
    /// The repository the branch lives in; `None` when a fork was deleted.
    pub repo: Option<RepoRef>,
}

/// A repository as referenced from a branch: `full_name` is missing in check payloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepoRef {
    /// Numeric repository id.
    pub id: i64,
    /// Name without the owner.
    pub name: Option<String>,
    /// `owner/name`, when sent.
    pub full_name: Option<String>,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// Pull request number within the repository.
    pub number: i64,
    /// Title.
    pub title: String,
    /// Body; empty when GitHub sends `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub body: String,
    /// `open` or `closed`.
    pub state: Option<String>,
    /// Whether it was merged; missing in some payloads (reviews), so see
    /// [`PullRequest::is_merged`].
    pub merged: Option<bool>,
    /// Merge time, if merged.
    pub merged_at: Option<String>,
    /// Draft pull request; false when missing (older payloads).
    #[serde(default, deserialize_with = "null_as_default")]
    pub draft: bool,
    /// Author.
    pub user: Option<User>,
    /// The branch with the changes.
    pub head: BranchRef,
    /// The branch the changes go into.
    pub base: BranchRef,
    /// Web URL.
    pub html_url: Option<String>,
    /// `None` while GitHub is still computing it.
    pub mergeable: Option<bool>,
    /// `clean`, `dirty`, `blocked`, `unknown`, ...
    pub mergeable_state: Option<String>,
    /// Labels; empty when missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: Vec<Label>,
}

impl PullRequest {
    /// True when `merged` is true or `merged_at` is set.
    pub fn is_merged(&self) -> bool {
        self.merged == Some(true) || self.merged_at.is_some()
    }

    /// True when GitHub says it is closed (merged or not).
    pub fn is_closed(&self) -> bool {
        self.state.as_deref() == Some("closed")
    }

    /// True when the pull request carries the label `name` (ASCII case-insensitive).
    pub fn has_label(&self, name: &str) -> bool {
        has_label(&self.labels, name)
    }
}

/// State of a pull request review. Webhooks send lower case, REST upper case; both are
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// Approved.
    #[serde(alias = "APPROVED")]
    Approved,
    /// Changes requested.
    #[serde(alias = "CHANGES_REQUESTED")]
    ChangesRequested,
    /// Comment only.
    #[serde(alias = "COMMENTED")]
    Commented,
    /// Dismissed.
    #[serde(alias = "DISMISSED")]
    Dismissed,
    /// Not submitted yet.
    #[serde(alias = "PENDING")]
    Pending,
    /// Any other state.
    #[serde(other)]
    Unknown,
}

/// A pull request review.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Review {
    /// Review id.
    pub id: i64,
    /// Approved, changes requested, commented, ...
    pub state: ReviewState,
    /// Body; empty when GitHub sends `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub body: String,
    /// Reviewer.
    pub user: Option<User>,
    /// The commit the review was made on.
    pub commit_id: Option<String>,
    /// Submission time, as GitHub sent it.
    pub submitted_at: Option<String>,
    /// Web URL.
    pub html_url: Option<String>,
    /// The reviewer's relation to the repository.
    pub author_association: Option<String>,
}

/// `pull_request`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PullRequestEvent {
    /// What happened.
    pub action: Action<PullRequestAction>,
    /// The pull request.
    pub pull_request: PullRequest,
    /// Previous values of edited fields (edited), as sent.
    pub changes: Option<serde_json::Value>,
    /// The repository.
    pub repository: Repository,
    /// Who did it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}

/// `pull_request_review`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestReviewEvent {
    /// What happened.
    pub action: Action<PullRequestReviewAction>,
    /// The review.
    pub review: Review,
    /// The pull request reviewed.
    pub pull_request: PullRequest,
    /// The repository.
    pub repository: Repository,
    /// Who did it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}

/// `pull_request_review_comment`: a comment on a pull request's diff.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PullRequestReviewCommentEvent {
    /// What happened.
    pub action: Action<PullRequestReviewCommentAction>,
    /// The comment.
    pub comment: ReviewComment,
    /// The pull request commented on.
    pub pull_request: PullRequest,
    /// Previous body (edited), as sent.
    pub changes: Option<serde_json::Value>,
    /// The repository.
    pub repository: Repository,
    /// Who did it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}
