//! `publish_pr`: a finished worker's checkout becomes a pull request. foreman commits what
//! the worker left uncommitted (as the App's bot), pushes the worker's branch with the
//! installation token, and opens — or, for a branch already published, updates — the pull
//! request. The agent never holds a credential.

use anyhow::{Context, Result, anyhow};

use crate::engine::objective::Objectives;
use crate::engine::runtime::tokens;
use crate::github::app::Access;
use crate::github::app::describe;
use crate::model::pulls::PullState;
use crate::model::text::one_line;
use crate::model::{Role, Session, SessionId, SessionStatus};
use crate::store::NewPull;

/// What the manager asks to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub worker: SessionId,
    pub title: String,
    pub body: String,
    /// Whether the pull request completes the issue (`Closes #N`) or is a part (`Part of #N`).
    pub closes_issue: bool,
    /// Why the branch may be overwritten, if it moved on upstream.
    pub force_reason: Option<String>,
}

/// Publishes a worker's work; returns what to tell the manager.
pub async fn publish(
    objectives: &Objectives,
    caller: &Session,
    req: &PublishRequest,
) -> Result<String> {
    let store = &objectives.store;
    let worker = match store.session(req.worker).await? {
        Some(w) if w.objective_id == caller.objective_id && w.role != Role::Manager => w,
        _ => crate::refuse!("there is no worker {} in your objective", req.worker),
    };
    if matches!(
        worker.status,
        SessionStatus::Queued | SessionStatus::Starting | SessionStatus::Running
    ) {
        crate::refuse!(
            "worker #{} is still {}; publish it once it has reported its result",
            worker.id,
            worker.status.as_str()
        );
    }
    let workspace = match worker.workspace_id {
        Some(id) => store.workspace(id).await?,
        None => None,
    }
    .with_context(|| format!("worker #{} has no checkout to publish", worker.id))?;
    if workspace.status == crate::model::WorkspaceStatus::Archived {
        crate::refuse!(
            "worker #{}'s checkout was reclaimed: its work was in pull requests that ended, or \
             it held nothing to publish. Spawn a new worker for further changes.",
            worker.id
        );
    }
    if !objectives.runtime.checkout_exists(&workspace).await? {
        // Made by another instance, with a work root of its own, which stopped.
        crate::refuse!(
            "worker #{}'s checkout was on another foreman instance's disk, and that instance \
             stopped: what it had not pushed is lost. Spawn a new worker to redo the task.",
            worker.id
        );
    }
    let Some(branch) = workspace.branch.clone() else {
        crate::refuse!(
            "worker #{}'s checkout is read-only; there is nothing to publish",
            worker.id
        );
    };
    let base_sha = workspace
        .base_sha
        .clone()
        .context("the worker's checkout never became ready")?;
    let now = objectives.clock.now();
    if !store
        .acquire_workspace(workspace.id, caller.id, now)
        .await?
    {
        if store
            .workspace(workspace.id)
            .await?
            .is_some_and(|w| w.status != crate::model::WorkspaceStatus::Ready)
        {
            crate::refuse!(
                "worker #{}'s checkout is being reclaimed: it holds nothing left to publish",
                worker.id
            );
        }
        crate::refuse!(
            "another session is working in worker #{}'s checkout; publish once it has finished",
            worker.id
        );
    }
    // The manager holds the checkout only while it publishes.
    let published = publish_held(
        objectives, caller, req, &worker, &workspace, &branch, &base_sha,
    )
    .await;
    store.release_workspace(workspace.id, caller.id).await?;
    published
}

/// Publishes while holding the worker's checkout.
async fn publish_held(
    objectives: &Objectives,
    caller: &Session,
    req: &PublishRequest,
    worker: &Session,
    workspace: &crate::model::Workspace,
    branch: &str,
    base_sha: &str,
) -> Result<String> {
    let store = &objectives.store;
    let branch = branch.to_owned();
    let objective = store
        .objective(caller.objective_id)
        .await?
        .context("your objective is gone")?;
    let existing = store.pull_by_branch(&objective.repository, &branch).await?;
    match existing.as_ref().map(|p| p.state) {
        Some(PullState::Merged) => crate::refuse!(
            "pull request #{} from this branch was merged; pushing more to it is refused. \
             Spawn a new worker for further changes.",
            existing.as_ref().map_or(0, |p| p.number)
        ),
        Some(PullState::Closed) => crate::refuse!(
            "pull request #{} from this branch was closed without being merged. Decide what \
             to do: ask the user, or have a new worker redo the work and publish that.",
            existing.as_ref().map_or(0, |p| p.number)
        ),
        _ => {}
    }
    let site = objectives.runtime.site_of(workspace).await?;
    let checkout = crate::workspace::Checkout {
        path: std::path::Path::new(&workspace.path),
        repository: &objective.repository,
        site: site.as_deref(),
    };
    let summary = worker
        .result
        .as_deref()
        .map(|r| one_line(r, 500))
        .unwrap_or_default();
    // Only the objective's own issue may be closed by what an agent wrote.
    let own = |text: &str| {
        crate::model::pulls::only_own_closing(text, &objective.repository, objective.issue_number)
    };
    let message = crate::model::links::with_session_trailer(
        &own(format!("{}\n\n{summary}", req.title).trim_end()),
        objectives.github.public_url().as_deref(),
        worker.id,
    );
    objectives.runtime.commit_as_bot(&objective).await;
    let Some(head) = objectives
        .runtime
        .workspaces
        .take(&checkout, &message, base_sha)
        .await?
    else {
        crate::refuse!(
            "worker #{} made no changes; there is nothing to publish",
            worker.id
        );
    };
    let auth =
        tokens::installation_token(&objectives.runtime, &objective, Access::GitWrite).await?;
    let force_over = match &req.force_reason {
        Some(reason) => {
            let upstream = objectives
                .runtime
                .workspaces
                .remote_head(&objective.repository, &branch, auth.as_ref())
                .await?;
            if upstream.is_some() {
                tracing::warn!(branch, reason, "force-pushing a published branch");
                record_force(objectives, &objective, &branch, reason).await?;
            }
            upstream
        }
        None => None,
    };
    let head = crate::engine::runtime::push::publish_commits(
        &objectives.runtime,
        &crate::engine::runtime::push::Publication {
            objective: &objective,
            checkout: &checkout,
            head: &head,
            start: base_sha,
            branch: &branch,
            auth: auth.as_ref(),
            force_over: force_over.as_deref(),
        },
    )
    .await?;
    let link = if req.closes_issue {
        "Closes"
    } else {
        "Part of"
    };
    let body = format!(
        "{}\n\n{link} #{}\n\n<!-- foreman:workspace:{} -->",
        own(req.body.trim_end()),
        objective.issue_number,
        workspace.id
    );
    // A human may have stopped the objective while this pushed: then no pull request.
    objectives.still_live(caller).await?;
    let (number, url, adopted) = open_or_update(
        objectives,
        &objective,
        &branch,
        &workspace.base_ref,
        existing.as_ref(),
        req,
        &body,
    )
    .await?;
    store
        .upsert_pull(
            &NewPull {
                objective_id: objective.id,
                workspace_id: Some(workspace.id),
                session_id: Some(worker.id),
                repository: &objective.repository,
                number,
                branch: &branch,
                base_ref: &workspace.base_ref,
                head_sha: &head,
                state: PullState::Open,
                title: &req.title,
                url: &url,
                closes_issue: req.closes_issue,
            },
            objectives.clock.now(),
        )
        .await?;
    let verb = match (existing.is_some(), adopted) {
        (true, _) => "updated",
        (false, true) => "adopted",
        (false, false) => "opened",
    };
    tracing::info!(number, branch, head, verb, "pull request published");
    Ok(format!(
        "Pull request #{number} {verb}: {url} (head {head})."
    ))
}

/// Opens the pull request, updates the one already published from the branch, or adopts
/// one opened some other way. Returns its number, URL, and whether it was adopted.
async fn open_or_update(
    objectives: &Objectives,
    objective: &crate::model::Objective,
    branch: &str,
    base: &str,
    existing: Option<&crate::model::PullRequest>,
    req: &PublishRequest,
    body: &str,
) -> Result<(u64, String, bool)> {
    let app = objectives
        .github
        .app()
        .context("publishing needs the GitHub App (GITHUB_APP_ID and its key)")?;
    let installation = objective
        .installation_id
        .context("the objective's repository has no GitHub App installation")?;
    let client = app
        .installation_client(installation, &objective.repository)
        .await?;
    let (owner, repo) = objective
        .repository
        .split_once('/')
        .context("repository is not owner/name")?;
    let pulls = client.pulls(owner, repo);
    if let Some(pull) = existing {
        pulls
            .update(pull.number)
            .title(&req.title)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot update pull request #{}: {}",
                    pull.number,
                    describe(&e)
                )
            })?;
        return Ok((pull.number, pull.url.clone(), false));
    }
    match pulls
        .create(&req.title, branch, base)
        .body(body)
        .draft(objective.config.pull_requests.draft)
        .send()
        .await
    {
        Ok(pr) => Ok((
            pr.number,
            pr.html_url.map(|u| u.to_string()).unwrap_or_default(),
            false,
        )),
        Err(e) if describe(&e).starts_with("422") => {
            // Someone (the agent, through other means) opened one from this branch already.
            let open = pulls
                .list()
                .state(octocrab::params::State::Open)
                .head(format!("{owner}:{branch}"))
                .send()
                .await
                .map_err(|e| anyhow!("cannot list pull requests: {}", describe(&e)))?;
            let pr = open
                .items
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("cannot open the pull request: {}", describe(&e)))?;
            Ok((
                pr.number,
                pr.html_url.map(|u| u.to_string()).unwrap_or_default(),
                true,
            ))
        }
        Err(e) => Err(anyhow!("cannot open the pull request: {}", describe(&e))),
    }
}

async fn record_force(
    objectives: &Objectives,
    objective: &crate::model::Objective,
    branch: &str,
    reason: &str,
) -> Result<()> {
    let mut tx = objectives.store.begin().await?;
    tx.audit(&crate::store::AuditEntry {
        at: objectives.clock.now(),
        objective_id: Some(objective.id),
        delivery_id: None,
        installation_id: objective.installation_id,
        repository_id: None,
        kind: "branch.force_push".to_owned(),
        detail: format!(
            "objective {}: force-pushed {branch}: {reason}",
            objective.id
        ),
    })
    .await?;
    tx.commit().await
}
