//! One handler per REST endpoint the fake serves.

use super::*;

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

impl State {
    pub(super) fn create_access_token(&mut self, req: &Req, id: i64) -> Reply {
        let Some(installation) = self.installations.get(&id) else {
            return Reply::not_found();
        };
        if installation.suspended_at.is_some() {
            return Reply::error(403, "This installation has been suspended");
        }
        let mut scope: Option<Vec<String>> = None;
        let unknown = "There is at least one repository that does not exist or is not accessible to the parent installation.";
        if let Some(names) = req
            .body
            .and_then(|b| b.get("repositories"))
            .and_then(Value::as_array)
        {
            let scoped = scope.get_or_insert_with(Vec::new);
            for name in names {
                let found = name.as_str().and_then(|name| {
                    installation
                        .repos
                        .iter()
                        .find(|k| self.repos[*k].name.eq_ignore_ascii_case(name))
                });
                match found {
                    Some(key) => scoped.push(key.clone()),
                    None => {
                        return Reply::invalid(
                            "Installation",
                            "repositories",
                            "custom",
                            Some(unknown),
                        );
                    }
                }
            }
        }
        if let Some(ids) = req
            .body
            .and_then(|b| b.get("repository_ids"))
            .and_then(Value::as_array)
        {
            let scoped = scope.get_or_insert_with(Vec::new);
            for repo_id in ids {
                let found = repo_id.as_i64().and_then(|repo_id| {
                    installation
                        .repos
                        .iter()
                        .find(|k| self.repos[*k].id == repo_id)
                });
                match found {
                    Some(key) => scoped.push(key.clone()),
                    None => {
                        return Reply::invalid(
                            "Installation",
                            "repository_ids",
                            "custom",
                            Some(unknown),
                        );
                    }
                }
            }
        }
        if scope.is_none() && self.scoped_tokens_only {
            return Reply::invalid(
                "Installation",
                "repositories",
                "custom",
                Some(
                    "fake GitHub: an installation-wide token was asked for; foreman scopes \
                     every token to one repository (repositories or repository_ids)",
                ),
            );
        }
        let mut permissions: Option<HashMap<String, String>> = None;
        if let Some(asked) = req
            .body
            .and_then(|b| b.get("permissions"))
            .and_then(Value::as_object)
        {
            let granted = app_permissions();
            let scoped = permissions.get_or_insert_with(HashMap::new);
            for (name, level) in asked {
                let level = level.as_str().unwrap_or_default();
                let has = granted[name].as_str().unwrap_or("none");
                if level_rank(level) == 0 || level_rank(has) < level_rank(level) {
                    return Reply::invalid(
                        "Installation",
                        "permissions",
                        "custom",
                        Some("The permissions requested are not granted to this installation."),
                    );
                }
                scoped.insert(name.clone(), level.to_owned());
            }
            scoped.insert("metadata".to_owned(), "read".to_owned());
        }
        let (token, expires_at) = self.issue_token(id, scope.clone(), permissions.clone());
        let shown = match &permissions {
            Some(p) => json!(p),
            None => app_permissions(),
        };
        let mut body = json!({
            "token": token,
            "expires_at": rfc3339(system_secs(expires_at)),
            "permissions": shown,
            "repository_selection": "selected",
        });
        if let Some(keys) = scope {
            body["repositories"] = keys.iter().filter_map(|k| self.repo_json(k)).collect();
        }
        Reply::created(body)
    }

    pub(super) fn installation_repositories(&self, req: &Req, caller: &Caller) -> Reply {
        let keys: Vec<&String> = self
            .installations
            .get(&caller.installation_id)
            .map(|i| {
                i.repos
                    .iter()
                    .filter(|k| caller.can_access(self, k))
                    .collect()
            })
            .unwrap_or_default();
        let items: Vec<Value> = keys.iter().filter_map(|k| self.repo_json(k)).collect();
        let total = items.len();
        let (page, link) = self.paginate(req, items);
        let reply = Reply::ok(json!({
            "total_count": total,
            "repository_selection": "selected",
            "repositories": page,
        }));
        with_link(reply, link)
    }

    pub(super) fn list_issues(&self, req: &Req, key: &str) -> Reply {
        let repo = &self.repos[key];
        let state = req.param("state").unwrap_or("open");
        let since = req.param("since").and_then(parse_rfc3339);
        let wanted: Vec<String> = req
            .param("labels")
            .map(|l| {
                l.split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut issues: Vec<&Issue> = repo
            .issues
            .values()
            .filter(|i| state == "all" || state == state_str(i.closed))
            .filter(|i| since.is_none_or(|s| i.updated_at >= s))
            .filter(|i| wanted.iter().all(|w| i.labels.contains(w)))
            .collect();
        sort_issues(&mut issues, req, "desc");
        let items = issues
            .into_iter()
            .filter_map(|i| self.issue_json(key, i.number))
            .collect();
        self.page_reply(req, items)
    }

    pub(super) fn list_repo_comments(&self, req: &Req, key: &str) -> Reply {
        let repo = &self.repos[key];
        let since = req.param("since").and_then(parse_rfc3339);
        let mut comments: Vec<&Comment> = repo
            .comments
            .values()
            .filter(|c| since.is_none_or(|s| c.updated_at >= s))
            .collect();
        if req.param("sort") == Some("updated") {
            comments.sort_by_key(|c| (c.updated_at, c.id));
        }
        if req.param("direction") == Some("desc") {
            comments.reverse();
        }
        let items = comments
            .into_iter()
            .map(|c| self.render_comment(repo, c))
            .collect();
        self.page_reply(req, items)
    }

    pub(super) fn patch_issue(&mut self, req: &Req, key: &str, n: u64) -> Reply {
        let Some(body) = req.body.and_then(Value::as_object) else {
            return Reply::error(400, "Problems parsing JSON");
        };
        let state = match body.get("state") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "open" || s == "closed" => Some(s == "closed"),
            Some(_) => return Reply::invalid("Issue", "state", "invalid", None),
        };
        let title = match body.get("title") {
            None => None,
            Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
            Some(_) => return Reply::invalid("Issue", "title", "missing_field", None),
        };
        let new_body = match body.get("body") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(b)) if b.chars().count() <= MAX_BODY_CHARS => Some(Some(b.clone())),
            Some(_) => return Reply::invalid("Issue", "body", "invalid", None),
        };
        let labels = match body.get("labels") {
            None => None,
            Some(v) => match label_names(v) {
                Some(names) => Some(names),
                None => return Reply::invalid("Issue", "labels", "invalid", None),
            },
        };
        let reason = body
            .get("state_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(names) = labels {
            if let Some(issue) = self.repos.get_mut(key).and_then(|r| r.issues.get_mut(&n)) {
                issue.labels.clear();
            }
            self.add_labels(key, n, &names);
        }
        let Some(issue) = self.repos.get_mut(key).and_then(|r| r.issues.get_mut(&n)) else {
            return Reply::not_found();
        };
        if let Some(title) = title {
            issue.title = title;
        }
        if let Some(new_body) = new_body {
            issue.body = new_body;
        }
        if let Some(closed) = state {
            let is_pull = issue.pull.is_some();
            set_issue_state(issue, closed, reason, &bot_login());
            if is_pull && closed {
                issue.state_reason = None;
            }
        }
        issue.updated_at = now_secs();
        Reply::from_option(self.issue_json(key, n))
    }

    pub(super) fn issue_labels_json(&self, key: &str, n: u64) -> Value {
        let repo = &self.repos[key];
        repo.issues
            .get(&n)
            .map(|i| {
                i.labels
                    .iter()
                    .filter_map(|l| repo.labels.get(l))
                    .map(|l| self.label_json(repo, l))
                    .collect()
            })
            .unwrap_or_else(|| json!([]))
    }

    pub(super) fn list_reactions(&self, req: &Req, key: &str, target: Target) -> Reply {
        let Some(reactions) = self.reactions(key, target) else {
            return Reply::not_found();
        };
        let content = req.param("content");
        let items = reactions
            .iter()
            .filter(|r| content.is_none_or(|c| c == r.content))
            .map(|r| self.reaction_json(r))
            .collect();
        self.page_reply(req, items)
    }

    pub(super) fn create_reaction(&mut self, req: &Req, key: &str, target: Target) -> Reply {
        let Some(content) = req.body_str("content") else {
            return Reply::invalid("Reaction", "content", "missing_field", None);
        };
        if !REACTION_CONTENTS.contains(&content) {
            return Reply::invalid("Reaction", "content", "invalid", None);
        }
        let Some((id, created)) = self.react(key, target, &bot_login(), content) else {
            return Reply::not_found();
        };
        let json = self
            .reactions(key, target)
            .and_then(|rs| rs.iter().find(|r| r.id == id))
            .map(|r| self.reaction_json(r));
        Reply::json(if created { 201 } else { 200 }, Value::Null).with_option(json)
    }

    pub(super) fn delete_reaction(&mut self, key: &str, target: Target, id: &str) -> Reply {
        let Ok(id) = id.parse::<i64>() else {
            return Reply::not_found();
        };
        let Some(reactions) = self.reactions_mut(key, target) else {
            return Reply::not_found();
        };
        let before = reactions.len();
        reactions.retain(|r| r.id != id);
        if reactions.len() == before {
            Reply::not_found()
        } else {
            Reply::no_content()
        }
    }

    pub(super) fn permission(&self, key: &str, login: &str) -> Reply {
        let repo = &self.repos[key];
        if !self.users.contains_key(&login.to_ascii_lowercase()) {
            return Reply::not_found();
        }
        let role = self.role_of(repo, login);
        let legacy = match role.as_str() {
            "admin" => "admin",
            "maintain" | "write" => "write",
            "triage" | "read" => "read",
            _ => "none",
        };
        let role_name = if role == "none" { "" } else { role.as_str() };
        let rank = ROLES.iter().position(|r| *r == role).unwrap_or(ROLES.len());
        let at_least = |r: &str| rank <= ROLES.iter().position(|x| *x == r).unwrap_or(0);
        let mut user = self.user_json(login);
        user["permissions"] = json!({
            "admin": at_least("admin"),
            "maintain": at_least("maintain"),
            "push": at_least("write"),
            "triage": at_least("triage"),
            "pull": at_least("read"),
        });
        user["role_name"] = json!(role_name);
        Reply::ok(json!({ "permission": legacy, "role_name": role_name, "user": user }))
    }

    pub(super) fn list_pulls(&self, req: &Req, key: &str) -> Reply {
        let repo = &self.repos[key];
        let state = req.param("state").unwrap_or("open");
        // GitHub ignores a head filter without the `owner:` part.
        let head = req.param("head").and_then(|h| h.split_once(':'));
        let base = req.param("base");
        let mut pulls: Vec<&Issue> = repo
            .issues
            .values()
            .filter(|i| {
                let Some(p) = &i.pull else { return false };
                (state == "all" || state == state_str(i.closed))
                    && head.is_none_or(|(owner, branch)| {
                        owner.eq_ignore_ascii_case(&repo.owner) && p.head_ref == branch
                    })
                    && base.is_none_or(|b| p.base_ref == b)
            })
            .collect();
        sort_issues(&mut pulls, req, "desc");
        let items = pulls
            .into_iter()
            .filter_map(|i| self.pull_json(key, i.number, false))
            .collect();
        self.page_reply(req, items)
    }

    pub(super) fn create_pull(&mut self, req: &Req, key: &str) -> Reply {
        let Some(title) = req.body_str("title").filter(|t| !t.is_empty()) else {
            return Reply::invalid("PullRequest", "title", "missing_field", None);
        };
        let Some(head) = req.body_str("head") else {
            return Reply::invalid("PullRequest", "head", "missing_field", None);
        };
        let Some(base) = req.body_str("base") else {
            return Reply::invalid("PullRequest", "base", "missing_field", None);
        };
        let repo = &self.repos[key];
        let head_ref = match head.split_once(':') {
            Some((owner, branch)) if owner.eq_ignore_ascii_case(&repo.owner) => branch,
            Some(_) => return Reply::invalid("PullRequest", "head", "invalid", None),
            None => head,
        };
        if !repo.branches.contains_key(base) {
            return Reply::invalid("PullRequest", "base", "invalid", None);
        }
        if head_ref == base {
            return Reply::invalid(
                "PullRequest",
                "base",
                "custom",
                Some(format!("No commits between {base} and {head_ref}").as_str()),
            );
        }
        let exists = repo.issues.values().any(|i| {
            !i.closed
                && i.pull
                    .as_ref()
                    .is_some_and(|p| p.head_ref == head_ref && p.base_ref == base)
        });
        if exists {
            let message = format!(
                "A pull request already exists for {}:{head_ref}.",
                repo.owner
            );
            return Reply::invalid("PullRequest", "head", "custom", Some(message.as_str()));
        }
        let draft = req
            .body
            .and_then(|b| b.get("draft"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = req.body_str("body");
        let number = self.open_pull(key, head_ref, base, title, body, &bot_login(), draft);
        Reply::json(201, Value::Null).with_option(number.and_then(|n| self.pull_json(key, n, true)))
    }

    /// `POST /repos/{o}/{r}/pulls/{n}/requested_reviewers`: only people with access to the
    /// repository, never the pull request's author (422 otherwise, as on GitHub).
    pub(super) fn request_reviewers(&mut self, req: &Req, key: &str, n: u64) -> Reply {
        let Some(reviewers) = req
            .body
            .and_then(|b| b.get("reviewers"))
            .and_then(Value::as_array)
        else {
            return Reply::error(422, "Invalid request: reviewers is missing");
        };
        let logins: Vec<String> = reviewers
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let repo = &self.repos[key];
        let Some(issue) = repo.issues.get(&n).filter(|i| i.pull.is_some()) else {
            return Reply::not_found();
        };
        for login in &logins {
            let role = repo.roles.get(&login.to_ascii_lowercase());
            if login.eq_ignore_ascii_case(&issue.author) || role.is_none() {
                return Reply::error(
                    422,
                    "Reviews may only be requested from collaborators. One or more of the users \
                     or teams you specified is not a collaborator of the repository.",
                );
            }
        }
        let pull = self.pull_mut(key, n);
        for login in logins {
            if !pull.requested_reviewers.contains(&login) {
                pull.requested_reviewers.push(login);
            }
        }
        let mut reply = Reply::from_option(self.pull_json(key, n, true));
        reply.status = 201;
        reply
    }

    /// `POST /graphql`: the one mutation foreman uses, `markPullRequestReadyForReview`, on a
    /// pull request named by its node id; it needs `pull_requests: write`.
    pub(super) fn graphql(&mut self, req: &Req, caller: &Caller) -> Reply {
        let query = req
            .body
            .and_then(|b| b.get("query"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !query.contains("markPullRequestReadyForReview") {
            return Reply::ok(
                json!({"errors": [{"message": "the fake GitHub only knows markPullRequestReadyForReview"}]}),
            );
        }
        let id = req
            .body
            .and_then(|b| b.pointer("/variables/id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let found = self.repos.iter().find_map(|(key, repo)| {
            repo.issues.iter().find_map(|(n, issue)| {
                issue
                    .pull
                    .as_ref()
                    .filter(|p| format!("PR_kwDO{}", p.id) == id)
                    .map(|_| (key.clone(), *n))
            })
        });
        let not_found = || {
            Reply::ok(
                json!({"data": null, "errors": [{"type": "NOT_FOUND", "message": format!("Could not resolve to a node with the global id of '{id}'")}]}),
            )
        };
        let Some((key, n)) = found else {
            return not_found();
        };
        if !caller.can_access(self, &key) {
            return not_found();
        }
        if !caller.allowed("POST", &["pulls"]) {
            return Reply::ok(
                json!({"data": null, "errors": [{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}]}),
            );
        }
        self.pull_mut(&key, n).draft = false;
        self.repos
            .get_mut(&key)
            .unwrap()
            .issues
            .get_mut(&n)
            .unwrap()
            .updated_at = now_secs();
        Reply::ok(
            json!({"data": {"markPullRequestReadyForReview": {"pullRequest": {"number": n, "isDraft": false}}}}),
        )
    }

    pub(super) fn patch_pull(&mut self, req: &Req, key: &str, n: u64) -> Reply {
        let Some(body) = req.body.and_then(Value::as_object) else {
            return Reply::error(400, "Problems parsing JSON");
        };
        let state = match body.get("state").and_then(Value::as_str) {
            None => None,
            Some("open") => Some(false),
            Some("closed") => Some(true),
            Some(_) => return Reply::invalid("PullRequest", "state", "invalid", None),
        };
        let base = body.get("base").and_then(Value::as_str);
        if base.is_some_and(|b| !self.repos[key].branches.contains_key(b)) {
            return Reply::invalid("PullRequest", "base", "invalid", None);
        }
        let Some(issue) = self.repos.get_mut(key).and_then(|r| r.issues.get_mut(&n)) else {
            return Reply::not_found();
        };
        if state == Some(false) && issue.pull.as_ref().is_some_and(|p| p.merged_at.is_some()) {
            return Reply::invalid(
                "PullRequest",
                "state",
                "custom",
                Some("state cannot be changed. The pull request has been merged."),
            );
        }
        if let Some(title) = body.get("title").and_then(Value::as_str) {
            issue.title = title.to_string();
        }
        if let Some(new_body) = body.get("body") {
            issue.body = new_body.as_str().map(str::to_string);
        }
        if let (Some(base), Some(pull)) = (base, issue.pull.as_mut()) {
            pull.base_ref = base.to_string();
        }
        if let Some(closed) = state {
            set_issue_state(issue, closed, None, &bot_login());
            issue.state_reason = None;
        }
        issue.updated_at = now_secs();
        Reply::from_option(self.pull_json(key, n, true))
    }

    pub(super) fn list_check_runs(
        &self,
        req: &Req,
        key: &str,
        select: impl Fn(&CheckRun) -> bool,
    ) -> Reply {
        let repo = &self.repos[key];
        let name = req.param("check_name");
        let status = req.param("status");
        let mut runs: Vec<&CheckRun> = repo
            .check_runs
            .values()
            .filter(|r| select(r))
            .filter(|r| name.is_none_or(|n| n == r.name))
            .filter(|r| status.is_none_or(|s| s == r.status))
            .collect();
        if req.param("filter") != Some("all") {
            // `latest`: only the most recent run of each name (per suite).
            let mut latest: BTreeMap<(&str, i64), i64> = BTreeMap::new();
            for r in &runs {
                let entry = latest.entry((r.name.as_str(), r.suite_id)).or_insert(r.id);
                *entry = (*entry).max(r.id);
            }
            runs.retain(|r| latest.get(&(r.name.as_str(), r.suite_id)) == Some(&r.id));
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.id));
        let items: Vec<Value> = runs
            .into_iter()
            .filter_map(|r| self.check_run_json(key, r.id))
            .collect();
        let total = items.len();
        let (page, link) = self.paginate(req, items);
        with_link(
            Reply::ok(json!({ "total_count": total, "check_runs": page })),
            link,
        )
    }

    pub(super) fn list_check_suites(&self, req: &Req, key: &str, sha: &str) -> Reply {
        let repo = &self.repos[key];
        let name = req.param("check_name");
        let items: Vec<Value> = repo
            .check_suites
            .values()
            .filter(|s| s.head_sha == sha)
            .filter(|s| {
                name.is_none_or(|n| {
                    repo.check_runs
                        .values()
                        .any(|r| r.suite_id == s.id && r.name == n)
                })
            })
            .filter_map(|s| self.check_suite_json(key, s.id))
            .collect();
        let total = items.len();
        let (page, link) = self.paginate(req, items);
        with_link(
            Reply::ok(json!({ "total_count": total, "check_suites": page })),
            link,
        )
    }

    pub(super) fn contents(&self, req: &Req, key: &str, path: &str) -> Reply {
        let repo = &self.repos[key];
        let reference = req.param("ref").unwrap_or(repo.default_branch.as_str());
        let name = reference.strip_prefix("refs/heads/").unwrap_or(reference);
        let branch = if repo.branches.contains_key(name) {
            name.to_string()
        } else {
            match repo.branch_for_sha(reference) {
                Some(branch) => branch,
                None => return Reply::not_found(),
            }
        };
        let Some(content) = repo.files.get(&(branch.clone(), path.to_string())) else {
            return Reply::not_found();
        };
        let sha = hex::encode(&Sha256::digest(content.as_bytes())[..20]);
        let api = self.repo_api(repo, &format!("/contents/{path}?ref={branch}"));
        let html = repo_html(repo, &format!("/blob/{branch}/{path}"));
        let git = self.repo_api(repo, &format!("/git/blobs/{sha}"));
        Reply::ok(json!({
            "type": "file",
            "encoding": "base64",
            "size": content.len(),
            "name": path.rsplit('/').next().unwrap_or(path),
            "path": path,
            "content": base64_lines(content.as_bytes()),
            "sha": sha,
            "url": api,
            "git_url": git,
            "html_url": html,
            "download_url": format!("https://raw.githubusercontent.com/{}/{branch}/{path}", repo.full_name()),
            "_links": { "self": api, "git": git, "html": html },
        }))
    }
}

pub(super) fn sort_issues(issues: &mut [&Issue], req: &Req, default_direction: &str) {
    if req.param("sort") == Some("updated") {
        issues.sort_by_key(|i| (i.updated_at, i.number));
    } else {
        issues.sort_by_key(|i| (i.created_at, i.number));
    }
    if req.param("direction").unwrap_or(default_direction) == "desc" {
        issues.reverse();
    }
}

pub(super) fn with_link(reply: Reply, link: Option<String>) -> Reply {
    match link {
        Some(link) => reply.header("link", link),
        None => reply,
    }
}

impl State {
    /// One page of `items` per `per_page`/`page`, and the `Link` header for the others.
    pub(super) fn paginate(&self, req: &Req, items: Vec<Value>) -> (Vec<Value>, Option<String>) {
        let per_page = req
            .param("per_page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(DEFAULT_PER_PAGE)
            .clamp(1, MAX_PER_PAGE);
        let page = req
            .param("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let last = items.len().div_ceil(per_page).max(1);
        let link_to = |p: usize, rel: &str| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in req.query.iter().filter(|(k, _)| k != "page") {
                query.append_pair(k, v);
            }
            query.append_pair("page", &p.to_string());
            format!(
                "<{}{}?{}>; rel=\"{rel}\"",
                self.base,
                req.path,
                query.finish()
            )
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(link_to(page - 1, "prev"));
        }
        if page < last {
            links.push(link_to(page + 1, "next"));
            links.push(link_to(last, "last"));
        }
        if page > 1 {
            links.push(link_to(1, "first"));
        }
        let slice = items
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        (slice, (!links.is_empty()).then(|| links.join(", ")))
    }

    pub(super) fn page_reply(&self, req: &Req, items: Vec<Value>) -> Reply {
        let (page, link) = self.paginate(req, items);
        with_link(Reply::ok(Value::Array(page)), link)
    }
}
