//! Making what the outbox holds. A comment is recorded (with a hidden marker) before it is
//! posted; a retry after an unknown outcome — a timeout, a lost response — first looks for
//! the marker on the issue, so the comment is never posted twice. Posts are spaced out, and a
//! rate limit pauses everything of that installation until GitHub says to go on.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::github::rest::{self, RestError};
use crate::model::markers::marker_comment;
use crate::model::{QuestionId, Timestamp};
use crate::store::{OutboxItem, OutboxKind};
use futures_util::future::BoxFuture;

/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(10 * 60);
/// Attempts before an item is given up on (a day and more of retries).
const MAX_ATTEMPTS: u32 = 200;
/// Items made per pass.
const BATCH: u32 = 20;

/// The tick task that makes due outbox items.
pub struct Outbox;

impl TickTask for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for item in periodic
                .store
                .due_outbox(periodic.clock.now(), BATCH)
                .await?
            {
                match make(periodic, &item).await {
                    Ok(()) => {}
                    Err(e) => failed(periodic, &item, e).await?,
                }
                if !matches!(item.kind, OutboxKind::Reaction | OutboxKind::CloseIssue) {
                    tokio::time::sleep(periodic.posting.spacing).await;
                }
            }
            Ok(())
        })
    }
}

async fn failed(periodic: &Periodic, item: &OutboxItem, error: anyhow::Error) -> Result<()> {
    let now = periodic.clock.now();
    let text = format!("{error:#}");
    if let Some(RestError::RateLimited { retry_after, .. }) = error.downcast_ref::<RestError>() {
        let until = now.plus(*retry_after);
        tracing::warn!(
            outbox = item.id,
            retry_after = retry_after.as_secs(),
            "rate limited; pausing this installation's posts"
        );
        periodic
            .store
            .outbox_pause(item.installation_id, until)
            .await?;
        return periodic
            .store
            .outbox_failed(item.id, &text, Some(until))
            .await;
    }
    let attempts = item.attempts + 1;
    if attempts >= MAX_ATTEMPTS {
        tracing::error!(
            outbox = item.id,
            error = text,
            "giving up on a GitHub effect"
        );
        return periodic.store.outbox_failed(item.id, &text, None).await;
    }
    tracing::warn!(
        outbox = item.id,
        error = text,
        "GitHub effect failed; will retry"
    );
    periodic
        .store
        .outbox_failed(item.id, &text, Some(retry_at(periodic, now, attempts)))
        .await
}

fn retry_at(periodic: &Periodic, now: Timestamp, attempts: u32) -> Timestamp {
    let delay = periodic
        .posting
        .retry_base
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(RETRY_MAX);
    now.plus(delay)
}

async fn make(periodic: &Periodic, item: &OutboxItem) -> Result<()> {
    let app = periodic
        .github
        .app()
        .context("the GitHub App is not configured (GITHUB_APP_ID and key)")?;
    let client = app
        .installation_client(item.installation_id, &item.repository)
        .await?;
    let (repo, issue) = (&item.repository, item.issue_number);
    let github_id = match item.kind {
        OutboxKind::Reaction => {
            rest::react(&client, repo, issue, None, &item.body).await?;
            None
        }
        OutboxKind::CloseIssue => {
            let reason = crate::model::outbox::CloseReason::parse(&item.body);
            rest::close_issue(&client, repo, issue, reason).await?;
            None
        }
        OutboxKind::ReadyForReview => {
            let pull = u64::try_from(item.target_id.context("no pull request to mark ready")?)?;
            if rest::ready_for_review(&client, repo, pull).await? && !item.body.is_empty() {
                match rest::request_review(&client, repo, pull, &item.body).await {
                    Ok(()) => {}
                    // Not a collaborator, or its author: the pull request is ready all the same.
                    Err(RestError::Status {
                        status: 422,
                        message,
                    }) => {
                        tracing::warn!(
                            pull,
                            reviewer = item.body,
                            message,
                            "cannot request a review"
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None
        }
        OutboxKind::CommentReaction => {
            let comment = item
                .target_id
                .context("a comment reaction without its comment")?;
            rest::react(&client, repo, issue, Some(comment), &item.body).await?;
            None
        }
        OutboxKind::Comment | OutboxKind::StatusComment | OutboxKind::Question => {
            let marker = marker_comment(&item.marker);
            // An earlier attempt may have posted it without our hearing back.
            let earlier = if item.attempts > 0 {
                rest::find_own_comment(&client, repo, issue, &marker, app.app_id()).await?
            } else {
                None
            };
            let id = match earlier {
                Some(id) => {
                    tracing::info!(
                        outbox = item.id,
                        comment = id,
                        "found the comment an earlier attempt posted"
                    );
                    id
                }
                None => rest::create_comment(&client, repo, issue, &item.body).await?,
            };
            match (item.kind, item.objective_id, item.target_id) {
                (OutboxKind::StatusComment, Some(objective), _) => {
                    periodic.store.set_status_comment(objective, id).await?;
                    periodic.tick_bell.notify_one();
                }
                (OutboxKind::Question, _, Some(question)) => {
                    periodic
                        .store
                        .set_question_comment(QuestionId(question), id)
                        .await?;
                }
                _ => {}
            }
            Some(id)
        }
    };
    periodic
        .store
        .outbox_done(item.id, github_id, periodic.clock.now())
        .await
}
