//! Schema migrations: one set of SQL files for both backends, applied in order inside one
//! transaction, recorded with a checksum so an edited, already-applied file is caught.
//!
//! The files are portable SQL except for the token `AUTO_ID` (an auto-incrementing 64-bit
//! primary key), which is rendered per backend here.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Backend, Store};

/// One schema change, embedded in the binary.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. A test checks this list matches `migrations/`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../../migrations/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "agents",
        sql: include_str!("../../migrations/0002_agents.sql"),
    },
    Migration {
        version: 3,
        name: "workspaces",
        sql: include_str!("../../migrations/0003_workspaces.sql"),
    },
    Migration {
        version: 4,
        name: "issues",
        sql: include_str!("../../migrations/0004_issues.sql"),
    },
    Migration {
        version: 5,
        name: "gc",
        sql: include_str!("../../migrations/0005_gc.sql"),
    },
    Migration {
        version: 6,
        name: "questions",
        sql: include_str!("../../migrations/0006_questions.sql"),
    },
    Migration {
        version: 7,
        name: "supervisor",
        sql: include_str!("../../migrations/0007_supervisor.sql"),
    },
    Migration {
        version: 8,
        name: "pulls",
        sql: include_str!("../../migrations/0008_pulls.sql"),
    },
    Migration {
        version: 9,
        name: "markers",
        sql: include_str!("../../migrations/0009_markers.sql"),
    },
    Migration {
        version: 10,
        name: "authority",
        sql: include_str!("../../migrations/0010_authority.sql"),
    },
    Migration {
        version: 11,
        name: "payloads",
        sql: include_str!("../../migrations/0011_payloads.sql"),
    },
    Migration {
        version: 12,
        name: "outcome",
        sql: include_str!("../../migrations/0012_outcome.sql"),
    },
    Migration {
        version: 13,
        name: "downtime",
        sql: include_str!("../../migrations/0013_downtime.sql"),
    },
    Migration {
        version: 14,
        name: "compressed_payloads",
        sql: include_str!("../../migrations/0014_compressed_payloads.sql"),
    },
    Migration {
        version: 15,
        name: "egress",
        sql: include_str!("../../migrations/0015_egress.sql"),
    },
    Migration {
        version: 16,
        name: "web",
        sql: include_str!("../../migrations/0016_web.sql"),
    },
    Migration {
        version: 17,
        name: "targets",
        sql: include_str!("../../migrations/0017_targets.sql"),
    },
];

/// PostgreSQL advisory lock key that serialises migrations across instances.
const MIGRATION_LOCK_KEY: i64 = 0x0066_6f72_656d_616e;

pub(super) async fn run(store: &Store) -> Result<()> {
    let mut tx = store.begin().await?;
    let conn = tx.conn();
    if store.db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await
            .context("cannot take the migration lock")?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await
    .context("cannot create the schema_migrations table")?;
    let applied = sqlx::query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .context("cannot read applied migrations")?;
    let mut applied_versions = Vec::new();
    for row in &applied {
        let version: i64 = row.try_get("version")?;
        let stored: String = row.try_get("checksum")?;
        match MIGRATIONS.iter().find(|m| m.version == version) {
            None => bail!(
                "the database has schema version {version}, newer than this foreman knows \
                 (up to {}); run a newer foreman",
                MIGRATIONS.last().map_or(0, |m| m.version)
            ),
            Some(m) if checksum(m.sql) != stored => bail!(
                "migration {version} ({}) was changed after it was applied; restore it and add \
                 a new migration instead",
                m.name
            ),
            Some(_) => applied_versions.push(version),
        }
    }
    let now = crate::model::Clock::now(&crate::model::SystemClock).0;
    for migration in MIGRATIONS
        .iter()
        .filter(|m| !applied_versions.contains(&m.version))
    {
        sqlx::raw_sql(sqlx::AssertSqlSafe(render(migration.sql, store.db.backend)))
            .execute(&mut *conn)
            .await
            .with_context(|| {
                format!(
                    "migration {} ({}) failed",
                    migration.version, migration.name
                )
            })?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(checksum(migration.sql))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    tx.commit().await
}

/// A migration for `backend`: `AUTO_ID` is its auto-incrementing key, `BYTES` its binary type.
fn render(sql: &str, backend: Backend) -> String {
    let (auto_id, bytes) = match backend {
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        Backend::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BYTEA",
        ),
    };
    sql.replace("AUTO_ID", auto_id)
        .replace(" BYTES", &format!(" {bytes}"))
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Where a database stands against the migrations this foreman knows, read without
/// changing anything (for `foreman doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migrations applied and known.
    pub applied: usize,
    /// Migrations this foreman knows.
    pub known: usize,
    /// Versions applied that this foreman does not know (the database is newer).
    pub unknown: Vec<i64>,
    /// Versions whose applied file has changed since.
    pub changed: Vec<i64>,
}

impl Store {
    /// The migration status, read only: a database never migrated has none applied.
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let exists_sql = match self.db.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master \
                 WHERE type = 'table' AND name = 'schema_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_name = 'schema_migrations' AND table_schema = current_schema()"
            }
        };
        let exists: i64 = sqlx::query(exists_sql)
            .fetch_one(&self.db.pool)
            .await
            .context("cannot read the database's tables")?
            .try_get("n")?;
        let rows = if exists > 0 {
            sqlx::query("SELECT version, checksum FROM schema_migrations ORDER BY version")
                .fetch_all(&self.db.pool)
                .await
                .context("cannot read applied migrations")?
        } else {
            Vec::new()
        };
        let mut status = MigrationStatus {
            applied: 0,
            known: MIGRATIONS.len(),
            unknown: Vec::new(),
            changed: Vec::new(),
        };
        for row in &rows {
            let version: i64 = row.try_get("version")?;
            let stored: String = row.try_get("checksum")?;
            match MIGRATIONS.iter().find(|m| m.version == version) {
                None => status.unknown.push(version),
                Some(m) if checksum(m.sql) != stored => status.changed.push(version),
                Some(_) => status.applied += 1,
            }
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, embedded);
        for m in MIGRATIONS {
            let on_disk = std::fs::read_to_string(format!("{dir}/{:04}_{}.sql", m.version, m.name));
            assert_eq!(on_disk.unwrap(), m.sql);
        }
    }

    #[test]
    fn auto_ids_render_per_backend() {
        assert!(render("id AUTO_ID,", Backend::Sqlite).contains("AUTOINCREMENT"));
        assert!(render("id AUTO_ID,", Backend::Postgres).contains("IDENTITY"));
        assert_eq!(render("b BYTES;", Backend::Sqlite), "b BLOB;");
        assert_eq!(render("b BYTES;", Backend::Postgres), "b BYTEA;");
    }
}
