//! Questions for humans: what an agent asked (`ask_user`) or what foreman itself must have
//! decided (a budget reached). Posting them on the issue and reading answers builds on this.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col};
use crate::model::{ObjectiveId, QuestionId, SessionId, Timestamp};

/// A stored question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: QuestionId,
    pub objective_id: ObjectiveId,
    pub session_id: Option<SessionId>,
    /// `agent`, `budget`, `escalation`, …
    pub kind: String,
    pub text: String,
    pub context: Option<String>,
    /// `open`, `answered` or `cancelled`.
    pub status: String,
    pub answer: Option<String>,
    pub created_at: Timestamp,
}

const COLUMNS: &str =
    "id, objective_id, session_id, kind, text, context, status, answer, created_at";

impl Store {
    /// An objective's questions, oldest first.
    pub async fn questions_of(&self, objective: ObjectiveId) -> Result<Vec<Question>> {
        let sql = format!("SELECT {COLUMNS} FROM questions WHERE objective_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list questions")?;
        rows.iter().map(question).collect()
    }

    /// Whether a session has a question nobody has answered yet.
    pub async fn has_open_question(&self, session: SessionId) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM questions WHERE session_id = $1 AND status = 'open'",
        )
        .bind(session.0)
        .fetch_one(&self.db.pool)
        .await
        .context("cannot count open questions")?;
        Ok(n > 0)
    }
}

impl Tx {
    /// Records an open question.
    pub async fn insert_question(
        &mut self,
        objective: ObjectiveId,
        session: Option<SessionId>,
        kind: &str,
        text: &str,
        context: Option<&str>,
        now: Timestamp,
    ) -> Result<QuestionId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO questions (objective_id, session_id, kind, text, context, status, created_at)
             VALUES ($1, $2, $3, $4, $5, 'open', $6) RETURNING id",
        )
        .bind(objective.0)
        .bind(session.map(|s| s.0))
        .bind(kind)
        .bind(text)
        .bind(context)
        .bind(now.0)
        .fetch_one(self.conn())
        .await
        .context("cannot store question")?;
        Ok(QuestionId(id))
    }

    /// Records the answer to an open question. False when it was not open any more.
    pub async fn answer_question(
        &mut self,
        id: QuestionId,
        answer: &str,
        answered_by: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE questions SET status = 'answered', answer = $1, answered_by = $2,
                 answered_at = $3
             WHERE id = $4 AND status = 'open'",
        )
        .bind(answer)
        .bind(answered_by)
        .bind(now.0)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot record the answer")?;
        Ok(updated.rows_affected() == 1)
    }

    /// Answers every open question of these kinds on an objective (a human resolved them
    /// another way). Returns how many.
    pub async fn answer_open_questions(
        &mut self,
        objective: ObjectiveId,
        kinds: &[&str],
        answer: &str,
        answered_by: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let mut n = 0;
        for kind in kinds {
            let updated = sqlx::query(
                "UPDATE questions SET status = 'answered', answer = $1, answered_by = $2,
                     answered_at = $3
                 WHERE objective_id = $4 AND kind = $5 AND status = 'open'",
            )
            .bind(answer)
            .bind(answered_by)
            .bind(now.0)
            .bind(objective.0)
            .bind(*kind)
            .execute(self.conn())
            .await
            .context("cannot answer questions")?;
            n += updated.rows_affected();
        }
        Ok(n)
    }

    /// Whether an objective has any open question.
    pub async fn has_open_questions(&mut self, objective: ObjectiveId) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM questions WHERE objective_id = $1 AND status = 'open'",
        )
        .bind(objective.0)
        .fetch_one(self.conn())
        .await
        .context("cannot count open questions")?;
        Ok(n > 0)
    }

    /// Closes every open question of an objective (it ended).
    pub async fn cancel_questions(
        &mut self,
        objective: ObjectiveId,
        now: Timestamp,
    ) -> Result<u64> {
        let updated = sqlx::query(
            "UPDATE questions SET status = 'cancelled', answered_at = $1
             WHERE objective_id = $2 AND status = 'open'",
        )
        .bind(now.0)
        .bind(objective.0)
        .execute(self.conn())
        .await
        .context("cannot close questions")?;
        Ok(updated.rows_affected())
    }
}

fn question(row: &AnyRow) -> Result<Question> {
    Ok(Question {
        id: QuestionId(col(row, "id")?),
        objective_id: ObjectiveId(col(row, "objective_id")?),
        session_id: col::<Option<i64>>(row, "session_id")?.map(SessionId),
        kind: col(row, "kind")?,
        text: col(row, "text")?,
        context: col(row, "context")?,
        status: col(row, "status")?,
        answer: col(row, "answer")?,
        created_at: Timestamp(col(row, "created_at")?),
    })
}
