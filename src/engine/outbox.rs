//! Posting what the outbox holds. A comment is recorded (with a hidden marker) before it is
//! posted; a retry after an unknown outcome — a timeout, a lost response — first looks for
//! the marker on the issue, so the comment is never posted twice.

use std::time::Duration;

use anyhow::{Context, Result};

use super::Engine;
use super::tick::{BoxFuture, TickTask};
use crate::github::app::describe;
use crate::model::Timestamp;
use crate::store::OutboxItem;

/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(10 * 60);
/// Items posted per pass.
const BATCH: u32 = 20;
/// Comments fetched per page when looking for a marker.
const PAGE: u8 = 100;

/// A new unique marker.
pub fn new_marker() -> String {
    use rand::RngExt;
    let bytes: [u8; 12] = rand::rng().random();
    hex::encode(bytes)
}

/// The hidden HTML comment that carries a marker in a GitHub comment.
pub fn marker_comment(marker: &str) -> String {
    format!("<!-- foreman:{marker} -->")
}

/// The tick task that posts due outbox items.
pub struct Outbox;

impl TickTask for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn run<'a>(&'a self, engine: &'a Engine) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for item in engine.store.due_outbox(engine.clock.now(), BATCH).await? {
                if let Err(e) = post(engine, &item).await {
                    let retry_at = retry_at(engine, item.attempts + 1);
                    let error = format!("{e:#}");
                    tracing::warn!(outbox = item.id, error, "posting failed; will retry");
                    engine
                        .store
                        .outbox_failed(item.id, &error, Some(retry_at))
                        .await?;
                }
                tokio::time::sleep(engine.posting.spacing).await;
            }
            Ok(())
        })
    }
}

fn retry_at(engine: &Engine, attempts: u32) -> Timestamp {
    let delay = engine
        .posting
        .retry_base
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(RETRY_MAX);
    engine.clock.now().plus(delay)
}

async fn post(engine: &Engine, item: &OutboxItem) -> Result<()> {
    let app = engine
        .github()
        .context("the GitHub App is not configured (GITHUB_APP_ID and key)")?;
    let client = app.installation_client(item.installation_id).await?;
    let (owner, repo) = item
        .repository
        .split_once('/')
        .with_context(|| format!("`{}` is not owner/name", item.repository))?;
    let issues = client.issues(owner, repo);
    if item.attempts > 0 {
        // An earlier attempt may have posted it without our hearing back.
        let marker = marker_comment(&item.marker);
        let mut page = issues
            .list_comments(item.issue_number)
            .per_page(PAGE)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list comments: {}", describe(&e)))?;
        loop {
            if let Some(found) = page
                .items
                .iter()
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(&marker)))
            {
                tracing::info!(
                    outbox = item.id,
                    comment = found.id.0,
                    "found the comment an earlier attempt posted"
                );
                return engine
                    .store
                    .outbox_done(item.id, found.id.0 as i64, engine.clock.now())
                    .await;
            }
            match client
                .get_page::<octocrab::models::issues::Comment>(&page.next)
                .await
                .map_err(|e| anyhow::anyhow!("cannot list comments: {}", describe(&e)))?
            {
                Some(next) => page = next,
                None => break,
            }
        }
    }
    let comment = issues
        .create_comment(item.issue_number, &item.body)
        .await
        .map_err(|e| anyhow::anyhow!("cannot post the comment: {}", describe(&e)))?;
    engine
        .store
        .outbox_done(item.id, comment.id.0 as i64, engine.clock.now())
        .await
}
