//! foreman on GitHub: the App (which the setup flow may install while running) and the webhook
//! secrets, and the rule that nothing is done for a repository foreman may not act for.

use std::sync::{Arc, RwLock};

use secrecy::SecretString;

use crate::github::app::GitHubApp;
use crate::model::InstallationId;
use crate::store::Store;
use crate::workspace::CommitAuthor;

/// The GitHub-facing credentials, replaceable at run time, and the store that says where
/// foreman may act.
pub struct Identity {
    store: Store,
    /// Names of the variables passed to agents (their values may be secrets).
    passthrough_env: Vec<String>,
    current: RwLock<Current>,
    /// The App's bot account as a commit author, once asked, with the App it belongs to.
    bot: std::sync::Mutex<Option<(u64, CommitAuthor)>>,
    /// foreman's public base URL, when configured: what links to its web view start with.
    public_url: RwLock<Option<String>>,
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
            bot: std::sync::Mutex::new(None),
            public_url: RwLock::new(None),
        }
    }

    /// foreman's public base URL (`FOREMAN_PUBLIC_URL`), for links to its web view.
    pub fn public_url(&self) -> Option<String> {
        self.public_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_public_url(&self, url: Option<String>) {
        *self.public_url.write().unwrap_or_else(|e| e.into_inner()) =
            url.map(|u| u.trim_end_matches('/').to_owned());
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

    /// The App's bot account as a commit author (`<slug>[bot]`, with the address GitHub links
    /// to it), asked of GitHub once per App through `installation`. `None` without an App, or
    /// when GitHub cannot say now (asked again next time).
    pub async fn bot_author(
        &self,
        installation: InstallationId,
        repository: &str,
    ) -> Option<CommitAuthor> {
        let app = self.app()?;
        let cached = self.bot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((_, author)) = cached.filter(|(id, _)| *id == app.app_id()) {
            return Some(author);
        }
        let asked = async {
            let slug = crate::github::rest::app_slug(&app.app_client()?).await?;
            anyhow::ensure!(!slug.is_empty(), "GitHub gave the App no slug");
            let client = app.installation_client(installation, repository).await?;
            let id = crate::github::rest::user_id(&client, &format!("{slug}[bot]")).await?;
            anyhow::ensure!(id != 0, "GitHub gave the App's bot account no id");
            Ok(CommitAuthor::bot(&slug, id))
        };
        match asked.await {
            Ok(author) => {
                tracing::info!(
                    name = author.name,
                    email = author.email,
                    "commits are made as the App's bot account"
                );
                *self.bot.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((app.app_id(), author.clone()));
                Some(author)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot tell the App's bot account; commits keep their current author");
                None
            }
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
