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

use crate::model::pulls::{Mergeable, PullState};

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
    Err(error_of(status, &headers, &json, &text))
}

/// GitHub's error answer as a [`RestError`]: a rate limit (with when to try again) or a
/// plain error status.
fn error_of(status: StatusCode, headers: &http::HeaderMap, json: &Value, text: &str) -> RestError {
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
        return RestError::RateLimited {
            status: status.as_u16(),
            retry_after,
            message,
        };
    }
    RestError::Status {
        status: status.as_u16(),
        message,
    }
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

/// The first comment of an issue that the App `app_id` wrote and that contains `needle`
/// (every page is read). A comment by anyone else is never taken for foreman's, whatever
/// marker it carries.
pub async fn find_own_comment(
    client: &Octocrab,
    repository: &str,
    issue: u64,
    needle: &str,
    app_id: u64,
) -> Result<Option<i64>, RestError> {
    const PER_PAGE: u32 = 100;
    for page in 1.. {
        let path =
            format!("/repos/{repository}/issues/{issue}/comments?per_page={PER_PAGE}&page={page}");
        let comments = call(client, Method::GET, &path, None).await?;
        let list = comments.as_array().cloned().unwrap_or_default();
        if let Some(found) = list.iter().find(|c| {
            c["performed_via_github_app"]["id"].as_u64() == Some(app_id)
                && c["body"].as_str().is_some_and(|b| b.contains(needle))
        }) {
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

/// The App's slug (its bot account is `<slug>[bot]`); `client` authenticates as the App.
pub async fn app_slug(client: &Octocrab) -> Result<String, RestError> {
    let answer = call(client, Method::GET, "/app", None).await?;
    Ok(answer["slug"].as_str().unwrap_or_default().to_owned())
}

/// A user's id, by login (bots included: `<slug>[bot]`).
pub async fn user_id(client: &Octocrab, login: &str) -> Result<u64, RestError> {
    let path = format!("/users/{}", login.replace('[', "%5B").replace(']', "%5D"));
    let answer = call(client, Method::GET, &path, None).await?;
    Ok(answer["id"].as_u64().unwrap_or_default())
}

/// The repository's open issues (and pull requests) with `label`, as GitHub describes them.
pub async fn labelled_issues(
    client: &Octocrab,
    repository: &str,
    label: &str,
) -> Result<Vec<Value>, RestError> {
    let label: String = url::form_urlencoded::byte_serialize(label.as_bytes()).collect();
    let path = format!("/repos/{repository}/issues?state=open&labels={label}&per_page=100");
    let answer = call(client, Method::GET, &path, None).await?;
    Ok(answer.as_array().cloned().unwrap_or_default())
}

/// The latest time `label` was added to an issue: the event's id, who added it and when.
/// Events come oldest first, so every page is read (an issue can have hundreds).
pub async fn last_labelled(
    client: &Octocrab,
    repository: &str,
    number: u64,
    label: &str,
) -> Result<Option<(i64, Value, String)>, RestError> {
    const PER_PAGE: usize = 100;
    let mut latest = None;
    for page in 1.. {
        let path =
            format!("/repos/{repository}/issues/{number}/events?per_page={PER_PAGE}&page={page}");
        let answer = call(client, Method::GET, &path, None).await?;
        let events = answer.as_array().cloned().unwrap_or_default();
        let last = events.len() < PER_PAGE;
        latest = events
            .iter()
            .filter(|e| {
                e["event"] == "labeled"
                    && e["label"]["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(label))
            })
            .filter_map(|e| {
                Some((
                    e["id"].as_i64()?,
                    e["actor"].clone(),
                    e["created_at"].as_str()?.to_owned(),
                ))
            })
            .next_back()
            .or(latest);
        if last {
            break;
        }
    }
    Ok(latest)
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
    Ok(issue_now(&call(client, Method::GET, &path, None).await?))
}

/// What an issue's JSON says of it now.
pub fn issue_now(answer: &Value) -> IssueNow {
    IssueNow {
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
    }
}

/// Closes an issue, as completed or as not planned.
pub async fn close_issue(
    client: &Octocrab,
    repository: &str,
    number: u64,
    reason: crate::model::outbox::CloseReason,
) -> Result<(), RestError> {
    let path = format!("/repos/{repository}/issues/{number}");
    let body = json!({ "state": "closed", "state_reason": reason.as_str() });
    call(client, Method::PATCH, &path, Some(&body)).await?;
    Ok(())
}

/// Marks a draft pull request ready for review (GraphQL: REST cannot). A pull request that
/// is not a draft is left as it is. False when it is closed.
pub async fn ready_for_review(
    client: &Octocrab,
    repository: &str,
    number: u64,
) -> Result<bool, RestError> {
    let path = format!("/repos/{repository}/pulls/{number}");
    let pull = call(client, Method::GET, &path, None).await?;
    if pull["state"] != "open" {
        return Ok(false);
    }
    if pull["draft"] != true {
        return Ok(true);
    }
    let node = pull["node_id"].as_str().unwrap_or_default();
    let query = json!({
        "query": "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) \
                  { pullRequest { number isDraft } } }",
        "variables": { "id": node },
    });
    let answer = call(client, Method::POST, "/graphql", Some(&query)).await?;
    match answer["errors"].as_array().and_then(|e| e.first()) {
        Some(error) => Err(RestError::Status {
            status: 200,
            message: format!(
                "markPullRequestReadyForReview: {}",
                error["message"].as_str().unwrap_or("failed")
            ),
        }),
        None => Ok(true),
    }
}

/// Asks `login` to review a pull request.
pub async fn request_review(
    client: &Octocrab,
    repository: &str,
    number: u64,
    login: &str,
) -> Result<(), RestError> {
    let path = format!("/repos/{repository}/pulls/{number}/requested_reviewers");
    let body = json!({ "reviewers": [login] });
    call(client, Method::POST, &path, Some(&body)).await?;
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

/// What foreman needs to know about a pull request right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullNow {
    pub state: PullState,
    pub head_sha: String,
    /// `None` while GitHub is still computing it.
    pub mergeable: Option<Mergeable>,
    /// Who merged it (GitHub says), or closed it (the webhook's sender), when known.
    pub by: Option<String>,
}

/// A pull request as it stands now.
pub async fn pull(client: &Octocrab, repository: &str, number: u64) -> Result<PullNow, RestError> {
    let path = format!("/repos/{repository}/pulls/{number}");
    Ok(pull_now(&call(client, Method::GET, &path, None).await?))
}

/// What a pull request's JSON says of it.
pub fn pull_now(answer: &Value) -> PullNow {
    let state = if answer["merged"] == true || !answer["merged_at"].is_null() {
        PullState::Merged
    } else if answer["state"] == "closed" {
        PullState::Closed
    } else {
        PullState::Open
    };
    let mergeable = match (
        answer["mergeable"].as_bool(),
        answer["mergeable_state"].as_str(),
    ) {
        (_, Some("dirty")) | (Some(false), _) => Some(Mergeable::Conflicting),
        (Some(true), _) => Some(Mergeable::Clean),
        _ => None,
    };
    PullNow {
        state,
        head_sha: answer["head"]["sha"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        mergeable,
        by: answer["merged_by"]["login"].as_str().map(str::to_owned),
    }
}

/// The answer to a conditional GET.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional {
    /// Unchanged since the ETag given (GitHub does not count this against the rate limit).
    NotModified,
    /// The resource, and its ETag for next time.
    Changed(Value, Option<String>),
}

/// A GET that answers "not modified" when the resource still has `etag`.
pub async fn get_if_changed(
    client: &Octocrab,
    path: &str,
    etag: Option<&str>,
) -> Result<Conditional, RestError> {
    let mut headers = http::HeaderMap::new();
    if let Some(value) = etag.and_then(|e| http::HeaderValue::from_str(e).ok()) {
        headers.insert(http::header::IF_NONE_MATCH, value);
    }
    let transport = |e: octocrab::Error| RestError::Transport(e.to_string());
    let response = client
        ._get_with_headers(path, Some(headers))
        .await
        .map_err(transport)?;
    if response.status() == StatusCode::NOT_MODIFIED {
        return Ok(Conditional::NotModified);
    }
    let status = response.status();
    let headers = response.headers().clone();
    let etag = headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = client.body_to_string(response).await.map_err(transport)?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(Conditional::Changed(json, etag));
    }
    Err(error_of(status, &headers, &json, &text))
}

/// The check runs of a commit (the first hundred, which is every one in practice).
pub async fn check_runs(
    client: &Octocrab,
    repository: &str,
    sha: &str,
) -> Result<Vec<crate::model::pulls::CheckRunView>, RestError> {
    let path = format!("/repos/{repository}/commits/{sha}/check-runs?per_page=100");
    let answer = call(client, Method::GET, &path, None).await?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Ok(answer["check_runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .map(|r| crate::model::pulls::CheckRunView {
                    name: text(&r["name"]).unwrap_or_default(),
                    completed: r["status"] == "completed",
                    conclusion: r["conclusion"]
                        .as_str()
                        .map(crate::model::pulls::Conclusion::parse),
                    summary: [text(&r["output"]["title"]), text(&r["output"]["summary"])]
                        .into_iter()
                        .flatten()
                        .reduce(|a, b| format!("{a}: {b}")),
                    details_url: text(&r["details_url"]).or_else(|| text(&r["html_url"])),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// One review comment (a comment on a line of a pull request's diff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewComment {
    pub id: i64,
    pub review_id: Option<i64>,
    pub user: String,
    pub path: String,
    pub line: Option<i64>,
    pub body: String,
    pub diff_hunk: Option<String>,
}

/// The review comments of a pull request (the first hundred).
pub async fn review_comments(
    client: &Octocrab,
    repository: &str,
    number: u64,
) -> Result<Vec<ReviewComment>, RestError> {
    let path = format!("/repos/{repository}/pulls/{number}/comments?per_page=100");
    let answer = call(client, Method::GET, &path, None).await?;
    Ok(answer
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| ReviewComment {
                    id: c["id"].as_i64().unwrap_or_default(),
                    review_id: c["pull_request_review_id"].as_i64(),
                    user: c["user"]["login"].as_str().unwrap_or_default().to_owned(),
                    path: c["path"].as_str().unwrap_or_default().to_owned(),
                    line: c["line"].as_i64().or_else(|| c["original_line"].as_i64()),
                    body: c["body"].as_str().unwrap_or_default().to_owned(),
                    diff_hunk: c["diff_hunk"].as_str().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default())
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
