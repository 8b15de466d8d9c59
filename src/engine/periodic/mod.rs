//! Periodic work: the tick loop and the tasks it runs — the scheduler, the supervisor, the
//! outbox, the status comments, reconciliation and GC.

pub mod gc;
pub mod outbox;
pub mod question_comments;
pub mod reconcile;
pub mod scheduler;
pub mod status;
pub mod supervisor;
pub mod tick;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Posting;
use crate::engine::identity::Identity;
use crate::engine::objective::Objectives;
use crate::engine::runtime::Runtime;
use crate::github::repos::Repos;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::store::Store;
use crate::workspace::gc::Gc;

/// What periodic work takes: the store and clock, foreman's GitHub identity and how it posts,
/// GC's state, and the objective services and agent runtime the tasks drive.
pub struct Periodic {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub github: Arc<Identity>,
    /// How the outbox posts to GitHub.
    pub posting: Posting,
    pub gc: Arc<Gc>,
    pub objectives: Arc<Objectives>,
    pub runtime: Arc<Runtime>,
    /// What GitHub says of repositories (their config), shared with the inbox's handlers.
    pub repos: Arc<Repos>,
    /// Wakes the inbox processor (reconciliation queues a delivery a lost webhook would
    /// have brought).
    pub inbox_bell: Arc<Notify>,
    /// Rung when something changed that periodic work should look at soon: the store's due
    /// bell, which every committed transaction that made work due rings by itself.
    pub tick_bell: Arc<Notify>,
    /// Counts the tick loop's complete passes, so that a caller can wait for one that began
    /// after something it did (tests step the loop this way instead of sleeping).
    pub tick_passes: tokio::sync::watch::Sender<u64>,
}
