//! The `action` of each event: a known set, an unknown one kept as sent.

use super::*;

/// Implemented by every per-event action enum.
pub trait ActionKind: Copy {
    /// False for the `Unknown` fallback variant.
    fn is_known(self) -> bool;
}

/// A webhook `action`: the typed kind plus the raw string GitHub sent, so an action
/// that fell back to `Unknown` can still be logged by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action<A> {
    kind: A,
    raw: String,
}

impl<A: ActionKind> Action<A> {
    /// The typed action (`Unknown` for actions this module does not list).
    pub fn kind(&self) -> A {
        self.kind
    }

    /// The action exactly as it appeared in the payload.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// False when the action fell back to `Unknown`.
    pub fn is_known(&self) -> bool {
        self.kind.is_known()
    }
}

impl<A: PartialEq> PartialEq<A> for Action<A> {
    fn eq(&self, other: &A) -> bool {
        self.kind == *other
    }
}

impl<'de, A: DeserializeOwned> Deserialize<'de> for Action<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        let kind = A::deserialize(raw.as_str().into_deserializer())
            .map_err(|e: de::value::Error| de::Error::custom(e))?;
        Ok(Self { kind, raw })
    }
}

/// `action` of an `issues` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuesAction {
    /// Issue created.
    Opened,
    /// Title or body changed; see `changes`.
    Edited,
    /// A label was added; see `label`.
    Labeled,
    /// A label was removed; see `label`.
    Unlabeled,
    /// Issue closed.
    Closed,
    /// Issue reopened.
    Reopened,
    /// Any other action (assigned, pinned, transferred, ...).
    #[serde(other)]
    Unknown,
}

/// `action` of an `issue_comment` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueCommentAction {
    /// Comment posted.
    Created,
    /// Comment body changed; see `changes`.
    Edited,
    /// Comment deleted.
    Deleted,
    /// Any other action.
    #[serde(other)]
    Unknown,
}

/// `action` of a `pull_request` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestAction {
    /// Pull request created.
    Opened,
    /// Closed, merged or not: see [`PullRequest::is_merged`].
    Closed,
    /// Reopened.
    Reopened,
    /// New commits on the head branch.
    Synchronize,
    /// Title, body or base changed; see `changes`.
    Edited,
    /// Any other action (labeled, review_requested, ...).
    #[serde(other)]
    Unknown,
}

/// `action` of a `pull_request_review` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestReviewAction {
    /// Review submitted.
    Submitted,
    /// Any other action (edited, dismissed).
    #[serde(other)]
    Unknown,
}

/// `action` of a `pull_request_review_comment` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestReviewCommentAction {
    /// Comment posted on the diff.
    Created,
    /// Any other action (edited, deleted).
    #[serde(other)]
    Unknown,
}

/// `action` of `check_suite`, `check_run` and `workflow_run` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletedAction {
    /// The suite, run or workflow finished; see its `conclusion`.
    Completed,
    /// Any other action (requested, rerequested, created, in_progress, ...).
    #[serde(other)]
    Unknown,
}

/// `action` of an `installation` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallationAction {
    /// The App was installed.
    Created,
    /// The App was uninstalled.
    Deleted,
    /// The installation was suspended.
    Suspend,
    /// The installation was unsuspended.
    Unsuspend,
    /// Any other action (new_permissions_accepted, ...).
    #[serde(other)]
    Unknown,
}

/// `action` of an `installation_repositories` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallationRepositoriesAction {
    /// Repositories were added to the installation.
    Added,
    /// Repositories were removed from the installation.
    Removed,
    /// Any other action.
    #[serde(other)]
    Unknown,
}

macro_rules! impl_action_kind {
    ($($ty:ty),* $(,)?) => {$(
        impl ActionKind for $ty {
            fn is_known(self) -> bool {
                !matches!(self, Self::Unknown)
            }
        }
    )*};
}

impl_action_kind!(
    IssuesAction,
    IssueCommentAction,
    PullRequestAction,
    PullRequestReviewAction,
    PullRequestReviewCommentAction,
    CompletedAction,
    InstallationAction,
    InstallationRepositoriesAction,
);
