//! Questions for the humans on the issue, and their answers back to the agent that asked.
//!
//! Every question — an agent's `ask_user`, a budget reached, the supervisor's escalation, a
//! plan to approve, a pull request closed without merging — goes through [`ask_in`]: stored,
//! the objective set `waiting`, and a comment queued in the outbox (its hidden marker makes
//! it posted exactly once). A later comment by someone allowed to answer is the answer: to
//! the question it quotes, otherwise to the oldest open one. The answer is delivered to the
//! session that asked — or, if that session has ended, to the objective's manager — as a
//! message for its next turn.

use anyhow::Result;

use crate::engine::objective::Objectives;
use crate::engine::objective::lifecycle;
use crate::model::markers::{marker_comment, question_marker};
use crate::model::question::{Question, QuestionKind, QuestionStatus};
use crate::model::text::{Author, fence, one_line};
use crate::model::{Objective, ObjectiveStatus, QuestionId, Role, Session};
use crate::store::{Thread, Tx};

/// Records a question, sets its objective waiting, and queues its comment.
pub async fn ask_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    asker: Option<&Session>,
    kind: QuestionKind,
    text: &str,
    context: Option<&str>,
) -> Result<QuestionId> {
    let now = objectives.clock.now();
    let id = tx
        .insert_question(
            objective.id,
            asker.map(|s| s.id),
            kind.as_str(),
            text,
            context,
            now,
        )
        .await?;
    tx.set_objective_status(objective.id, ObjectiveStatus::Waiting, None, now)
        .await?;
    if let Some(thread) = Thread::of(objective) {
        let marker = question_marker(id, &objective.marker_nonce);
        let body = render(asker, kind, text, &marker);
        tx.enqueue(&thread.question(id, body, marker), now).await?;
    }
    tracing::info!(objective = %objective.id, question = %id, kind = kind.as_str(), "question for a human");
    Ok(id)
}

/// Who is asking, in words.
fn asker_name(asker: Option<&Session>) -> String {
    match asker {
        Some(s) if s.role == Role::Manager => "the manager agent".to_owned(),
        Some(s) => format!("worker #{} (\"{}\")", s.id, one_line(&s.title, 80)),
        None => "foreman".to_owned(),
    }
}

/// The question's comment.
pub fn render(asker: Option<&Session>, kind: QuestionKind, text: &str, marker: &str) -> String {
    let quoted: String = text.lines().map(|l| format!("> {l}\n")).collect();
    let commands = match kind {
        QuestionKind::Budget | QuestionKind::Escalation => {
            "\n`/foreman resume` continues as things are; `/foreman stop` ends the work.\n"
        }
        QuestionKind::Plan => {
            "\n`/foreman approve` approves the plan as it is; any other reply goes back to the manager to revise it.\n"
        }
        _ => "",
    };
    let title = match kind {
        QuestionKind::Plan => format!("**The plan of {}, for your approval:**", asker_name(asker)),
        _ => format!("**A question from {}:**", asker_name(asker)),
    };
    format!(
        "{title}\n\n{quoted}\nReply on this issue to answer. When more than one question is \
         open, quote a line of the one you answer (start a line with `> `).\n{commands}\n{}",
        marker_comment(marker)
    )
}

/// How a closed question's comment reads.
pub fn render_closed(question: &Question, nonce: &str) -> String {
    let quoted: String = question
        .text
        .lines()
        .map(|l| format!("> ~~{l}~~\n"))
        .collect();
    let end = match (question.status, &question.answered_by) {
        (QuestionStatus::Answered, Some(by)) => format!("✅ Answered by @{by}."),
        (QuestionStatus::Answered, None) => "✅ Answered.".to_owned(),
        _ => "Closed without an answer: the work it was for has ended.".to_owned(),
    };
    format!(
        "**Question** (closed)\n\n{quoted}\n{end}\n\n{}",
        marker_comment(&question_marker(question.id, nonce))
    )
}

/// The question a reply answers: the open one it quotes, otherwise the oldest open one.
pub fn answered_by<'q>(open: &'q [Question], reply: &str) -> Option<&'q Question> {
    let quoted: Vec<String> = reply
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('>'))
        .map(normalise)
        .filter(|l| l.len() >= 3)
        .collect();
    let quoting = open.iter().find(|q| {
        let text = normalise(&q.text);
        quoted.iter().any(|line| text.contains(line.as_str()))
    });
    quoting.or_else(|| open.iter().min_by_key(|q| q.id))
}

fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The reply without the lines it quotes (and without hidden text): what the person
/// answered.
fn answer_text(reply: &str) -> String {
    let reply = crate::model::text::clean(reply);
    let reply = reply.as_str();
    let own: Vec<&str> = reply
        .lines()
        .filter(|l| !l.trim_start().starts_with('>'))
        .collect();
    let own = own.join("\n").trim().to_owned();
    if own.is_empty() {
        reply.trim().to_owned()
    } else {
        own
    }
}

/// The message that carries a question and its answer to an agent.
fn answer_message(question: &Question, answer: &str, author: Author<'_>) -> String {
    format!(
        "The humans answered your question.\n\nYour question was:\n\n{}\n\nThe answer:\n\n{}",
        question.text,
        fence("answer", author, answer)
    )
}

/// Takes a comment as the answer to one of the objective's open questions, if there is one.
/// Returns the question answered. The caller has checked the author may answer;
/// `may_decide` says whether they may also command foreman: a budget or escalation question
/// is a decision to spend more, so an answer from anyone else reaches a live manager as
/// information and leaves the question open (and the objective stopped) for someone who may.
#[allow(clippy::too_many_arguments)]
pub async fn answer_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    comment: i64,
    body: &str,
    author: Author<'_>,
    may_decide: bool,
) -> Result<Option<QuestionId>> {
    let questions = objectives.store.questions_of(objective.id).await?;
    if questions
        .iter()
        .any(|q| q.answer_comment_id == Some(comment))
    {
        return Ok(None); // this comment already answered one (a duplicated event)
    }
    let open: Vec<Question> = questions
        .into_iter()
        .filter(|q| q.status == QuestionStatus::Open)
        .collect();
    let Some(question) = answered_by(&open, body) else {
        return Ok(None);
    };
    let answer = answer_text(body);
    let answered = answer_question_in(
        objectives,
        tx,
        objective,
        question,
        &answer,
        author,
        may_decide,
        Some(comment),
    )
    .await?;
    Ok(answered.then_some(question.id))
}

/// Answers one open question: the answer goes to whoever asked (or the manager), a stopped
/// objective resumes when the question was a decision, and it becomes active again once no
/// question is open. `comment` is the issue comment that answered, if it came from one
/// (thanked with 👍). False when nothing was answered: the question was answered already,
/// or it is a decision and the author may not decide (their words reach a live manager as
/// information, and the question stays open).
#[allow(clippy::too_many_arguments)]
pub async fn answer_question_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    question: &Question,
    answer: &str,
    author: Author<'_>,
    may_decide: bool,
    comment: Option<i64>,
) -> Result<bool> {
    let now = objectives.clock.now();
    let kind = question.kind;
    if kind.resumes() && !may_decide {
        if let Some(manager) = objective.manager
            && let Some(manager) = objectives.store.session(manager).await?
            && !manager.status.is_terminal()
        {
            let note = format!(
                "On the open question \"{}\", someone who may not decide it wrote (for your \
                 information; the question stays open):\n\n{}",
                one_line(&question.text, 200),
                fence("comment", author, answer)
            );
            tx.push_message(manager.id, &note, now).await?;
        }
        tracing::info!(question = %question.id, by = author.login, "an answer from someone who may not decide: the question stays open");
        return Ok(false);
    }
    if !tx
        .answer_question(question.id, answer, author.login, comment, now)
        .await?
    {
        return Ok(false);
    }
    match kind {
        QuestionKind::Plan => {} // the answer goes to the manager to revise the plan
        k if k.resumes() => {
            lifecycle::lift_stop_in(objectives, tx, objective, author.login).await?
        }
        _ => {}
    }
    deliver_in(
        objectives,
        tx,
        objective,
        question,
        &answer_message(question, answer, author),
    )
    .await?;
    if let (Some(thread), Some(comment)) = (Thread::of(objective), comment) {
        let marker = format!("answered-{comment}");
        tx.enqueue(&thread.comment_reaction(comment, "+1", marker), now)
            .await?;
    }
    if !tx.has_open_questions(objective.id).await? {
        tx.set_objective_status(objective.id, ObjectiveStatus::Active, None, now)
            .await?;
    }
    tracing::info!(question = %question.id, by = author.login, "question answered");
    Ok(true)
}

/// Gives an answer to the session that asked, if it is live; otherwise to the objective's
/// manager (a new one if the manager has ended too).
async fn deliver_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    question: &Question,
    message: &str,
) -> Result<()> {
    let now = objectives.clock.now();
    let asker = match question.session_id {
        Some(id) => objectives.store.session(id).await?,
        None => None,
    };
    if let Some(asker) = asker.filter(|s| !s.status.is_terminal()) {
        return tx.push_answer(asker.id, message, question.id, now).await;
    }
    let manager = match objective.manager {
        Some(id) => objectives.store.session(id).await?,
        None => None,
    };
    match manager.filter(|m| !m.status.is_terminal()) {
        Some(manager) => tx.push_answer(manager.id, message, question.id, now).await,
        None => {
            let manager =
                lifecycle::respawn_manager_in(objectives, tx, objective, None, Some(message))
                    .await?;
            tracing::info!(manager = %manager, "a new manager carries the answer");
            Ok(())
        }
    }
}

/// An edit to a comment that answered a question: the answer changes too, if the agent has
/// not read it yet.
pub async fn edit_answer_in(
    objectives: &Objectives,
    tx: &mut Tx,
    comment: i64,
    body: &str,
    author: Author<'_>,
) -> Result<bool> {
    let Some(question) = objectives.store.question_answered_by(comment).await? else {
        return Ok(false);
    };
    let answer = answer_text(body);
    tx.edit_answer(question.id, &answer).await?;
    let updated = tx
        .update_pending_answer(question.id, &answer_message(&question, &answer, author))
        .await?;
    if !updated {
        tracing::info!(question = %question.id, "an answer was edited after the agent read it; the agent keeps the first version");
    }
    Ok(updated)
}

/// `/foreman approve`: the plan question is answered and workers may start.
pub async fn approve_plan_in(
    objectives: &Objectives,
    tx: &mut Tx,
    objective: &Objective,
    by: &str,
) -> Result<bool> {
    let now = objectives.clock.now();
    tx.approve_plan(objective.id, now).await?;
    let answer = format!("approved by @{by}");
    let n = tx
        .answer_open_questions(
            objective.id,
            &[QuestionKind::Plan.as_str()],
            &answer,
            by,
            now,
        )
        .await?;
    let note = format!("@{by} approved your plan. Start the workers now.");
    lifecycle::tell_manager_in(objectives, tx, objective, &note).await?;
    if !tx.has_open_questions(objective.id).await? {
        tx.set_objective_status(objective.id, ObjectiveStatus::Active, None, now)
            .await?;
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::session::fixtures;
    use crate::model::{ObjectiveId, SessionStatus, Timestamp};

    fn question(id: i64, text: &str) -> Question {
        Question {
            id: QuestionId(id),
            objective_id: ObjectiveId(1),
            session_id: None,
            kind: QuestionKind::Agent,
            text: text.into(),
            context: None,
            status: QuestionStatus::Open,
            answer: None,
            answered_by: None,
            created_at: Timestamp(0),
            comment_id: None,
            answer_comment_id: None,
        }
    }

    #[test]
    fn a_reply_answers_what_it_quotes_else_the_oldest() {
        let open = [
            question(5, "Which colour should the widget be?"),
            question(3, "Should it spin\nor roll?"),
        ];
        assert_eq!(answered_by(&open, "Blue.").unwrap().id, QuestionId(3));
        assert_eq!(
            answered_by(&open, "> Which colour should the widget be?\n\nBlue.")
                .unwrap()
                .id,
            QuestionId(5)
        );
        assert_eq!(
            answered_by(&open, ">   or ROLL?\nroll").unwrap().id,
            QuestionId(3)
        );
        assert_eq!(
            answered_by(&open, "> something else entirely\nhm")
                .unwrap()
                .id,
            QuestionId(3)
        );
        assert!(answered_by(&[], "Blue").is_none());
        assert_eq!(
            answer_text("> Which colour?\n\nBlue, please."),
            "Blue, please."
        );
        assert_eq!(answer_text("> only a quote"), "> only a quote");
    }

    #[test]
    fn question_comments_read_well() {
        let mut worker = fixtures::session(7, 1, Role::Worker, SessionStatus::Running);
        worker.title = "Fix the parser".into();
        let manager = fixtures::session(2, 1, Role::Manager, SessionStatus::Running);
        let mut all = render(
            Some(&worker),
            QuestionKind::Agent,
            "Should nested braces be allowed?\nThe spec is silent.",
            "question-4",
        );
        all += "\n---\n\n";
        all += &render(
            Some(&manager),
            QuestionKind::Plan,
            "1. Fix the lexer\n2. Add tests",
            "question-5",
        );
        all += "\n---\n\n";
        all += &render(
            None,
            QuestionKind::Budget,
            "The budget is reached (turns: 200 of 200).",
            "question-6",
        );
        all += "\n---\n\n";
        let mut closed = question(4, "Should nested braces be allowed?");
        closed.status = QuestionStatus::Answered;
        closed.answered_by = Some("alice".into());
        all += &render_closed(&closed, "");
        all += "\n---\n\n";
        closed.status = QuestionStatus::Cancelled;
        all += &render_closed(&closed, "");
        crate::assert_text_snapshot!("questions", &all);
    }
}
