//! Room for new checkouts: under the free-space threshold of the work root where it would go
//! (here, or on its remote target) a session waits for GC instead of failing half-way through
//! a checkout.

use anyhow::Result;

use crate::engine::runtime::Runtime;
use crate::metrics::inc;
use crate::model::Session;
use crate::model::text::human_bytes;
use crate::workspace::remote::Site;

/// How a session waiting for disk space says so (the start of its `activity`).
pub const DISK_WAIT: &str = "waiting for disk space";

/// Measures free space on the work root (and shows it in the metrics).
pub fn measure_free(runtime: &Runtime) -> Option<u64> {
    match crate::workspace::free_space(&runtime.agents.work_root) {
        Ok(free) => {
            runtime.metrics.work_root_free_bytes.set(free);
            Some(free)
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot measure free space on the work root");
            None
        }
    }
}

/// Whether a new checkout may be made for `session` now, here or on the remote target `site`.
/// Under the free-space threshold there it may not: a pass is asked for at once, and the
/// session records why it waits (its status says so) — it stays queued instead of failing
/// half-way through a checkout.
pub async fn checkout_allowed(
    runtime: &Runtime,
    session: &Session,
    site: Option<&Site>,
) -> Result<bool> {
    let min = runtime.gc.settings().min_free_disk;
    if min == 0 {
        return Ok(true);
    }
    let free = match site {
        None => measure_free(runtime),
        Some(site) => site.free_space().await.unwrap_or_else(|e| {
            tracing::debug!(target = site.name, error = %format!("{e:#}"), "cannot measure free space on a target");
            None
        }),
    };
    let Some(free) = free else {
        return Ok(true);
    };
    if free >= min {
        return Ok(true);
    }
    inc(&runtime.metrics.checkouts_refused);
    runtime.gc.pass_clock().requested = true;
    runtime.tick_bell.notify_one();
    let root = match site {
        None => "the work root".to_owned(),
        Some(site) => format!("the work root of target `{}`", site.name),
    };
    let why = format!(
        "{DISK_WAIT}: {} free on {root}, {} needed for a new checkout; finished checkouts are \
         being reclaimed",
        human_bytes(free),
        human_bytes(min)
    );
    if session
        .activity
        .as_deref()
        .is_none_or(|a| !a.starts_with(DISK_WAIT))
    {
        tracing::warn!(session = %session.id, why, "new checkout refused; the session waits");
    }
    runtime.store.note_session_waiting(session.id, &why).await?;
    Ok(false)
}
