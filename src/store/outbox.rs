//! The outbox: effects on GitHub (comments, reactions) recorded before they are made. Each
//! carries a unique marker — in a comment, hidden in its body — so that queueing it twice
//! records it once, and a retry after an unknown outcome can find the comment it made
//! instead of posting a second one.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col, count};
use crate::model::markers::marker_comment;
use crate::model::outbox::CloseReason;
pub use crate::model::outbox::{OutboxKind, OutboxStatus};
use crate::model::{InstallationId, Objective, ObjectiveId, QuestionId, Timestamp};

/// A queued effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub objective_id: Option<ObjectiveId>,
    pub installation_id: InstallationId,
    pub repository: String,
    pub issue_number: u64,
    pub kind: OutboxKind,
    pub body: String,
    pub marker: String,
    pub target_id: Option<i64>,
    pub attempts: u32,
    pub status: OutboxStatus,
    pub github_id: Option<i64>,
    pub last_error: Option<String>,
}

/// An effect to queue.
#[derive(Debug, Clone)]
pub struct OutboxWrite<'a> {
    pub objective_id: Option<ObjectiveId>,
    pub installation_id: InstallationId,
    pub repository: &'a str,
    pub issue_number: u64,
    pub kind: OutboxKind,
    pub body: String,
    /// Unique per effect: the same marker is queued once.
    pub marker: String,
    pub target_id: Option<i64>,
}

/// Where effects land: an issue (or pull request) of a repository reached through an
/// installation, and the objective they are for, if any. Every effect foreman queues is made
/// here, so each kind is spelled out once.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    pub objective_id: Option<ObjectiveId>,
    pub installation_id: InstallationId,
    pub repository: &'a str,
    pub issue_number: u64,
}

impl<'a> Thread<'a> {
    /// The objective's issue; `None` when foreman does not reach it through an installation
    /// (a repository served without a GitHub App has nowhere to post).
    pub fn of(objective: &'a Objective) -> Option<Thread<'a>> {
        Some(Thread {
            objective_id: Some(objective.id),
            installation_id: objective.installation_id?,
            repository: &objective.repository,
            issue_number: objective.issue_number,
        })
    }

    fn write(
        self,
        kind: OutboxKind,
        body: String,
        marker: String,
        target_id: Option<i64>,
    ) -> OutboxWrite<'a> {
        OutboxWrite {
            objective_id: self.objective_id,
            installation_id: self.installation_id,
            repository: self.repository,
            issue_number: self.issue_number,
            kind,
            body,
            marker,
            target_id,
        }
    }

    /// A comment, with its marker hidden at its end.
    pub fn comment(self, body: &str, marker: String) -> OutboxWrite<'a> {
        let body = format!("{body}\n\n{}", marker_comment(&marker));
        self.write(OutboxKind::Comment, body, marker, None)
    }

    /// The objective's status comment (`body` carries the marker already).
    pub fn status_comment(self, body: String, marker: String) -> OutboxWrite<'a> {
        self.write(OutboxKind::StatusComment, body, marker, None)
    }

    /// A question's comment (`body` carries the marker already).
    pub fn question(self, id: QuestionId, body: String, marker: String) -> OutboxWrite<'a> {
        self.write(OutboxKind::Question, body, marker, Some(id.0))
    }

    /// A reaction to the issue.
    pub fn reaction(self, content: &str, marker: String) -> OutboxWrite<'a> {
        self.write(OutboxKind::Reaction, content.to_owned(), marker, None)
    }

    /// A reaction to one of the issue's comments.
    pub fn comment_reaction(self, comment: i64, content: &str, marker: String) -> OutboxWrite<'a> {
        self.write(
            OutboxKind::CommentReaction,
            content.to_owned(),
            marker,
            Some(comment),
        )
    }

    /// Closes the issue, saying why.
    pub fn close_issue(self, reason: CloseReason, marker: String) -> OutboxWrite<'a> {
        self.write(
            OutboxKind::CloseIssue,
            reason.as_str().to_owned(),
            marker,
            None,
        )
    }

    /// Pull request `number` of the repository made ready for review, `reviewer` (a login;
    /// empty for nobody) asked to review it.
    pub fn ready_for_review(self, number: u64, reviewer: &str, marker: String) -> OutboxWrite<'a> {
        let on_pull = Thread {
            issue_number: number,
            ..self
        };
        on_pull.write(
            OutboxKind::ReadyForReview,
            reviewer.to_owned(),
            marker,
            Some(number as i64),
        )
    }
}

const COLUMNS: &str = "id, objective_id, installation_id, repository, issue_number, kind, body, \
     marker, target_id, attempts, status, github_id, last_error";

impl Store {
    /// Effects due to be made (or retried), oldest first.
    pub async fn due_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxItem>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1
               AND installation_id NOT IN (SELECT id FROM installations WHERE state <> 'active')
               AND repository NOT IN (SELECT r.full_name FROM repositories r
                                      WHERE r.installation_id = outbox.installation_id
                                        AND r.removed_at IS NOT NULL)
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

    /// The objective's items queued since `since` whose marker starts with `prefix`.
    pub async fn queued_since(
        &self,
        objective: ObjectiveId,
        prefix: &str,
        since: Timestamp,
    ) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox
             WHERE objective_id = $1 AND created_at >= $2 AND marker LIKE $3",
        )
        .bind(objective.0)
        .bind(since.0)
        .bind(format!("{prefix}%"))
        .fetch_one(&self.db.pool)
        .await
        .context("cannot count the objective's posts")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
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

    /// Records that an item was made, as GitHub object `github_id` (if it has one).
    pub async fn outbox_done(&self, id: i64, github_id: Option<i64>, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outbox SET status = 'done', github_id = $1, done_at = $2, attempts = attempts + 1
             WHERE id = $3",
        )
        .bind(github_id)
        .bind(now.0)
        .bind(id)
        .execute(tx.conn())
        .await
        .context("cannot mark outbox item done")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt, to be retried at `retry_at` (or given up on with `None`).
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1,
                 next_attempt_at = COALESCE($2, next_attempt_at),
                 status = CASE WHEN $2 IS NULL THEN 'failed' ELSE status END
             WHERE id = $3",
        )
        .bind(error)
        .bind(retry_at.map(|t| t.0))
        .bind(id)
        .execute(tx.conn())
        .await
        .context("cannot record outbox failure")?;
        tx.commit().await?;
        Ok(())
    }

    /// Holds back every pending item of an installation until `until` (a rate limit).
    pub async fn outbox_pause(&self, installation: InstallationId, until: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1
             WHERE installation_id = $2 AND status = 'pending' AND next_attempt_at < $1",
        )
        .bind(until.0)
        .bind(installation.0)
        .execute(tx.conn())
        .await
        .context("cannot pause the outbox")?;
        tx.commit().await?;
        Ok(())
    }
}

impl Tx {
    /// Gives up on every pending item of an installation, for `why` (it was uninstalled).
    pub async fn drop_outbox(&mut self, installation: InstallationId, why: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', last_error = $1
             WHERE installation_id = $2 AND status = 'pending'",
        )
        .bind(why)
        .bind(installation.0)
        .execute(self.conn())
        .await
        .context("cannot drop the installation's outbox")?;
        Ok(())
    }

    /// Queues an effect. A marker seen before is not queued twice.
    pub async fn enqueue(&mut self, w: &OutboxWrite<'_>, now: Timestamp) -> Result<()> {
        self.made_due();
        sqlx::query(
            "INSERT INTO outbox (objective_id, installation_id, repository, issue_number, kind,
                body, marker, target_id, status, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9)
             ON CONFLICT (marker) DO NOTHING",
        )
        .bind(w.objective_id.map(|o| o.0))
        .bind(w.installation_id.0)
        .bind(w.repository)
        .bind(w.issue_number as i64)
        .bind(w.kind.as_str())
        .bind(&w.body)
        .bind(&w.marker)
        .bind(w.target_id)
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot queue a GitHub effect")?;
        Ok(())
    }
}

fn item(row: &AnyRow) -> Result<OutboxItem> {
    let kind: String = col(row, "kind")?;
    Ok(OutboxItem {
        id: col(row, "id")?,
        objective_id: col::<Option<i64>>(row, "objective_id")?.map(ObjectiveId),
        installation_id: InstallationId(col(row, "installation_id")?),
        repository: col(row, "repository")?,
        issue_number: u64::try_from(col::<i64>(row, "issue_number")?).unwrap_or(0),
        kind: OutboxKind::parse(&kind).with_context(|| format!("unknown outbox kind `{kind}`"))?,
        body: col(row, "body")?,
        marker: col(row, "marker")?,
        target_id: col(row, "target_id")?,
        attempts: count(col(row, "attempts")?),
        status: {
            let status: String = col(row, "status")?;
            OutboxStatus::parse(&status)
                .with_context(|| format!("unknown outbox status `{status}`"))?
        },
        github_id: col(row, "github_id")?,
        last_error: col(row, "last_error")?,
    })
}
