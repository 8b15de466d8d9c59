//! Objectives: the work for one issue, its manager pointer, budget and state.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col, count};
use crate::model::session::sql_list;
use crate::model::{
    Budget, InstallationId, Objective, ObjectiveId, ObjectiveStatus, SessionId, Timestamp, Usage,
};

/// What it takes to start an objective.
#[derive(Debug, Clone)]
pub struct NewObjective {
    pub installation_id: Option<InstallationId>,
    pub repository_id: Option<i64>,
    pub repository: String,
    pub issue_number: u64,
    pub title: String,
    pub body: String,
    /// Who wrote the issue, and their permission on the repository.
    pub author: String,
    pub author_permission: String,
    pub budget: Budget,
}

const COLUMNS: &str = "id, installation_id, repository, issue_number, title, body, author, \
     author_permission, status, \
     status_reason, manager_session_id, summary, budget_sessions, budget_turns, budget_wall_ms, \
     budget_cost_micros, budget_blocked, created_at";

impl Store {
    /// One objective.
    pub async fn objective(&self, id: ObjectiveId) -> Result<Option<Objective>> {
        let sql = format!("SELECT {COLUMNS} FROM objectives WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read objective")?;
        row.as_ref().map(objective).transpose()
    }

    /// Objectives that are not finished, oldest first.
    pub async fn live_objectives(&self) -> Result<Vec<Objective>> {
        let live = sql_list(
            &[ObjectiveStatus::Active, ObjectiveStatus::Waiting],
            ObjectiveStatus::as_str,
        );
        let sql = format!("SELECT {COLUMNS} FROM objectives WHERE status IN ({live}) ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list objectives")?;
        rows.iter().map(objective).collect()
    }

    /// What an objective has used: sessions started, turns, cost, time since it began.
    pub async fn objective_usage(&self, id: ObjectiveId, now: Timestamp) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT o.created_at AS created_at,
                    (SELECT COUNT(*) FROM sessions s WHERE s.objective_id = o.id) AS sessions,
                    (SELECT CAST(COALESCE(SUM(s.turns), 0) AS BIGINT) FROM sessions s
                     WHERE s.objective_id = o.id) AS turns,
                    (SELECT CAST(COALESCE(SUM(s.cost_micros), 0) AS BIGINT) FROM sessions s
                     WHERE s.objective_id = o.id) AS cost
             FROM objectives o WHERE o.id = $1",
        )
        .bind(id.0)
        .fetch_one(&self.db.pool)
        .await
        .context("cannot read objective usage")?;
        Ok(Usage {
            sessions: count(col(&row, "sessions")?),
            turns: count(col(&row, "turns")?),
            wall: now.since(Timestamp(col(&row, "created_at")?)),
            cost_micros: u64::try_from(col::<i64>(&row, "cost")?).unwrap_or(0),
        })
    }
}

impl Tx {
    /// Records a new objective, active from now.
    pub async fn insert_objective(
        &mut self,
        o: &NewObjective,
        now: Timestamp,
    ) -> Result<ObjectiveId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO objectives (installation_id, repository_id, repository, issue_number,
                title, body, author, author_permission, status, budget_sessions, budget_turns,
                budget_wall_ms, budget_cost_micros, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $12, $13, $13)
             RETURNING id",
        )
        .bind(o.installation_id.map(|i| i.0))
        .bind(o.repository_id)
        .bind(&o.repository)
        .bind(o.issue_number as i64)
        .bind(&o.title)
        .bind(&o.body)
        .bind(&o.author)
        .bind(&o.author_permission)
        .bind(i64::from(o.budget.sessions))
        .bind(i64::from(o.budget.turns))
        .bind(millis(o.budget.wall))
        .bind(o.budget.cost_micros.map(|c| c as i64))
        .bind(now.0)
        .fetch_one(self.conn())
        .await
        .context("cannot store objective")?;
        Ok(ObjectiveId(id))
    }

    /// Points the objective at its current manager session.
    pub async fn set_manager(&mut self, id: ObjectiveId, manager: SessionId) -> Result<()> {
        sqlx::query("UPDATE objectives SET manager_session_id = $1 WHERE id = $2")
            .bind(manager.0)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot set objective manager")?;
        Ok(())
    }

    /// Moves an objective to `to` if its state machine allows it from where it is. False when
    /// it did not move (already there, or finished).
    pub async fn set_objective_status(
        &mut self,
        id: ObjectiveId,
        to: ObjectiveStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        let from = sql_list(to.predecessors(), ObjectiveStatus::as_str);
        let ended = to.is_terminal().then_some(now.0);
        let sql = format!(
            "UPDATE objectives SET status = $1, status_reason = COALESCE($2, status_reason),
                 updated_at = $3, ended_at = COALESCE($4, ended_at)
             WHERE id = $5 AND status IN ({from})"
        );
        let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(reason)
            .bind(now.0)
            .bind(ended)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot change objective status")?;
        Ok(updated.rows_affected() == 1)
    }

    /// Records the manager's summary of what was done.
    pub async fn set_objective_summary(&mut self, id: ObjectiveId, summary: &str) -> Result<()> {
        sqlx::query("UPDATE objectives SET summary = $1 WHERE id = $2")
            .bind(summary)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot store objective summary")?;
        Ok(())
    }

    /// Marks that a budget holds the objective's new work back. True only for the first
    /// caller, so the human is asked once.
    pub async fn block_on_budget(&mut self, id: ObjectiveId, what: &str) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE objectives SET budget_blocked = $1 WHERE id = $2 AND budget_blocked IS NULL",
        )
        .bind(what)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot record the budget stop")?;
        Ok(updated.rows_affected() == 1)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn objective(row: &AnyRow) -> Result<Objective> {
    let status: String = col(row, "status")?;
    Ok(Objective {
        id: ObjectiveId(col(row, "id")?),
        installation_id: col::<Option<i64>>(row, "installation_id")?.map(InstallationId),
        repository: col(row, "repository")?,
        issue_number: u64::try_from(col::<i64>(row, "issue_number")?).unwrap_or(0),
        title: col(row, "title")?,
        body: col(row, "body")?,
        author: col(row, "author")?,
        author_permission: col(row, "author_permission")?,
        status: ObjectiveStatus::parse(&status)
            .with_context(|| format!("unknown objective status `{status}`"))?,
        status_reason: col(row, "status_reason")?,
        manager: col::<Option<i64>>(row, "manager_session_id")?.map(SessionId),
        summary: col(row, "summary")?,
        budget: Budget {
            sessions: count(col(row, "budget_sessions")?),
            turns: count(col(row, "budget_turns")?),
            wall: Duration::from_millis(
                u64::try_from(col::<i64>(row, "budget_wall_ms")?).unwrap_or(0),
            ),
            cost_micros: col::<Option<i64>>(row, "budget_cost_micros")?
                .map(|c| u64::try_from(c).unwrap_or(0)),
        },
        budget_blocked: col(row, "budget_blocked")?,
        created_at: Timestamp(col(row, "created_at")?),
    })
}
