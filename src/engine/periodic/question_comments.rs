//! The comments of questions that have closed are edited to say how — answered, and by whom,
//! or closed because the work they were for ended.

use anyhow::{Context, Result};
use std::sync::Arc;

use crate::engine::objective::questions::render_closed;
use crate::engine::periodic::Periodic;
use crate::engine::periodic::tick::TickTask;
use crate::github::rest;
use crate::model::question::Question;
use futures_util::future::BoxFuture;

/// Edits the comments of questions that have closed to say how.
pub struct QuestionComments;

impl TickTask for QuestionComments {
    fn name(&self) -> &'static str {
        "question-comments"
    }

    fn run<'a>(&'a self, periodic: &'a Arc<Periodic>) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for question in periodic.store.questions_to_close_on_github().await? {
                if let Err(e) = close_comment(periodic, &question).await {
                    tracing::warn!(question = %question.id, error = %format!("{e:#}"), "cannot update a question's comment");
                }
            }
            Ok(())
        })
    }
}

async fn close_comment(periodic: &Periodic, question: &Question) -> Result<()> {
    let objective = periodic
        .store
        .objective(question.objective_id)
        .await?
        .context("the question's objective is gone")?;
    let (Some(installation), Some(comment)) = (objective.installation_id, question.comment_id)
    else {
        return Ok(());
    };
    let app = periodic
        .github
        .app()
        .context("the GitHub App is not configured")?;
    let client = app
        .installation_client(installation, &objective.repository)
        .await?;
    match rest::edit_comment(
        &client,
        &objective.repository,
        comment,
        &render_closed(question, &objective.marker_nonce),
    )
    .await
    {
        Ok(()) | Err(rest::RestError::Status { status: 404, .. }) => {
            periodic.store.question_comment_final(question.id).await
        }
        Err(e) => Err(e.into()),
    }
}
