//! Sessions (agent conversations), their dependencies, the messages waiting for their next
//! turn, and their bounded transcripts. Status changes are conditional updates on the state
//! machine in [`crate::model::session`]: a change that is not allowed from the current state
//! changes nothing and says so.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col, count, id_list};
use crate::model::AgentKind;
use crate::model::network::Blocked;
use crate::model::session::sql_list;
use crate::model::{
    ObjectiveId, ObjectiveStatus, QuestionId, Role, Session, SessionId, SessionStatus, Timestamp,
    WorkspaceId,
};

/// What it takes to create a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub objective_id: ObjectiveId,
    pub role: Role,
    pub agent: AgentKind,
    pub title: String,
    pub instructions: String,
    pub spawned_by: Option<SessionId>,
    pub depends_on: Vec<SessionId>,
}

/// What the start of a turn records.
#[derive(Debug, Clone)]
pub struct TurnStart<'a> {
    /// Hash of the token this turn's process authenticates with.
    pub token_hash: &'a str,
    /// The instance running the turn.
    pub runner: &'a str,
    pub workdir: &'a str,
    /// The target it runs on, and that target's capacity: a session not yet in a turn
    /// starts one only if the target has room ([`Tx::room_on`]).
    pub target: &'a str,
    pub capacity: u32,
}

/// What an agent reported during a turn; `None` fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct Progress<'a> {
    pub conversation_id: Option<&'a str>,
    pub activity: Option<&'a str>,
    /// Tokens and cost of this turn so far (the agent reports running totals).
    pub usage: Option<(u64, u64, u64)>,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub at: Timestamp,
    /// `out`, `err` or `event`.
    pub stream: String,
    pub line: String,
}

const COLUMNS: &str = "id, objective_id, role, agent_kind, title, instructions, status, \
     status_reason, spawned_by, conversation_id, result, activity, summary, turns, recoveries, \
     input_tokens, output_tokens, cost_micros, workdir, runner, pid, heartbeat_at, created_at, \
     last_activity_at, turn_started_at, workspace_id, pull_request_id, followup_kind, target";

/// Why a session that has not finished should not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphaned {
    /// Its objective has ended, in this state.
    Ended(ObjectiveStatus),
    /// Its objective's work is held, for this reason.
    Held(String),
}

impl Store {
    /// Adds what the egress proxy refused a session's agent to what it refused before.
    pub async fn record_blocked_egress(
        &self,
        session: SessionId,
        blocked: &[Blocked],
    ) -> Result<()> {
        if blocked.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for b in blocked {
            sqlx::query(
                "INSERT INTO blocked_egress (session_id, host, attempts, first_at, last_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (session_id, host) DO UPDATE SET
                    attempts = blocked_egress.attempts + excluded.attempts,
                    last_at = excluded.last_at",
            )
            .bind(session.0)
            .bind(&b.host)
            .bind(i64::try_from(b.attempts).unwrap_or(i64::MAX))
            .bind(b.first_at.0)
            .bind(b.last_at.0)
            .execute(tx.conn())
            .await
            .context("cannot record blocked network requests")?;
        }
        tx.commit().await
    }

    /// What the egress proxy refused an objective's agents, by session, oldest session and
    /// then most attempted destination first.
    pub async fn blocked_egress_of(
        &self,
        objective: ObjectiveId,
    ) -> Result<Vec<(SessionId, Blocked)>> {
        let rows = sqlx::query(
            "SELECT b.session_id AS session_id, b.host AS host, b.attempts AS attempts,
                    b.first_at AS first_at, b.last_at AS last_at
             FROM blocked_egress b JOIN sessions s ON s.id = b.session_id
             WHERE s.objective_id = $1
             ORDER BY b.session_id, b.attempts DESC, b.host",
        )
        .bind(objective.0)
        .fetch_all(&self.db.pool)
        .await
        .context("cannot read blocked network requests")?;
        rows.iter()
            .map(|row| {
                Ok((
                    SessionId(col(row, "session_id")?),
                    Blocked {
                        host: col(row, "host")?,
                        attempts: u64::try_from(col::<i64>(row, "attempts")?).unwrap_or(0),
                        first_at: Timestamp(col(row, "first_at")?),
                        last_at: Timestamp(col(row, "last_at")?),
                    },
                ))
            })
            .collect()
    }

    /// One session, with its dependencies.
    pub async fn session(&self, id: SessionId) -> Result<Option<Session>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read session")?;
        let Some(row) = row else { return Ok(None) };
        let mut session = session(&row)?;
        session.depends_on = self
            .dependencies_of(&[id])
            .await?
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        Ok(Some(session))
    }

    /// Every session of an objective, oldest first.
    pub async fn sessions_of(&self, objective: ObjectiveId) -> Result<Vec<Session>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE objective_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list sessions")?;
        self.with_dependencies(rows).await
    }

    /// Sessions that are not finished, of objectives that are not finished, oldest first:
    /// everything the scheduler decides about.
    pub async fn live_sessions(&self) -> Result<Vec<Session>> {
        let done = sql_list(
            &[
                SessionStatus::Succeeded,
                SessionStatus::Failed,
                SessionStatus::Cancelled,
            ],
            SessionStatus::as_str,
        );
        let live = sql_list(
            &[ObjectiveStatus::Active, ObjectiveStatus::Waiting],
            ObjectiveStatus::as_str,
        );
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions
             WHERE status NOT IN ({done})
               AND objective_id IN (SELECT id FROM objectives WHERE status IN ({live}))
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list live sessions")?;
        self.with_dependencies(rows).await
    }

    /// Sessions not finished whose objective has ended or is held, with why.
    pub async fn orphaned_sessions(&self) -> Result<Vec<(Session, Orphaned)>> {
        let sql = format!(
            "SELECT {COLUMNS},
                (SELECT o.status FROM objectives o WHERE o.id = objective_id) AS objective_status,
                (SELECT o.held FROM objectives o WHERE o.id = objective_id) AS objective_held
             FROM sessions
             WHERE status NOT IN ('succeeded', 'failed', 'cancelled')
               AND objective_id IN (SELECT id FROM objectives
                                    WHERE status IN ('done', 'failed', 'cancelled')
                                       OR held IS NOT NULL)
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list orphaned sessions")?;
        rows.iter()
            .map(|r| {
                let status: String = col(r, "objective_status")?;
                let status = ObjectiveStatus::parse(&status)
                    .with_context(|| format!("unknown objective status `{status}`"))?;
                let why = match col::<Option<String>>(r, "objective_held")? {
                    Some(why) if !status.is_terminal() => Orphaned::Held(why),
                    _ => Orphaned::Ended(status),
                };
                Ok((session(r)?, why))
            })
            .collect()
    }

    /// Sessions in a turn-active state (starting or running), whatever their objective.
    pub async fn sessions_in_turn(&self) -> Result<Vec<Session>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE status IN ('starting', 'running') ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list running sessions")?;
        rows.iter().map(session).collect()
    }

    /// The targets the given sessions' turns ran on (those placed).
    pub async fn targets_of(&self, ids: &[SessionId]) -> Result<Vec<(SessionId, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = id_list(ids.iter().map(|i| i.0));
        let sql =
            format!("SELECT id, target FROM sessions WHERE id IN ({list}) AND target IS NOT NULL");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read sessions' targets")?;
        rows.iter()
            .map(|r| Ok((SessionId(col(r, "id")?), col(r, "target")?)))
            .collect()
    }

    /// The status of each of these sessions (for dependency checks).
    pub async fn statuses(&self, ids: &[SessionId]) -> Result<Vec<(SessionId, SessionStatus)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = id_list(ids.iter().map(|i| i.0));
        let sql = format!("SELECT id, status FROM sessions WHERE id IN ({list})");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read session statuses")?;
        rows.iter()
            .map(|r| {
                let status: String = col(r, "status")?;
                Ok((
                    SessionId(col(r, "id")?),
                    SessionStatus::parse(&status)
                        .with_context(|| format!("unknown session status `{status}`"))?,
                ))
            })
            .collect()
    }

    /// The live session a bearer token (by its hash) belongs to.
    pub async fn session_by_token(&self, token_hash: &str) -> Result<Option<Session>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE token_hash = $1
               AND status NOT IN ('succeeded', 'failed', 'cancelled')"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot look up session token")?;
        row.as_ref().map(session).transpose()
    }

    /// Moves a session to `to` if allowed from its current state; true when it moved. Any
    /// move out of a turn revokes the turn's token: a token only works while its turn runs.
    pub async fn set_session_status(
        &self,
        id: SessionId,
        to: SessionStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let moved = tx.set_session_status(id, to, reason, now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// Moves a queued session to `starting` on `target` if that target has room for one more
    /// turn ([`Tx::room_on`]); false when it did not move.
    pub async fn claim_start(
        &self,
        id: SessionId,
        target: &str,
        capacity: u32,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let moved = tx.room_on(target, capacity, id).await?
            && tx
                .set_session_status(id, SessionStatus::Starting, None, now)
                .await?;
        if moved {
            sqlx::query("UPDATE sessions SET target = $1 WHERE id = $2")
                .bind(target)
                .bind(id.0)
                .execute(tx.conn())
                .await
                .context("cannot place the session")?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Puts a session that was `starting` back in the queue, placed nowhere (its target could
    /// not be reached before anything of it was made there), saying why it waits.
    pub async fn unplace(&self, id: SessionId, why: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        if tx
            .set_session_status(id, SessionStatus::Queued, None, now)
            .await?
        {
            sqlx::query("UPDATE sessions SET target = NULL, activity = $1 WHERE id = $2")
                .bind(why)
                .bind(id.0)
                .execute(tx.conn())
                .await
                .context("cannot put the session back in the queue")?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Starts a turn: the session becomes `running` (from `from`), counts a turn, records the
    /// new token's hash and who runs it, and takes its pending messages. `None` if the
    /// session was not in one of the `from` states (someone else started or ended it).
    pub async fn begin_turn(
        &self,
        id: SessionId,
        from: &[SessionStatus],
        start: &TurnStart<'_>,
        now: Timestamp,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = self.begin().await?;
        let needs_room = from.iter().any(|s| !s.is_active_turn());
        if needs_room && !tx.room_on(start.target, start.capacity, id).await? {
            tx.commit().await?;
            return Ok(None);
        }
        let from = sql_list(from, SessionStatus::as_str);
        let sql = format!(
            "UPDATE sessions SET status = 'running', turns = turns + 1, token_hash = $1,
                 runner = $2, workdir = $3, pid = NULL, heartbeat_at = $4, turn_started_at = $4,
                 last_activity_at = $4, started_at = COALESCE(started_at, $4),
                 activity = 'starting a turn', target = $6
             WHERE id = $5 AND status IN ({from})"
        );
        let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(start.token_hash)
            .bind(start.runner)
            .bind(start.workdir)
            .bind(now.0)
            .bind(id.0)
            .bind(start.target)
            .execute(tx.conn())
            .await
            .context("cannot start a turn")?;
        if updated.rows_affected() != 1 {
            tx.commit().await?;
            return Ok(None);
        }
        let rows = sqlx::query(
            "UPDATE session_messages SET delivered_at = $1
             WHERE session_id = $2 AND delivered_at IS NULL
             RETURNING id, body",
        )
        .bind(now.0)
        .bind(id.0)
        .fetch_all(tx.conn())
        .await
        .context("cannot take pending messages")?;
        tx.commit().await?;
        let mut messages: Vec<(i64, String)> = rows
            .iter()
            .map(|r| Ok((col(r, "id")?, col(r, "body")?)))
            .collect::<Result<_>>()?;
        messages.sort_by_key(|(id, _)| *id);
        Ok(Some(messages.into_iter().map(|(_, body)| body).collect()))
    }

    /// Records the process running a turn.
    pub async fn set_session_pid(&self, id: SessionId, pid: Option<i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET pid = $1 WHERE id = $2")
            .bind(pid)
            .bind(id.0)
            .execute(tx.conn())
            .await
            .context("cannot record session process")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what an agent did: its last activity time (the supervisor relies on it), and
    /// whatever it reported.
    pub async fn record_progress(
        &self,
        id: SessionId,
        p: &Progress<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let (input, output, cost) = p.usage.unwrap_or_default();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE sessions SET last_activity_at = $1, heartbeat_at = $1,
                 conversation_id = COALESCE($2, conversation_id),
                 activity = COALESCE($3, activity),
                 input_tokens = input_tokens + $4, output_tokens = output_tokens + $5,
                 cost_micros = cost_micros + $6
             WHERE id = $7",
        )
        .bind(now.0)
        .bind(p.conversation_id)
        .bind(p.activity)
        .bind(input as i64)
        .bind(output as i64)
        .bind(cost as i64)
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot record session progress")?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks these sessions' runner as alive.
    pub async fn heartbeat(&self, ids: &[SessionId], now: Timestamp) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = id_list(ids.iter().map(|i| i.0));
        let sql = format!("UPDATE sessions SET heartbeat_at = $1 WHERE id IN ({list})");
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.0)
            .execute(tx.conn())
            .await
            .context("cannot record heartbeat")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a session's result (`report_result`) or latest summary (`note`).
    pub async fn set_session_text(
        &self,
        id: SessionId,
        result: Option<&str>,
        summary: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE sessions SET result = COALESCE($1, result), summary = COALESCE($2, summary)
             WHERE id = $3",
        )
        .bind(result)
        .bind(summary)
        .bind(id.0)
        .execute(tx.conn())
        .await
        .context("cannot record session result")?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a recovery of an interrupted session.
    pub async fn count_recovery(&self, id: SessionId) -> Result<u32> {
        let mut tx = self.begin().await?;
        let n: i64 = sqlx::query_scalar(
            "UPDATE sessions SET recoveries = recoveries + 1 WHERE id = $1 RETURNING recoveries",
        )
        .bind(id.0)
        .fetch_one(tx.conn())
        .await
        .context("cannot count recovery")?;
        tx.commit().await?;
        Ok(count(n))
    }

    /// Sessions that have messages waiting for their next turn.
    pub async fn sessions_with_messages(&self) -> Result<Vec<SessionId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT session_id FROM session_messages WHERE delivered_at IS NULL",
        )
        .fetch_all(&self.db.pool)
        .await
        .context("cannot list waiting messages")?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    /// Whether a session has messages waiting.
    pub async fn has_messages(&self, id: SessionId) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM session_messages WHERE session_id = $1 AND delivered_at IS NULL",
        )
        .bind(id.0)
        .fetch_one(&self.db.pool)
        .await
        .context("cannot count waiting messages")?;
        Ok(n > 0)
    }

    /// Appends transcript lines and drops the oldest beyond `keep` lines for the session.
    pub async fn append_transcript(
        &self,
        id: SessionId,
        lines: &[TranscriptLine],
        keep: u32,
    ) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for l in lines {
            sqlx::query(
                "INSERT INTO transcript_lines (session_id, at, stream, line) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.0)
            .bind(l.at.0)
            .bind(&l.stream)
            .bind(&l.line)
            .execute(tx.conn())
            .await
            .context("cannot append to transcript")?;
        }
        sqlx::query(
            "DELETE FROM transcript_lines WHERE session_id = $1 AND id <= (
                 SELECT id FROM transcript_lines WHERE session_id = $1
                 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(id.0)
        .bind(i64::from(keep))
        .execute(tx.conn())
        .await
        .context("cannot trim transcript")?;
        tx.commit().await
    }

    /// A session's transcript, oldest line first.
    /// A session's transcript lines after line `after` (an id this returned), oldest first, at
    /// most `limit`, each with its id.
    pub async fn transcript_after(
        &self,
        id: SessionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, TranscriptLine)>> {
        let sql = format!(
            "SELECT id, at, stream, line FROM transcript_lines WHERE session_id = $1 AND id > $2
             ORDER BY id LIMIT {limit}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .bind(after)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read transcript")?;
        rows.iter()
            .map(|r| {
                Ok((
                    col(r, "id")?,
                    TranscriptLine {
                        at: Timestamp(col(r, "at")?),
                        stream: col(r, "stream")?,
                        line: col(r, "line")?,
                    },
                ))
            })
            .collect()
    }

    pub async fn transcript(&self, id: SessionId) -> Result<Vec<TranscriptLine>> {
        let rows = sqlx::query(
            "SELECT at, stream, line FROM transcript_lines WHERE session_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.db.pool)
        .await
        .context("cannot read transcript")?;
        rows.iter()
            .map(|r| {
                Ok(TranscriptLine {
                    at: Timestamp(col(r, "at")?),
                    stream: col(r, "stream")?,
                    line: col(r, "line")?,
                })
            })
            .collect()
    }

    async fn dependencies_of(&self, ids: &[SessionId]) -> Result<Vec<(SessionId, SessionId)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = id_list(ids.iter().map(|i| i.0));
        let sql = format!(
            "SELECT session_id, depends_on FROM session_dependencies
             WHERE session_id IN ({list}) ORDER BY depends_on"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read session dependencies")?;
        rows.iter()
            .map(|r| {
                Ok((
                    SessionId(col(r, "session_id")?),
                    SessionId(col(r, "depends_on")?),
                ))
            })
            .collect()
    }

    async fn with_dependencies(&self, rows: Vec<AnyRow>) -> Result<Vec<Session>> {
        let mut sessions: Vec<Session> = rows.iter().map(session).collect::<Result<_>>()?;
        let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
        for chunk in ids.chunks(500) {
            for (session_id, depends_on) in self.dependencies_of(chunk).await? {
                if let Some(s) = sessions.iter_mut().find(|s| s.id == session_id) {
                    s.depends_on.push(depends_on);
                }
            }
        }
        Ok(sessions)
    }
}

impl Tx {
    /// Creates a session, queued.
    pub async fn insert_session(&mut self, s: &NewSession, now: Timestamp) -> Result<SessionId> {
        self.made_due();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sessions (objective_id, role, agent_kind, title, instructions, status,
                spawned_by, created_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7)
             RETURNING id",
        )
        .bind(s.objective_id.0)
        .bind(s.role.as_str())
        .bind(s.agent.as_str())
        .bind(&s.title)
        .bind(&s.instructions)
        .bind(s.spawned_by.map(|p| p.0))
        .bind(now.0)
        .fetch_one(self.conn())
        .await
        .context("cannot store session")?;
        for dep in &s.depends_on {
            sqlx::query(
                "INSERT INTO session_dependencies (session_id, depends_on) VALUES ($1, $2)",
            )
            .bind(id)
            .bind(dep.0)
            .execute(self.conn())
            .await
            .context("cannot store session dependency")?;
        }
        Ok(SessionId(id))
    }

    /// Whether `target` has room for one more turn besides `except`'s: fewer than `capacity`
    /// sessions starting or running there. The target's claim row is locked first, until this
    /// transaction ends, so that claims for one target (from any instance sharing the
    /// database) are counted one after another and its capacity is never exceeded.
    pub async fn room_on(
        &mut self,
        target: &str,
        capacity: u32,
        except: SessionId,
    ) -> Result<bool> {
        sqlx::query("INSERT INTO target_claims (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(target)
            .execute(self.conn())
            .await
            .context("cannot claim room on a target")?;
        sqlx::query("UPDATE target_claims SET claims = claims + 1 WHERE name = $1")
            .bind(target)
            .execute(self.conn())
            .await
            .context("cannot claim room on a target")?;
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions
             WHERE target = $1 AND status IN ('starting', 'running') AND id <> $2",
        )
        .bind(target)
        .bind(except.0)
        .fetch_one(self.conn())
        .await
        .context("cannot count a target's turns")?;
        Ok(running < i64::from(capacity))
    }

    /// Moves a session to `to` if allowed from its current state; true when it moved. The
    /// turn's token is revoked (turns start only through [`Store::begin_turn`]).
    pub async fn set_session_status(
        &mut self,
        id: SessionId,
        to: SessionStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        self.made_due();
        let from = sql_list(to.predecessors(), SessionStatus::as_str);
        let terminal = to.is_terminal();
        let sql = format!(
            "UPDATE sessions SET status = $1, status_reason = COALESCE($2, status_reason),
                 ended_at = CASE WHEN $3 = 1 THEN $4 ELSE ended_at END,
                 token_hash = NULL, pid = NULL,
                 activity = CASE WHEN $3 = 1 THEN NULL ELSE activity END
             WHERE id = $5 AND status IN ({from})"
        );
        let updated = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to.as_str())
            .bind(reason)
            .bind(i64::from(terminal))
            .bind(now.0)
            .bind(id.0)
            .execute(self.conn())
            .await
            .context("cannot change session status")?;
        Ok(updated.rows_affected() == 1)
    }

    /// Cancels the objective's live sessions, with `reason` — all of them, or with
    /// `spare_turns` all but those in a turn now (a manager that just said done finishes its
    /// turn). Their tokens are revoked when this commits, their questions closed, and a turn
    /// of theirs running in this process stops at once ([`Store::stopped_sessions`]).
    pub async fn stop_sessions_of(
        &mut self,
        objective: ObjectiveId,
        reason: &str,
        spare_turns: bool,
        now: Timestamp,
    ) -> Result<Vec<SessionId>> {
        let stoppable = SessionStatus::Cancelled
            .predecessors()
            .iter()
            .copied()
            .filter(|s| !(spare_turns && s.is_active_turn()))
            .collect::<Vec<_>>();
        let sql = format!(
            "SELECT id FROM sessions WHERE objective_id = $1 AND status IN ({}) ORDER BY id",
            sql_list(&stoppable, SessionStatus::as_str)
        );
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(self.conn())
            .await
            .context("cannot list the objective's live sessions")?;
        let mut stopped = Vec::new();
        for id in ids.into_iter().map(SessionId) {
            if self
                .set_session_status(id, SessionStatus::Cancelled, Some(reason), now)
                .await?
            {
                self.cancel_session_questions(id, now).await?;
                self.stopped.push(id);
                stopped.push(id);
            }
        }
        Ok(stopped)
    }

    /// Leaves an answer for a session's next turn, tied to its question.
    pub async fn push_answer(
        &mut self,
        id: SessionId,
        body: &str,
        question: QuestionId,
        now: Timestamp,
    ) -> Result<()> {
        self.made_due();
        sqlx::query(
            "INSERT INTO session_messages (session_id, body, created_at, question_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.0)
        .bind(body)
        .bind(now.0)
        .bind(question.0)
        .execute(self.conn())
        .await
        .context("cannot store the answer")?;
        Ok(())
    }

    /// Replaces the waiting message that carries a question's answer. False when it has
    /// already been delivered.
    pub async fn update_pending_answer(
        &mut self,
        question: QuestionId,
        body: &str,
    ) -> Result<bool> {
        self.made_due();
        let updated = sqlx::query(
            "UPDATE session_messages SET body = $1
             WHERE question_id = $2 AND delivered_at IS NULL",
        )
        .bind(body)
        .bind(question.0)
        .execute(self.conn())
        .await
        .context("cannot update the answer")?;
        Ok(updated.rows_affected() > 0)
    }

    /// Leaves a message for a session's next turn.
    pub async fn push_message(&mut self, id: SessionId, body: &str, now: Timestamp) -> Result<()> {
        self.made_due();
        sqlx::query(
            "INSERT INTO session_messages (session_id, body, created_at) VALUES ($1, $2, $3)",
        )
        .bind(id.0)
        .bind(body)
        .bind(now.0)
        .execute(self.conn())
        .await
        .context("cannot store message")?;
        Ok(())
    }
}

fn session(row: &AnyRow) -> Result<Session> {
    let status: String = col(row, "status")?;
    let role: String = col(row, "role")?;
    let agent: String = col(row, "agent_kind")?;
    let unsigned =
        |name: &str| -> Result<u64> { Ok(u64::try_from(col::<i64>(row, name)?).unwrap_or(0)) };
    Ok(Session {
        id: SessionId(col(row, "id")?),
        objective_id: ObjectiveId(col(row, "objective_id")?),
        role: Role::parse(&role).with_context(|| format!("unknown role `{role}`"))?,
        agent: AgentKind::parse(&agent).with_context(|| format!("unknown agent kind `{agent}`"))?,
        title: col(row, "title")?,
        instructions: col(row, "instructions")?,
        status: SessionStatus::parse(&status)
            .with_context(|| format!("unknown session status `{status}`"))?,
        status_reason: col(row, "status_reason")?,
        spawned_by: col::<Option<i64>>(row, "spawned_by")?.map(SessionId),
        depends_on: Vec::new(),
        conversation_id: col(row, "conversation_id")?,
        result: col(row, "result")?,
        activity: col(row, "activity")?,
        summary: col(row, "summary")?,
        turns: count(col(row, "turns")?),
        recoveries: count(col(row, "recoveries")?),
        input_tokens: unsigned("input_tokens")?,
        output_tokens: unsigned("output_tokens")?,
        cost_micros: unsigned("cost_micros")?,
        workdir: col(row, "workdir")?,
        runner: col(row, "runner")?,
        pid: col(row, "pid")?,
        heartbeat_at: col::<Option<i64>>(row, "heartbeat_at")?.map(Timestamp),
        created_at: Timestamp(col(row, "created_at")?),
        last_activity_at: col::<Option<i64>>(row, "last_activity_at")?.map(Timestamp),
        turn_started_at: col::<Option<i64>>(row, "turn_started_at")?.map(Timestamp),
        workspace_id: col::<Option<i64>>(row, "workspace_id")?.map(WorkspaceId),
        pull_request_id: col(row, "pull_request_id")?,
        target: col(row, "target")?,
        followup_kind: col::<Option<String>>(row, "followup_kind")?
            .map(|k| {
                crate::model::FollowupKind::parse(&k)
                    .with_context(|| format!("unknown follow-up kind `{k}`"))
            })
            .transpose()?,
    })
}
