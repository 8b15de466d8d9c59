//! Webhook deliveries in the inbox: their states and the retry policy, as pure functions.

use std::time::Duration;

use super::{DeliveryId, DeliverySeq, InstallationId, RepositoryId, Timestamp};

/// Where a stored delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Stored, waiting to be handled (or waiting for its retry).
    Pending,
    /// Handled; its effects are in the store.
    Processed,
    /// Recorded but not acted on (an event or action foreman does not handle).
    Skipped,
    /// Failed too often; parked until someone replays it.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Processed => "processed",
            DeliveryStatus::Skipped => "skipped",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "processed" => DeliveryStatus::Processed,
            "skipped" => DeliveryStatus::Skipped,
            "dead" => DeliveryStatus::Dead,
            _ => return None,
        })
    }
}

/// A delivery as the HTTP ingress stores it.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: DeliveryId,
    pub event: String,
    pub action: Option<String>,
    pub installation_id: Option<InstallationId>,
    pub repository_id: Option<RepositoryId>,
    pub repository: Option<String>,
    pub payload: String,
    pub received_at: Timestamp,
}

impl NewDelivery {
    /// The key deliveries are serialised on: one repository's events are handled in arrival
    /// order, one at a time; different repositories proceed in parallel. Events without a
    /// repository queue per installation, and the rest on one shared queue.
    pub fn queue_key(&self) -> String {
        match (self.repository_id, self.installation_id) {
            (Some(repo), _) => format!("repo:{repo}"),
            (None, Some(installation)) => format!("installation:{installation}"),
            (None, None) => "global".to_owned(),
        }
    }
}

/// A delivery claimed for processing.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub seq: DeliverySeq,
    /// The queue it was taken from (see [`NewDelivery::queue_key`]).
    pub queue_key: String,
    pub delivery_id: DeliveryId,
    pub event: String,
    pub action: Option<String>,
    /// Its body: read when it is claimed alone, or by [`crate::store::Store::load_payload`]
    /// when it is about to be handled, for deliveries claimed several at a time.
    pub payload: String,
    /// How long the body is.
    pub payload_bytes: usize,
    pub received_at: Timestamp,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// A delivery handled without effects (skipped) whose mark is written later, with the next
/// delivery of its queue that has effects or with the next claim: one transaction for many.
/// Until then it is still pending under its claim, so after a crash it is handled again,
/// before anything that came after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub seq: DeliverySeq,
    /// Why it was skipped.
    pub note: String,
}

/// A delivery as listed for operators.
#[derive(Debug, Clone)]
pub struct DeliverySummary {
    pub seq: DeliverySeq,
    pub delivery_id: DeliveryId,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub received_at: Timestamp,
    pub last_error: Option<String>,
}

/// The longest wait between two attempts of a failing delivery.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(10 * 60);

/// What happens to a delivery whose handler failed on attempt `attempts` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Give up: park it as dead.
    Dead,
}

/// Exponential backoff from `base`, doubling per attempt and capped at [`MAX_RETRY_DELAY`];
/// dead once `attempts` reaches `max_attempts`.
pub fn retry_decision(
    attempts: u32,
    max_attempts: u32,
    base: Duration,
    now: Timestamp,
) -> RetryDecision {
    if attempts >= max_attempts {
        return RetryDecision::Dead;
    }
    let exponent = attempts.saturating_sub(1).min(20);
    let delay = base.saturating_mul(1 << exponent).min(MAX_RETRY_DELAY);
    RetryDecision::RetryAt(now.plus(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_then_gives_up() {
        let now = Timestamp(0);
        let base = Duration::from_secs(2);
        assert_eq!(
            retry_decision(1, 5, base, now),
            RetryDecision::RetryAt(Timestamp(2_000))
        );
        assert_eq!(
            retry_decision(2, 5, base, now),
            RetryDecision::RetryAt(Timestamp(4_000))
        );
        assert_eq!(
            retry_decision(4, 5, base, now),
            RetryDecision::RetryAt(Timestamp(16_000))
        );
        assert_eq!(retry_decision(5, 5, base, now), RetryDecision::Dead);
        let capped = retry_decision(19, 40, base, now);
        assert_eq!(capped, RetryDecision::RetryAt(now.plus(MAX_RETRY_DELAY)));
    }

    #[test]
    fn queue_keys_prefer_repository_then_installation() {
        let mut d = NewDelivery {
            delivery_id: DeliveryId("d".into()),
            event: "issues".into(),
            action: None,
            installation_id: Some(InstallationId(7)),
            repository_id: Some(RepositoryId(42)),
            repository: Some("o/r".into()),
            payload: "{}".into(),
            received_at: Timestamp(0),
        };
        assert_eq!(d.queue_key(), "repo:42");
        d.repository_id = None;
        assert_eq!(d.queue_key(), "installation:7");
        d.installation_id = None;
        assert_eq!(d.queue_key(), "global");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Processed,
            DeliveryStatus::Skipped,
            DeliveryStatus::Dead,
        ] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("bogus"), None);
    }
}
