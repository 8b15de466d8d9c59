//! Event handlers: what each kind of delivery does. A handler does its reads and any calls to
//! GitHub first, then its writes through [`Work::tx`]; the processor marks the delivery handled
//! in that same transaction, so the effects and the "handled" mark commit together or not at
//! all. (On SQLite a write transaction holds the database's one write lock, which is why slow
//! calls must come before it.)

use anyhow::Result;

use crate::engine::ingest::Ingest;
use crate::engine::ingest::pull_events::{self, Checked};
use crate::engine::ingest::work::{Outcome, Work};
use crate::engine::objective::lifecycle;
use crate::github::events::{
    Event, Installation, InstallationAction, InstallationEvent, InstallationRepositoriesAction,
    InstallationRepositoriesEvent, PingEvent, RepositorySummary,
};
use crate::model::delivery::ClaimedDelivery;
use crate::model::{InstallationId, Objective, ObjectiveStatus, RepositoryId};
use crate::store::{AuditEntry, InstallationState, Store};

/// Applies one delivery's event.
pub async fn handle(
    ingest: &Ingest,
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
        at: ingest.clock.now(),
        objective_id: None,
        delivery_id: Some(delivery.delivery_id.clone()),
        installation_id: event.installation_id().map(InstallationId),
        repository_id: event.repository().map(|r| RepositoryId(r.id)),
        kind: kind.to_owned(),
        detail,
    };
    if !matches!(
        event,
        Event::Ping(_) | Event::Installation(_) | Event::InstallationRepositories(_)
    ) && let Some(why) = refused(work.store(), event).await?
    {
        return Ok(Outcome::Skipped(why));
    }
    match event {
        Event::Ping(ping) => {
            work.tx()
                .await?
                .audit(&audit("ping", ping_detail(ping)))
                .await?;
            Ok(Outcome::Processed)
        }
        Event::Installation(e) => installation(ingest, work, e, audit).await,
        Event::InstallationRepositories(e) => {
            installation_repositories(ingest, work, e, audit).await
        }
        Event::Issues(e) => {
            crate::engine::ingest::issues::issues_event(ingest, work, &delivery.delivery_id.0, e)
                .await
        }
        Event::IssueComment(e) => {
            crate::engine::ingest::issues::comment_event(ingest, work, &delivery.delivery_id.0, e)
                .await
        }
        Event::PullRequest(e) => pull_events::pull_request(ingest, work, e, audit).await,
        Event::CheckSuite(e) => pull_events::checks(ingest, work, &Checked::suite(e), audit).await,
        Event::CheckRun(e) => pull_events::checks(ingest, work, &Checked::run(e), audit).await,
        Event::WorkflowRun(e) => {
            pull_events::checks(ingest, work, &Checked::workflow(e), audit).await
        }
        Event::PullRequestReview(e) => pull_events::review(ingest, work, e, audit).await,
        Event::PullRequestReviewComment(e) => {
            pull_events::review_comment(ingest, work, e, audit).await
        }
        other => Ok(Outcome::Skipped(format!(
            "no handler for `{}` events yet",
            other.name()
        ))),
    }
}

/// Why foreman does not act on an event about a repository: the installation it came through
/// is suspended or deleted, or the repository was removed from it. Installations and
/// repositories foreman has not heard of get the benefit of the doubt (installed before
/// foreman first ran).
async fn refused(store: &Store, event: &Event) -> Result<Option<String>> {
    match event.installation_id() {
        Some(id) => {
            let repository = event.repository().map(|r| r.full_name.as_str());
            store.standing(InstallationId(id), repository).await
        }
        None => Ok(None),
    }
}

fn ping_detail(ping: &PingEvent) -> String {
    match (ping.hook_id, &ping.zen) {
        (Some(hook), Some(zen)) => format!("hook {hook} says: {zen}"),
        (Some(hook), None) => format!("hook {hook}"),
        (None, _) => "ping".to_owned(),
    }
}

async fn installation(
    ingest: &Ingest,
    work: &mut Work<'_>,
    e: &InstallationEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let id = InstallationId(e.installation.id);
    let account = account_name(&e.installation);
    let now = ingest.clock.now();
    let (state, kind) = match e.action.kind() {
        InstallationAction::Created => (InstallationState::Active, "installation.created"),
        InstallationAction::Unsuspend => (InstallationState::Active, "installation.unsuspended"),
        InstallationAction::Suspend => (InstallationState::Suspended, "installation.suspended"),
        InstallationAction::Deleted => (InstallationState::Deleted, "installation.deleted"),
        InstallationAction::Unknown => {
            return Ok(Outcome::Skipped("unknown installation action".to_owned()));
        }
    };
    let live: Vec<Objective> = work
        .store()
        .live_objectives()
        .await?
        .into_iter()
        .filter(|o| o.installation_id == Some(id))
        .collect();
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
        InstallationAction::Deleted => {
            tx.clear_repositories(id).await?;
            let why = format!("foreman was uninstalled from {account}");
            for objective in &live {
                lifecycle::end_in(
                    &ingest.objectives,
                    tx,
                    objective,
                    ObjectiveStatus::Cancelled,
                    &why,
                )
                .await?;
            }
            tx.drop_outbox(id, &why).await?;
        }
        InstallationAction::Suspend => {
            let why = format!("foreman's installation on {account} was suspended");
            for objective in &live {
                lifecycle::hold_in(&ingest.objectives, tx, objective, &why).await?;
            }
        }
        _ => {}
    }
    let detail = format!(
        "installation {id} on {account}: {} ({} repositories listed; {} live objectives)",
        state.as_str(),
        e.repositories.len(),
        live.len()
    );
    tx.audit(&audit(kind, detail)).await?;
    Ok(Outcome::Processed)
}

async fn installation_repositories(
    ingest: &Ingest,
    work: &mut Work<'_>,
    e: &InstallationRepositoriesEvent,
    audit: impl Fn(&str, String) -> AuditEntry,
) -> Result<Outcome> {
    let id = InstallationId(e.installation.id);
    let account = account_name(&e.installation);
    let now = ingest.clock.now();
    let removed = repositories(&e.repositories_removed);
    let stranded: Vec<Objective> = work
        .store()
        .live_objectives()
        .await?
        .into_iter()
        .filter(|o| {
            o.installation_id == Some(id) && removed.iter().any(|(_, name)| *name == o.repository)
        })
        .collect();
    let tx = work.tx().await?;
    // The installation may be news to us (installed before foreman first ran).
    tx.ensure_installation(id, &account, now).await?;
    tx.add_repositories(id, &repositories(&e.repositories_added), now)
        .await?;
    tx.remove_repositories(id, &removed, now).await?;
    for objective in &stranded {
        let why = format!(
            "{} was removed from foreman's installation on {account}",
            objective.repository
        );
        lifecycle::hold_in(&ingest.objectives, tx, objective, &why).await?;
    }
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
