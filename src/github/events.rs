//! Typed GitHub webhook payloads: the project's own lean event types.
//!
//! Why our own types and not octocrab's models: foreman reads a few dozen fields out of
//! payloads that carry hundreds, and real deliveries are not as complete as the REST
//! schemas suggest. Recorded payloads (see `tests/fixtures/webhooks/`) often have no
//! `installation`, older ones lack newer repository and pull-request fields, and some
//! actions drop fields others always send (`issues`/`pinned` has no `issue.state`). A
//! strict model would reject real traffic; so every type here holds only what foreman
//! uses, and everything GitHub may omit is an `Option` (or an empty default).
//!
//! Two entry points:
//! - [`envelope`]: the cheap, forgiving read the HTTP ingress does before it stores a
//!   delivery. It never fails on an unknown event or an odd field, only on a body that
//!   is not a JSON object.
//! - [`parse`]: the full typed parse the inbox processor does later. Unknown event names
//!   become [`Event::Unknown`]; unknown actions become the `Unknown` variant of that
//!   event's action enum (the raw string is kept). A payload that does not fit gives a
//!   [`ParseError`] naming the event, the JSON path and the position.
//!
//! Nothing here panics on external input. Timestamps stay strings as GitHub sent them.

use std::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

/// `X-GitHub-Event` header values this module understands.
pub mod event_name {
    /// Sent once when a webhook is created.
    pub const PING: &str = "ping";
    /// Issue opened, edited, labeled, closed, ...
    pub const ISSUES: &str = "issues";
    /// Comment on an issue or on a pull request's conversation.
    pub const ISSUE_COMMENT: &str = "issue_comment";
    /// Pull request opened, closed, pushed to, ...
    pub const PULL_REQUEST: &str = "pull_request";
    /// A review submitted on a pull request.
    pub const PULL_REQUEST_REVIEW: &str = "pull_request_review";
    /// A comment on a pull request's diff.
    pub const PULL_REQUEST_REVIEW_COMMENT: &str = "pull_request_review_comment";
    /// A check suite changed state.
    pub const CHECK_SUITE: &str = "check_suite";
    /// A check run changed state.
    pub const CHECK_RUN: &str = "check_run";
    /// A GitHub Actions workflow run changed state.
    pub const WORKFLOW_RUN: &str = "workflow_run";
    /// The App was installed, uninstalled, suspended or unsuspended.
    pub const INSTALLATION: &str = "installation";
    /// Repositories were added to or removed from an installation.
    pub const INSTALLATION_REPOSITORIES: &str = "installation_repositories";
    /// What [`super::Event::name`] returns for an event this module does not know.
    pub const UNKNOWN: &str = "unknown";
}

/// The name [`ParseError`] uses for errors from [`envelope`], where the event is not
/// looked at.
const ENVELOPE_SUBJECT: &str = "webhook";
/// `user.type` of GitHub App bot accounts.
const BOT_USER_TYPE: &str = "Bot";
/// Login suffix of GitHub App bot accounts (`foreman[bot]`).
const BOT_LOGIN_SUFFIX: &str = "[bot]";
/// How [`ParseError`] names the top of the document.
const ROOT_PATH: &str = "(root)";

// ---------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

/// Reads `null` (or a missing field, with `#[serde(default)]`) as the type's default:
/// an empty body, an empty list.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A GitHub account as it appears in `sender`, `user`, `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// Login name, e.g. `octocat` or `foreman[bot]`.
    pub login: String,
    /// Numeric account id.
    pub id: i64,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl User {
    /// True for App bot accounts: `type` is `Bot` or the login ends with `[bot]`.
    pub fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some(BOT_USER_TYPE) || self.login.ends_with(BOT_LOGIN_SUFFIX)
    }
}

/// The account an installation belongs to. Enterprise accounts have a `slug` and no
/// `login`, so both are optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// Login of a user or organization account.
    pub login: Option<String>,
    /// Slug of an enterprise account.
    pub slug: Option<String>,
    /// Numeric account id.
    pub id: Option<i64>,
    /// `User`, `Organization` or `Enterprise`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

impl Account {
    /// The login, or the enterprise slug when there is no login.
    pub fn name(&self) -> Option<&str> {
        self.login.as_deref().or(self.slug.as_deref())
    }
}

/// The repository an event happened in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    /// Numeric repository id (stable across renames).
    pub id: i64,
    /// Name without the owner, e.g. `Hello-World`.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// The owning account.
    pub owner: Option<User>,
    /// Default branch, e.g. `main`.
    pub default_branch: Option<String>,
    /// Whether the repository is private.
    pub private: Option<bool>,
    /// HTTPS clone URL.
    pub clone_url: Option<String>,
    /// Web URL.
    pub html_url: Option<String>,
}

impl Repository {
    /// The owner's login, from `owner` or else from `full_name`.
    pub fn owner_login(&self) -> Option<&str> {
        match &self.owner {
            Some(owner) => Some(owner.login.as_str()),
            None => self.full_name.split_once('/').map(|(owner, _)| owner),
        }
    }
}

/// A repository as listed by installation events: id and names only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepositorySummary {
    /// Numeric repository id.
    pub id: i64,
    /// Name without the owner.
    pub name: String,
    /// `owner/name`.
    pub full_name: String,
    /// Whether the repository is private.
    pub private: Option<bool>,
}

/// The `installation` object of a repository event: just the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct InstallationRef {
    /// Installation id, used to mint an installation token.
    pub id: i64,
}

/// A label, by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    /// Label name as shown on GitHub.
    pub name: String,
}

/// True when `labels` has `name`, compared ASCII-case-insensitively as GitHub does.
fn has_label(labels: &[Label], name: &str) -> bool {
    labels
        .iter()
        .any(|label| label.name.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------------
// Issues and comments
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Pull requests and reviews
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Checks and workflow runs
// ---------------------------------------------------------------------------------------

/// How a check suite, check run or workflow run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Passed.
    Success,
    /// Failed.
    Failure,
    /// Neither passed nor failed.
    Neutral,
    /// Cancelled before it finished.
    Cancelled,
    /// Skipped.
    Skipped,
    /// Ran out of time.
    TimedOut,
    /// Needs a human (for example, approving a workflow run from a fork).
    ActionRequired,
    /// Superseded.
    Stale,
    /// Could not start (for example, a broken workflow file).
    StartupFailure,
    /// Any other conclusion.
    #[serde(other)]
    Unknown,
}

impl Conclusion {
    /// True for conclusions a code change may fix: failure, timed out, startup failure.
    /// Cancelled, skipped and action-required are not failures of the code.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failure | Self::TimedOut | Self::StartupFailure)
    }
}

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

// ---------------------------------------------------------------------------------------
// Installations and hooks
// ---------------------------------------------------------------------------------------

/// The `installation` object of installation events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Installation {
    /// Installation id.
    pub id: i64,
    /// The account the App is installed on.
    pub account: Option<Account>,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    /// When the installation was suspended; `None` when active.
    pub suspended_at: Option<String>,
}

/// The `hook` object of a ping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hook {
    /// Hook id.
    pub id: Option<i64>,
    /// `Repository`, `Organization` or `App`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// App id, for hooks that belong to a GitHub App.
    pub app_id: Option<i64>,
    /// Events the hook is subscribed to.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<String>,
    /// Delivery settings.
    pub config: Option<HookConfig>,
}

/// Delivery settings of a hook (the secret is never read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HookConfig {
    /// `json` or `form`.
    pub content_type: Option<String>,
    /// Where deliveries are sent.
    pub url: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Event payloads
// ---------------------------------------------------------------------------------------

/// `ping`: sent once when the webhook is created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PingEvent {
    /// A random GitHub aphorism.
    pub zen: Option<String>,
    /// Id of the hook that was created.
    pub hook_id: Option<i64>,
    /// The hook.
    pub hook: Option<Hook>,
    /// Present for repository hooks.
    pub repository: Option<Repository>,
    /// Who created the hook.
    pub sender: Option<User>,
    /// Present when the App's hook is pinged for an installation.
    pub installation: Option<InstallationRef>,
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

/// `installation`: the App was installed, uninstalled, suspended or unsuspended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationEvent {
    /// What happened.
    pub action: Action<InstallationAction>,
    /// The installation.
    pub installation: Installation,
    /// Repositories the installation covers (created / deleted); empty when not sent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repositories: Vec<RepositorySummary>,
    /// Who did it.
    pub sender: Option<User>,
}

/// `installation_repositories`: repositories added to or removed from an installation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationRepositoriesEvent {
    /// What happened.
    pub action: Action<InstallationRepositoriesAction>,
    /// The installation.
    pub installation: Installation,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    /// Repositories added.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repositories_added: Vec<RepositorySummary>,
    /// Repositories removed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub repositories_removed: Vec<RepositorySummary>,
    /// Who did it.
    pub sender: Option<User>,
}

/// One parsed webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `ping`.
    Ping(Box<PingEvent>),
    /// `issues`.
    Issues(Box<IssuesEvent>),
    /// `issue_comment`.
    IssueComment(Box<IssueCommentEvent>),
    /// `pull_request`.
    PullRequest(Box<PullRequestEvent>),
    /// `pull_request_review`.
    PullRequestReview(Box<PullRequestReviewEvent>),
    /// `pull_request_review_comment`.
    PullRequestReviewComment(Box<PullRequestReviewCommentEvent>),
    /// `check_suite`.
    CheckSuite(Box<CheckSuiteEvent>),
    /// `check_run`.
    CheckRun(Box<CheckRunEvent>),
    /// `workflow_run`.
    WorkflowRun(Box<WorkflowRunEvent>),
    /// `installation`.
    Installation(Box<InstallationEvent>),
    /// `installation_repositories`.
    InstallationRepositories(Box<InstallationRepositoriesEvent>),
    /// Any other `X-GitHub-Event`; the body is not read.
    Unknown {
        /// The `X-GitHub-Event` header as received.
        event: String,
    },
}

impl Event {
    /// The `X-GitHub-Event` name of a known event, or `"unknown"` (the received name is
    /// in [`Event::Unknown`]).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping(_) => event_name::PING,
            Self::Issues(_) => event_name::ISSUES,
            Self::IssueComment(_) => event_name::ISSUE_COMMENT,
            Self::PullRequest(_) => event_name::PULL_REQUEST,
            Self::PullRequestReview(_) => event_name::PULL_REQUEST_REVIEW,
            Self::PullRequestReviewComment(_) => event_name::PULL_REQUEST_REVIEW_COMMENT,
            Self::CheckSuite(_) => event_name::CHECK_SUITE,
            Self::CheckRun(_) => event_name::CHECK_RUN,
            Self::WorkflowRun(_) => event_name::WORKFLOW_RUN,
            Self::Installation(_) => event_name::INSTALLATION,
            Self::InstallationRepositories(_) => event_name::INSTALLATION_REPOSITORIES,
            Self::Unknown { .. } => event_name::UNKNOWN,
        }
    }

    /// The raw `action` as in the payload; `None` for `ping` and unknown events.
    pub fn action(&self) -> Option<&str> {
        match self {
            Self::Ping(_) | Self::Unknown { .. } => None,
            Self::Issues(e) => Some(e.action.as_str()),
            Self::IssueComment(e) => Some(e.action.as_str()),
            Self::PullRequest(e) => Some(e.action.as_str()),
            Self::PullRequestReview(e) => Some(e.action.as_str()),
            Self::PullRequestReviewComment(e) => Some(e.action.as_str()),
            Self::CheckSuite(e) => Some(e.action.as_str()),
            Self::CheckRun(e) => Some(e.action.as_str()),
            Self::WorkflowRun(e) => Some(e.action.as_str()),
            Self::Installation(e) => Some(e.action.as_str()),
            Self::InstallationRepositories(e) => Some(e.action.as_str()),
        }
    }

    /// False when the event is unknown or its action fell back to `Unknown`. A `ping`
    /// has no action and counts as known.
    pub fn is_known_action(&self) -> bool {
        match self {
            Self::Ping(_) => true,
            Self::Unknown { .. } => false,
            Self::Issues(e) => e.action.is_known(),
            Self::IssueComment(e) => e.action.is_known(),
            Self::PullRequest(e) => e.action.is_known(),
            Self::PullRequestReview(e) => e.action.is_known(),
            Self::PullRequestReviewComment(e) => e.action.is_known(),
            Self::CheckSuite(e) => e.action.is_known(),
            Self::CheckRun(e) => e.action.is_known(),
            Self::WorkflowRun(e) => e.action.is_known(),
            Self::Installation(e) => e.action.is_known(),
            Self::InstallationRepositories(e) => e.action.is_known(),
        }
    }

    /// The installation the delivery is for, when the payload says.
    pub fn installation_id(&self) -> Option<i64> {
        let reference = match self {
            Self::Unknown { .. } => None,
            Self::Installation(e) => return Some(e.installation.id),
            Self::InstallationRepositories(e) => return Some(e.installation.id),
            Self::Ping(e) => e.installation.as_ref(),
            Self::Issues(e) => e.installation.as_ref(),
            Self::IssueComment(e) => e.installation.as_ref(),
            Self::PullRequest(e) => e.installation.as_ref(),
            Self::PullRequestReview(e) => e.installation.as_ref(),
            Self::PullRequestReviewComment(e) => e.installation.as_ref(),
            Self::CheckSuite(e) => e.installation.as_ref(),
            Self::CheckRun(e) => e.installation.as_ref(),
            Self::WorkflowRun(e) => e.installation.as_ref(),
        };
        reference.map(|installation| installation.id)
    }

    /// The repository the event happened in; `None` for installation events,
    /// organization pings and unknown events.
    pub fn repository(&self) -> Option<&Repository> {
        match self {
            Self::Installation(_) | Self::InstallationRepositories(_) | Self::Unknown { .. } => {
                None
            }
            Self::Ping(e) => e.repository.as_ref(),
            Self::Issues(e) => Some(&e.repository),
            Self::IssueComment(e) => Some(&e.repository),
            Self::PullRequest(e) => Some(&e.repository),
            Self::PullRequestReview(e) => Some(&e.repository),
            Self::PullRequestReviewComment(e) => Some(&e.repository),
            Self::CheckSuite(e) => Some(&e.repository),
            Self::CheckRun(e) => Some(&e.repository),
            Self::WorkflowRun(e) => Some(&e.repository),
        }
    }

    /// Who caused the event, when the payload says.
    pub fn sender(&self) -> Option<&User> {
        match self {
            Self::Unknown { .. } => None,
            Self::Ping(e) => e.sender.as_ref(),
            Self::Issues(e) => e.sender.as_ref(),
            Self::IssueComment(e) => e.sender.as_ref(),
            Self::PullRequest(e) => e.sender.as_ref(),
            Self::PullRequestReview(e) => e.sender.as_ref(),
            Self::PullRequestReviewComment(e) => e.sender.as_ref(),
            Self::CheckSuite(e) => e.sender.as_ref(),
            Self::CheckRun(e) => e.sender.as_ref(),
            Self::WorkflowRun(e) => e.sender.as_ref(),
            Self::Installation(e) => e.sender.as_ref(),
            Self::InstallationRepositories(e) => e.sender.as_ref(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Why a webhook body could not be read. Every variant names the event (or `webhook`
/// for [`envelope`]) and the 1-based line and the column where the reader stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON.
    #[error("{event} payload is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// `X-GitHub-Event` name, or `webhook`.
        event: String,
        /// What the JSON reader said.
        message: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// The body ends early: empty or truncated.
    #[error("{event} payload is empty or truncated: {message} (line {line}, column {column})")]
    Truncated {
        /// `X-GitHub-Event` name, or `webhook`.
        event: String,
        /// What the JSON reader said.
        message: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// Valid JSON that does not have the shape of this event.
    #[error("{event} payload: {message} at {path} (line {line}, column {column})")]
    Shape {
        /// `X-GitHub-Event` name, or `webhook`.
        event: String,
        /// What did not fit, e.g. "missing field `number`".
        message: String,
        /// Where, e.g. `issue` or `issue.labels[0].name`; `(root)` for the top level.
        path: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
}

impl ParseError {
    /// The event name the error is about (`webhook` for [`envelope`]).
    pub fn event(&self) -> &str {
        match self {
            Self::Syntax { event, .. }
            | Self::Truncated { event, .. }
            | Self::Shape { event, .. } => event,
        }
    }

    fn from_json(event: &str, body: &[u8], error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let message = json_message(error);
        let event = event.to_owned();
        match error.classify() {
            serde_json::error::Category::Eof => Self::Truncated {
                event,
                message,
                line,
                column,
            },
            serde_json::error::Category::Data => {
                let offset = byte_offset(body, line, column);
                Self::Shape {
                    event,
                    path: json_path_at(body, offset),
                    message,
                    line,
                    column,
                }
            }
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => Self::Syntax {
                event,
                message,
                line,
                column,
            },
        }
    }
}

/// serde_json's message without its trailing " at line L column C".
fn json_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => full,
    }
}

/// Reads one known event's body into its [`Event`] variant.
type Decoder = fn(&str, &[u8]) -> Result<Event, ParseError>;

/// Every event [`parse`] understands, with its decoder: the one list of them. The setup
/// flow's manifest is checked against it (see [`parsed_events`]), so an event parsed here
/// but not subscribed to, or subscribed to but not parsed, fails a test.
const DECODERS: &[(&str, Decoder)] = &[
    (event_name::PING, |e, b| Ok(Event::Ping(decode(e, b)?))),
    (event_name::ISSUES, |e, b| Ok(Event::Issues(decode(e, b)?))),
    (event_name::ISSUE_COMMENT, |e, b| {
        Ok(Event::IssueComment(decode(e, b)?))
    }),
    (event_name::PULL_REQUEST, |e, b| {
        Ok(Event::PullRequest(decode(e, b)?))
    }),
    (event_name::PULL_REQUEST_REVIEW, |e, b| {
        Ok(Event::PullRequestReview(decode(e, b)?))
    }),
    (event_name::PULL_REQUEST_REVIEW_COMMENT, |e, b| {
        Ok(Event::PullRequestReviewComment(decode(e, b)?))
    }),
    (event_name::CHECK_SUITE, |e, b| {
        Ok(Event::CheckSuite(decode(e, b)?))
    }),
    (event_name::CHECK_RUN, |e, b| {
        Ok(Event::CheckRun(decode(e, b)?))
    }),
    (event_name::WORKFLOW_RUN, |e, b| {
        Ok(Event::WorkflowRun(decode(e, b)?))
    }),
    (event_name::INSTALLATION, |e, b| {
        Ok(Event::Installation(decode(e, b)?))
    }),
    (event_name::INSTALLATION_REPOSITORIES, |e, b| {
        Ok(Event::InstallationRepositories(decode(e, b)?))
    }),
];

/// The `X-GitHub-Event` names [`parse`] reads into a typed [`Event`]; every other name is
/// [`Event::Unknown`].
pub fn parsed_events() -> impl Iterator<Item = &'static str> {
    DECODERS.iter().map(|(name, _)| *name)
}

/// Parses a webhook body into an [`Event`]. `event` is the `X-GitHub-Event` header.
/// Unknown event names give [`Event::Unknown`] without reading the body.
pub fn parse(event: &str, body: &[u8]) -> Result<Event, ParseError> {
    match DECODERS.iter().find(|(name, _)| *name == event) {
        Some((_, decoder)) => decoder(event, body),
        None => Ok(Event::Unknown {
            event: event.to_owned(),
        }),
    }
}

fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<Box<T>, ParseError> {
    serde_json::from_slice(body)
        .map(Box::new)
        .map_err(|error| ParseError::from_json(event, body, &error))
}

// ---------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------

/// The few fields the HTTP ingress stores with every delivery, whatever the event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `action`, when it is a string.
    pub action: Option<String>,
    /// `installation.id`, when it is an integer.
    pub installation_id: Option<i64>,
    /// `repository.id`, when it is an integer.
    pub repository_id: Option<i64>,
    /// `repository.full_name`, when it is a string.
    pub repository_full_name: Option<String>,
}

/// Reads the [`Envelope`] of any webhook body. Skips everything else without building
/// it, and ignores fields of unexpected types; fails only when the body is not a JSON
/// object.
pub fn envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    reader
        .deserialize_map(EnvelopeVisitor)
        .and_then(|envelope| reader.end().map(|()| envelope))
        .map_err(|error| ParseError::from_json(ENVELOPE_SUBJECT, body, &error))
}

/// Top-level keys the envelope reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EnvelopeField {
    Action,
    Installation,
    Repository,
    #[serde(other)]
    Other,
}

/// Keys the envelope reads inside `installation` and `repository`.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum NestedField {
    Id,
    FullName,
    #[serde(other)]
    Other,
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope, M::Error> {
        let mut envelope = Envelope::default();
        while let Some(field) = map.next_key::<EnvelopeField>()? {
            match field {
                EnvelopeField::Action => envelope.action = map.next_value::<Loose>()?.text(),
                EnvelopeField::Installation => {
                    envelope.installation_id = map.next_value::<Loose>()?.object_id();
                }
                EnvelopeField::Repository => {
                    let repository = map.next_value::<Loose>()?;
                    envelope.repository_id = repository.object_id();
                    envelope.repository_full_name = repository.object_full_name();
                }
                EnvelopeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// Any JSON value, keeping only what the envelope may want from it.
enum Loose {
    Text(String),
    Integer(i64),
    Object {
        id: Option<i64>,
        full_name: Option<String>,
    },
    Other,
}

impl Loose {
    fn text(self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    fn object_id(&self) -> Option<i64> {
        match self {
            Self::Object { id, .. } => *id,
            _ => None,
        }
    }

    fn object_full_name(self) -> Option<String> {
        match self {
            Self::Object { full_name, .. } => full_name,
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Loose, E> {
        Ok(Loose::Integer(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Loose, E> {
        Ok(i64::try_from(value).map_or(Loose::Other, Loose::Integer))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Loose, E> {
        Ok(Loose::Text(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Loose, E> {
        Ok(Loose::Text(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Loose, D::Error> {
        Loose::deserialize(deserializer)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Loose, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Loose, M::Error> {
        let (mut id, mut full_name) = (None, None);
        while let Some(field) = map.next_key::<NestedField>()? {
            match field {
                NestedField::Id => {
                    if let Loose::Integer(value) = map.next_value::<Loose>()? {
                        id = Some(value);
                    }
                }
                NestedField::FullName => full_name = map.next_value::<Loose>()?.text(),
                NestedField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Loose::Object { id, full_name })
    }
}

// ---------------------------------------------------------------------------------------
// Error paths
// ---------------------------------------------------------------------------------------

/// The byte offset of serde_json's (1-based line, column) position: the column counts
/// bytes read on that line.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let Some(lines_before) = line.checked_sub(1) else {
        return 0;
    };
    let line_start = if lines_before == 0 {
        0
    } else {
        match body
            .iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == b'\n')
            .nth(lines_before - 1)
        {
            Some((newline, _)) => newline + 1,
            None => return body.len(),
        }
    };
    line_start.saturating_add(column).min(body.len())
}

/// One open container while scanning JSON text.
enum Frame {
    Object {
        key: Option<String>,
        awaiting_key: bool,
    },
    Array {
        index: usize,
    },
}

/// The JSON path (`issue.labels[0].name`) of the value being read at byte `offset`,
/// found by scanning the text before it. serde_json reports a data error after the
/// offending value: after a wrong-typed scalar (its key is still open), or after the
/// `}` / `]` of an object missing a field or an array of the wrong length (so the path
/// is that object's or array's own). Only used on errors, so it may be slow, but it
/// must be total: it tolerates any bytes.
fn json_path_at(body: &[u8], offset: usize) -> String {
    let end = offset.min(body.len());
    // Bounded, whatever the body: the first MAX_PATH_DEPTH levels are kept, deeper ones
    // only counted, and keys are cut short.
    let mut stack: Vec<Frame> = Vec::new();
    let mut deeper = 0usize;
    let mut i = 0;
    while i < end {
        match body[i] {
            b'{' | b'[' if stack.len() >= MAX_PATH_DEPTH => deeper += 1,
            b'{' => stack.push(Frame::Object {
                key: None,
                awaiting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' if deeper > 0 => deeper -= 1,
            b'}' | b']' => {
                stack.pop();
            }
            b',' if deeper == 0 => match stack.last_mut() {
                Some(Frame::Object { awaiting_key, .. }) => *awaiting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b':' if deeper == 0 => {
                if let Some(Frame::Object { awaiting_key, .. }) = stack.last_mut() {
                    *awaiting_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                let close = string_end(body, start, end);
                if deeper == 0
                    && let Some(Frame::Object {
                        key,
                        awaiting_key: true,
                    }) = stack.last_mut()
                {
                    let text = &body[start..close.min(start + MAX_PATH_KEY)];
                    let mut name = String::from_utf8_lossy(text).into_owned();
                    if close - start > MAX_PATH_KEY {
                        name.push('…');
                    }
                    *key = Some(name);
                }
                i = close;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = render_path(&stack);
    if deeper > 0 {
        path.push_str(&format!("…({deeper} levels deeper)"));
    }
    path
}

/// Levels of a JSON path kept when reporting where a payload went wrong.
const MAX_PATH_DEPTH: usize = 32;
/// Bytes of one key kept in a reported JSON path.
const MAX_PATH_KEY: usize = 100;

/// Index of the quote closing a JSON string whose text starts at `start`, or `end`.
fn string_end(body: &[u8], start: usize, end: usize) -> usize {
    let mut j = start;
    while j < end {
        match body[j] {
            b'\\' => j += 2,
            b'"' => return j,
            _ => j += 1,
        }
    }
    end
}

fn render_path(stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object {
                key: Some(key),
                awaiting_key: false,
            } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { .. } => {}
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    if path.is_empty() {
        ROOT_PATH.to_owned()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};

    /// Event/action pairs foreman handles; everything else must parse as Unknown.
    const SUPPORTED: &[(&str, &str)] = &[
        ("issues", "opened"),
        ("issues", "edited"),
        ("issues", "labeled"),
        ("issues", "unlabeled"),
        ("issues", "closed"),
        ("issues", "reopened"),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
        ("issue_comment", "deleted"),
        ("pull_request", "opened"),
        ("pull_request", "closed"),
        ("pull_request", "reopened"),
        ("pull_request", "synchronize"),
        ("pull_request", "edited"),
        ("pull_request_review", "submitted"),
        ("pull_request_review_comment", "created"),
        ("check_suite", "completed"),
        ("check_run", "completed"),
        ("workflow_run", "completed"),
        ("installation", "created"),
        ("installation", "deleted"),
        ("installation", "suspend"),
        ("installation", "unsuspend"),
        ("installation_repositories", "added"),
        ("installation_repositories", "removed"),
    ];

    /// Fewest fixture files expected, so an empty or misplaced folder fails loudly.
    const MIN_FIXTURES: usize = 30;
    /// Step between truncation points in the no-panic sweep.
    const TRUNCATION_STEP: usize = 211;

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhooks")
    }

    /// Every `*.json` fixture as (file name, body), sorted by name.
    fn fixtures() -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixture_dir())
            .expect("fixture dir")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).expect("read fixture"))
            })
            .collect();
        files.sort();
        files
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn fixture_value(name: &str) -> Value {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    /// `issues.opened.2.json` → ("issues", Some("opened")); `ping.2.json` → ("ping", None).
    fn name_parts(file: &str) -> (&str, Option<&str>) {
        let stem = file.strip_suffix(".json").unwrap();
        let mut parts = stem.split('.');
        let event = parts.next().unwrap();
        let action = parts
            .next()
            .filter(|part| !part.chars().all(|c| c.is_ascii_digit()));
        (event, action)
    }

    fn parse_value(event: &str, value: &Value) -> Result<Event, ParseError> {
        parse(event, &serde_json::to_vec(value).unwrap())
    }

    fn parse_fixture(name: &str) -> Event {
        let (event, _) = name_parts(name);
        parse(event, &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_fixture_parses_with_the_right_variant_and_action() {
        let files = fixtures();
        assert!(files.len() >= MIN_FIXTURES, "only {} fixtures", files.len());
        for (name, body) in &files {
            let (event_name, action) = name_parts(name);
            let raw: Value = serde_json::from_slice(body).unwrap();
            let event = parse(event_name, body).unwrap_or_else(|e| panic!("{name}: {e}"));

            assert_eq!(event.name(), event_name, "{name}");
            assert_eq!(event.action(), action, "{name}");
            assert_eq!(event.action(), raw["action"].as_str(), "{name}");
            let supported = match action {
                None => true,
                Some(action) => SUPPORTED.contains(&(event_name, action)),
            };
            assert_eq!(event.is_known_action(), supported, "{name}");

            assert_eq!(
                event.installation_id(),
                raw["installation"]["id"].as_i64(),
                "{name}"
            );
            assert_eq!(
                event.repository().map(|r| r.id),
                raw["repository"]["id"].as_i64(),
                "{name}"
            );
            assert_eq!(
                event.repository().map(|r| r.full_name.as_str()),
                raw["repository"]["full_name"].as_str(),
                "{name}"
            );
            assert_eq!(
                event.sender().map(|s| s.login.as_str()),
                raw["sender"]["login"].as_str(),
                "{name}"
            );
        }
    }

    #[test]
    fn every_parsed_event_has_a_fixture_read_as_its_own_variant() {
        let fixtures = fixtures();
        for name in parsed_events() {
            let (_, body) = fixtures
                .iter()
                .find(|(file, _)| name_parts(file).0 == name)
                .unwrap_or_else(|| panic!("no recorded payload for `{name}`"));
            let event = parse(name, body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event.name(), name);
        }
        assert!(matches!(
            parse("star", b"{}").unwrap(),
            Event::Unknown { .. }
        ));
    }

    #[test]
    fn envelope_matches_every_fixture() {
        for (name, body) in fixtures() {
            let raw: Value = serde_json::from_slice(&body).unwrap();
            let envelope = envelope(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = Envelope {
                action: raw["action"].as_str().map(str::to_owned),
                installation_id: raw["installation"]["id"].as_i64(),
                repository_id: raw["repository"]["id"].as_i64(),
                repository_full_name: raw["repository"]["full_name"].as_str().map(str::to_owned),
            };
            assert_eq!(envelope, expected, "{name}");
        }
    }

    #[test]
    fn issues_fixtures_carry_real_values() {
        let Event::Issues(opened) = parse_fixture("issues.opened.json") else {
            panic!("not issues")
        };
        assert_eq!(opened.action, IssuesAction::Opened);
        assert_eq!(opened.issue.number, 1);
        assert_eq!(opened.issue.title, "Spelling error in the README file");
        assert!(
            opened
                .issue
                .body
                .starts_with("It looks like you accidently")
        );
        assert_eq!(opened.issue.state.as_deref(), Some("open"));
        assert_eq!(opened.issue.author_association.as_deref(), Some("OWNER"));
        assert!(opened.issue.has_label("BUG"));
        assert!(!opened.issue.is_pull_request());
        assert_eq!(opened.installation, None);
        assert_eq!(opened.repository.full_name, "Codertocat/Hello-World");
        assert_eq!(opened.repository.owner_login(), Some("Codertocat"));
        assert_eq!(opened.repository.default_branch.as_deref(), Some("master"));
        assert_eq!(opened.repository.private, Some(false));
        assert_eq!(
            opened.repository.clone_url.as_deref(),
            Some("https://github.com/Codertocat/Hello-World.git")
        );
        assert!(!opened.sender.as_ref().unwrap().is_bot());

        let Event::Issues(null_body) = parse_fixture("issues.opened.2.json") else {
            panic!("not issues")
        };
        assert_eq!(null_body.issue.body, "");

        let Event::Issues(labeled) = parse_fixture("issues.labeled.json") else {
            panic!("not issues")
        };
        assert_eq!(labeled.action.kind(), IssuesAction::Labeled);
        assert_eq!(labeled.label.as_ref().map(|l| l.name.as_str()), Some("bug"));

        let Event::Issues(unlabeled) = parse_fixture("issues.unlabeled.json") else {
            panic!("not issues")
        };
        assert_eq!(unlabeled.action, IssuesAction::Unlabeled);
        assert_eq!(
            unlabeled.label.as_ref().map(|l| l.name.as_str()),
            Some("bug")
        );

        let reopened = parse_fixture("issues.reopened.json");
        assert_eq!(reopened.installation_id(), Some(1));

        let Event::Issues(edited) = parse_fixture("issues.edited.json") else {
            panic!("not issues")
        };
        assert_eq!(edited.action, IssuesAction::Edited);
        assert_eq!(edited.changes, Some(json!({})));

        let Event::Issues(pinned) = parse_fixture("issues.pinned.json") else {
            panic!("not issues")
        };
        assert_eq!(pinned.action, IssuesAction::Unknown);
        assert_eq!(pinned.action.as_str(), "pinned");
        assert_eq!(pinned.issue.state, None);
        assert!(pinned.issue.labels.is_empty());
    }

    #[test]
    fn issue_comment_fixtures_carry_real_values() {
        let Event::IssueComment(created) = parse_fixture("issue_comment.created.json") else {
            panic!("not issue_comment")
        };
        assert_eq!(created.action, IssueCommentAction::Created);
        assert!(!created.is_pull_request());
        assert_eq!(created.comment.id, 492700400);
        assert!(created.comment.body.starts_with("You are totally right!"));
        assert_eq!(created.comment.user.as_ref().unwrap().login, "Codertocat");
        assert_eq!(created.comment.author_association.as_deref(), Some("OWNER"));
        assert_eq!(
            created.comment.created_at.as_deref(),
            Some("2019-05-15T15:20:21Z")
        );
        assert_eq!(created.installation, None);

        let with_installation = parse_fixture("issue_comment.created.2.json");
        assert_eq!(with_installation.installation_id(), Some(1));

        let Event::IssueComment(edited) = parse_fixture("issue_comment.edited.json") else {
            panic!("not issue_comment")
        };
        assert_eq!(edited.action, IssueCommentAction::Edited);
        assert_eq!(
            edited.changes.as_ref().unwrap()["body"]["from"],
            "You are totally right! I'll get this fixed right away."
        );

        let Event::IssueComment(deleted) = parse_fixture("issue_comment.deleted.json") else {
            panic!("not issue_comment")
        };
        assert_eq!(deleted.action, IssueCommentAction::Deleted);
    }

    /// The package has no comment on a pull request: add the marker GitHub sends.
    #[test]
    fn issue_comment_on_a_pull_request_is_marked() {
        let mut value = fixture_value("issue_comment.created.json");
        value["issue"]["pull_request"] = json!({
            "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
            "html_url": "https://github.com/Codertocat/Hello-World/pull/1",
            "diff_url": "https://github.com/Codertocat/Hello-World/pull/1.diff",
            "patch_url": "https://github.com/Codertocat/Hello-World/pull/1.patch",
            "merged_at": null
        });
        let Event::IssueComment(comment) = parse_value("issue_comment", &value).unwrap() else {
            panic!("not issue_comment")
        };
        assert!(comment.is_pull_request());
        let marker = comment.issue.pull_request.as_ref().unwrap();
        assert_eq!(
            marker.html_url.as_deref(),
            Some("https://github.com/Codertocat/Hello-World/pull/1")
        );
        assert_eq!(marker.merged_at, None);
    }

    #[test]
    fn pull_request_fixtures_carry_real_values() {
        let Event::PullRequest(opened) = parse_fixture("pull_request.opened.json") else {
            panic!("not pull_request")
        };
        let pr = &opened.pull_request;
        assert_eq!(opened.action, PullRequestAction::Opened);
        assert_eq!(pr.number, 2);
        assert_eq!(pr.title, "Update the README with new information.");
        assert_eq!(pr.head.ref_name, "changes");
        assert_eq!(pr.head.sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(
            pr.head.repo.as_ref().unwrap().full_name.as_deref(),
            Some("Codertocat/Hello-World")
        );
        assert_eq!(pr.base.ref_name, "master");
        assert_eq!(pr.mergeable, None);
        assert_eq!(pr.mergeable_state.as_deref(), Some("unknown"));
        assert!(!pr.draft);
        assert!(!pr.is_merged());
        assert_eq!(opened.installation, None);

        let Event::PullRequest(closed) = parse_fixture("pull_request.closed.json") else {
            panic!("not pull_request")
        };
        assert_eq!(closed.action, PullRequestAction::Closed);
        assert_eq!(closed.pull_request.state.as_deref(), Some("closed"));
        assert_eq!(closed.pull_request.merged, Some(false));
        assert!(!closed.pull_request.is_merged());
        assert!(closed.pull_request.has_label("bug"));
        assert_eq!(closed.installation, Some(InstallationRef { id: 1 }));

        let Event::PullRequest(sync) = parse_fixture("pull_request.synchronize.json") else {
            panic!("not pull_request")
        };
        assert_eq!(sync.action, PullRequestAction::Synchronize);

        let Event::PullRequest(reopened) = parse_fixture("pull_request.reopened.json") else {
            panic!("not pull_request")
        };
        assert_eq!(reopened.action, PullRequestAction::Reopened);
    }

    /// The package has no merged close: set what GitHub sets on a merge.
    #[test]
    fn merged_pull_request_is_merged() {
        let mut value = fixture_value("pull_request.closed.json");
        value["pull_request"]["merged"] = json!(true);
        value["pull_request"]["merged_at"] = json!("2019-05-15T15:20:33Z");
        let Event::PullRequest(closed) = parse_value("pull_request", &value).unwrap() else {
            panic!("not pull_request")
        };
        assert!(closed.pull_request.is_merged());
        assert_eq!(
            closed.pull_request.merged_at.as_deref(),
            Some("2019-05-15T15:20:33Z")
        );
    }

    /// The package has no `issues`/`closed` or `pull_request`/`edited`: rename a recorded
    /// action.
    #[test]
    fn actions_missing_from_the_package_parse() {
        let mut issue = fixture_value("issues.reopened.json");
        issue["action"] = json!("closed");
        let Event::Issues(closed) = parse_value("issues", &issue).unwrap() else {
            panic!("not issues")
        };
        assert_eq!(closed.action, IssuesAction::Closed);

        let mut pr = fixture_value("pull_request.opened.json");
        pr["action"] = json!("edited");
        pr["changes"] = json!({"title": {"from": "Old title"}});
        let Event::PullRequest(edited) = parse_value("pull_request", &pr).unwrap() else {
            panic!("not pull_request")
        };
        assert_eq!(edited.action, PullRequestAction::Edited);
        assert_eq!(edited.changes.unwrap()["title"]["from"], "Old title");
    }

    #[test]
    fn review_fixtures_carry_real_values() {
        let Event::PullRequestReview(submitted) =
            parse_fixture("pull_request_review.submitted.json")
        else {
            panic!("not pull_request_review")
        };
        assert_eq!(submitted.action, PullRequestReviewAction::Submitted);
        assert_eq!(submitted.review.id, 237895671);
        assert_eq!(submitted.review.state, ReviewState::Commented);
        assert_eq!(submitted.review.body, "");
        assert_eq!(
            submitted.review.commit_id.as_deref(),
            Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
        );
        assert_eq!(submitted.pull_request.number, 2);
        assert_eq!(submitted.pull_request.merged, None);
        assert_eq!(submitted.installation, None);

        let dismissed = parse_fixture("pull_request_review.dismissed.json");
        let Event::PullRequestReview(review) = &dismissed else {
            panic!("not pull_request_review")
        };
        assert_eq!(review.action, PullRequestReviewAction::Unknown);
        assert_eq!(review.review.state, ReviewState::Dismissed);
        assert!(!dismissed.is_known_action());

        let Event::PullRequestReviewComment(old) =
            parse_fixture("pull_request_review_comment.created.json")
        else {
            panic!("not pull_request_review_comment")
        };
        assert_eq!(old.action, PullRequestReviewCommentAction::Created);
        assert_eq!(old.comment.path.as_deref(), Some("README.md"));
        assert_eq!(old.comment.line, None);
        assert_eq!(old.comment.pull_request_review_id, Some(237895671));
        assert_eq!(
            old.comment.diff_hunk.as_deref(),
            Some("@@ -1 +1 @@\n-# Hello-World")
        );
        assert_eq!(old.comment.in_reply_to_id, None);

        let Event::PullRequestReviewComment(new) =
            parse_fixture("pull_request_review_comment.created.2.json")
        else {
            panic!("not pull_request_review_comment")
        };
        assert_eq!(new.comment.line, Some(265));
        assert_eq!(new.comment.original_line, Some(265));
    }

    #[test]
    fn review_state_accepts_rest_spelling() {
        let state: ReviewState = serde_json::from_str("\"CHANGES_REQUESTED\"").unwrap();
        assert_eq!(state, ReviewState::ChangesRequested);
        let state: ReviewState = serde_json::from_str("\"changes_requested\"").unwrap();
        assert_eq!(state, ReviewState::ChangesRequested);
        let state: ReviewState = serde_json::from_str("\"something_new\"").unwrap();
        assert_eq!(state, ReviewState::Unknown);
    }

    #[test]
    fn check_fixtures_carry_real_values() {
        let Event::CheckSuite(suite) = parse_fixture("check_suite.completed.json") else {
            panic!("not check_suite")
        };
        assert_eq!(suite.action, CompletedAction::Completed);
        assert_eq!(suite.check_suite.id, 118578147);
        assert_eq!(suite.check_suite.conclusion, Some(Conclusion::Success));
        assert_eq!(suite.check_suite.head_branch.as_deref(), Some("changes"));
        let pr = &suite.check_suite.pull_requests[0];
        assert_eq!(pr.number, 2);
        assert_eq!(pr.head.sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert_eq!(pr.head.ref_name, "changes");
        assert_eq!(pr.base.ref_name, "master");
        assert_eq!(pr.head.repo.as_ref().unwrap().full_name, None);

        let Event::CheckSuite(no_prs) = parse_fixture("check_suite.completed.2.json") else {
            panic!("not check_suite")
        };
        assert!(no_prs.check_suite.pull_requests.is_empty());

        let rerequested = parse_fixture("check_suite.rerequested.json");
        let sender = rerequested.sender().unwrap();
        assert_eq!(sender.login, "octocoders-linter[bot]");
        assert!(sender.is_bot());
        assert!(!rerequested.is_known_action());

        let Event::CheckRun(run) = parse_fixture("check_run.completed.json") else {
            panic!("not check_run")
        };
        assert_eq!(run.check_run.name, "Octocoders-linter");
        assert_eq!(run.check_run.conclusion, Some(Conclusion::Failure));
        assert!(run.check_run.conclusion.unwrap().is_failure());
        assert_eq!(
            run.check_run.check_suite,
            Some(CheckSuiteRef { id: 118578147 })
        );
        assert_eq!(
            run.check_run.details_url.as_deref(),
            Some("https://octocoders.io")
        );
        let output = run.check_run.output.as_ref().unwrap();
        assert_eq!(
            (output.title.as_deref(), output.summary.as_deref()),
            (None, None)
        );
        assert_eq!(run.check_run.pull_requests[0].number, 2);

        let Event::CheckRun(rerun) = parse_fixture("check_run.rerequested.json") else {
            panic!("not check_run")
        };
        assert_eq!(rerun.action, CompletedAction::Unknown);
        let output = rerun.check_run.output.as_ref().unwrap();
        assert_eq!(output.title.as_deref(), Some("Report"));
        assert_eq!(output.summary.as_deref(), Some("It's all good."));
        assert_eq!(rerun.check_run.conclusion, Some(Conclusion::Neutral));
        assert_eq!(rerun.installation, Some(InstallationRef { id: 1 }));
    }

    #[test]
    fn workflow_run_fixtures_carry_real_values() {
        let Event::WorkflowRun(done) = parse_fixture("workflow_run.completed.json") else {
            panic!("not workflow_run")
        };
        let run = &done.workflow_run;
        assert_eq!(done.action, CompletedAction::Completed);
        assert_eq!(run.status.as_deref(), Some("completed"));
        assert_eq!(run.conclusion, Some(Conclusion::Success));
        assert_eq!(run.pull_requests[0].number, 2);
        assert!(run.logs_url.as_deref().unwrap().ends_with("/logs"));

        // Recorded as `completed` while the run says `queued`: trust the run's fields.
        let Event::WorkflowRun(odd) = parse_fixture("workflow_run.completed.2.json") else {
            panic!("not workflow_run")
        };
        assert_eq!(odd.action, CompletedAction::Completed);
        assert_eq!(odd.workflow_run.status.as_deref(), Some("queued"));
        assert_eq!(odd.workflow_run.conclusion, None);
        assert_eq!(
            odd.workflow_run.name.as_deref(),
            Some("Manually triggered workflow")
        );
    }

    #[test]
    fn installation_fixtures_carry_real_values() {
        let Event::Installation(created) = parse_fixture("installation.created.json") else {
            panic!("not installation")
        };
        assert_eq!(created.action, InstallationAction::Created);
        assert_eq!(created.installation.id, 957387);
        let account = created.installation.account.as_ref().unwrap();
        assert_eq!(account.name(), Some("Codertocat"));
        assert_eq!(account.kind.as_deref(), Some("User"));
        assert_eq!(
            created.installation.repository_selection.as_deref(),
            Some("selected")
        );
        assert_eq!(created.repositories[0].full_name, "Codertocat/Hello-World");
        assert_eq!(created.repositories[0].private, Some(false));

        let Event::Installation(suspended) = parse_fixture("installation.suspend.json") else {
            panic!("not installation")
        };
        assert_eq!(suspended.action, InstallationAction::Suspend);
        assert_eq!(
            suspended.installation.suspended_at.as_deref(),
            Some("2021-04-29T02:32:50Z")
        );
        assert!(suspended.repositories.is_empty());

        let Event::Installation(unsuspended) = parse_fixture("installation.unsuspend.json") else {
            panic!("not installation")
        };
        assert_eq!(unsuspended.action, InstallationAction::Unsuspend);
        assert_eq!(unsuspended.installation.suspended_at, None);

        let Event::Installation(deleted) = parse_fixture("installation.deleted.json") else {
            panic!("not installation")
        };
        assert_eq!(deleted.action, InstallationAction::Deleted);
        assert_eq!(deleted.installation.id, 2);

        let Event::InstallationRepositories(added) =
            parse_fixture("installation_repositories.added.json")
        else {
            panic!("not installation_repositories")
        };
        assert_eq!(added.action, InstallationRepositoriesAction::Added);
        assert_eq!(added.repositories_added[0].full_name, "Codertocat/Space");
        assert!(added.repositories_removed.is_empty());
        assert_eq!(added.repository_selection.as_deref(), Some("selected"));

        let Event::InstallationRepositories(removed) =
            parse_fixture("installation_repositories.removed.json")
        else {
            panic!("not installation_repositories")
        };
        assert_eq!(removed.action, InstallationRepositoriesAction::Removed);
        assert_eq!(
            removed.repositories_removed[0].full_name,
            "octocat/Hello-World"
        );
    }

    #[test]
    fn ping_fixtures_carry_real_values() {
        let Event::Ping(app) = parse_fixture("ping.json") else {
            panic!("not ping")
        };
        assert_eq!(
            app.zen.as_deref(),
            Some("Anything added dilutes everything else.")
        );
        assert_eq!(app.hook_id, Some(109948940));
        let hook = app.hook.as_ref().unwrap();
        assert_eq!(hook.app_id, Some(29310));
        assert_eq!(
            hook.config.as_ref().unwrap().content_type.as_deref(),
            Some("json")
        );
        assert!(app.repository.is_some());

        let org = parse_fixture("ping.2.json");
        let Event::Ping(ping) = &org else {
            panic!("not ping")
        };
        assert_eq!(
            ping.hook.as_ref().unwrap().kind.as_deref(),
            Some("Organization")
        );
        assert_eq!(org.repository(), None);
        assert_eq!(org.action(), None);
        assert!(org.is_known_action());
    }

    #[test]
    fn payload_without_installation_parses() {
        let mut value = fixture_value("issues.reopened.json");
        value.as_object_mut().unwrap().remove("installation");
        let body = serde_json::to_vec(&value).unwrap();
        let event = parse("issues", &body).unwrap();
        assert_eq!(event.installation_id(), None);
        assert_eq!(envelope(&body).unwrap().installation_id, None);
    }

    #[test]
    fn unknown_action_falls_back_and_keeps_the_raw_string() {
        let mut value = fixture_value("issues.opened.json");
        value["action"] = json!("frobnicated");
        let event = parse_value("issues", &value).unwrap();
        assert_eq!(event.action(), Some("frobnicated"));
        assert!(!event.is_known_action());
        let Event::Issues(issues) = event else {
            panic!("not issues")
        };
        assert_eq!(issues.action.kind(), IssuesAction::Unknown);
    }

    #[test]
    fn unknown_event_does_not_read_the_body() {
        let event = parse("star", b"not json at all").unwrap();
        assert_eq!(
            event,
            Event::Unknown {
                event: "star".to_owned()
            }
        );
        assert_eq!(event.name(), "unknown");
        assert_eq!(event.action(), None);
        assert!(!event.is_known_action());
        assert_eq!(event.installation_id(), None);
        assert_eq!(event.repository(), None);
        assert_eq!(event.sender(), None);
    }

    #[test]
    fn truncated_body_is_a_clear_error() {
        let body = fixture("issues.opened.json");
        let error = parse("issues", &body[..body.len() / 2]).unwrap_err();
        assert!(matches!(error, ParseError::Truncated { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with("issues payload is empty or truncated: EOF while parsing"));
        assert_eq!(error.event(), "issues");

        let error = parse("issue_comment", b"").unwrap_err();
        assert!(matches!(error, ParseError::Truncated { .. }), "{error:?}");
        assert!(envelope(&body[..body.len() / 2]).is_err());
    }

    #[test]
    fn non_json_body_is_a_clear_error() {
        let error = parse("pull_request", b"<html>502 Bad Gateway</html>").unwrap_err();
        assert!(matches!(error, ParseError::Syntax { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "pull_request payload is not valid JSON: expected value (line 1, column 1)"
        );
        let error = parse("ping", b"{\"zen\": \"x\"} trailing").unwrap_err();
        assert!(matches!(error, ParseError::Syntax { .. }), "{error:?}");
        assert!(envelope(b"<html>").is_err());
    }

    #[test]
    fn wrong_typed_field_names_its_path() {
        for pretty in [false, true] {
            let encode = |value: &Value| {
                if pretty {
                    serde_json::to_vec_pretty(value).unwrap()
                } else {
                    serde_json::to_vec(value).unwrap()
                }
            };
            let mut value = fixture_value("issues.opened.json");
            value["issue"]["number"] = json!("one");
            let error = parse("issues", &encode(&value)).unwrap_err();
            let ParseError::Shape { path, message, .. } = &error else {
                panic!("{error:?}")
            };
            assert_eq!(path, "issue.number", "{error}");
            assert!(
                message.starts_with("invalid type: string \"one\""),
                "{error}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with("issues payload: invalid type")
            );

            let mut value = fixture_value("issues.opened.json");
            value["issue"]["labels"][0]["name"] = json!(5);
            let error = parse("issues", &encode(&value)).unwrap_err();
            let ParseError::Shape { path, .. } = &error else {
                panic!("{error:?}")
            };
            assert_eq!(path, "issue.labels[0].name", "{error}");

            let mut value = fixture_value("issues.opened.json");
            value["issue"]["title"] = json!({"nested": [1, 2]});
            let error = parse("issues", &encode(&value)).unwrap_err();
            let ParseError::Shape { path, .. } = &error else {
                panic!("{error:?}")
            };
            assert_eq!(path, "issue.title", "{error}");

            let mut value = fixture_value("check_suite.completed.json");
            value["check_suite"]["pull_requests"][0]["head"] = json!([]);
            let error = parse("check_suite", &encode(&value)).unwrap_err();
            let ParseError::Shape { path, .. } = &error else {
                panic!("{error:?}")
            };
            assert_eq!(path, "check_suite.pull_requests[0].head", "{error}");
        }
    }

    #[test]
    fn missing_field_names_its_object() {
        let mut value = fixture_value("issues.opened.json");
        value["issue"].as_object_mut().unwrap().remove("number");
        let error = parse_value("issues", &value).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("issues payload: missing field `number` at issue (line 1, column"),
            "{message}"
        );

        let mut value = fixture_value("issues.opened.json");
        value.as_object_mut().unwrap().remove("repository");
        let error = parse_value("issues", &value).unwrap_err();
        let ParseError::Shape { path, message, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(
            (path.as_str(), message.as_str()),
            ("(root)", "missing field `repository`")
        );

        let mut value = fixture_value("issues.opened.json");
        value["issue"]["labels"][0]
            .as_object_mut()
            .unwrap()
            .remove("name");
        let error = parse("issues", &serde_json::to_vec_pretty(&value).unwrap()).unwrap_err();
        let ParseError::Shape { path, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(path, "issue.labels[0]", "{error}");

        let error = parse("issues", b"[]").unwrap_err();
        assert!(matches!(error, ParseError::Shape { .. }), "{error:?}");
    }

    #[test]
    fn no_input_panics() {
        let mut names = Vec::new();
        for (name, body) in fixtures() {
            let (event, _) = name_parts(&name);
            names.push(event.to_owned());
            for cut in (0..body.len()).step_by(TRUNCATION_STEP) {
                let _ = parse(event, &body[..cut]);
                let _ = envelope(&body[..cut]);
                let mut mangled = body.clone();
                mangled[cut] = b'"';
                let _ = parse(event, &mangled);
                let _ = envelope(&mangled);
            }
        }
        for body in [
            &b"\xff\xfe"[..],
            b"{\"action\":",
            b"\"\\",
            b"[[[[",
            b"{\"a\":\"\\u12",
        ] {
            for name in &names {
                let _ = parse(name, body);
            }
            let _ = envelope(body);
        }
        // The scanner itself, on every cut of an awkward document.
        let awkward = br#"{"a\"b": ["x\\", {"c": 1}], "d": "#;
        for end in 0..=awkward.len() + 1 {
            let _ = json_path_at(awkward, end);
        }
        assert_eq!(json_path_at(awkward, awkward.len()), "d");
        assert_eq!(json_path_at(awkward, 12), "a\\\"b[0]");
    }

    #[test]
    fn the_path_of_a_deep_or_long_keyed_payload_stays_small() {
        let mut deep = br#"{"issue": {"x": "#.to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        let path = json_path_at(&deep, deep.len());
        assert!(path.starts_with("issue.x[0][0]"), "{path}");
        assert!(path.ends_with("levels deeper)"), "{path}");
        assert!(path.len() < 500, "{}", path.len());
        // A missing field after a deep value that closed again: the path is exact.
        let mut closed = br#"{"issue": {"x": "#.to_vec();
        closed.extend(std::iter::repeat_n(b'[', 100_000));
        closed.extend(std::iter::repeat_n(b']', 100_000));
        closed.extend(br#", "y": 1"#);
        assert_eq!(json_path_at(&closed, closed.len()), "issue.y");
        let long = format!(r#"{{"{}": 1"#, "k".repeat(10_000));
        let path = json_path_at(long.as_bytes(), long.len());
        assert_eq!(path, format!("{}…", "k".repeat(100)));
        // The whole parse of such a payload fails with a short error.
        let mut body = br#"{"action": "opened", "issue": {"x": "#.to_vec();
        body.extend(std::iter::repeat_n(b"[1,".as_slice(), 100_000).flatten());
        body.push(b'1');
        body.extend(std::iter::repeat_n(b']', 100_000));
        body.extend(b"}}");
        let error = parse("issues", &body).unwrap_err().to_string();
        assert!(error.len() < 1000, "{error}");
    }

    #[test]
    fn envelope_is_forgiving_but_wants_an_object() {
        let body = br#"{"zen": 1, "action": 5, "installation": "x", "repository": {"id": "7", "full_name": ["a"]}}"#;
        assert_eq!(envelope(body).unwrap(), Envelope::default());

        let body = br#"{"action": "created", "installation": {"id": 42, "account": {"id": 1}},
            "repository": {"owner": {"id": 3, "full_name": "no/no"}, "id": 9, "full_name": "o/r"}}"#;
        assert_eq!(
            envelope(body).unwrap(),
            Envelope {
                action: Some("created".to_owned()),
                installation_id: Some(42),
                repository_id: Some(9),
                repository_full_name: Some("o/r".to_owned()),
            }
        );

        assert_eq!(envelope(b"{}").unwrap(), Envelope::default());
        for not_object in [&b"[]"[..], b"42", b"\"action\"", b"null", b""] {
            let error = envelope(not_object).unwrap_err();
            assert_eq!(error.event(), "webhook", "{error}");
        }
    }

    #[test]
    fn bot_detection_uses_type_or_login_suffix() {
        let user = |login: &str, kind: Option<&str>| User {
            login: login.to_owned(),
            id: 1,
            kind: kind.map(str::to_owned),
        };
        assert!(user("foreman[bot]", Some("User")).is_bot());
        assert!(user("renovate", Some("Bot")).is_bot());
        assert!(user("dependabot[bot]", None).is_bot());
        assert!(!user("octocat", Some("User")).is_bot());
        assert!(!user("bot", None).is_bot());
    }
}
