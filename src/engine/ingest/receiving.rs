//! Intake first: webhook requests being received (signed, and not yet answered), and the
//! processor's yielding to them.
//!
//! On a machine with few cores, handling stored deliveries competes with acknowledging new
//! ones for the same CPU, and only the acknowledgement has a deadline (GitHub gives up after
//! 10 seconds and counts the delivery failed). So while requests are being received, each
//! processing lane waits before its next delivery until intake is quiet, for at most
//! [`MAX_YIELD`] per delivery: under a burst processing slows to a trickle and catches up when
//! the burst ends, and under endless load it still moves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The longest a lane waits for intake to be quiet before handling its next delivery.
pub const MAX_YIELD: Duration = Duration::from_millis(20);

/// How many signed webhook requests are waiting for their answer.
#[derive(Debug, Default)]
pub struct Receiving {
    count: AtomicUsize,
    quiet: Notify,
}

/// One request being received: counted until dropped.
#[derive(Debug)]
pub struct Receipt<'a>(&'a Receiving);

impl Receiving {
    /// Counts a request until the receipt is dropped.
    pub fn start(&self) -> Receipt<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        Receipt(self)
    }

    /// Whether any request is being received.
    pub fn busy(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// Returns once no request is being received, or after `most`.
    pub async fn quiet(&self, most: Duration) {
        // The common case, asked before every delivery: nothing to wait for, no waiter made.
        if !self.busy() {
            return;
        }
        let notified = self.quiet.notified();
        tokio::pin!(notified);
        // Registered before the check, so that the last request ending in between wakes it.
        notified.as_mut().enable();
        if !self.busy() {
            return;
        }
        let _ = tokio::time::timeout(most, notified).await;
    }
}

impl Drop for Receipt<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_returns_when_the_last_request_ends() {
        let receiving = std::sync::Arc::new(Receiving::default());
        let first = receiving.start();
        let second = receiving.start();
        assert!(receiving.busy());
        let waiter = {
            let receiving = receiving.clone();
            tokio::spawn(async move { receiving.quiet(Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one request is still being received");
        drop(second);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter is woken when intake is quiet")
            .unwrap();
        assert!(!receiving.busy());
    }

    #[tokio::test]
    async fn quiet_gives_up_after_the_longest_yield() {
        let receiving = Receiving::default();
        let _endless = receiving.start();
        let before = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), receiving.quiet(MAX_YIELD))
            .await
            .expect("a lane is never held longer than the longest yield");
        assert!(before.elapsed() >= MAX_YIELD, "{:?}", before.elapsed());
    }

    #[tokio::test]
    async fn quiet_returns_at_once_when_nothing_is_received() {
        let receiving = Receiving::default();
        drop(receiving.start());
        tokio::time::timeout(
            Duration::from_millis(1),
            receiving.quiet(Duration::from_secs(60)),
        )
        .await
        .expect("nothing is being received");
    }
}
