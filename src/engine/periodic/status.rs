//! The living status comment: one comment per objective, posted when it starts and edited in
//! place as things change. [`render`] is a pure function of what the store holds; the
//! [`StatusComments`] tick task edits the comment when the rendering changed, at most once per
//! [`MIN_EDIT_INTERVAL`] per objective (a burst of changes makes one edit), and once more when
//! the objective ends.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::github::rest::{self, RestError};
use crate::model::links::{objective_url, session_url};
use crate::model::markers::{marker_comment, status_marker};
use crate::model::network::Blocked;
use crate::model::pulls::{Ending, Mergeable, PullState, ending};
use crate::model::question::{Question, QuestionStatus};
use crate::model::targets::LOCAL;
use crate::model::text::{dollars, one_line};
use crate::model::time::minutes;
use crate::model::{
    InstallationId, Objective, ObjectiveStatus, PullRequest, Role, Session, SessionId,
    SessionStatus, Timestamp,
};
use futures_util::future::BoxFuture;

/// Least time between two edits of one status comment.
pub const MIN_EDIT_INTERVAL: Duration = Duration::from_secs(10);
/// Longest one-line result shown for a worker.
const RESULT_WIDTH: usize = 120;

/// Everything the status comment shows.
pub struct StatusView<'a> {
    pub objective: &'a Objective,
    pub sessions: &'a [Session],
    pub pulls: &'a [PullRequest],
    pub questions: &'a [Question],
    /// What the egress proxy refused the objective's agents, by session.
    pub blocked: &'a [(SessionId, Blocked)],
    /// foreman's public base URL, for links to its web view.
    pub public_url: Option<&'a str>,
}

/// The status comment's Markdown.
pub fn render(view: &StatusView<'_>, now: Timestamp) -> String {
    let o = view.objective;
    let mut out = String::new();
    let turns: u32 = view.sessions.iter().map(|s| s.turns).sum();
    let cost: u64 = view.sessions.iter().map(|s| s.cost_micros).sum();
    let elapsed = o.ended_at.unwrap_or(now).since(o.created_at);
    let headline = match o.status {
        ObjectiveStatus::Active if o.done_requested_at.is_some() => {
            "🟢 **foreman** has done the work: this issue is done when its pull requests are \
             merged."
                .to_owned()
        }
        ObjectiveStatus::Active => "🟢 **foreman** is working on this issue.".to_owned(),
        ObjectiveStatus::Waiting => "🟡 **foreman** is waiting for an answer from you.".to_owned(),
        ObjectiveStatus::Done => match ending(view.pulls, o.no_change_needed) {
            Ending::Merged { .. } => "✅ **foreman** has finished this issue.".to_owned(),
            Ending::NoChange => {
                "☑️ **foreman** has finished this issue: no change is needed.".to_owned()
            }
            Ending::NothingMerged => {
                "⚪ **foreman** has stopped without a merged change; the issue stays open for \
                 you."
                    .to_owned()
            }
        },
        ObjectiveStatus::Failed => format!(
            "❌ **foreman** could not finish this issue{}.",
            reason(o.status_reason.as_deref())
        ),
        ObjectiveStatus::Cancelled => format!(
            "🛑 **foreman** stopped working on this issue{}.",
            reason(o.status_reason.as_deref())
        ),
    };
    let _ = writeln!(out, "{headline}\n");
    let mut facts = vec![
        format!(
            "{} {}",
            if o.status.is_terminal() {
                "ran for"
            } else {
                "running for"
            },
            minutes(elapsed)
        ),
        format!("{turns} turn{}", plural(turns as usize)),
    ];
    match o.budget.cost_micros {
        // Spend against the budget, whenever there is one.
        Some(limit) => facts.push(format!("{} of {}", dollars(cost), dollars(limit))),
        None if cost > 0 => facts.push(dollars(cost)),
        None => {}
    }
    if let Some(base) = view.public_url {
        facts.push(format!("[view on foreman]({})", objective_url(base, o.id)));
    }
    let _ = writeln!(out, "<sub>{}</sub>\n", facts.join(" · "));
    if let Some(summary) = o
        .summary
        .as_deref()
        .filter(|_| o.status == ObjectiveStatus::Done)
    {
        let _ = writeln!(out, "**Summary:** {}\n", one_line(summary, 500));
    }
    if let Some(reached) = &o.budget_blocked {
        let _ = writeln!(
            out,
            "⏸️ New work is on hold: the budget is reached ({reached}).\n"
        );
    }
    if let Some(why) = o.held.as_deref().filter(|_| !o.status.is_terminal()) {
        let _ = writeln!(
            out,
            "⏹️ The work is stopped: {why}. Once foreman may act here again, someone who may \
             command foreman can say `/foreman resume`.\n"
        );
    }
    if let Some(by) = o
        .text_edited_by
        .as_deref()
        .filter(|_| !o.status.is_terminal())
    {
        let _ = writeln!(
            out,
            "✏️ The issue was edited by @{by}, who may not start foreman: the agents work \
             from the text as it was when foreman started. `/foreman retry` from someone who \
             may start foreman starts over from the text as it is now.\n"
        );
    }
    // Where sessions run, once some run elsewhere than on the foreman host.
    let show_targets = view
        .sessions
        .iter()
        .any(|s| s.target.as_deref().is_some_and(|t| t != LOCAL));
    if let Some(manager) = view.sessions.iter().rev().find(|s| s.role == Role::Manager)
        && !o.status.is_terminal()
    {
        let doing = manager
            .activity
            .as_deref()
            .map(|a| format!(" — {}", one_line(a, RESULT_WIDTH)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "**Manager:** {}{}{doing}\n",
            linked(view.public_url, manager.id, status_word(manager.status)),
            placed(manager, show_targets)
        );
    }
    let workers: Vec<&Session> = view
        .sessions
        .iter()
        .filter(|s| s.role != Role::Manager)
        .collect();
    if !workers.is_empty() {
        let _ = writeln!(
            out,
            "| Worker | Task | Status | Result |\n|---|---|---|---|"
        );
        for w in workers {
            let result = w
                .result
                .as_deref()
                .or(w.status_reason.as_deref())
                .or(w.summary.as_deref())
                .or(w.activity.as_deref())
                .map(|r| cell(&one_line(r, RESULT_WIDTH)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {}{} | {result} |",
                linked(view.public_url, w.id, &format!("#{}", w.id)),
                cell(&one_line(&w.title, 80)),
                status_word(w.status),
                placed(w, show_targets)
            );
        }
        out.push('\n');
    }
    if !view.pulls.is_empty() {
        let _ = writeln!(out, "**Pull requests**");
        for p in view.pulls {
            let checks = match p.checks.as_str() {
                _ if p.state == PullState::Closed => "",
                "passing" => " · checks passing ✅",
                "failing" => " · checks failing ❌",
                "pending" if p.state == PullState::Open => " · checks pending ⏳",
                _ => "",
            };
            let conflict =
                if p.state == PullState::Open && p.mergeable == Some(Mergeable::Conflicting) {
                    " · conflicts with its base ⚠️"
                } else {
                    ""
                };
            let decision = match (p.state, p.decision.as_deref()) {
                (PullState::Closed, Some(d)) => format!(" · {}", one_line(d, 160)),
                (PullState::Closed, None) => " · waiting for the manager's decision".to_owned(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "- #{} {} — {}{checks}{conflict}{decision}",
                p.number,
                one_line(&p.title, 80),
                p.state
            );
        }
        out.push('\n');
    }
    blocked_hosts(&mut out, view.blocked);
    let open: Vec<&Question> = view
        .questions
        .iter()
        .filter(|q| q.status == QuestionStatus::Open)
        .collect();
    if !open.is_empty() && !o.status.is_terminal() {
        let _ = writeln!(out, "**Waiting for you** — reply on this issue to answer:");
        for q in open {
            let _ = writeln!(out, "- {}", one_line(&q.text, 200));
        }
        out.push('\n');
    }
    if !o.status.is_terminal() {
        let _ = writeln!(
            out,
            "<sub>Commands: `/foreman status` · `/foreman stop` · `/foreman resume` · \
             `/foreman retry` · `/foreman help`</sub>\n"
        );
    }
    out.push_str(&marker_comment(&status_marker(o.id, &o.marker_nonce)));
    out
}

/// ` on TARGET` for a placed session, when targets are shown.
fn placed(session: &Session, show: bool) -> String {
    match session.target.as_deref() {
        Some(target) if show => format!(" on `{}`", cell(target)),
        _ => String::new(),
    }
}

/// `text` linking to the session's page, where foreman has a public address.
fn linked(base: Option<&str>, session: SessionId, text: &str) -> String {
    match base {
        Some(base) => format!("[{text}]({})", session_url(base, session)),
        None => text.to_owned(),
    }
}

/// Most blocked destinations listed.
const MAX_BLOCKED_SHOWN: usize = 10;

/// The destinations the allowlist refused, most attempted first, with the sessions that
/// tried: so a human can allow one that was legitimate.
fn blocked_hosts(out: &mut String, blocked: &[(SessionId, Blocked)]) {
    if blocked.is_empty() {
        return;
    }
    let mut by_host: Vec<(&str, u64, Vec<SessionId>)> = Vec::new();
    for (session, b) in blocked {
        match by_host.iter_mut().find(|(host, _, _)| *host == b.host) {
            Some((_, attempts, sessions)) => {
                *attempts += b.attempts;
                if !sessions.contains(session) {
                    sessions.push(*session);
                }
            }
            None => by_host.push((&b.host, b.attempts, vec![*session])),
        }
    }
    by_host.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(
        out,
        "**Blocked network requests** — the agents' allowlist refused these. If one was \
         needed, add it under `network.allow` in `.github/foreman.yml` (within what this \
         server permits):"
    );
    for (host, attempts, sessions) in by_host.iter().take(MAX_BLOCKED_SHOWN) {
        let who: Vec<String> = sessions.iter().map(|s| format!("#{s}")).collect();
        let _ = writeln!(
            out,
            "- `{}` — {attempts} attempt{} (session{} {})",
            cell(host),
            plural(usize::try_from(*attempts).unwrap_or(2)),
            plural(sessions.len()),
            who.join(", ")
        );
    }
    if by_host.len() > MAX_BLOCKED_SHOWN {
        let _ = writeln!(out, "- and {} more", by_host.len() - MAX_BLOCKED_SHOWN);
    }
    out.push('\n');
}

fn reason(reason: Option<&str>) -> String {
    reason
        .map(|r| format!(": {}", one_line(r, 200)))
        .unwrap_or_default()
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn status_word(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Queued => "⏳ queued",
        SessionStatus::Starting => "🔧 starting",
        SessionStatus::Running => "⚙️ working",
        SessionStatus::Idle => "💤 idle",
        SessionStatus::Waiting => "🟡 waiting for an answer",
        SessionStatus::Succeeded => "✅ done",
        SessionStatus::Failed => "❌ failed",
        SessionStatus::Cancelled => "🛑 cancelled",
    }
}

/// Edits status comments whose rendering changed.
#[derive(Default)]
pub struct StatusComments {
    /// Installations whose writes are paused by a rate limit, until when.
    paused: Mutex<HashMap<InstallationId, Timestamp>>,
}

impl TickTask for StatusComments {
    fn name(&self) -> &'static str {
        "status-comments"
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (objective, shown) in periodic.store.objectives_to_render().await? {
                if let Err(e) = self.refresh(periodic, &objective, shown.as_deref()).await {
                    tracing::warn!(objective = %objective.id, error = %format!("{e:#}"), "cannot update the status comment");
                }
            }
            Ok(())
        })
    }
}

impl StatusComments {
    async fn refresh(
        &self,
        periodic: &Periodic,
        objective: &Objective,
        shown: Option<&str>,
    ) -> Result<()> {
        let now = periodic.clock.now();
        let (Some(comment), Some(installation)) =
            (objective.status_comment_id, objective.installation_id)
        else {
            return Ok(());
        };
        if self
            .paused()
            .get(&installation)
            .is_some_and(|until| *until > now)
        {
            return Ok(());
        }
        let store = &periodic.store;
        if store
            .standing(installation, Some(&objective.repository))
            .await?
            .is_some()
        {
            // Nothing is posted where foreman may not act; it catches up once it may.
            return Ok(());
        }
        let sessions = store.sessions_of(objective.id).await?;
        let pulls = store.pulls_of(objective.id).await?;
        let questions = store.questions_of(objective.id).await?;
        let blocked = store.blocked_egress_of(objective.id).await?;
        let public_url = periodic.github.public_url();
        let view = StatusView {
            objective,
            sessions: &sessions,
            pulls: &pulls,
            questions: &questions,
            blocked: &blocked,
            public_url: public_url.as_deref(),
        };
        let rendered = render(&view, now);
        let last = objective.status.is_terminal();
        // Only the elapsed time changed: not worth an edit.
        if shown.is_some_and(|s| without_time(s) == without_time(&rendered)) && !last {
            return Ok(());
        }
        let edited_recently = store
            .status_edited_at(objective.id)
            .await?
            .is_some_and(|at| now.since(at) < MIN_EDIT_INTERVAL);
        if edited_recently && !last {
            return Ok(());
        }
        let app = periodic
            .github
            .app()
            .context("the GitHub App is not configured")?;
        let client = app
            .installation_client(installation, &objective.repository)
            .await?;
        match rest::edit_comment(&client, &objective.repository, comment, &rendered).await {
            Ok(()) => {
                store
                    .status_rendered(objective.id, &rendered, last, now)
                    .await
            }
            Err(RestError::RateLimited { retry_after, .. }) => {
                self.paused().insert(installation, now.plus(retry_after));
                Ok(())
            }
            Err(RestError::Status { status: 404, .. }) => {
                // Someone deleted it: stop editing rather than failing every pass.
                tracing::warn!(objective = %objective.id, "the status comment is gone");
                store
                    .status_rendered(objective.id, &rendered, true, now)
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    fn paused(&self) -> std::sync::MutexGuard<'_, HashMap<InstallationId, Timestamp>> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The rendering without the line that carries the elapsed time.
fn without_time(rendered: &str) -> String {
    rendered
        .lines()
        .filter(|l| !l.starts_with("<sub>"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectiveId;
    use crate::model::QuestionId;
    use crate::model::session::fixtures;

    fn blocked(host: &str, attempts: u64) -> Blocked {
        Blocked {
            host: host.into(),
            attempts,
            first_at: Timestamp(0),
            last_at: Timestamp(0),
        }
    }

    fn question(text: &str, status: &str) -> Question {
        Question {
            id: QuestionId(4),
            objective_id: ObjectiveId(1),
            session_id: None,
            kind: crate::model::question::QuestionKind::Agent,
            text: text.into(),
            context: None,
            status: QuestionStatus::parse(status).unwrap(),
            answer: None,
            answered_by: None,
            created_at: Timestamp(0),
            comment_id: None,
            answer_comment_id: None,
        }
    }

    fn pull() -> PullRequest {
        PullRequest {
            id: 1,
            objective_id: ObjectiveId(1),
            workspace_id: None,
            session_id: Some(SessionId(3)),
            repository: "octo/widgets".into(),
            number: 12,
            branch: "foreman/42-fix-s3".into(),
            base_ref: "main".into(),
            head_sha: "abc".into(),
            state: crate::model::pulls::PullState::Open,
            checks: crate::model::pulls::Checks::Passing,
            title: "Fix the parser".into(),
            url: "https://github.com/octo/widgets/pull/12".into(),
            closes_issue: true,
            updated_at: Timestamp(0),
            mergeable: None,
            decision: None,
            checks_sha: None,
            checks_detail: None,
        }
    }

    #[test]
    fn an_active_objective() {
        let objective = fixtures::objective(1);
        let mut manager = fixtures::session(2, 1, Role::Manager, SessionStatus::Idle);
        manager.activity = Some("calling mcp__foreman__spawn_worker".into());
        manager.turns = 3;
        manager.cost_micros = 420_000;
        let mut done = fixtures::session(3, 1, Role::Worker, SessionStatus::Succeeded);
        done.title = "Fix the parser | lexer".into();
        done.result = Some("Parser handles nested braces now.\nDetails follow.".into());
        done.turns = 1;
        let running = fixtures::session(4, 1, Role::Worker, SessionStatus::Running);
        let sessions = [manager, done, running];
        let mut conflicting = pull();
        conflicting.number = 13;
        conflicting.checks = crate::model::pulls::Checks::Failing;
        conflicting.mergeable = Some(crate::model::pulls::Mergeable::Conflicting);
        let mut abandoned = pull();
        abandoned.number = 14;
        abandoned.state = crate::model::pulls::PullState::Closed;
        abandoned.decision = Some("abandoned by the manager: done upstream".into());
        let mut undecided = pull();
        undecided.number = 15;
        undecided.state = crate::model::pulls::PullState::Closed;
        let pulls = [pull(), conflicting, abandoned, undecided];
        let questions = [
            question("Which colour should the widget be?", "open"),
            question("Old?", "answered"),
        ];
        let blocked = [
            (SessionId(3), blocked("evil.example:443", 3)),
            (SessionId(4), blocked("evil.example:443", 1)),
            (SessionId(4), blocked("pastebin.example:80", 1)),
        ];
        let view = StatusView {
            objective: &objective,
            sessions: &sessions,
            pulls: &pulls,
            questions: &questions,
            blocked: &blocked,
            public_url: Some("https://foreman.example"),
        };
        let text = render(&view, Timestamp(0).plus(Duration::from_secs(12 * 60 + 5)));
        crate::assert_text_snapshot!("status_active", &text);
    }

    #[test]
    fn sessions_name_their_target_once_some_run_elsewhere() {
        let objective = fixtures::objective(1);
        let mut manager = fixtures::session(2, 1, Role::Manager, SessionStatus::Idle);
        manager.target = Some(LOCAL.into());
        let mut worker = fixtures::session(3, 1, Role::Worker, SessionStatus::Running);
        worker.target = Some("big-1".into());
        let queued = fixtures::session(4, 1, Role::Worker, SessionStatus::Queued);
        let sessions = [manager, worker, queued];
        let view = StatusView {
            objective: &objective,
            sessions: &sessions,
            pulls: &[],
            questions: &[],
            blocked: &[],
            public_url: None,
        };
        let text = render(&view, Timestamp(0));
        assert!(text.contains("**Manager:** 💤 idle on `local`\n"), "{text}");
        assert!(
            text.contains("| #3 | Task 3 | ⚙️ working on `big-1` |"),
            "{text}"
        );
        assert!(text.contains("| #4 | Task 4 | ⏳ queued |"), "{text}");
        let local_only = [sessions[0].clone()];
        let text = render(
            &StatusView {
                sessions: &local_only,
                ..view
            },
            Timestamp(0),
        );
        assert!(text.contains("**Manager:** 💤 idle\n"), "{text}");
    }

    #[test]
    fn finished_and_stopped_objectives() {
        let mut done = fixtures::objective(1);
        done.status = ObjectiveStatus::Done;
        done.summary = Some("Fixed the parser and added tests.".into());
        done.ended_at = Some(Timestamp(0).plus(Duration::from_secs(3 * 3600 + 7 * 60)));
        let sessions = [fixtures::session(
            2,
            1,
            Role::Manager,
            SessionStatus::Succeeded,
        )];
        let mut merged = pull();
        merged.state = crate::model::pulls::PullState::Merged;
        let view = StatusView {
            objective: &done,
            sessions: &sessions,
            pulls: &[merged],
            questions: &[],
            blocked: &[],
            public_url: None,
        };
        crate::assert_text_snapshot!("status_done", &render(&view, Timestamp(99_999_999)));

        let mut stopped = fixtures::objective(1);
        stopped.status = ObjectiveStatus::Cancelled;
        stopped.status_reason = Some("stopped by @alice with /foreman stop".into());
        stopped.ended_at = Some(Timestamp(30_000));
        let view = StatusView {
            objective: &stopped,
            sessions: &[],
            pulls: &[],
            questions: &[question("Unanswered?", "cancelled")],
            blocked: &[],
            public_url: None,
        };
        crate::assert_text_snapshot!("status_stopped", &render(&view, Timestamp(99_999_999)));
    }
}
