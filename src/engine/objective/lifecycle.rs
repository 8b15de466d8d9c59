//! An objective's life: start it with its manager, end it, hold and resume its work, replace
//! its manager, and leave its manager news. The webhook handlers, the agents' requests and the
//! periodic passes all come through here, so the rules (terminal states, one live manager)
//! hold whoever asks.

use anyhow::Result;

use crate::engine::objective::Objectives;
use crate::model::AgentKind;
use crate::model::{Objective, ObjectiveId, ObjectiveStatus, Role, SessionId};
use crate::store::{AuditEntry, NewObjective, NewSession, Thread, Tx};

/// Starts an objective and queues its manager. Returns the objective and manager ids, or
/// `None` when the objective already exists (its trigger started one, or the issue has a live
/// one).
pub async fn start(
    objectives: &Objectives,
    objective: &NewObjective,
) -> Result<Option<(ObjectiveId, SessionId)>> {
    let mut tx = objectives.store.begin().await?;
    let started = start_in(objectives, &mut tx, objective).await?;
    tx.commit().await?;
    Ok(started)
}

/// [`start`], inside a transaction of the caller's (a delivery's handler). For an issue
/// reached through an installation it also queues the status comment and the 👀 reaction.
pub async fn start_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &NewObjective,
) -> Result<Option<(ObjectiveId, SessionId)>> {
    let now = objectives.clock.now();
    let nonce = crate::model::markers::new_marker();
    let Some(id) = tx.insert_objective(objective, &nonce, now).await? else {
        return Ok(None);
    };
    let manager = new_manager_in(objectives, tx, id, &objective.config, None, now).await?;
    if let Some(installation_id) = objective.installation_id {
        let thread = Thread {
            objective_id: Some(id),
            installation_id,
            repository: &objective.repository,
            issue_number: objective.issue_number,
        };
        let marker = crate::model::markers::status_marker(id, &nonce);
        let first = crate::model::markers::initial_comment(&marker);
        tx.enqueue(&thread.status_comment(first, marker), now)
            .await?;
        tx.enqueue(&thread.reaction("eyes", format!("eyes-{id}")), now)
            .await?;
    }
    tracing::info!(objective = %id, repository = %objective.repository, issue = objective.issue_number, "objective started");
    Ok(Some((id, manager)))
}

/// Ends an objective inside the caller's transaction: its state, its open questions closed,
/// and, unless it is done, 😕 on the issue (a done objective's ending is told by
/// [`crate::engine::objective::pulls::complete_in`], which knows whether anything merged). Its
/// live sessions are cancelled in the same transaction — their tokens revoked as it commits,
/// so no tool call acts for the ended objective, and their turns here killed at once — except,
/// when it is done, the turn of whoever said so. False when it had already ended.
pub async fn end_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    status: ObjectiveStatus,
    reason: &str,
) -> Result<bool> {
    let now = objectives.clock.now();
    if !tx
        .set_objective_status(objective.id, status, Some(reason), now)
        .await?
    {
        return Ok(false);
    }
    tx.cancel_questions(objective.id, now).await?;
    let why = format!("its objective is {}", status.as_str());
    let done = status == ObjectiveStatus::Done;
    tx.stop_sessions_of(objective.id, &why, done, now).await?;
    if let Some(thread) = Thread::of(objective).filter(|_| status != ObjectiveStatus::Done) {
        let marker =
            crate::model::markers::objective_marker("end", objective.id, &objective.marker_nonce);
        tx.enqueue(&thread.reaction("confused", marker), now)
            .await?;
    }
    tracing::info!(objective = %objective.id, status = status.as_str(), reason, "objective ended");
    Ok(true)
}

/// Holds an objective's work because foreman may not act for its repository (`why`): its
/// sessions end in the same transaction (their tokens revoked, their turns killed), the
/// scheduler starts nothing for it, and it waits for a human's `/foreman resume`. False when it was held already.
pub async fn hold_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    why: &str,
) -> Result<bool> {
    if !tx.hold(objective.id, why).await? {
        return Ok(false);
    }
    let now = objectives.clock.now();
    tx.set_objective_status(objective.id, ObjectiveStatus::Waiting, Some(why), now)
        .await?;
    let stopped = format!("the work is held: {why}");
    tx.stop_sessions_of(objective.id, &stopped, false, now)
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
    Ok(true)
}

/// Gives an objective whose manager has ended a new manager — with `agent`, or the
/// repository's choice — which starts with `note` as news, if there is one. Its first turn
/// also tells it where the work stands (see [`turns`]). The objective's manager pointer moves
/// to it.
pub async fn respawn_manager_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    agent: Option<AgentKind>,
    note: Option<&str>,
) -> Result<SessionId> {
    let now = objectives.clock.now();
    let manager =
        new_manager_in(objectives, tx, objective.id, &objective.config, agent, now).await?;
    if let Some(note) = note {
        tx.push_message(manager, note, now).await?;
    }
    tracing::info!(objective = %objective.id, manager = %manager, "manager respawned");
    Ok(manager)
}

/// Tells the objective's manager something for its next turn; a manager that has ended is
/// replaced by one that starts with it.
pub async fn tell_manager_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    note: &str,
) -> Result<SessionId> {
    let manager = match objective.manager {
        Some(id) => objectives.store.session(id).await?,
        None => None,
    };
    match manager.filter(|m| !m.status.is_terminal()) {
        Some(m) => {
            tx.push_message(m.id, note, objectives.clock.now()).await?;
            Ok(m.id)
        }
        None => respawn_manager_in(objectives, tx, objective, None, Some(note)).await,
    }
}

/// `/foreman resume`: lifts what stopped the work ([`lift_stop_in`]) and tells the manager to
/// continue.
pub async fn resume_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    by: &str,
) -> Result<()> {
    lift_stop_in(objectives, tx, objective, by).await?;
    let note = format!(
        "@{by} asked you to continue (`/foreman resume`). Pick the work up where it stands."
    );
    tell_manager_in(objectives, tx, objective, &note).await?;
    tracing::info!(objective = %objective.id, by, "objective resumed");
    Ok(())
}

/// A human said go on: a budget stop is lifted (the budget grows by another allotment), a
/// hold released, the questions the stop raised are closed, and the supervisor's respawn
/// budget starts afresh.
pub async fn lift_stop_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    by: &str,
) -> Result<()> {
    let now = objectives.clock.now();
    if objective.budget_blocked.is_some() {
        tx.raise_budget(objective.id, &objectives.agents.budget)
            .await?;
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
    objectives: &Objectives,
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
                    .unwrap_or(objectives.agents.manager.kind),
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
