//! Questions for humans: what an agent asked (`ask_user`) or what foreman itself must have
//! decided (a budget reached). Posting them on the issue and reading answers builds on this.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col, id_list};
use crate::model::question::{Question, QuestionKind, QuestionStatus};
use crate::model::{ObjectiveId, QuestionId, SessionId, Timestamp};

const COLUMNS: &str = "id, objective_id, session_id, kind, text, context, status, answer, \
     answered_by, created_at, comment_id, answer_comment_id";

impl Store {
    /// Questions of `kind` the objective's sessions asked since `since`.
    pub async fn questions_asked_since(
        &self,
        objective: ObjectiveId,
        kind: &str,
        since: Timestamp,
    ) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM questions
             WHERE objective_id = $1 AND kind = $2 AND created_at >= $3",
        )
        .bind(objective.0)
        .bind(kind)
        .bind(since.0)
        .fetch_one(&self.db.pool)
        .await
        .context("cannot count questions")?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

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

    /// One question.
    pub async fn question(&self, id: QuestionId) -> Result<Option<Question>> {
        let sql = format!("SELECT {COLUMNS} FROM questions WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read question")?;
        row.as_ref().map(question).transpose()
    }

    /// The question a comment answered, if it answered one.
    pub async fn question_answered_by(&self, comment: i64) -> Result<Option<Question>> {
        let sql = format!("SELECT {COLUMNS} FROM questions WHERE answer_comment_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(comment)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot look up the answered question")?;
        row.as_ref().map(question).transpose()
    }

    /// Which of `comments` foreman has acted on already.
    pub async fn handled_comments(&self, comments: &[i64]) -> Result<Vec<i64>> {
        if comments.is_empty() {
            return Ok(Vec::new());
        }
        let list = id_list(comments.iter().copied());
        let sql = format!("SELECT comment_id FROM handled_comments WHERE comment_id IN ({list})");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot look up handled comments")
    }

    /// Records the comment that asks a question.
    pub async fn set_question_comment(&self, id: QuestionId, comment: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE questions SET comment_id = $1 WHERE id = $2")
            .bind(comment)
            .bind(id.0)
            .execute(tx.conn())
            .await
            .context("cannot record the question's comment")?;
        tx.commit().await?;
        Ok(())
    }

    /// Questions that have closed (answered or cancelled) whose comment does not say so yet.
    pub async fn questions_to_close_on_github(&self) -> Result<Vec<Question>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM questions
             WHERE status <> 'open' AND comment_id IS NOT NULL AND comment_final = 0 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list closed questions")?;
        rows.iter().map(question).collect()
    }

    /// Records that a question's comment shows how it ended.
    pub async fn question_comment_final(&self, id: QuestionId) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE questions SET comment_final = 1 WHERE id = $1")
            .bind(id.0)
            .execute(tx.conn())
            .await
            .context("cannot record the question's comment")?;
        tx.commit().await?;
        Ok(())
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
        self.made_due();
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

    /// Records the answer to an open question (and the comment that gave it). False when it
    /// was not open any more.
    pub async fn answer_question(
        &mut self,
        id: QuestionId,
        answer: &str,
        answered_by: &str,
        comment: Option<i64>,
        now: Timestamp,
    ) -> Result<bool> {
        self.made_due();
        let updated = sqlx::query(
            "UPDATE questions SET status = 'answered', answer = $1, answered_by = $2,
                 answered_at = $3, answer_comment_id = $5
             WHERE id = $4 AND status = 'open'",
        )
        .bind(answer)
        .bind(answered_by)
        .bind(now.0)
        .bind(id.0)
        .bind(comment)
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
        self.made_due();
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

    /// Replaces the text of an answer (its comment was edited).
    pub async fn edit_answer(&mut self, id: QuestionId, answer: &str) -> Result<()> {
        self.made_due();
        sqlx::query("UPDATE questions SET answer = $1 WHERE id = $2")
            .bind(answer)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot update the answer")?;
        Ok(())
    }

    /// Closes the open questions a session asked (it was cancelled).
    pub async fn cancel_session_questions(
        &mut self,
        session: SessionId,
        now: Timestamp,
    ) -> Result<u64> {
        self.made_due();
        let updated = sqlx::query(
            "UPDATE questions SET status = 'cancelled', answered_at = $1
             WHERE session_id = $2 AND status = 'open'",
        )
        .bind(now.0)
        .bind(session.0)
        .execute(self.conn())
        .await
        .context("cannot close questions")?;
        Ok(updated.rows_affected())
    }

    /// Records that a comment has been acted on. False when it had been already.
    pub async fn mark_comment_handled(&mut self, comment: i64, now: Timestamp) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO handled_comments (comment_id, handled_at) VALUES ($1, $2)
             ON CONFLICT (comment_id) DO NOTHING",
        )
        .bind(comment)
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot record the comment")?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Closes every open question of an objective (it ended).
    pub async fn cancel_questions(
        &mut self,
        objective: ObjectiveId,
        now: Timestamp,
    ) -> Result<u64> {
        self.made_due();
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
        kind: QuestionKind::parse(&col::<String>(row, "kind")?),
        text: col(row, "text")?,
        context: col(row, "context")?,
        status: {
            let status: String = col(row, "status")?;
            QuestionStatus::parse(&status)
                .with_context(|| format!("unknown question status `{status}`"))?
        },
        answer: col(row, "answer")?,
        answered_by: col(row, "answered_by")?,
        created_at: Timestamp(col(row, "created_at")?),
        comment_id: col(row, "comment_id")?,
        answer_comment_id: col(row, "answer_comment_id")?,
    })
}
