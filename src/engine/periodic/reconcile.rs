//! Reconciliation: webhooks can be lost, so foreman also reads back what it depends on and
//! applies what a lost delivery would have done — through the same functions the webhooks
//! use. Two passes, both tick tasks on the lease holder:
//!
//! - every `pulls_every` (and at startup), each open pull request foreman made is read
//!   (merged, closed, a new head, a conflict with its base);
//! - every `full_every` (and at startup), also the checks of each open pull request's head, and
//!   each live objective's issue (closed, or its label removed).
//!
//! Reads are conditional (an ETag per resource, kept in memory): an unchanged resource costs
//! no rate limit. A rate limit ends the pass; the next one goes on.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use octocrab::Octocrab;
use serde_json::Value;

use crate::engine::objective::lifecycle;
use crate::engine::objective::pulls;
use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::github::rest::{self, Conditional, RestError};
use crate::metrics::inc;
use crate::model::pulls::{Checks, Mergeable, PullState};
use crate::model::{ObjectiveStatus, PullRequest};
use crate::store::AuditEntry;
use futures_util::future::BoxFuture;

/// The reconciliation tick task.
pub struct Reconcile {
    /// Time between full passes (pull requests, checks, issues).
    pub full_every: Duration,
    /// Time between reads of the open pull requests alone.
    pub pulls_every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_full: Option<Instant>,
    /// ETag and body of each resource read, by path.
    cache: HashMap<String, (String, Value)>,
    /// Paths read since the last full pass began: a full pass reads everything still
    /// watched, so what it did not read (a merged pull request, an ended objective's issue)
    /// leaves the cache.
    read: HashSet<String>,
}

impl Reconcile {
    pub fn new(full_every: Duration, pulls_every: Duration) -> Reconcile {
        Reconcile {
            full_every,
            pulls_every: pulls_every.min(full_every),
            state: Mutex::new(State::default()),
        }
    }

    /// A resource as it is now: from GitHub, or the copy kept when GitHub says it has not
    /// changed.
    async fn get(&self, client: &Octocrab, path: &str) -> Result<Value, RestError> {
        let etag = {
            let mut state = self.lock();
            state.read.insert(path.to_owned());
            state.cache.get(path).map(|(etag, _)| etag.clone())
        };
        match rest::get_if_changed(client, path, etag.as_deref()).await? {
            Conditional::NotModified => {
                let kept = self.lock().cache.get(path).map(|(_, body)| body.clone());
                match kept {
                    Some(body) => Ok(body),
                    None => rest::call(client, http::Method::GET, path, None).await,
                }
            }
            Conditional::Changed(body, etag) => {
                if let Some(etag) = etag {
                    self.lock()
                        .cache
                        .insert(path.to_owned(), (etag, body.clone()));
                }
                Ok(body)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pass: the open pull requests, and on a full pass their checks and the issues.
    pub async fn pass(&self, periodic: &Periodic, full: bool) -> Result<Reconciled> {
        let mut done = Reconciled::default();
        let Some(app) = periodic.github.app() else {
            return Ok(done);
        };
        if full {
            self.lock().read.clear();
        }
        // Installation clients come from the App's token cache: asking again is cheap.
        let pulls = periodic.store.open_pulls().await?;
        for pull in pulls {
            let Some(objective) = periodic.store.objective(pull.objective_id).await? else {
                continue;
            };
            let Some(installation) = objective.installation_id else {
                continue;
            };
            if periodic
                .store
                .standing(installation, Some(&pull.repository))
                .await?
                .is_some()
            {
                continue;
            }
            let client = app
                .installation_client(installation, &pull.repository)
                .await?;
            match self.pull(periodic, &client, &pull, full, &mut done).await {
                Ok(()) => {}
                Err(e) if rate_limited(&e) => return Err(e),
                Err(e) => {
                    tracing::warn!(pull = pull.number, repository = pull.repository, error = %format!("{e:#}"), "cannot reconcile a pull request")
                }
            }
        }
        if full {
            for objective in periodic.store.live_objectives().await? {
                let Some(installation) = objective.installation_id else {
                    continue;
                };
                if periodic
                    .store
                    .standing(installation, Some(&objective.repository))
                    .await?
                    .is_some()
                {
                    continue;
                }
                let client = app
                    .installation_client(installation, &objective.repository)
                    .await?;
                match self.issue(periodic, &client, &objective, &mut done).await {
                    Ok(()) => {}
                    Err(e) if rate_limited(&e) => return Err(e),
                    Err(e) => {
                        tracing::warn!(objective = %objective.id, error = %format!("{e:#}"), "cannot reconcile an objective's issue")
                    }
                }
            }
            for (installation, repository) in periodic.store.known_repositories().await? {
                if periodic
                    .store
                    .standing(installation, Some(&repository))
                    .await?
                    .is_some()
                {
                    continue;
                }
                let client = app.installation_client(installation, &repository).await?;
                match missed_labels(periodic, &client, installation, &repository).await {
                    Ok(queued) => done.repaired += queued,
                    Err(e) if rate_limited(&e) => return Err(e),
                    Err(e) => {
                        tracing::warn!(repository, error = %format!("{e:#}"), "cannot look for labels foreman missed")
                    }
                }
            }
            let mut state = self.lock();
            let State { cache, read, .. } = &mut *state;
            cache.retain(|path, _| read.contains(path));
        }
        Ok(done)
    }

    async fn pull(
        &self,
        periodic: &Periodic,
        client: &Octocrab,
        pull: &PullRequest,
        full: bool,
        done: &mut Reconciled,
    ) -> Result<()> {
        let path = format!("/repos/{}/pulls/{}", pull.repository, pull.number);
        let now_is = rest::pull_now(&self.get(client, &path).await?);
        done.pulls += 1;
        // A webhook would have told of a new state or head; mergeability has no webhook, so
        // learning it (unknown on every new pull request) is news, not a repair — unless it
        // is a conflict, which foreman acts on.
        let missed = now_is.state != pull.state || now_is.head_sha != pull.head_sha;
        let learned = now_is.mergeable.is_some() && now_is.mergeable != pull.mergeable;
        if missed || learned {
            let conflict = learned && now_is.mergeable == Some(Mergeable::Conflicting);
            let mut tx = periodic.store.begin().await?;
            let what = pulls::observe_in(&periodic.objectives, &mut tx, pull, &now_is).await?;
            if missed || conflict {
                let kind = if missed {
                    "reconcile.pull_request"
                } else {
                    "reconcile.conflict"
                };
                tx.audit(&entry(periodic, pull, kind, &what)).await?;
            }
            tx.commit().await?;
            if missed {
                done.repaired += 1;
            }
            if conflict {
                done.conflicts += 1;
            }
            if missed || conflict {
                tracing::info!(
                    pull = pull.number,
                    repository = pull.repository,
                    "{what} (reconciled)"
                );
            }
        }
        if !full || now_is.state != PullState::Open {
            return Ok(());
        }
        let sha = now_is.head_sha.as_str();
        if pull.checks_sha.as_deref() == Some(sha) && pull.checks != Checks::Pending {
            return Ok(()); // this head's checks are settled and known
        }
        let runs = rest::check_runs(client, &pull.repository, sha).await?;
        let state = crate::model::pulls::checks_state(&runs);
        if pull.checks_sha.as_deref() == Some(sha) && pull.checks == state {
            return Ok(());
        }
        let mut current = pull.clone();
        current.head_sha = sha.to_owned();
        current.state = now_is.state;
        let mut tx = periodic.store.begin().await?;
        let what = pulls::checks_in(&periodic.objectives, &mut tx, &current, sha, &runs).await?;
        tx.audit(&entry(periodic, pull, "reconcile.checks", &what))
            .await?;
        tx.commit().await?;
        // A finished verdict is what a lost webhook would have brought; learning that a new
        // head has no checks (or that they still run) is not a repair.
        if matches!(state, Checks::Passing | Checks::Failing) {
            done.repaired += 1;
        }
        Ok(())
    }

    async fn issue(
        &self,
        periodic: &Periodic,
        client: &Octocrab,
        objective: &crate::model::Objective,
        done: &mut Reconciled,
    ) -> Result<()> {
        let path = format!(
            "/repos/{}/issues/{}",
            objective.repository, objective.issue_number
        );
        let issue_json = self.get(client, &path).await?;
        let issue = rest::issue_now(&issue_json);
        done.issues += 1;
        let open = issue.open;
        let label = &objective.config.trigger_label;
        let labelled = issue.labels.iter().any(|n| n.eq_ignore_ascii_case(label));
        if open && labelled {
            done.repaired += self
                .missed_comments(periodic, client, objective, &issue_json)
                .await?;
            return Ok(());
        }
        let merged = if open {
            Vec::new()
        } else {
            pulls::merged_closers(&periodic.objectives, client, objective).await?
        };
        let mut tx = periodic.store.begin().await?;
        let what = if !merged.is_empty() {
            pulls::closed_by_merge_in(&periodic.objectives, &mut tx, objective, &merged).await?;
            "the issue was closed by a merged pull request"
        } else {
            let reason = if open {
                format!("the `{label}` label was removed")
            } else {
                "the issue was closed".to_owned()
            };
            lifecycle::end_in(
                &periodic.objectives,
                &mut tx,
                objective,
                ObjectiveStatus::Cancelled,
                &reason,
            )
            .await?;
            if open {
                "the label was removed"
            } else {
                "the issue was closed"
            }
        };
        let now = periodic.clock.now();
        tx.audit(&AuditEntry::about(objective, now, "reconcile.issue", what))
            .await?;
        tx.commit().await?;
        done.repaired += 1;
        tracing::info!(objective = %objective.id, "{what} (reconciled)");
        Ok(())
    }

    /// Queues the comments on a live objective's issue that foreman has not acted on — their
    /// webhooks were lost, or came while foreman was down — oldest first, as the
    /// `issue_comment.created` deliveries GitHub would have sent. The inbox then handles each as
    /// it would have (commands, answers, steering, permissions), and the record of handled
    /// comments makes that happen once whichever of the two deliveries comes first. Comments
    /// from before the objective began, and foreman's own, are not news. Returns how many were
    /// queued.
    async fn missed_comments(
        &self,
        periodic: &Periodic,
        client: &Octocrab,
        objective: &crate::model::Objective,
        issue: &Value,
    ) -> Result<usize> {
        let Some(installation) = objective.installation_id else {
            return Ok(0);
        };
        let (repository, number) = (&objective.repository, objective.issue_number);
        // GitHub's times are in whole seconds.
        let began = crate::model::Timestamp(objective.created_at.0 / 1000 * 1000);
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(began.0.max(0) as u64),
        );
        const PER_PAGE: usize = 100;
        let mut comments = Vec::new();
        for page in 1.. {
            let path = format!(
                "/repos/{repository}/issues/{number}/comments?since={since}&per_page={PER_PAGE}&page={page}"
            );
            let list = self.get(client, &path).await?;
            let list = list.as_array().cloned().unwrap_or_default();
            let last = list.len() < PER_PAGE;
            comments.extend(list.into_iter().filter(|c| {
                let by_bot =
                    serde_json::from_value::<crate::github::events::User>(c["user"].clone())
                        .map_or(true, |u| u.is_bot());
                let created = c["created_at"]
                    .as_str()
                    .and_then(|t| crate::github::app::parse_github_time(t).ok());
                !by_bot && created.is_some_and(|t| t >= began)
            }));
            if last {
                break;
            }
        }
        let ids: Vec<i64> = comments.iter().filter_map(|c| c["id"].as_i64()).collect();
        let handled = periodic.store.handled_comments(&ids).await?;
        comments.retain(|c| c["id"].as_i64().is_some_and(|id| !handled.contains(&id)));
        if comments.is_empty() {
            return Ok(0);
        }
        comments.sort_by_key(|c| c["id"].as_i64());
        let repo_json = self.get(client, &format!("/repos/{repository}")).await?;
        let mut queued = 0;
        for comment in comments {
            let payload = serde_json::json!({
                "action": "created",
                "issue": issue,
                "comment": comment,
                "repository": repo_json,
                "sender": comment["user"],
                "installation": {"id": installation.0},
            });
            let id = format!("reconciled-comment-{}", comment["id"]);
            if queue(periodic, id, "issue_comment", payload).await? {
                tracing::info!(
                    repository,
                    issue = number,
                    "a comment foreman missed is handled now (reconciled)"
                );
                queued += 1;
            }
        }
        Ok(queued)
    }
}

/// Queues the delivery GitHub would have sent, under an id made from what it is about, so
/// it is queued once however many passes see it. True when it is new.
async fn queue(
    periodic: &Periodic,
    delivery_id: String,
    event: &str,
    payload: Value,
) -> Result<bool> {
    let payload = payload.to_string();
    let delivery = crate::github::events::envelope(payload.as_bytes())?.into_delivery(
        crate::model::DeliveryId(delivery_id),
        event,
        payload,
        periodic.clock.now(),
    );
    let new = matches!(
        periodic.store.insert_delivery(delivery).await?,
        crate::store::Inserted::New(_)
    );
    if new {
        periodic.inbox_bell.notify_one();
    }
    Ok(new)
}

/// Finds the repository's open issues that carry foreman's label with no objective started
/// since it was put on — its webhook was lost, or came while foreman was down — and queues
/// for each the `issues.labeled` delivery GitHub would have sent, from whoever added the
/// label (the issue's events say). The inbox then handles it as it would have: permission,
/// config, replies, one objective. Its delivery id is the label event's, so it is queued
/// once however many passes see it. Returns how many were queued.
async fn missed_labels(
    periodic: &Periodic,
    client: &Octocrab,
    installation: crate::model::InstallationId,
    repository: &str,
) -> Result<usize> {
    let now = periodic.clock.now();
    let config = periodic.repos.config(client, repository, None, now).await?;
    let Ok(config) = config else {
        return Ok(0); // a broken config is reported when someone labels an issue
    };
    let label = &config.trigger_label;
    let mut queued = 0;
    let mut repo_json = None;
    for issue in rest::labelled_issues(client, repository, label).await? {
        let Some(number) = issue["number"].as_u64() else {
            continue;
        };
        if !issue["pull_request"].is_null() {
            continue;
        }
        let latest = periodic.store.latest_objective(repository, number).await?;
        if latest.as_ref().is_some_and(|o| !o.status.is_terminal()) {
            continue;
        }
        let Some((event_id, actor, at)) =
            rest::last_labelled(client, repository, number, label).await?
        else {
            continue;
        };
        let labelled_at = crate::github::app::parse_github_time(&at)?;
        if !crate::model::label_missed(latest.as_ref(), labelled_at) {
            continue;
        }
        if repo_json.is_none() {
            let path = format!("/repos/{repository}");
            repo_json = Some(rest::call(client, http::Method::GET, &path, None).await?);
        }
        let payload = serde_json::json!({
            "action": "labeled",
            "issue": issue,
            "label": {"name": label},
            "repository": repo_json,
            "sender": actor,
            "installation": {"id": installation.0},
        });
        let id = format!("reconciled-label-{event_id}");
        if queue(periodic, id, "issues", payload).await? {
            tracing::info!(
                repository,
                issue = number,
                "a label foreman missed is handled now (reconciled)"
            );
            queued += 1;
        }
    }
    Ok(queued)
}

/// What a pass looked at and repaired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub pulls: usize,
    pub issues: usize,
    /// Things a lost webhook would have done, done now.
    pub repaired: usize,
    /// Pull requests found newly in conflict with their base (no webhook tells of that).
    pub conflicts: usize,
}

impl TickTask for Reconcile {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    fn every(&self) -> Duration {
        self.pulls_every
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let full = self
                .lock()
                .last_full
                .is_none_or(|at| at.elapsed() >= self.full_every);
            if full {
                self.lock().last_full = Some(Instant::now());
            }
            let done = self.pass(periodic, full).await?;
            inc(&periodic.metrics.reconcile_passes);
            crate::metrics::add(&periodic.metrics.reconcile_repairs, done.repaired as u64);
            if done.repaired > 0 {
                tracing::info!(
                    repaired = done.repaired,
                    pulls = done.pulls,
                    issues = done.issues,
                    "reconciliation repaired what lost webhooks would have done"
                );
            }
            Ok(())
        })
    }
}

fn entry(periodic: &Periodic, pull: &PullRequest, kind: &str, what: &str) -> AuditEntry {
    AuditEntry::of_objective(pull.objective_id, periodic.clock.now(), kind, what)
}

fn rate_limited(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<RestError>(),
        Some(RestError::RateLimited { .. })
    )
}
