//! foreman on GitHub: the App (which the setup flow may install while running) and the webhook
//! secrets, and the rule that nothing is done for a repository foreman may not act for.

use std::sync::{Arc, RwLock};

use secrecy::SecretString;

use crate::github::app::GitHubApp;
use crate::model::InstallationId;
use crate::store::Store;

/// The GitHub-facing credentials, replaceable at run time, and the store that says where
/// foreman may act.
pub struct Identity {
    store: Store,
    /// Names of the variables passed to agents (their values may be secrets).
    passthrough_env: Vec<String>,
    current: RwLock<Current>,
}

#[derive(Default)]
struct Current {
    app: Option<Arc<GitHubApp>>,
    webhook_secrets: Arc<Vec<SecretString>>,
}

impl Identity {
    /// No App and no webhook secret yet.
    pub fn new(store: Store, passthrough_env: Vec<String>) -> Identity {
        Identity {
            store,
            passthrough_env,
            current: RwLock::new(Current::default()),
        }
    }

    /// The GitHub App, when its credentials are configured.
    pub fn app(&self) -> Option<Arc<GitHubApp>> {
        self.current().app.clone()
    }

    /// A client for one repository of the installation an event came through (its token
    /// scoped to that repository): none when the event names no installation or the App is
    /// not configured.
    pub async fn installation_client(
        &self,
        installation: Option<i64>,
        repository: &str,
    ) -> anyhow::Result<Option<octocrab::Octocrab>> {
        match (installation, self.app()) {
            (Some(id), Some(app)) => {
                let id = InstallationId(id);
                self.may_act(id, repository).await?;
                Ok(Some(app.installation_client(id, repository).await?))
            }
            _ => Ok(None),
        }
    }

    /// Refuses, saying why, when foreman may not act for `repository` through `installation`
    /// (suspended, uninstalled, or the repository removed): nothing is posted or pushed there.
    pub async fn may_act(
        &self,
        installation: InstallationId,
        repository: &str,
    ) -> anyhow::Result<()> {
        match self.store.standing(installation, Some(repository)).await? {
            Some(why) => anyhow::bail!("foreman may not act for {repository}: {why}"),
            None => Ok(()),
        }
    }

    /// Secret values no agent's post may carry: foreman's webhook secrets and the values of
    /// the variables passed to agents whose names say they are keys, tokens or secrets.
    pub fn known_secrets(&self) -> Vec<SecretString> {
        let mut known: Vec<SecretString> = self.webhook_secrets().iter().cloned().collect();
        let secret_name = |n: &str| {
            ["KEY", "TOKEN", "SECRET", "PASSWORD"]
                .iter()
                .any(|w| n.to_ascii_uppercase().contains(w))
        };
        for name in self.passthrough_env.iter().filter(|n| secret_name(n)) {
            if let Ok(value) = std::env::var(name)
                && !value.is_empty()
            {
                known.push(SecretString::from(value));
            }
        }
        known
    }

    /// The webhook secrets accepted now (empty: none configured).
    pub fn webhook_secrets(&self) -> Arc<Vec<SecretString>> {
        self.current().webhook_secrets.clone()
    }

    /// Installs (or replaces) the App and the webhook secrets.
    pub fn set(&self, app: Option<Arc<GitHubApp>>, webhook_secrets: Vec<SecretString>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        current.app = app;
        current.webhook_secrets = Arc::new(webhook_secrets);
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}
