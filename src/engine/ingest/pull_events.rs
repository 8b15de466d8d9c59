//! Webhooks about foreman's pull requests: `pull_request`, the check events (`check_suite`,
//! `check_run`, `workflow_run`) and reviews. Each finds the pull request foreman knows,
//! reads what GitHub says of it now, and hands that to [`crate::engine::objective::pulls`]. Events about pull
//! requests foreman did not make are skipped.

use anyhow::Result;
use octocrab::Octocrab;

use crate::engine::ingest::Ingest;
use crate::engine::ingest::work::{Outcome, Work};
use crate::engine::objective::pulls;
use crate::github::events::{
    CheckRunEvent, CheckSuiteEvent, InstallationRef, PullRequest as PullPayload, PullRequestEvent,
    PullRequestRef, PullRequestReviewCommentEvent, PullRequestReviewEvent, Repository, ReviewState,
    User, WorkflowRunEvent,
};
use crate::github::rest::{self, PullNow};
use crate::model::PullRequest;
use crate::model::pulls::{Mergeable, PullState};
use crate::model::text::{Author, clean, fence};
use crate::store::{AuditEntry, NewPull};

/// The pull request as it is now: read from GitHub, or taken from the payload when foreman
/// cannot ask.
async fn now_of(client: Option<&Octocrab>, repository: &str, pr: &PullPayload) -> Result<PullNow> {
    let number = u64::try_from(pr.number).unwrap_or(0);
    match client {
        Some(client) => Ok(rest::pull(client, repository, number).await?),
        None => Ok(PullNow {
            state: if pr.is_merged() {
                PullState::Merged
            } else if pr.is_closed() {
                PullState::Closed
            } else {
                PullState::Open
            },
            head_sha: pr.head.sha.clone(),
            mergeable: pr.mergeable.map(|clean| {
                if clean {
                    Mergeable::Clean
                } else {
                    Mergeable::Conflicting
                }
            }),
            by: None,
        }),
    }
}

fn audited(
    audit: &impl Fn(&str, String) -> AuditEntry,
    pull: &PullRequest,
    kind: &str,
    detail: String,
) -> AuditEntry {
    let mut entry = audit(kind, detail);
    entry.objective_id = Some(pull.objective_id);
    entry
}

/// `pull_request`: a pull request from a foreman branch is recorded (adopted, when an agent
/// opened it some other way), and what changed about it is acted on.
pub async fn pull_request(
    ingest: &Ingest,
    work: &mut Work<'_>,
    e: &PullRequestEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let pr = &e.pull_request;
    let repository = &e.repository.full_name;
    let number = u64::try_from(pr.number).unwrap_or(0);
    let store = work.store();
    let known = store.pull_by_number(repository, number).await?;
    let workspace = match &known {
        Some(_) => None,
        None => match store
            .workspace_by_branch(repository, &pr.head.ref_name)
            .await?
        {
            Some(w) => Some(w),
            None => {
                return Ok(Outcome::Skipped(format!(
                    "pull request #{number} is not from a foreman branch"
                )));
            }
        },
    };
    let client = ingest
        .github
        .installation_client(e.installation.map(|i| i.id), repository)
        .await?;
    let mut now_is = now_of(client.as_ref(), repository, pr).await?;
    if now_is.state == PullState::Closed {
        // GitHub's pull request says who merged it, not who closed it: the sender did.
        now_is.by = e.sender.as_ref().map(|s| s.login.clone());
    }
    let tx = work.tx().await?;
    match (known, workspace) {
        (Some(pull), _) => {
            let what = pulls::observe_in(&ingest.objectives, tx, &pull, &now_is).await?;
            tx.audit(&audited(&audit, &pull, "pull_request.updated", what))
                .await?;
        }
        (None, Some(workspace)) => {
            let new = NewPull {
                objective_id: workspace.objective_id,
                workspace_id: Some(workspace.id),
                session_id: workspace.created_by,
                repository,
                number,
                branch: &pr.head.ref_name,
                base_ref: &pr.base.ref_name,
                head_sha: &now_is.head_sha,
                state: now_is.state,
                title: &pr.title,
                url: pr.html_url.as_deref().unwrap_or_default(),
                closes_issue: pr.body.contains("Closes #"),
            };
            tx.upsert_pull(&new, ingest.clock.now()).await?;
            let mut entry = audit(
                "pull_request.adopted",
                format!(
                    "pull request #{number} ({}, head {})",
                    now_is.state, now_is.head_sha
                ),
            );
            entry.objective_id = Some(workspace.objective_id);
            tx.audit(&entry).await?;
        }
        (None, None) => unreachable!("returned above"),
    }
    Ok(Outcome::Processed)
}

/// A finished check suite, check run or workflow run: the checks of its head commit, for
/// foreman's open pull requests whose head that is.
pub async fn checks(
    ingest: &Ingest,
    work: &mut Work<'_>,
    event: &Checked<'_>,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let store = work.store();
    let mut pulls = Vec::new();
    for r in event.pulls {
        if let Some(p) = store
            .pull_by_number(event.repository, u64::try_from(r.number).unwrap_or(0))
            .await?
        {
            pulls.push(p);
        }
    }
    if pulls.is_empty() {
        // Check events of forks (and some CI apps) name no pull request: go by the commit.
        pulls = store.open_pulls_at(event.repository, event.sha).await?;
    }
    pulls.retain(|p| p.state == PullState::Open);
    if pulls.is_empty() {
        return Ok(Outcome::Skipped(format!(
            "no open foreman pull request has head {}",
            event.sha
        )));
    }
    let Some(client) = ingest
        .github
        .installation_client(event.installation, event.repository)
        .await?
    else {
        return Ok(Outcome::Skipped(
            "no GitHub App installation to read the checks through".to_owned(),
        ));
    };
    let runs = rest::check_runs(&client, event.repository, event.sha).await?;
    // A head foreman has not heard of yet (a push whose webhook is late): ask GitHub.
    let mut updates = Vec::new();
    for pull in &pulls {
        if pull.head_sha != event.sha {
            let now_is = rest::pull(&client, event.repository, pull.number).await?;
            if now_is.head_sha == event.sha {
                updates.push((pull.clone(), now_is));
            }
        }
    }
    let tx = work.tx().await?;
    for (pull, now_is) in &updates {
        let what = pulls::observe_in(&ingest.objectives, tx, pull, now_is).await?;
        tx.audit(&audited(&audit, pull, "pull_request.updated", what))
            .await?;
    }
    for mut pull in pulls {
        if let Some((_, now_is)) = updates.iter().find(|(p, _)| p.id == pull.id) {
            pull.head_sha = now_is.head_sha.clone();
        }
        let what = pulls::checks_in(&ingest.objectives, tx, &pull, event.sha, &runs).await?;
        tx.audit(&audited(&audit, &pull, "pull_request.checks", what))
            .await?;
    }
    Ok(Outcome::Processed)
}

/// What the three check events have in common.
pub struct Checked<'a> {
    pub repository: &'a str,
    pub installation: Option<i64>,
    pub sha: &'a str,
    pub pulls: &'a [PullRequestRef],
}

impl<'a> Checked<'a> {
    fn of(
        repository: &'a Repository,
        installation: Option<InstallationRef>,
        sha: &'a str,
        pulls: &'a [PullRequestRef],
    ) -> Checked<'a> {
        Checked {
            repository: &repository.full_name,
            installation: installation.map(|i| i.id),
            sha,
            pulls,
        }
    }

    pub fn suite(e: &'a CheckSuiteEvent) -> Checked<'a> {
        let s = &e.check_suite;
        Checked::of(&e.repository, e.installation, &s.head_sha, &s.pull_requests)
    }

    pub fn run(e: &'a CheckRunEvent) -> Checked<'a> {
        let r = &e.check_run;
        Checked::of(&e.repository, e.installation, &r.head_sha, &r.pull_requests)
    }

    pub fn workflow(e: &'a WorkflowRunEvent) -> Checked<'a> {
        let w = &e.workflow_run;
        Checked::of(&e.repository, e.installation, &w.head_sha, &w.pull_requests)
    }
}

/// Whether `user` may have a review acted on: not a bot, and allowed by the config the
/// objective runs with.
async fn reviewer_allowed(
    ingest: &Ingest,
    client: &Octocrab,
    pull: &PullRequest,
    user: Option<&User>,
) -> Result<Option<(String, String)>> {
    let Some(user) = user.filter(|u| !u.is_bot()) else {
        return Ok(None);
    };
    let Some(objective) = ingest.store.objective(pull.objective_id).await? else {
        return Ok(None);
    };
    let config = &objective.config;
    let permission = ingest
        .repos
        .permission(client, &pull.repository, &user.login, ingest.clock.now())
        .await?;
    Ok(
        crate::github::repos::allowed(permission, config.permissions.review, &user.login, config)
            .then(|| (user.login.clone(), permission.as_str().to_owned())),
    )
}

/// `pull_request_review` submitted: a review asking for changes, or commenting on lines,
/// from someone allowed, reaches a follow-up — with every comment of the review.
pub async fn review(
    ingest: &Ingest,
    work: &mut Work<'_>,
    e: &PullRequestReviewEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    if matches!(
        e.review.state,
        ReviewState::Approved | ReviewState::Dismissed
    ) {
        return Ok(Outcome::Skipped("the review asks for nothing".to_owned()));
    }
    let repository = &e.repository.full_name;
    let reviewer = match reviewer(
        ingest,
        work,
        e.installation,
        repository,
        e.pull_request.number,
        e.review.user.as_ref(),
    )
    .await?
    {
        Ok(r) => r,
        Err(skipped) => return Ok(skipped),
    };
    let author = reviewer.author();
    let comments: Vec<rest::ReviewComment> =
        rest::review_comments(&reviewer.client, repository, reviewer.pull.number)
            .await?
            .into_iter()
            .filter(|c| c.review_id == Some(e.review.id))
            .collect();
    let mut items = Vec::new();
    if !e.review.body.trim().is_empty() {
        items.push((
            format!("review:{}", e.review.id),
            fence("review", author, &e.review.body),
        ));
    }
    items.extend(comments.iter().map(|c| comment_item(author, c)));
    if items.is_empty() {
        return Ok(Outcome::Skipped("the review says nothing".to_owned()));
    }
    review_items(ingest, work, &reviewer.pull, &items, audit).await
}

/// `pull_request_review_comment` created: a comment on a line, from someone allowed.
pub async fn review_comment(
    ingest: &Ingest,
    work: &mut Work<'_>,
    e: &PullRequestReviewCommentEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let repository = &e.repository.full_name;
    let reviewer = match reviewer(
        ingest,
        work,
        e.installation,
        repository,
        e.pull_request.number,
        e.comment.user.as_ref(),
    )
    .await?
    {
        Ok(r) => r,
        Err(skipped) => return Ok(skipped),
    };
    let c = &e.comment;
    let comment = rest::ReviewComment {
        id: c.id,
        review_id: c.pull_request_review_id,
        user: reviewer.login.clone(),
        path: c.path.clone().unwrap_or_default(),
        line: c.line.or(c.original_line),
        body: c.body.clone(),
        diff_hunk: c.diff_hunk.clone(),
    };
    let items = [comment_item(reviewer.author(), &comment)];
    review_items(ingest, work, &reviewer.pull, &items, audit).await
}

/// Someone allowed to direct work on one of foreman's pull requests, and how to reach GitHub.
struct Reviewer {
    pull: PullRequest,
    client: Octocrab,
    login: String,
    permission: String,
}

impl Reviewer {
    fn author(&self) -> Author<'_> {
        Author {
            login: &self.login,
            permission: &self.permission,
        }
    }
}

/// The pull request a review event is about and its allowed author — or why the event is
/// skipped: not foreman's pull request, no installation to ask, or an author (a bot, or
/// without the permission the config asks for) who may not direct foreman's work.
async fn reviewer(
    ingest: &Ingest,
    work: &mut Work<'_>,
    installation: Option<InstallationRef>,
    repository: &str,
    number: i64,
    user: Option<&User>,
) -> Result<Result<Reviewer, Outcome>> {
    let number = u64::try_from(number).unwrap_or(0);
    let skip = |why: String| Ok(Err(Outcome::Skipped(why)));
    let Some(pull) = work.store().pull_by_number(repository, number).await? else {
        return skip(format!("#{number} is not foreman's"));
    };
    let Some(client) = ingest
        .github
        .installation_client(installation.map(|i| i.id), repository)
        .await?
    else {
        return skip("no GitHub App installation to act through".to_owned());
    };
    let Some((login, permission)) = reviewer_allowed(ingest, &client, &pull, user).await? else {
        return skip("the reviewer may not direct foreman's work".to_owned());
    };
    Ok(Ok(Reviewer {
        pull,
        client,
        login,
        permission,
    }))
}

/// Hands review feedback to the pull request's follow-up, and records what became of it.
async fn review_items(
    ingest: &Ingest,
    work: &mut Work<'_>,
    pull: &PullRequest,
    items: &[(String, String)],
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let tx = work.tx().await?;
    let what = pulls::review_in(&ingest.objectives, tx, pull, items).await?;
    tx.audit(&audited(&audit, pull, "pull_request.review", what))
        .await?;
    Ok(Outcome::Processed)
}

/// A review comment as a follow-up reads it: where, the code around, and what was said.
fn comment_item(author: Author<'_>, c: &rest::ReviewComment) -> (String, String) {
    let place = match c.line {
        Some(line) => format!("{}:{line}", c.path),
        None => c.path.clone(),
    };
    // The diff hunk is the pull request's own code, which anyone who pushed to it wrote:
    // it goes inside the fence with the comment.
    let hunk = c
        .diff_hunk
        .as_deref()
        .map(|h| format!("```diff\n{}\n```\n", h.trim_end()))
        .unwrap_or_default();
    (
        format!("review-comment:{}", c.id),
        format!(
            "On `{}`:\n{}",
            clean(&place),
            fence("review comment", author, &format!("{hunk}{}", c.body))
        ),
    )
}
