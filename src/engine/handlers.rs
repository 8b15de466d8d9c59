//! Event handlers: what each kind of delivery does. A handler does its reads and any calls to
//! GitHub first, then its writes through [`Work::tx`]; the processor marks the delivery handled
//! in that same transaction, so the effects and the "handled" mark commit together or not at
//! all. (On SQLite a write transaction holds the database's one write lock, which is why slow
//! calls must come before it.)

use anyhow::Result;

use super::Engine;
use super::pull_events::{self, Checked};
use crate::github::events::{
    Event, Installation, InstallationAction, InstallationEvent, InstallationRepositoriesAction,
    InstallationRepositoriesEvent, PingEvent, RepositorySummary,
};
use crate::model::delivery::ClaimedDelivery;
use crate::model::{InstallationId, RepositoryId};
use crate::store::{AuditEntry, InstallationState, Store, Tx};

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its effects are applied.
    Processed,
    /// Deliberately not acted on, for the reason given.
    Skipped(String),
}

/// A handler's access to the store: reads through [`Work::store`], writes through the
/// transaction [`Work::tx`] opens on first use.
pub struct Work<'s> {
    store: &'s Store,
    tx: Option<Tx>,
}

impl<'s> Work<'s> {
    pub fn new(store: &'s Store) -> Work<'s> {
        Work { store, tx: None }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// The handler's write transaction, begun now if not yet.
    pub async fn tx(&mut self) -> Result<&mut Tx> {
        if self.tx.is_none() {
            self.tx = Some(self.store.begin().await?);
        }
        Ok(self.tx.as_mut().expect("transaction just begun"))
    }

    /// The transaction to finish the delivery in.
    pub async fn into_tx(mut self) -> Result<Tx> {
        self.tx().await?;
        Ok(self.tx.expect("transaction just begun"))
    }
}

/// Applies one delivery's event.
pub async fn handle(
    engine: &Engine,
    work: &mut Work<'_>,
    delivery: &ClaimedDelivery,
    event: &Event,
) -> Result<Outcome> {
    if !event.is_known_action() {
        let action = event
            .action()
            .map(|a| format!(" `{a}`"))
            .unwrap_or_default();
        return Ok(Outcome::Skipped(format!(
            "event `{}`{action} is not one foreman acts on",
            delivery.event
        )));
    }
    let audit = |kind: &str, detail: String| AuditEntry {
        at: engine.clock.now(),
        objective_id: None,
        delivery_id: Some(delivery.delivery_id.clone()),
        installation_id: event.installation_id().map(InstallationId),
        repository_id: event.repository().map(|r| RepositoryId(r.id)),
        kind: kind.to_owned(),
        detail,
    };
    match event {
        Event::Ping(ping) => {
            work.tx()
                .await?
                .audit(&audit("ping", ping_detail(ping)))
                .await?;
            Ok(Outcome::Processed)
        }
        Event::Installation(e) => installation(engine, work, e, audit).await,
        Event::InstallationRepositories(e) => {
            installation_repositories(engine, work, e, audit).await
        }
        Event::Issues(e) if active(work.store(), other_installation(event)).await? => {
            super::issues::issues_event(engine, work, &delivery.delivery_id.0, e).await
        }
        Event::IssueComment(e) if active(work.store(), other_installation(event)).await? => {
            super::issues::comment_event(engine, work, &delivery.delivery_id.0, e).await
        }
        Event::PullRequest(e) if active(work.store(), other_installation(event)).await? => {
            pull_events::pull_request(engine, work, e, audit).await
        }
        Event::CheckSuite(e) if active(work.store(), other_installation(event)).await? => {
            pull_events::checks(engine, work, &Checked::suite(e), audit).await
        }
        Event::CheckRun(e) if active(work.store(), other_installation(event)).await? => {
            pull_events::checks(engine, work, &Checked::run(e), audit).await
        }
        Event::WorkflowRun(e) if active(work.store(), other_installation(event)).await? => {
            pull_events::checks(engine, work, &Checked::workflow(e), audit).await
        }
        Event::PullRequestReview(e) if active(work.store(), other_installation(event)).await? => {
            pull_events::review(engine, work, e, audit).await
        }
        Event::PullRequestReviewComment(e)
            if active(work.store(), other_installation(event)).await? =>
        {
            pull_events::review_comment(engine, work, e, audit).await
        }
        other => {
            if let Some(id) = other.installation_id().map(InstallationId)
                && let Some(state) = work.store().installation_state(id).await?
                && state != InstallationState::Active
            {
                return Ok(Outcome::Skipped(format!(
                    "installation {id} is {}",
                    state.as_str()
                )));
            }
            Ok(Outcome::Skipped(format!(
                "no handler for `{}` events yet",
                other.name()
            )))
        }
    }
}

/// The installation an event came through, if any.
fn other_installation(event: &Event) -> Option<InstallationId> {
    event.installation_id().map(InstallationId)
}

/// Whether foreman acts for the installation: unknown ones are given the benefit of the
/// doubt (installed before foreman first ran); suspended and deleted ones are not.
async fn active(store: &Store, installation: Option<InstallationId>) -> Result<bool> {
    let Some(id) = installation else {
        return Ok(true);
    };
    Ok(matches!(
        store.installation_state(id).await?,
        None | Some(InstallationState::Active)
    ))
}

fn ping_detail(ping: &PingEvent) -> String {
    match (ping.hook_id, &ping.zen) {
        (Some(hook), Some(zen)) => format!("hook {hook} says: {zen}"),
        (Some(hook), None) => format!("hook {hook}"),
        (None, _) => "ping".to_owned(),
    }
}

async fn installation(
    engine: &Engine,
    work: &mut Work<'_>,
    e: &InstallationEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let id = InstallationId(e.installation.id);
    let account = account_name(&e.installation);
    let now = engine.clock.now();
    let (state, kind) = match e.action.kind() {
        InstallationAction::Created => (InstallationState::Active, "installation.created"),
        InstallationAction::Unsuspend => (InstallationState::Active, "installation.unsuspended"),
        InstallationAction::Suspend => (InstallationState::Suspended, "installation.suspended"),
        InstallationAction::Deleted => (InstallationState::Deleted, "installation.deleted"),
        InstallationAction::Unknown => {
            return Ok(Outcome::Skipped("unknown installation action".to_owned()));
        }
    };
    let tx = work.tx().await?;
    tx.upsert_installation(
        id,
        &account,
        e.installation
            .account
            .as_ref()
            .and_then(|a| a.kind.as_deref()),
        e.installation.repository_selection.as_deref(),
        state,
        now,
    )
    .await?;
    match e.action.kind() {
        InstallationAction::Created => {
            tx.add_repositories(id, &repositories(&e.repositories), now)
                .await?;
        }
        InstallationAction::Deleted => tx.clear_repositories(id).await?,
        _ => {}
    }
    let detail = format!(
        "installation {id} on {account}: {} ({} repositories listed)",
        state.as_str(),
        e.repositories.len()
    );
    tx.audit(&audit(kind, detail)).await?;
    Ok(Outcome::Processed)
}

async fn installation_repositories(
    engine: &Engine,
    work: &mut Work<'_>,
    e: &InstallationRepositoriesEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let id = InstallationId(e.installation.id);
    let account = account_name(&e.installation);
    let now = engine.clock.now();
    let tx = work.tx().await?;
    // The installation may be news to us (installed before foreman first ran).
    tx.ensure_installation(id, &account, now).await?;
    tx.add_repositories(id, &repositories(&e.repositories_added), now)
        .await?;
    let removed: Vec<RepositoryId> = e
        .repositories_removed
        .iter()
        .map(|r| RepositoryId(r.id))
        .collect();
    tx.remove_repositories(id, &removed).await?;
    let kind = match e.action.kind() {
        InstallationRepositoriesAction::Added => "installation.repositories_added",
        _ => "installation.repositories_removed",
    };
    let names = |list: &[RepositorySummary]| {
        list.iter()
            .map(|r| r.full_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let detail = format!(
        "installation {id}: added [{}], removed [{}]",
        names(&e.repositories_added),
        names(&e.repositories_removed)
    );
    tx.audit(&audit(kind, detail)).await?;
    Ok(Outcome::Processed)
}

fn account_name(installation: &Installation) -> String {
    installation
        .account
        .as_ref()
        .and_then(|a| a.name())
        .unwrap_or("unknown account")
        .to_owned()
}

fn repositories(list: &[RepositorySummary]) -> Vec<(RepositoryId, String)> {
    list.iter()
        .map(|r| (RepositoryId(r.id), r.full_name.clone()))
        .collect()
}
