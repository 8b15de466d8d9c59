//! The web view: objectives, their sessions and live transcripts, and the actions a person
//! may take on them, served by foreman itself behind sign-in with GitHub.
//!
//! Pages are rendered on the server ([`pages`], with `maud`, which escapes everything it is
//! given: transcripts are agent output, so nothing of theirs may become markup) and need no
//! build step; a few lines of embedded JavaScript follow a running transcript over
//! server-sent events ([`live`]). Who may see and do what is GitHub's answer for the signed-in
//! person ([`auth`]): a repository they cannot read does not exist here, and an action needs
//! the permission the same action needs on the issue ([`actions`]).

pub mod actions;
pub mod auth;
pub mod live;
pub mod pages;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::SecretString;

use crate::engine::Engine;
use crate::engine::objective::Objectives;
use crate::model::network::Blocked;
use crate::model::question::Question;
use crate::model::repo_config::Permission;
use crate::model::{Clock, Objective, ObjectiveId, PullRequest, Session, SessionId};
use crate::store::{AuditEntry, Store, WebSession};

/// Where the web view finds GitHub and itself.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    pub web_url: String,
    pub api_url: String,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// The credentials file, whose OAuth client an App registered on the setup page has.
    pub app_file: PathBuf,
}

/// What the web view's handlers share.
pub struct Web {
    pub store: Store,
    pub objectives: Arc<Objectives>,
    pub clock: Arc<dyn Clock>,
    pub settings: WebSettings,
    pub access: auth::Access,
}

/// The web view's routes.
pub fn router(engine: &Engine, settings: WebSettings) -> Router {
    let web = Arc::new(Web {
        store: engine.store.clone(),
        objectives: engine.objectives.clone(),
        clock: engine.clock.clone(),
        settings,
        access: auth::Access::default(),
    });
    Router::new()
        .route("/login", get(auth::login))
        .route("/auth/callback", get(auth::callback))
        .route("/logout", post(auth::logout))
        .route("/objectives", get(objectives_page))
        .route("/objectives/{id}", get(objective_page))
        .route("/objectives/{id}/stop", post(actions::stop))
        .route("/objectives/{id}/message", post(actions::message))
        .route("/sessions/{id}", get(session_page))
        .route("/sessions/{id}/live", get(live::follow))
        .route("/sessions/{id}/cancel", post(actions::cancel))
        .route("/questions/{id}/answer", post(actions::answer))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .layer(axum::middleware::map_response(protect))
        .with_state(web)
}

/// What every response of the web view says to the browser: load nothing from elsewhere and
/// run no inline script (what an agent wrote could never run, even if it escaped), never
/// inside another site's frame, post forms only here, keep pages out of caches, and send no
/// address to other sites.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    response
}

/// An objective the viewer can read, and what they may do there.
pub struct Readable {
    pub objective: Objective,
    pub permission: Permission,
    /// Stop it, message its manager, cancel a worker (`permissions.command`).
    pub may_command: bool,
    /// Answer its questions (`permissions.answer`, or the author where allowed).
    pub may_answer: bool,
}

/// Everything the objective page shows.
pub struct ObjectiveView {
    pub readable: Readable,
    pub sessions: Vec<Session>,
    pub pulls: Vec<PullRequest>,
    pub questions: Vec<Question>,
    pub audit: Vec<AuditEntry>,
    pub blocked: Vec<(SessionId, Blocked)>,
}

/// Why a handler does not answer with its page: a response of its own (sign in, not found,
/// not allowed), or a failure, logged and answered with 500.
pub enum Refused {
    With(Box<Response>),
    Failed(anyhow::Error),
}

impl Refused {
    pub fn with(response: impl IntoResponse) -> Refused {
        Refused::With(Box::new(response.into_response()))
    }
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Refused {
        Refused::Failed(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::With(response) => *response,
            Refused::Failed(e) => server_error(&e),
        }
    }
}

/// What a handler answers.
pub type Answer = Result<Response, Refused>;

/// `found`, or the answer for what does not exist (or may not be seen).
pub fn found<T>(found: Option<T>) -> Result<T, Refused> {
    found.ok_or_else(|| Refused::with(not_found()))
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    /// `active` (the default) or `ended`.
    pub show: Option<String>,
}

/// The objectives of every repository the viewer can read.
async fn objectives_page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Answer {
    let viewer = auth::viewer(&web, &headers, "/objectives").await?;
    let ended = query.show.as_deref() == Some("ended");
    let mut readable = Vec::new();
    for repository in web.store.objective_repositories().await? {
        if web.access.permission(&web, &viewer, &repository).await? >= Permission::Read {
            readable.push(repository);
        }
    }
    let objectives = web.store.objectives_in(&readable, !ended, 200).await?;
    let mut rows = Vec::with_capacity(objectives.len());
    for objective in objectives {
        rows.push(pages::ObjectiveRow {
            sessions: web.store.sessions_of(objective.id).await?,
            pulls: web.store.pulls_of(objective.id).await?,
            questions: web.store.questions_of(objective.id).await?,
            objective,
        });
    }
    Ok(pages::objectives(&viewer, &rows, ended, web.clock.now()).into_response())
}

/// One objective: its sessions, questions, pull requests and timeline.
async fn objective_page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Answer {
    let viewer = auth::viewer(&web, &headers, &format!("/objectives/{id}")).await?;
    let view = objective_view(&web, &viewer, ObjectiveId(id)).await?;
    Ok(pages::objective(&viewer, &view, web.clock.now()).into_response())
}

/// The objective, when the viewer can read its repository, with their permission there; not
/// found when it does not exist or they cannot (the same answer for both).
pub async fn readable(
    web: &Web,
    viewer: &WebSession,
    id: ObjectiveId,
) -> Result<Readable, Refused> {
    let objective = found(web.store.objective(id).await?)?;
    let permission = web
        .access
        .permission(web, viewer, &objective.repository)
        .await?;
    if permission < Permission::Read {
        return Err(Refused::with(not_found()));
    }
    let config = &objective.config;
    let may_command = crate::github::repos::allowed(
        permission,
        config.permissions.command,
        &viewer.login,
        config,
    );
    let may_answer = crate::github::repos::may_answer(
        permission,
        &viewer.login,
        viewer.login.eq_ignore_ascii_case(&objective.author),
        config,
    );
    Ok(Readable {
        objective,
        permission,
        may_command,
        may_answer,
    })
}

/// Everything the viewer may see of the objective.
pub async fn objective_view(
    web: &Web,
    viewer: &WebSession,
    id: ObjectiveId,
) -> Result<ObjectiveView, Refused> {
    let readable = readable(web, viewer, id).await?;
    Ok(ObjectiveView {
        sessions: web.store.sessions_of(id).await?,
        pulls: web.store.pulls_of(id).await?,
        questions: web.store.questions_of(id).await?,
        audit: web.store.audit_of(id).await?,
        blocked: web.store.blocked_egress_of(id).await?,
        readable,
    })
}

/// One session's transcript, followed live while it runs.
async fn session_page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Answer {
    let viewer = auth::viewer(&web, &headers, &format!("/sessions/{id}")).await?;
    let session = found(web.store.session(SessionId(id)).await?)?;
    let view = objective_view(&web, &viewer, session.objective_id).await?;
    let lines = web
        .store
        .transcript_after(session.id, 0, live::PAGE_LINES)
        .await?;
    Ok(pages::session(&viewer, &view, &session, &lines).into_response())
}

pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        pages::message("Not found", "There is nothing here you can see."),
    )
        .into_response()
}

pub fn server_error(e: &anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "the web view failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(
            "Something went wrong",
            "foreman could not show this page; the error is in its log.",
        ),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/app.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("assets/app.js"),
    )
        .into_response()
}
