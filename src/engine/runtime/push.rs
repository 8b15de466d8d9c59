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
    let checkout = crate::workspace::Checkout {
        path: std::path::Path::new(&workspace.path),
        repository: &objective.repository,
    };
    let summary = session
        .result
        .as_deref()
        .map(|r| crate::model::text::one_line(r, 500))
        .unwrap_or_default();
    let message = crate::model::pulls::only_own_closing(
        format!("{}\n\n{summary}", session.title).trim_end(),
        &objective.repository,
        objective.issue_number,
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
    runtime
        .workspaces
        .push(
            &objective.repository,
            &head,
            &pull.branch,
            auth.as_ref(),
            force_over,
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
