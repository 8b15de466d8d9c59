//! The HTTP surface: webhook ingress, health and metrics. Handlers here verify, store and
//! answer; the work itself happens in the engine, fed from the store.

mod ops;
pub mod setup;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use secrecy::SecretString;

use crate::engine::Engine;

/// GitHub caps webhook payloads at 25 MB; anything larger is refused with 413.
pub const MAX_WEBHOOK_BODY: usize = 25 * 1024 * 1024;

/// How the webhook route reads bodies from whoever sends them.
#[derive(Debug, Clone, Copy)]
pub struct WebhookLimits {
    /// MiB of bodies that may be being read at once.
    pub buffer_mib: usize,
    /// The longest a body may take to arrive.
    pub read_timeout: Duration,
}

/// The router with every route foreman serves; `/metrics` asks for `metrics_token` as a
/// bearer token when one is set.
pub fn router(
    engine: &Engine,
    metrics_token: Option<SecretString>,
    webhooks: WebhookLimits,
) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(ops::Metrics {
            store: engine.store.clone(),
            metrics: engine.metrics.clone(),
            token: metrics_token,
        });
    let ingress = Router::new()
        .route("/webhooks/github", post(webhook::receive))
        .with_state(Arc::new(webhook::Ingress {
            ingest: engine.ingest.clone(),
            // At least room for one body of the largest size.
            budget: Semaphore::new(
                (webhooks.buffer_mib.max(MAX_WEBHOOK_BODY >> 20) * 1024)
                    .min(Semaphore::MAX_PERMITS),
            ),
            read_timeout: webhooks.read_timeout,
            max_body: MAX_WEBHOOK_BODY,
        }));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .with_state(engine.store.clone())
        .merge(ingress)
        .merge(metrics)
        .merge(crate::mcp::router(engine.objectives.clone()))
}
