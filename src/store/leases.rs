//! Named leases: a row with a holder and an expiry, taken by a conditional upsert. Used to
//! pick the one instance that runs the tick loop when several share a database.

use std::time::Duration;

use anyhow::{Context, Result};

use super::Store;
use crate::model::Timestamp;

impl Store {
    /// Takes or renews the lease `name` for `holder` until `now + ttl`. True when `holder`
    /// holds it afterwards: it was free, expired, or already `holder`'s.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                                             expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now.plus(ttl).0)
        .bind(now.0)
        .fetch_optional(tx.conn())
        .await
        .with_context(|| format!("cannot take lease {name}"))?;
        tx.commit().await?;
        Ok(row.is_some())
    }

    /// Gives the lease up if `holder` has it, so another instance need not wait for expiry.
    /// The row stays, lapsed at `now`: whoever takes the lease next learns how long nobody
    /// held it ([`Store::lease_expiry`]).
    pub async fn release_lease(&self, name: &str, holder: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE leases SET expires_at = $3 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .bind(now.0 - 1)
            .execute(tx.conn())
            .await
            .with_context(|| format!("cannot release lease {name}"))?;
        tx.commit().await?;
        Ok(())
    }

    /// When the lease lapses (or lapsed), whoever holds it.
    pub async fn lease_expiry(&self, name: &str) -> Result<Option<Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar("SELECT expires_at FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await
            .with_context(|| format!("cannot read lease {name}"))?;
        Ok(at.map(Timestamp))
    }

    /// Who holds the lease now, if anyone.
    pub async fn lease_holder(&self, name: &str, now: Timestamp) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND expires_at >= $2")
            .bind(name)
            .bind(now.0)
            .fetch_optional(&self.db.pool)
            .await
            .with_context(|| format!("cannot read lease {name}"))
    }
}
