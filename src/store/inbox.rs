//! The durable webhook inbox: deliveries stored by the HTTP ingress and consumed by the
//! processor, serially per queue key and in parallel across keys.
//!
//! Claims are leases: a processor sets `claimed_by` with an expiry by a conditional update,
//! so a second instance (or a restarted process) can take over a claim that lapsed, and a
//! completion by a processor that lost its claim changes nothing.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use sqlx::any::AnyRow;
use tokio::sync::{mpsc, oneshot};

use super::{Db, Store, Tx, col, count, id_list};
use crate::model::delivery::{
    ClaimedDelivery, DeliveryStatus, DeliverySummary, NewDelivery, RetryDecision, Skip,
};
use crate::model::{DeliveryId, DeliverySeq, Timestamp};

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored for the first time.
    New(DeliverySeq),
    /// This delivery id was stored before; nothing changed.
    Duplicate,
}

/// Which deliveries an operator listing shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryFilter {
    /// Only deliveries in this state.
    pub status: Option<DeliveryStatus>,
    /// At most this many, newest first.
    pub limit: u32,
}

const CLAIMED_COLUMNS: &str =
    "seq, queue_key, delivery_id, event, action, received_at, attempts, payload_bytes";
const SUMMARY_COLUMNS: &str =
    "seq, delivery_id, event, action, repository, status, attempts, received_at, last_error";

impl Store {
    /// Stores a delivery unless its id was stored before. Returns once the delivery is
    /// committed (or known to be a duplicate).
    pub async fn insert_delivery(&self, d: NewDelivery) -> Result<Inserted> {
        let packed = Packed::new(d).context("cannot store delivery")?;
        let (reply, answer) = oneshot::channel();
        self.inbox_writer
            .send((packed, reply))
            .await
            .map_err(|_| anyhow!("cannot store delivery: the store is shut down"))?;
        answer
            .await
            .map_err(|_| anyhow!("cannot store delivery: the inbox writer stopped"))?
            .map_err(|e| anyhow!("cannot store delivery: {e}"))
    }

    /// The deliveries that may be processed now: for each queue key, its oldest pending
    /// delivery, if it is due and not claimed by a live claim. Oldest first.
    pub async fn ready_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<DeliverySeq>> {
        // The queues with pending deliveries are found by hopping through the pending index
        // from one queue key to the next (a "loose index scan"), so the cost grows with the
        // number of queues, not with how many deliveries wait in them.
        let rows = sqlx::query(
            "WITH RECURSIVE queues (queue_key) AS (
                 SELECT MIN(queue_key) FROM deliveries WHERE status = 'pending'
                 UNION ALL
                 SELECT (SELECT MIN(queue_key) FROM deliveries
                         WHERE status = 'pending' AND queue_key > queues.queue_key)
                 FROM queues WHERE queues.queue_key IS NOT NULL
             )
             SELECT d.seq FROM queues
             JOIN deliveries d ON d.seq = (SELECT MIN(seq) FROM deliveries
                                           WHERE queue_key = queues.queue_key
                                             AND status = 'pending')
             WHERE d.next_attempt_at <= $1
               AND (d.claimed_by IS NULL OR d.claim_expires_at < $1)
             ORDER BY d.seq
             LIMIT $2",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await
        .context("cannot list ready deliveries")?;
        rows.iter()
            .map(|r| Ok(DeliverySeq(col(r, "seq")?)))
            .collect()
    }

    /// Claims a ready delivery for `holder` until `now + ttl`, counting the attempt, and reads
    /// its payload. `None` when someone else claimed it first, it is no longer pending, or it
    /// is not due.
    pub async fn claim_delivery(
        &self,
        seq: DeliverySeq,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<ClaimedDelivery>> {
        let sql = format!(
            "UPDATE deliveries
             SET claimed_by = $1, claim_expires_at = $2, attempts = attempts + 1
             WHERE seq = $3 AND status = 'pending' AND next_attempt_at <= $4
               AND (claimed_by IS NULL OR claim_expires_at < $4)
             RETURNING {CLAIMED_COLUMNS}"
        );
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(now.plus(ttl).0)
            .bind(seq.0)
            .bind(now.0)
            .fetch_optional(tx.conn())
            .await
            .context("cannot claim delivery")?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut delivery = claimed(&row)?;
        self.load_payload(&mut delivery).await?;
        Ok(Some(delivery))
    }

    /// Marks `skipped` (claimed by `holder`) handled, then claims the next deliveries of
    /// `queue_key` that may be handled now, at most `limit`, counting their attempts: the
    /// pending ones in arrival order up to the first that is not due or that someone else
    /// holds. One transaction; the payloads are not read (see [`Store::load_payload`]).
    pub async fn claim_in_queue(
        &self,
        queue_key: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
        limit: u32,
        skipped: &[Skip],
    ) -> Result<Vec<ClaimedDelivery>> {
        let sql = format!(
            "WITH head AS (
                 SELECT seq, next_attempt_at, claimed_by, claim_expires_at FROM deliveries
                 WHERE queue_key = $3 AND status = 'pending' ORDER BY seq LIMIT $5
             )
             UPDATE deliveries
             SET claimed_by = $1, claim_expires_at = $2, attempts = attempts + 1
             WHERE seq IN (
                 SELECT seq FROM head WHERE seq < COALESCE(
                     (SELECT MIN(seq) FROM head
                      WHERE next_attempt_at > $4
                         OR (claimed_by IS NOT NULL AND claim_expires_at >= $4)),
                     {})
             )
             RETURNING {CLAIMED_COLUMNS}",
            i64::MAX
        );
        let mut tx = self.begin().await?;
        tx.complete_skipped(skipped, holder, now).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(now.plus(ttl).0)
            .bind(queue_key)
            .bind(now.0)
            .bind(i64::from(limit))
            .fetch_all(tx.conn())
            .await
            .context("cannot claim deliveries")?;
        tx.commit().await?;
        let mut claimed = rows.iter().map(claimed).collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|d| d.seq.0);
        Ok(claimed)
    }

    /// Marks skipped deliveries `holder` claimed handled (see [`Skip`]).
    pub async fn mark_skipped(&self, skipped: &[Skip], holder: &str, now: Timestamp) -> Result<()> {
        if skipped.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.complete_skipped(skipped, holder, now).await?;
        tx.commit().await
    }

    /// Gives back claims `holder` took but will not use, uncounting their attempts.
    pub async fn release_claims(&self, seqs: &[DeliverySeq], holder: &str) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let list = id_list(seqs.iter().map(|s| s.0));
        let mut tx = self.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries
             SET claimed_by = NULL, claim_expires_at = NULL, attempts = attempts - 1
             WHERE seq IN ({list}) AND claimed_by = $1 AND status = 'pending'"
        )))
        .bind(holder)
        .execute(tx.conn())
        .await
        .context("cannot release delivery claims")?;
        tx.commit().await
    }

    /// Reads a claimed delivery's payload, one part at a time, each read when the last is
    /// appended: a driver that reads rows ahead would otherwise hold a large payload twice.
    pub async fn load_payload(&self, delivery: &mut ClaimedDelivery) -> Result<()> {
        let size = delivery.payload_bytes;
        delivery.payload = String::with_capacity(size);
        for part in 0_i64.. {
            let row = sqlx::query(
                "SELECT payload, compressed FROM delivery_payloads WHERE seq = $1 AND part = $2",
            )
            .bind(delivery.seq.0)
            .bind(part)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read the delivery's payload")?;
            let Some(row) = row else { break };
            match col::<Option<Vec<u8>>>(&row, "compressed")? {
                Some(compressed) => delivery.payload.push_str(&unpack(&compressed)?),
                None => delivery.payload.push_str(&col::<String>(&row, "payload")?),
            }
            if delivery.payload.len() >= size {
                break;
            }
        }
        Ok(())
    }

    /// Extends a claim `holder` still has.
    pub async fn renew_claim(
        &self,
        seq: DeliverySeq,
        holder: &str,
        until: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE deliveries SET claim_expires_at = $1
             WHERE seq = $2 AND claimed_by = $3 AND status = 'pending'",
        )
        .bind(until.0)
        .bind(seq.0)
        .bind(holder)
        .execute(tx.conn())
        .await
        .context("cannot renew delivery claim")?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt: the claim is released and the delivery retried later or
    /// parked as dead. Returns the resulting status (`None` if the claim had been lost).
    pub async fn fail_delivery(
        &self,
        seq: DeliverySeq,
        holder: &str,
        error: &str,
        decision: RetryDecision,
    ) -> Result<Option<DeliveryStatus>> {
        let (status, next_attempt_at) = match decision {
            RetryDecision::RetryAt(at) => (DeliveryStatus::Pending, Some(at.0)),
            RetryDecision::Dead => (DeliveryStatus::Dead, None),
        };
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE deliveries
             SET claimed_by = NULL, claim_expires_at = NULL, last_error = $1, status = $2,
                 next_attempt_at = COALESCE($3, next_attempt_at)
             WHERE seq = $4 AND claimed_by = $5 AND status = 'pending'",
        )
        .bind(error)
        .bind(status.as_str())
        .bind(next_attempt_at)
        .bind(seq.0)
        .bind(holder)
        .execute(tx.conn())
        .await
        .context("cannot record delivery failure")?;
        tx.commit().await?;
        Ok((updated.rows_affected() == 1).then_some(status))
    }

    /// Deliveries for operators, newest first.
    pub async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliverySummary>> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM deliveries
             WHERE ($1 IS NULL OR status = $1) ORDER BY seq DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.status.map(DeliveryStatus::as_str))
            .bind(i64::from(filter.limit))
            .fetch_all(&self.db.pool)
            .await
            .context("cannot list deliveries")?;
        rows.iter().map(summary).collect()
    }

    /// One delivery by its GitHub delivery id.
    pub async fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliverySummary>> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM deliveries WHERE delivery_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id.0)
            .fetch_optional(&self.db.pool)
            .await
            .context("cannot read delivery")?;
        row.as_ref().map(summary).transpose()
    }

    /// Puts dead deliveries back in the queue with a fresh attempt count. With `id`, only
    /// that one (an error if it is not dead); without, every dead delivery. Returns how many.
    pub async fn replay_dead(&self, id: Option<&DeliveryId>, now: Timestamp) -> Result<u64> {
        if let Some(id) = id {
            match self.delivery(id).await? {
                None => bail!("no delivery with id {id}"),
                Some(d) if d.status != DeliveryStatus::Dead => {
                    bail!("delivery {id} is {}, not dead", d.status.as_str())
                }
                Some(_) => {}
            }
        }
        let mut tx = self.begin().await?;
        let result = sqlx::query(
            "UPDATE deliveries
             SET status = 'pending', attempts = 0, next_attempt_at = $1,
                 claimed_by = NULL, claim_expires_at = NULL
             WHERE status = 'dead' AND ($2 IS NULL OR delivery_id = $2)",
        )
        .bind(now.0)
        .bind(id.map(|i| i.0.as_str()))
        .execute(tx.conn())
        .await
        .context("cannot replay deliveries")?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    /// How many deliveries are waiting to be processed.
    pub async fn inbox_depth(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
            .fetch_one(&self.db.pool)
            .await
            .context("cannot count pending deliveries")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many deliveries are stored, in any state.
    pub async fn delivery_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
            .fetch_one(&self.db.pool)
            .await
            .context("cannot count deliveries")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes handled deliveries received before `before`; dead and pending ones are kept.
    pub async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.begin().await?;
        let done = "status IN ('processed', 'skipped') AND received_at < $1";
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM delivery_payloads WHERE seq IN (SELECT seq FROM deliveries WHERE {done})"
        )))
        .bind(before.0)
        .execute(tx.conn())
        .await
        .context("cannot prune old payloads")?;
        let result = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM deliveries WHERE {done}"
        )))
        .bind(before.0)
        .execute(tx.conn())
        .await
        .context("cannot prune old deliveries")?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }
}

/// A delivery waiting for the inbox writer, and where to send how it went.
pub(super) type PendingInsert = (Packed, oneshot::Sender<Result<Inserted, String>>);

/// How hard payloads are compressed: zstd's fastest level already stores GitHub's JSON in
/// about a sixth of its size.
const COMPRESSION_LEVEL: i32 = 1;

/// A delivery as stored: its payload compressed in parts of at most [`PAYLOAD_PART`] bytes
/// (so no statement, and no buffer, holds a large payload whole once more).
pub(super) struct Packed {
    /// The delivery, its payload taken out.
    pub delivery: NewDelivery,
    /// How long the payload is.
    pub payload_bytes: usize,
    pub parts: Vec<Vec<u8>>,
}

impl Packed {
    /// Compresses the payload (on the caller's task: many requests compress at once, while
    /// the writer that stores them is one).
    fn new(mut delivery: NewDelivery) -> Result<Packed> {
        let payload = std::mem::take(&mut delivery.payload);
        let parts = COMPRESSOR
            .with_borrow_mut(|compressor| {
                parts(&payload, PAYLOAD_PART)
                    .map(|part| compressor.compress(part.as_bytes()))
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .context("cannot compress the payload")?;
        Ok(Packed {
            delivery,
            payload_bytes: payload.len(),
            parts,
        })
    }
}

thread_local! {
    /// Each thread's compressor: making one allocates (and frees) its tables, which would cost
    /// more than compressing a payload.
    static COMPRESSOR: std::cell::RefCell<zstd::bulk::Compressor<'static>> =
        std::cell::RefCell::new(
            zstd::bulk::Compressor::new(COMPRESSION_LEVEL).expect("zstd's fastest level exists"),
        );
    static DECOMPRESSOR: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
        std::cell::RefCell::new(
            zstd::bulk::Decompressor::new().expect("a zstd decompressor can be made"),
        );
}

/// One stored part of a payload, uncompressed.
fn unpack(compressed: &[u8]) -> Result<String> {
    let bytes = DECOMPRESSOR
        .with_borrow_mut(|decompressor| decompressor.decompress(compressed, PAYLOAD_PART))
        .context("cannot decompress the delivery's payload")?;
    String::from_utf8(bytes).context("the delivery's payload is not UTF-8")
}

/// Most deliveries committed in one transaction.
pub(super) const MAX_BATCH: usize = 256;
/// Deliveries that may wait for the writer before senders are held back.
pub(super) const WRITER_QUEUE: usize = 4096;

/// Starts the task that stores deliveries, committing everything queued at that moment in
/// one transaction. It ends when every [`Store`] handle is gone.
pub(super) fn spawn_writer(db: Db) -> mpsc::Sender<PendingInsert> {
    let (sender, mut queue) = mpsc::channel::<PendingInsert>(WRITER_QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let result = insert_batch(&db, &mut batch).await;
            for (i, (_, reply)) in batch.drain(..).enumerate() {
                let answer = match &result {
                    Ok(inserted) => Ok(inserted[i]),
                    Err(e) => Err(format!("{e:#}")),
                };
                // The request may have gone away; the delivery is stored (or not) regardless.
                let _ = reply.send(answer);
            }
        }
    });
    sender
}

/// The most of a payload one statement carries.
const PAYLOAD_PART: usize = 1 << 20;

/// `text` in consecutive parts of at most `max` bytes (a character is never split).
fn parts(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        rest = tail;
        Some(part)
    })
}

/// Stores a batch with one statement for the rows and one for the payloads' parts (more for
/// over a thousand parts). Each part is let go as soon as it is handed to its statement.
async fn insert_batch(db: &Db, batch: &mut [PendingInsert]) -> Result<Vec<Inserted>> {
    let mut tx = db.begin_urgent().await?;
    let mut rows = String::from(
        "INSERT INTO deliveries (delivery_id, event, action, installation_id, repository_id,
            repository, queue_key, received_at, next_attempt_at, payload_bytes) VALUES ",
    );
    for i in 0..batch.len() {
        let p = i * 9;
        if i > 0 {
            rows.push(',');
        }
        rows.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 8,
            p + 9
        ));
    }
    rows.push_str(" ON CONFLICT (delivery_id) DO NOTHING RETURNING seq, delivery_id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(rows));
    for (packed, _) in batch.iter() {
        let d = &packed.delivery;
        query = query
            .bind(d.delivery_id.0.clone())
            .bind(d.event.clone())
            .bind(d.action.clone())
            .bind(d.installation_id.map(|i| i.0))
            .bind(d.repository_id.map(|r| r.0))
            .bind(d.repository.clone())
            .bind(d.queue_key())
            .bind(d.received_at.0)
            .bind(i64::try_from(packed.payload_bytes).unwrap_or(i64::MAX));
    }
    let mut stored: std::collections::HashMap<String, i64> = query
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|row| Ok((col(row, "delivery_id")?, col(row, "seq")?)))
        .collect::<Result<_>>()?;
    // The first of a batch's deliveries with an id gets its row; the rest are duplicates.
    let inserted: Vec<Inserted> = batch
        .iter()
        .map(|(p, _)| match stored.remove(&p.delivery.delivery_id.0) {
            Some(seq) => Inserted::New(DeliverySeq(seq)),
            None => Inserted::Duplicate,
        })
        .collect();
    let rows: Vec<(i64, i64, Vec<u8>)> = batch
        .iter_mut()
        .zip(&inserted)
        .filter_map(|((packed, _), inserted)| match inserted {
            Inserted::New(seq) => Some((seq.0, std::mem::take(&mut packed.parts))),
            Inserted::Duplicate => None,
        })
        .flat_map(|(seq, parts)| {
            parts
                .into_iter()
                .enumerate()
                .map(move |(n, part)| (seq, n as i64, part))
        })
        .collect();
    // At most this many rows per statement, within every backend's limit on parameters.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1_000).collect();
        let values = (0..chunk.len())
            .map(|i| format!("(${}, ${}, '', ${})", i * 3 + 1, i * 3 + 2, i * 3 + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO delivery_payloads (seq, part, payload, compressed) VALUES {values}"
        )));
        for (seq, part, compressed) in chunk {
            query = query.bind(seq).bind(part).bind(compressed);
        }
        query.execute(tx.conn()).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

impl Tx {
    /// Marks skipped deliveries `holder` claimed handled, with one statement. An error if a
    /// claim was lost meanwhile: the caller must roll back.
    pub async fn complete_skipped(
        &mut self,
        skipped: &[Skip],
        holder: &str,
        now: Timestamp,
    ) -> Result<()> {
        if skipped.is_empty() {
            return Ok(());
        }
        let values = (0..skipped.len())
            .map(|i| format!("(${}, ${})", 3 + 2 * i, 4 + 2 * i))
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries
             SET status = 'skipped', processed_at = $1, last_error = v.column2,
                 claimed_by = NULL, claim_expires_at = NULL
             FROM (VALUES {values}) AS v
             WHERE deliveries.seq = v.column1 AND deliveries.claimed_by = $2
               AND deliveries.status = 'pending'"
        )))
        .bind(now.0)
        .bind(holder);
        for skip in skipped {
            query = query.bind(skip.seq.0).bind(skip.note.clone());
        }
        let updated = query
            .execute(self.conn())
            .await
            .context("cannot mark skipped deliveries")?;
        if updated.rows_affected() != skipped.len() as u64 {
            bail!("a skipped delivery was claimed by another processor meanwhile");
        }
        Ok(())
    }

    /// Marks a claimed delivery handled, in the same transaction as the handler's effects. An
    /// error if the claim was lost meanwhile: the caller must roll back.
    pub async fn complete_delivery(
        &mut self,
        seq: DeliverySeq,
        holder: &str,
        status: DeliveryStatus,
        note: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE deliveries
             SET status = $1, processed_at = $2, last_error = $3,
                 claimed_by = NULL, claim_expires_at = NULL
             WHERE seq = $4 AND claimed_by = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(now.0)
        .bind(note)
        .bind(seq.0)
        .bind(holder)
        .execute(self.conn())
        .await
        .context("cannot mark delivery processed")?;
        if updated.rows_affected() != 1 {
            bail!(
                "delivery {} was claimed by another processor meanwhile",
                seq.0
            );
        }
        Ok(())
    }
}

fn summary(row: &AnyRow) -> Result<DeliverySummary> {
    let status: String = col(row, "status")?;
    Ok(DeliverySummary {
        seq: DeliverySeq(col(row, "seq")?),
        delivery_id: DeliveryId(col(row, "delivery_id")?),
        event: col(row, "event")?,
        action: col(row, "action")?,
        repository: col(row, "repository")?,
        status: DeliveryStatus::parse(&status)
            .with_context(|| format!("unknown delivery status `{status}`"))?,
        attempts: count(col(row, "attempts")?),
        received_at: Timestamp(col(row, "received_at")?),
        last_error: col(row, "last_error")?,
    })
}

fn claimed(row: &AnyRow) -> Result<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        seq: DeliverySeq(col(row, "seq")?),
        queue_key: col(row, "queue_key")?,
        delivery_id: DeliveryId(col(row, "delivery_id")?),
        event: col(row, "event")?,
        action: col(row, "action")?,
        payload: String::new(),
        payload_bytes: usize::try_from(col::<i64>(row, "payload_bytes")?).unwrap_or(0),
        received_at: Timestamp(col(row, "received_at")?),
        attempts: count(col(row, "attempts")?),
    })
}

#[cfg(test)]
mod tests {
    use super::parts;

    #[test]
    fn payload_parts_join_back_and_never_split_a_character() {
        let text = "aé€😀".repeat(1000);
        for max in [4, 5, 7, 1024, 1 << 20] {
            let split: Vec<&str> = parts(&text, max).collect();
            assert!(split.iter().all(|p| !p.is_empty() && p.len() <= max));
            assert_eq!(split.concat(), text);
        }
        assert_eq!(parts("", 4).count(), 0);
    }
}
