//! The REST calls foreman makes about issues and comments, with GitHub's errors made
//! explicit — above all its rate limits, whose `Retry-After` tells when to try again.
//!
//! These go through octocrab's raw requests so that status and headers are visible (its
//! typed calls drop the headers a rate limit is announced in, and its permission model
//! rejects the values GitHub really returns).

use std::time::Duration;

use http::{Method, StatusCode};
use octocrab::Octocrab;
use serde_json::{Value, json};

/// How long to wait on a rate limit that does not say (GitHub: "at least one minute").
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest wait a rate limit is taken at its word for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// GitHub asked to slow down: try again after this long.
    #[error("GitHub rate limit ({status}): retry after {}s: {message}", retry_after.as_secs())]
    RateLimited {
        status: u16,
        retry_after: Duration,
        message: String,
    },
    /// GitHub answered with an error.
    #[error("GitHub answered {status}: {message}")]
    Status { status: u16, message: String },
    /// No answer (network, timeout, unreadable body).
    #[error("GitHub could not be reached: {0}")]
    Transport(String),
}

impl RestError {
    /// The HTTP status, when GitHub answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::RateLimited { status, .. } | RestError::Status { status, .. } => {
                Some(*status)
            }
            RestError::Transport(_) => None,
        }
    }
}

/// Sends one request and returns the JSON body (`Null` when empty).
pub async fn call(
    client: &Octocrab,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, RestError> {
    let transport = |e: octocrab::Error| RestError::Transport(e.to_string());
    let response = match method {
        Method::GET => client._get(path).await,
        Method::POST => client._post(path, body).await,
        Method::PATCH => client._patch(path, body).await,
        Method::PUT => client._put(path, body).await,
        Method::DELETE => client._delete(path, body).await,
        other => return Err(RestError::Transport(format!("unsupported method {other}"))),
    }
    .map_err(transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = client.body_to_string(response).await.map_err(transport)?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    let message = json["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(200).collect());
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (header("retry-after").is_some() || header("x-ratelimit-remaining") == Some("0")));
    if limited {
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .or_else(|| {
                let reset: u64 = header("x-ratelimit-reset")?.trim().parse().ok()?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                Some(Duration::from_secs(reset.saturating_sub(now)))
            })
            .unwrap_or(DEFAULT_RETRY_AFTER)
            .min(MAX_RETRY_AFTER);
        return Err(RestError::RateLimited {
            status: status.as_u16(),
            retry_after,
            message,
        });
    }
    Err(RestError::Status {
        status: status.as_u16(),
        message,
    })
}

/// Posts a comment on an issue or pull request; returns its id.
pub async fn create_comment(
    client: &Octocrab,
    repository: &str,
    issue: u64,
    body: &str,
) -> Result<i64, RestError> {
    let path = format!("/repos/{repository}/issues/{issue}/comments");
    let created = call(client, Method::POST, &path, Some(&json!({ "body": body }))).await?;
    id_of(&created)
}

/// Replaces a comment's body.
pub async fn edit_comment(
    client: &Octocrab,
    repository: &str,
    comment: i64,
    body: &str,
) -> Result<(), RestError> {
    let path = format!("/repos/{repository}/issues/comments/{comment}");
    call(client, Method::PATCH, &path, Some(&json!({ "body": body }))).await?;
    Ok(())
}

/// The comments of an issue that contain `needle`, oldest first (every page is read).
pub async fn find_comment(
    client: &Octocrab,
    repository: &str,
    issue: u64,
    needle: &str,
) -> Result<Option<i64>, RestError> {
    const PER_PAGE: u32 = 100;
    for page in 1.. {
        let path =
            format!("/repos/{repository}/issues/{issue}/comments?per_page={PER_PAGE}&page={page}");
        let comments = call(client, Method::GET, &path, None).await?;
        let list = comments.as_array().cloned().unwrap_or_default();
        if let Some(found) = list
            .iter()
            .find(|c| c["body"].as_str().is_some_and(|b| b.contains(needle)))
        {
            return id_of(found).map(Some);
        }
        if list.len() < PER_PAGE as usize {
            break;
        }
    }
    Ok(None)
}

/// Adds a reaction (`eyes`, `rocket`, `confused`, `+1`…) to an issue, or to one of its
/// comments when `comment` is given. Reacting twice is harmless.
pub async fn react(
    client: &Octocrab,
    repository: &str,
    issue: u64,
    comment: Option<i64>,
    content: &str,
) -> Result<(), RestError> {
    let path = match comment {
        Some(id) => format!("/repos/{repository}/issues/comments/{id}/reactions"),
        None => format!("/repos/{repository}/issues/{issue}/reactions"),
    };
    call(
        client,
        Method::POST,
        &path,
        Some(&json!({ "content": content })),
    )
    .await?;
    Ok(())
}

pub use crate::model::repo_config::Permission;

/// A user's role on a repository. Someone GitHub does not know (404) has none.
pub async fn permission(
    client: &Octocrab,
    repository: &str,
    login: &str,
) -> Result<Permission, RestError> {
    let path = format!("/repos/{repository}/collaborators/{login}/permission");
    match call(client, Method::GET, &path, None).await {
        // `role_name` tells maintain and triage apart; `permission` folds them into write
        // and read.
        Ok(answer) => Ok(answer["role_name"]
            .as_str()
            .and_then(Permission::parse)
            .or_else(|| answer["permission"].as_str().and_then(Permission::parse))
            .unwrap_or(Permission::None)),
        Err(RestError::Status { status: 404, .. }) => Ok(Permission::None),
        Err(e) => Err(e),
    }
}

/// A file's text on a branch, or `None` when there is no such file.
pub async fn file(
    client: &Octocrab,
    repository: &str,
    path: &str,
    branch: &str,
) -> Result<Option<String>, RestError> {
    use base64::Engine as _;
    let route = format!("/repos/{repository}/contents/{path}?ref={branch}");
    match call(client, Method::GET, &route, None).await {
        Ok(answer) => {
            let encoded: String = answer["content"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| RestError::Transport(format!("undecodable file content: {e}")))?;
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Err(RestError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What foreman needs to know about an issue right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueNow {
    pub open: bool,
    pub labels: Vec<String>,
    pub is_pull_request: bool,
}

/// An issue as it stands now (not as an old event described it).
pub async fn issue(
    client: &Octocrab,
    repository: &str,
    number: u64,
) -> Result<IssueNow, RestError> {
    let path = format!("/repos/{repository}/issues/{number}");
    let answer = call(client, Method::GET, &path, None).await?;
    Ok(IssueNow {
        open: answer["state"] == "open",
        labels: answer["labels"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        is_pull_request: !answer["pull_request"].is_null(),
    })
}

/// Closes an issue as completed.
pub async fn close_issue(
    client: &Octocrab,
    repository: &str,
    number: u64,
) -> Result<(), RestError> {
    let path = format!("/repos/{repository}/issues/{number}");
    let body = json!({ "state": "closed", "state_reason": "completed" });
    call(client, Method::PATCH, &path, Some(&body)).await?;
    Ok(())
}

/// The repository's default branch.
pub async fn default_branch(client: &Octocrab, repository: &str) -> Result<String, RestError> {
    let answer = call(client, Method::GET, &format!("/repos/{repository}"), None).await?;
    Ok(answer["default_branch"]
        .as_str()
        .unwrap_or("main")
        .to_owned())
}

fn id_of(value: &Value) -> Result<i64, RestError> {
    value["id"]
        .as_i64()
        .ok_or_else(|| RestError::Transport("GitHub's answer has no id".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_order_and_parse_githubs_words() {
        assert!(Permission::Admin > Permission::Maintain && Permission::Write > Permission::Triage);
        assert_eq!(Permission::parse("push"), Some(Permission::Write));
        assert_eq!(Permission::parse("pull"), Some(Permission::Read));
        assert_eq!(Permission::parse("owner"), None);
    }
}
