//! The HTTP surface: webhook ingress, health and metrics. Handlers here verify, store and
//! answer; the work itself happens in the engine, fed from the store.

mod ops;
pub mod setup;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use secrecy::SecretString;

use crate::engine::Engine;

/// GitHub caps webhook payloads at 25 MB; anything larger is refused with 413.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

/// The router with every route foreman serves; `/metrics` asks for `metrics_token` as a
/// bearer token when one is set.
pub fn router(engine: Arc<Engine>, metrics_token: Option<SecretString>) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(ops::Metrics {
            engine: engine.clone(),
            token: metrics_token,
        });
    Router::new()
        .route(
            "/webhooks/github",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .route("/healthz", get(ops::healthz))
        .with_state(engine.clone())
        .merge(metrics)
        .merge(crate::mcp::router(engine))
}
