//! Percentiles of timings, as the start-up benchmarks print them.

use std::time::Duration;

/// The `p` quantile (0..=1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One line: `name`'s median and 95th percentile.
pub fn line(name: &str, sorted: &[Duration]) -> String {
    format!(
        "  {name:<11} median {}  p95 {}",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.95))
    )
}

/// One line: how much `slower`'s median and 95th percentile exceed `baseline`'s.
pub fn added(slower: &[Duration], baseline: &[Duration]) -> String {
    format!(
        "  added       median {}  p95 {}",
        ms(percentile(slower, 0.5).saturating_sub(percentile(baseline, 0.5))),
        ms(percentile(slower, 0.95).saturating_sub(percentile(baseline, 0.95)))
    )
}
