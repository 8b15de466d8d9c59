//! The engine: what foreman does with what it stores. The inbox processor hands deliveries to
//! event handlers; the tick loop runs periodic work. Everything here reads from and writes to
//! the store; the HTTP layer only feeds it.

pub mod handlers;
pub mod inbox;
pub mod tick;

use std::sync::{Arc, RwLock};

use secrecy::SecretString;
use tokio::sync::Notify;

use crate::github::app::GitHubApp;
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::store::Store;

/// What every part of foreman shares: the store, the clock, the GitHub App identity (which
/// the setup flow may install while running), metrics, and the bells that wake the loops.
pub struct Engine {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    /// Rung when a delivery is stored.
    pub inbox_bell: Notify,
    /// Rung when something changed that periodic work should look at soon.
    pub tick_bell: Notify,
    identity: RwLock<Identity>,
}

/// The GitHub-facing credentials, replaceable at run time.
#[derive(Default)]
struct Identity {
    app: Option<Arc<GitHubApp>>,
    webhook_secrets: Arc<Vec<SecretString>>,
}

impl Engine {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Engine {
        Engine {
            store,
            clock,
            metrics: Metrics::default(),
            inbox_bell: Notify::new(),
            tick_bell: Notify::new(),
            identity: RwLock::new(Identity::default()),
        }
    }

    /// The GitHub App, when its credentials are configured.
    pub fn github(&self) -> Option<Arc<GitHubApp>> {
        self.identity().app.clone()
    }

    /// The webhook secrets accepted now (empty: none configured).
    pub fn webhook_secrets(&self) -> Arc<Vec<SecretString>> {
        self.identity().webhook_secrets.clone()
    }

    /// Installs (or replaces) the App identity and webhook secrets.
    pub fn set_identity(&self, app: Option<Arc<GitHubApp>>, webhook_secrets: Vec<SecretString>) {
        let mut identity = self.identity.write().unwrap_or_else(|e| e.into_inner());
        identity.app = app;
        identity.webhook_secrets = Arc::new(webhook_secrets);
    }

    fn identity(&self) -> std::sync::RwLockReadGuard<'_, Identity> {
        self.identity.read().unwrap_or_else(|e| e.into_inner())
    }
}
