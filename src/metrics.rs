//! Counters and histograms for `/metrics`, rendered in the Prometheus text format.
//!
//! A handful of fixed metrics kept in atomics: cheap to update on the hot path, no registry.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the processing-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            let n = bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every metric foreman exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Deliveries stored by the ingress (duplicates not counted).
    pub deliveries_received: AtomicU64,
    /// Deliveries acknowledged as already stored (redeliveries).
    pub deliveries_duplicate: AtomicU64,
    /// Requests refused at the ingress (bad signature, bad body, database down).
    pub deliveries_rejected: AtomicU64,
    /// Deliveries handled (processed or skipped).
    pub deliveries_processed: AtomicU64,
    /// Failed handling attempts.
    pub deliveries_failed: AtomicU64,
    /// Deliveries parked as dead.
    pub deliveries_dead: AtomicU64,
    /// Time from receipt to handled.
    pub processing_latency: Histogram,
    /// Tick passes run while holding the lease.
    pub ticks: AtomicU64,
    /// Stalled managers the supervisor gave a turn.
    pub supervisor_pokes: AtomicU64,
    /// Managers the supervisor started in place of one that ended.
    pub supervisor_respawns: AtomicU64,
    /// Objectives the supervisor handed to the humans.
    pub supervisor_escalations: AtomicU64,
    /// Reconciliation passes run.
    pub reconcile_passes: AtomicU64,
    /// What reconciliation repaired (a lost webhook's effect applied late).
    pub reconcile_repairs: AtomicU64,
    /// Workspace GC passes run.
    pub gc_passes: AtomicU64,
    /// Checkouts GC removed.
    pub gc_workspaces_reclaimed: AtomicU64,
    /// Workspaces GC archived without removal (checkout or target gone).
    pub gc_workspaces_vanished: AtomicU64,
    /// Bytes the removed checkouts took.
    pub gc_bytes_freed: AtomicU64,
    /// Removals that failed (each is tried again by the next pass).
    pub gc_removal_failures: AtomicU64,
    /// New checkouts refused because the work root was short of space.
    pub checkouts_refused: AtomicU64,
    /// Free space on the work root, when measured.
    pub work_root_free_bytes: Gauge,
}

/// A value that goes up and down; unknown until first set.
#[derive(Debug)]
pub struct Gauge(AtomicU64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(AtomicU64::new(u64::MAX))
    }
}

impl Gauge {
    pub fn set(&self, value: u64) {
        self.0.store(value.min(u64::MAX - 1), Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|v| *v != u64::MAX)
    }
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// The Prometheus text exposition, with gauges read by the caller (`inbox_depth`).
    pub fn render(&self, inbox_depth: Option<u64>) -> String {
        let mut out = String::new();
        let counters = [
            (
                "foreman_deliveries_received_total",
                "Webhook deliveries stored.",
                &self.deliveries_received,
            ),
            (
                "foreman_deliveries_duplicate_total",
                "Redelivered webhook deliveries acknowledged without storing again.",
                &self.deliveries_duplicate,
            ),
            (
                "foreman_deliveries_rejected_total",
                "Webhook requests refused (signature, body or database).",
                &self.deliveries_rejected,
            ),
            (
                "foreman_deliveries_processed_total",
                "Webhook deliveries handled.",
                &self.deliveries_processed,
            ),
            (
                "foreman_deliveries_failed_total",
                "Failed attempts at handling a delivery.",
                &self.deliveries_failed,
            ),
            (
                "foreman_deliveries_dead_total",
                "Deliveries parked as dead after too many failures.",
                &self.deliveries_dead,
            ),
            (
                "foreman_ticks_total",
                "Tick passes run by this instance.",
                &self.ticks,
            ),
            (
                "foreman_supervisor_pokes_total",
                "Stalled managers the supervisor gave a turn.",
                &self.supervisor_pokes,
            ),
            (
                "foreman_supervisor_respawns_total",
                "Managers the supervisor started in place of one that ended.",
                &self.supervisor_respawns,
            ),
            (
                "foreman_supervisor_escalations_total",
                "Objectives the supervisor handed to the humans after its respawn budget.",
                &self.supervisor_escalations,
            ),
            (
                "foreman_reconcile_passes_total",
                "Reconciliation passes run.",
                &self.reconcile_passes,
            ),
            (
                "foreman_reconcile_repairs_total",
                "Effects of lost webhooks that reconciliation applied.",
                &self.reconcile_repairs,
            ),
            (
                "foreman_gc_passes_total",
                "Workspace GC passes run.",
                &self.gc_passes,
            ),
            (
                "foreman_gc_workspaces_reclaimed_total",
                "Checkouts removed by workspace GC.",
                &self.gc_workspaces_reclaimed,
            ),
            (
                "foreman_gc_workspaces_vanished_total",
                "Workspaces archived without removal because their checkout or target was gone.",
                &self.gc_workspaces_vanished,
            ),
            (
                "foreman_gc_bytes_freed_total",
                "Bytes on disk freed by removing checkouts.",
                &self.gc_bytes_freed,
            ),
            (
                "foreman_gc_removal_failures_total",
                "Checkout removals that failed (retried by the next pass).",
                &self.gc_removal_failures,
            ),
            (
                "foreman_checkouts_refused_total",
                "New checkouts refused because the work root was short of space.",
                &self.checkouts_refused,
            ),
        ];
        for (name, help, value) in counters {
            let v = value.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        self.processing_latency.render(
            &mut out,
            "foreman_delivery_processing_seconds",
            "Time from receiving a delivery to having handled it.",
        );
        if let Some(free) = self.work_root_free_bytes.get() {
            let _ = writeln!(
                out,
                "# HELP foreman_work_root_free_bytes Free space on the file system of the work root.\n\
                 # TYPE foreman_work_root_free_bytes gauge\nforeman_work_root_free_bytes {free}"
            );
        }
        if let Some(depth) = inbox_depth {
            let _ = writeln!(
                out,
                "# HELP foreman_inbox_depth Deliveries waiting to be handled.\n\
                 # TYPE foreman_inbox_depth gauge\nforeman_inbox_depth {depth}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.processing_latency.observe(Duration::from_millis(3));
        m.processing_latency.observe(Duration::from_secs(20));
        inc(&m.deliveries_received);
        let text = m.render(Some(4));
        assert!(text.contains("foreman_delivery_processing_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("foreman_delivery_processing_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("foreman_delivery_processing_seconds_bucket{le=\"10\"} 1"));
        assert!(text.contains("foreman_delivery_processing_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("foreman_deliveries_received_total 1"));
        assert!(text.contains("foreman_inbox_depth 4"));
    }

    #[test]
    fn free_space_is_shown_once_measured() {
        let m = Metrics::default();
        assert!(!m.render(None).contains("foreman_work_root_free_bytes"));
        m.work_root_free_bytes.set(1234);
        add(&m.gc_bytes_freed, 10);
        add(&m.gc_bytes_freed, 5);
        let text = m.render(None);
        assert!(text.contains("foreman_work_root_free_bytes 1234"), "{text}");
        assert!(text.contains("foreman_gc_bytes_freed_total 15"), "{text}");
    }
}
