//! The tools agents call, served over MCP (Streamable HTTP) under `/mcp`.
//!
//! Every request carries the calling session's bearer token. The HTTP layer resolves it to
//! the session (only live sessions' tokens work; a finished session's token is revoked) and
//! hands the session to the tool handler, which allows only the tools of the session's role
//! and only on the session's own objective. Refusals are tool errors that say why, so the
//! agent can correct itself.

mod tools;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::SecretString;

use crate::engine::objective::Objectives;
use crate::engine::runtime::tokens::token_hash;
use crate::model::Session;

/// The session a request is authenticated as.
#[derive(Debug, Clone)]
pub struct Caller(pub Session);

/// The `/mcp` routes.
pub fn router(objectives: Arc<Objectives>) -> Router {
    let mut config = StreamableHttpServerConfig::default();
    if let Some(host) = url::Url::parse(&objectives.agents.mcp_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        config.allowed_hosts.push(host);
    }
    let handler_objectives = objectives.clone();
    let service = StreamableHttpService::new(
        move || Ok(tools::ForemanTools::new(handler_objectives.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(middleware::from_fn_with_state(objectives, authenticate))
}

/// Resolves the bearer token to a live session, or answers 401.
async fn authenticate(
    State(objectives): State<Arc<Objectives>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| SecretString::from(t.trim().to_owned()));
    let Some(token) = token else {
        return refuse(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    match objectives.store.session_by_token(&token_hash(&token)).await {
        Ok(Some(session)) => {
            request.extensions_mut().insert(Caller(session));
            next.run(request).await
        }
        Ok(None) => refuse(StatusCode::UNAUTHORIZED, "unknown or revoked token"),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot check an MCP token");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token now",
            )
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}
