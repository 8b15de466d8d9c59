//! `check_suite`, `check_run` and `workflow_run`.

use super::*;

pub use crate::model::pulls::Conclusion;

/// A pull request as listed by checks and workflow runs: number and branch tips only.
/// May name pull requests in other repositories (forks) too: compare `base.repo`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PullRequestRef {
    /// Pull request number.
    pub number: i64,
    /// The branch with the changes.
    pub head: BranchRef,
    /// The branch the changes go into.
    pub base: BranchRef,
}

/// A check suite.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckSuite {
    /// Check suite id.
    pub id: i64,
    /// The commit checked.
    pub head_sha: String,
    /// Branch of that commit; `None` for forks.
    pub head_branch: Option<String>,
    /// `queued`, `in_progress`, `completed`, ...
    pub status: Option<String>,
    /// How it ended; `None` until completed.
    pub conclusion: Option<Conclusion>,
    /// Open pull requests whose head is this commit.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pull_requests: Vec<PullRequestRef>,
}

/// The `output` of a check run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckOutput {
    /// Title.
    pub title: Option<String>,
    /// Summary (Markdown).
    pub summary: Option<String>,
}

/// The check suite a check run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CheckSuiteRef {
    /// Check suite id.
    pub id: i64,
}

/// A check run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRun {
    /// Check run id.
    pub id: i64,
    /// Name, e.g. `build`.
    pub name: String,
    /// The commit checked.
    pub head_sha: String,
    /// `queued`, `in_progress`, `completed`, ...
    pub status: Option<String>,
    /// How it ended; `None` until completed.
    pub conclusion: Option<Conclusion>,
    /// Web URL on GitHub.
    pub html_url: Option<String>,
    /// URL of the integrator's page for this run.
    pub details_url: Option<String>,
    /// Title and summary the check reported.
    pub output: Option<CheckOutput>,
    /// The suite this run belongs to.
    pub check_suite: Option<CheckSuiteRef>,
    /// Open pull requests whose head is this commit.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pull_requests: Vec<PullRequestRef>,
}

/// A GitHub Actions workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkflowRun {
    /// Workflow run id.
    pub id: i64,
    /// Workflow name (may be empty).
    pub name: Option<String>,
    /// The commit run.
    pub head_sha: String,
    /// Branch of that commit.
    pub head_branch: Option<String>,
    /// `requested`, `queued`, `in_progress`, `completed`, ...
    pub status: Option<String>,
    /// How it ended; `None` until completed.
    pub conclusion: Option<Conclusion>,
    /// Web URL.
    pub html_url: Option<String>,
    /// API URL of the run's logs archive.
    pub logs_url: Option<String>,
    /// Open pull requests whose head is this commit.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pull_requests: Vec<PullRequestRef>,
}

/// `check_suite`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckSuiteEvent {
    /// What happened.
    pub action: Action<CompletedAction>,
    /// The check suite.
    pub check_suite: CheckSuite,
    /// The repository.
    pub repository: Repository,
    /// Who triggered it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}

/// `check_run`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckRunEvent {
    /// What happened.
    pub action: Action<CompletedAction>,
    /// The check run.
    pub check_run: CheckRun,
    /// The repository.
    pub repository: Repository,
    /// Who triggered it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}

/// `workflow_run`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkflowRunEvent {
    /// What happened.
    pub action: Action<CompletedAction>,
    /// The workflow run.
    pub workflow_run: WorkflowRun,
    /// The repository.
    pub repository: Repository,
    /// Who triggered it.
    pub sender: Option<User>,
    /// The installation, when the App received the event.
    pub installation: Option<InstallationRef>,
}
