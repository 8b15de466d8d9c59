//! `POST /webhooks/github`: verify the signature, store the delivery in the inbox, answer 202.
//! Nothing else happens here: GitHub waits at most 10 seconds, and an acknowledged delivery
//! must already be durable, so the handler's only job is to get it into the store.
//!
//! Anyone can reach this route, so what can be refused is refused before the body is read
//! (no secret, no well-formed signature header, missing headers, a declared length over the
//! limit). Bodies being read at once share a memory budget ([`Ingress::budget`], reserved by
//! declared length, in KiB); each must arrive within a deadline, into one buffer of its
//! declared size that is handed on, never copied.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::engine::ingest::Ingest;
use crate::github::{events, signature};
use crate::metrics::inc;
use crate::model::DeliveryId;
use crate::store::Inserted;

/// Header naming the event type.
const EVENT_HEADER: &str = "x-github-event";
/// Header carrying the delivery's unique id.
const DELIVERY_HEADER: &str = "x-github-delivery";
/// Longest delivery id or event name accepted (GitHub's are GUIDs and short words).
const MAX_HEADER_LEN: usize = 100;
/// How long a delivery waits for room in the budget to read its body before it is told to
/// come back (503).
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// The webhook route's state: where deliveries go in, and the limits on reading bodies.
pub struct Ingress {
    pub ingest: Arc<Ingest>,
    /// KiB of bodies that may be being read at once.
    pub budget: Semaphore,
    /// The longest a body may take to arrive.
    pub read_timeout: Duration,
    /// The largest body accepted.
    pub max_body: usize,
}

pub async fn receive(State(ingress): State<Arc<Ingress>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let ingest = &ingress.ingest;
    match accept(&ingress, headers, body).await {
        Ok(response) => response,
        Err((status, message)) => {
            inc(&ingest.metrics.deliveries_rejected);
            let delivery = header(headers, DELIVERY_HEADER).unwrap_or("-");
            tracing::warn!(
                status = status.as_u16(),
                delivery,
                "webhook refused: {message}"
            );
            (status, Json(json!({ "error": message }))).into_response()
        }
    }
}

type Refusal = (StatusCode, String);

async fn accept(ingress: &Ingress, headers: &HeaderMap, body: Body) -> Result<Response, Refusal> {
    let ingest = &ingress.ingest;
    let secrets = ingest.github.webhook_secrets();
    if secrets.is_empty() {
        // Not a client error: once the secret is configured, GitHub's retry will succeed.
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "no webhook secret is configured (GITHUB_WEBHOOK_SECRET)".into(),
        ));
    }
    let digest = signature::digest(
        headers
            .get(signature::SIGNATURE_HEADER)
            .map(|v| v.as_bytes()),
    )
    .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    let event = required_header(headers, EVENT_HEADER)?;
    let delivery_id = required_header(headers, DELIVERY_HEADER)?;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > ingress.max_body) {
        return Err(too_large(ingress.max_body));
    }
    let body = {
        // Room for what it says it sends (a body that does not say may be as large as any).
        let kib = declared.unwrap_or(ingress.max_body).div_ceil(1024).max(1);
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        let _room = tokio::time::timeout(BUDGET_WAIT, ingress.budget.acquire_many(kib))
            .await
            .map_err(|_| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many deliveries are being received; redeliver it later".to_owned(),
                )
            })?
            .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned()))?;
        tokio::time::timeout(
            ingress.read_timeout,
            read_body(body, declared.unwrap_or(0), ingress.max_body),
        )
        .await
        .map_err(|_| {
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {}s",
                    ingress.read_timeout.as_secs()
                ),
            )
        })??
    };
    signature::verify_digest(&secrets, &digest, &body)
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    // Counted from here to its answer, so that processing yields to it (see `receiving`);
    // forged requests are not counted: a flood of them does not slow processing.
    let _receipt = ingest.receiving.start();
    let envelope = events::envelope(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("body is not a webhook payload: {e}"),
        )
    })?;
    let payload = String::from_utf8(body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "body is not UTF-8".to_owned()))?;
    let delivery = envelope.into_delivery(
        DeliveryId(delivery_id.to_owned()),
        event,
        payload,
        ingest.clock.now(),
    );
    match ingest.store.insert_delivery(delivery).await {
        Ok(Inserted::New(seq)) => {
            inc(&ingest.metrics.deliveries_received);
            ingest.inbox_bell.notify_one();
            tracing::debug!(
                delivery = delivery_id,
                event,
                seq = seq.0,
                "delivery stored"
            );
            Ok(accepted("queued"))
        }
        Ok(Inserted::Duplicate) => {
            inc(&ingest.metrics.deliveries_duplicate);
            tracing::info!(
                delivery = delivery_id,
                event,
                "redelivery of a stored delivery; not processed again"
            );
            Ok(accepted("duplicate"))
        }
        // Never acknowledge what was not stored: 503 makes GitHub (or an operator) redeliver.
        Err(e) => {
            tracing::error!(delivery = delivery_id, error = %format!("{e:#}"), "cannot store delivery");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the delivery could not be stored; redeliver it later".to_owned(),
            ))
        }
    }
}

/// Reads a body of at most `max` bytes into one buffer (of the declared size, when declared).
async fn read_body(mut body: Body, declared: usize, max: usize) -> Result<Vec<u8>, Refusal> {
    let mut buffer = Vec::with_capacity(declared.min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > max {
                return Err(too_large(max));
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer)
}

fn too_large(max: usize) -> Refusal {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {} MiB", max >> 20),
    )
}

fn accepted(status: &str) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "status": status }))).into_response()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn required_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Refusal> {
    let value = header(headers, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| (StatusCode::BAD_REQUEST, format!("missing {name} header")))?;
    let plausible = value.len() <= MAX_HEADER_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !plausible {
        return Err((StatusCode::BAD_REQUEST, format!("malformed {name} header")));
    }
    Ok(value)
}
