//! What agents ask of their objective through their tools — spawn, message and cancel
//! workers, ask a human, propose a plan, comment on the issue, say the work is done — and a
//! budget reached. Each checks that the caller may (its own objective only, within budgets
//! and posting limits) before it changes anything.

use anyhow::Result;

use crate::engine::objective::Objectives;
use crate::engine::objective::pulls;
use crate::engine::runtime::turns;
use crate::model::question::QuestionKind;
use crate::model::repo_config::PostingLimits;
use crate::model::{Objective, ObjectiveId, QuestionId, Role, Session, SessionId, SessionStatus};
use crate::store::{NewSession, Thread};

/// A worker of the caller's objective, or an error naming why not.
async fn worker_of(
    objectives: &Objectives,
    caller: &Session,
    worker: SessionId,
) -> Result<Session> {
    match objectives.store.session(worker).await? {
        Some(s) if s.objective_id == caller.objective_id && s.role != Role::Manager => Ok(s),
        Some(_) => crate::refuse!("session {worker} is not a worker of your objective"),
        None => crate::refuse!("there is no worker {worker}"),
    }
}

/// `spawn_worker`: queues a worker on the caller's objective.
pub async fn spawn_worker(
    objectives: &Objectives,
    caller: &Session,
    title: &str,
    instructions: &str,
    depends_on: &[SessionId],
) -> Result<SessionId> {
    for dep in depends_on {
        let dep = worker_of(objectives, caller, *dep).await?;
        if matches!(dep.status, SessionStatus::Failed | SessionStatus::Cancelled) {
            crate::refuse!(
                "worker {} already {}; it cannot be depended on",
                dep.id,
                dep.status.as_str()
            );
        }
    }
    // What guards the insert is read in the inserting transaction, the objective held: an
    // objective ending (or a budget being spent) meanwhile cannot slip a worker past it.
    let now = objectives.clock.now();
    let mut tx = objectives.store.begin().await?;
    let objective = tx
        .lock_objective(caller.objective_id)
        .await?
        .filter(|o| !o.status.is_terminal());
    let Some(objective) = objective else {
        crate::refuse!("your objective has ended; no new workers can start");
    };
    if objective.config.plan_approval && !objective.plan_approved {
        crate::refuse!(
            "this repository wants your plan approved before workers start: call \
             propose_plan(plan) and end your turn"
        );
    }
    if let Some(reached) = &objective.budget_blocked {
        crate::refuse!(
            "the objective's budget is reached ({reached}); a human has been asked whether to continue"
        );
    }
    let usage = tx.objective_usage(objective.id, now).await?;
    if let Some(reached) = objective.budget.exceeded_by(&usage) {
        drop(tx); // asking a human takes a transaction of its own
        budget_reached(objectives, objective.id, &reached).await?;
        crate::refuse!(
            "the objective's budget is reached ({reached}); a human has been asked whether to continue"
        );
    }
    let id = tx
        .insert_session(
            &NewSession {
                objective_id: caller.objective_id,
                role: Role::Worker,
                agent: objectives.agents.worker.kind,
                title: title.to_owned(),
                instructions: instructions.to_owned(),
                spawned_by: Some(caller.id),
                depends_on: depends_on.to_vec(),
            },
            now,
        )
        .await?;
    tx.commit().await?;
    tracing::info!(objective = %caller.objective_id, worker = %id, title, "worker spawned");
    Ok(id)
}

/// `message_worker`: leaves a message for the worker's next turn (a queued worker reads it
/// with its first turn's follow-up; a running one as soon as its turn ends).
pub async fn message_worker(
    objectives: &Objectives,
    caller: &Session,
    worker: SessionId,
    message: &str,
) -> Result<()> {
    let worker = worker_of(objectives, caller, worker).await?;
    if worker.status.is_terminal() {
        crate::refuse!(
            "worker {} has already {}",
            worker.id,
            worker.status.as_str()
        );
    }
    let mut tx = objectives.store.begin().await?;
    tx.push_message(
        worker.id,
        &format!("From your manager: {message}"),
        objectives.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `cancel_worker`: stops a worker; its dependents are cancelled by the scheduler.
pub async fn cancel_worker(
    objectives: &Objectives,
    caller: &Session,
    worker: SessionId,
) -> Result<bool> {
    let worker = worker_of(objectives, caller, worker).await?;
    turns::cancel(&objectives.runtime, worker.id, "cancelled by its manager").await
}

/// `ask_user`: records a question for the humans; the objective waits for the answer.
pub async fn ask_user(
    objectives: &Objectives,
    caller: &Session,
    question: &str,
) -> Result<QuestionId> {
    let objective = objectives
        .store
        .objective(caller.objective_id)
        .await?
        .filter(|o| !o.status.is_terminal())
        .ok_or_else(|| anyhow::anyhow!("your objective has ended"))?;
    let limit = posting_limits(objectives, &objective).questions_per_hour;
    let asked = objectives
        .store
        .questions_asked_since(
            objective.id,
            QuestionKind::Agent.as_str(),
            objectives.clock.now().minus(HOUR),
        )
        .await?;
    if asked >= limit {
        crate::refuse!(
            "this objective's agents have asked {asked} questions in the last hour, its limit: \
             wait for the answers, or put what you would ask in your result"
        );
    }
    let mut tx = objectives.store.begin().await?;
    let id = crate::engine::objective::questions::ask_in(
        objectives,
        &mut tx,
        &objective,
        Some(caller),
        QuestionKind::Agent,
        question,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// `propose_plan`: the manager's plan, posted for a human to approve when the repository
/// asks for that.
pub async fn propose_plan(objectives: &Objectives, caller: &Session, plan: &str) -> Result<String> {
    let objective = objectives
        .store
        .objective(caller.objective_id)
        .await?
        .filter(|o| !o.status.is_terminal())
        .ok_or_else(|| anyhow::anyhow!("your objective has ended"))?;
    if !objective.config.plan_approval || objective.plan_approved {
        return Ok("No approval is needed: go ahead and spawn the workers.".to_owned());
    }
    let mut tx = objectives.store.begin().await?;
    let id = crate::engine::objective::questions::ask_in(
        objectives,
        &mut tx,
        &objective,
        Some(caller),
        QuestionKind::Plan,
        plan,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(format!(
        "Your plan is posted for approval (question {id}). End your turn now: you will get a \
         message when it is approved, or with the requested changes."
    ))
}

/// A budget stops new work: recorded once, with a question for a human.
pub async fn budget_reached(
    objectives: &Objectives,
    objective: ObjectiveId,
    reached: &str,
) -> Result<()> {
    let Some(objective) = objectives.store.objective(objective).await? else {
        return Ok(());
    };
    let mut tx = objectives.store.begin().await?;
    if tx.block_on_budget(objective.id, reached).await? {
        let text = format!(
            "This objective reached its budget ({reached}), so no new work is starting. \
             Should it continue, be re-scoped, or stop?"
        );
        crate::engine::objective::questions::ask_in(
            objectives,
            &mut tx,
            &objective,
            None,
            QuestionKind::Budget,
            &text,
            Some(reached),
        )
        .await?;
        tracing::warn!(objective = %objective.id, reached, "budget reached; a human is asked");
    }
    tx.commit().await
}

/// The start of the marker of a comment an agent asked for.
const AGENT_COMMENT: &str = "agent-";
const HOUR: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// What the objective's agents may post per hour: the repository's ask under the server's.
fn posting_limits(objectives: &Objectives, objective: &Objective) -> PostingLimits {
    objective.config.limits.apply(&objectives.agents.posting)
}

/// `comment_issue`: queues a comment on the objective's issue.
pub async fn comment_issue(objectives: &Objectives, caller: &Session, body: &str) -> Result<()> {
    let Some(objective) = objectives.store.objective(caller.objective_id).await? else {
        crate::refuse!("your objective is gone");
    };
    let Some(thread) = Thread::of(&objective) else {
        crate::refuse!(
            "the objective's repository is not reachable through a GitHub App installation"
        );
    };
    let limit = posting_limits(objectives, &objective).comments_per_hour;
    let posted = objectives
        .store
        .queued_since(
            objective.id,
            AGENT_COMMENT,
            objectives.clock.now().minus(HOUR),
        )
        .await?;
    if posted >= limit {
        crate::refuse!(
            "this objective's agents have posted {posted} comments on the issue in the last \
             hour, its limit: say the rest in your result or the pull request"
        );
    }
    let marker = format!("{AGENT_COMMENT}{}", crate::model::markers::new_marker());
    let mut tx = objectives.store.begin().await?;
    tx.enqueue(&thread.comment(body, marker), objectives.clock.now())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// `mark_objective_done`: the manager says the work is complete. With pull requests still
/// open, the objective completes when they are merged. Returns what to tell the manager.
pub async fn mark_done(
    objectives: &Objectives,
    caller: &Session,
    summary: &str,
    no_change_needed: bool,
) -> Result<String> {
    use crate::model::pulls::{Completion, completion};
    let sessions = objectives.store.sessions_of(caller.objective_id).await?;
    let live: Vec<String> = sessions
        .iter()
        .filter(|s| s.role != Role::Manager && !s.status.is_terminal())
        .map(|s| format!("#{} ({})", s.id, s.status.as_str()))
        .collect();
    if !live.is_empty() {
        crate::refuse!(
            "workers are still live: {}; wait for them or cancel them first",
            live.join(", ")
        );
    }
    let Some(objective) = objectives.store.objective(caller.objective_id).await? else {
        crate::refuse!("your objective is gone");
    };
    if objective.status.is_terminal() {
        crate::refuse!("the objective has already ended");
    }
    let pulls = objectives.store.pulls_of(objective.id).await?;
    let list = |numbers: &[u64]| {
        numbers
            .iter()
            .map(|n| format!("#{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut tx = objectives.store.begin().await?;
    tx.set_objective_summary(objective.id, summary, no_change_needed)
        .await?;
    let reply = match completion(&pulls) {
        Completion::Undecided(closed) => crate::refuse!(
            "pull requests {} were closed without being merged; decide about each first: \
             publish the work again, or record why it is not needed with `abandon_pr`",
            list(&closed)
        ),
        Completion::WaitingForMerge(open) => {
            let now = objectives.clock.now();
            tx.request_done(objective.id, now).await?;
            if let Some(thread) = Thread::of(&objective) {
                // Drafts become ready, and the person who started the work is asked to review.
                let reviewer = objective.started_by.as_deref().unwrap_or_default();
                for number in &open {
                    let marker = crate::model::markers::objective_marker(
                        &format!("ready-{number}"),
                        objective.id,
                        &objective.marker_nonce,
                    );
                    tx.enqueue(&thread.ready_for_review(*number, reviewer, marker), now)
                        .await?;
                }
            }
            format!(
                "Recorded. The objective completes when {} {} merged; you will hear if \
                 anything needs you meanwhile. End your turn.",
                list(&open),
                if open.len() == 1 { "is" } else { "are" }
            )
        }
        Completion::Done => {
            let mut done = objective.clone();
            done.summary = Some(summary.to_owned());
            done.no_change_needed = no_change_needed;
            let reason = "marked done by its manager";
            pulls::complete_in(objectives, &mut tx, &done, &pulls, reason).await?;
            "The objective is done. Thank you; end your turn.".to_owned()
        }
    };
    tx.commit().await?;
    tracing::info!(objective = %objective.id, "{reply}");
    Ok(reply)
}
