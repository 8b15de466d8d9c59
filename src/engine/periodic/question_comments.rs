//! The comments of questions that have closed are edited to say how — answered, and by whom,
//! or closed because the work they were for ended.

use anyhow::{Context, Result};

use crate::engine::Engine;
use crate::engine::objective::questions::render_closed;
use crate::engine::periodic::tick::{BoxFuture, TickTask};
use crate::github::rest;
use crate::model::question::Question;

/// Edits the comments of questions that have closed to say how.
pub struct QuestionComments;

impl TickTask for QuestionComments {
    fn name(&self) -> &'static str {
        "question-comments"
    }

    fn run<'a>(&'a self, engine: &'a Engine) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for question in engine.store.questions_to_close_on_github().await? {
                if let Err(e) = close_comment(engine, &question).await {
                    tracing::warn!(question = %question.id, error = %format!("{e:#}"), "cannot update a question's comment");
                }
            }
            Ok(())
        })
    }
}

async fn close_comment(engine: &Engine, question: &Question) -> Result<()> {
    let objective = engine
        .store
        .objective(question.objective_id)
        .await?
        .context("the question's objective is gone")?;
    let (Some(installation), Some(comment)) = (objective.installation_id, question.comment_id)
    else {
        return Ok(());
    };
    let app = engine
        .github()
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
            engine.store.question_comment_final(question.id).await
        }
        Err(e) => Err(e.into()),
    }
}
