//! Workspaces and pull requests. A workspace has one writer at a time (its `holder`), taken
//! by a conditional update and free again once the holder session has ended.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col};
use crate::model::pulls::{Checks, Mergeable, PullState};
use crate::model::{
    ObjectiveId, PullRequest, SessionId, Timestamp, Workspace, WorkspaceId, WorkspaceStatus,
};

/// A workspace about to be prepared.
#[derive(Debug, Clone)]
pub struct NewWorkspace<'a> {
    pub objective_id: ObjectiveId,
    pub created_by: SessionId,
    pub repository: &'a str,
    pub target: &'a str,
    pub path: &'a str,
    pub branch: Option<&'a str>,
    pub base_ref: &'a str,
}

/// A pull request to record (or update, by repository and number).
#[derive(Debug, Clone)]
pub struct NewPull<'a> {
    pub objective_id: ObjectiveId,
    pub workspace_id: Option<WorkspaceId>,
    pub session_id: Option<SessionId>,
    pub repository: &'a str,
    pub number: u64,
    pub branch: &'a str,
    pub base_ref: &'a str,
    pub head_sha: &'a str,
    pub state: PullState,
    pub title: &'a str,
    pub url: &'a str,
    pub closes_issue: bool,
}

const WORKSPACE_COLUMNS: &str = "id, objective_id, created_by, repository, target, path, branch, \
     base_ref, base_sha, status, error, holder";
pub(super) const PULL_COLUMNS: &str = "id, objective_id, workspace_id, session_id, repository, number, \
     branch, base_ref, head_sha, state, checks, title, url, closes_issue, updated_at, mergeable, \
     decision, checks_sha, checks_detail";

impl Store {
    /// One workspace.
    pub async fn workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>> {
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read workspace")?;
        row.as_ref().map(workspace).transpose()
    }

    /// The workspaces of an objective, oldest first.
    pub async fn workspaces_of(&self, objective: ObjectiveId) -> Result<Vec<Workspace>> {
        let sql = format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE objective_id = $1 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list workspaces")?;
        rows.iter().map(workspace).collect()
    }

    /// The workspace whose work is published on `branch` of `repository`.
    pub async fn workspace_by_branch(
        &self,
        repository: &str,
        branch: &str,
    ) -> Result<Option<Workspace>> {
        let sql = format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE repository = $1 AND branch = $2
             ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(branch)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot look up workspace")?;
        row.as_ref().map(workspace).transpose()
    }

    /// Records that preparing a workspace ended: ready at `(base_ref, base_sha)`, or failed.
    pub async fn finish_workspace(
        &self,
        id: WorkspaceId,
        outcome: Result<(&str, &str), &str>,
        now: Timestamp,
    ) -> Result<()> {
        let (status, base, error) = match outcome {
            Ok(base) => (WorkspaceStatus::Ready, Some(base), None),
            Err(e) => (WorkspaceStatus::Failed, None, Some(e)),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE workspaces SET status = $1, base_ref = COALESCE($2, base_ref),
                 base_sha = COALESCE($3, base_sha), error = $4, updated_at = $5
             WHERE id = $6 AND status = 'preparing'",
        )
        .bind(status.as_str())
        .bind(base.map(|b| b.0))
        .bind(base.map(|b| b.1))
        .bind(error)
        .bind(now.0)
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot record workspace state")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a ready workspace's checkout is gone with the machine it was on: it is
    /// archived (there is nothing here to remove) with `why` as its note, and audited. False
    /// when it was not ready any more.
    pub async fn lose_workspace(
        &self,
        id: WorkspaceId,
        why: &str,
        audit: &crate::store::AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE workspaces SET status = 'archived', archived_at = $1, updated_at = $1,
                 holder = NULL, gc_note = $2
             WHERE id = $3 AND status = 'ready'",
        )
        .bind(audit.at.0)
        .bind(why)
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot record a lost workspace")?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        tx.audit(audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the workspace's write lock for `session`: true if it was free, already the
    /// session's, or held by a session that has ended.
    pub async fn acquire_workspace(
        &self,
        id: WorkspaceId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE workspaces SET holder = $1, updated_at = $2
             WHERE id = $3 AND status = 'ready'
               AND (holder IS NULL OR holder = $1 OR holder IN (
                    SELECT s.id FROM sessions s
                    WHERE s.status IN ('succeeded', 'failed', 'cancelled')))",
        )
        .bind(session.0)
        .bind(now.0)
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot lock workspace")?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Gives the workspace's write lock up, if `session` holds it.
    pub async fn release_workspace(&self, id: WorkspaceId, session: SessionId) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE workspaces SET holder = NULL WHERE id = $1 AND holder = $2")
            .bind(id.0)
            .bind(session.0)
            .execute(tx.conn())
            .await
            .context("cannot unlock workspace")?;
        tx.commit().await?;
        Ok(())
    }

    /// Points a session at the workspace it works in.
    pub async fn attach_workspace(&self, session: SessionId, workspace: WorkspaceId) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET workspace_id = $1 WHERE id = $2")
            .bind(workspace.0)
            .bind(session.0)
            .execute(tx.conn())
            .await
            .context("cannot attach workspace")?;
        tx.commit().await?;
        Ok(())
    }

    /// The pull request made from `branch` of `repository`, newest first.
    pub async fn pull_by_branch(
        &self,
        repository: &str,
        branch: &str,
    ) -> Result<Option<PullRequest>> {
        let sql = format!(
            "SELECT {PULL_COLUMNS} FROM pull_requests WHERE repository = $1 AND branch = $2
             ORDER BY number DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(branch)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot look up pull request")?;
        row.as_ref().map(pull).transpose()
    }

    /// An objective's pull requests, oldest first.
    pub async fn pulls_of(&self, objective: ObjectiveId) -> Result<Vec<PullRequest>> {
        let sql = format!(
            "SELECT {PULL_COLUMNS} FROM pull_requests WHERE objective_id = $1 ORDER BY number"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list pull requests")?;
        rows.iter().map(pull).collect()
    }

    /// Records a pull request, or updates the one with its repository and number. True when
    /// it was new.
    pub async fn upsert_pull(&self, p: &NewPull<'_>, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let new = tx.upsert_pull(p, now).await?;
        tx.commit().await?;
        Ok(new)
    }
}

impl Tx {
    /// Records a workspace being prepared, held by the session that creates it.
    pub async fn insert_workspace(
        &mut self,
        w: &NewWorkspace<'_>,
        now: Timestamp,
    ) -> Result<WorkspaceId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO workspaces (objective_id, created_by, repository, target, path, branch,
                base_ref, status, holder, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'preparing', $2, $8, $8) RETURNING id",
        )
        .bind(w.objective_id.0)
        .bind(w.created_by.0)
        .bind(w.repository)
        .bind(w.target)
        .bind(w.path)
        .bind(w.branch)
        .bind(w.base_ref)
        .bind(now.0)
        .fetch_one(self.conn())
        .await
        .context("cannot store workspace")?;
        sqlx::query("UPDATE sessions SET workspace_id = $1 WHERE id = $2")
            .bind(id)
            .bind(w.created_by.0)
            .execute(self.conn())
            .await
            .context("cannot attach workspace")?;
        Ok(WorkspaceId(id))
    }

    /// Records a pull request, or updates the one with its repository and number (an
    /// adopted one keeps its origin). True when it was new.
    pub async fn upsert_pull(&mut self, p: &NewPull<'_>, now: Timestamp) -> Result<bool> {
        self.made_due();
        let existed: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM pull_requests WHERE repository = $1 AND number = $2",
        )
        .bind(p.repository)
        .bind(p.number as i64)
        .fetch_optional(self.conn())
        .await
        .context("cannot look up pull request")?;
        sqlx::query(
            "INSERT INTO pull_requests (objective_id, workspace_id, session_id, repository, number,
                branch, base_ref, head_sha, state, checks, title, url, closes_issue, created_at,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $13, $13)
             ON CONFLICT (repository, number) DO UPDATE SET
                head_sha = excluded.head_sha, title = excluded.title, state = excluded.state,
                closes_issue = excluded.closes_issue, updated_at = excluded.updated_at,
                session_id = COALESCE(pull_requests.session_id, excluded.session_id),
                workspace_id = COALESCE(pull_requests.workspace_id, excluded.workspace_id)",
        )
        .bind(p.objective_id.0)
        .bind(p.workspace_id.map(|w| w.0))
        .bind(p.session_id.map(|s| s.0))
        .bind(p.repository)
        .bind(p.number as i64)
        .bind(p.branch)
        .bind(p.base_ref)
        .bind(p.head_sha)
        .bind(p.state.as_str())
        .bind(p.title)
        .bind(p.url)
        .bind(i64::from(p.closes_issue))
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot store pull request")?;
        Ok(existed.is_none())
    }
}

fn workspace(row: &AnyRow) -> Result<Workspace> {
    let status: String = col(row, "status")?;
    Ok(Workspace {
        id: WorkspaceId(col(row, "id")?),
        objective_id: ObjectiveId(col(row, "objective_id")?),
        created_by: col::<Option<i64>>(row, "created_by")?.map(SessionId),
        repository: col(row, "repository")?,
        target: col(row, "target")?,
        path: col(row, "path")?,
        branch: col(row, "branch")?,
        base_ref: col(row, "base_ref")?,
        base_sha: col(row, "base_sha")?,
        status: WorkspaceStatus::parse(&status)
            .with_context(|| format!("unknown workspace status `{status}`"))?,
        error: col(row, "error")?,
        holder: col::<Option<i64>>(row, "holder")?.map(SessionId),
    })
}

pub(super) fn pull(row: &AnyRow) -> Result<PullRequest> {
    Ok(PullRequest {
        id: col(row, "id")?,
        objective_id: ObjectiveId(col(row, "objective_id")?),
        workspace_id: col::<Option<i64>>(row, "workspace_id")?.map(WorkspaceId),
        session_id: col::<Option<i64>>(row, "session_id")?.map(SessionId),
        repository: col(row, "repository")?,
        number: u64::try_from(col::<i64>(row, "number")?).unwrap_or(0),
        branch: col(row, "branch")?,
        base_ref: col(row, "base_ref")?,
        head_sha: col(row, "head_sha")?,
        state: super::parse_pull_state(&col::<String>(row, "state")?)?,
        checks: {
            let checks: String = col(row, "checks")?;
            Checks::parse(&checks).with_context(|| format!("unknown checks state `{checks}`"))?
        },
        title: col(row, "title")?,
        url: col(row, "url")?,
        closes_issue: col::<i64>(row, "closes_issue")? != 0,
        updated_at: Timestamp(col(row, "updated_at")?),
        mergeable: col::<Option<String>>(row, "mergeable")?
            .as_deref()
            .and_then(Mergeable::parse),
        decision: col(row, "decision")?,
        checks_sha: col(row, "checks_sha")?,
        checks_detail: col(row, "checks_detail")?,
    })
}
