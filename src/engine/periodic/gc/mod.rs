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

pub mod target;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::engine::Engine;
use crate::engine::periodic::tick::{BoxFuture, TickTask};
use crate::engine::runtime::capacity::measure_free;
use crate::github::app::Access;
use crate::metrics::{add, inc};
use crate::model::WorkspaceId;
use crate::model::gc::{
    Check, Claim, GcWorkspace, PassClock, Plan, Rules, Snapshot, Trigger, decide, mirror_gc_due,
    pass_due, removable, verdict,
};
use crate::model::text::human_bytes;
use crate::store::AuditEntry;
use crate::workspace::{Inspect, LOCAL_TARGET, Upstream};
use target::{LocalTarget, Target};

/// A claim this old was left by a pass that died, and may be taken over.
pub const CLAIM_STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// A workspace still `preparing` this long after its last change, by a session that has
/// ended, was abandoned (longer than any git command may take).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60 * 60);

/// How GC behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSettings {
    /// Time between passes.
    pub interval: Duration,
    /// Free bytes the work root must keep: under it a pass runs at once and new checkouts
    /// wait. Zero turns the check off.
    pub min_free_disk: u64,
    /// Least time between two `git gc` runs of one mirror.
    pub mirror_gc_every: Duration,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            interval: Duration::from_secs(5 * 60),
            min_free_disk: 2 << 30,
            mirror_gc_every: Duration::from_secs(6 * 60 * 60),
        }
    }
}

impl GcSettings {
    pub fn from_args(args: &crate::config::GcArgs) -> GcSettings {
        GcSettings {
            interval: args.interval.max(Duration::from_millis(10)),
            min_free_disk: args.min_free_disk,
            mirror_gc_every: args.mirror_gc_every,
        }
    }
}

/// GC's state in the process: its settings, the lock that keeps passes from overlapping, when
/// passes ran, and the targets checkouts live on.
pub struct Gc {
    settings: Mutex<GcSettings>,
    running: Arc<tokio::sync::Mutex<()>>,
    clock: Mutex<PassClock>,
    targets: RwLock<HashMap<String, Arc<dyn Target>>>,
    /// This instance, on claims.
    by: String,
    /// This process's claim token.
    token: String,
}

impl Gc {
    pub fn new(runner: &str) -> Gc {
        use rand::RngExt;
        let nonce: u64 = rand::rng().random();
        let local: Arc<dyn Target> = Arc::new(LocalTarget);
        Gc {
            settings: Mutex::new(GcSettings::default()),
            running: Arc::new(tokio::sync::Mutex::new(())),
            clock: Mutex::new(PassClock::default()),
            targets: RwLock::new(HashMap::from([(LOCAL_TARGET.to_owned(), local)])),
            by: runner.to_owned(),
            token: format!("{runner}#{nonce:016x}"),
        }
    }

    pub fn settings(&self) -> GcSettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the settings (at startup, or at run time).
    pub fn configure(&self, settings: GcSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// Puts a target in place under `name` (tests wrap the local one).
    pub fn set_target(&self, name: &str, target: Arc<dyn Target>) {
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), target);
    }

    /// The target named `name`, if it exists.
    pub fn target(&self, name: &str) -> Option<Arc<dyn Target>> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Whether a pass is running in this process.
    pub fn is_running(&self) -> bool {
        self.running.try_lock().is_err()
    }

    pub fn pass_clock(&self) -> std::sync::MutexGuard<'_, PassClock> {
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

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
pub async fn run_pass(engine: &Engine, trigger: Trigger) -> Result<Option<PassReport>> {
    let Ok(_guard) = engine.gc.running.clone().try_lock_owned() else {
        return Ok(None);
    };
    pass(engine, trigger).await.map(Some)
}

/// Starts a pass in a task of its own, unless one is running in this process. True when
/// started.
pub fn spawn_pass(engine: &Arc<Engine>, trigger: Trigger) -> bool {
    let Ok(guard) = engine.gc.running.clone().try_lock_owned() else {
        return false;
    };
    let engine = engine.clone();
    tokio::spawn(async move {
        let _guard = guard;
        if let Err(e) = pass(&engine, trigger).await {
            tracing::warn!(trigger = trigger.as_str(), error = %format!("{e:#}"), "GC pass failed");
        }
    });
    true
}

/// The tick task: starts a pass when one is due (startup, interval, disk pressure, a request).
/// The pass runs in its own task; this returns at once.
pub struct GcTask {
    pub engine: Arc<Engine>,
}

impl TickTask for GcTask {
    fn name(&self) -> &'static str {
        "gc"
    }

    fn run<'a>(&'a self, _engine: &'a Engine) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let engine = &self.engine;
            let settings = engine.gc.settings();
            let free = measure_free(engine);
            let now = engine.clock.now();
            let clock = *engine.gc.pass_clock();
            let due = pass_due(&clock, now, settings.interval, free, settings.min_free_disk);
            let started = due.is_some_and(|trigger| spawn_pass(engine, trigger));
            let under = free.is_some_and(|f| f < settings.min_free_disk);
            let mut clock = engine.gc.pass_clock();
            *clock = clock.after(now, started, under);
            Ok(())
        })
    }
}

/// One pass.
async fn pass(engine: &Engine, trigger: Trigger) -> Result<PassReport> {
    let started = Instant::now();
    inc(&engine.metrics.gc_passes);
    let snapshot = engine.store.gc_snapshot().await?;
    let now = engine.clock.now();
    let rules = Rules {
        now,
        by: &engine.gc.by,
        token: &engine.gc.token,
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
                if let Err(e) = reclaim(engine, &snapshot, w, check, &why, &mut report).await {
                    tracing::warn!(workspace = %id, error = %format!("{e:#}"), "GC could not deal with a workspace");
                }
            }
        }
    }
    if let Err(e) = maintain_mirrors(engine).await {
        tracing::warn!(error = %format!("{e:#}"), "mirror maintenance failed");
    }
    let free = measure_free(engine);
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
        engine.tick_bell.notify_one();
    }
    Ok(report)
}

/// Reclaims one workspace, if it passes its check.
async fn reclaim(
    engine: &Engine,
    snapshot: &Snapshot,
    w: &GcWorkspace,
    check: Check,
    why: &str,
    report: &mut PassReport,
) -> Result<()> {
    let now = engine.clock.now();
    let claim = Claim {
        token: engine.gc.token.clone(),
        by: engine.gc.by.clone(),
        at: now,
    };
    let store = &engine.store;
    let take = || {
        store.claim_workspace(
            w.id,
            &claim,
            now.minus(CLAIM_STALE_AFTER),
            now.minus(ABANDONED_AFTER),
        )
    };
    let path = Path::new(&w.path);
    let Some(target) = engine.gc.target(&w.target) else {
        // Nothing to remove there any more, only a record to close.
        if take().await? {
            let reason = format!("its target `{}` no longer exists", w.target);
            vanished(engine, w, &claim, &reason, report).await?;
        }
        return Ok(());
    };
    // First without a claim: a checkout with work in it is never made unavailable, not even
    // while it is being looked at.
    if check != Check::Nothing
        && target.exists(path).await.unwrap_or(true)
        && let Err(keep) = examine(engine, target.as_ref(), snapshot, w, check).await
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
        return vanished(engine, w, &claim, "its checkout is already gone", report).await;
    }
    if check != Check::Nothing
        && let Err(keep) = examine(engine, target.as_ref(), snapshot, w, check).await
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
    let root = engine.agents.work_root.join("workspaces");
    if !removable(path, &root) {
        let keep = format!(
            "refusing to remove {}: it is not inside {}",
            w.path,
            root.display()
        );
        return failed(engine, w, &claim, keep, report).await;
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
                    &audit(engine, w, "workspace.reclaimed", detail),
                )
                .await?
            {
                inc(&engine.metrics.gc_workspaces_reclaimed);
                add(&engine.metrics.gc_bytes_freed, bytes);
                report.reclaimed.push(w.id);
                report.bytes_freed += bytes;
                tracing::info!(workspace = %w.id, path = %w.path, bytes, why, "checkout reclaimed");
            }
            Ok(())
        }
        Err(e) => failed(engine, w, &claim, format!("removal failed: {e:#}"), report).await,
    }
}

/// Records a removal that could not be done; the next pass tries again. Logged when the
/// reason changes, not every pass.
async fn failed(
    engine: &Engine,
    w: &GcWorkspace,
    claim: &Claim,
    why: String,
    report: &mut PassReport,
) -> Result<()> {
    inc(&engine.metrics.gc_removal_failures);
    report.failures += 1;
    if w.note.as_deref() != Some(why.as_str()) {
        tracing::warn!(workspace = %w.id, path = %w.path, why, "cannot reclaim a checkout; the next pass tries again");
    }
    engine
        .store
        .release_workspace_claim(w.id, &claim.token, Some(&why))
        .await?;
    report.kept.push((w.id, why));
    Ok(())
}

/// Archives a claimed workspace whose checkout (or target) is gone, without removing
/// anything.
async fn vanished(
    engine: &Engine,
    w: &GcWorkspace,
    claim: &Claim,
    reason: &str,
    report: &mut PassReport,
) -> Result<()> {
    let detail = format!(
        "objective {}: workspace {} ({}) archived without removal: {reason}",
        w.objective_id, w.id, w.path
    );
    if engine
        .store
        .archive_workspace(
            w.id,
            &claim.token,
            None,
            &audit(engine, w, "workspace.archived", detail),
        )
        .await?
    {
        inc(&engine.metrics.gc_workspaces_vanished);
        report.vanished.push(w.id);
        tracing::info!(workspace = %w.id, path = %w.path, reason, "workspace archived without removal");
    }
    Ok(())
}

/// Looks at the checkout's git state: `Err` says why it must be kept.
async fn examine(
    engine: &Engine,
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
    let auth = match (check, engine.github(), w.installation_id) {
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
    match target.inspect(&engine.workspaces, &what).await {
        Ok(found) => verdict(check, &found),
        Err(e) => Err(format!("cannot tell what it holds: {e:#}")),
    }
}

fn audit(engine: &Engine, w: &GcWorkspace, kind: &str, detail: String) -> AuditEntry {
    AuditEntry {
        at: engine.clock.now(),
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
async fn maintain_mirrors(engine: &Engine) -> Result<()> {
    let every = engine.gc.settings().mirror_gc_every;
    for repository in engine.workspaces.mirrors() {
        let now = engine.clock.now();
        let last = engine.store.mirror_gc_at(&repository).await?;
        let gc = mirror_gc_due(last, now, every);
        if let Err(e) = engine.workspaces.maintain_mirror(&repository, gc).await {
            tracing::warn!(repository, error = %format!("{e:#}"), "cannot maintain a mirror");
            continue;
        }
        if gc {
            tracing::info!(repository, "mirror repacked (git gc)");
        }
        if gc || last.is_none() {
            engine
                .store
                .record_mirror_gc(&repository, engine.clock.now())
                .await?;
        }
    }
    Ok(())
}
