//! What the supervisor reads and writes: every active objective as [`ObjectiveView`], loaded
//! by one statement however many objectives there are, and its marks on objectives.

use anyhow::{Context, Result};

use super::{Backend, Store, Tx, count};
use crate::model::AgentKind;
use crate::model::session::sql_list;
use crate::model::supervisor::{Manager, ObjectiveView};
use crate::model::{ObjectiveId, ObjectiveStatus, Role, SessionStatus, Timestamp};

impl Store {
    /// Every active objective, as the supervisor sees it, oldest first.
    pub async fn supervision_views(&self) -> Result<Vec<ObjectiveView>> {
        let live = sql_list(
            &SessionStatus::ALL
                .into_iter()
                .filter(|s| !s.is_terminal())
                .collect::<Vec<_>>(),
            SessionStatus::as_str,
        );
        let manager = Role::Manager.as_str();
        let active = ObjectiveStatus::Active.as_str();
        // Each count is an index seek per objective (sessions by objective, role and status;
        // questions by objective and status; pull requests by objective).
        let views = format!(
            "SELECT o.id, o.supervised_at, o.escalated_at,
                m.status AS m_status, m.agent_kind AS m_agent, m.last_activity_at AS m_activity,
                (SELECT COUNT(*) FROM session_messages sm
                    WHERE sm.session_id = m.id AND sm.delivered_at IS NULL) AS m_messages,
                COALESCE(sa.live_workers, 0) AS live_workers,
                (SELECT COUNT(*) FROM questions q
                    WHERE q.objective_id = o.id AND q.status = 'open') AS open_questions,
                (SELECT COUNT(*) FROM pull_requests p
                    WHERE p.objective_id = o.id AND p.state = 'open') AS open_pulls,
                (SELECT COUNT(*) FROM pull_requests p
                    WHERE p.objective_id = o.id
                      AND ((p.state = 'open'
                            AND (p.checks = 'failing' OR p.mergeable = 'conflicting'))
                           OR (p.state = 'closed' AND p.decision IS NULL))) AS unhealthy_pulls,
                COALESCE(sa.attempts, 0) AS attempts,
                COALESCE(sa.managers, 0) AS managers
             FROM objectives o
             LEFT JOIN sessions m ON m.id = o.manager_session_id
             LEFT JOIN (
                SELECT s.objective_id,
                    COUNT(CASE WHEN s.role <> '{manager}' AND s.status IN ({live})
                          THEN 1 END) AS live_workers,
                    COUNT(CASE WHEN s.role = '{manager}' AND s.id > b.supervisor_base
                          AND s.turns > 0 THEN 1 END) AS attempts,
                    COUNT(CASE WHEN s.role = '{manager}' AND s.id > b.supervisor_base
                          THEN 1 END) AS managers
                FROM sessions s JOIN objectives b ON b.id = s.objective_id
                WHERE b.status = '{active}'
                GROUP BY s.objective_id
             ) sa ON sa.objective_id = o.id
             WHERE o.status = '{active}'"
        );
        // Thousands of rows cost more to hand over one by one than to compute, so they come
        // back as one JSON array, each element an array of the columns above in order.
        const COLUMNS: &str = "v.id, v.supervised_at, v.escalated_at, v.m_status, v.m_agent, \
             v.m_activity, v.m_messages, v.live_workers, v.open_questions, v.open_pulls, \
             v.unhealthy_pulls, v.attempts, v.managers";
        let sql = match self.db.backend {
            Backend::Sqlite => format!(
                "SELECT json_group_array(json_array({COLUMNS})) AS views
                 FROM ({views} ORDER BY o.id) v"
            ),
            Backend::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_array({COLUMNS}) ORDER BY v.id), '[]')::text
                    AS views
                 FROM ({views}) v"
            ),
        };
        let json: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.db.pool)
            .await
            .context("cannot read objectives to supervise")?;
        let rows: Vec<Row> =
            serde_json::from_str(&json).context("cannot read objectives to supervise")?;
        rows.into_iter().map(view).collect()
    }
}

/// One objective's columns, in the order of the query.
type Row = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

fn view(row: Row) -> Result<ObjectiveView> {
    let (id, supervised_at, escalated_at, status, agent, activity, messages, live_workers) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let manager = match (status, agent) {
        (Some(status), Some(agent)) => Some(Manager {
            status: SessionStatus::parse(&status)
                .with_context(|| format!("unknown session status `{status}`"))?,
            agent: AgentKind::parse(&agent)
                .with_context(|| format!("unknown agent kind `{agent}`"))?,
            last_activity_at: activity.map(Timestamp),
            has_messages: messages > 0,
        }),
        _ => None,
    };
    Ok(ObjectiveView {
        id: ObjectiveId(id),
        manager,
        live_workers: count(live_workers),
        open_questions: count(row.8),
        open_pulls: count(row.9),
        unhealthy_pulls: count(row.10),
        attempts: count(row.11),
        managers: count(row.12),
        supervised_at: supervised_at.map(Timestamp),
        escalated: escalated_at.is_some(),
    })
}

impl Tx {
    /// Records that the supervisor acted on an objective now (its cooldown starts), and
    /// whether the action was an escalation. False when another instance acted within the
    /// cooldown meanwhile, or the objective is no longer active: then nothing may be done.
    pub async fn mark_supervised(
        &mut self,
        id: ObjectiveId,
        now: Timestamp,
        not_since: Timestamp,
        escalated: bool,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE objectives
             SET supervised_at = $1,
                 escalated_at = CASE WHEN $2 = 1 THEN $1 ELSE escalated_at END
             WHERE id = $3 AND status = 'active'
               AND (supervised_at IS NULL OR supervised_at <= $4)",
        )
        .bind(now.0)
        .bind(i64::from(escalated))
        .bind(id.0)
        .bind(not_since.0)
        .execute(self.conn())
        .await
        .context("cannot mark objective supervised")?;
        Ok(done.rows_affected() == 1)
    }

    /// A human said go on: the manager budget counts afresh from the next session, and a new
    /// escalation may be raised once that budget is spent again.
    pub async fn reset_supervision(&mut self, id: ObjectiveId) -> Result<()> {
        self.made_due();
        sqlx::query(
            "UPDATE objectives
             SET supervisor_base = (SELECT COALESCE(MAX(s.id), 0) FROM sessions s
                                    WHERE s.objective_id = $1),
                 escalated_at = NULL
             WHERE id = $1",
        )
        .bind(id.0)
        .execute(self.conn())
        .await
        .context("cannot reset the objective's supervision")?;
        Ok(())
    }
}
