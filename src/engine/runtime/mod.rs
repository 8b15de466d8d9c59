//! Agents running: a session's turn as a sandboxed process in its checkout, what it reports
//! while it runs, and how the turn ends.

pub mod capacity;
pub mod process;
pub mod push;
pub mod settings;
pub mod tokens;
pub mod turns;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::engine::identity::Identity;
use crate::metrics::Metrics;
use crate::model::{Clock, SessionId};
use crate::store::Store;
use crate::workspace::Workspaces;
use crate::workspace::gc::Gc;
pub use settings::AgentSettings;

/// What running agents takes: the store and clock, the agents' settings, the checkouts they
/// work in, GC's free-space threshold, foreman's GitHub identity (to mint their tokens), and
/// the turns this process runs.
pub struct Runtime {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub agents: AgentSettings,
    pub workspaces: Arc<Workspaces>,
    pub gc: Arc<Gc>,
    pub github: Arc<Identity>,
    /// This instance's name on the sessions it runs.
    pub runner: String,
    /// Wakes periodic work (a turn ended; GC is wanted).
    pub tick_bell: Arc<Notify>,
    /// Cancelled when foreman shuts down: running turns are stopped (their sessions stay
    /// resumable) and no new one starts.
    pub shutdown: CancellationToken,
    /// Built empty with the runtime ([`crate::engine::Engine::assemble`]).
    pub(in crate::engine) turns: Mutex<HashMap<SessionId, turns::LocalTurn>>,
    /// Connections to the remote targets turns run on.
    pub sites: Arc<crate::workspace::remote::Sites>,
}

impl Runtime {
    /// Whether a checkout is still where it was made (on its target).
    pub async fn checkout_exists(
        &self,
        workspace: &crate::model::Workspace,
    ) -> anyhow::Result<bool> {
        let path = std::path::Path::new(&workspace.path);
        match self.site_of(workspace).await? {
            Some(site) => site.exists(path).await,
            None => Ok(path.exists()),
        }
    }

    /// The remote target a checkout is on, connected (`None` on this machine).
    pub async fn site_of(
        &self,
        workspace: &crate::model::Workspace,
    ) -> anyhow::Result<Option<Arc<crate::workspace::remote::Site>>> {
        self.sites.site(&workspace.target).await
    }

    /// Stops every turn this process runs — their process groups killed, their sessions left
    /// as they are so that they resume when foreman runs again — and waits up to `within`
    /// for the turns to record that. No turn starts afterwards.
    pub async fn stop_turns(&self, within: std::time::Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = self.turns().len();
            if left == 0 {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(left, "turns still ending at shutdown; leaving them");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Makes commits for `objective` (and the checkouts made for it) as the App's bot account,
    /// unless the operator chose the commit identity. Asked of GitHub once per App.
    pub async fn commit_as_bot(&self, objective: &crate::model::Objective) {
        if self.workspaces.author_configured() {
            return;
        }
        let Some(installation) = objective.installation_id else {
            return;
        };
        if let Some(author) = self
            .github
            .bot_author(installation, &objective.repository)
            .await
        {
            self.workspaces.set_author(author);
        }
    }

    /// The turns this process runs.
    pub fn turns(&self) -> MutexGuard<'_, HashMap<SessionId, turns::LocalTurn>> {
        self.turns.lock().unwrap_or_else(|e| e.into_inner())
    }
}
