//! The HTTP surface: webhook ingress, health and metrics. Handlers here verify, store and
//! answer; the work itself happens in the engine, fed from the store.

mod ops;
pub mod setup;
mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::engine::Engine;

/// GitHub caps webhook payloads at 25 MB; anything larger is refused with 413.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

/// The router with every route foreman serves.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route(
            "/webhooks/github",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .with_state(engine.clone())
        .merge(crate::mcp::router(engine))
}
