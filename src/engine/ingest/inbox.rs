//! The inbox processor: takes stored deliveries in arrival order — one at a time per
//! repository, several repositories at once — hands each to its handler, and marks it handled
//! in the same transaction as the handler's writes. A failing delivery is retried with
//! backoff and parked as dead after too many attempts. Because claims are leases in the
//! store, a restart (or another instance) picks up whatever was left unfinished.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::engine::ingest::Ingest;
use crate::engine::ingest::handlers;
use crate::engine::ingest::receiving;
use crate::engine::ingest::work::{Outcome, Work};
use crate::github::events;
use crate::metrics::inc;
use crate::model::DeliverySeq;
use crate::model::delivery::{
    ClaimedDelivery, DeliveryStatus, RetryDecision, Skip, retry_decision,
};

/// How often the processor looks for due retries when nothing rings its bell.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two scans for queues without a lane. A scan costs a hop per queue with
/// pending deliveries; under a burst of webhooks the bell rings constantly, so scans are
/// rationed while lanes keep draining their queues.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(25);
/// Deliveries a lane handles before it yields its slot, so one busy repository cannot keep
/// every slot while others wait.
const LANE_TURN: usize = 256;
/// Deliveries a lane claims at once.
const LANE_BATCH: u32 = 32;
/// Longest error text kept on a delivery row.
const MAX_ERROR_LEN: usize = 2_000;

/// How the processor behaves.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// This instance's name on claims.
    pub holder: String,
    /// Queues (repositories) handled at once.
    pub concurrency: usize,
    /// Attempts before a delivery is parked as dead.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_base: Duration,
    /// How long a claim lasts unless renewed. The claim is renewed while the handler runs, so
    /// this only bounds how long a crashed processor's delivery waits to be picked up again.
    pub claim_ttl: Duration,
}

/// Runs until `stop` is cancelled, then finishes the deliveries in hand and returns.
///
/// Work is organised in *lanes*: a lane claims the head of one queue and keeps taking that
/// queue's next delivery (a cheap indexed lookup) until the queue is empty or its turn is up.
/// The dispatcher here only scans for queues that have no lane yet.
pub async fn run(ingest: Arc<Ingest>, settings: InboxSettings, stop: CancellationToken) {
    let mut lanes = JoinSet::new();
    let mut last_scan: Option<Instant> = None;
    let mut want_scan = true;
    loop {
        let free = settings.concurrency.saturating_sub(lanes.len());
        let may_scan = last_scan.is_none_or(|at| at.elapsed() >= MIN_SCAN_INTERVAL);
        if want_scan && may_scan && free > 0 && !stop.is_cancelled() {
            want_scan = false;
            last_scan = Some(Instant::now());
            if let Err(e) = start_lanes(&ingest, &settings, free, &mut lanes, &stop).await {
                tracing::warn!(error = %format!("{e:#}"), "inbox: cannot read the inbox; will retry");
            }
        }
        if stop.is_cancelled() && lanes.is_empty() {
            return;
        }
        // A wanted scan waits only for its ration; otherwise poll for retries coming due.
        let wait = match (want_scan, last_scan) {
            (true, Some(at)) => MIN_SCAN_INTERVAL.saturating_sub(at.elapsed()),
            _ => POLL_INTERVAL,
        };
        tokio::select! {
            _ = ingest.inbox_bell.notified() => want_scan = true,
            Some(_) = lanes.join_next(), if !lanes.is_empty() => want_scan = true,
            _ = tokio::time::sleep(wait) => want_scan = true,
            _ = stop.cancelled(), if !stop.is_cancelled() => {}
        }
    }
}

/// Claims the heads of up to `free` queues and starts a lane on each.
async fn start_lanes(
    ingest: &Arc<Ingest>,
    settings: &InboxSettings,
    free: usize,
    lanes: &mut JoinSet<()>,
    stop: &CancellationToken,
) -> Result<()> {
    let now = ingest.clock.now();
    let limit = u32::try_from(free).unwrap_or(u32::MAX);
    for seq in ingest.store.ready_deliveries(now, limit).await? {
        let Some(delivery) = ingest
            .store
            .claim_delivery(seq, &settings.holder, now, settings.claim_ttl)
            .await?
        else {
            continue; // another processor took it
        };
        lanes.spawn(lane(
            ingest.clone(),
            settings.clone(),
            delivery,
            stop.clone(),
        ));
    }
    Ok(())
}

/// Handles `first`, then the following deliveries of its queue, one at a time, claiming them
/// [`LANE_BATCH`] at a time. Skipped deliveries are marked handled together, with the next
/// delivery that has effects or with the next claim (see [`Skip`]).
async fn lane(
    ingest: Arc<Ingest>,
    settings: InboxSettings,
    first: ClaimedDelivery,
    stop: CancellationToken,
) {
    let queue = first.queue_key.clone();
    let mut batch = VecDeque::from([first]);
    let mut skipped = Vec::new();
    let mut handled = 0;
    loop {
        while let Some(delivery) = batch.pop_front() {
            // Intake first (see `receiving`).
            ingest.receiving.quiet(receiving::MAX_YIELD).await;
            let span = tracing::info_span!(
                "delivery",
                id = %delivery.delivery_id,
                event = %delivery.event,
                action = delivery.action.as_deref().unwrap_or(""),
                attempt = delivery.attempts,
            );
            let went_on = process(ingest.clone(), settings.clone(), delivery, &mut skipped)
                .instrument(span)
                .await;
            handled += 1;
            if !went_on {
                // It failed: the rest of the batch waits behind it, in the store.
                let unused: Vec<DeliverySeq> = batch.iter().map(|d| d.seq).collect();
                finish(&ingest, &settings, &skipped, &unused).await;
                return;
            }
        }
        if stop.is_cancelled() || handled >= LANE_TURN {
            finish(&ingest, &settings, &skipped, &[]).await;
            return;
        }
        let now = ingest.clock.now();
        match ingest
            .store
            .claim_in_queue(
                &queue,
                &settings.holder,
                now,
                settings.claim_ttl,
                LANE_BATCH,
                &skipped,
            )
            .await
        {
            Ok(next) if next.is_empty() => return,
            Ok(next) => {
                skipped.clear();
                batch = next.into();
            }
            Err(e) => {
                // The skipped ones stay claimed; they are handled again once the claims lapse.
                tracing::warn!(error = %format!("{e:#}"), "inbox: cannot claim the next deliveries");
                return;
            }
        }
    }
}

/// Marks the skipped deliveries still waiting handled, and gives back claims not used.
async fn finish(
    ingest: &Ingest,
    settings: &InboxSettings,
    skipped: &[Skip],
    unused: &[DeliverySeq],
) {
    let store = &ingest.store;
    let now = ingest.clock.now();
    if let Err(e) = store.mark_skipped(skipped, &settings.holder, now).await {
        tracing::warn!(error = %format!("{e:#}"), "inbox: cannot mark skipped deliveries; they will be handled again");
    }
    if let Err(e) = store.release_claims(unused, &settings.holder).await {
        tracing::warn!(error = %format!("{e:#}"), "inbox: cannot give back claims; they will lapse");
    }
}

/// Handles one claimed delivery to its end: handled (or skipped, its mark added to
/// `skipped`), retried later, or dead. Whether it was handled.
async fn process(
    ingest: Arc<Ingest>,
    settings: InboxSettings,
    mut delivery: ClaimedDelivery,
    skipped: &mut Vec<Skip>,
) -> bool {
    let started = Instant::now();
    let loaded = if delivery.payload.is_empty() && delivery.payload_bytes > 0 {
        ingest.store.load_payload(&mut delivery).await
    } else {
        Ok(())
    };
    // Parsed, the payload's text is not needed again: it goes before the handler starts.
    let payload = std::mem::take(&mut delivery.payload);
    let parsed = loaded.map(|()| events::parse(&delivery.event, payload.as_bytes()));
    drop(payload);
    let result = match parsed {
        Err(e) => Err(Failure::Transient(format!("{e:#}"))),
        // A payload that does not parse will not parse next time either: park it, with the
        // reason, for an operator to replay after an upgrade.
        Ok(Err(e)) => Err(Failure::Permanent(format!("cannot parse payload: {e}"))),
        Ok(Ok(event)) => {
            // The handler runs in a task of its own so that a panic becomes a failed attempt
            // instead of a claim that lingers until it lapses.
            let handler = {
                let (ingest, settings, delivery, waiting) = (
                    ingest.clone(),
                    settings.clone(),
                    delivery.clone(),
                    skipped.clone(),
                );
                tokio::spawn(
                    async move { handle(&ingest, &settings, &delivery, &event, &waiting).await }
                        .in_current_span(),
                )
            };
            match keep_claim(&ingest, &settings, &delivery, handler).await {
                Ok(result) => result.map_err(|e| Failure::Transient(format!("{e:#}"))),
                Err(e) => Err(Failure::Transient(format!("handler panicked: {e}"))),
            }
        }
    };
    let ingest = &*ingest;
    let settings = &settings;
    let status = match result {
        Ok(Handled::Committed(status)) => {
            skipped.clear();
            status
        }
        Ok(Handled::Skipped(skip)) => {
            skipped.push(skip);
            DeliveryStatus::Skipped
        }
        Err(failure) => {
            record_failure(ingest, settings, &delivery, failure).await;
            return false;
        }
    };
    inc(&ingest.metrics.deliveries_processed);
    let since_receipt = ingest.clock.now().since(delivery.received_at);
    ingest.metrics.processing_latency.observe(since_receipt);
    tracing::info!(
        status = status.as_str(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "delivery handled"
    );
    true
}

/// Waits for the handler, renewing the delivery's claim at a third of its lifetime so that a
/// slow handler keeps it while a crashed process lets it go.
async fn keep_claim<T>(
    ingest: &Ingest,
    settings: &InboxSettings,
    delivery: &ClaimedDelivery,
    mut handler: tokio::task::JoinHandle<T>,
) -> Result<T, tokio::task::JoinError> {
    // The first renewal is a period away. (`interval`'s immediate first tick is not free: it
    // waits for the timer's next millisecond, which held every delivery up by about 1 ms.)
    let period = settings.claim_ttl / 3;
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            result = &mut handler => return result,
            _ = renew.tick() => {
                let until = ingest.clock.now().plus(settings.claim_ttl);
                if let Err(e) = ingest.store.renew_claim(delivery.seq, &settings.holder, until).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot renew the delivery claim");
                }
            }
        }
    }
}

enum Failure {
    /// Worth retrying (the database or GitHub may recover).
    Transient(String),
    /// Will fail the same way every time.
    Permanent(String),
}

/// How a handler's delivery ended.
enum Handled {
    /// Marked handled, with the handler's effects and the skipped deliveries before it.
    Committed(DeliveryStatus),
    /// Skipped without effects: its mark waits (see [`Skip`]).
    Skipped(Skip),
}

async fn handle(
    ingest: &Ingest,
    settings: &InboxSettings,
    delivery: &ClaimedDelivery,
    event: &events::Event,
    skipped: &[Skip],
) -> Result<Handled> {
    let mut work = Work::new(&ingest.store);
    let outcome = handlers::handle(ingest, &mut work, delivery, event).await?;
    let (status, note) = match outcome {
        Outcome::Skipped(note) if !work.wrote() => {
            return Ok(Handled::Skipped(Skip {
                seq: delivery.seq,
                note,
            }));
        }
        Outcome::Processed => (DeliveryStatus::Processed, None),
        Outcome::Skipped(note) => (DeliveryStatus::Skipped, Some(note)),
    };
    let now = ingest.clock.now();
    let mut tx = work.into_tx().await?;
    tx.complete_skipped(skipped, &settings.holder, now).await?;
    tx.complete_delivery(delivery.seq, &settings.holder, status, note.as_deref(), now)
        .await?;
    tx.commit().await?;
    Ok(Handled::Committed(status))
}

async fn record_failure(
    ingest: &Ingest,
    settings: &InboxSettings,
    delivery: &ClaimedDelivery,
    failure: Failure,
) {
    inc(&ingest.metrics.deliveries_failed);
    let now = ingest.clock.now();
    let (error, decision) = match failure {
        Failure::Permanent(error) => (error, RetryDecision::Dead),
        Failure::Transient(error) => {
            let decision = retry_decision(
                delivery.attempts,
                settings.max_attempts,
                settings.retry_base,
                now,
            );
            (error, decision)
        }
    };
    let error = truncate(&error, MAX_ERROR_LEN);
    match ingest
        .store
        .fail_delivery(delivery.seq, &settings.holder, error, decision)
        .await
    {
        Ok(Some(DeliveryStatus::Dead)) => {
            inc(&ingest.metrics.deliveries_dead);
            tracing::error!(
                error,
                "delivery is dead; replay it with `foreman deliveries replay {}`",
                delivery.delivery_id
            );
        }
        Ok(_) => tracing::warn!(error, "delivery failed; will retry"),
        // The claim lapses and the delivery is retried; nothing is lost.
        Err(e) => {
            tracing::error!(error, store_error = %format!("{e:#}"), "cannot record delivery failure")
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
