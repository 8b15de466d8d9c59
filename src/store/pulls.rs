//! Pull requests as they move (state, head, mergeability, checks, the manager's decision),
//! the follow-up sessions tied to them, and the keys of GitHub items already acted on.

use anyhow::{Context, Result};

use super::{Store, Tx, count, workspaces::PULL_COLUMNS, workspaces::pull};
use crate::model::pulls::{Mergeable, PullState};
use crate::model::{ObjectiveId, PullRequest, SessionId, Timestamp};
use crate::store::NewSession;

/// What GitHub says of a pull request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullUpdate<'a> {
    pub state: PullState,
    pub head_sha: &'a str,
    /// `None` while GitHub is still working it out.
    pub mergeable: Option<Mergeable>,
}

/// A follow-up session to create on a pull request.
#[derive(Debug, Clone)]
pub struct NewFollowup<'a> {
    pub session: NewSession,
    pub pull_request_id: i64,
    pub kind: crate::model::FollowupKind,
    /// At most one follow-up is ever created per key.
    pub key: &'a str,
}

/// What came of asking for a follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowupInsert {
    /// Created: the new session.
    Created(SessionId),
    /// One was created for this key before.
    Seen,
    /// Another follow-up still works on the pull request (never two at once); the key stays
    /// unclaimed, so the same cause may start one later.
    Busy(SessionId),
}

impl Store {
    /// One pull request.
    pub async fn pull(&self, id: i64) -> Result<Option<PullRequest>> {
        let sql = format!("SELECT {PULL_COLUMNS} FROM pull_requests WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read pull request")?;
        row.as_ref().map(pull).transpose()
    }

    /// The pull request with this number, if foreman knows it.
    pub async fn pull_by_number(
        &self,
        repository: &str,
        number: u64,
    ) -> Result<Option<PullRequest>> {
        let sql = format!(
            "SELECT {PULL_COLUMNS} FROM pull_requests WHERE repository = $1 AND number = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(number as i64)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read pull request")?;
        row.as_ref().map(pull).transpose()
    }

    /// Open pull requests of `repository` whose head is `sha` (check events of forks and
    /// some apps name no pull request).
    pub async fn open_pulls_at(&self, repository: &str, sha: &str) -> Result<Vec<PullRequest>> {
        let sql = format!(
            "SELECT {PULL_COLUMNS} FROM pull_requests
             WHERE repository = $1 AND head_sha = $2 AND state = 'open' ORDER BY number"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repository)
            .bind(sha)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list pull requests")?;
        rows.iter().map(pull).collect()
    }

    /// Every pull request foreman knows as open, oldest first.
    pub async fn open_pulls(&self) -> Result<Vec<PullRequest>> {
        let sql =
            format!("SELECT {PULL_COLUMNS} FROM pull_requests WHERE state = 'open' ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list open pull requests")?;
        rows.iter().map(pull).collect()
    }

    /// The follow-up working on a pull request now, if any.
    pub async fn live_followup(&self, pull_request: i64) -> Result<Option<SessionId>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sessions
             WHERE pull_request_id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')
             ORDER BY id LIMIT 1",
        )
        .bind(pull_request)
        .fetch_optional(&self.db.pool)
        .await
        .context("cannot look up follow-ups")?;
        Ok(id.map(SessionId))
    }

    /// How many follow-ups of `kind` a pull request has had.
    pub async fn followups_of(
        &self,
        pull_request: i64,
        kind: crate::model::FollowupKind,
    ) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE pull_request_id = $1 AND followup_kind = $2",
        )
        .bind(pull_request)
        .bind(kind.as_str())
        .fetch_one(&self.db.pool)
        .await
        .context("cannot count follow-ups")?;
        Ok(count(n))
    }

    /// Whether a key was acted on already.
    pub async fn is_handled(&self, key: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM handled_keys WHERE key = $1")
            .bind(key)
            .fetch_one(&self.db.pool)
            .await
            .context("cannot look up handled keys")?;
        Ok(n > 0)
    }
}

impl Tx {
    /// Records what GitHub says of a pull request. A merge is final: a late event saying
    /// otherwise changes nothing. A new head has no checks yet. Returns the state it had
    /// before.
    pub async fn set_pull_state(
        &mut self,
        id: i64,
        now_is: &PullUpdate<'_>,
        now: Timestamp,
    ) -> Result<Option<PullState>> {
        self.made_due();
        let before: Option<String> =
            sqlx::query_scalar("SELECT state FROM pull_requests WHERE id = $1")
                .bind(id)
                .fetch_optional(self.conn())
                .await
                .context("cannot read pull request")?;
        let before = before.as_deref().map(super::parse_pull_state).transpose()?;
        sqlx::query(
            "UPDATE pull_requests
             SET state = CASE WHEN state = 'merged' THEN 'merged' ELSE $1 END,
                 head_sha = CASE WHEN state = 'merged' THEN head_sha ELSE $2 END,
                 checks = CASE WHEN state <> 'merged' AND head_sha <> $2 THEN 'pending'
                               ELSE checks END,
                 checks_detail = CASE WHEN state <> 'merged' AND head_sha <> $2 THEN NULL
                                      ELSE checks_detail END,
                 mergeable = $3, updated_at = $4
             WHERE id = $5",
        )
        .bind(now_is.state.as_str())
        .bind(now_is.head_sha)
        .bind(now_is.mergeable.map(Mergeable::as_str))
        .bind(now.0)
        .bind(id)
        .execute(self.conn())
        .await
        .context("cannot update pull request")?;
        Ok(before)
    }

    /// Records the checks of a head, if it is still the pull request's head. False when the
    /// head has moved on (the checks are of an old commit).
    pub async fn set_pull_checks(
        &mut self,
        id: i64,
        sha: &str,
        checks: &str,
        detail: Option<&str>,
    ) -> Result<bool> {
        self.made_due();
        let done = sqlx::query(
            "UPDATE pull_requests SET checks = $1, checks_sha = $2, checks_detail = $3
             WHERE id = $4 AND head_sha = $2",
        )
        .bind(checks)
        .bind(sha)
        .bind(detail)
        .bind(id)
        .execute(self.conn())
        .await
        .context("cannot record checks")?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the manager's decision about a pull request closed without merge.
    pub async fn set_pull_decision(&mut self, id: i64, decision: &str) -> Result<()> {
        self.made_due();
        sqlx::query("UPDATE pull_requests SET decision = $1 WHERE id = $2")
            .bind(decision)
            .bind(id)
            .execute(self.conn())
            .await
            .context("cannot record the decision")?;
        Ok(())
    }

    /// Claims a key: true the first time, false ever after.
    pub async fn claim_key(&mut self, key: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO handled_keys (key, handled_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot claim key")?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates a follow-up session on a pull request, unless one was already created for
    /// its key or another is live on the pull request. The pull request's row is locked
    /// first, so two transactions cannot both find it free.
    pub async fn insert_followup(
        &mut self,
        f: &NewFollowup<'_>,
        now: Timestamp,
    ) -> Result<FollowupInsert> {
        self.made_due();
        sqlx::query("UPDATE pull_requests SET updated_at = updated_at WHERE id = $1")
            .bind(f.pull_request_id)
            .execute(self.conn())
            .await
            .context("cannot lock the pull request")?;
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM sessions
             WHERE pull_request_id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')
             ORDER BY id LIMIT 1",
        )
        .bind(f.pull_request_id)
        .fetch_optional(self.conn())
        .await
        .context("cannot look up follow-ups")?;
        if let Some(live) = live {
            return Ok(FollowupInsert::Busy(SessionId(live)));
        }
        if !self.claim_key(&format!("followup:{}", f.key), now).await? {
            return Ok(FollowupInsert::Seen);
        }
        let id = self.insert_session(&f.session, now).await?;
        sqlx::query(
            "UPDATE sessions SET pull_request_id = $1, followup_kind = $2, followup_key = $3
             WHERE id = $4",
        )
        .bind(f.pull_request_id)
        .bind(f.kind.as_str())
        .bind(f.key)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot tie the follow-up to its pull request")?;
        Ok(FollowupInsert::Created(id))
    }

    /// The manager said done while pull requests were open: the objective ends when they
    /// are merged.
    pub async fn request_done(&mut self, id: ObjectiveId, now: Timestamp) -> Result<()> {
        self.made_due();
        sqlx::query(
            "UPDATE objectives SET done_requested_at = COALESCE(done_requested_at, $1)
             WHERE id = $2",
        )
        .bind(now.0)
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot record the done request")?;
        Ok(())
    }

    /// The work is not done after all (a pull request was closed without merge).
    pub async fn withdraw_done(&mut self, id: ObjectiveId) -> Result<()> {
        self.made_due();
        sqlx::query("UPDATE objectives SET done_requested_at = NULL WHERE id = $1")
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot withdraw the done request")?;
        Ok(())
    }
}
