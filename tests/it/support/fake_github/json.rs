//! JSON rendering: one function per GitHub object, shared by the REST handlers and the
//! test-facing helpers.

use super::*;

// ---------------------------------------------------------------------------------------
// JSON rendering (one function per GitHub object; REST and helpers share them)
// ---------------------------------------------------------------------------------------

/// The App's permissions: the manifest's (`app-manifest/manifest.json`).
pub(super) fn app_permissions() -> Value {
    json!({
        "actions": "read",
        "checks": "read",
        "contents": "write",
        "issues": "write",
        "members": "read",
        "metadata": "read",
        "pull_requests": "write",
        "statuses": "read",
    })
}

pub(super) fn app_events() -> Value {
    json!([
        "check_run",
        "check_suite",
        "issue_comment",
        "issues",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "push",
    ])
}

/// Adds the fields of object `extra` to object `target`.
pub(super) fn merge_into(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

pub(super) fn repo_html(repo: &Repo, rest: &str) -> String {
    format!("{HTML_BASE}/{}/{}{rest}", repo.owner, repo.name)
}

impl State {
    pub(super) fn repo_api(&self, repo: &Repo, rest: &str) -> String {
        format!("{}/repos/{}/{}{rest}", self.base, repo.owner, repo.name)
    }

    pub(super) fn user_json(&self, login: &str) -> Value {
        let (id, kind, login) = match self.users.get(&login.to_ascii_lowercase()) {
            Some(u) => (u.id, u.kind, u.login.as_str()),
            None => (0, UserKind::for_login(login), login),
        };
        let api = format!("{}/users/{}", self.base, percent_encode(login));
        let html = match kind {
            UserKind::Bot => format!("{HTML_BASE}/apps/{}", login.trim_end_matches("[bot]")),
            _ => format!("{HTML_BASE}/{}", percent_encode(login)),
        };
        let node_prefix = match kind {
            UserKind::Bot => "BOT",
            UserKind::Organization => "O",
            UserKind::User => "U",
        };
        json!({
            "login": login,
            "id": id,
            "node_id": format!("{node_prefix}_kgDO{id}"),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
            "gravatar_id": "",
            "url": api,
            "html_url": html,
            "followers_url": format!("{api}/followers"),
            "following_url": format!("{api}/following{{/other_user}}"),
            "gists_url": format!("{api}/gists{{/gist_id}}"),
            "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{api}/subscriptions"),
            "organizations_url": format!("{api}/orgs"),
            "repos_url": format!("{api}/repos"),
            "events_url": format!("{api}/events{{/privacy}}"),
            "received_events_url": format!("{api}/received_events"),
            "type": kind.as_str(),
            "user_view_type": "public",
            "site_admin": false,
        })
    }

    pub(super) fn app_json(&self) -> Value {
        if let Some(registered) = self.registered_app_json() {
            return registered;
        }
        json!({
            "id": APP_ID,
            "slug": APP_SLUG,
            "node_id": format!("A_kwDO{APP_ID}"),
            "client_id": "Iv1.0123456789abcdef",
            "owner": self.user_json(APP_OWNER),
            "name": APP_SLUG,
            "description": "foreman, as seen by the test suite",
            "external_url": "https://foreman.example.com",
            "html_url": format!("{HTML_BASE}/apps/{APP_SLUG}"),
            "created_at": rfc3339(1_700_000_000),
            "updated_at": rfc3339(1_700_000_000),
            "permissions": app_permissions(),
            "events": app_events(),
            "installations_count": self.installations.len(),
        })
    }

    /// The CI app that check runs come from (GitHub Actions on github.com).
    pub(super) fn ci_app_json(&self) -> Value {
        json!({
            "id": 15368,
            "slug": "github-actions",
            "node_id": "MDM6QXBwMTUzNjg=",
            "owner": self.user_json(CI_APP_OWNER),
            "name": "GitHub Actions",
            "description": "Automate your workflow from idea to production",
            "external_url": "https://help.github.com/en/actions",
            "html_url": format!("{HTML_BASE}/apps/github-actions"),
            "created_at": rfc3339(1_555_000_000),
            "updated_at": rfc3339(1_555_000_000),
            "permissions": { "checks": "write", "contents": "write", "metadata": "read" },
            "events": ["check_run", "check_suite", "push"],
        })
    }

    pub(super) fn installation_json(&self, id: i64) -> Option<Value> {
        let inst = self.installations.get(&id)?;
        let account = self.users.get(&inst.account.to_ascii_lowercase());
        let owner = self.user_json(APP_OWNER);
        Some(json!({
            "id": inst.id,
            "account": self.user_json(&inst.account),
            "repository_selection": "selected",
            "access_tokens_url": format!("{}/app/installations/{}/access_tokens", self.base, inst.id),
            "repositories_url": format!("{}/installation/repositories", self.base),
            "html_url": format!("{HTML_BASE}/settings/installations/{}", inst.id),
            "app_id": APP_ID,
            "app_slug": APP_SLUG,
            "target_id": account.map(|a| a.id).unwrap_or_default(),
            "target_type": account.map(|a| a.kind).unwrap_or(UserKind::User).as_str(),
            "permissions": app_permissions(),
            "events": app_events(),
            "created_at": rfc3339(inst.created_at),
            "updated_at": rfc3339(inst.suspended_at.unwrap_or(inst.created_at)),
            "single_file_name": null,
            "has_multiple_single_files": false,
            "single_file_paths": [],
            "suspended_by": inst.suspended_at.map(|_| owner),
            "suspended_at": inst.suspended_at.map(rfc3339),
        }))
    }

    pub(super) fn repo_json(&self, key: &str) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let api = self.repo_api(repo, "");
        let html = repo_html(repo, "");
        let open_issues = repo.issues.values().filter(|i| !i.closed).count();
        let updated = repo
            .issues
            .values()
            .map(|i| i.updated_at)
            .max()
            .unwrap_or(repo.created_at);
        let mut json = json!({
            "id": repo.id,
            "node_id": format!("R_kgDO{}", repo.id),
            "name": repo.name,
            "full_name": repo.full_name(),
            "private": repo.private,
            "owner": self.user_json(&repo.owner),
            "html_url": html,
            "description": null,
            "fork": false,
            "url": api,
            "git_url": format!("git://github.com/{}.git", repo.full_name()),
            "ssh_url": format!("git@github.com:{}.git", repo.full_name()),
            "clone_url": repo.clone_url.clone().unwrap_or_else(|| format!("{html}.git")),
            "mirror_url": null,
            "svn_url": html,
            "homepage": null,
        });
        // Split in two: one json! this large exceeds the macro recursion limit.
        let counters_and_flags = json!({
            "language": null,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 0,
            "default_branch": repo.default_branch,
            "open_issues_count": open_issues,
            "is_template": false,
            "topics": [],
            "has_issues": true,
            "has_projects": true,
            "has_wiki": true,
            "has_pages": false,
            "has_downloads": true,
            "has_discussions": false,
            "archived": false,
            "disabled": false,
            "visibility": if repo.private { "private" } else { "public" },
            "pushed_at": rfc3339(updated),
            "created_at": rfc3339(repo.created_at),
            "updated_at": rfc3339(updated),
            "allow_forking": true,
            "web_commit_signoff_required": false,
            "license": null,
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
        });
        merge_into(&mut json, counters_and_flags);
        // The URL templates every repository object carries, relative to its API URL.
        let templates = [
            ("archive_url", "/{archive_format}{/ref}"),
            ("assignees_url", "/assignees{/user}"),
            ("blobs_url", "/git/blobs{/sha}"),
            ("branches_url", "/branches{/branch}"),
            ("collaborators_url", "/collaborators{/collaborator}"),
            ("comments_url", "/comments{/number}"),
            ("commits_url", "/commits{/sha}"),
            ("compare_url", "/compare/{base}...{head}"),
            ("contents_url", "/contents/{+path}"),
            ("contributors_url", "/contributors"),
            ("deployments_url", "/deployments"),
            ("downloads_url", "/downloads"),
            ("events_url", "/events"),
            ("forks_url", "/forks"),
            ("git_commits_url", "/git/commits{/sha}"),
            ("git_refs_url", "/git/refs{/sha}"),
            ("git_tags_url", "/git/tags{/sha}"),
            ("hooks_url", "/hooks"),
            ("issue_comment_url", "/issues/comments{/number}"),
            ("issue_events_url", "/issues/events{/number}"),
            ("issues_url", "/issues{/number}"),
            ("keys_url", "/keys{/key_id}"),
            ("labels_url", "/labels{/name}"),
            ("languages_url", "/languages"),
            ("merges_url", "/merges"),
            ("milestones_url", "/milestones{/number}"),
            (
                "notifications_url",
                "/notifications{?since,all,participating}",
            ),
            ("pulls_url", "/pulls{/number}"),
            ("releases_url", "/releases{/id}"),
            ("stargazers_url", "/stargazers"),
            ("statuses_url", "/statuses/{sha}"),
            ("subscribers_url", "/subscribers"),
            ("subscription_url", "/subscription"),
            ("tags_url", "/tags"),
            ("teams_url", "/teams"),
            ("trees_url", "/git/trees{/sha}"),
        ];
        if let Some(map) = json.as_object_mut() {
            for (field, suffix) in templates {
                map.insert(field.to_string(), json!(format!("{api}{suffix}")));
            }
        }
        Some(json)
    }

    pub(super) fn label_json(&self, repo: &Repo, label: &LabelDef) -> Value {
        json!({
            "id": label.id,
            "node_id": format!("LA_kwDO{}", label.id),
            "url": self.repo_api(repo, &format!("/labels/{}", percent_encode(&label.name))),
            "name": label.name,
            "color": label.color,
            "default": false,
            "description": null,
        })
    }

    pub(super) fn reaction_json(&self, r: &Reaction) -> Value {
        json!({
            "id": r.id,
            "node_id": format!("REA_lALO{}", r.id),
            "user": self.user_json(&r.user),
            "content": r.content,
            "created_at": rfc3339(r.created_at),
        })
    }

    pub(super) fn reactions_summary(&self, url: String, reactions: &[Reaction]) -> Value {
        let count = |c: &str| reactions.iter().filter(|r| r.content == c).count();
        json!({
            "url": url,
            "total_count": reactions.len(),
            "+1": count("+1"),
            "-1": count("-1"),
            "laugh": count("laugh"),
            "hooray": count("hooray"),
            "confused": count("confused"),
            "heart": count("heart"),
            "rocket": count("rocket"),
            "eyes": count("eyes"),
        })
    }

    pub(super) fn issue_json(&self, key: &str, number: u64) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let issue = repo.issues.get(&number)?;
        let url = self.repo_api(repo, &format!("/issues/{number}"));
        let html_kind = if issue.pull.is_some() {
            "pull"
        } else {
            "issues"
        };
        let labels: Vec<Value> = issue
            .labels
            .iter()
            .filter_map(|l| repo.labels.get(l))
            .map(|l| self.label_json(repo, l))
            .collect();
        let mut json = json!({
            "url": url,
            "repository_url": self.repo_api(repo, ""),
            "labels_url": format!("{url}/labels{{/name}}"),
            "comments_url": format!("{url}/comments"),
            "events_url": format!("{url}/events"),
            "html_url": repo_html(repo, &format!("/{html_kind}/{number}")),
            "id": issue.id,
            "node_id": format!("I_kwDO{}", issue.id),
            "number": number,
            "title": issue.title,
            "user": self.user_json(&issue.author),
            "labels": labels,
            "state": state_str(issue.closed),
            "locked": issue.locked,
            "assignee": null,
            "assignees": [],
            "milestone": null,
            "comments": repo.comment_count(number),
            "created_at": rfc3339(issue.created_at),
            "updated_at": rfc3339(issue.updated_at),
            "closed_at": issue.closed_at.map(rfc3339),
            "closed_by": issue.closed_by.as_deref().map(|l| self.user_json(l)),
            "author_association": self.author_association(repo, &issue.author),
            "active_lock_reason": null,
            "body": issue.body,
            "reactions": self.reactions_summary(format!("{url}/reactions"), &issue.reactions),
            "timeline_url": format!("{url}/timeline"),
            "performed_via_github_app": null,
            "state_reason": issue.state_reason,
        });
        if let Some(pull) = &issue.pull {
            let pr_url = self.repo_api(repo, &format!("/pulls/{number}"));
            let pr_html = repo_html(repo, &format!("/pull/{number}"));
            json["pull_request"] = json!({
                "url": pr_url,
                "html_url": pr_html,
                "diff_url": format!("{pr_html}.diff"),
                "patch_url": format!("{pr_html}.patch"),
                "merged_at": pull.merged_at.map(rfc3339),
            });
            json["draft"] = json!(pull.draft);
        }
        Some(json)
    }

    pub(super) fn render_comment(&self, repo: &Repo, c: &Comment) -> Value {
        let url = self.repo_api(repo, &format!("/issues/comments/{}", c.id));
        let html_kind = match repo.issues.get(&c.issue_number) {
            Some(i) if i.pull.is_some() => "pull",
            _ => "issues",
        };
        let by_app = c.author == bot_login();
        json!({
            "url": url,
            "html_url": repo_html(repo, &format!("/{html_kind}/{}#issuecomment-{}", c.issue_number, c.id)),
            "issue_url": self.repo_api(repo, &format!("/issues/{}", c.issue_number)),
            "id": c.id,
            "node_id": format!("IC_kwDO{}", c.id),
            "user": self.user_json(&c.author),
            "created_at": rfc3339(c.created_at),
            "updated_at": rfc3339(c.updated_at),
            "author_association": self.author_association(repo, &c.author),
            "body": c.body(),
            "reactions": self.reactions_summary(format!("{url}/reactions"), &c.reactions),
            "performed_via_github_app": if by_app { self.app_json() } else { Value::Null },
        })
    }

    pub(super) fn comment_json(&self, key: &str, id: i64) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let comment = repo.comments.get(&id)?;
        Some(self.render_comment(repo, comment))
    }

    /// Merge state as GitHub derives it from mergeability, draft status and checks.
    pub(super) fn mergeable_state(&self, repo: &Repo, issue: &Issue, pull: &Pull) -> &'static str {
        if issue.closed {
            return "unknown";
        }
        match pull.mergeable {
            None => "unknown",
            Some(false) => "dirty",
            Some(true) if pull.draft => "draft",
            Some(true) => {
                let all_green = repo
                    .check_runs
                    .values()
                    .filter(|r| r.head_sha == pull.head_sha)
                    .all(|r| {
                        r.status == "completed"
                            && matches!(
                                r.conclusion.as_deref(),
                                Some("success" | "neutral" | "skipped")
                            )
                    });
                if all_green { "clean" } else { "unstable" }
            }
        }
    }

    pub(super) fn branch_json(&self, repo: &Repo, branch: &str, sha: &str) -> Value {
        json!({
            "label": format!("{}:{branch}", repo.owner),
            "ref": branch,
            "sha": sha,
            "user": self.user_json(&repo.owner),
            "repo": self.repo_json(&key_of(&repo.full_name())),
        })
    }

    /// A pull request; `full` adds the fields only the single-PR endpoint (and webhooks)
    /// carry.
    pub(super) fn pull_json(&self, key: &str, number: u64, full: bool) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let issue = repo.issues.get(&number)?;
        let pull = issue.pull.as_ref()?;
        let url = self.repo_api(repo, &format!("/pulls/{number}"));
        let issue_url = self.repo_api(repo, &format!("/issues/{number}"));
        let html = repo_html(repo, &format!("/pull/{number}"));
        let statuses = self.repo_api(repo, &format!("/statuses/{}", pull.head_sha));
        let base_sha = repo
            .branches
            .get(&pull.base_ref)
            .cloned()
            .unwrap_or_default();
        let labels: Vec<Value> = issue
            .labels
            .iter()
            .filter_map(|l| repo.labels.get(l))
            .map(|l| self.label_json(repo, l))
            .collect();
        let mut json = json!({
            "url": url,
            "id": pull.id,
            "node_id": format!("PR_kwDO{}", pull.id),
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "issue_url": issue_url,
            "commits_url": format!("{url}/commits"),
            "review_comments_url": format!("{url}/comments"),
            "review_comment_url": self.repo_api(repo, "/pulls/comments{/number}"),
            "comments_url": format!("{issue_url}/comments"),
            "statuses_url": statuses,
            "number": number,
            "state": state_str(issue.closed),
            "locked": issue.locked,
            "title": issue.title,
            "user": self.user_json(&issue.author),
            "body": issue.body,
            "labels": labels,
            "milestone": null,
            "active_lock_reason": null,
            "created_at": rfc3339(issue.created_at),
            "updated_at": rfc3339(issue.updated_at),
            "closed_at": issue.closed_at.map(rfc3339),
            "merged_at": pull.merged_at.map(rfc3339),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": null,
            "assignees": [],
            "requested_reviewers": pull.requested_reviewers.iter().map(|l| self.user_json(l)).collect::<Vec<_>>(),
            "requested_teams": [],
        });
        let links = json!({
            "self": { "href": url },
            "html": { "href": html },
            "issue": { "href": issue_url },
            "comments": { "href": format!("{issue_url}/comments") },
            "review_comments": { "href": format!("{url}/comments") },
            "review_comment": { "href": self.repo_api(repo, "/pulls/comments{/number}") },
            "commits": { "href": format!("{url}/commits") },
            "statuses": { "href": statuses },
        });
        // Split: one json! this large exceeds the macro recursion limit.
        merge_into(
            &mut json,
            json!({
                "head": self.branch_json(repo, &pull.head_ref, &pull.head_sha),
                "base": self.branch_json(repo, &pull.base_ref, &base_sha),
                "_links": links,
                "author_association": self.author_association(repo, &issue.author),
                "auto_merge": null,
                "draft": pull.draft,
            }),
        );
        if full {
            let merged = pull.merged_at.is_some();
            let extra = json!({
                "merged": merged,
                "mergeable": if issue.closed { Value::Null } else { json!(pull.mergeable) },
                "rebaseable": if issue.closed { Value::Null } else { json!(pull.mergeable) },
                "mergeable_state": self.mergeable_state(repo, issue, pull),
                "merged_by": pull.merged_by.as_deref().map(|l| self.user_json(l)),
                "comments": repo.comment_count(number),
                "review_comments": pull.review_comments.len(),
                "maintainer_can_modify": false,
                "commits": 1,
                "additions": 0,
                "deletions": 0,
                "changed_files": 0,
            });
            merge_into(&mut json, extra);
        }
        Some(json)
    }

    pub(super) fn review_json(&self, key: &str, number: u64, review: &Review) -> Value {
        let Some(repo) = self.repos.get(key) else {
            return Value::Null;
        };
        let html = repo_html(
            repo,
            &format!("/pull/{number}#pullrequestreview-{}", review.id),
        );
        let pr_url = self.repo_api(repo, &format!("/pulls/{number}"));
        json!({
            "id": review.id,
            "node_id": format!("PRR_kwDO{}", review.id),
            "user": self.user_json(&review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": pr_url,
            "author_association": self.author_association(repo, &review.user),
            "_links": { "html": { "href": html }, "pull_request": { "href": pr_url } },
            "submitted_at": rfc3339(review.submitted_at),
            "commit_id": review.commit_id,
        })
    }

    pub(super) fn review_comment_json(&self, repo: &Repo, number: u64, c: &ReviewComment) -> Value {
        let url = self.repo_api(repo, &format!("/pulls/comments/{}", c.id));
        let html = repo_html(repo, &format!("/pull/{number}#discussion_r{}", c.id));
        let pr_url = self.repo_api(repo, &format!("/pulls/{number}"));
        json!({
            "url": url,
            "pull_request_review_id": c.review_id,
            "id": c.id,
            "node_id": format!("PRRC_kwDO{}", c.id),
            "diff_hunk": format!("@@ -{0},1 +{0},1 @@", c.line),
            "path": c.path,
            "position": c.line,
            "original_position": c.line,
            "commit_id": c.commit_id,
            "original_commit_id": c.commit_id,
            "user": self.user_json(&c.user),
            "body": c.body,
            "created_at": rfc3339(c.created_at),
            "updated_at": rfc3339(c.created_at),
            "html_url": html,
            "pull_request_url": pr_url,
            "author_association": self.author_association(repo, &c.user),
            "_links": {
                "self": { "href": url },
                "html": { "href": html },
                "pull_request": { "href": pr_url },
            },
            "reactions": self.reactions_summary(format!("{url}/reactions"), &[]),
            "start_line": null,
            "original_start_line": null,
            "start_side": null,
            "line": c.line,
            "original_line": c.line,
            "side": "RIGHT",
            "subject_type": "line",
        })
    }

    /// Open PRs whose head is `sha`, in the minimal form check runs/suites embed.
    pub(super) fn pulls_for_sha(&self, repo: &Repo, sha: &str) -> Vec<Value> {
        let mini_repo = json!({ "id": repo.id, "url": self.repo_api(repo, ""), "name": repo.name });
        repo.issues
            .values()
            .filter(|i| !i.closed)
            .filter_map(|i| i.pull.as_ref().map(|p| (i, p)))
            .filter(|(_, p)| p.head_sha == sha)
            .map(|(i, p)| {
                json!({
                    "url": self.repo_api(repo, &format!("/pulls/{}", i.number)),
                    "id": p.id,
                    "number": i.number,
                    "head": { "ref": p.head_ref, "sha": p.head_sha, "repo": mini_repo },
                    "base": {
                        "ref": p.base_ref,
                        "sha": repo.branches.get(&p.base_ref).cloned().unwrap_or_default(),
                        "repo": mini_repo,
                    },
                })
            })
            .collect()
    }

    pub(super) fn check_run_json(&self, key: &str, id: i64) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let run = repo.check_runs.get(&id)?;
        let url = self.repo_api(repo, &format!("/check-runs/{id}"));
        let html = repo_html(repo, &format!("/runs/{id}"));
        Some(json!({
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": format!("CR_kwDO{}", run.id),
            "external_id": "",
            "url": url,
            "html_url": html,
            "details_url": html,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": rfc3339(run.started_at),
            "completed_at": run.completed_at.map(rfc3339),
            "output": {
                "title": null,
                "summary": run.summary,
                "text": null,
                "annotations_count": 0,
                "annotations_url": format!("{url}/annotations"),
            },
            "name": run.name,
            "check_suite": { "id": run.suite_id },
            "app": self.ci_app_json(),
            "pull_requests": self.pulls_for_sha(repo, &run.head_sha),
        }))
    }

    pub(super) fn check_suite_json(&self, key: &str, id: i64) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let suite = repo.check_suites.get(&id)?;
        let runs: Vec<&CheckRun> = repo
            .check_runs
            .values()
            .filter(|r| r.suite_id == id)
            .collect();
        let (status, conclusion) = suite_outcome(&runs);
        let author = json!({ "name": "Alice Example", "email": "alice@example.com" });
        Some(json!({
            "id": suite.id,
            "node_id": format!("CS_kwDO{}", suite.id),
            "head_branch": repo.branch_for_sha(&suite.head_sha),
            "head_sha": suite.head_sha,
            "status": status,
            "conclusion": conclusion,
            "url": self.repo_api(repo, &format!("/check-suites/{id}")),
            "before": null,
            "after": suite.head_sha,
            "pull_requests": self.pulls_for_sha(repo, &suite.head_sha),
            "app": self.ci_app_json(),
            "repository": self.repo_json(key),
            "created_at": rfc3339(suite.created_at),
            "updated_at": rfc3339(suite.updated_at),
            "head_commit": {
                "id": suite.head_sha,
                "tree_id": hex::encode(&Sha256::digest(suite.head_sha.as_bytes())[..20]),
                "message": "Commit under test",
                "timestamp": rfc3339(suite.created_at),
                "author": author,
                "committer": author,
            },
            "latest_check_runs_count": runs.len(),
            "check_runs_url": self.repo_api(repo, &format!("/check-suites/{id}/check-runs")),
            "rerequestable": true,
            "runs_rerequestable": true,
        }))
    }
}

/// A suite's status and conclusion from its runs: completed when all are; the conclusion
/// is the worst failing one, else `success` (or `skipped`/`neutral` when nothing succeeded).
pub(super) fn suite_outcome(runs: &[&CheckRun]) -> (&'static str, Option<String>) {
    if runs.is_empty() {
        return ("queued", None);
    }
    if !runs.iter().all(|r| r.status == "completed") {
        let started = runs.iter().any(|r| r.status != "queued");
        return (if started { "in_progress" } else { "queued" }, None);
    }
    let conclusions: Vec<&str> = runs
        .iter()
        .filter_map(|r| r.conclusion.as_deref())
        .collect();
    let conclusion = FAILING_CONCLUSIONS
        .iter()
        .find(|c| conclusions.contains(c))
        .copied()
        .unwrap_or(if conclusions.contains(&"success") {
            "success"
        } else if conclusions.iter().all(|c| *c == "skipped") {
            "skipped"
        } else {
            "neutral"
        });
    ("completed", Some(conclusion.to_string()))
}
