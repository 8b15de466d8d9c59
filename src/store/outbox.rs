//! The outbox: effects on GitHub (comments) recorded before they are made. Each carries a
//! unique hidden marker, so a retry after an unknown outcome can find the comment it made
//! instead of posting a second one.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col, count};
use crate::model::{InstallationId, ObjectiveId, Timestamp};

/// A comment waiting to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub objective_id: Option<ObjectiveId>,
    pub installation_id: InstallationId,
    pub repository: String,
    pub issue_number: u64,
    pub body: String,
    pub marker: String,
    pub attempts: u32,
    pub status: String,
    pub github_id: Option<i64>,
    pub last_error: Option<String>,
}

/// A comment to post.
#[derive(Debug, Clone)]
pub struct NewComment<'a> {
    pub objective_id: Option<ObjectiveId>,
    pub installation_id: InstallationId,
    pub repository: &'a str,
    pub issue_number: u64,
    pub body: &'a str,
    pub marker: &'a str,
}

const COLUMNS: &str = "id, objective_id, installation_id, repository, issue_number, body, marker, \
     attempts, status, github_id, last_error";

impl Store {
    /// Comments due to be posted (or retried), oldest first.
    pub async fn due_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.0)
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read the outbox")?;
        rows.iter().map(item).collect()
    }

    /// Every outbox item of an objective, oldest first.
    pub async fn outbox_of(&self, objective: ObjectiveId) -> Result<Vec<OutboxItem>> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE objective_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read the outbox")?;
        rows.iter().map(item).collect()
    }

    /// Records that an item was posted as GitHub object `github_id`.
    pub async fn outbox_done(&self, id: i64, github_id: i64, now: Timestamp) -> Result<()> {
        let _gate = self.db.write_gate().await;
        sqlx::query(
            "UPDATE outbox SET status = 'done', github_id = $1, done_at = $2, attempts = attempts + 1
             WHERE id = $3",
        )
        .bind(github_id)
        .bind(now.0)
        .bind(id)
        .execute(&self.db.pool)
        .await
        .context("cannot mark outbox item done")?;
        Ok(())
    }

    /// Records a failed attempt, to be retried at `retry_at` (or given up on with `None`).
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()> {
        let _gate = self.db.write_gate().await;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1,
                 next_attempt_at = COALESCE($2, next_attempt_at),
                 status = CASE WHEN $2 IS NULL THEN 'failed' ELSE status END
             WHERE id = $3",
        )
        .bind(error)
        .bind(retry_at.map(|t| t.0))
        .bind(id)
        .execute(&self.db.pool)
        .await
        .context("cannot record outbox failure")?;
        Ok(())
    }
}

impl Tx {
    /// Records a comment to post. A marker seen before is not queued twice.
    pub async fn enqueue_comment(&mut self, c: &NewComment<'_>, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO outbox (objective_id, installation_id, repository, issue_number, kind,
                body, marker, status, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, 'issue_comment', $5, $6, 'pending', $7, $7)
             ON CONFLICT (marker) DO NOTHING",
        )
        .bind(c.objective_id.map(|o| o.0))
        .bind(c.installation_id.0)
        .bind(c.repository)
        .bind(c.issue_number as i64)
        .bind(c.body)
        .bind(c.marker)
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot queue comment")?;
        Ok(())
    }
}

fn item(row: &AnyRow) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: col(row, "id")?,
        objective_id: col::<Option<i64>>(row, "objective_id")?.map(ObjectiveId),
        installation_id: InstallationId(col(row, "installation_id")?),
        repository: col(row, "repository")?,
        issue_number: u64::try_from(col::<i64>(row, "issue_number")?).unwrap_or(0),
        body: col(row, "body")?,
        marker: col(row, "marker")?,
        attempts: count(col(row, "attempts")?),
        status: col(row, "status")?,
        github_id: col(row, "github_id")?,
        last_error: col(row, "last_error")?,
    })
}
