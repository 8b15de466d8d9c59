//! What the turn start-up benchmarks share: the turn they start, how they finish it, and the
//! percentiles they print.

use std::path::Path;
use std::time::Duration;

use foreman::agent::TurnCommand;
use foreman::engine::runtime::process::{AgentProcess, Stream};

/// A turn's command: reads the prompt foreman wrote for it, says one line, exits.
pub fn command(state: &Path) -> TurnCommand {
    TurnCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            "cat \"$HOME/prompt.md\" > /dev/null; echo ok".into(),
        ],
        files: vec![(state.join("prompt.md"), "the prompt".into())],
        ..TurnCommand::default()
    }
}

/// The environment the turn gets.
pub fn env(state: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), state.display().to_string()),
    ]
}

/// Reads a turn's output to the end and waits for it; it must have said its line and exited
/// well. (Standard error is not the turn's alone: a target's login shell may write there.)
pub async fn finish(mut process: AgentProcess) {
    let mut lines = Vec::new();
    while let Some((stream, line)) = process.lines.recv().await {
        if stream == Stream::Out {
            lines.push(line);
        }
    }
    let status = process.wait().await.expect("wait");
    assert!(status.success() && lines == ["ok"], "{status} {lines:?}");
}

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
