//! The supervisor, run from the tick loop: keeps every active objective driven. The rules
//! are [`crate::model::supervisor::decide`], a pure function of one snapshot of the store;
//! this module loads that snapshot (one statement, however many objectives) and applies the
//! actions: a poke is a message to the idle manager, a respawn a new manager session, an
//! escalation a question on the issue. Each action is recorded on the objective (its
//! cooldown, shared by every instance), in the audit trail and in `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::agent::prompts;
use crate::engine::objective::lifecycle;
use crate::engine::objective::questions;
use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::engine::runtime::turns;
use crate::metrics::inc;
use crate::model::question::QuestionKind;
use crate::model::supervisor::{Action, Settings, decide};
use crate::model::{Role, Timestamp};
use crate::store::AuditEntry;
use futures_util::future::BoxFuture;

/// The supervisor's tick task.
pub struct Supervisor {
    pub settings: Settings,
}

impl TickTask for Supervisor {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    /// Often enough that an action is at most a sixth of its interval late.
    fn every(&self) -> Duration {
        self.settings.idle_after.min(self.settings.cooldown) / 6
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            supervise(periodic, &self.settings).await?;
            Ok(())
        })
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub objectives: usize,
    pub pokes: usize,
    pub respawns: usize,
    pub escalations: usize,
}

/// One supervise pass: decide on every active objective, then act.
pub async fn supervise(periodic: &Periodic, settings: &Settings) -> Result<Pass> {
    let now = periodic.clock.now();
    let views = periodic.store.supervision_views().await?;
    let mut pass = Pass {
        objectives: views.len(),
        ..Pass::default()
    };
    for action in decide(&views, settings, now) {
        match apply(periodic, settings, action, now).await {
            Ok(false) => {}
            Ok(true) => match action {
                Action::Poke(_) => pass.pokes += 1,
                Action::Respawn(..) => pass.respawns += 1,
                Action::Escalate(_) => pass.escalations += 1,
            },
            Err(e) => tracing::warn!(
                objective = %action.objective(),
                error = %format!("{e:#}"),
                "supervisor action failed; it is tried again after the cooldown"
            ),
        }
    }
    Ok(pass)
}

/// Applies one action in one transaction. False when it no longer applies: another instance
/// acted first, or the objective changed since the snapshot.
async fn apply(
    periodic: &Periodic,
    settings: &Settings,
    action: Action,
    now: Timestamp,
) -> Result<bool> {
    let id = action.objective();
    let Some(objective) = periodic.store.objective(id).await? else {
        return Ok(false);
    };
    let sessions = periodic.store.sessions_of(id).await?;
    let manager = objective
        .manager
        .and_then(|m| sessions.iter().find(|s| s.id == m));
    // The snapshot the decision was made on may be stale by now: re-check what the action
    // assumes about the manager.
    let still = match action {
        Action::Poke(_) => manager.is_some_and(|m| m.status == crate::model::SessionStatus::Idle),
        Action::Respawn(..) | Action::Escalate(_) => manager.is_none_or(|m| m.status.is_terminal()),
    };
    if !still {
        return Ok(false);
    }
    let snapshot = turns::snapshot_of(&periodic.runtime, &objective, &sessions).await?;
    let mut tx = periodic.store.begin().await?;
    let escalate = matches!(action, Action::Escalate(_));
    if !tx
        .mark_supervised(id, now, now.minus(settings.cooldown), escalate)
        .await?
    {
        return Ok(false);
    }
    let (kind, detail) = match action {
        Action::Poke(_) => {
            let manager = manager.expect("checked above");
            tx.push_message(manager.id, &prompts::poke(&snapshot)?, now)
                .await?;
            inc(&periodic.metrics.supervisor_pokes);
            (
                "supervisor.poke",
                format!("manager #{} was idle with the work unfinished", manager.id),
            )
        }
        Action::Respawn(_, agent) => {
            let new = lifecycle::respawn_manager_in(
                &periodic.objectives,
                &mut tx,
                &objective,
                agent,
                None,
            )
            .await?;
            inc(&periodic.metrics.supervisor_respawns);
            let before = manager
                .map(|m| format!("manager #{} {}", m.id, m.status.as_str()))
                .unwrap_or_else(|| "there was no manager".to_owned());
            (
                "supervisor.respawn",
                format!("{before}; manager #{new} takes over"),
            )
        }
        Action::Escalate(_) => {
            let attempts = sessions.iter().filter(|s| s.role == Role::Manager).count();
            let text = format!(
                "The manager of this work has stopped {attempts} times without finishing it, so \
                 foreman has stopped starting new ones. Should it continue, be re-scoped (reply \
                 with directions), or stop?\n\n{snapshot}"
            );
            questions::ask_in(
                &periodic.objectives,
                &mut tx,
                &objective,
                None,
                QuestionKind::Escalation,
                &text,
                None,
            )
            .await?;
            inc(&periodic.metrics.supervisor_escalations);
            (
                "supervisor.escalate",
                format!("{attempts} manager sessions ended; the humans are asked"),
            )
        }
    };
    tx.audit(&AuditEntry::about(&objective, now, kind, detail.clone()))
        .await?;
    tx.commit().await?;
    tracing::info!(objective = %id, action = kind, "{detail}");
    Ok(true)
}
