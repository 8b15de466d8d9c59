//! Operations endpoints: `/healthz` (is the database reachable) and `/metrics` (Prometheus).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};

use crate::store::Store;

/// 200 when the database answers, 503 otherwise.
pub async fn healthz(State(store): State<Store>) -> impl IntoResponse {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable\n".to_owned(),
            )
        }
    }
}

/// What `/metrics` needs: the store (for the inbox depth), the counters, and the bearer token
/// it asks for, if any.
#[derive(Clone)]
pub struct Metrics {
    pub store: Store,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub token: Option<SecretString>,
}

/// Counters, latency histogram and inbox depth in the Prometheus text format; 401 without
/// the bearer token when one is configured.
pub async fn metrics(State(state): State<Metrics>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !crate::github::signature::constant_time_eq(
            given.as_bytes(),
            token.expose_secret().as_bytes(),
        ) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required (FOREMAN_METRICS_TOKEN)\n",
            )
                .into_response();
        }
    }
    // The gauge is left out (rather than failing the scrape) when the database is down.
    let depth = state.store.inbox_depth().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(depth),
    )
        .into_response()
}
