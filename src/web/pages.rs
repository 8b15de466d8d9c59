//! The pages, as pure functions of what the store holds (and who is looking). `maud` escapes
//! every value it is given, so agent output and issue text stay text.

use maud::{DOCTYPE, Markup, html};

use super::ObjectiveView;
use crate::agent::{self, AgentEvent, ParseState};
use crate::model::pulls::PullState;
use crate::model::question::{Question, QuestionStatus};
use crate::model::text::dollars;
use crate::model::time::minutes;
use crate::model::{AgentKind, Objective, PullRequest, Role, Session, Timestamp};
use crate::store::{TranscriptLine, WebSession};

/// One row of the objectives page.
pub struct ObjectiveRow {
    pub objective: Objective,
    pub sessions: Vec<Session>,
    pub pulls: Vec<PullRequest>,
    pub questions: Vec<Question>,
}

fn layout(title: &str, viewer: Option<&WebSession>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · foreman" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/objectives" { "foreman" }
                    @if let Some(v) = viewer {
                        span.who {
                            "@" (v.login)
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says something (errors, sign-out).
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! { h1 { (title) } p { (text) } p { a href="/objectives" { "Objectives" } } },
    )
}

/// A moment, in UTC to the second.
fn at(t: Timestamp) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.0.max(0) as u64);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

fn cost_line(o: &Objective, sessions: &[Session]) -> String {
    let cost: u64 = sessions.iter().map(|s| s.cost_micros).sum();
    match o.budget.cost_micros {
        Some(limit) => format!("{} of {}", dollars(cost), dollars(limit)),
        None => dollars(cost),
    }
}

fn time_line(o: &Objective, now: Timestamp) -> String {
    format!(
        "{} of {}",
        minutes(o.ended_at.unwrap_or(now).since(o.created_at)),
        minutes(o.budget.wall)
    )
}

fn turns_line(o: &Objective, sessions: &[Session]) -> String {
    let turns: u32 = sessions.iter().map(|s| s.turns).sum();
    format!("{turns} of {} turns", o.budget.turns)
}

fn state_badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// Every objective of the repositories the viewer can read: active ones, or ended ones.
pub fn objectives(
    viewer: &WebSession,
    rows: &[ObjectiveRow],
    ended: bool,
    now: Timestamp,
) -> Markup {
    let mut repositories: Vec<&str> = rows
        .iter()
        .map(|r| r.objective.repository.as_str())
        .collect();
    repositories.sort_unstable();
    repositories.dedup();
    layout(
        "Objectives",
        Some(viewer),
        html! {
            h1 { "Objectives" }
            nav.filters {
                a class=[(!ended).then_some("current")] href="/objectives" { "Active" }
                " · "
                a class=[ended.then_some("current")] href="/objectives?show=ended" { "Ended" }
            }
            @if rows.is_empty() {
                p.empty { "Nothing here: no " (if ended { "ended" } else { "active" }) " objectives in the repositories you can read." }
            }
            @for repository in &repositories {
                @let installation = rows.iter().find(|r| r.objective.repository == *repository).and_then(|r| r.objective.installation_id);
                h2 { (repository) @if let Some(i) = installation { small { " · installation " (i) } } }
                table.objectives {
                    thead { tr { th { "Issue" } th { "State" } th { "Manager" } th { "Workers" } th { "Pull requests" } th { "Questions" } th { "Time" } th { "Turns" } th { "Cost" } } }
                    tbody {
                        @for row in rows.iter().filter(|r| r.objective.repository == *repository) {
                            @let o = &row.objective;
                            @let manager = row.sessions.iter().rev().find(|s| s.role == Role::Manager);
                            @let workers: Vec<&Session> = row.sessions.iter().filter(|s| s.role != Role::Manager).collect();
                            @let live = workers.iter().filter(|s| !s.status.is_terminal()).count();
                            @let open = row.questions.iter().filter(|q| q.status == QuestionStatus::Open).count();
                            tr {
                                td { a href={ "/objectives/" (o.id) } { "#" (o.issue_number) " " (o.title) } }
                                td { (state_badge(o.status.as_str())) }
                                td { @if let Some(m) = manager { a href={ "/sessions/" (m.id) } { (m.status.as_str()) } } }
                                td { (live) " running · " (workers.len()) " in all" }
                                td {
                                    @for p in &row.pulls {
                                        a href=(p.url) { "#" (p.number) } " " (p.state.as_str())
                                        @if p.state == PullState::Open { " · checks " (p.checks.as_str()) }
                                        br;
                                    }
                                }
                                td { @if open > 0 { strong { (open) " open" } } }
                                td { (time_line(o, now)) }
                                td { (turns_line(o, &row.sessions)) }
                                td { (cost_line(o, &row.sessions)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn session_line(s: &Session, view: &ObjectiveView, viewer: &WebSession) -> Markup {
    let doing = s
        .result
        .as_deref()
        .or(s.status_reason.as_deref())
        .or(s.activity.as_deref())
        .or(s.summary.as_deref());
    html! {
        li.session {
            a href={ "/sessions/" (s.id) } { "#" (s.id) " " (s.role.as_str()) }
            " · " (s.title) " · " (state_badge(s.status.as_str()))
            @if !s.depends_on.is_empty() {
                " · after " @for d in &s.depends_on { a href={ "/sessions/" (d) } { "#" (d) } " " }
            }
            @if let Some(doing) = doing { div.doing { (doing) } }
            @if view.readable.may_command && s.role != Role::Manager && !s.status.is_terminal() {
                form.inline method="post" action={ "/sessions/" (s.id) "/cancel" } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button.danger type="submit" { "Cancel this worker" }
                }
            }
        }
    }
}

/// The children of `parent` (sessions it spawned), each with its own children.
fn session_tree(
    parent: Option<crate::model::SessionId>,
    view: &ObjectiveView,
    viewer: &WebSession,
) -> Markup {
    html! {
        ul.tree {
            @for s in view.sessions.iter().filter(|s| s.spawned_by == parent && (parent.is_some() || s.role == Role::Manager || !view.sessions.iter().any(|m| Some(m.id) == s.spawned_by))) {
                (session_line(s, view, viewer))
                @if view.sessions.iter().any(|c| c.spawned_by == Some(s.id)) {
                    (session_tree(Some(s.id), view, viewer))
                }
            }
        }
    }
}

/// One objective: what it is doing, who is working, what it asked, and everything that
/// happened to it.
pub fn objective(viewer: &WebSession, view: &ObjectiveView, now: Timestamp) -> Markup {
    let o = &view.readable.objective;
    let live = !o.status.is_terminal();
    layout(
        &format!("{}#{}", o.repository, o.issue_number),
        Some(viewer),
        html! {
            p.crumbs { a href="/objectives" { "Objectives" } " / " (o.repository) }
            h1 { "#" (o.issue_number) " " (o.title) " " (state_badge(o.status.as_str())) }
            p.facts {
                (time_line(o, now)) " · "
                (turns_line(o, &view.sessions)) " · "
                (view.sessions.len()) " of " (o.budget.sessions) " sessions · "
                (cost_line(o, &view.sessions))
            }
            @if let Some(reason) = &o.status_reason { p.reason { (reason) } }
            @if let Some(summary) = &o.summary { p.summary { strong { "Summary: " } (summary) } }
            @if live && view.readable.may_command {
                section.actions {
                    form method="post" action={ "/objectives/" (o.id) "/message" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label for="message" { "Message the manager" }
                        textarea id="message" name="text" rows="3" required {}
                        button type="submit" { "Send" }
                    }
                    form method="post" action={ "/objectives/" (o.id) "/stop" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button.danger type="submit" { "Stop this objective" }
                    }
                }
            }
            h2 { "Sessions" }
            (session_tree(None, view, viewer))
            @if !view.questions.is_empty() {
                h2 { "Questions" }
                ul.questions {
                    @for q in &view.questions {
                        li {
                            (state_badge(q.status.as_str())) " " (q.text)
                            @if let Some(a) = &q.answer {
                                div.answer { "Answer" @if let Some(by) = &q.answered_by { " by @" (by) } ": " (a) }
                            }
                            @if q.status == QuestionStatus::Open && view.readable.may_answer {
                                form method="post" action={ "/questions/" (q.id) "/answer" } {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    textarea name="text" rows="2" required {}
                                    button type="submit" { "Answer" }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.pulls.is_empty() {
                h2 { "Pull requests" }
                ul {
                    @for p in &view.pulls {
                        li { a href=(p.url) { "#" (p.number) " " (p.title) } " · " (p.state.as_str()) " · checks " (p.checks.as_str()) }
                    }
                }
            }
            @if !view.blocked.is_empty() {
                h2 { "Blocked network requests" }
                ul {
                    @for (session, b) in &view.blocked {
                        li { code { (b.host) } " · " (b.attempts) " attempts · " a href={ "/sessions/" (session) } { "#" (session) } }
                    }
                }
            }
            h2 { "Timeline" }
            ol.timeline {
                @for (when, kind, what) in timeline(view) {
                    li { time { (at(when)) } " " span.kind { (kind) } " " (what) }
                }
            }
        },
    )
}

/// Everything that happened to the objective, oldest first: the audit trail (supervisor
/// pokes, respawns, escalations, GC, force pushes, actions from this view), sessions started,
/// questions asked and answered.
fn timeline(view: &ObjectiveView) -> Vec<(Timestamp, String, String)> {
    let mut items: Vec<(Timestamp, String, String)> = view
        .audit
        .iter()
        .map(|e| (e.at, e.kind.clone(), e.detail.clone()))
        .collect();
    for s in &view.sessions {
        items.push((
            s.created_at,
            "session".to_owned(),
            format!("#{} {} started: {}", s.id, s.role.as_str(), s.title),
        ));
    }
    for q in &view.questions {
        items.push((q.created_at, "question".to_owned(), q.text.clone()));
    }
    items.sort_by_key(|(when, _, _)| *when);
    items
}

/// One session: its transcript, followed live while it runs.
pub fn session(
    viewer: &WebSession,
    view: &ObjectiveView,
    s: &Session,
    lines: &[(i64, TranscriptLine)],
) -> Markup {
    let o = &view.readable.objective;
    let after = lines.last().map(|(id, _)| *id).unwrap_or(0);
    let mut state = ParseState::default();
    layout(
        &format!("#{} {}", s.id, s.title),
        Some(viewer),
        html! {
            p.crumbs { a href="/objectives" { "Objectives" } " / " a href={ "/objectives/" (o.id) } { (o.repository) "#" (o.issue_number) } }
            h1 { "#" (s.id) " " (s.role.as_str()) " · " (s.title) " " span #status { (state_badge(s.status.as_str())) } }
            p.facts {
                (s.agent.as_str()) " · " (s.turns) " turns · " (s.input_tokens) " tokens in, " (s.output_tokens) " out · " (dollars(s.cost_micros))
            }
            @if let Some(activity) = &s.activity { p.doing { (activity) } }
            @let blocked: Vec<_> = view.blocked.iter().filter(|(id, _)| *id == s.id).map(|(_, b)| b).collect();
            @if !blocked.is_empty() {
                details.blocked {
                    summary { "Blocked network requests: " (blocked.len()) }
                    ul { @for b in &blocked { li { code { (b.host) } " · " (b.attempts) " attempts · last " (at(b.last_at)) } } }
                }
            }
            div #transcript data-live=[(!s.status.is_terminal()).then(|| format!("/sessions/{}/live", s.id))] data-after=(after) {
                (transcript(s.agent, lines, &mut state))
            }
        },
    )
}

/// Transcript lines as readable blocks: the agent's text, its tool calls folded with their
/// raw JSON, usage, errors highlighted.
pub fn transcript(
    agent: AgentKind,
    lines: &[(i64, TranscriptLine)],
    state: &mut ParseState,
) -> Markup {
    let adapter = agent::adapter(agent);
    html! {
        @for (_, line) in lines {
            @match line.stream.as_str() {
                "err" => div.line.err { time { (at(line.at)) } pre { (line.line) } },
                "out" => {
                    @let events = adapter.parse_line(&line.line, state);
                    @if events.is_empty() {
                        details.line.raw { summary { time { (at(line.at)) } " output" } pre { (line.line) } }
                    }
                    @for event in &events {
                        @match event {
                            AgentEvent::Output(text) => div.line.text { time { (at(line.at)) } div.body { (text) } },
                            AgentEvent::ToolCall(name) => details.line.tool { summary { time { (at(line.at)) } " tool " code { (name) } } pre { (line.line) } },
                            AgentEvent::Usage { input_tokens, output_tokens, cost_usd } => div.line.usage {
                                (input_tokens) " tokens in, " (output_tokens) " out"
                                @if let Some(c) = cost_usd { " · $" (format!("{c:.4}")) }
                            },
                            AgentEvent::TurnEnded { result, is_error } => div class={ "line result" @if *is_error { " error" } } {
                                time { (at(line.at)) } " turn ended" @if let Some(r) = result { div.body { (r) } }
                            },
                            AgentEvent::McpUnavailable(why) => div.line.err { "foreman's tools were unavailable: " (why) },
                            AgentEvent::Conversation(_) => {},
                        }
                    }
                },
                _ => div.line.note { time { (at(line.at)) } " " (line.line) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Readable;
    use super::*;
    use crate::model::repo_config::Permission;

    fn line(stream: &str, text: &str) -> (i64, TranscriptLine) {
        (
            1,
            TranscriptLine {
                at: Timestamp(0),
                stream: stream.into(),
                line: text.into(),
            },
        )
    }

    #[test]
    fn agent_output_stays_text() {
        let text = serde_json::json!({"type": "assistant", "message": {"content": [
            {"type": "text", "text": "<img src=x onerror=alert(1)>"},
            {"type": "tool_use", "id": "t", "name": "<b>Read</b>", "input": {"file_path": "</pre><script>x()</script>"}}
        ]}})
        .to_string();
        let lines = [
            line("err", "<script>alert(1)</script>"),
            line("out", &text),
            line("out", "not json <svg onload=x()>"),
        ];
        let html = transcript(AgentKind::Claude, &lines, &mut ParseState::default()).into_string();
        for raw in ["<script", "<img", "<svg", "<b>Read"] {
            assert!(!html.contains(raw), "{raw} in {html}");
        }
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains("class=\"line err\""),
            "errors are highlighted: {html}"
        );
        assert!(
            html.contains("<details class=\"line tool\""),
            "tool calls are folded: {html}"
        );
    }

    #[test]
    fn a_sessions_page_lists_what_its_network_refused() {
        use crate::model::session::fixtures;
        use crate::model::{SessionId, SessionStatus};
        let worker = fixtures::session(3, 1, Role::Worker, SessionStatus::Running);
        let blocked = |host: &str| crate::model::network::Blocked {
            host: host.into(),
            attempts: 2,
            first_at: Timestamp(0),
            last_at: Timestamp(0),
        };
        let view = ObjectiveView {
            readable: Readable {
                objective: fixtures::objective(1),
                permission: Permission::Read,
                may_command: false,
                may_answer: false,
            },
            sessions: vec![worker.clone()],
            pulls: Vec::new(),
            questions: Vec::new(),
            audit: Vec::new(),
            blocked: vec![
                (SessionId(3), blocked("evil.example:443")),
                (SessionId(4), blocked("other.example:443")),
            ],
        };
        let viewer = WebSession {
            id_hash: String::new(),
            login: "bob".into(),
            user_id: 1,
            token: secrecy::SecretString::from(String::new()),
            csrf: "c".into(),
            created_at: Timestamp(0),
            expires_at: Timestamp(1),
        };
        let html = session(&viewer, &view, &worker, &[]).into_string();
        assert!(html.contains("evil.example:443"), "{html}");
        assert!(!html.contains("other.example"), "another session's: {html}");
        assert!(
            html.contains("data-live=\"/sessions/3/live\""),
            "a running session is followed"
        );
    }
}
