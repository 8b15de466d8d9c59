//! The tick loop: the one place periodic work runs (scheduler, supervisor, outbox, reconcile,
//! GC plug in here as [`TickTask`]s). It wakes on an interval or early when rung. When several
//! instances share a database, a lease row picks the one that runs it: the holder renews the
//! lease every tick; if it dies, another takes over once the lease lapses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::engine::periodic::Periodic;
use crate::metrics::inc;

/// A tick task taking longer than this holds every other one up, which is worth a warning.
const SLOW_TASK: Duration = Duration::from_secs(5);

/// The lease's name in the store.
pub const TICK_LEASE: &str = "tick";

/// One piece of periodic work.
pub trait TickTask: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// The least time between two runs (zero: every tick).
    fn every(&self) -> Duration {
        Duration::ZERO
    }
    /// Does the work once. Errors are logged; the task runs again next time.
    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>>;
}

/// How the tick loop behaves.
#[derive(Debug, Clone)]
pub struct TickSettings {
    /// This instance's name on the lease.
    pub holder: String,
    /// Time between ticks when nothing rings the bell.
    pub interval: Duration,
    /// How long the lease lasts unless renewed.
    pub lease: Duration,
}

/// Runs ticks until `stop` is cancelled, then gives the lease up.
pub async fn run(
    periodic: Arc<Periodic>,
    settings: TickSettings,
    tasks: Vec<Box<dyn TickTask>>,
    stop: CancellationToken,
) {
    let mut last_run: Vec<Option<Instant>> = vec![None; tasks.len()];
    let mut holding = false;
    let mut renewed: Option<Instant> = None;
    let renew_every = settings.lease / 3;
    while !stop.is_cancelled() {
        // A holder renews at a third of the lease, not on every wake-up: an early wake-up
        // (the bell) then costs no write.
        if !holding || renewed.is_none_or(|at| at.elapsed() >= renew_every) {
            holding = take_lease(&periodic, &settings, holding).await;
            renewed = holding.then(Instant::now);
        }
        if holding {
            inc(&periodic.metrics.ticks);
            // The lease is renewed while the tasks run, however long they take (the outbox
            // spaces its comments out, a reconciliation pass reads many resources), by a task
            // of its own: a task may hold the database's writer across an await. If the
            // lease is lost all the same (the database was out of reach), the pass stops where
            // it is: another instance runs the work now. The renewer stops with the pass, and
            // with this loop if it is dropped mid-pass.
            let lost = CancellationToken::new();
            let renewer =
                tokio_util::task::AbortOnDropHandle::new(tokio::spawn(renew_during_pass(
                    periodic.clone(),
                    settings.clone(),
                    renew_every,
                    lost.clone(),
                )));
            let finished = tokio::select! {
                () = run_tasks(&periodic, &tasks, &mut last_run) => true,
                () = lost.cancelled() => false,
            };
            drop(renewer);
            if finished {
                periodic.tick_passes.send_modify(|passes| *passes += 1);
            } else {
                tracing::warn!("the tick lease was lost during a pass: the pass stops");
                holding = false;
                renewed = None;
            }
        }
        // A follower only needs to look again when the holder's lease may have lapsed.
        let wait = if holding {
            settings.interval
        } else {
            settings.interval.min(settings.lease / 2)
        };
        tokio::select! {
            _ = periodic.tick_bell.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {}
        }
    }
    if holding
        && let Err(e) = periodic
            .store
            .release_lease(TICK_LEASE, &settings.holder, periodic.clock.now())
            .await
    {
        tracing::warn!(error = %format!("{e:#}"), "cannot release the tick lease");
    }
}

/// Renews the lease `every` so often until aborted; cancels `lost` when it is lost.
async fn renew_during_pass(
    periodic: Arc<Periodic>,
    settings: TickSettings,
    every: Duration,
    lost: CancellationToken,
) {
    loop {
        tokio::time::sleep(every).await;
        if !take_lease(&periodic, &settings, true).await {
            lost.cancel();
            return;
        }
    }
}

/// Takes the lease, or renews it when `holding`; true when this instance holds it after.
/// Taking it over records the time nobody held it.
async fn take_lease(periodic: &Periodic, settings: &TickSettings, holding: bool) -> bool {
    let now = periodic.clock.now();
    // Before taking the lease: when the last holder's lapsed. Until now, no instance ran
    // anything.
    let lapsed = if holding {
        None
    } else {
        periodic.store.lease_expiry(TICK_LEASE).await.ok().flatten()
    };
    match periodic
        .store
        .try_acquire_lease(TICK_LEASE, &settings.holder, now, settings.lease)
        .await
    {
        Ok(held) => {
            if held != holding {
                tracing::info!(holder = %settings.holder, held, "tick lease changed hands");
            }
            if held
                && !holding
                && let Some(lapsed) = lapsed
            {
                record_downtime(periodic, now.since(lapsed), now).await;
            }
            held
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot take the tick lease");
            false
        }
    }
}

/// Runs every task that is due, one after another.
async fn run_tasks(
    periodic: &Arc<Periodic>,
    tasks: &[Box<dyn TickTask>],
    last_run: &mut [Option<Instant>],
) {
    for (task, last) in tasks.iter().zip(last_run.iter_mut()) {
        if last.is_some_and(|at| at.elapsed() < task.every()) {
            continue;
        }
        let started = Instant::now();
        *last = Some(started);
        tracing::trace!(task = task.name(), "tick task");
        if let Err(e) = task.run(periodic).await {
            tracing::warn!(task = task.name(), error = %format!("{e:#}"), "tick task failed");
        }
        if started.elapsed() > SLOW_TASK {
            tracing::warn!(
                task = task.name(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "slow tick task: periodic work was held up"
            );
        }
    }
}

/// Records that no instance ran for `gap`: live objectives' time budgets leave it out, so a
/// restart after a long outage does not find every objective over its time budget at once.
async fn record_downtime(periodic: &Periodic, gap: Duration, now: crate::model::Timestamp) {
    if gap.is_zero() {
        return;
    }
    match periodic.store.add_downtime(gap, now).await {
        Ok(objectives) if gap >= Duration::from_secs(60) => tracing::info!(
            down = %humantime::format_duration(Duration::from_secs(gap.as_secs())),
            objectives,
            "no foreman instance ran for a while: live objectives' time budgets leave it out"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot record the time nobody ran"),
    }
}

/// Deletes handled deliveries older than the retention period, so the inbox does not grow
/// without bound. Dead and pending deliveries are kept.
pub struct InboxRetention {
    pub keep: Duration,
}

impl TickTask for InboxRetention {
    fn name(&self) -> &'static str {
        "inbox-retention"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let before = periodic.clock.now().minus(self.keep);
            let pruned = periodic.store.prune_deliveries(before).await?;
            if pruned > 0 {
                tracing::info!(pruned, "pruned handled deliveries past retention");
            }
            Ok(())
        })
    }
}
