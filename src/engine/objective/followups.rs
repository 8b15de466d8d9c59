//! Follow-ups: sessions that work on one of foreman's pull requests after it was opened — to
//! make failing CI pass, to address a review, to resolve a conflict with the base. Each works
//! in a fresh checkout of the pull request's branch as it is upstream, and when it finishes
//! foreman commits and pushes what it left to that branch. A follow-up that pushed no new
//! head has failed. One is created per key (a CI failure of one head, one review, one
//! conflicting head), and never two work on one pull request at once.

use anyhow::Result;

use crate::agent::prompts;
use crate::engine::objective::Objectives;
use crate::model::repo_config::UpdateStyle;
use crate::model::{FollowupKind, Objective, PullRequest, Role};
use crate::store::{AuditEntry, FollowupInsert, NewFollowup, NewSession, Tx};

/// Creates a follow-up on `pull`, unless one was created for `key` before or another one
/// works on the pull request now.
pub async fn start_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    pull: &PullRequest,
    kind: FollowupKind,
    key: &str,
    instructions: String,
) -> Result<FollowupInsert> {
    let now = objectives.clock.now();
    let agent = objective
        .config
        .workers
        .agent
        .unwrap_or(objectives.agents.worker.kind);
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
                kind,
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
