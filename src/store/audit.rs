//! The audit trail: what foreman did and why, one row per decision or effect.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;

use super::{Store, Tx, col};
use crate::model::{DeliveryId, InstallationId, ObjectiveId, RepositoryId, Timestamp};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// The objective it is about, if any.
    pub objective_id: Option<ObjectiveId>,
    pub delivery_id: Option<DeliveryId>,
    pub installation_id: Option<InstallationId>,
    pub repository_id: Option<RepositoryId>,
    pub kind: String,
    pub detail: String,
}

impl AuditEntry {
    /// A record about an objective, not tied to a delivery.
    pub fn about(
        objective: &crate::model::Objective,
        at: Timestamp,
        kind: impl Into<String>,
        detail: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            installation_id: objective.installation_id,
            ..AuditEntry::of_objective(objective.id, at, kind, detail)
        }
    }

    /// A record about an objective known only by its id.
    pub fn of_objective(
        objective: ObjectiveId,
        at: Timestamp,
        kind: impl Into<String>,
        detail: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            at,
            objective_id: Some(objective),
            delivery_id: None,
            installation_id: None,
            repository_id: None,
            kind: kind.into(),
            detail: detail.into(),
        }
    }
}

const COLUMNS: &str = "at, objective_id, delivery_id, installation_id, repository_id, kind, detail";

impl Tx {
    /// Appends to the audit trail.
    pub async fn audit(&mut self, entry: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, delivery_id, installation_id, repository_id, kind, detail,
                objective_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.at.0)
        .bind(entry.delivery_id.as_ref().map(|d| d.0.as_str()))
        .bind(entry.installation_id.map(|i| i.0))
        .bind(entry.repository_id.map(|r| r.0))
        .bind(&entry.kind)
        .bind(&entry.detail)
        .bind(entry.objective_id.map(|o| o.0))
        .execute(self.conn())
        .await
        .context("cannot write audit entry")?;
        Ok(())
    }
}

impl Store {
    /// The audit entries a delivery produced, oldest first.
    pub async fn audit_for_delivery(&self, id: &DeliveryId) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE delivery_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read audit trail")?;
        rows.iter().map(entry).collect()
    }

    /// An objective's audit trail, oldest first.
    pub async fn audit_of(&self, objective: ObjectiveId) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE objective_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(objective.0)
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read audit trail")?;
        rows.iter().map(entry).collect()
    }

    /// The latest `limit` audit entries, oldest first.
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT * FROM audit_log ORDER BY id DESC LIMIT $1) latest \
             ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot read audit trail")?;
        rows.iter().map(entry).collect()
    }

    /// How many audit entries a delivery produced.
    pub async fn audit_count(&self, id: &DeliveryId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE delivery_id = $1")
            .bind(&id.0)
            .fetch_one(&self.db.pool)
            .await
            .context("cannot count audit entries")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn entry(r: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        at: Timestamp(col(r, "at")?),
        objective_id: col::<Option<i64>>(r, "objective_id")?.map(ObjectiveId),
        delivery_id: col::<Option<String>>(r, "delivery_id")?.map(DeliveryId),
        installation_id: col::<Option<i64>>(r, "installation_id")?.map(InstallationId),
        repository_id: col::<Option<i64>>(r, "repository_id")?.map(RepositoryId),
        kind: col(r, "kind")?,
        detail: col(r, "detail")?,
    })
}
