//! Workspace GC: removes checkouts nothing can need any more, looks after the mirror cache,
//! and keeps the work root from filling up.
//!
//! The rules are pure functions in [`crate::model::gc`]; this module applies them. A pass runs
//! at startup (a sweep of what an earlier process left), every interval, and at once when free
//! space on the work root falls under the threshold. It runs in a task of its own, so a slow
//! removal never delays scheduling or the inbox; only the tick lease holder starts one, and
//! never while one is running in the process.
//!
//! Removing a checkout is exclusive by a claim in the store: the workspace becomes
//! `reclaiming` in a conditional update that also checks no live session works in, holds or
//! depends on it — the same row a session starting to use the workspace must update, so one of
//! the two wins. Under the claim, git confirms the checkout holds nothing that exists nowhere
//! else; only then is it removed and archived, with an entry in the audit trail. A checkout
//! with such work is looked at first without a claim, so it never becomes unavailable (to a
//! manager publishing it, say) just because a pass is looking.
//!
//! A removal that fails is left for the next pass (the workspace stays `reclaiming`, no longer
//! usable); a checkout or target that no longer exists is archived without removal. Why a
//! workspace could not be reclaimed is written on it and logged when it changes, not every
//! pass.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::engine::runtime::capacity::measure_free;
use crate::github::app::Access;
use crate::metrics::{add, inc};
use crate::model::WorkspaceId;
use crate::model::gc::{
    Check, Claim, GcWorkspace, Plan, Rules, Snapshot, Trigger, decide, mirror_gc_due, pass_due,
    removable, verdict,
};
use crate::model::text::human_bytes;
use crate::store::AuditEntry;
pub use crate::workspace::gc::{Gc, GcSettings};
use crate::workspace::target::Target;
use crate::workspace::{Inspect, Upstream};
use futures_util::future::BoxFuture;

/// A claim this old was left by a pass that died, and may be taken over.
pub const CLAIM_STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// A workspace still `preparing` this long after its last change, by a session that has
/// ended, was abandoned (longer than any git command may take).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60 * 60);

/// What a pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Workspaces whose checkout was removed.
    pub reclaimed: Vec<WorkspaceId>,
    /// Workspaces archived without removal (checkout or target gone).
    pub vanished: Vec<WorkspaceId>,
    pub bytes_freed: u64,
    /// Removals that failed (left for the next pass).
    pub failures: u32,
    /// Workspaces kept, and why.
    pub kept: Vec<(WorkspaceId, String)>,
}

/// Runs a pass now, unless one is running in this process (then `None`).
pub async fn run_pass(periodic: &Periodic, trigger: Trigger) -> Result<Option<PassReport>> {
    let Ok(_guard) = periodic.gc.running.clone().try_lock_owned() else {
        return Ok(None);
    };
    pass(periodic, trigger).await.map(Some)
}

/// Starts a pass in a task of its own, unless one is running in this process. True when
/// started.
pub fn spawn_pass(periodic: &Arc<Periodic>, trigger: Trigger) -> bool {
    let Ok(guard) = periodic.gc.running.clone().try_lock_owned() else {
        return false;
    };
    let periodic = periodic.clone();
    tokio::spawn(async move {
        let _guard = guard;
        if let Err(e) = pass(&periodic, trigger).await {
            tracing::warn!(trigger = trigger.as_str(), error = %format!("{e:#}"), "GC pass failed");
        }
    });
    true
}

/// The tick task: starts a pass when one is due (startup, interval, disk pressure, a request).
/// The pass runs in its own task; this returns at once.
pub struct GcTask;

impl TickTask for GcTask {
    fn name(&self) -> &'static str {
        "gc"
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let periodic = periodic;
            let settings = periodic.gc.settings();
            let free = measure_free(&periodic.runtime);
            let now = periodic.clock.now();
            let clock = *periodic.gc.pass_clock();
            let due = pass_due(&clock, now, settings.interval, free, settings.min_free_disk);
            let started = due.is_some_and(|trigger| spawn_pass(periodic, trigger));
            let under = free.is_some_and(|f| f < settings.min_free_disk);
            let mut clock = periodic.gc.pass_clock();
            *clock = clock.after(now, started, under);
            Ok(())
        })
    }
}

/// One pass.
async fn pass(periodic: &Periodic, trigger: Trigger) -> Result<PassReport> {
    let started = Instant::now();
    inc(&periodic.metrics.gc_passes);
    let snapshot = periodic.store.gc_snapshot().await?;
    let now = periodic.clock.now();
    let rules = Rules {
        now,
        by: &periodic.gc.by,
        token: &periodic.gc.token,
        claim_stale_after: CLAIM_STALE_AFTER,
        abandoned_after: ABANDONED_AFTER,
    };
    let mut report = PassReport::default();
    for (id, plan) in decide(&snapshot, &rules) {
        let Some(w) = snapshot.workspaces.iter().find(|w| w.id == id) else {
            continue;
        };
        match plan {
            Plan::Busy => {}
            Plan::Keep(why) => report.kept.push((id, why)),
            Plan::Reclaim { check, why } => {
                if let Err(e) = reclaim(periodic, &snapshot, w, check, &why, &mut report).await {
                    tracing::warn!(workspace = %id, error = %format!("{e:#}"), "GC could not deal with a workspace");
                }
            }
        }
    }
    if let Err(e) = maintain_mirrors(periodic).await {
        tracing::warn!(error = %format!("{e:#}"), "mirror maintenance failed");
    }
    let free = measure_free(&periodic.runtime);
    if report.reclaimed.is_empty() && report.vanished.is_empty() && report.failures == 0 {
        tracing::debug!(
            trigger = trigger.as_str(),
            kept = report.kept.len(),
            "GC pass: nothing to reclaim"
        );
    } else {
        tracing::info!(
            trigger = trigger.as_str(),
            reclaimed = report.reclaimed.len(),
            vanished = report.vanished.len(),
            freed = %human_bytes(report.bytes_freed),
            failures = report.failures,
            free = %free.map(human_bytes).unwrap_or_default(),
            took_ms = started.elapsed().as_millis() as u64,
            "GC pass"
        );
        // Sessions waiting for disk space may go now.
        periodic.tick_bell.notify_one();
    }
    Ok(report)
}

/// Reclaims one workspace, if it passes its check.
async fn reclaim(
    periodic: &Periodic,
    snapshot: &Snapshot,
    w: &GcWorkspace,
    check: Check,
    why: &str,
    report: &mut PassReport,
) -> Result<()> {
    let now = periodic.clock.now();
    let claim = Claim {
        token: periodic.gc.token.clone(),
        by: periodic.gc.by.clone(),
        at: now,
    };
    let store = &periodic.store;
    let take = || {
        store.claim_workspace(
            w.id,
            &claim,
            now.minus(CLAIM_STALE_AFTER),
            now.minus(ABANDONED_AFTER),
        )
    };
    let path = Path::new(&w.path);
    let Some(target) = periodic.gc.target(&w.target) else {
        // Nothing to remove there any more, only a record to close.
        if take().await? {
            let reason = format!("its target `{}` no longer exists", w.target);
            vanished(periodic, w, &claim, &reason, report).await?;
        }
        return Ok(());
    };
    // First without a claim: a checkout with work in it is never made unavailable, not even
    // while it is being looked at.
    if check != Check::Nothing
        && target.exists(path).await.unwrap_or(true)
        && let Err(keep) = examine(periodic, target.as_ref(), snapshot, w, check).await
    {
        if w.note.as_deref() != Some(keep.as_str()) {
            tracing::info!(workspace = %w.id, path = %w.path, why = keep, "GC keeps a checkout");
            store.set_workspace_note(w.id, Some(&keep)).await?;
        }
        report.kept.push((w.id, keep));
        return Ok(());
    }
    if !take().await? {
        report
            .kept
            .push((w.id, "a session started using it".to_owned()));
        return Ok(());
    }
    // Under the claim no session can start using it: this is the check that counts.
    if !target.exists(path).await.unwrap_or(true) {
        return vanished(periodic, w, &claim, "its checkout is already gone", report).await;
    }
    if check != Check::Nothing
        && let Err(keep) = examine(periodic, target.as_ref(), snapshot, w, check).await
    {
        if w.note.as_deref() != Some(keep.as_str()) {
            tracing::info!(workspace = %w.id, path = %w.path, why = keep, "GC keeps a checkout");
        }
        store
            .release_workspace_claim(w.id, &claim.token, Some(&keep))
            .await?;
        report.kept.push((w.id, keep));
        return Ok(());
    }
    // Checkouts are made under the work root of their target.
    let agents = &periodic.runtime.agents;
    let root = agents
        .targets
        .get(&w.target)
        .and_then(|t| t.work_root.clone())
        .unwrap_or_else(|| agents.work_root.clone())
        .join("workspaces");
    if !removable(path, &root) {
        let keep = format!(
            "refusing to remove {}: it is not inside {}",
            w.path,
            root.display()
        );
        return failed(periodic, w, &claim, keep, report).await;
    }
    if !store.mark_removing(w.id, &claim.token).await? {
        return Ok(()); // the claim was taken over meanwhile
    }
    match target.remove(path).await {
        Ok(bytes) => {
            let detail = format!(
                "objective {}: workspace {} ({}) reclaimed, {} freed: {why}",
                w.objective_id,
                w.id,
                w.path,
                human_bytes(bytes)
            );
            if store
                .archive_workspace(
                    w.id,
                    &claim.token,
                    Some(bytes),
                    &audit(periodic, w, "workspace.reclaimed", detail),
                )
                .await?
            {
                inc(&periodic.metrics.gc_workspaces_reclaimed);
                add(&periodic.metrics.gc_bytes_freed, bytes);
                report.reclaimed.push(w.id);
                report.bytes_freed += bytes;
                tracing::info!(workspace = %w.id, path = %w.path, bytes, why, "checkout reclaimed");
            }
            Ok(())
        }
        Err(e) => {
            failed(
                periodic,
                w,
                &claim,
                format!("removal failed: {e:#}"),
                report,
            )
            .await
        }
    }
}

/// Records a removal that could not be done; the next pass tries again. Logged when the
/// reason changes, not every pass.
async fn failed(
    periodic: &Periodic,
    w: &GcWorkspace,
    claim: &Claim,
    why: String,
    report: &mut PassReport,
) -> Result<()> {
    inc(&periodic.metrics.gc_removal_failures);
    report.failures += 1;
    if w.note.as_deref() != Some(why.as_str()) {
        tracing::warn!(workspace = %w.id, path = %w.path, why, "cannot reclaim a checkout; the next pass tries again");
    }
    periodic
        .store
        .release_workspace_claim(w.id, &claim.token, Some(&why))
        .await?;
    report.kept.push((w.id, why));
    Ok(())
}

/// Archives a claimed workspace whose checkout (or target) is gone, without removing
/// anything.
async fn vanished(
    periodic: &Periodic,
    w: &GcWorkspace,
    claim: &Claim,
    reason: &str,
    report: &mut PassReport,
) -> Result<()> {
    let detail = format!(
        "objective {}: workspace {} ({}) archived without removal: {reason}",
        w.objective_id, w.id, w.path
    );
    if periodic
        .store
        .archive_workspace(
            w.id,
            &claim.token,
            None,
            &audit(periodic, w, "workspace.archived", detail),
        )
        .await?
    {
        inc(&periodic.metrics.gc_workspaces_vanished);
        report.vanished.push(w.id);
        tracing::info!(workspace = %w.id, path = %w.path, reason, "workspace archived without removal");
    }
    Ok(())
}

/// Looks at the checkout's git state: `Err` says why it must be kept.
async fn examine(
    periodic: &Periodic,
    target: &dyn Target,
    snapshot: &Snapshot,
    w: &GcWorkspace,
    check: Check,
) -> Result<(), String> {
    let known: Vec<String> = snapshot
        .pulls
        .iter()
        .filter(|p| p.workspace_id == w.id)
        .map(|p| p.head_sha.clone())
        .collect();
    let auth = match (check, periodic.github.app(), w.installation_id) {
        (Check::NothingUnpushed, Some(app), Some(installation)) => {
            match app
                .installation_token(installation, &w.repository, Access::GitRead)
                .await
            {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "no token to ask the upstream with");
                    None
                }
            }
        }
        _ => None,
    };
    let branches: Vec<&str> = w
        .branch
        .iter()
        .map(String::as_str)
        .chain(Some(w.base_ref.as_str()).filter(|b| !b.is_empty()))
        .collect();
    let what = Inspect {
        path: Path::new(&w.path),
        repository: &w.repository,
        base_sha: w.base_sha.as_deref(),
        known: &known,
        upstream: (check == Check::NothingUnpushed).then_some(Upstream {
            repository: &w.repository,
            branches,
            auth: auth.as_ref(),
        }),
    };
    match target.inspect(&periodic.runtime.workspaces, &what).await {
        Ok(found) => verdict(check, &found),
        Err(e) => Err(format!("cannot tell what it holds: {e:#}")),
    }
}

fn audit(periodic: &Periodic, w: &GcWorkspace, kind: &str, detail: String) -> AuditEntry {
    AuditEntry {
        at: periodic.clock.now(),
        objective_id: Some(w.objective_id),
        delivery_id: None,
        installation_id: w.installation_id,
        repository_id: None,
        kind: kind.to_owned(),
        detail,
    }
}

/// Prunes every mirror's stale worktree metadata and, at most every so often per mirror
/// (remembered in the store), runs its `git gc`.
async fn maintain_mirrors(periodic: &Periodic) -> Result<()> {
    let every = periodic.gc.settings().mirror_gc_every;
    for repository in periodic.runtime.workspaces.mirrors() {
        let now = periodic.clock.now();
        let last = periodic.store.mirror_gc_at(&repository).await?;
        let gc = mirror_gc_due(last, now, every);
        if let Err(e) = periodic
            .runtime
            .workspaces
            .maintain_mirror(&repository, gc)
            .await
        {
            tracing::warn!(repository, error = %format!("{e:#}"), "cannot maintain a mirror");
            continue;
        }
        if gc {
            tracing::info!(repository, "mirror repacked (git gc)");
        }
        if gc || last.is_none() {
            periodic
                .store
                .record_mirror_gc(&repository, periodic.clock.now())
                .await?;
        }
    }
    Ok(())
}
