//! Follow-ups: sessions that work on one of foreman's pull requests after it was opened — to
//! make failing CI pass, to address a review, to resolve a conflict with the base. Each works
//! in a fresh checkout of the pull request's branch as it is upstream, and when it finishes
//! foreman commits and pushes what it left to that branch. A follow-up that pushed no new
//! head has failed. One is created per key (a CI failure of one head, one review, one
//! conflicting head), and never two work on one pull request at once.

use anyhow::{Context, Result, bail};

use super::{Engine, turns};
use crate::agent::prompts;
use crate::github::app::Access;
use crate::model::pulls::PullState;
use crate::model::repo_config::UpdateStyle;
use crate::model::{Objective, PullRequest, Role, Session};
use crate::store::{AuditEntry, FollowupInsert, NewFollowup, NewSession, PullUpdate, Tx};

/// Why a follow-up runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ci,
    Review,
    Conflict,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ci => "ci",
            Kind::Review => "review",
            Kind::Conflict => "conflict",
        }
    }

    fn title(self, pull: &PullRequest) -> String {
        match self {
            Kind::Ci => format!("Fix the failing checks of #{}", pull.number),
            Kind::Review => format!("Address the review of #{}", pull.number),
            Kind::Conflict => format!(
                "Resolve the conflicts of #{} with {}",
                pull.number, pull.base_ref
            ),
        }
    }
}

/// Creates a follow-up on `pull`, unless one was created for `key` before or another one
/// works on the pull request now.
pub async fn start_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    pull: &PullRequest,
    kind: Kind,
    key: &str,
    instructions: String,
) -> Result<FollowupInsert> {
    let now = engine.clock.now();
    let agent = objective
        .config
        .workers
        .agent
        .unwrap_or(engine.agents.worker.kind);
    let created = tx
        .insert_followup(
            &NewFollowup {
                session: NewSession {
                    objective_id: objective.id,
                    role: Role::Followup,
                    agent,
                    title: kind.title(pull),
                    instructions,
                    spawned_by: None,
                    depends_on: Vec::new(),
                },
                pull_request_id: pull.id,
                kind: kind.as_str(),
                key,
            },
            now,
        )
        .await?;
    if let FollowupInsert::Created(id) = created {
        let detail = format!("follow-up #{id} on pull request #{} ({key})", pull.number);
        let what = format!("followup.{}", kind.as_str());
        tx.audit(&AuditEntry::about(objective, now, what, detail))
            .await?;
        tracing::info!(objective = %objective.id, followup = %id, pull = pull.number, kind = kind.as_str(), "follow-up created");
        engine.tick_bell.notify_one();
    }
    Ok(created)
}

/// Builds a conflict follow-up's instructions.
pub fn conflict_instructions(objective: &Objective, pull: &PullRequest) -> Result<String> {
    prompts::followup_conflict(
        pull,
        objective.config.pull_requests.update == UpdateStyle::Rebase,
    )
}

/// A follow-up's turn ended with nothing more to do: commits what it left and pushes it to
/// its pull request's branch. Returns the new head, or why there is none (which fails the
/// follow-up).
pub async fn push(engine: &Engine, session: &Session) -> Result<String> {
    let store = &engine.store;
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
    let Some(head) = engine.workspaces.take(&checkout, &message, &start).await? else {
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
    let auth = turns::installation_token(engine, &objective, Access::GitWrite).await?;
    let rebased = session.followup_kind.as_deref() == Some(Kind::Conflict.as_str())
        && objective.config.pull_requests.update == UpdateStyle::Rebase;
    let force_over = rebased.then_some(start.as_str());
    engine
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
    let now = engine.clock.now();
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
