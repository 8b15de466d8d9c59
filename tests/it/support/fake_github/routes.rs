//! The HTTP side: requests and replies, the server, ETags, rate limits, and the routing of
//! each path to its handler.

use super::*;

// ---------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------

/// A parsed request, handed to the routes.
pub(super) struct Req<'a> {
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: Option<&'a Value>,
}

impl Req<'_> {
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn body_str(&self, field: &str) -> Option<&str> {
        self.body.and_then(|b| b.get(field)).and_then(Value::as_str)
    }
}

/// A response before serialization.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Option<Value>,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub(super) fn ok(body: Value) -> Self {
        Reply::json(200, body)
    }

    pub(super) fn created(body: Value) -> Self {
        Reply::json(201, body)
    }

    pub(super) fn no_content() -> Self {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    pub(super) fn error(status: u16, message: &str) -> Self {
        Reply::json(
            status,
            json!({ "message": message, "documentation_url": DOCS_URL, "status": status.to_string() }),
        )
    }

    pub(super) fn not_found() -> Self {
        Reply::error(404, "Not Found")
    }

    pub(super) fn bad_credentials() -> Self {
        Reply::error(401, "Bad credentials")
    }

    /// 422 Validation Failed with GitHub's `errors` array.
    pub(super) fn invalid(resource: &str, field: &str, code: &str, message: Option<&str>) -> Self {
        let mut error = json!({ "resource": resource, "field": field, "code": code });
        if let Some(message) = message {
            error["message"] = json!(message);
        }
        Reply::json(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [error],
                "documentation_url": DOCS_URL,
                "status": "422",
            }),
        )
    }

    pub(super) fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(super) fn from_option(body: Option<Value>) -> Self {
        body.map(Reply::ok).unwrap_or_else(Reply::not_found)
    }
}

pub(super) async fn serve(
    AxumState(fake): AxumState<FakeGitHub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.hold_if_asked(&method, &uri).await;
    let reply = fake.handle(&method, &uri, &headers, &body);
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value.as_str());
    }
    let bytes = match &reply.body {
        Some(body) if reply.status != 304 => {
            builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
            serde_json::to_vec(body).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    builder
        .body(Body::from(bytes))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

impl FakeGitHub {
    /// Records the request, applies any injected fault, routes it, and adds ETags.
    pub(super) fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let mut st = self.lock();
        st.sync_git();
        let path = uri.path().to_string();
        let raw_query = uri.query().filter(|q| !q.is_empty()).map(str::to_string);
        let json_body = if body.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice::<Value>(body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
            )
        };
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let index = st.requests.len();
        st.requests.push(Recorded {
            method: method.as_str().to_string(),
            path: path.clone(),
            query: raw_query.clone(),
            body: json_body.clone(),
            authorization,
            status: 0,
        });

        let req = Req {
            method: method.as_str(),
            path: &path,
            query: raw_query
                .as_deref()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
            headers,
            body: json_body.as_ref(),
        };
        let reply = match st.take_fault(method.as_str(), &path) {
            Some(FaultKind::Status(status)) => Reply::error(
                status,
                StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Injected failure"),
            ),
            Some(FaultKind::RateLimit {
                status,
                retry_after_secs,
            }) => rate_limited(status, retry_after_secs),
            Some(FaultKind::DropResponse) => {
                let _effect_applied = st.dispatch(&req);
                Reply::error(502, "Server Error")
            }
            None => with_etag(st.dispatch(&req), &req),
        };
        st.requests[index].status = reply.status;
        reply
    }
}

impl State {
    /// Takes one use of the first fault matching the request.
    pub(super) fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let position = self.faults.iter().position(|f| {
            f.remaining > 0 && method_matches(&f.method, method) && path.starts_with(&f.path_prefix)
        })?;
        let fault = &mut self.faults[position];
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            self.faults.remove(position);
        }
        Some(kind)
    }
}

pub(super) fn rate_limited(status: u16, retry_after_secs: u64) -> Reply {
    let reset = now_secs() + i64::try_from(retry_after_secs).unwrap_or(i64::MAX / 2);
    Reply::error(
        status,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    )
    .header("retry-after", retry_after_secs.to_string())
    .header("x-ratelimit-limit", "5000".to_string())
    .header("x-ratelimit-remaining", "0".to_string())
    .header("x-ratelimit-used", "5000".to_string())
    .header("x-ratelimit-reset", reset.to_string())
    .header("x-ratelimit-resource", "core".to_string())
}

/// Adds an `ETag` to a successful GET (a hash of the body, so it changes exactly when the
/// state behind it does) and answers 304 when `If-None-Match` already has it.
pub(super) fn with_etag(reply: Reply, req: &Req) -> Reply {
    if req.method != "GET" || reply.status != 200 {
        return reply;
    }
    let Some(body) = &reply.body else {
        return reply;
    };
    let digest = Sha256::digest(serde_json::to_vec(body).unwrap_or_default());
    let etag = format!("W/\"{}\"", hex::encode(&digest[..16]));
    let matches = req
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag.trim_start_matches("W/"))
        });
    if matches {
        return Reply {
            status: 304,
            body: None,
            headers: vec![("etag", etag)],
        };
    }
    reply.header("etag", etag)
}

// ---------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------

impl State {
    pub(super) fn dispatch(&mut self, req: &Req) -> Reply {
        let decoded: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
        if let Some(reply) = self.oauth_routes(req, &segs) {
            return reply;
        }
        match segs.as_slice() {
            ["app", rest @ ..] => match self.require_app(req) {
                Ok(()) => self.app_routes(req, rest),
                Err(reply) => reply,
            },
            ["repos", owner, repo, "installation"] if req.method == "GET" => {
                match self.require_app(req) {
                    Ok(()) => {
                        let key = key_of(&format!("{owner}/{repo}"));
                        Reply::from_option(
                            self.installation_of(&key)
                                .and_then(|i| self.installation_json(i.id)),
                        )
                    }
                    Err(reply) => reply,
                }
            }
            ["users", login] if req.method == "GET" => {
                self.ensure_user(login);
                Reply::ok(self.user_json(login))
            }
            ["orgs" | "users", account, "installation"] if req.method == "GET" => {
                match self.require_app(req) {
                    Ok(()) => Reply::from_option(
                        self.installations
                            .values()
                            .find(|i| i.account.eq_ignore_ascii_case(account))
                            .and_then(|i| self.installation_json(i.id)),
                    ),
                    Err(reply) => reply,
                }
            }
            ["installation", "repositories"] if req.method == "GET" => {
                match self.require_installation(req) {
                    Ok(caller) => self.installation_repositories(req, &caller),
                    Err(reply) => reply,
                }
            }
            ["repos", owner, repo, rest @ ..] => {
                let caller = match self.require_installation(req) {
                    Ok(caller) => caller,
                    Err(reply) => return reply,
                };
                let key = key_of(&format!("{owner}/{repo}"));
                if !self.repos.contains_key(&key) || !caller.can_access(self, &key) {
                    return Reply::not_found();
                }
                if !caller.allowed(req.method, rest) {
                    return Reply::error(403, "Resource not accessible by integration");
                }
                self.repo_routes(req, &key, rest)
            }
            ["graphql"] if req.method == "POST" => match self.require_installation(req) {
                Ok(caller) => self.graphql(req, &caller),
                Err(reply) => reply,
            },
            ["app-manifests", code, "conversions"] if req.method == "POST" => {
                self.convert_manifest(code)
            }
            ["settings", "apps", "new"] if req.method == "POST" => {
                self.new_app_from_form(req, None)
            }
            ["organizations", org, "settings", "apps", "new"] if req.method == "POST" => {
                self.new_app_from_form(req, Some(org))
            }
            _ => Reply::not_found(),
        }
    }

    pub(super) fn app_routes(&mut self, req: &Req, rest: &[&str]) -> Reply {
        match (req.method, rest) {
            ("GET", []) => Reply::ok(self.app_json()),
            ("GET", ["installations"]) => {
                let items = self
                    .installations
                    .keys()
                    .filter_map(|id| self.installation_json(*id))
                    .collect();
                self.page_reply(req, items)
            }
            ("GET", ["installations", id]) => {
                Reply::from_option(id.parse().ok().and_then(|id| self.installation_json(id)))
            }
            ("POST", ["installations", id, "access_tokens"]) => match id.parse() {
                Ok(id) => self.create_access_token(req, id),
                Err(_) => Reply::not_found(),
            },
            _ => Reply::not_found(),
        }
    }

    pub(super) fn repo_routes(&mut self, req: &Req, key: &str, rest: &[&str]) -> Reply {
        let m = req.method;
        match (m, rest) {
            ("GET", []) => Reply::from_option(self.repo_json(key)),
            ("GET", ["issues"]) => self.list_issues(req, key),
            ("GET", ["issues", "comments"]) => self.list_repo_comments(req, key),
            (_, ["issues", "comments", id, tail @ ..]) => match id.parse::<i64>() {
                Ok(id) => self.comment_routes(req, key, id, tail),
                Err(_) => Reply::not_found(),
            },
            (_, ["issues", number, tail @ ..]) => match number.parse::<u64>() {
                Ok(n) if self.repos[key].issues.contains_key(&n) => {
                    self.issue_routes(req, key, n, tail)
                }
                _ => Reply::not_found(),
            },
            ("GET", ["collaborators", login, "permission"]) => self.permission(key, login),
            (_, ["git", tail @ ..]) => self.git_data_routes(req, key, tail),
            ("GET", ["pulls"]) => self.list_pulls(req, key),
            ("POST", ["pulls"]) => self.create_pull(req, key),
            (_, ["pulls", number, tail @ ..]) => match number.parse::<u64>() {
                Ok(n)
                    if self.repos[key]
                        .issues
                        .get(&n)
                        .is_some_and(|i| i.pull.is_some()) =>
                {
                    self.pull_routes(req, key, n, tail)
                }
                _ => Reply::not_found(),
            },
            ("GET", ["commits", reference @ .., "check-runs"]) if !reference.is_empty() => {
                let sha = self.repos[key].resolve_ref(&reference.join("/"));
                self.list_check_runs(req, key, |run| run.head_sha == sha)
            }
            ("GET", ["commits", reference @ .., "check-suites"]) if !reference.is_empty() => {
                let sha = self.repos[key].resolve_ref(&reference.join("/"));
                self.list_check_suites(req, key, &sha)
            }
            ("GET", ["check-runs", id]) => {
                Reply::from_option(id.parse().ok().and_then(|id| self.check_run_json(key, id)))
            }
            ("GET", ["check-suites", id]) => Reply::from_option(
                id.parse()
                    .ok()
                    .and_then(|id| self.check_suite_json(key, id)),
            ),
            ("GET", ["check-suites", id, "check-runs"]) => match id.parse::<i64>() {
                Ok(id) if self.repos[key].check_suites.contains_key(&id) => {
                    self.list_check_runs(req, key, |run| run.suite_id == id)
                }
                _ => Reply::not_found(),
            },
            ("GET", ["contents", path @ ..]) if !path.is_empty() => {
                self.contents(req, key, &path.join("/"))
            }
            _ => Reply::not_found(),
        }
    }

    pub(super) fn issue_routes(&mut self, req: &Req, key: &str, n: u64, tail: &[&str]) -> Reply {
        match (req.method, tail) {
            ("GET", []) => Reply::from_option(self.issue_json(key, n)),
            ("PATCH" | "POST", []) => self.patch_issue(req, key, n),
            ("GET", ["labels"]) => Reply::ok(self.issue_labels_json(key, n)),
            ("GET", ["events"]) => {
                let events = self.repos[key].issues[&n]
                    .labelled
                    .iter()
                    .map(|(id, actor, label, at)| {
                        serde_json::json!({
                            "id": id,
                            "event": "labeled",
                            "actor": self.user_json(actor),
                            "label": {"name": label, "color": "ededed"},
                            "created_at": super::rfc3339(*at),
                        })
                    })
                    .collect();
                self.page_reply(req, events)
            }
            ("POST", ["labels"]) | ("PUT", ["labels"]) => {
                let Some(names) = req.body.and_then(label_names) else {
                    return Reply::invalid("Label", "labels", "missing_field", None);
                };
                if req.method == "PUT"
                    && let Some(issue) = self.repos.get_mut(key).and_then(|r| r.issues.get_mut(&n))
                {
                    issue.labels.clear();
                }
                self.add_labels(key, n, &names);
                Reply::ok(self.issue_labels_json(key, n))
            }
            ("DELETE", ["labels"]) => {
                if let Some(issue) = self.repos.get_mut(key).and_then(|r| r.issues.get_mut(&n)) {
                    issue.labels.clear();
                    issue.updated_at = now_secs();
                }
                Reply::no_content()
            }
            ("DELETE", ["labels", name]) => {
                let lower = name.to_lowercase();
                let Some(issue) = self.repos.get_mut(key).and_then(|r| r.issues.get_mut(&n)) else {
                    return Reply::not_found();
                };
                if !issue.labels.contains(&lower) {
                    return Reply::error(404, "Label does not exist");
                }
                issue.labels.retain(|l| *l != lower);
                issue.updated_at = now_secs();
                Reply::ok(self.issue_labels_json(key, n))
            }
            ("GET", ["comments"]) => {
                let since = req.param("since").and_then(parse_rfc3339);
                let repo = &self.repos[key];
                let items = repo
                    .comments
                    .values()
                    .filter(|c| c.issue_number == n && since.is_none_or(|s| c.updated_at >= s))
                    .map(|c| self.render_comment(repo, c))
                    .collect();
                self.page_reply(req, items)
            }
            ("POST", ["comments"]) => {
                let body = match validate_body(req, "IssueComment") {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                let id = self.add_comment(key, n, &bot_login(), body);
                Reply::json(201, Value::Null)
                    .with_option(id.and_then(|id| self.comment_json(key, id)))
            }
            ("GET", ["reactions"]) => self.list_reactions(req, key, Target::Issue(n)),
            ("POST", ["reactions"]) => self.create_reaction(req, key, Target::Issue(n)),
            ("DELETE", ["reactions", id]) => self.delete_reaction(key, Target::Issue(n), id),
            _ => Reply::not_found(),
        }
    }

    pub(super) fn comment_routes(&mut self, req: &Req, key: &str, id: i64, tail: &[&str]) -> Reply {
        if !self.repos[key].comments.contains_key(&id) {
            return Reply::not_found();
        }
        match (req.method, tail) {
            ("GET", []) => Reply::from_option(self.comment_json(key, id)),
            ("PATCH" | "POST", []) => {
                let body = match validate_body(req, "IssueComment") {
                    Ok(body) => body,
                    Err(reply) => return reply,
                };
                self.edit_comment(key, id, body);
                Reply::from_option(self.comment_json(key, id))
            }
            ("DELETE", []) => {
                if let Some(repo) = self.repos.get_mut(key) {
                    repo.comments.remove(&id);
                }
                Reply::no_content()
            }
            ("GET", ["reactions"]) => self.list_reactions(req, key, Target::Comment(id)),
            ("POST", ["reactions"]) => self.create_reaction(req, key, Target::Comment(id)),
            ("DELETE", ["reactions", rid]) => self.delete_reaction(key, Target::Comment(id), rid),
            _ => Reply::not_found(),
        }
    }

    pub(super) fn pull_routes(&mut self, req: &Req, key: &str, n: u64, tail: &[&str]) -> Reply {
        match (req.method, tail) {
            ("GET", []) => Reply::from_option(self.pull_json(key, n, true)),
            ("PATCH" | "POST", []) => self.patch_pull(req, key, n),
            ("POST", ["requested_reviewers"]) => self.request_reviewers(req, key, n),
            ("GET", ["reviews"]) => {
                let repo = &self.repos[key];
                let items = repo.issues[&n]
                    .pull
                    .iter()
                    .flat_map(|p| p.reviews.iter())
                    .map(|rv| self.review_json(key, n, rv))
                    .collect();
                self.page_reply(req, items)
            }
            ("GET", ["comments"]) => {
                let repo = &self.repos[key];
                let items = repo.issues[&n]
                    .pull
                    .iter()
                    .flat_map(|p| p.review_comments.iter())
                    .map(|c| self.review_comment_json(repo, n, c))
                    .collect();
                self.page_reply(req, items)
            }
            _ => Reply::not_found(),
        }
    }
}

impl Reply {
    /// `self` carrying `body`, or 404 when there is none.
    pub(super) fn with_option(mut self, body: Option<Value>) -> Self {
        match body {
            Some(body) => {
                self.body = Some(body);
                self
            }
            None => Reply::not_found(),
        }
    }
}

/// The `body` field of an issue-comment request, checked like GitHub checks it.
pub(super) fn validate_body<'a>(req: &'a Req, resource: &str) -> Result<&'a str, Reply> {
    match req.body_str("body") {
        None => Err(Reply::invalid(resource, "body", "missing_field", None)),
        Some("") => Err(Reply::invalid(
            resource,
            "body",
            "custom",
            Some("Body cannot be blank"),
        )),
        Some(body) if body.chars().count() > MAX_BODY_CHARS => Err(Reply::invalid(
            resource,
            "body",
            "custom",
            Some("Body is too long (maximum is 65536 characters)"),
        )),
        Some(body) => Ok(body),
    }
}

/// Label names from `{"labels": [...]}` or a bare array; items are names or `{name}`.
pub(super) fn label_names(body: &Value) -> Option<Vec<String>> {
    let list = match body {
        Value::Array(items) => items,
        Value::Object(map) => map.get("labels")?.as_array()?,
        _ => return None,
    };
    list.iter()
        .map(|item| match item {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .collect()
}
