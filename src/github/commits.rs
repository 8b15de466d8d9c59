//! Commits made through GitHub's Git database API, which GitHub signs when an App makes
//! them: blobs, a tree on the parent's, a commit, and the branch moved to it.

use base64::Engine as _;
use http::Method;
use octocrab::Octocrab;
use serde_json::{Value, json};

use crate::github::rest::{RestError, call};

/// Creates a `what` (`blobs`, `trees`, `commits`) in the repository's Git database; returns
/// its id.
async fn create(
    client: &Octocrab,
    repository: &str,
    what: &str,
    body: &Value,
) -> Result<String, RestError> {
    let path = format!("/repos/{repository}/git/{what}");
    let answer = call(client, Method::POST, &path, Some(body)).await?;
    answer["sha"].as_str().map(str::to_owned).ok_or_else(|| {
        RestError::Transport(format!("GitHub's answer to creating {what} has no sha"))
    })
}

/// Stores a file's bytes; returns the blob's id.
pub async fn create_blob(
    client: &Octocrab,
    repository: &str,
    bytes: &[u8],
) -> Result<String, RestError> {
    let body = json!({
        "content": base64::engine::general_purpose::STANDARD.encode(bytes),
        "encoding": "base64",
    });
    create(client, repository, "blobs", &body).await
}

/// One entry of a new tree: `sha` `None` deletes the path.
pub struct Entry<'a> {
    pub path: &'a str,
    pub mode: &'a str,
    pub sha: Option<String>,
}

/// A tree: `base_tree` with `entries` applied; returns its id.
pub async fn create_tree(
    client: &Octocrab,
    repository: &str,
    base_tree: &str,
    entries: &[Entry<'_>],
) -> Result<String, RestError> {
    let tree: Vec<Value> = entries
        .iter()
        .map(|e| {
            let kind = if e.mode == "160000" { "commit" } else { "blob" };
            json!({"path": e.path, "mode": e.mode, "type": kind, "sha": e.sha})
        })
        .collect();
    let body = json!({"base_tree": base_tree, "tree": tree});
    create(client, repository, "trees", &body).await
}

/// A commit of `tree` on `parents`, authored by the App (so GitHub signs it); returns its id.
pub async fn create_commit(
    client: &Octocrab,
    repository: &str,
    message: &str,
    tree: &str,
    parents: &[String],
) -> Result<String, RestError> {
    let body = json!({"message": message, "tree": tree, "parents": parents});
    create(client, repository, "commits", &body).await
}

/// Points `branch` at `sha`: creates it when `exists` is false, else moves it (GitHub
/// refuses a move that is not a fast-forward unless `force`).
pub async fn set_branch(
    client: &Octocrab,
    repository: &str,
    branch: &str,
    sha: &str,
    exists: bool,
    force: bool,
) -> Result<(), RestError> {
    if exists {
        let path = format!("/repos/{repository}/git/refs/heads/{branch}");
        let body = json!({"sha": sha, "force": force});
        call(client, Method::PATCH, &path, Some(&body)).await?;
    } else {
        let path = format!("/repos/{repository}/git/refs");
        let body = json!({"ref": format!("refs/heads/{branch}"), "sha": sha});
        call(client, Method::POST, &path, Some(&body)).await?;
    }
    Ok(())
}
