//! A running session's transcript, live: server-sent events carrying each new batch of
//! lines already rendered, until the session ends. Each follower costs a small task that
//! reads the store twice a second; nothing is kept per line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::{Answer, Web, found, pages, readable};
use crate::agent::ParseState;
use crate::model::{Session, SessionId};

/// Transcript lines a page shows at first (the rest arrive live).
pub const PAGE_LINES: u32 = 5_000;
/// Lines one event carries at most.
const BATCH: u32 = 200;
/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
pub struct LiveQuery {
    /// The last line the page has.
    #[serde(default)]
    after: i64,
}

/// `GET /sessions/{id}/live?after=N`.
pub async fn follow(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(query): Query<LiveQuery>,
) -> Answer {
    let viewer = super::auth::signed_in(&web, &headers).await?;
    let session = found(web.store.session(SessionId(id)).await?)?;
    readable(&web, &viewer, session.objective_id).await?;
    Ok(Sse::new(events(web, session, query.after))
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Follower {
    web: Arc<Web>,
    session: Session,
    after: i64,
    parse: ParseState,
    first: bool,
    done: bool,
}

fn events(
    web: Arc<Web>,
    session: Session,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let follower = Follower {
        web,
        session,
        after,
        parse: ParseState::default(),
        first: true,
        done: false,
    };
    stream::unfold(follower, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            if !f.first {
                tokio::time::sleep(POLL).await;
            }
            f.first = false;
            let lines = match f
                .web
                .store
                .transcript_after(f.session.id, f.after, BATCH)
                .await
            {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "a live transcript cannot be read");
                    continue;
                }
            };
            if let Some((last, _)) = lines.last() {
                f.after = *last;
                let html = pages::transcript(f.session.agent, &lines, &mut f.parse).into_string();
                let event = Event::default()
                    .event("lines")
                    .id(f.after.to_string())
                    .data(html);
                return Some((Ok(event), f));
            }
            let status = match f.web.store.session(f.session.id).await {
                Ok(Some(s)) => s.status,
                _ => continue,
            };
            if status.is_terminal() {
                f.done = true;
                let event = Event::default().event("ended").data(status.as_str());
                return Some((Ok(event), f));
            }
        }
    })
}
