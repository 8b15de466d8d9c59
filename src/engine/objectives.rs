//! What can be done to an objective and its sessions: start it, spawn and steer workers, ask
//! a human, finish it. The MCP tools and the GitHub triggers both come through here, so the
//! rules (same objective only, budgets, terminal states) hold whoever asks.

use anyhow::{Result, bail};

use super::{Engine, turns};
use crate::model::AgentKind;
use crate::model::question::QuestionKind;
use crate::model::repo_config::PostingLimits;
use crate::model::{
    Objective, ObjectiveId, ObjectiveStatus, QuestionId, Role, Session, SessionId, SessionStatus,
};
use crate::store::{AuditEntry, NewObjective, NewSession, OutboxKind, OutboxWrite, Tx};

/// Starts an objective and queues its manager. Returns the objective and manager ids, or
/// `None` when the objective already exists (its trigger started one, or the issue has a live
/// one).
pub async fn start(
    engine: &Engine,
    objective: &NewObjective,
) -> Result<Option<(ObjectiveId, SessionId)>> {
    let mut tx = engine.store.begin().await?;
    let started = start_in(engine, &mut tx, objective).await?;
    tx.commit().await?;
    if started.is_some() {
        engine.tick_bell.notify_one();
    }
    Ok(started)
}

/// [`start`], inside a transaction of the caller's (a delivery's handler). For an issue
/// reached through an installation it also queues the status comment and the 👀 reaction.
pub async fn start_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &NewObjective,
) -> Result<Option<(ObjectiveId, SessionId)>> {
    let now = engine.clock.now();
    let nonce = super::outbox::new_marker();
    let Some(id) = tx.insert_objective(objective, &nonce, now).await? else {
        return Ok(None);
    };
    let manager = new_manager_in(engine, tx, id, &objective.config, None, now).await?;
    if let Some(installation_id) = objective.installation_id {
        let target = |kind, body: &str, marker: String| OutboxWrite {
            objective_id: Some(id),
            installation_id,
            repository: &objective.repository,
            issue_number: objective.issue_number,
            kind,
            body: body.to_owned(),
            marker,
            target_id: None,
        };
        let marker = super::status::status_marker(id, &nonce);
        let first = super::status::initial_comment(&marker);
        tx.enqueue(&target(OutboxKind::StatusComment, &first, marker), now)
            .await?;
        tx.enqueue(
            &target(OutboxKind::Reaction, "eyes", format!("eyes-{id}")),
            now,
        )
        .await?;
    }
    tracing::info!(objective = %id, repository = %objective.repository, issue = objective.issue_number, "objective started");
    Ok(Some((id, manager)))
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
    if objective.config.plan_approval && !objective.plan_approved {
        bail!(
            "this repository wants your plan approved before workers start: call \
             propose_plan(plan) and end your turn"
        );
    }
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
    let objective = engine
        .store
        .objective(caller.objective_id)
        .await?
        .filter(|o| !o.status.is_terminal())
        .ok_or_else(|| anyhow::anyhow!("your objective has ended"))?;
    let limit = posting_limits(engine, &objective).questions_per_hour;
    let asked = engine
        .store
        .questions_asked_since(
            objective.id,
            QuestionKind::Agent.as_str(),
            engine.clock.now().minus(HOUR),
        )
        .await?;
    if asked >= limit {
        bail!(
            "this objective's agents have asked {asked} questions in the last hour, its limit: \
             wait for the answers, or put what you would ask in your result"
        );
    }
    let mut tx = engine.store.begin().await?;
    let id = super::questions::ask_in(
        engine,
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
pub async fn propose_plan(engine: &Engine, caller: &Session, plan: &str) -> Result<String> {
    let objective = engine
        .store
        .objective(caller.objective_id)
        .await?
        .filter(|o| !o.status.is_terminal())
        .ok_or_else(|| anyhow::anyhow!("your objective has ended"))?;
    if !objective.config.plan_approval || objective.plan_approved {
        return Ok("No approval is needed: go ahead and spawn the workers.".to_owned());
    }
    let mut tx = engine.store.begin().await?;
    let id = super::questions::ask_in(
        engine,
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
pub async fn budget_reached(engine: &Engine, objective: ObjectiveId, reached: &str) -> Result<()> {
    let Some(objective) = engine.store.objective(objective).await? else {
        return Ok(());
    };
    let mut tx = engine.store.begin().await?;
    if tx.block_on_budget(objective.id, reached).await? {
        let text = format!(
            "This objective reached its budget ({reached}), so no new work is starting. \
             Should it continue, be re-scoped, or stop?"
        );
        super::questions::ask_in(
            engine,
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
fn posting_limits(engine: &Engine, objective: &Objective) -> PostingLimits {
    objective.config.limits.apply(&engine.agents.posting)
}

/// `comment_issue`: queues a comment on the objective's issue.
pub async fn comment_issue(engine: &Engine, caller: &Session, body: &str) -> Result<()> {
    let Some(objective) = engine.store.objective(caller.objective_id).await? else {
        bail!("your objective is gone");
    };
    let Some(installation_id) = objective.installation_id else {
        bail!("the objective's repository is not reachable through a GitHub App installation");
    };
    let limit = posting_limits(engine, &objective).comments_per_hour;
    let posted = engine
        .store
        .queued_since(objective.id, AGENT_COMMENT, engine.clock.now().minus(HOUR))
        .await?;
    if posted >= limit {
        bail!(
            "this objective's agents have posted {posted} comments on the issue in the last \
             hour, its limit: say the rest in your result or the pull request"
        );
    }
    let marker = format!("{AGENT_COMMENT}{}", super::outbox::new_marker());
    let body = format!("{body}\n\n{}", super::outbox::marker_comment(&marker));
    let mut tx = engine.store.begin().await?;
    tx.enqueue(
        &OutboxWrite {
            objective_id: Some(objective.id),
            installation_id,
            repository: &objective.repository,
            issue_number: objective.issue_number,
            kind: OutboxKind::Comment,
            body,
            marker,
            target_id: None,
        },
        engine.clock.now(),
    )
    .await?;
    tx.commit().await?;
    engine.tick_bell.notify_one();
    Ok(())
}

/// `mark_objective_done`: the manager says the work is complete. With pull requests still
/// open, the objective completes when they are merged. Returns what to tell the manager.
pub async fn mark_done(engine: &Engine, caller: &Session, summary: &str) -> Result<String> {
    use crate::model::pulls::{Completion, completion};
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
    let Some(objective) = engine.store.objective(caller.objective_id).await? else {
        bail!("your objective is gone");
    };
    if objective.status.is_terminal() {
        bail!("the objective has already ended");
    }
    let pulls = engine.store.pulls_of(objective.id).await?;
    let list = |numbers: &[u64]| {
        numbers
            .iter()
            .map(|n| format!("#{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut tx = engine.store.begin().await?;
    tx.set_objective_summary(objective.id, summary).await?;
    let reply = match completion(&pulls) {
        Completion::Undecided(closed) => bail!(
            "pull requests {} were closed without being merged; decide about each first: \
             publish the work again, or record why it is not needed with `abandon_pr`",
            list(&closed)
        ),
        Completion::WaitingForMerge(open) => {
            let now = engine.clock.now();
            tx.request_done(objective.id, now).await?;
            if let Some(installation_id) = objective.installation_id {
                // Drafts become ready, and the person who started the work is asked to review.
                for number in &open {
                    tx.enqueue(
                        &OutboxWrite {
                            objective_id: Some(objective.id),
                            installation_id,
                            repository: &objective.repository,
                            issue_number: *number,
                            kind: OutboxKind::ReadyForReview,
                            body: objective.started_by.clone().unwrap_or_default(),
                            marker: super::outbox::objective_marker(
                                &format!("ready-{number}"),
                                objective.id,
                                &objective.marker_nonce,
                            ),
                            target_id: Some(*number as i64),
                        },
                        now,
                    )
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
            let reason = "marked done by its manager";
            super::pulls::complete_in(engine, &mut tx, &done, &pulls, reason).await?;
            "The objective is done. Thank you; end your turn.".to_owned()
        }
    };
    tx.commit().await?;
    tracing::info!(objective = %objective.id, "{reply}");
    engine.tick_bell.notify_one();
    Ok(reply)
}

/// Ends an objective inside the caller's transaction: its state, its open questions closed,
/// and the reaction that tells the issue (🚀 done, 😕 otherwise). The scheduler then cancels
/// whatever of it still runs. False when it had already ended.
pub async fn end_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    status: ObjectiveStatus,
    reason: &str,
) -> Result<bool> {
    let now = engine.clock.now();
    if !tx
        .set_objective_status(objective.id, status, Some(reason), now)
        .await?
    {
        return Ok(false);
    }
    tx.cancel_questions(objective.id, now).await?;
    if let Some(installation_id) = objective.installation_id {
        let reaction = if status == ObjectiveStatus::Done {
            "rocket"
        } else {
            "confused"
        };
        tx.enqueue(
            &OutboxWrite {
                objective_id: Some(objective.id),
                installation_id,
                repository: &objective.repository,
                issue_number: objective.issue_number,
                kind: OutboxKind::Reaction,
                body: reaction.to_owned(),
                marker: super::outbox::objective_marker(
                    "end",
                    objective.id,
                    &objective.marker_nonce,
                ),
                target_id: None,
            },
            now,
        )
        .await?;
    }
    tracing::info!(objective = %objective.id, status = status.as_str(), reason, "objective ended");
    Ok(true)
}

/// Holds an objective's work because foreman may not act for its repository (`why`): the
/// scheduler ends its sessions (their processes killed) and starts nothing for it, and it
/// waits for a human's `/foreman resume`. False when it was held already.
pub async fn hold_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    why: &str,
) -> Result<bool> {
    if !tx.hold(objective.id, why).await? {
        return Ok(false);
    }
    let now = engine.clock.now();
    tx.set_objective_status(objective.id, ObjectiveStatus::Waiting, Some(why), now)
        .await?;
    tx.force_status_refresh(objective.id).await?;
    tx.audit(&AuditEntry::about(
        objective,
        now,
        "objective.held",
        why.to_owned(),
    ))
    .await?;
    tracing::warn!(objective = %objective.id, why, "objective held");
    engine.tick_bell.notify_one();
    Ok(true)
}

/// Gives an objective whose manager has ended a new manager — with `agent`, or the
/// repository's choice — which starts with `note` as news, if there is one. Its first turn
/// also tells it where the work stands (see [`turns`]). The objective's manager pointer moves
/// to it.
pub async fn respawn_manager_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    agent: Option<AgentKind>,
    note: Option<&str>,
) -> Result<SessionId> {
    let now = engine.clock.now();
    let manager = new_manager_in(engine, tx, objective.id, &objective.config, agent, now).await?;
    if let Some(note) = note {
        tx.push_message(manager, note, now).await?;
    }
    tracing::info!(objective = %objective.id, manager = %manager, "manager respawned");
    Ok(manager)
}

/// Tells the objective's manager something for its next turn; a manager that has ended is
/// replaced by one that starts with it.
pub async fn tell_manager_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    note: &str,
) -> Result<SessionId> {
    let manager = match objective.manager {
        Some(id) => engine.store.session(id).await?,
        None => None,
    };
    match manager.filter(|m| !m.status.is_terminal()) {
        Some(m) => {
            tx.push_message(m.id, note, engine.clock.now()).await?;
            Ok(m.id)
        }
        None => respawn_manager_in(engine, tx, objective, None, Some(note)).await,
    }
}

/// `/foreman resume`: lifts what stopped the work ([`lift_stop_in`]) and tells the manager to
/// continue.
pub async fn resume_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    by: &str,
) -> Result<()> {
    lift_stop_in(engine, tx, objective, by).await?;
    let note = format!(
        "@{by} asked you to continue (`/foreman resume`). Pick the work up where it stands."
    );
    tell_manager_in(engine, tx, objective, &note).await?;
    tracing::info!(objective = %objective.id, by, "objective resumed");
    Ok(())
}

/// A human said go on: a budget stop is lifted (the budget grows by another allotment), a
/// hold released, the questions the stop raised are closed, and the supervisor's respawn
/// budget starts afresh.
pub async fn lift_stop_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: &Objective,
    by: &str,
) -> Result<()> {
    let now = engine.clock.now();
    if objective.budget_blocked.is_some() {
        tx.raise_budget(objective.id, &engine.agents.budget).await?;
    }
    if objective.held.is_some() {
        tx.release_hold(objective.id).await?;
    }
    let answer = format!("resumed by @{by}");
    tx.answer_open_questions(objective.id, &["budget", "escalation"], &answer, by, now)
        .await?;
    tx.reset_supervision(objective.id).await?;
    if !tx.has_open_questions(objective.id).await? {
        tx.set_objective_status(objective.id, ObjectiveStatus::Active, None, now)
            .await?;
    }
    Ok(())
}

/// Queues a new manager session for an objective and points the objective at it; its agent
/// is the repository's choice, or the server's.
async fn new_manager_in(
    engine: &Engine,
    tx: &mut Tx,
    objective: ObjectiveId,
    config: &crate::model::repo_config::RepoConfig,
    agent: Option<AgentKind>,
    now: crate::model::Timestamp,
) -> Result<SessionId> {
    let manager = tx
        .insert_session(
            &NewSession {
                objective_id: objective,
                role: Role::Manager,
                agent: agent
                    .or(config.manager.agent)
                    .unwrap_or(engine.agents.manager.kind),
                title: "manager".to_owned(),
                instructions: String::new(),
                spawned_by: None,
                depends_on: Vec::new(),
            },
            now,
        )
        .await?;
    tx.set_manager(objective, manager).await?;
    Ok(manager)
}
