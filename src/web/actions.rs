//! What a person may do from the web view, under the same rules as on the issue: stop the
//! objective, tell its manager something, cancel a worker (each needs the config's
//! `permissions.command`), answer a question (`permissions.answer`). Every form carries the
//! session's CSRF token; every action is in the audit trail with who did it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::auth::{self, csrf_ok, forbidden};
use super::{Answer, Refused, Web, found, readable};
use crate::engine::objective::{lifecycle, questions};
use crate::engine::runtime::turns;
use crate::model::question::QuestionStatus;
use crate::model::text::Author;
use crate::model::{ObjectiveId, ObjectiveStatus, QuestionId, SessionId};
use crate::store::{AuditEntry, WebSession};

/// The longest message or answer taken from a form.
const MAX_TEXT: usize = 20_000;

#[derive(Deserialize)]
pub struct Form {
    csrf: String,
    #[serde(default)]
    text: String,
}

/// Who is acting, once their session and form are checked.
async fn actor(web: &Web, headers: &HeaderMap, form: &Form) -> Result<WebSession, Refused> {
    let session = auth::signed_in(web, headers).await?;
    if !csrf_ok(&session, &form.csrf) {
        return Err(refused(
            "the form is stale or was not made by foreman: reload the page and try again.",
        ));
    }
    Ok(session)
}

fn refused(why: &str) -> Refused {
    Refused::with(forbidden(why))
}

/// The form's text, trimmed and bounded; a 400 when there is none.
fn text_of(form: &Form) -> Result<String, Refused> {
    let text = form.text.trim();
    if text.is_empty() {
        return Err(Refused::with((
            StatusCode::BAD_REQUEST,
            super::pages::message("Nothing to send", "Write something first."),
        )));
    }
    Ok(text.chars().take(MAX_TEXT).collect())
}

fn back_to(objective: ObjectiveId) -> Answer {
    Ok(Redirect::to(&format!("/objectives/{objective}")).into_response())
}

/// `POST /objectives/{id}/stop`.
pub async fn stop(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Answer {
    let who = actor(&web, &headers, &form).await?;
    let here = readable(&web, &who, ObjectiveId(id)).await?;
    if !here.may_command {
        return Err(refused(
            "stopping this objective needs the permission its repository's config gives to \
             commands.",
        ));
    }
    let objective = &here.objective;
    let reason = format!("stopped by @{} from foreman's web view", who.login);
    let mut tx = web.store.begin().await?;
    let status = ObjectiveStatus::Cancelled;
    if lifecycle::end_in(&web.objectives, &mut tx, objective, status, &reason).await? {
        let by = format!("@{}", who.login);
        tx.audit(&AuditEntry::about(
            objective,
            web.clock.now(),
            "web_stop",
            by,
        ))
        .await?;
    }
    tx.commit().await?;
    back_to(objective.id)
}

/// `POST /objectives/{id}/message`: a message for the manager's next turn.
pub async fn message(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Answer {
    let who = actor(&web, &headers, &form).await?;
    let text = text_of(&form)?;
    let here = readable(&web, &who, ObjectiveId(id)).await?;
    if !here.may_command {
        return Err(refused(
            "messages to the manager need the permission its repository's config gives to \
             commands.",
        ));
    }
    let objective = &here.objective;
    if objective.status.is_terminal() {
        return Err(refused("this objective has ended."));
    }
    let author = Author {
        login: &who.login,
        permission: here.permission.as_str(),
    };
    let note = format!(
        "A message from the web view:\n\n{}",
        crate::model::text::fence("message", author, &text)
    );
    let mut tx = web.store.begin().await?;
    let manager = lifecycle::tell_manager_in(&web.objectives, &mut tx, objective, &note).await?;
    tx.audit(&AuditEntry::about(
        objective,
        web.clock.now(),
        "web_message",
        format!("@{} to manager #{manager}", who.login),
    ))
    .await?;
    tx.commit().await?;
    back_to(objective.id)
}

/// `POST /sessions/{id}/cancel`: stops a worker (its dependents follow).
pub async fn cancel(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Answer {
    let who = actor(&web, &headers, &form).await?;
    let session = found(web.store.session(SessionId(id)).await?)?;
    let here = readable(&web, &who, session.objective_id).await?;
    if !here.may_command {
        return Err(refused(
            "cancelling a worker needs the permission its repository's config gives to \
             commands.",
        ));
    }
    if session.role == crate::model::Role::Manager {
        return Err(refused(
            "the manager is not cancelled alone: stop the objective instead.",
        ));
    }
    let reason = format!("cancelled by @{} from foreman's web view", who.login);
    if turns::cancel(&web.objectives.runtime, session.id, &reason).await? {
        let mut tx = web.store.begin().await?;
        tx.audit(&AuditEntry::about(
            &here.objective,
            web.clock.now(),
            "web_cancel",
            format!("@{} cancelled #{}", who.login, session.id),
        ))
        .await?;
        tx.commit().await?;
    }
    back_to(here.objective.id)
}

/// `POST /questions/{id}/answer`.
pub async fn answer(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Answer {
    let who = actor(&web, &headers, &form).await?;
    let text = text_of(&form)?;
    let question = found(web.store.question(QuestionId(id)).await?)?;
    let here = readable(&web, &who, question.objective_id).await?;
    if !here.may_answer {
        return Err(refused(
            "answering needs the permission its repository's config gives to answers.",
        ));
    }
    if question.status != QuestionStatus::Open {
        return Err(refused("this question is not open any more."));
    }
    let author = Author {
        login: &who.login,
        permission: here.permission.as_str(),
    };
    let mut tx = web.store.begin().await?;
    let answered = questions::answer_question_in(
        &web.objectives,
        &mut tx,
        &here.objective,
        &question,
        &text,
        author,
        here.may_command,
        None,
    )
    .await?;
    if answered {
        tx.audit(&AuditEntry::about(
            &here.objective,
            web.clock.now(),
            "web_answer",
            format!("@{} answered question {}", who.login, question.id),
        ))
        .await?;
    }
    tx.commit().await?;
    back_to(here.objective.id)
}
