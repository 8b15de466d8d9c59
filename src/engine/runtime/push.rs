//! A follow-up's work reaches its pull request: when its turn ends with nothing more to do,
//! foreman commits what it left in its checkout and pushes that to the pull request's branch.

use anyhow::{Context, Result, bail};

use crate::engine::runtime::Runtime;
use crate::engine::runtime::tokens::installation_token;
use crate::github::app::Access;
use crate::model::pulls::PullState;
use crate::model::repo_config::UpdateStyle;
use crate::model::{FollowupKind, Session};
use crate::store::{AuditEntry, PullUpdate};

/// A follow-up's turn ended with nothing more to do: commits what it left and pushes it to
/// its pull request's branch. Returns the new head, or why there is none (which fails the
/// follow-up).
pub async fn push(runtime: &Runtime, session: &Session) -> Result<String> {
    let store = &runtime.store;
    let pull_id = session
        .pull_request_id
        .context("not a follow-up of a pull request")?;
    let pull = store
        .pull(pull_id)
        .await?
        .context("its pull request is gone")?;
    let workspace = match session.workspace_id {
        Some(id) => store.workspace(id).await?,
        None => None,
    }
    .context("the follow-up has no checkout")?;
    let start = workspace
        .base_sha
        .clone()
        .context("the follow-up's checkout never became ready")?;
    let objective = store
        .objective(session.objective_id)
        .await?
        .context("its objective is gone")?;
    let site = runtime.site_of(&workspace).await?;
    let checkout = crate::workspace::Checkout {
        path: std::path::Path::new(&workspace.path),
        repository: &objective.repository,
        site: site.as_deref(),
    };
    let summary = session
        .result
        .as_deref()
        .map(|r| crate::model::text::one_line(r, 500))
        .unwrap_or_default();
    let message = crate::model::links::with_session_trailer(
        &crate::model::pulls::only_own_closing(
            format!("{}\n\n{summary}", session.title).trim_end(),
            &objective.repository,
            objective.issue_number,
        ),
        runtime.github.public_url().as_deref(),
        session.id,
    );
    runtime.commit_as_bot(&objective).await;
    let Some(head) = runtime.workspaces.take(&checkout, &message, &start).await? else {
        bail!(
            "it changed nothing, so there was nothing to push to #{}",
            pull.number
        );
    };
    if pull.state != PullState::Open {
        bail!(
            "pull request #{} is {} now; its branch was not pushed to",
            pull.number,
            pull.state
        );
    }
    let auth = installation_token(runtime, &objective, Access::GitWrite).await?;
    let rebased = session.followup_kind == Some(FollowupKind::Conflict)
        && objective.config.pull_requests.update == UpdateStyle::Rebase;
    let force_over = rebased.then_some(start.as_str());
    let head = publish_commits(
        runtime,
        &Publication {
            objective: &objective,
            checkout: &checkout,
            head: &head,
            start: &start,
            branch: &pull.branch,
            auth: auth.as_ref(),
            force_over,
        },
    )
    .await
    .with_context(|| format!("cannot push to #{}", pull.number))?;
    let now = runtime.clock.now();
    let mut tx = store.begin().await?;
    tx.set_pull_state(
        pull.id,
        &PullUpdate {
            state: PullState::Open,
            head_sha: &head,
            mergeable: None,
        },
        now,
    )
    .await?;
    let detail = match force_over {
        Some(old) => format!(
            "follow-up #{} force-pushed {} over {old}: rebased onto {} to resolve conflicts",
            session.id, pull.branch, pull.base_ref
        ),
        None => format!("follow-up #{} pushed {head} to {}", session.id, pull.branch),
    };
    let kind = if force_over.is_some() {
        "branch.force_push"
    } else {
        "followup.pushed"
    };
    tx.audit(&AuditEntry::about(&objective, now, kind, detail))
        .await?;
    tx.commit().await?;
    tracing::info!(followup = %session.id, pull = pull.number, head, "follow-up pushed");
    Ok(head)
}

/// What [`publish_commits`] sends upstream.
pub struct Publication<'a> {
    pub objective: &'a crate::model::Objective,
    /// The checkout the commits were taken from.
    pub checkout: &'a crate::workspace::Checkout<'a>,
    /// The head taken into the mirror, and the commit the checkout started from.
    pub head: &'a str,
    pub start: &'a str,
    pub branch: &'a str,
    pub auth: Option<&'a secrecy::SecretString>,
    /// Overwrite the branch, only if it is still at this commit.
    pub force_over: Option<&'a str>,
}

/// Puts the commits taken from a checkout on `branch` upstream, as the repository's config
/// says: pushed with git, or made again through GitHub's API, which signs them. Returns the
/// branch's new head (another commit id when made through the API: the checkout is then
/// moved onto it, its files unchanged).
pub async fn publish_commits(runtime: &Runtime, p: &Publication<'_>) -> Result<String> {
    use crate::model::repo_config::CommitStyle;
    let repository = &p.objective.repository;
    if p.objective.config.pull_requests.commits == CommitStyle::Git {
        runtime
            .workspaces
            .push(repository, p.head, p.branch, p.auth, p.force_over)
            .await?;
        return Ok(p.head.to_owned());
    }
    let app = runtime
        .github
        .app()
        .context("commits through GitHub's API need the GitHub App")?;
    let installation = p
        .objective
        .installation_id
        .context("commits through GitHub's API need an installation")?;
    let client = app
        .scoped_client(installation, repository, Access::GitWrite)
        .await?;
    let workspaces = &runtime.workspaces;
    let mut made: std::collections::HashMap<String, String> = Default::default();
    for commit in workspaces
        .commits_to_replay(repository, p.head, p.start)
        .await?
    {
        let mut entries = Vec::with_capacity(commit.changes.len());
        for change in &commit.changes {
            let sha = match (&change.sha, change.mode.as_str()) {
                (Some(sha), "160000") => Some(sha.clone()), // a submodule: no blob
                (Some(sha), _) => {
                    let bytes = workspaces.blob(repository, sha).await?;
                    Some(crate::github::commits::create_blob(&client, repository, &bytes).await?)
                }
                (None, _) => None,
            };
            entries.push(crate::github::commits::Entry {
                path: &change.path,
                mode: &change.mode,
                sha,
            });
        }
        let tree =
            crate::github::commits::create_tree(&client, repository, &commit.base_tree, &entries)
                .await?;
        if tree != commit.tree {
            bail!(
                "GitHub made tree {tree} for commit {}, whose tree is {}: not published",
                commit.sha,
                commit.tree
            );
        }
        let parents: Vec<String> = commit
            .parents
            .iter()
            .map(|p| made.get(p).cloned().unwrap_or_else(|| p.clone()))
            .collect();
        let new = crate::github::commits::create_commit(
            &client,
            repository,
            &commit.message,
            &tree,
            &parents,
        )
        .await?;
        made.insert(commit.sha, new);
    }
    let head = made
        .get(p.head)
        .cloned()
        .unwrap_or_else(|| p.head.to_owned());
    let upstream = workspaces.remote_head(repository, p.branch, p.auth).await?;
    if let (Some(now), Some(expected)) = (&upstream, p.force_over)
        && now != expected
    {
        bail!(
            "`{}` moved on upstream (to {now}) since {expected}; not overwritten",
            p.branch
        );
    }
    crate::github::commits::set_branch(
        &client,
        repository,
        p.branch,
        &head,
        upstream.is_some(),
        p.force_over.is_some(),
    )
    .await
    .map_err(|e| match e.status() {
        Some(422) => crate::workspace::moved_on_upstream(p.branch),
        _ => anyhow::Error::new(e).context(format!("cannot move `{}` to {head}", p.branch)),
    })?;
    workspaces
        .fetch_branch(repository, p.branch, p.auth)
        .await?;
    workspaces.adopt(p.checkout, &head).await?;
    tracing::info!(
        branch = p.branch,
        head,
        commits = made.len(),
        "commits made through GitHub's API"
    );
    Ok(head)
}
