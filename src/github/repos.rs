//! What foreman knows about a repository from GitHub, cached briefly: its
//! `.github/foreman.yml` (from the default branch only — never a pull request's head) and
//! people's permissions on it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use octocrab::Octocrab;

use crate::github::rest;
use crate::model::Timestamp;
use crate::model::network::NetworkPolicy;
use crate::model::repo_config::{CONFIG_PATH, ConfigError, ModelPolicy, Permission, RepoConfig};

/// How long a repository's config is trusted before it is read again.
pub const CONFIG_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a permission is trusted before it is asked again.
pub const PERMISSION_TTL: Duration = Duration::from_secs(60);

type ConfigEntry = (Timestamp, RepoConfig);

/// The caches, and what the server allows a repository's config.
#[derive(Default)]
pub struct Repos {
    models: ModelPolicy,
    network: NetworkPolicy,
    configs: Mutex<HashMap<String, ConfigEntry>>,
    permissions: Mutex<HashMap<(String, String), (Timestamp, Permission)>>,
}

impl Repos {
    /// Caches that check each config against the server's model and network policies.
    pub fn new(models: ModelPolicy, network: NetworkPolicy) -> Repos {
        Repos {
            models,
            network,
            ..Repos::default()
        }
    }

    /// The repository's config as its default branch has it (defaults when there is no
    /// file), or what is wrong with it.
    pub async fn config(
        &self,
        client: &Octocrab,
        repository: &str,
        default_branch: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<RepoConfig, ConfigError>> {
        if let Some((at, config)) = lock(&self.configs).get(repository)
            && now.since(*at) < CONFIG_TTL
        {
            return Ok(Ok(config.clone()));
        }
        let branch = match default_branch {
            Some(b) => b.to_owned(),
            None => rest::default_branch(client, repository).await?,
        };
        let text = rest::file(client, repository, CONFIG_PATH, &branch).await?;
        let config = RepoConfig::parse(text.as_deref().unwrap_or_default())
            .and_then(|c| self.models.check(&c).map(|()| c))
            .and_then(|c| {
                self.network
                    .check(&c.network)
                    .map(|()| c)
                    .map_err(|message| ConfigError {
                        message,
                        line: None,
                    })
            });
        // Only a good config is kept: a broken one is read again on the next event, so that
        // fixing the file and adding the label again (what foreman's reply asks) just works.
        if let Ok(good) = &config {
            lock(&self.configs).insert(repository.to_owned(), (now, good.clone()));
        }
        Ok(config)
    }

    /// Forgets a repository's config (it changed).
    pub fn forget_config(&self, repository: &str) {
        lock(&self.configs).remove(repository);
    }

    /// A person's permission on the repository.
    pub async fn permission(
        &self,
        client: &Octocrab,
        repository: &str,
        login: &str,
        now: Timestamp,
    ) -> Result<Permission> {
        let key = (repository.to_owned(), login.to_ascii_lowercase());
        if let Some((at, permission)) = lock(&self.permissions).get(&key)
            && now.since(*at) < PERMISSION_TTL
        {
            return Ok(*permission);
        }
        let permission = rest::permission(client, repository, login).await?;
        lock(&self.permissions).insert(key, (now, permission));
        Ok(permission)
    }
}

/// Whether someone with `permission` passes a bar of `least`, or is named in the config.
pub fn allowed(
    permission: Permission,
    least: Permission,
    login: &str,
    config: &RepoConfig,
) -> bool {
    permission >= least
        || config
            .permissions
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(login))
}

/// Whether someone may answer foreman's questions: `permissions.answer` (or named in
/// `users`), or the issue's author where the config lets authors answer.
pub fn may_answer(
    permission: Permission,
    login: &str,
    is_issue_author: bool,
    config: &RepoConfig,
) -> bool {
    allowed(permission, config.permissions.answer, login, config)
        || (config.permissions.issue_author_may_answer && is_issue_author)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_or_the_list_lets_people_in() {
        let mut config = RepoConfig::default();
        assert!(allowed(Permission::Admin, Permission::Write, "a", &config));
        assert!(allowed(Permission::Write, Permission::Write, "a", &config));
        assert!(!allowed(
            Permission::Triage,
            Permission::Write,
            "a",
            &config
        ));
        config.permissions.users = vec!["Dana".into()];
        assert!(allowed(
            Permission::None,
            Permission::Write,
            "dana",
            &config
        ));
    }
}
