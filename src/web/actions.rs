//! What a person may do from the web view, under the same rules as on the issue: stop the
//! objective, tell its manager something, cancel a worker (each needs the config's
//! `permissions.command`), answer a question (`permissions.answer`). Every form carries the
//! session's CSRF token; every action is in the audit trail with who did it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, csrf_ok, forbidden};
use super::{Web, objective_view};
use crate::engine::objective::{lifecycle, questions};
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
async fn actor(web: &Web, headers: &HeaderMap, form: &Form) -> Result<WebSession, Response> {
    match auth::session_of(web, headers).await {
        Ok(Some(session)) if csrf_ok(&session, &form.csrf) => Ok(session),
        Ok(Some(_)) => Err(forbidden(
            "the form is stale or was not made by foreman: reload the page and try again.",
        )),
        Ok(None) => Err((
            StatusCode::UNAUTHORIZED,
            super::pages::message("Signed out", "Sign in to do that."),
        )
            .into_response()),
        Err(e) => Err(super::server_error(&e)),
    }
}

/// The form's text, trimmed and bounded; `None` when there is none.
fn text_of(form: &Form) -> Option<String> {
    let text = form.text.trim();
    (!text.is_empty()).then(|| text.chars().take(MAX_TEXT).collect())
}

fn nothing_to_send() -> Response {
    (
        StatusCode::BAD_REQUEST,
        super::pages::message("Nothing to send", "Write something first."),
    )
        .into_response()
}

fn back_to(objective: ObjectiveId) -> Response {
    Redirect::to(&format!("/objectives/{objective}")).into_response()
}

/// `POST /objectives/{id}/stop`.
pub async fn stop(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Response {
    let who = match actor(&web, &headers, &form).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let result = async {
        let Some((view, _)) = objective_view(&web, &who, ObjectiveId(id)).await? else {
            return Ok(super::not_found());
        };
        if !view.may_command {
            return Ok(forbidden("stopping this objective needs the permission its repository's config gives to commands."));
        }
        let objective = &view.objective;
        let reason = format!("stopped by @{} from foreman's web view", who.login);
        let mut tx = web.store.begin().await?;
        if lifecycle::end_in(&web.objectives, &mut tx, objective, ObjectiveStatus::Cancelled, &reason)
            .await?
        {
            tx.audit(&AuditEntry::about(objective, web.clock.now(), "web_stop", format!("@{}", who.login)))
                .await?;
        }
        tx.commit().await?;
        anyhow::Ok(back_to(objective.id))
    }
    .await;
    result.unwrap_or_else(|e| super::server_error(&e))
}

/// `POST /objectives/{id}/message`: a message for the manager's next turn.
pub async fn message(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Response {
    let who = match actor(&web, &headers, &form).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let Some(text) = text_of(&form) else {
        return nothing_to_send();
    };
    let result = async {
        let Some((view, permission)) = objective_view(&web, &who, ObjectiveId(id)).await? else {
            return Ok(super::not_found());
        };
        if !view.may_command {
            return Ok(forbidden("messages to the manager need the permission its repository's config gives to commands."));
        }
        let objective = &view.objective;
        if objective.status.is_terminal() {
            return Ok(forbidden("this objective has ended."));
        }
        let author = Author {
            login: &who.login,
            permission: permission.as_str(),
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
        anyhow::Ok(back_to(objective.id))
    }
    .await;
    result.unwrap_or_else(|e| super::server_error(&e))
}

/// `POST /sessions/{id}/cancel`: stops a worker (its dependents follow).
pub async fn cancel(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Response {
    let who = match actor(&web, &headers, &form).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let result = async {
        let Some(session) = web.store.session(SessionId(id)).await? else {
            return Ok(super::not_found());
        };
        let Some((view, _)) = objective_view(&web, &who, session.objective_id).await? else {
            return Ok(super::not_found());
        };
        if !view.may_command {
            return Ok(forbidden("cancelling a worker needs the permission its repository's config gives to commands."));
        }
        if session.role == crate::model::Role::Manager {
            return Ok(forbidden("the manager is not cancelled alone: stop the objective instead."));
        }
        let reason = format!("cancelled by @{} from foreman's web view", who.login);
        if crate::engine::runtime::turns::cancel(&web.objectives.runtime, session.id, &reason).await? {
            let mut tx = web.store.begin().await?;
            tx.audit(&AuditEntry::about(
                &view.objective,
                web.clock.now(),
                "web_cancel",
                format!("@{} cancelled #{}", who.login, session.id),
            ))
            .await?;
            tx.commit().await?;
        }
        anyhow::Ok(back_to(view.objective.id))
    }
    .await;
    result.unwrap_or_else(|e| super::server_error(&e))
}

/// `POST /questions/{id}/answer`.
pub async fn answer(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<Form>,
) -> Response {
    let who = match actor(&web, &headers, &form).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let Some(text) = text_of(&form) else {
        return nothing_to_send();
    };
    let result = async {
        let Some(question) = web.store.question(QuestionId(id)).await? else {
            return Ok(super::not_found());
        };
        let Some((view, permission)) = objective_view(&web, &who, question.objective_id).await?
        else {
            return Ok(super::not_found());
        };
        if !view.may_answer {
            return Ok(forbidden(
                "answering needs the permission its repository's config gives to answers.",
            ));
        }
        if question.status != QuestionStatus::Open {
            return Ok(forbidden("this question is not open any more."));
        }
        let author = Author {
            login: &who.login,
            permission: permission.as_str(),
        };
        let may_decide = view.may_command;
        let mut tx = web.store.begin().await?;
        let answered = questions::answer_question_in(
            &web.objectives,
            &mut tx,
            &view.objective,
            &question,
            &text,
            author,
            may_decide,
            None,
        )
        .await?;
        if answered {
            tx.audit(&AuditEntry::about(
                &view.objective,
                web.clock.now(),
                "web_answer",
                format!("@{} answered question {}", who.login, question.id),
            ))
            .await?;
        }
        tx.commit().await?;
        anyhow::Ok(back_to(view.objective.id))
    }
    .await;
    result.unwrap_or_else(|e| super::server_error(&e))
}
