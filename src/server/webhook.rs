//! `POST /webhooks/github`: verify the signature, store the delivery in the inbox, answer 202.
//! Nothing else happens here: GitHub waits at most 10 seconds, and an acknowledged delivery
//! must already be durable, so the handler's only job is to get it into the store.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::Engine;
use crate::github::{events, signature};
use crate::metrics::inc;
use crate::model::delivery::NewDelivery;
use crate::model::{DeliveryId, InstallationId, RepositoryId};
use crate::store::Inserted;

/// Header naming the event type.
const EVENT_HEADER: &str = "x-github-event";
/// Header carrying the delivery's unique id.
const DELIVERY_HEADER: &str = "x-github-delivery";
/// Longest delivery id or event name accepted (GitHub's are GUIDs and short words).
const MAX_HEADER_LEN: usize = 100;

pub async fn receive(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept(&engine, &headers, body).await {
        Ok(response) => response,
        Err((status, message)) => {
            inc(&engine.metrics.deliveries_rejected);
            let delivery = header(&headers, DELIVERY_HEADER).unwrap_or("-");
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

async fn accept(engine: &Engine, headers: &HeaderMap, body: Bytes) -> Result<Response, Refusal> {
    let secrets = engine.webhook_secrets();
    if secrets.is_empty() {
        // Not a client error: once the secret is configured, GitHub's retry will succeed.
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "no webhook secret is configured (GITHUB_WEBHOOK_SECRET)".into(),
        ));
    }
    let given = headers
        .get(signature::SIGNATURE_HEADER)
        .map(|v| v.as_bytes());
    signature::verify(&secrets, given, &body)
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    let event = required_header(headers, EVENT_HEADER)?;
    let delivery_id = required_header(headers, DELIVERY_HEADER)?;
    let envelope = events::envelope(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("body is not a webhook payload: {e}"),
        )
    })?;
    let payload = String::from_utf8(body.to_vec())
        .map_err(|_| (StatusCode::BAD_REQUEST, "body is not UTF-8".to_owned()))?;
    let delivery = NewDelivery {
        delivery_id: DeliveryId(delivery_id.to_owned()),
        event: event.to_owned(),
        action: envelope.action,
        installation_id: envelope.installation_id.map(InstallationId),
        repository_id: envelope.repository_id.map(RepositoryId),
        repository: envelope.repository_full_name,
        payload,
        received_at: engine.clock.now(),
    };
    match engine.store.insert_delivery(&delivery).await {
        Ok(Inserted::New(seq)) => {
            inc(&engine.metrics.deliveries_received);
            engine.inbox_bell.notify_one();
            tracing::debug!(
                delivery = delivery_id,
                event,
                seq = seq.0,
                "delivery stored"
            );
            Ok(accepted("queued"))
        }
        Ok(Inserted::Duplicate) => {
            inc(&engine.metrics.deliveries_duplicate);
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
