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

mod actions;
mod checks;
mod common;
mod installations;
mod issues;
mod parse;
mod pulls;

pub use actions::*;
pub use checks::*;
pub use common::*;
pub use installations::*;
pub use issues::*;
pub use parse::*;
pub use pulls::*;

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
