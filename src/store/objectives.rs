//! Objectives: the work for one issue, its manager pointer, budget and state.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col, count};
use crate::model::repo_config::RepoConfig;
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
    /// The repository configuration it runs with.
    pub config: RepoConfig,
    /// A key for the event that started it: one event starts at most one objective.
    pub trigger_key: Option<String>,
    /// The objective on the same issue before this one.
    pub previous: Option<ObjectiveId>,
    /// Who started it (the label's sender, or who said `/foreman retry`).
    pub started_by: Option<String>,
}

const COLUMNS: &str = "id, installation_id, repository, issue_number, title, body, author, \
     author_permission, status, \
     status_reason, manager_session_id, summary, budget_sessions, budget_turns, budget_wall_ms, \
     budget_cost_micros, budget_blocked, created_at, config, previous_objective_id, \
     status_comment_id, ended_at, plan_approved_at, done_requested_at, marker_nonce, held, \
     text_edited_by, started_by, no_change_needed";

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

    /// Adds `gap`, a time no instance ran, to every live objective's downtime. Returns how
    /// many objectives it concerned.
    pub async fn add_downtime(&self, gap: Duration, now: Timestamp) -> Result<u64> {
        let live = sql_list(
            &[ObjectiveStatus::Active, ObjectiveStatus::Waiting],
            ObjectiveStatus::as_str,
        );
        // Only the part of the gap (from $2 to $3) after the objective began.
        let sql = format!(
            "UPDATE objectives SET downtime_ms = downtime_ms +
                 CASE WHEN created_at > $2 THEN $3 - created_at ELSE $1 END
             WHERE status IN ({live}) AND created_at < $3"
        );
        let mut tx = self.begin().await?;
        let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::try_from(gap.as_millis()).unwrap_or(i64::MAX))
            .bind(now.minus(gap).0)
            .bind(now.0)
            .execute(tx.conn())
            .await
            .context("cannot record downtime")?;
        tx.commit().await?;
        Ok(updated.rows_affected())
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

    /// The repositories that have objectives, by name.
    pub async fn objective_repositories(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT repository FROM objectives ORDER BY repository")
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list repositories")?;
        rows.iter().map(|r| col(r, "repository")).collect()
    }

    /// The newest objectives of `repositories`, live or ended ones, newest first, at most
    /// `limit`.
    pub async fn objectives_in(
        &self,
        repositories: &[String],
        live: bool,
        limit: u32,
    ) -> Result<Vec<Objective>> {
        if repositories.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..repositories.len())
            .map(|i| format!("${}", i + 1))
            .collect();
        let states = sql_list(
            &[ObjectiveStatus::Active, ObjectiveStatus::Waiting],
            ObjectiveStatus::as_str,
        );
        let sql = format!(
            "SELECT {COLUMNS} FROM objectives WHERE repository IN ({}) AND status {} IN ({states})
             ORDER BY id DESC LIMIT {limit}",
            placeholders.join(", "),
            if live { "" } else { "NOT" },
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for repository in repositories {
            query = query.bind(repository.clone());
        }
        let rows = query
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list objectives")?;
        rows.iter().map(objective).collect()
    }

    /// The issue's live (active or waiting) objective.
    pub async fn live_objective(&self, repository: &str, issue: u64) -> Result<Option<Objective>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM objectives WHERE repository = $1 AND issue_number = $2
               AND status IN ('active', 'waiting')"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(issue as i64)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot look up the issue's objective")?;
        row.as_ref().map(objective).transpose()
    }

    /// The newest objective of an issue, live or not.
    pub async fn latest_objective(
        &self,
        repository: &str,
        issue: u64,
    ) -> Result<Option<Objective>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM objectives WHERE repository = $1 AND issue_number = $2
             ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(issue as i64)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot look up the issue's objective")?;
        row.as_ref().map(objective).transpose()
    }

    /// Objectives whose status comment needs rendering: posted, and live or not yet shown
    /// in their final state.
    pub async fn objectives_to_render(&self) -> Result<Vec<(Objective, Option<String>)>> {
        let sql = format!(
            "SELECT {COLUMNS}, status_rendered FROM objectives
             WHERE status_comment_id IS NOT NULL AND status_final = 0 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list status comments")?;
        rows.iter()
            .map(|r| Ok((objective(r)?, col(r, "status_rendered")?)))
            .collect()
    }

    /// When the status comment was last edited.
    pub async fn status_edited_at(&self, id: ObjectiveId) -> Result<Option<Timestamp>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT status_edited_at FROM objectives WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
                .context("cannot read the status comment's time")?;
        Ok(at.flatten().map(Timestamp))
    }

    /// Records the status comment's id.
    pub async fn set_status_comment(&self, id: ObjectiveId, comment: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE objectives SET status_comment_id = $1 WHERE id = $2")
            .bind(comment)
            .bind(id.0)
            .execute(tx.conn())
            .await
            .context("cannot record the status comment")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what the status comment now shows; `last` when it shows the objective's end.
    pub async fn status_rendered(
        &self,
        id: ObjectiveId,
        rendered: &str,
        last: bool,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE objectives SET status_rendered = $1, status_edited_at = $2, status_final = $3
             WHERE id = $4",
        )
        .bind(rendered)
        .bind(now.0)
        .bind(i64::from(last))
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot record the status comment")?;
        tx.commit().await?;
        Ok(())
    }

    /// What an objective has used: sessions started, turns, cost, time since it began.
    pub async fn objective_usage(&self, id: ObjectiveId, now: Timestamp) -> Result<Usage> {
        let row = sqlx::query(USAGE)
            .bind(id.0)
            .fetch_one(&self.db.pool)
            .await
            .context("cannot read objective usage")?;
        usage(&row, now)
    }
}

/// What an objective has used so far: its sessions, their turns and cost.
const USAGE: &str = "SELECT o.created_at AS created_at, o.downtime_ms AS downtime_ms,
        (SELECT COUNT(*) FROM sessions s WHERE s.objective_id = o.id) AS sessions,
        (SELECT CAST(COALESCE(SUM(s.turns), 0) AS BIGINT) FROM sessions s
         WHERE s.objective_id = o.id) AS turns,
        (SELECT CAST(COALESCE(SUM(s.cost_micros), 0) AS BIGINT) FROM sessions s
         WHERE s.objective_id = o.id) AS cost
     FROM objectives o WHERE o.id = $1";

fn usage(row: &AnyRow, now: Timestamp) -> Result<Usage> {
    Ok(Usage {
        sessions: count(col(row, "sessions")?),
        turns: count(col(row, "turns")?),
        wall: now
            .since(Timestamp(col(row, "created_at")?))
            .saturating_sub(Duration::from_millis(
                u64::try_from(col::<i64>(row, "downtime_ms")?).unwrap_or(0),
            )),
        cost_micros: u64::try_from(col::<i64>(row, "cost")?).unwrap_or(0),
    })
}

impl Tx {
    /// The objective, held against concurrent changes until this transaction ends (a row lock
    /// on PostgreSQL; SQLite's write transactions already run one at a time), so that what is
    /// checked of it still holds when the transaction commits.
    pub async fn lock_objective(&mut self, id: ObjectiveId) -> Result<Option<Objective>> {
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let sql = format!("SELECT {COLUMNS} FROM objectives WHERE id = $1{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(self.conn())
            .await
            .context("cannot read objective")?;
        row.as_ref().map(objective).transpose()
    }

    /// [`Store::objective_usage`], inside this transaction.
    pub async fn objective_usage(&mut self, id: ObjectiveId, now: Timestamp) -> Result<Usage> {
        let row = sqlx::query(USAGE)
            .bind(id.0)
            .fetch_one(self.conn())
            .await
            .context("cannot read objective usage")?;
        usage(&row, now)
    }

    /// Records a new objective, active from now. `None` when its trigger already started one,
    /// or the issue already has a live objective.
    pub async fn insert_objective(
        &mut self,
        o: &NewObjective,
        marker_nonce: &str,
        now: Timestamp,
    ) -> Result<Option<ObjectiveId>> {
        self.made_due();
        let config = serde_json::to_string(&o.config).context("cannot store the config")?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO objectives (installation_id, repository_id, repository, issue_number,
                title, body, author, author_permission, status, budget_sessions, budget_turns,
                budget_wall_ms, budget_cost_micros, created_at, updated_at, config, trigger_key,
                previous_objective_id, marker_nonce, started_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $12, $13, $13, $14,
                $15, $16, $17, $18)
             ON CONFLICT DO NOTHING
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
        .bind(config)
        .bind(&o.trigger_key)
        .bind(o.previous.map(|p| p.0))
        .bind(marker_nonce)
        .bind(&o.started_by)
        .fetch_optional(self.conn())
        .await
        .context("cannot store objective")?;
        Ok(id.map(ObjectiveId))
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
        self.made_due();
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

    /// Records the manager's summary of what was done, and whether it said the issue needs no
    /// change at all.
    pub async fn set_objective_summary(
        &mut self,
        id: ObjectiveId,
        summary: &str,
        no_change_needed: bool,
    ) -> Result<()> {
        sqlx::query("UPDATE objectives SET summary = $1, no_change_needed = $2 WHERE id = $3")
            .bind(summary)
            .bind(i64::from(no_change_needed))
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot store objective summary")?;
        Ok(())
    }

    /// Records that a human approved the manager's plan.
    pub async fn approve_plan(&mut self, id: ObjectiveId, now: Timestamp) -> Result<()> {
        self.made_due();
        sqlx::query(
            "UPDATE objectives SET plan_approved_at = COALESCE(plan_approved_at, $1) WHERE id = $2",
        )
        .bind(now.0)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot record the plan's approval")?;
        Ok(())
    }

    /// Makes the status comment render and be edited at the next pass, whatever it shows.
    pub async fn force_status_refresh(&mut self, id: ObjectiveId) -> Result<()> {
        self.made_due();
        sqlx::query(
            "UPDATE objectives SET status_rendered = NULL, status_edited_at = NULL WHERE id = $1",
        )
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot refresh the status comment")?;
        Ok(())
    }

    /// Adds `extra` to the objective's budget and lifts a budget stop.
    pub async fn raise_budget(&mut self, id: ObjectiveId, extra: &Budget) -> Result<()> {
        self.made_due();
        sqlx::query(
            "UPDATE objectives SET budget_blocked = NULL,
                 budget_sessions = budget_sessions + $1, budget_turns = budget_turns + $2,
                 budget_wall_ms = budget_wall_ms + $3,
                 budget_cost_micros = CASE WHEN budget_cost_micros IS NULL THEN NULL
                                           ELSE budget_cost_micros + $4 END
             WHERE id = $5",
        )
        .bind(i64::from(extra.sessions))
        .bind(i64::from(extra.turns))
        .bind(millis(extra.wall))
        .bind(extra.cost_micros.unwrap_or(0) as i64)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot raise the budget")?;
        Ok(())
    }

    /// Holds the objective's work for `why` (foreman may not act for its repository): its
    /// sessions are ended and nothing new starts until [`Tx::release_hold`]. False when it
    /// was held already.
    pub async fn hold(&mut self, id: ObjectiveId, why: &str) -> Result<bool> {
        self.made_due();
        let updated = sqlx::query("UPDATE objectives SET held = $1 WHERE id = $2 AND held IS NULL")
            .bind(why)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot hold the objective")?;
        Ok(updated.rows_affected() == 1)
    }

    /// Lets a held objective's work go on.
    pub async fn release_hold(&mut self, id: ObjectiveId) -> Result<()> {
        self.made_due();
        sqlx::query("UPDATE objectives SET held = NULL WHERE id = $1")
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot release the objective")?;
        Ok(())
    }

    /// Notes that `by`, who could not have started foreman, edited the issue's text.
    pub async fn note_text_edit(&mut self, id: ObjectiveId, by: &str) -> Result<()> {
        sqlx::query("UPDATE objectives SET text_edited_by = $1 WHERE id = $2")
            .bind(by)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot note the issue's edit")?;
        Ok(())
    }

    /// The issue's text as the objective's agents are to read it, after an edit by someone
    /// who may start foreman.
    pub async fn set_objective_text(
        &mut self,
        id: ObjectiveId,
        title: &str,
        body: &str,
    ) -> Result<()> {
        self.made_due();
        sqlx::query(
            "UPDATE objectives SET title = $1, body = $2, text_edited_by = NULL WHERE id = $3",
        )
        .bind(title)
        .bind(body)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot store the issue's new text")?;
        Ok(())
    }

    /// Marks that a budget holds the objective's new work back. True only for the first
    /// caller, so the human is asked once.
    pub async fn block_on_budget(&mut self, id: ObjectiveId, what: &str) -> Result<bool> {
        self.made_due();
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
        no_change_needed: col::<i64>(row, "no_change_needed")? != 0,
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
        config: match col::<Option<String>>(row, "config")? {
            Some(json) => serde_json::from_str(&json).context("unreadable stored config")?,
            None => RepoConfig::default(),
        },
        previous: col::<Option<i64>>(row, "previous_objective_id")?.map(ObjectiveId),
        status_comment_id: col(row, "status_comment_id")?,
        marker_nonce: col(row, "marker_nonce")?,
        ended_at: col::<Option<i64>>(row, "ended_at")?.map(Timestamp),
        plan_approved: col::<Option<i64>>(row, "plan_approved_at")?.is_some(),
        done_requested_at: col::<Option<i64>>(row, "done_requested_at")?.map(Timestamp),
        held: col(row, "held")?,
        text_edited_by: col(row, "text_edited_by")?,
        started_by: col(row, "started_by")?,
    })
}
