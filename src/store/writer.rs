//! SQLite's one writer in this process, committing transactions in groups.
//!
//! SQLite allows one writer at a time, and with `synchronous = FULL` each commit waits for the
//! disk. So on SQLite every write transaction of this process runs on one connection, taken
//! in turn from a fair queue (writers wake in order, the moment it is free), and each
//! transaction is a savepoint inside a longer transaction that commits a *group*:
//!
//! - A transaction that finishes while nobody waits commits at once.
//! - One that finishes while others wait releases its savepoint and steps to the back of the
//!   queue, so that those waiting add their transactions to the same group. Whoever comes
//!   back to a group that is still open commits it: one fsync for all of them.
//! - No commit returns before its writes are durable; if the group's commit fails, every
//!   member's commit fails.
//! - A transaction that fails or is dropped rolls back to its savepoint; the others' writes in
//!   the group stay.
//!
//! Storing webhook deliveries is *urgent*: GitHub waits for the answer, and it must not queue
//! behind the inbox processor's many small transactions. Ordinary transactions therefore wait
//! for the writer one at a time (the rest behind them), so an urgent one waits for at most the
//! transaction running and one more; and an urgent transaction commits as soon as it is done,
//! with whatever group it joined, instead of stepping back.
//!
//! Reads inside a transaction see the writes of the group's earlier members. Those commit
//! with it or not at all, so this is the same as if they had committed first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow};
use sqlx::AnyConnection;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

/// Most transactions committed together.
const MAX_GROUP: usize = 16;
/// The longest a group gathers members: it holds the database's write lock all the while, and
/// another process writing to the same file (a second `foreman serve`) waits for it.
const MAX_GROUP_AGE: std::time::Duration = std::time::Duration::from_millis(1);

/// The shared writer: cheap to clone.
#[derive(Clone)]
pub(super) struct SharedWriter {
    state: Arc<Mutex<Writer>>,
    /// Ordinary transactions queue here, so that at most one of them waits for `state`.
    ordinary: Arc<Mutex<()>>,
    /// How many wait for their turn: a finished transaction lets them join its group.
    waiting: Arc<AtomicUsize>,
}

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWriter").finish_non_exhaustive()
    }
}

struct Writer {
    /// `None` once the store is closed.
    conn: Option<AnyConnection>,
    /// Whether the group's transaction is open.
    open: bool,
    /// When the open group began.
    opened: std::time::Instant,
    /// Whether a transaction's savepoint is open: one still running, or one given up without
    /// commit or rollback, to be rolled back by whoever comes next.
    in_savepoint: bool,
    /// The transactions in the open group, told how its commit went.
    members: Vec<oneshot::Sender<Result<(), String>>>,
}

/// One transaction's turn at the writer.
pub(super) struct Turn {
    guard: Option<OwnedMutexGuard<Writer>>,
    writer: SharedWriter,
    urgency: Urgency,
}

/// Whether a transaction goes ahead of ordinary ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Urgency {
    Ordinary,
    /// Someone is waiting for it (storing a webhook delivery).
    Urgent,
}

impl SharedWriter {
    pub(super) fn new(conn: AnyConnection) -> SharedWriter {
        SharedWriter {
            state: Arc::new(Mutex::new(Writer {
                conn: Some(conn),
                open: false,
                opened: std::time::Instant::now(),
                in_savepoint: false,
                members: Vec::new(),
            })),
            ordinary: Arc::new(Mutex::new(())),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Waits for the writer, tidying up after a transaction that was given up.
    async fn acquire(&self, urgency: Urgency) -> OwnedMutexGuard<Writer> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut guard = match urgency {
            Urgency::Urgent => self.state.clone().lock_owned().await,
            Urgency::Ordinary => {
                let _next = self.ordinary.lock().await;
                self.state.clone().lock_owned().await
            }
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard.settle().await;
        guard
    }

    /// Starts a transaction: a savepoint in the open group, or in a new one.
    ///
    /// Beginning and committing run in tasks of their own: a caller that goes away mid-way
    /// (a timeout, an aborted task) must not leave the connection in a transaction state the
    /// writer does not know of.
    pub(super) async fn begin(&self, urgency: Urgency) -> Result<Turn> {
        let writer = self.clone();
        tokio::spawn(async move { writer.begin_now(urgency).await })
            .await
            .map_err(|e| anyhow!("cannot start a database transaction: {e}"))?
    }

    async fn begin_now(&self, urgency: Urgency) -> Result<Turn> {
        let mut guard = self.acquire(urgency).await;
        if !guard.open {
            guard
                .exec("BEGIN IMMEDIATE")
                .await
                .context("cannot start a database transaction")?;
            guard.open = true;
            guard.opened = std::time::Instant::now();
        }
        if let Err(e) = guard.exec("SAVEPOINT tx").await {
            if guard.members.is_empty() {
                guard.end_group(Err(format!("{e:#}"))).await;
            }
            return Err(e.context("cannot start a database transaction"));
        }
        guard.in_savepoint = true;
        Ok(Turn {
            guard: Some(guard),
            writer: self.clone(),
            urgency,
        })
    }

    /// Takes the writer from a thread outside the runtime (ahead of ordinary transactions),
    /// committing the group it finds open, so that the caller can write through a connection
    /// of its own until it drops what this returns.
    pub(super) fn exclusive(
        &self,
        runtime: &tokio::runtime::Handle,
    ) -> Result<OwnedMutexGuard<impl Sized + use<>>> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.state.clone().blocking_lock_owned();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        runtime.block_on(async {
            guard.settle().await;
            if guard.open {
                guard.end_group(Ok(())).await;
            }
        });
        if guard.conn.is_none() {
            return Err(anyhow!("the database is closed"));
        }
        Ok(guard)
    }

    /// Ends the open group (rolled back) and closes the connection: later transactions fail.
    pub(super) async fn close(&self) {
        let writer = self.clone();
        let _ = tokio::spawn(async move { writer.close_now().await }).await;
    }

    async fn close_now(&self) {
        let mut guard = self.acquire(Urgency::Urgent).await;
        if guard.open {
            guard
                .end_group(Err("the database was closed".to_owned()))
                .await;
        }
        if let Some(conn) = guard.conn.take() {
            use sqlx::Connection;
            let _ = conn.close().await;
        }
    }
}

impl Writer {
    async fn exec(&mut self, sql: &'static str) -> Result<()> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| anyhow!("the database is closed"))?;
        sqlx::raw_sql(sql).execute(conn).await?;
        Ok(())
    }

    /// Rolls back a transaction that was given up; ends the group if it is all there was.
    async fn settle(&mut self) {
        if !self.in_savepoint {
            return;
        }
        self.in_savepoint = false;
        let undone =
            self.exec("ROLLBACK TO tx").await.is_ok() && self.exec("RELEASE tx").await.is_ok();
        if !undone {
            self.end_group(Err(
                "a transaction in the same group could not be undone".into()
            ))
            .await;
        } else if self.members.is_empty() && self.open {
            self.end_group(Ok(())).await;
        }
    }

    /// Commits (`Ok`) or rolls back (`Err`) the group, telling its members.
    async fn end_group(&mut self, outcome: Result<(), String>) {
        let outcome = match outcome {
            Ok(()) if !self.members.is_empty() => match self.exec("COMMIT").await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = self.exec("ROLLBACK").await;
                    Err(format!("cannot commit transaction: {e:#}"))
                }
            },
            Ok(()) => self.exec("ROLLBACK").await.map_err(|e| format!("{e:#}")),
            Err(e) => {
                let _ = self.exec("ROLLBACK").await;
                Err(e)
            }
        };
        self.open = false;
        for member in self.members.drain(..) {
            let _ = member.send(outcome.clone());
        }
    }
}

impl Turn {
    /// The connection, for this transaction's statements.
    pub(super) fn conn(&mut self) -> &mut AnyConnection {
        self.guard
            .as_mut()
            .and_then(|g| g.conn.as_mut())
            .expect("a turn holds the writer, which was open when the turn began")
    }

    /// Makes this transaction's writes durable, with whatever group it joins (in a task of
    /// its own: see [`SharedWriter::begin`]).
    pub(super) async fn commit(self) -> Result<()> {
        tokio::spawn(self.commit_now())
            .await
            .map_err(|e| anyhow!("cannot commit transaction: {e}"))?
    }

    async fn commit_now(mut self) -> Result<()> {
        let mut guard = self.guard.take().expect("a turn holds the writer");
        if let Err(e) = guard.exec("RELEASE tx").await {
            guard.settle().await;
            return Err(e.context("cannot commit transaction"));
        }
        guard.in_savepoint = false;
        let (member, mut outcome) = oneshot::channel();
        guard.members.push(member);
        let others_wait = self.writer.waiting.load(Ordering::SeqCst) > 0;
        let young = guard.opened.elapsed() < MAX_GROUP_AGE;
        if others_wait
            && young
            && guard.members.len() < MAX_GROUP
            && self.urgency == Urgency::Ordinary
        {
            // Let those waiting join the group; whoever comes back first commits it.
            drop(guard);
            guard = self.writer.acquire(Urgency::Ordinary).await;
            if let Ok(settled) = outcome.try_recv() {
                // Another member committed the group (or it failed).
                return settled.map_err(|e| anyhow!(e));
            }
        }
        guard.end_group(Ok(())).await;
        drop(guard);
        outcome
            .await
            .map_err(|_| anyhow!("the writer stopped before the transaction committed"))?
            .map_err(|e| anyhow!(e))
    }
}

impl Drop for Turn {
    /// A transaction dropped without commit is rolled back to its savepoint, by a task now if
    /// there is a runtime, else by whoever takes the writer next.
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take()
            && guard.in_savepoint
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let waiting = self.writer.waiting.clone();
            runtime.spawn(async move {
                guard.settle().await;
                // A group whose members all stepped back and then went away is committed
                // here, so it does not hold the database's write lock until the next write.
                if guard.open && waiting.load(Ordering::SeqCst) == 0 {
                    guard.end_group(Ok(())).await;
                }
            });
        }
    }
}
