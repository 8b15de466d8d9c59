//! The fake's state: what exists on the fake GitHub, and the primitives that change it
//! (shared by the test-facing helpers and the HTTP handlers).

use super::*;

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum UserKind {
    User,
    Organization,
    Bot,
}

impl UserKind {
    pub(super) fn for_login(login: &str) -> Self {
        if login.ends_with("[bot]") {
            UserKind::Bot
        } else {
            UserKind::User
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            UserKind::User => "User",
            UserKind::Organization => "Organization",
            UserKind::Bot => "Bot",
        }
    }
}

pub(super) struct User {
    pub(super) id: i64,
    pub(super) login: String,
    pub(super) kind: UserKind,
}

pub(super) struct Installation {
    pub(super) id: i64,
    pub(super) account: String,
    /// Repository keys (lowercase `owner/name`).
    pub(super) repos: Vec<String>,
    pub(super) created_at: i64,
    pub(super) suspended_at: Option<i64>,
}

pub(super) struct Token {
    pub(super) installation_id: i64,
    pub(super) expires_at: SystemTime,
    /// `None`: every repository of the installation.
    pub(super) repos: Option<Vec<String>>,
    /// What it may do (`permission -> read|write`): the App's permissions unless the token
    /// request asked for fewer.
    pub(super) permissions: HashMap<String, String>,
}

pub(super) struct LabelDef {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) color: String,
}

pub(super) struct Reaction {
    pub(super) id: i64,
    pub(super) user: String,
    pub(super) content: String,
    pub(super) created_at: i64,
}

pub(super) struct Issue {
    pub(super) id: i64,
    pub(super) number: u64,
    pub(super) title: String,
    pub(super) body: Option<String>,
    pub(super) author: String,
    pub(super) closed: bool,
    pub(super) state_reason: Option<String>,
    /// Lowercase label keys into `Repo::labels`.
    pub(super) labels: Vec<String>,
    pub(super) locked: bool,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) closed_at: Option<i64>,
    pub(super) closed_by: Option<String>,
    pub(super) reactions: Vec<Reaction>,
    pub(super) pull: Option<Pull>,
    /// Its timeline's label events: (id, who, label, when).
    pub(super) labelled: Vec<(i64, String, String, i64)>,
}

pub(super) struct Pull {
    pub(super) id: i64,
    pub(super) head_ref: String,
    pub(super) head_sha: String,
    pub(super) base_ref: String,
    pub(super) draft: bool,
    pub(super) merged_at: Option<i64>,
    pub(super) merged_by: Option<String>,
    pub(super) merge_commit_sha: Option<String>,
    pub(super) mergeable: Option<bool>,
    /// The (head, base) shas `mergeable` was computed from with git, when the repository
    /// follows a git origin.
    pub(super) merge_checked: Option<(String, String)>,
    pub(super) reviews: Vec<Review>,
    pub(super) review_comments: Vec<ReviewComment>,
    /// Logins asked to review, in order.
    pub(super) requested_reviewers: Vec<String>,
}

pub(super) struct Review {
    pub(super) id: i64,
    pub(super) user: String,
    pub(super) state: String,
    pub(super) body: String,
    pub(super) commit_id: String,
    pub(super) submitted_at: i64,
}

pub(super) struct ReviewComment {
    pub(super) id: i64,
    pub(super) review_id: Option<i64>,
    pub(super) user: String,
    pub(super) path: String,
    pub(super) line: u64,
    pub(super) body: String,
    pub(super) commit_id: String,
    pub(super) created_at: i64,
}

pub(super) struct Comment {
    pub(super) id: i64,
    pub(super) issue_number: u64,
    pub(super) author: String,
    pub(super) history: Vec<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) reactions: Vec<Reaction>,
}

impl Comment {
    pub(super) fn body(&self) -> &str {
        self.history.last().map(String::as_str).unwrap_or_default()
    }
}

pub(super) struct CheckRun {
    pub(super) id: i64,
    pub(super) suite_id: i64,
    pub(super) head_sha: String,
    pub(super) name: String,
    pub(super) status: String,
    pub(super) conclusion: Option<String>,
    pub(super) started_at: i64,
    pub(super) completed_at: Option<i64>,
    /// `output.summary`, as the check's app wrote it.
    pub(super) summary: Option<String>,
}

pub(super) struct CheckSuite {
    pub(super) id: i64,
    pub(super) head_sha: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

pub(super) struct Repo {
    pub(super) id: i64,
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) private: bool,
    pub(super) default_branch: String,
    pub(super) clone_url: Option<String>,
    /// A bare git repository whose branches this repository's follow (see `follow_git`).
    pub(super) git_dir: Option<std::path::PathBuf>,
    pub(super) created_at: i64,
    /// Lowercase login → role.
    pub(super) roles: BTreeMap<String, String>,
    /// Branch name → head sha.
    pub(super) branches: BTreeMap<String, String>,
    /// (branch, path) → file content.
    pub(super) files: BTreeMap<(String, String), String>,
    /// Lowercase name → label.
    pub(super) labels: BTreeMap<String, LabelDef>,
    /// Issues and pull requests share one number space, as on GitHub.
    pub(super) issues: BTreeMap<u64, Issue>,
    pub(super) comments: BTreeMap<i64, Comment>,
    pub(super) check_runs: BTreeMap<i64, CheckRun>,
    pub(super) check_suites: BTreeMap<i64, CheckSuite>,
    pub(super) next_number: u64,
    /// Commits made through the Git database API (which GitHub signs for Apps).
    pub(super) api_commits: Vec<String>,
}

impl Repo {
    pub(super) fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    pub(super) fn label_names(&self, keys: &[String]) -> Vec<String> {
        keys.iter()
            .filter_map(|k| self.labels.get(k))
            .map(|l| l.name.clone())
            .collect()
    }

    pub(super) fn comment_count(&self, number: u64) -> usize {
        self.comments
            .values()
            .filter(|c| c.issue_number == number)
            .count()
    }

    /// The branch currently pointing at `sha`, or a PR head branch with that sha.
    pub(super) fn branch_for_sha(&self, sha: &str) -> Option<String> {
        self.branches
            .iter()
            .find(|(_, s)| *s == sha)
            .map(|(b, _)| b.clone())
            .or_else(|| {
                self.issues
                    .values()
                    .filter_map(|i| i.pull.as_ref())
                    .find(|p| p.head_sha == sha)
                    .map(|p| p.head_ref.clone())
            })
    }

    /// A branch name (or `refs/heads/x`) resolves to its sha; anything else is taken as a sha.
    pub(super) fn resolve_ref(&self, reference: &str) -> String {
        let name = reference.strip_prefix("refs/heads/").unwrap_or(reference);
        self.branches
            .get(name)
            .cloned()
            .unwrap_or_else(|| reference.to_string())
    }
}

#[derive(Clone)]
pub(super) enum FaultKind {
    Status(u16),
    RateLimit { status: u16, retry_after_secs: u64 },
    DropResponse,
}

pub(super) struct Fault {
    pub(super) method: String,
    pub(super) path_prefix: String,
    pub(super) remaining: u32,
    pub(super) kind: FaultKind,
}

pub(super) struct State {
    pub(super) base: String,
    pub(super) ids: Cell<i64>,
    /// Lowercase login → user.
    pub(super) users: BTreeMap<String, User>,
    pub(super) installations: BTreeMap<i64, Installation>,
    /// Lowercase `owner/name` → repository.
    pub(super) repos: BTreeMap<String, Repo>,
    pub(super) tokens: HashMap<String, Token>,
    pub(super) token_ttl: Duration,
    /// Whether a token request must name its repositories (foreman's rule: never an
    /// installation-wide token). On by default; GitHub itself allows both.
    pub(super) scoped_tokens_only: bool,
    pub(super) faults: Vec<Fault>,
    pub(super) requests: Vec<Recorded>,
    /// The App registration flow: pending manifest codes, the registered App, and
    /// requests held back on purpose (see `manifest_flow`).
    pub(super) flow: manifest_flow::Flow,
    /// Signing in with GitHub: who is signed in, codes and user tokens (see `oauth`).
    pub(super) oauth: super::oauth::OAuth,
}

/// Takes the next id from the shared counter (a free function so it can run while a
/// repository is mutably borrowed).
pub(super) fn bump(ids: &Cell<i64>) -> i64 {
    let id = ids.get();
    ids.set(id + 1);
    id
}

pub(super) fn key_of(full_name: &str) -> String {
    full_name.to_ascii_lowercase()
}

pub(super) fn bot_login() -> String {
    format!("{APP_SLUG}[bot]")
}

// ---------------------------------------------------------------------------------------
// State: primitives shared by helpers and HTTP handlers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub(super) enum Target {
    Issue(u64),
    Comment(i64),
}

impl State {
    pub(super) fn new(base: String) -> Self {
        State {
            base,
            ids: Cell::new(1000),
            users: BTreeMap::new(),
            installations: BTreeMap::new(),
            repos: BTreeMap::new(),
            tokens: HashMap::new(),
            token_ttl: DEFAULT_TOKEN_TTL,
            scoped_tokens_only: true,
            faults: Vec::new(),
            requests: Vec::new(),
            flow: manifest_flow::Flow::default(),
            oauth: super::oauth::OAuth::default(),
        }
    }

    pub(super) fn ensure_user(&mut self, login: &str) {
        let lower = login.to_ascii_lowercase();
        if !self.users.contains_key(&lower) {
            let id = bump(&self.ids);
            self.users.insert(
                lower,
                User {
                    id,
                    login: login.to_string(),
                    kind: UserKind::for_login(login),
                },
            );
        }
    }

    pub(super) fn installation_mut(&mut self, id: i64) -> &mut Installation {
        self.installations
            .get_mut(&id)
            .unwrap_or_else(|| panic!("fake GitHub: no installation {id}"))
    }

    pub(super) fn repo_ref(&self, repo: &str) -> &Repo {
        self.repos
            .get(&key_of(repo))
            .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    pub(super) fn repo_mut(&mut self, repo: &str) -> &mut Repo {
        self.repos
            .get_mut(&key_of(repo))
            .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    pub(super) fn issue_mut(&mut self, repo: &str, number: u64) -> &mut Issue {
        self.repo_mut(repo)
            .issues
            .get_mut(&number)
            .unwrap_or_else(|| panic!("fake GitHub: no issue {repo}#{number}"))
    }

    pub(super) fn pull_mut(&mut self, repo: &str, number: u64) -> &mut Pull {
        self.issue_mut(repo, number)
            .pull
            .as_mut()
            .unwrap_or_else(|| panic!("fake GitHub: {repo}#{number} is not a pull request"))
    }

    /// The installation whose repositories include `key`.
    pub(super) fn installation_of(&self, key: &str) -> Option<&Installation> {
        self.installations
            .values()
            .find(|i| i.repos.iter().any(|k| k == key))
    }

    pub(super) fn issue_token(
        &mut self,
        installation_id: i64,
        repos: Option<Vec<String>>,
        permissions: Option<HashMap<String, String>>,
    ) -> (String, SystemTime) {
        let token = format!("ghs_{}", hex::encode(rand::random::<[u8; 18]>()));
        let expires_at = SystemTime::now() + self.token_ttl;
        let permissions = permissions.unwrap_or_else(|| {
            app_permissions()
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        });
        self.tokens.insert(
            token.clone(),
            Token {
                installation_id,
                expires_at,
                repos,
                permissions,
            },
        );
        (token, expires_at)
    }

    pub(super) fn new_issue(
        &mut self,
        key: &str,
        author: &str,
        title: &str,
        body: Option<String>,
        pull: Option<Pull>,
    ) -> Option<u64> {
        self.ensure_user(author);
        let id = bump(&self.ids);
        let repo = self.repos.get_mut(key)?;
        let number = repo.next_number;
        repo.next_number += 1;
        let now = now_secs();
        repo.issues.insert(
            number,
            Issue {
                id,
                number,
                title: title.to_string(),
                body,
                author: author.to_string(),
                closed: false,
                state_reason: None,
                labels: Vec::new(),
                locked: false,
                created_at: now,
                updated_at: now,
                closed_at: None,
                closed_by: None,
                reactions: Vec::new(),
                pull,
                labelled: Vec::new(),
            },
        );
        Some(number)
    }

    /// Brings repositories that follow a git origin up to date with it (see `follow_git`).
    pub(super) fn sync_git(&mut self) {
        let now = now_secs();
        for repo in self.repos.values_mut() {
            let Some(dir) = repo.git_dir.clone() else {
                continue;
            };
            let Some(listing) = git_out(
                &dir,
                &[
                    "for-each-ref",
                    "--format=%(refname:short) %(objectname)",
                    "refs/heads",
                ],
            ) else {
                continue;
            };
            for line in listing.lines() {
                if let Some((branch, sha)) = line.split_once(' ') {
                    repo.branches.insert(branch.to_string(), sha.to_string());
                }
            }
            for issue in repo.issues.values_mut() {
                let closed = issue.closed;
                let Some(pull) = issue.pull.as_mut().filter(|_| !closed) else {
                    continue;
                };
                let (Some(head), Some(base)) = (
                    repo.branches.get(&pull.head_ref).cloned(),
                    repo.branches.get(&pull.base_ref).cloned(),
                ) else {
                    continue;
                };
                if pull.head_sha != head {
                    pull.head_sha = head.clone();
                    issue.updated_at = now;
                }
                let pair = (head, base);
                if pull.merge_checked.as_ref() != Some(&pair) {
                    let clean = std::process::Command::new("git")
                        .arg("--git-dir")
                        .arg(&dir)
                        .args(["merge-tree", "--write-tree", &pair.1, &pair.0])
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(true);
                    pull.mergeable = Some(clean);
                    pull.merge_checked = Some(pair);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_pull(
        &mut self,
        key: &str,
        head_ref: &str,
        base_ref: &str,
        title: &str,
        body: Option<&str>,
        author: &str,
        draft: bool,
    ) -> Option<u64> {
        let pull_id = bump(&self.ids);
        let repo = self.repos.get_mut(key)?;
        let head_sha = repo
            .branches
            .entry(head_ref.to_string())
            .or_insert_with(random_sha)
            .clone();
        repo.branches
            .entry(base_ref.to_string())
            .or_insert_with(random_sha);
        let pull = Pull {
            id: pull_id,
            head_ref: head_ref.to_string(),
            head_sha,
            base_ref: base_ref.to_string(),
            draft,
            merged_at: None,
            merged_by: None,
            merge_commit_sha: None,
            mergeable: Some(true),
            merge_checked: None,
            reviews: Vec::new(),
            review_comments: Vec::new(),
            requested_reviewers: Vec::new(),
        };
        self.new_issue(key, author, title, body.map(str::to_string), Some(pull))
    }

    pub(super) fn add_comment(
        &mut self,
        key: &str,
        number: u64,
        author: &str,
        body: &str,
    ) -> Option<i64> {
        self.ensure_user(author);
        let id = bump(&self.ids);
        let repo = self.repos.get_mut(key)?;
        let issue = repo.issues.get_mut(&number)?;
        let now = now_secs();
        issue.updated_at = now;
        repo.comments.insert(
            id,
            Comment {
                id,
                issue_number: number,
                author: author.to_string(),
                history: vec![body.to_string()],
                created_at: now,
                updated_at: now,
                reactions: Vec::new(),
            },
        );
        Some(id)
    }

    pub(super) fn edit_comment(&mut self, key: &str, comment_id: i64, body: &str) -> bool {
        let Some(comment) = self
            .repos
            .get_mut(key)
            .and_then(|r| r.comments.get_mut(&comment_id))
        else {
            return false;
        };
        comment.history.push(body.to_string());
        comment.updated_at = now_secs();
        true
    }

    pub(super) fn add_labels(&mut self, key: &str, number: u64, names: &[String]) {
        let Some(repo) = self.repos.get_mut(key) else {
            return;
        };
        for name in names {
            let lower = name.to_lowercase();
            if !repo.labels.contains_key(&lower) {
                let id = bump(&self.ids);
                repo.labels.insert(
                    lower.clone(),
                    LabelDef {
                        id,
                        name: name.clone(),
                        color: "ededed".to_string(),
                    },
                );
            }
            if let Some(issue) = repo.issues.get_mut(&number)
                && !issue.labels.contains(&lower)
            {
                issue.labels.push(lower);
                issue.updated_at = now_secs();
            }
        }
    }

    /// Adds a reaction unless `login` already reacted with `content`; returns the
    /// reaction id and whether it is new. `None` if the target does not exist or the
    /// content is not a GitHub reaction.
    pub(super) fn react(
        &mut self,
        key: &str,
        target: Target,
        login: &str,
        content: &str,
    ) -> Option<(i64, bool)> {
        if !REACTION_CONTENTS.contains(&content) {
            return None;
        }
        self.ensure_user(login);
        let id = bump(&self.ids);
        let repo = self.repos.get_mut(key)?;
        let reactions = match target {
            Target::Issue(n) => &mut repo.issues.get_mut(&n)?.reactions,
            Target::Comment(c) => &mut repo.comments.get_mut(&c)?.reactions,
        };
        if let Some(existing) = reactions
            .iter()
            .find(|r| r.user.eq_ignore_ascii_case(login) && r.content == content)
        {
            return Some((existing.id, false));
        }
        reactions.push(Reaction {
            id,
            user: login.to_string(),
            content: content.to_string(),
            created_at: now_secs(),
        });
        Some((id, true))
    }

    pub(super) fn reactions(&self, key: &str, target: Target) -> Option<&Vec<Reaction>> {
        let repo = self.repos.get(key)?;
        match target {
            Target::Issue(n) => repo.issues.get(&n).map(|i| &i.reactions),
            Target::Comment(c) => repo.comments.get(&c).map(|c| &c.reactions),
        }
    }

    pub(super) fn reactions_mut(
        &mut self,
        key: &str,
        target: Target,
    ) -> Option<&mut Vec<Reaction>> {
        let repo = self.repos.get_mut(key)?;
        match target {
            Target::Issue(n) => repo.issues.get_mut(&n).map(|i| &mut i.reactions),
            Target::Comment(c) => repo.comments.get_mut(&c).map(|c| &mut c.reactions),
        }
    }

    /// The legacy permission and the role of `login` on a repository.
    pub(super) fn role_of(&self, repo: &Repo, login: &str) -> String {
        let lower = login.to_ascii_lowercase();
        if let Some(role) = repo.roles.get(&lower) {
            return role.clone();
        }
        let owner_is_user = self
            .users
            .get(&repo.owner.to_ascii_lowercase())
            .is_some_and(|u| u.kind == UserKind::User);
        if owner_is_user && repo.owner.eq_ignore_ascii_case(login) {
            return "admin".to_string();
        }
        if repo.private {
            "none".to_string()
        } else {
            "read".to_string()
        }
    }

    pub(super) fn author_association(&self, repo: &Repo, login: &str) -> &'static str {
        if repo.owner.eq_ignore_ascii_case(login) {
            "OWNER"
        } else if repo.roles.contains_key(&login.to_ascii_lowercase()) {
            "COLLABORATOR"
        } else {
            "NONE"
        }
    }
}
