//! What can be done to an objective and its sessions: start it, spawn and steer workers, ask
//! a human, finish it. The MCP tools and the GitHub triggers both come through here, so the
//! rules (same objective only, budgets, terminal states) hold whoever asks.

use anyhow::{Result, bail};

use super::{Engine, turns};
use crate::model::{
    ObjectiveId, ObjectiveStatus, QuestionId, Role, Session, SessionId, SessionStatus,
};
use crate::store::{NewComment, NewObjective, NewSession};

/// Starts an objective and queues its manager. Returns the objective and manager ids.
pub async fn start(engine: &Engine, objective: &NewObjective) -> Result<(ObjectiveId, SessionId)> {
    let now = engine.clock.now();
    let mut tx = engine.store.begin().await?;
    let id = tx.insert_objective(objective, now).await?;
    let manager = tx
        .insert_session(
            &NewSession {
                objective_id: id,
                role: Role::Manager,
                agent: engine.agents.manager.kind,
                title: "manager".to_owned(),
                instructions: String::new(),
                spawned_by: None,
                depends_on: Vec::new(),
            },
            now,
        )
        .await?;
    tx.set_manager(id, manager).await?;
    tx.commit().await?;
    tracing::info!(objective = %id, repository = %objective.repository, issue = objective.issue_number, "objective started");
    engine.tick_bell.notify_one();
    Ok((id, manager))
}

/// A worker of the caller's objective, or an error naming why not.
async fn worker_of(engine: &Engine, caller: &Session, worker: SessionId) -> Result<Session> {
    match engine.store.session(worker).await? {
        Some(s) if s.objective_id == caller.objective_id && s.role != Role::Manager => Ok(s),
        Some(_) => bail!("session {worker} is not a worker of your objective"),
        None => bail!("there is no worker {worker}"),
    }
}

/// `spawn_worker`: queues a worker on the caller's objective.
pub async fn spawn_worker(
    engine: &Engine,
    caller: &Session,
    title: &str,
    instructions: &str,
    depends_on: &[SessionId],
) -> Result<SessionId> {
    for dep in depends_on {
        let dep = worker_of(engine, caller, *dep).await?;
        if matches!(dep.status, SessionStatus::Failed | SessionStatus::Cancelled) {
            bail!(
                "worker {} already {}; it cannot be depended on",
                dep.id,
                dep.status.as_str()
            );
        }
    }
    let objective = engine
        .store
        .objective(caller.objective_id)
        .await?
        .filter(|o| !o.status.is_terminal());
    let Some(objective) = objective else {
        bail!("your objective has ended; no new workers can start");
    };
    if let Some(reached) = &objective.budget_blocked {
        bail!(
            "the objective's budget is reached ({reached}); a human has been asked whether to continue"
        );
    }
    let usage = engine
        .store
        .objective_usage(objective.id, engine.clock.now())
        .await?;
    if let Some(reached) = objective.budget.exceeded_by(&usage) {
        budget_reached(engine, objective.id, &reached).await?;
        bail!(
            "the objective's budget is reached ({reached}); a human has been asked whether to continue"
        );
    }
    let mut tx = engine.store.begin().await?;
    let id = tx
        .insert_session(
            &NewSession {
                objective_id: caller.objective_id,
                role: Role::Worker,
                agent: engine.agents.worker.kind,
                title: title.to_owned(),
                instructions: instructions.to_owned(),
                spawned_by: Some(caller.id),
                depends_on: depends_on.to_vec(),
            },
            engine.clock.now(),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(objective = %caller.objective_id, worker = %id, title, "worker spawned");
    engine.tick_bell.notify_one();
    Ok(id)
}

/// `message_worker`: leaves a message for the worker's next turn (a queued worker reads it
/// with its first turn's follow-up; a running one as soon as its turn ends).
pub async fn message_worker(
    engine: &Engine,
    caller: &Session,
    worker: SessionId,
    message: &str,
) -> Result<()> {
    let worker = worker_of(engine, caller, worker).await?;
    if worker.status.is_terminal() {
        bail!(
            "worker {} has already {}",
            worker.id,
            worker.status.as_str()
        );
    }
    let mut tx = engine.store.begin().await?;
    tx.push_message(
        worker.id,
        &format!("From your manager: {message}"),
        engine.clock.now(),
    )
    .await?;
    tx.commit().await?;
    engine.tick_bell.notify_one();
    Ok(())
}

/// `cancel_worker`: stops a worker; its dependents are cancelled by the scheduler.
pub async fn cancel_worker(engine: &Engine, caller: &Session, worker: SessionId) -> Result<bool> {
    let worker = worker_of(engine, caller, worker).await?;
    turns::cancel(engine, worker.id, "cancelled by its manager").await
}

/// `ask_user`: records a question for the humans; the objective waits for the answer.
pub async fn ask_user(engine: &Engine, caller: &Session, question: &str) -> Result<QuestionId> {
    let now = engine.clock.now();
    let mut tx = engine.store.begin().await?;
    let id = tx
        .insert_question(
            caller.objective_id,
            Some(caller.id),
            "agent",
            question,
            None,
            now,
        )
        .await?;
    tx.set_objective_status(caller.objective_id, ObjectiveStatus::Waiting, None, now)
        .await?;
    tx.commit().await?;
    tracing::info!(objective = %caller.objective_id, question = %id, "question for a human recorded");
    Ok(id)
}

/// A budget stops new work: recorded once, with a question for a human.
pub async fn budget_reached(engine: &Engine, objective: ObjectiveId, reached: &str) -> Result<()> {
    let now = engine.clock.now();
    let mut tx = engine.store.begin().await?;
    if tx.block_on_budget(objective, reached).await? {
        let text = format!(
            "This objective reached its budget ({reached}), so no new work is starting. \
             Should it continue, be re-scoped, or stop?"
        );
        tx.insert_question(objective, None, "budget", &text, Some(reached), now)
            .await?;
        tx.set_objective_status(objective, ObjectiveStatus::Waiting, None, now)
            .await?;
        tracing::warn!(objective = %objective, reached, "budget reached; a human is asked");
    }
    tx.commit().await
}

/// `comment_issue`: queues a comment on the objective's issue.
pub async fn comment_issue(engine: &Engine, caller: &Session, body: &str) -> Result<()> {
    let Some(objective) = engine.store.objective(caller.objective_id).await? else {
        bail!("your objective is gone");
    };
    let Some(installation_id) = objective.installation_id else {
        bail!("the objective's repository is not reachable through a GitHub App installation");
    };
    let marker = super::outbox::new_marker();
    let body = format!("{body}\n\n{}", super::outbox::marker_comment(&marker));
    let mut tx = engine.store.begin().await?;
    tx.enqueue_comment(
        &NewComment {
            objective_id: Some(objective.id),
            installation_id,
            repository: &objective.repository,
            issue_number: objective.issue_number,
            body: &body,
            marker: &marker,
        },
        engine.clock.now(),
    )
    .await?;
    tx.commit().await?;
    engine.tick_bell.notify_one();
    Ok(())
}

/// `mark_objective_done`: the manager says the work is complete.
pub async fn mark_done(engine: &Engine, caller: &Session, summary: &str) -> Result<()> {
    let sessions = engine.store.sessions_of(caller.objective_id).await?;
    let live: Vec<String> = sessions
        .iter()
        .filter(|s| s.role != Role::Manager && !s.status.is_terminal())
        .map(|s| format!("#{} ({})", s.id, s.status.as_str()))
        .collect();
    if !live.is_empty() {
        bail!(
            "workers are still live: {}; wait for them or cancel them first",
            live.join(", ")
        );
    }
    let now = engine.clock.now();
    let mut tx = engine.store.begin().await?;
    tx.set_objective_summary(caller.objective_id, summary)
        .await?;
    if !tx
        .set_objective_status(
            caller.objective_id,
            ObjectiveStatus::Done,
            Some("marked done by its manager"),
            now,
        )
        .await?
    {
        bail!("the objective has already ended");
    }
    tx.cancel_questions(caller.objective_id, now).await?;
    tx.commit().await?;
    tracing::info!(objective = %caller.objective_id, "objective done");
    engine.tick_bell.notify_one();
    Ok(())
}
