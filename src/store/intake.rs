//! Storing webhook deliveries on SQLite, on a thread of its own with a connection of its own.
//!
//! The inbox writer is the hot path of intake: GitHub waits for the answer, and an answer
//! means the delivery is durable. Through the async driver every statement is a round trip to
//! the connection's worker thread, and those wake-ups, not SQLite, dominated intake. So on
//! SQLite the deliveries waiting at any moment are written by this thread with prepared
//! statements, in one transaction committed with a full sync, during its turn at the
//! process's one writer (see [`super::writer`]): group commit, with no hop per statement.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::mpsc;

use super::inbox::{Inserted, MAX_BATCH, PendingInsert, WRITER_QUEUE};
use super::writer::SharedWriter;
use crate::model::DeliverySeq;

/// Opens the connection and starts the thread that stores deliveries. It ends when every
/// sender is gone.
pub(super) fn spawn(
    path: &Path,
    busy_timeout_ms: u32,
    writer: SharedWriter,
) -> Result<mpsc::Sender<PendingInsert>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} to store deliveries", path.display()))?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA busy_timeout = {busy_timeout_ms};"
    ))
    .context("cannot set up the delivery store's connection")?;
    let runtime = tokio::runtime::Handle::current();
    let (sender, mut queue) = mpsc::channel::<PendingInsert>(WRITER_QUEUE);
    std::thread::Builder::new()
        .name("inbox-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = queue.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let result = match writer.exclusive(&runtime) {
                    Ok(_turn) => insert(&conn, &mut batch),
                    Err(e) => Err(e),
                };
                for (i, (_, reply)) in batch.drain(..).enumerate() {
                    let answer = match &result {
                        Ok(inserted) => Ok(inserted[i]),
                        Err(e) => Err(format!("{e:#}")),
                    };
                    // The request may have gone away; the delivery is stored (or not) regardless.
                    let _ = reply.send(answer);
                }
            }
        })
        .context("cannot start the inbox writer")?;
    Ok(sender)
}

/// Stores a batch in one transaction; each payload is let go once written.
fn insert(conn: &Connection, batch: &mut [PendingInsert]) -> Result<Vec<Inserted>> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .context("cannot start a database transaction")?;
    match insert_rows(conn, batch) {
        Ok(inserted) => {
            conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                anyhow!("cannot commit transaction: {e}")
            })?;
            Ok(inserted)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn insert_rows(conn: &Connection, batch: &mut [PendingInsert]) -> Result<Vec<Inserted>> {
    let mut row = conn.prepare_cached(
        "INSERT INTO deliveries (delivery_id, event, action, installation_id, repository_id,
            repository, queue_key, received_at, next_attempt_at, payload_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
         ON CONFLICT (delivery_id) DO NOTHING",
    )?;
    let mut part = conn.prepare_cached(
        "INSERT INTO delivery_payloads (seq, part, payload, compressed) VALUES (?1, ?2, '', ?3)",
    )?;
    let mut inserted = Vec::with_capacity(batch.len());
    for (packed, _) in batch.iter_mut() {
        let d = &packed.delivery;
        // No RETURNING: SQLite answers it through a temporary table made for each statement.
        // A row not inserted is a duplicate; one inserted has the connection's last rowid.
        let changed = row.execute(params![
            d.delivery_id.0,
            d.event,
            d.action,
            d.installation_id.map(|i| i.0),
            d.repository_id.map(|r| r.0),
            d.repository,
            d.queue_key(),
            d.received_at.0,
            i64::try_from(packed.payload_bytes).unwrap_or(i64::MAX),
        ])?;
        if changed == 0 {
            inserted.push(Inserted::Duplicate);
            continue;
        }
        let seq = conn.last_insert_rowid();
        for (n, compressed) in std::mem::take(&mut packed.parts).into_iter().enumerate() {
            part.execute(params![seq, n as i64, compressed])?;
        }
        inserted.push(Inserted::New(DeliverySeq(seq)));
    }
    Ok(inserted)
}
