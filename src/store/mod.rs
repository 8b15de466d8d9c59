//! The store: the only place in foreman that speaks SQL.
//!
//! One API over SQLite (the embedded default) and PostgreSQL (for deployments that outgrow one
//! machine). Both run the same statements through sqlx's `Any` driver: parameters are written
//! `$1`, `$2`… (which SQLite also understands), times are integer milliseconds, and
//! concurrency control uses portable mechanisms — conditional updates, `ON CONFLICT`,
//! `RETURNING` — so both backends share one design.
//!
//! Reads go through [`Store`]; writes that must happen together go through a [`Tx`].
//!
//! SQLite allows one writer at a time, and a writer that finds the database locked sleeps in
//! growing steps before it retries — milliseconds of latency for nothing. So on SQLite every
//! write in this process goes through one connection, taken in turn (writers queue in order
//! and wake the moment it is free), and transactions that finish while others wait commit
//! together, with one fsync (see [`writer`]). The group's transaction takes the database lock
//! up front (`BEGIN IMMEDIATE`) so it never fails on a lock upgrade. The busy timeout remains
//! for other processes (an operator's `foreman deliveries replay` while the server runs).
//! Every write, even a single statement, is a [`Tx`]. Never start a second write from the
//! task that holds a [`Tx`]: it would wait for itself.
//!
//! Webhook deliveries are stored by a task that writes whatever has queued up with a few
//! statements in one transaction, so a burst of deliveries costs few statements and fsyncs.

mod audit;
mod gc;
mod inbox;
mod installations;
mod intake;
mod leases;
mod migrate;
mod objectives;
mod outbox;
mod pulls;
mod questions;
mod sessions;
mod supervisor;
mod web;
mod workspaces;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::SessionId;
use anyhow::{Context, Result};
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, ConnectOptions, Row};
use tokio::sync::{Notify, mpsc};

pub use audit::AuditEntry;
pub use gc::WorkspaceGcInfo;
pub use inbox::{DeliveryFilter, Inserted};
pub use installations::{Installation, InstallationState};
pub use objectives::NewObjective;
pub use outbox::{OutboxItem, OutboxKind, OutboxStatus, OutboxWrite, Thread};
pub use pulls::{FollowupInsert, NewFollowup, PullUpdate};
pub use sessions::{NewSession, Orphaned, Progress, TranscriptLine, TurnStart};
pub use web::WebSession;
pub use workspaces::{NewPull, NewWorkspace};

/// How long a connection attempt may take before the database counts as unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SQLite waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;
/// Pool size on SQLite (one writer at a time; the rest read concurrently under WAL).
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Pool size on PostgreSQL.
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// Which database engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or an error naming the URL's scheme.
    pub fn of_url(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => anyhow::bail!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got scheme `{scheme}`)"
            ),
        }
    }
}

/// The handle to the database that the whole program shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    inbox_writer: mpsc::Sender<inbox::PendingInsert>,
}

/// The pool and what it takes to write to it; shared with the inbox writer task.
#[derive(Clone, Debug)]
struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the one connection this process writes through (see [`writer`]).
    writer: Option<writer::SharedWriter>,
    /// Rung when a committed transaction made work due for the periodic passes.
    due_bell: Arc<Notify>,
    /// Tells of sessions a committed transaction stopped (see [`Store::stopped_sessions`]).
    stopped: tokio::sync::broadcast::Sender<SessionId>,
}

/// Stopped sessions told of that a slow listener may fall behind by before it misses some
/// (it then checks the store: see the turns' heartbeat).
const STOPPED_BACKLOG: usize = 1024;

/// A write transaction. Dropping it without [`Tx::commit`] rolls it back. Committing one
/// that made work due — an effect queued, a message left, a session or objective changed —
/// rings the store's due bell, so the passes that make that work run at once.
pub struct Tx {
    inner: TxInner,
    due_bell: Arc<Notify>,
    made_due: bool,
    /// Sessions this transaction stopped, told of once it commits.
    stopped: Vec<SessionId>,
    stopped_tx: tokio::sync::broadcast::Sender<SessionId>,
    backend: Backend,
}

/// Where a transaction runs.
enum TxInner {
    /// PostgreSQL: a pooled connection of its own.
    Pooled(sqlx::Transaction<'static, Any>),
    /// SQLite: a turn at this process's one writer, in a group that commits together.
    Shared(writer::Turn),
}

impl Db {
    async fn begin(&self) -> Result<Tx> {
        self.begin_with(writer::Urgency::Ordinary).await
    }

    /// A transaction someone waits for: on SQLite it goes ahead of ordinary ones.
    async fn begin_urgent(&self) -> Result<Tx> {
        self.begin_with(writer::Urgency::Urgent).await
    }

    async fn begin_with(&self, urgency: writer::Urgency) -> Result<Tx> {
        let inner = match &self.writer {
            Some(writer) => TxInner::Shared(writer.begin(urgency).await?),
            None => TxInner::Pooled(
                self.pool
                    .begin()
                    .await
                    .context("cannot start a database transaction")?,
            ),
        };
        Ok(Tx {
            inner,
            due_bell: self.due_bell.clone(),
            made_due: false,
            stopped: Vec::new(),
            stopped_tx: self.stopped.clone(),
            backend: self.backend,
        })
    }
}

impl Store {
    /// Connects to the database, creating a SQLite file if it does not exist yet. Does not
    /// migrate; call [`Store::migrate`].
    pub async fn connect(url: &SecretString) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let url = url.expose_secret();
        let backend = Backend::of_url(url)?;
        let shown = crate::config::redact_url(url);
        let url = match backend {
            Backend::Sqlite => sqlite_url(url),
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("invalid database URL {shown}"))?
            .disable_statement_logging();
        let writer = if backend == Backend::Sqlite {
            // WAL is a property of the database file; switching needs an exclusive lock that
            // the busy timeout cannot wait for, so do it once, alone, before the pool opens.
            // This connection then stays this process's one writer.
            let mut conn = options
                .connect()
                .await
                .with_context(|| format!("cannot open SQLite database {shown}"))?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut conn)
                .await
                .context("cannot switch SQLite to WAL mode")?;
            for pragma in sqlite_pragmas() {
                sqlx::query(sqlx::AssertSqlSafe(pragma))
                    .execute(&mut conn)
                    .await
                    .context("cannot set up the SQLite connection")?;
            }
            Some(writer::SharedWriter::new(conn))
        } else {
            None
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => SQLITE_MAX_CONNECTIONS,
                Backend::Postgres => POSTGRES_MAX_CONNECTIONS,
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping before each use finds a PostgreSQL connection the server dropped; an
            // SQLite connection is a file this process holds open, and the ping would only
            // cost a round trip to its worker thread per query.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in sqlite_pragmas() {
                            sqlx::query(sqlx::AssertSqlSafe(pragma))
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to database {shown}"))?;
        let db = Db {
            pool,
            backend,
            writer,
            due_bell: Arc::new(Notify::new()),
            stopped: tokio::sync::broadcast::channel(STOPPED_BACKLOG).0,
        };
        let inbox_writer = match (&db.writer, crate::config::sqlite_path(&url)) {
            (Some(writer), Some(path)) => {
                intake::spawn(&path, SQLITE_BUSY_TIMEOUT_MS, writer.clone())?
            }
            _ => inbox::spawn_writer(db.clone()),
        };
        Ok(Store { inbox_writer, db })
    }

    /// Rung whenever a committed transaction made work due (see [`Tx`]); the tick loop waits
    /// on it.
    pub fn due_bell(&self) -> Arc<Notify> {
        self.db.due_bell.clone()
    }

    /// The sessions committed transactions stop from now on (cancelled with their
    /// objective, say): a turn of one of them running in this process stops at once, without
    /// waiting for a periodic pass.
    pub fn stopped_sessions(&self) -> tokio::sync::broadcast::Receiver<SessionId> {
        self.db.stopped.subscribe()
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    /// Applies every migration not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        migrate::run(self).await
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.db.pool)
            .await
            .context("database unreachable")?;
        Ok(())
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    /// Closes every connection; later calls fail as if the database had gone away.
    pub async fn close(&self) {
        if let Some(writer) = &self.db.writer {
            writer.close().await;
        }
        self.db.pool.close().await;
    }
}

impl Tx {
    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Pooled(tx) => tx.commit().await.context("cannot commit transaction")?,
            TxInner::Shared(turn) => turn.commit().await?,
        }
        if self.made_due {
            self.due_bell.notify_one();
        }
        for id in self.stopped {
            // Nobody listening (no turn runs) is fine.
            let _ = self.stopped_tx.send(id);
        }
        Ok(())
    }

    /// Notes that this transaction makes work due: committing it rings the due bell.
    fn made_due(&mut self) {
        self.made_due = true;
    }

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.inner {
            TxInner::Pooled(tx) => tx,
            TxInner::Shared(turn) => turn.conn(),
        }
    }
}

/// The SQLite database and its `-wal`/`-shm` files are foreman's alone (mode 0600): created
/// so before SQLite opens them, and made so if an older version left them readable.
/// Nothing to do for PostgreSQL.
pub fn private_database_files(url: &SecretString) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Some(path) = crate::config::sqlite_path(url.expose_secret()) else {
        return Ok(());
    };
    let path = path.as_path();
    // A missing directory is SQLite's to report, with its own clear error.
    let dir_exists = path
        .parent()
        .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir());
    if dir_exists && !path.exists() {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path);
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private", file.display()))?;
        }
    }
    Ok(())
}

/// SQLite needs `mode=rwc` to create a missing file.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Per-connection SQLite settings: durable commits (FULL fsyncs the WAL on every commit),
/// foreign keys enforced, and writers wait for each other instead of failing.
fn sqlite_pragmas() -> [String; 3] {
    [
        "PRAGMA synchronous = FULL".to_owned(),
        "PRAGMA foreign_keys = ON".to_owned(),
        format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"),
    ]
}

/// Reads a column, naming it in the error.
fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name)
        .with_context(|| format!("cannot read column `{name}`"))
}

/// A stored pull request state.
fn parse_pull_state(text: &str) -> Result<crate::model::pulls::PullState> {
    crate::model::pulls::PullState::parse(text)
        .with_context(|| format!("unknown pull request state `{text}`"))
}

/// Ids written out for `IN (…)`: integers only, so nothing needs quoting.
fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    ids.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts a stored count to the unsigned type callers want, clamping nonsense to zero.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_named_by_scheme() {
        assert_eq!(Backend::of_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of_url("postgres://h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of_url("postgresql://h/db").unwrap(),
            Backend::Postgres
        );
        let err = Backend::of_url("mysql://h/db").unwrap_err().to_string();
        assert!(err.contains("mysql"), "{err}");
    }

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(
            sqlite_url("sqlite://foreman.db"),
            "sqlite://foreman.db?mode=rwc"
        );
        assert_eq!(sqlite_url("sqlite://f.db?mode=ro"), "sqlite://f.db?mode=ro");
        assert_eq!(
            sqlite_url("sqlite://f.db?cache=shared"),
            "sqlite://f.db?cache=shared&mode=rwc"
        );
    }
}
