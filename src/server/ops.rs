//! Operations endpoints: `/healthz` (is the database reachable) and `/metrics` (Prometheus).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::engine::Engine;

/// 200 when the database answers, 503 otherwise.
pub async fn healthz(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    match engine.store.ping().await {
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

/// Counters, latency histogram and inbox depth in the Prometheus text format.
pub async fn metrics(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    // The gauge is left out (rather than failing the scrape) when the database is down.
    let depth = engine.store.inbox_depth().await.ok();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        engine.metrics.render(depth),
    )
}
