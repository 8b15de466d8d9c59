//! Deliveries in: the inbox processor takes stored webhooks in arrival order and hands each to
//! the handler of its event, which reads what it needs and writes its effects in the
//! transaction that marks the delivery handled.

pub mod handlers;
pub mod inbox;
pub mod issues;
pub mod pull_events;
pub mod receiving;
pub mod replies;
pub mod work;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::engine::identity::Identity;
use crate::engine::objective::Objectives;
use crate::github::repos::Repos;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::store::Store;

/// What handling deliveries takes: the store and clock, foreman's GitHub identity and what it
/// knows of repositories (their config, people's permissions), and the objective services
/// the handlers call.
pub struct Ingest {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub github: Arc<Identity>,
    pub repos: Arc<Repos>,
    pub objectives: Arc<Objectives>,
    /// Rung when a delivery is stored.
    pub inbox_bell: Arc<Notify>,
    /// Signed webhook requests waiting for their answer: processing yields to them.
    pub receiving: receiving::Receiving,
}
