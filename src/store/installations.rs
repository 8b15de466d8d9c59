//! Installations of the App and the repositories each one can reach, kept current from
//! `installation` and `installation_repositories` events.

use anyhow::{Context, Result};

use super::{Store, Tx, col};
use crate::model::{InstallationId, RepositoryId, Timestamp};

/// Whether foreman may act for an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationState {
    Active,
    /// Suspended by the account; nothing is done for it until unsuspended.
    Suspended,
    /// Uninstalled. Final: a reinstall gets a new installation id.
    Deleted,
}

impl InstallationState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallationState::Active => "active",
            InstallationState::Suspended => "suspended",
            InstallationState::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Result<InstallationState> {
        Ok(match s {
            "active" => InstallationState::Active,
            "suspended" => InstallationState::Suspended,
            "deleted" => InstallationState::Deleted,
            other => anyhow::bail!("unknown installation state `{other}`"),
        })
    }
}

/// A stored installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: InstallationId,
    pub account: String,
    pub state: InstallationState,
    pub repositories: Vec<(RepositoryId, String)>,
}

impl Store {
    /// An installation and its repositories, if known.
    pub async fn installation(&self, id: InstallationId) -> Result<Option<Installation>> {
        let Some(row) = sqlx::query("SELECT id, account, state FROM installations WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read installation")?
        else {
            return Ok(None);
        };
        let repos = sqlx::query(
            "SELECT id, full_name FROM repositories
             WHERE installation_id = $1 AND removed_at IS NULL ORDER BY full_name",
        )
        .bind(id.0)
        .fetch_all(&self.db.pool)
        .await
        .context("cannot read installation repositories")?;
        let state: String = col(&row, "state")?;
        Ok(Some(Installation {
            id: InstallationId(col(&row, "id")?),
            account: col(&row, "account")?,
            state: InstallationState::parse(&state)?,
            repositories: repos
                .iter()
                .map(|r| Ok((RepositoryId(col(r, "id")?), col(r, "full_name")?)))
                .collect::<Result<_>>()?,
        }))
    }

    /// The state of an installation, if foreman has heard of it.
    pub async fn installation_state(
        &self,
        id: InstallationId,
    ) -> Result<Option<InstallationState>> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM installations WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
                .context("cannot read installation state")?;
        state.as_deref().map(InstallationState::parse).transpose()
    }

    /// Every repository foreman has heard of, with the installation it came through: those
    /// its installations listed, those with objectives, and those deliveries came from.
    pub async fn known_repositories(&self) -> Result<Vec<(InstallationId, String)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT installation_id, full_name FROM repositories WHERE removed_at IS NULL
             UNION
             SELECT installation_id, repository FROM objectives
              WHERE installation_id IS NOT NULL
             UNION
             SELECT installation_id, repository FROM deliveries
              WHERE installation_id IS NOT NULL AND repository IS NOT NULL
             ORDER BY 2, 1",
        )
        .fetch_all(&self.db.pool)
        .await
        .context("cannot list the repositories foreman knows")?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| (InstallationId(id), name))
            .collect())
    }

    /// Why foreman may not act for `repository` (or the whole installation) through
    /// `installation` now — the installation is suspended or deleted, or the repository was
    /// removed from it — or `None` when it may (an installation or repository foreman has not
    /// heard of gets the benefit of the doubt).
    pub async fn standing(
        &self,
        installation: InstallationId,
        repository: Option<&str>,
    ) -> Result<Option<String>> {
        if let Some(state) = self.installation_state(installation).await?
            && state != InstallationState::Active
        {
            return Ok(Some(format!(
                "foreman's GitHub App installation {installation} is {}",
                state.as_str()
            )));
        }
        let Some(repository) = repository else {
            return Ok(None);
        };
        let removed: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM repositories
             WHERE installation_id = $1 AND full_name = $2 AND removed_at IS NOT NULL",
        )
        .bind(installation.0)
        .bind(repository)
        .fetch_optional(&self.db.pool)
        .await
        .context("cannot read the repository's standing")?;
        Ok(removed.map(|_| {
            format!(
                "{repository} was removed from foreman's GitHub App installation {installation}"
            )
        }))
    }
}

impl Tx {
    /// Records an installation, or updates its account and state. A deleted installation
    /// stays deleted whatever arrives later.
    pub async fn upsert_installation(
        &mut self,
        id: InstallationId,
        account: &str,
        account_type: Option<&str>,
        repository_selection: Option<&str>,
        state: InstallationState,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO installations (id, account, account_type, repository_selection, state,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET
                account = excluded.account,
                account_type = COALESCE(excluded.account_type, installations.account_type),
                repository_selection = COALESCE(excluded.repository_selection,
                                                installations.repository_selection),
                state = CASE WHEN installations.state = 'deleted' THEN 'deleted'
                             ELSE excluded.state END,
                updated_at = excluded.updated_at",
        )
        .bind(id.0)
        .bind(account)
        .bind(account_type)
        .bind(repository_selection)
        .bind(state.as_str())
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot store installation")?;
        Ok(())
    }

    /// Makes sure an installation row exists (events may arrive before `installation
    /// created`), without changing a known one.
    pub async fn ensure_installation(
        &mut self,
        id: InstallationId,
        account: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO installations (id, account, state, updated_at)
             VALUES ($1, $2, 'active', $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.0)
        .bind(account)
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot store installation")?;
        Ok(())
    }

    /// Adds (or moves, or renames) repositories under an installation.
    pub async fn add_repositories(
        &mut self,
        installation: InstallationId,
        repositories: &[(RepositoryId, String)],
        now: Timestamp,
    ) -> Result<()> {
        for (id, full_name) in repositories {
            sqlx::query(
                "INSERT INTO repositories (id, installation_id, full_name, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET
                    installation_id = excluded.installation_id,
                    full_name = excluded.full_name,
                    updated_at = excluded.updated_at,
                    removed_at = NULL",
            )
            .bind(id.0)
            .bind(installation.0)
            .bind(full_name)
            .bind(now.0)
            .execute(self.conn())
            .await
            .context("cannot store repository")?;
        }
        Ok(())
    }

    /// Records repositories as removed from an installation: nothing is done for them there
    /// until they are added back.
    pub async fn remove_repositories(
        &mut self,
        installation: InstallationId,
        repositories: &[(RepositoryId, String)],
        now: Timestamp,
    ) -> Result<()> {
        for (id, full_name) in repositories {
            sqlx::query(
                "INSERT INTO repositories (id, installation_id, full_name, updated_at, removed_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (id) DO UPDATE SET
                    full_name = excluded.full_name,
                    updated_at = excluded.updated_at,
                    removed_at = excluded.removed_at
                 WHERE repositories.installation_id = excluded.installation_id",
            )
            .bind(id.0)
            .bind(installation.0)
            .bind(full_name)
            .bind(now.0)
            .execute(self.conn())
            .await
            .context("cannot remove repository")?;
        }
        Ok(())
    }

    /// Forgets every repository of an installation (it was uninstalled).
    pub async fn clear_repositories(&mut self, installation: InstallationId) -> Result<()> {
        sqlx::query("DELETE FROM repositories WHERE installation_id = $1")
            .bind(installation.0)
            .execute(self.conn())
            .await
            .context("cannot remove repositories")?;
        Ok(())
    }
}
