//! People signed in to the web view. A session is found by the hash of its cookie, so the
//! table never holds a cookie that works.

use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};

use super::{Store, col};
use crate::model::Timestamp;

/// One signed-in person.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// SHA-256 of the session cookie, hex.
    pub id_hash: String,
    pub login: String,
    pub user_id: i64,
    /// Their GitHub user token: what they may read is asked with it.
    pub token: SecretString,
    /// What their forms must carry.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Store {
    /// Records a new session.
    pub async fn create_web_session(&self, session: &WebSession) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, login, user_id, token, csrf, created_at,
                expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.id_hash)
        .bind(&session.login)
        .bind(session.user_id)
        .bind(session.token.expose_secret())
        .bind(&session.csrf)
        .bind(session.created_at.0)
        .bind(session.expires_at.0)
        .execute(tx.conn())
        .await
        .context("cannot record the sign-in")?;
        // Sessions that ended go with each new one.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1")
            .bind(session.created_at.0)
            .execute(tx.conn())
            .await
            .context("cannot remove ended sign-ins")?;
        tx.commit().await
    }

    /// The session whose cookie hashes to `id_hash`, unless it has ended by `now`.
    pub async fn web_session(&self, id_hash: &str, now: Timestamp) -> Result<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT id_hash, login, user_id, token, csrf, created_at, expires_at
             FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now.0)
        .fetch_optional(&self.db.pool)
        .await
        .context("cannot read the sign-in")?;
        row.map(|r| {
            Ok(WebSession {
                id_hash: col(&r, "id_hash")?,
                login: col(&r, "login")?,
                user_id: col(&r, "user_id")?,
                token: SecretString::from(col::<String>(&r, "token")?),
                csrf: col(&r, "csrf")?,
                created_at: Timestamp(col(&r, "created_at")?),
                expires_at: Timestamp(col(&r, "expires_at")?),
            })
        })
        .transpose()
    }

    /// Ends a session (sign-out).
    pub async fn delete_web_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(tx.conn())
            .await
            .context("cannot end the sign-in")?;
        tx.commit().await
    }
}
