//! What workspace GC reads and writes: the snapshot its rules decide on, the claim that makes
//! a removal exclusive (against sessions starting to use a workspace and against other passes),
//! the archive record with its audit entry, and when each mirror was last `git gc`'d.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{AuditEntry, Store, col};
use crate::model::gc::{Claim, GcPull, GcSession, GcWorkspace, Snapshot};
use crate::model::{
    InstallationId, ObjectiveId, ObjectiveStatus, SessionId, SessionStatus, Timestamp, WorkspaceId,
    WorkspaceStatus,
};

/// The statuses of workspaces GC may act on.
const OPEN: &str = "('ready', 'preparing', 'reclaiming')";
/// The statuses of sessions that have ended.
const ENDED: &str = "('succeeded', 'failed', 'cancelled')";

/// What GC recorded about one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceGcInfo {
    pub status: WorkspaceStatus,
    /// Why GC last could not reclaim it.
    pub note: Option<String>,
    /// What removing its checkout freed.
    pub reclaimed_bytes: Option<u64>,
    pub archived_at: Option<Timestamp>,
}

impl Store {
    /// Every workspace not archived, the sessions of their objectives (and of their
    /// holders), and their pull requests.
    pub async fn gc_snapshot(&self) -> Result<Snapshot> {
        let sql = format!(
            "SELECT w.id, w.objective_id, o.status AS objective_status, o.installation_id,
                    w.created_by, w.repository, w.target, w.path, w.branch, w.base_ref,
                    w.base_sha, w.status, w.holder, w.updated_at, w.gc_claim, w.gc_claimed_by,
                    w.gc_claimed_at, w.gc_removing, w.gc_note
             FROM workspaces w JOIN objectives o ON o.id = w.objective_id
             WHERE w.status IN {OPEN} ORDER BY w.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list workspaces for GC")?;
        let workspaces = rows.iter().map(gc_workspace).collect::<Result<Vec<_>>>()?;
        let objectives = format!("SELECT objective_id FROM workspaces WHERE status IN {OPEN}");
        let sql = format!(
            "SELECT id, status, workspace_id FROM sessions
             WHERE objective_id IN ({objectives})
                OR id IN (SELECT holder FROM workspaces
                          WHERE status IN {OPEN} AND holder IS NOT NULL)
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list sessions for GC")?;
        let mut sessions = rows.iter().map(gc_session).collect::<Result<Vec<_>>>()?;
        let sql = format!(
            "SELECT d.session_id, d.depends_on FROM session_dependencies d
             WHERE d.session_id IN (SELECT id FROM sessions WHERE objective_id IN ({objectives}))
             ORDER BY d.session_id, d.depends_on"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list session dependencies for GC")?;
        for row in &rows {
            let (id, dep) = (
                SessionId(col(row, "session_id")?),
                SessionId(col(row, "depends_on")?),
            );
            if let Some(s) = sessions.iter_mut().find(|s| s.id == id) {
                s.depends_on.push(dep);
            }
        }
        let sql = format!(
            "SELECT workspace_id, number, state, head_sha FROM pull_requests
             WHERE workspace_id IN (SELECT id FROM workspaces WHERE status IN {OPEN})
             ORDER BY number"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list pull requests for GC")?;
        let pulls = rows
            .iter()
            .map(|r| {
                Ok(GcPull {
                    workspace_id: WorkspaceId(col(r, "workspace_id")?),
                    number: u64::try_from(col::<i64>(r, "number")?).unwrap_or(0),
                    state: super::parse_pull_state(&col::<String>(r, "state")?)?,
                    head_sha: col(r, "head_sha")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Snapshot {
            workspaces,
            sessions,
            pulls,
        })
    }

    /// Claims a workspace for reclaiming: it becomes `reclaiming` under `claim`, so no session
    /// can start using it. Only if it is ready (or `preparing` since before
    /// `abandoned_before`, or `reclaiming` under a claim that is free, older than
    /// `stale_before`, or left by an earlier life of this instance) and no live session works
    /// in it, holds it, or depends on a session whose checkout it is. True when claimed.
    pub async fn claim_workspace(
        &self,
        id: WorkspaceId,
        claim: &Claim,
        stale_before: Timestamp,
        abandoned_before: Timestamp,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE workspaces SET status = 'reclaiming', gc_claim = $1, gc_claimed_by = $2,
                 gc_claimed_at = $3
             WHERE id = $4
               AND (status = 'ready'
                    OR (status = 'preparing' AND updated_at < $5)
                    OR (status = 'reclaiming' AND (gc_claim IS NULL OR gc_claimed_at < $6
                        OR (gc_claimed_by = $2 AND gc_claim <> $1))))
               AND NOT EXISTS (SELECT 1 FROM sessions s
                               WHERE s.workspace_id = $4 AND s.status NOT IN {ENDED})
               AND NOT EXISTS (SELECT 1 FROM sessions h
                               WHERE h.id = workspaces.holder AND h.status NOT IN {ENDED})
               AND NOT EXISTS (SELECT 1 FROM session_dependencies d
                               JOIN sessions s ON s.id = d.session_id
                               JOIN sessions p ON p.id = d.depends_on
                               WHERE p.workspace_id = $4 AND s.status NOT IN {ENDED})"
        );
        let mut tx = self.begin().await?;
        let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&claim.token)
            .bind(&claim.by)
            .bind(claim.at.0)
            .bind(id.0)
            .bind(abandoned_before.0)
            .bind(stale_before.0)
            .execute(tx.conn())
            .await
            .context("cannot claim workspace")?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records that removal of a claimed workspace has begun: the decision is final.
    pub async fn mark_removing(&self, id: WorkspaceId, token: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE workspaces SET gc_removing = 1
             WHERE id = $1 AND gc_claim = $2 AND status = 'reclaiming'",
        )
        .bind(id.0)
        .bind(token)
        .execute(tx.conn())
        .await
        .context("cannot mark workspace removing")?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Archives a claimed workspace (its checkout is gone) and writes the audit entry, in one
    /// transaction. False when the claim was lost meanwhile.
    pub async fn archive_workspace(
        &self,
        id: WorkspaceId,
        token: &str,
        bytes: Option<u64>,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE workspaces SET status = 'archived', archived_at = $1, updated_at = $1,
                 reclaimed_bytes = $2, holder = NULL, gc_claim = NULL, gc_claimed_by = NULL,
                 gc_claimed_at = NULL, gc_note = NULL
             WHERE id = $3 AND gc_claim = $4 AND status = 'reclaiming'",
        )
        .bind(audit.at.0)
        .bind(bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
        .bind(id.0)
        .bind(token)
        .execute(tx.conn())
        .await
        .context("cannot archive workspace")?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        tx.audit(audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives a claim up: the workspace is `ready` again — or, once removal has begun, stays
    /// `reclaiming` (unclaimed) for the next pass to finish. `note` says why.
    pub async fn release_workspace_claim(
        &self,
        id: WorkspaceId,
        token: &str,
        note: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE workspaces SET
                 status = CASE WHEN gc_removing = 1 THEN 'reclaiming' ELSE 'ready' END,
                 gc_claim = NULL, gc_claimed_by = NULL, gc_claimed_at = NULL, gc_note = $1
             WHERE id = $2 AND gc_claim = $3 AND status = 'reclaiming'",
        )
        .bind(note)
        .bind(id.0)
        .bind(token)
        .execute(tx.conn())
        .await
        .context("cannot release workspace claim")?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records why GC could not reclaim a workspace (or clears it).
    pub async fn set_workspace_note(&self, id: WorkspaceId, note: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE workspaces SET gc_note = $1 WHERE id = $2 AND status <> 'archived'")
            .bind(note)
            .bind(id.0)
            .execute(tx.conn())
            .await
            .context("cannot record workspace note")?;
        tx.commit().await?;
        Ok(())
    }

    /// What GC recorded about a workspace.
    pub async fn workspace_gc_info(&self, id: WorkspaceId) -> Result<Option<WorkspaceGcInfo>> {
        let row = sqlx::query(
            "SELECT status, gc_note, reclaimed_bytes, archived_at FROM workspaces WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.db.pool)
        .await
        .context("cannot read workspace")?;
        row.map(|r| {
            let status: String = col(&r, "status")?;
            Ok(WorkspaceGcInfo {
                status: WorkspaceStatus::parse(&status)
                    .with_context(|| format!("unknown workspace status `{status}`"))?,
                note: col(&r, "gc_note")?,
                reclaimed_bytes: col::<Option<i64>>(&r, "reclaimed_bytes")?
                    .map(|b| u64::try_from(b).unwrap_or(0)),
                archived_at: col::<Option<i64>>(&r, "archived_at")?.map(Timestamp),
            })
        })
        .transpose()
    }

    /// When the mirror (`owner/name`) last had a `git gc`, if ever recorded.
    pub async fn mirror_gc_at(&self, mirror: &str) -> Result<Option<Timestamp>> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT gc_at FROM mirror_maintenance WHERE mirror = $1")
                .bind(mirror)
                .fetch_optional(&self.db.pool)
                .await
                .context("cannot read mirror maintenance")?;
        Ok(at.map(Timestamp))
    }

    /// Records when the mirror last had a `git gc` (or was first seen).
    pub async fn record_mirror_gc(&self, mirror: &str, at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO mirror_maintenance (mirror, gc_at) VALUES ($1, $2)
             ON CONFLICT (mirror) DO UPDATE SET gc_at = excluded.gc_at",
        )
        .bind(mirror)
        .bind(at.0)
        .execute(tx.conn())
        .await
        .context("cannot record mirror maintenance")?;
        tx.commit().await?;
        Ok(())
    }

    /// Says what a session that has not started yet is waiting for (its `activity`, which a
    /// status comment shows; the start of its turn replaces it).
    pub async fn note_session_waiting(&self, id: SessionId, why: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE sessions SET activity = $1
             WHERE id = $2 AND status IN ('queued', 'starting')",
        )
        .bind(why)
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot record what the session waits for")?;
        tx.commit().await?;
        Ok(())
    }
}

fn gc_workspace(row: &AnyRow) -> Result<GcWorkspace> {
    let status: String = col(row, "status")?;
    let objective_status: String = col(row, "objective_status")?;
    let claim = match (
        col::<Option<String>>(row, "gc_claim")?,
        col::<Option<String>>(row, "gc_claimed_by")?,
        col::<Option<i64>>(row, "gc_claimed_at")?,
    ) {
        (Some(token), Some(by), Some(at)) => Some(Claim {
            token,
            by,
            at: Timestamp(at),
        }),
        _ => None,
    };
    Ok(GcWorkspace {
        id: WorkspaceId(col(row, "id")?),
        objective_id: ObjectiveId(col(row, "objective_id")?),
        objective_status: ObjectiveStatus::parse(&objective_status)
            .with_context(|| format!("unknown objective status `{objective_status}`"))?,
        installation_id: col::<Option<i64>>(row, "installation_id")?.map(InstallationId),
        created_by: col::<Option<i64>>(row, "created_by")?.map(SessionId),
        repository: col(row, "repository")?,
        target: col(row, "target")?,
        path: col(row, "path")?,
        branch: col(row, "branch")?,
        base_ref: col(row, "base_ref")?,
        base_sha: col(row, "base_sha")?,
        status: WorkspaceStatus::parse(&status)
            .with_context(|| format!("unknown workspace status `{status}`"))?,
        holder: col::<Option<i64>>(row, "holder")?.map(SessionId),
        updated_at: Timestamp(col(row, "updated_at")?),
        claim,
        removing: col::<i64>(row, "gc_removing")? != 0,
        note: col(row, "gc_note")?,
    })
}

fn gc_session(row: &AnyRow) -> Result<GcSession> {
    let status: String = col(row, "status")?;
    Ok(GcSession {
        id: SessionId(col(row, "id")?),
        status: SessionStatus::parse(&status)
            .with_context(|| format!("unknown session status `{status}`"))?,
        workspace_id: col::<Option<i64>>(row, "workspace_id")?.map(WorkspaceId),
        depends_on: Vec::new(),
    })
}
