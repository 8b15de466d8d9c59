//! The conversation on an issue: the trigger label starts an objective, removing it (or
//! closing the issue) stops it, `/foreman` commands steer it, and other comments from people
//! allowed to steer reach the manager as news.
//!
//! Webhooks can arrive twice, late, or out of order, so the decisions here rest on the issue
//! as it stands now (read from GitHub) rather than on what an event said it was, and the
//! label event that starts an objective is remembered so it can start only one.

use anyhow::{Context, Result};
use octocrab::Octocrab;

use crate::engine::ingest::Ingest;
use crate::engine::ingest::replies;
use crate::engine::ingest::work::{Outcome, Work};
use crate::engine::objective::lifecycle;
use crate::github::events::Issue;
use crate::github::events::{
    IssueCommentAction, IssueCommentEvent, IssuesAction, IssuesEvent, User,
};
use crate::github::rest;
use crate::model::repo_config::{Permission, RepoConfig};
use crate::model::text::{Author, fence};
use crate::model::{InstallationId, Objective, ObjectiveStatus};
use crate::store::{NewObjective, Thread};

/// A `/foreman` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    Stop,
    Resume,
    Retry,
    /// Approves the manager's plan.
    Approve,
    Help,
    /// Something foreman does not know.
    Unknown(String),
}

/// The command a comment gives, if its first line is one.
pub fn parse_command(body: &str) -> Option<Command> {
    let first = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    let rest = first.strip_prefix("/foreman")?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None; // "/foremanx" is not a command
    }
    let word = rest
        .split_whitespace()
        .next()
        .unwrap_or("help")
        .to_ascii_lowercase();
    Some(match word.as_str() {
        "status" => Command::Status,
        "stop" | "cancel" => Command::Stop,
        "resume" | "continue" => Command::Resume,
        "retry" | "restart" => Command::Retry,
        "approve" => Command::Approve,
        "help" => Command::Help,
        _ => Command::Unknown(word),
    })
}

/// The facts every issue handler needs.
struct IssueContext<'a> {
    ingest: &'a Ingest,
    client: Octocrab,
    installation: InstallationId,
    repository: &'a str,
    issue: u64,
}

impl IssueContext<'_> {
    /// Queues a reply on the issue, once per `key` (a delivery id makes it once per event).
    async fn reply(&self, work: &mut Work<'_>, key: &str, body: String) -> Result<()> {
        let marker = format!("reply-{key}");
        let now = self.ingest.clock.now();
        work.tx()
            .await?
            .enqueue(&self.thread().comment(&body, marker), now)
            .await
    }

    /// The issue, as a place to post (for no objective).
    fn thread(&self) -> Thread<'_> {
        Thread {
            objective_id: None,
            installation_id: self.installation,
            repository: self.repository,
            issue_number: self.issue,
        }
    }

    /// Acknowledges a comment with a reaction.
    async fn react(&self, work: &mut Work<'_>, comment: i64, content: &str) -> Result<()> {
        let now = self.ingest.clock.now();
        let marker = format!("react-{comment}-{content}");
        work.tx()
            .await?
            .enqueue(
                &self.thread().comment_reaction(comment, content, marker),
                now,
            )
            .await
    }

    async fn permission(&self, login: &str) -> Result<Permission> {
        let now = self.ingest.clock.now();
        self.ingest
            .repos
            .permission(&self.client, self.repository, login, now)
            .await
    }

    /// `login`'s permission now, and whether it may start foreman (`permissions.trigger`).
    async fn may_start(&self, login: &str, config: &RepoConfig) -> Result<(Permission, bool)> {
        let permission = self.permission(login).await?;
        let allowed =
            crate::github::repos::allowed(permission, config.permissions.trigger, login, config);
        Ok((permission, allowed))
    }

    async fn config(
        &self,
        default_branch: Option<&str>,
    ) -> Result<Result<RepoConfig, crate::model::repo_config::ConfigError>> {
        let now = self.ingest.clock.now();
        self.ingest
            .repos
            .config(&self.client, self.repository, default_branch, now)
            .await
    }
}

async fn context<'a>(
    ingest: &'a Ingest,
    installation: Option<i64>,
    repository: &'a str,
    issue: i64,
) -> Result<Option<IssueContext<'a>>> {
    let Some(id) = installation else {
        return Ok(None);
    };
    let Some(client) = ingest
        .github
        .installation_client(Some(id), repository)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(IssueContext {
        ingest,
        client,
        installation: InstallationId(id),
        repository,
        issue: u64::try_from(issue).context("negative issue number")?,
    }))
}

/// Who sent an `issues` event.
fn sender_of(e: &IssuesEvent) -> &str {
    e.sender
        .as_ref()
        .map(|u| u.login.as_str())
        .unwrap_or_default()
}

/// Whether a GitHub account is a bot (foreman itself included).
fn is_bot(user: Option<&User>) -> bool {
    user.is_none_or(|u| u.is_bot())
}

/// `issues` events: the label, closing and reopening.
pub async fn issues_event(
    ingest: &Ingest,
    work: &mut Work<'_>,
    delivery: &str,
    e: &IssuesEvent,
) -> Result<Outcome> {
    let repository = &e.repository.full_name;
    let Some(cx) = context(
        ingest,
        e.installation.map(|i| i.id),
        repository,
        e.issue.number,
    )
    .await?
    else {
        return Ok(Outcome::Skipped(
            "no GitHub App installation to act through".to_owned(),
        ));
    };
    let config = match cx.config(e.repository.default_branch.as_deref()).await? {
        Ok(config) => config,
        Err(error) => {
            // Say so only where someone just asked for foreman.
            let label = e.label.as_ref().map(|l| l.name.as_str());
            if e.action.kind() == IssuesAction::Labeled
                && label == Some(crate::model::repo_config::DEFAULT_TRIGGER_LABEL)
            {
                cx.reply(work, delivery, replies::bad_config(&error))
                    .await?;
                return Ok(Outcome::Processed);
            }
            return Ok(Outcome::Skipped(format!(
                "the repository config is invalid: {error}"
            )));
        }
    };
    let label = &config.trigger_label;
    let is_trigger = e
        .label
        .as_ref()
        .is_some_and(|l| l.name.eq_ignore_ascii_case(label));
    match e.action.kind() {
        IssuesAction::Labeled if is_trigger => {
            if is_bot(e.sender.as_ref()) {
                return Ok(Outcome::Skipped("bots never start foreman".to_owned()));
            }
            if e.issue.is_pull_request() {
                cx.reply(work, delivery, replies::not_an_issue(label))
                    .await?;
                return Ok(Outcome::Processed);
            }
            let sender = sender_of(e);
            if !cx.may_start(sender, &config).await?.1 {
                // Told once an hour on this issue, however often they try.
                let hour = cx.ingest.clock.now().unix_seconds() / 3600;
                let key = format!("{repository}#{}-may-not-{sender}-{hour}", cx.issue);
                cx.reply(
                    work,
                    &key,
                    replies::may_not_trigger(sender, label, &config.permissions),
                )
                .await?;
                return Ok(Outcome::Processed);
            }
            if work
                .store()
                .live_objective(repository, cx.issue)
                .await?
                .is_some()
            {
                return Ok(Outcome::Skipped(
                    "the issue already has a live objective".to_owned(),
                ));
            }
            let trigger_key = e
                .issue
                .updated_at
                .as_ref()
                .map(|at| format!("{repository}#{}:{label}:{at}", cx.issue));
            start(
                &cx,
                work,
                &e.issue,
                e.repository.id,
                config,
                trigger_key,
                true,
                sender,
            )
            .await
        }
        IssuesAction::Reopened => {
            let now = rest::issue(&cx.client, repository, cx.issue).await?;
            let labelled = now.labels.iter().any(|l| l.eq_ignore_ascii_case(label));
            if !labelled || e.issue.is_pull_request() || is_bot(e.sender.as_ref()) {
                return Ok(Outcome::Skipped(
                    "reopened without the trigger label".to_owned(),
                ));
            }
            let sender = sender_of(e);
            if !cx.may_start(sender, &config).await?.1 {
                return Ok(Outcome::Skipped(format!("@{sender} may not start foreman")));
            }
            if work
                .store()
                .live_objective(repository, cx.issue)
                .await?
                .is_some()
            {
                return Ok(Outcome::Skipped(
                    "the issue already has a live objective".to_owned(),
                ));
            }
            let key = format!("{repository}#{}:reopened:{}", cx.issue, delivery);
            start(
                &cx,
                work,
                &e.issue,
                e.repository.id,
                config,
                Some(key),
                true,
                sender,
            )
            .await
        }
        IssuesAction::Unlabeled if is_trigger => {
            let now = rest::issue(&cx.client, repository, cx.issue).await?;
            if now.labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
                return Ok(Outcome::Skipped(
                    "the label is back on the issue".to_owned(),
                ));
            }
            let sender = sender_of(e);
            stop(
                &cx,
                work,
                &format!("the `{label}` label was removed by @{sender}"),
            )
            .await
        }
        IssuesAction::Closed => {
            let now = rest::issue(&cx.client, repository, cx.issue).await?;
            if now.open {
                return Ok(Outcome::Skipped("the issue is open again".to_owned()));
            }
            if let Some(outcome) = closed_by_merge(&cx, work).await? {
                return Ok(outcome);
            }
            stop(&cx, work, "the issue was closed").await
        }
        IssuesAction::Edited => issue_edited(&cx, work, e, &config).await,
        _ => Ok(Outcome::Skipped(format!(
            "issues `{}` needs nothing from foreman",
            e.action.as_str()
        ))),
    }
}

/// The issue's title or body changed while an objective works on it. From someone who may
/// start foreman, the new text is the agents' from now on and news for the manager. From
/// anyone else it is not given to agents: the status comment says the text changed, and
/// `/foreman retry` from someone allowed starts over from it.
async fn issue_edited(
    cx: &IssueContext<'_>,
    work: &mut Work<'_>,
    e: &IssuesEvent,
    config: &RepoConfig,
) -> Result<Outcome> {
    let Some(objective) = work.store().live_objective(cx.repository, cx.issue).await? else {
        return Ok(Outcome::Skipped("no foreman work on this issue".to_owned()));
    };
    if objective.title == e.issue.title && objective.body == e.issue.body {
        return Ok(Outcome::Skipped(
            "the agents already have this text".to_owned(),
        ));
    }
    let sender = sender_of(e);
    let (permission, allowed) = cx.may_start(sender, config).await?;
    let may = allowed && !is_bot(e.sender.as_ref());
    let now = cx.ingest.clock.now();
    let tx = work.tx().await?;
    if may {
        tx.set_objective_text(objective.id, &e.issue.title, &e.issue.body)
            .await?;
        let author = Author {
            login: sender,
            permission: permission.as_str(),
        };
        let text = format!("# {}\n\n{}", e.issue.title, e.issue.body);
        let note = format!(
            "The issue was edited. Its text is now:\n\n{}",
            fence("issue", author, &text)
        );
        lifecycle::tell_manager_in(&cx.ingest.objectives, tx, &objective, &note).await?;
    } else {
        tx.note_text_edit(objective.id, sender).await?;
        tx.force_status_refresh(objective.id).await?;
    }
    let detail = if may {
        format!("@{sender} edited the issue; the agents have the new text")
    } else {
        format!(
            "@{sender}, who may not start foreman, edited the issue; the agents keep the text foreman started from"
        )
    };
    tx.audit(&crate::store::AuditEntry::about(
        &objective,
        now,
        "issue.edited",
        detail,
    ))
    .await?;
    Ok(Outcome::Processed)
}

/// Starts an objective for the issue, unless this trigger already started one (or, in the
/// database's eyes, the issue has a live one). With `needs_label`, only while the issue (as
/// it is now) is open and has the label.
#[allow(clippy::too_many_arguments)]
async fn start(
    cx: &IssueContext<'_>,
    work: &mut Work<'_>,
    issue: &Issue,
    repository_id: i64,
    config: RepoConfig,
    trigger_key: Option<String>,
    needs_label: bool,
    started_by: &str,
) -> Result<Outcome> {
    let store = work.store();
    let current = rest::issue(&cx.client, cx.repository, cx.issue).await?;
    let label = &config.trigger_label;
    let labelled = current.labels.iter().any(|l| l.eq_ignore_ascii_case(label));
    if !current.open || (needs_label && !labelled) {
        return Ok(Outcome::Skipped(
            "the issue is closed or the label is gone".to_owned(),
        ));
    }
    let author = issue
        .user
        .as_ref()
        .map(|u| u.login.clone())
        .unwrap_or_default();
    let (author_permission, author_may_start) = cx.may_start(&author, &config).await?;
    // An issue its author could not have handed to foreman: the manager's plan waits for
    // the approval of someone who may.
    let mut config = config;
    if !author_may_start {
        config.plan_approval = true;
    }
    let previous = store
        .latest_objective(cx.repository, cx.issue)
        .await?
        .map(|o| o.id);
    let objective = NewObjective {
        installation_id: Some(cx.installation),
        repository_id: Some(repository_id),
        repository: cx.repository.to_owned(),
        issue_number: cx.issue,
        title: issue.title.clone(),
        body: issue.body.clone(),
        author,
        author_permission: author_permission.as_str().to_owned(),
        budget: config.budget.apply(
            &cx.ingest.objectives.agents.budget,
            &cx.ingest.objectives.agents.budget_ceiling,
        ),
        config,
        trigger_key,
        previous,
        started_by: Some(started_by.to_owned()),
    };
    let tx = work.tx().await?;
    match lifecycle::start_in(&cx.ingest.objectives, tx, &objective).await? {
        Some((id, _)) => {
            tracing::info!(objective = %id, "objective started from the issue");
            Ok(Outcome::Processed)
        }
        None => Ok(Outcome::Skipped(
            "this trigger already started an objective".to_owned(),
        )),
    }
}

/// The issue was closed by the merge of one of its objective's pull requests (`Closes #N`):
/// the work is done, not stopped.
async fn closed_by_merge(cx: &IssueContext<'_>, work: &mut Work<'_>) -> Result<Option<Outcome>> {
    let store = work.store();
    let Some(objective) = store.live_objective(cx.repository, cx.issue).await? else {
        return Ok(None);
    };
    let merged = crate::engine::objective::pulls::merged_closers(
        &cx.ingest.objectives,
        &cx.client,
        &objective,
    )
    .await?;
    if merged.is_empty() {
        return Ok(None);
    }
    let tx = work.tx().await?;
    crate::engine::objective::pulls::closed_by_merge_in(
        &cx.ingest.objectives,
        tx,
        &objective,
        &merged,
    )
    .await?;
    Ok(Some(Outcome::Processed))
}

/// Stops the issue's live objective, if there is one.
async fn stop(cx: &IssueContext<'_>, work: &mut Work<'_>, reason: &str) -> Result<Outcome> {
    let Some(objective) = work.store().live_objective(cx.repository, cx.issue).await? else {
        return Ok(Outcome::Skipped("no live objective to stop".to_owned()));
    };
    let tx = work.tx().await?;
    lifecycle::end_in(
        &cx.ingest.objectives,
        tx,
        &objective,
        ObjectiveStatus::Cancelled,
        reason,
    )
    .await?;
    Ok(Outcome::Processed)
}

/// `issue_comment` events: commands and steering.
pub async fn comment_event(
    ingest: &Ingest,
    work: &mut Work<'_>,
    delivery: &str,
    e: &IssueCommentEvent,
) -> Result<Outcome> {
    let action = e.action.kind();
    if !matches!(
        action,
        IssueCommentAction::Created | IssueCommentAction::Edited
    ) {
        return Ok(Outcome::Skipped(format!(
            "comment `{}` needs nothing from foreman",
            e.action.as_str()
        )));
    }
    if is_bot(e.sender.as_ref()) || is_bot(e.comment.user.as_ref()) {
        return Ok(Outcome::Skipped(
            "comments by bots (foreman included) are not read".to_owned(),
        ));
    }
    if e.is_pull_request() {
        return Ok(Outcome::Skipped("a comment on a pull request".to_owned()));
    }
    let repository = &e.repository.full_name;
    let Some(cx) = context(
        ingest,
        e.installation.map(|i| i.id),
        repository,
        e.issue.number,
    )
    .await?
    else {
        return Ok(Outcome::Skipped(
            "no GitHub App installation to act through".to_owned(),
        ));
    };
    let login = e
        .comment
        .user
        .as_ref()
        .map(|u| u.login.clone())
        .unwrap_or_default();
    if action == IssueCommentAction::Edited {
        return edited(&cx, work, e, &login).await;
    }
    let command = parse_command(&e.comment.body);
    let live = work.store().live_objective(repository, cx.issue).await?;
    if (command.is_some() || live.is_some())
        && !work
            .tx()
            .await?
            .mark_comment_handled(e.comment.id, ingest.clock.now())
            .await?
    {
        return Ok(Outcome::Skipped(
            "this comment was acted on before".to_owned(),
        ));
    }
    if command.is_none() && live.is_none() {
        return Ok(Outcome::Skipped("no foreman work on this issue".to_owned()));
    }
    // Who may do what is read as of this comment, never as it was when the objective began.
    let config = match cx.config(e.repository.default_branch.as_deref()).await? {
        Ok(config) => config,
        Err(error) if live.is_none() => {
            cx.reply(work, delivery, replies::bad_config(&error))
                .await?;
            return Ok(Outcome::Processed);
        }
        Err(error) => {
            tracing::warn!(%error, "the repository's config is broken now: default permissions apply");
            RepoConfig::default()
        }
    };
    let permission = cx.permission(&login).await?;
    let may =
        crate::github::repos::allowed(permission, config.permissions.command, &login, &config);
    match command {
        Some(_) if !may => {
            // A reaction, never a reply: strangers cannot make foreman write on the issue.
            cx.react(work, e.comment.id, "-1").await?;
            Ok(Outcome::Skipped(format!(
                "@{login} may not use /foreman commands"
            )))
        }
        Some(command) => run_command(&cx, work, delivery, e, command, live, config, &login).await,
        None => {
            let objective = live.context("checked above")?;
            if crate::github::repos::may_answer(
                permission,
                &login,
                is_issue_author(e, &login),
                &config,
            ) {
                let author = Author {
                    login: &login,
                    permission: permission.as_str(),
                };
                let tx = work.tx().await?;
                let answered = crate::engine::objective::questions::answer_in(
                    &cx.ingest.objectives,
                    tx,
                    &objective,
                    e.comment.id,
                    &e.comment.body,
                    author,
                    may,
                )
                .await?;
                if answered.is_some() {
                    return Ok(Outcome::Processed);
                }
            }
            if !may {
                return Ok(Outcome::Skipped(format!("@{login} may not steer foreman")));
            }
            steer(&cx, work, e, &objective, &login, permission).await
        }
    }
}

/// Whether `login` wrote the issue the comment is on.
fn is_issue_author(e: &IssueCommentEvent, login: &str) -> bool {
    e.issue
        .user
        .as_ref()
        .is_some_and(|u| u.login.eq_ignore_ascii_case(login))
}

/// An edited comment: if it answered a question whose answer the agent has not read yet,
/// the answer changes with it.
async fn edited(
    cx: &IssueContext<'_>,
    work: &mut Work<'_>,
    e: &IssueCommentEvent,
    login: &str,
) -> Result<Outcome> {
    if work
        .store()
        .question_answered_by(e.comment.id)
        .await?
        .is_none()
    {
        return Ok(Outcome::Skipped(
            "an edited comment that answered nothing".to_owned(),
        ));
    }
    // Re-authorised as of the edit: someone who may no longer answer cannot change one.
    let permission = cx.permission(login).await?;
    let config = cx
        .config(e.repository.default_branch.as_deref())
        .await?
        .unwrap_or_default();
    if !crate::github::repos::may_answer(permission, login, is_issue_author(e, login), &config) {
        return Ok(Outcome::Skipped(format!(
            "@{login} may not answer now; the edit changes nothing"
        )));
    }
    let author = Author {
        login,
        permission: permission.as_str(),
    };
    let tx = work.tx().await?;
    crate::engine::objective::questions::edit_answer_in(
        &cx.ingest.objectives,
        tx,
        e.comment.id,
        &e.comment.body,
        author,
    )
    .await?;
    Ok(Outcome::Processed)
}

#[allow(clippy::too_many_arguments)]
async fn run_command(
    cx: &IssueContext<'_>,
    work: &mut Work<'_>,
    delivery: &str,
    e: &IssueCommentEvent,
    command: Command,
    live: Option<Objective>,
    config: RepoConfig,
    login: &str,
) -> Result<Outcome> {
    let comment = e.comment.id;
    match (command, live) {
        (Command::Help, _) => cx.reply(work, delivery, replies::help(None)).await?,
        (Command::Unknown(word), _) => cx.reply(work, delivery, replies::help(Some(&word))).await?,
        (Command::Status, Some(objective)) => {
            work.tx().await?.force_status_refresh(objective.id).await?;
            cx.react(work, comment, "+1").await?;
        }
        (Command::Stop, Some(_)) => {
            stop(cx, work, &format!("stopped by @{login} with /foreman stop")).await?;
            cx.react(work, comment, "+1").await?;
        }
        (Command::Resume, Some(objective)) => {
            lifecycle::resume_in(&cx.ingest.objectives, work.tx().await?, &objective, login)
                .await?;
            cx.react(work, comment, "+1").await?;
        }
        (Command::Approve, Some(objective)) => {
            crate::engine::objective::questions::approve_plan_in(
                &cx.ingest.objectives,
                work.tx().await?,
                &objective,
                login,
            )
            .await?;
            cx.react(work, comment, "+1").await?;
        }
        (Command::Retry, live) => {
            if live.is_some() {
                stop(
                    cx,
                    work,
                    &format!("restarted by @{login} with /foreman retry"),
                )
                .await?;
            }
            let key = format!("{}#{}:retry:{delivery}", cx.repository, cx.issue);
            match start(
                cx,
                work,
                &e.issue,
                e.repository.id,
                config,
                Some(key),
                false,
                login,
            )
            .await?
            {
                Outcome::Processed => cx.react(work, comment, "+1").await?,
                Outcome::Skipped(_) => {
                    cx.reply(work, delivery, replies::nothing_running("retry"))
                        .await?
                }
            }
        }
        (command, None) => {
            let word = format!("{command:?}").to_ascii_lowercase();
            cx.reply(work, delivery, replies::nothing_running(&word))
                .await?;
        }
    }
    Ok(Outcome::Processed)
}

/// A comment from someone allowed to steer: news for the manager, fenced as what a person
/// wrote. A live manager reads it next turn; a manager that has ended is replaced by one
/// that starts with it.
async fn steer(
    cx: &IssueContext<'_>,
    work: &mut Work<'_>,
    e: &IssueCommentEvent,
    objective: &Objective,
    login: &str,
    permission: Permission,
) -> Result<Outcome> {
    let author = Author {
        login,
        permission: permission.as_str(),
    };
    let note = format!(
        "A comment on the issue:\n\n{}",
        fence("comment", author, &e.comment.body)
    );
    let tx = work.tx().await?;
    lifecycle::tell_manager_in(&cx.ingest.objectives, tx, objective, &note).await?;
    Ok(Outcome::Processed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_first_line_of_a_comment() {
        assert_eq!(parse_command("/foreman stop"), Some(Command::Stop));
        assert_eq!(
            parse_command("\n  /foreman   Status please\nmore"),
            Some(Command::Status)
        );
        assert_eq!(parse_command("/foreman"), Some(Command::Help));
        assert_eq!(
            parse_command("/foreman dance"),
            Some(Command::Unknown("dance".into()))
        );
        assert_eq!(parse_command("/foremanx stop"), None);
        assert_eq!(parse_command("please /foreman stop"), None);
        assert_eq!(parse_command("Looks good to me"), None);
        assert_eq!(parse_command("/foreman retry"), Some(Command::Retry));
        assert_eq!(parse_command("/foreman resume"), Some(Command::Resume));
    }
}
