//! A stateful fake of the GitHub REST API, served over real HTTP on 127.0.0.1.
//!
//! Why a stateful fake: foreman's behaviour depends on what exists on GitHub (which comments
//! it already posted, which labels an issue carries, whether a PR merged). A fake that
//! answers with canned JSON cannot tell a retried "create comment" from a first one. This
//! one keeps the *state* (installations, repositories, issues, comments, pull requests,
//! check runs, files, tokens) and derives every response from it, so a test can ask
//! "how many comments did foreman leave?" and get the truth.
//!
//! The response JSON carries every field octocrab 0.54's models require, so the real
//! octocrab client (and foreman's own client) can talk to it:
//!
//! ```ignore
//! let fake = FakeGitHub::start().await;
//! let inst = fake.add_installation("acme");
//! fake.add_repo(inst, "acme/widgets");
//! let n = fake.create_issue("acme/widgets", "alice", "Fix it", "please");
//! let token = fake.installation_token(inst); // or mint a JWT and POST access_tokens
//! let gh = octocrab::Octocrab::builder().base_uri(fake.url())?.personal_token(token).build()?;
//! gh.issues("acme", "widgets").create_comment(n, "on it").await?;
//! assert_eq!(fake.comments("acme/widgets", n)[0].author, fake.bot_login());
//! ```
//!
//! Conventions:
//! - Repositories are named `"owner/name"` everywhere (case-insensitive, like GitHub).
//! - Setup and inspection helpers panic on misuse (an unknown repository or issue): they
//!   are test code, and a loud failure is what a test wants.
//! - Users spring into existence when first named. A login ending in `[bot]` is a Bot.
//!   The App's own bot is `<slug>[bot]`; everything done with an installation token is
//!   done as that bot.
//! - Authentication is enforced like GitHub: App JWT (RS256, `iss` = app id, `exp - iat`
//!   at most 600 s, `iat` at most 60 s in the future) for `/app/**` and
//!   `/repos/{o}/{r}/installation`; an installation token for everything else, limited to
//!   that installation's repositories (anything else is a 404, as on GitHub).
//! - Every request is recorded (see [`FakeGitHub::requests`]), including ones no route
//!   matched; those get `404 {"message":"Not Found"}`.
//! - GET responses carry an `ETag` (a hash of the body, so it changes exactly when the
//!   state behind the response changes) and honour `If-None-Match` with a 304.
//!
//! Documented modelling choices (where GitHub's behaviour is subtle):
//! - `GET /repos/{o}/{r}/collaborators/{login}/permission`: for a user with no grant on a
//!   private repository GitHub answers 200 with `permission: "none"` and `role_name: ""`
//!   (not a 404); on a public repository every user reads as `"read"`. A login GitHub
//!   has never heard of is a 404. The repository owner (a user account) is `admin`.
//!   `permission` is the legacy value (`maintain` → `write`, `triage` → `read`);
//!   `role_name` is the real role. Note: octocrab 0.54's `RepoPermission` model only
//!   accepts `admin|maintain|push|triage|pull` for `permission`, so its
//!   `get_contributor_permission` fails to deserialize `"write"`, `"read"` and `"none"`.
//! - `GET /repos/{o}/{r}/pulls?head=branch` without an `owner:` prefix ignores the filter
//!   (GitHub does too); use `head=owner:branch`.
//! - `GET /repos/{o}/{r}/pulls` (the list) omits the detail fields GitHub omits there:
//!   `mergeable`, `mergeable_state`, `merged`, `merged_by`, `comments`, `commits`, …
//! - `POST /repos/{o}/{r}/pulls` with an unknown head branch creates that branch with a
//!   random sha (foreman pushes to a real git remote the fake knows nothing about).
//! - A check suite's status/conclusion is derived from its runs.
//! - Like GitHub, every PATCH endpoint also accepts POST (octocrab 0.54's
//!   `update_comment` sends POST).
//! - A branch name with slashes may appear unencoded in `/commits/{ref}/check-runs`.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod auth;
mod git_data;
mod handlers;
mod json;
mod manifest_flow;
pub mod oauth;
mod routes;
mod state;

use auth::*;
use json::*;
use routes::*;
use state::*;

/// The fake App's id (the `iss` of its JWTs).
const APP_ID: i64 = 424_242;
/// The fake App's slug; its bot user is `foreman-test[bot]`.
const APP_SLUG: &str = "foreman-test";
/// The user account that owns the fake App.
const APP_OWNER: &str = "foreman-dev";
/// The organization owning the CI app that check runs come from.
const CI_APP_OWNER: &str = "github";
/// Installation tokens last one hour on GitHub.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// GitHub rejects App JWTs whose `exp - iat` exceeds ten minutes.
const MAX_JWT_LIFETIME_SECS: i64 = 600;
/// GitHub tolerates this much clock drift on a JWT's `iat`.
const MAX_JWT_IAT_SKEW_SECS: i64 = 60;
/// Page size when the request names none.
const DEFAULT_PER_PAGE: usize = 30;
/// GitHub caps `per_page` at 100.
const MAX_PER_PAGE: usize = 100;
/// GitHub's limit on issue and comment bodies, in characters.
const MAX_BODY_CHARS: usize = 65_536;
/// Where `html_url`s point (never fetched).
const HTML_BASE: &str = "https://github.com";
/// `documentation_url` in error bodies.
const DOCS_URL: &str = "https://docs.github.com/rest";
/// The reaction contents GitHub accepts.
const REACTION_CONTENTS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];
/// Repository roles accepted by [`FakeGitHub::set_permission`].
const ROLES: [&str; 6] = ["admin", "maintain", "write", "triage", "read", "none"];
/// Check-run conclusions that fail a suite, worst first.
const FAILING_CONCLUSIONS: [&str; 5] = [
    "action_required",
    "startup_failure",
    "cancelled",
    "timed_out",
    "failure",
];

// ---------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------

/// A fake GitHub; cheap to clone (all clones share one state and one server).
#[derive(Clone)]
pub struct FakeGitHub {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    state: Mutex<State>,
}

/// One HTTP request the fake received, as recorded before it was answered.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without the query string, e.g. `/repos/acme/widgets/issues/1/comments`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// The JSON body, if there was one (a non-JSON body is kept as a JSON string).
    pub body: Option<Value>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// The status the fake answered with.
    pub status: u16,
}

/// An issue (or the issue side of a pull request) as it stands now.
#[derive(Clone, Debug)]
pub struct IssueSnapshot {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    /// `"open"` or `"closed"`.
    pub state: String,
    pub state_reason: Option<String>,
    pub author: String,
    /// Label names, in the order they were added.
    pub labels: Vec<String>,
    pub locked: bool,
    pub is_pull_request: bool,
    pub reactions: Vec<ReactionSnapshot>,
    /// Number of (undeleted) issue comments.
    pub comment_count: usize,
    pub closed_by: Option<String>,
}

/// An issue comment as it stands now, with its edit history.
#[derive(Clone, Debug)]
pub struct CommentSnapshot {
    pub id: i64,
    pub issue_number: u64,
    pub author: String,
    pub body: String,
    /// Every body the comment has had, oldest first; the last one is `body`.
    pub history: Vec<String>,
    pub reactions: Vec<ReactionSnapshot>,
}

impl CommentSnapshot {
    /// How many times the comment was edited.
    pub fn edit_count(&self) -> usize {
        self.history.len().saturating_sub(1)
    }
}

/// One reaction: who reacted with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionSnapshot {
    pub id: i64,
    pub user: String,
    /// `+1`, `-1`, `laugh`, `confused`, `heart`, `hooray`, `rocket` or `eyes`.
    pub content: String,
}

/// A pull request as it stands now.
#[derive(Clone, Debug)]
pub struct PullSnapshot {
    pub number: u64,
    pub id: i64,
    pub title: String,
    pub body: Option<String>,
    /// `"open"` or `"closed"` (a merged PR is closed).
    pub state: String,
    pub author: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub draft: bool,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
    pub mergeable: Option<bool>,
    pub labels: Vec<String>,
    /// Logins asked to review it.
    pub requested_reviewers: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

impl FakeGitHub {
    /// Starts a fake on a random port of 127.0.0.1, served by a task on the current runtime.
    pub async fn start() -> FakeGitHub {
        tokio::task::spawn_blocking(app_keys)
            .await
            .expect("key generation task");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake GitHub");
        let addr = listener.local_addr().expect("fake GitHub address");
        let base = format!("http://{addr}");
        let fake = FakeGitHub {
            inner: Arc::new(Inner {
                base: base.clone(),
                state: Mutex::new(State::new(base)),
            }),
        };
        {
            let mut st = fake.lock();
            st.ensure_user(APP_OWNER);
            st.ensure_user(&bot_login());
            st.ensure_user(CI_APP_OWNER);
            if let Some(github) = st.users.get_mut(CI_APP_OWNER) {
                github.kind = UserKind::Organization;
            }
        }
        let router = Router::new().fallback(serve).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        fake
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        self.inner.base.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every other user of the fake.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // --- the App ------------------------------------------------------------------------

    /// The App's id (`iss` of its JWTs).
    pub fn app_id(&self) -> i64 {
        APP_ID
    }

    /// The App's slug.
    pub fn app_slug(&self) -> &'static str {
        APP_SLUG
    }

    /// The App's bot user, `<slug>[bot]`: the author of everything done with an
    /// installation token.
    pub fn bot_login(&self) -> String {
        bot_login()
    }

    /// The App's private key, PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), as GitHub
    /// hands it out.
    pub fn private_key_pem(&self) -> String {
        app_keys().pkcs1_pem.clone()
    }

    /// The same key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn private_key_pkcs8_pem(&self) -> String {
        app_keys().pkcs8_pem.clone()
    }

    /// A valid App JWT (iat 60 s ago, exp in 9 minutes), for tests that need App auth
    /// without minting their own.
    pub fn app_jwt(&self) -> String {
        let now = now_secs();
        let claims = json!({ "iat": now - 60, "exp": now + 540, "iss": APP_ID.to_string() });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &app_keys().encoding,
        )
        .expect("sign App JWT")
    }

    /// Lifetime of installation tokens issued from now on (default one hour). A zero TTL
    /// issues tokens that are already expired.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().token_ttl = ttl;
    }

    /// Accepts token requests that name no repository (as GitHub does). By default the fake
    /// refuses them with 422, so that foreman asking for an installation-wide token fails a
    /// test.
    pub fn allow_unscoped_tokens(&self) {
        self.lock().scoped_tokens_only = false;
    }

    /// Every installation token the fake has issued (canaries for leak tests).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// The bodies of every access-token request foreman made, in order.
    pub fn token_requests(&self) -> Vec<Value> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/access_tokens"))
            .map(|r| r.body.clone().unwrap_or(Value::Null))
            .collect()
    }

    // --- installations and repositories ---------------------------------------------------

    /// Installs the App on `account` (created as a user if unknown); returns the
    /// installation id.
    pub fn add_installation(&self, account: &str) -> i64 {
        let mut st = self.lock();
        st.ensure_user(account);
        let id = bump(&st.ids);
        st.installations.insert(
            id,
            Installation {
                id,
                account: account.to_string(),
                repos: Vec::new(),
                created_at: now_secs(),
                suspended_at: None,
            },
        );
        id
    }

    /// Adds repository `owner/name` (default branch `main`, private) to an installation;
    /// returns the repository id. An existing repository moves to this installation.
    pub fn add_repo(&self, installation_id: i64, full_name: &str) -> i64 {
        let mut st = self.lock();
        let key = key_of(full_name);
        let (owner, name) = full_name
            .split_once('/')
            .unwrap_or_else(|| panic!("fake GitHub: repository {full_name:?} is not owner/name"));
        assert!(
            st.installations.contains_key(&installation_id),
            "fake GitHub: no installation {installation_id}"
        );
        st.ensure_user(owner);
        if !st.repos.contains_key(&key) {
            let id = bump(&st.ids);
            let mut branches = BTreeMap::new();
            branches.insert("main".to_string(), random_sha());
            st.repos.insert(
                key.clone(),
                Repo {
                    id,
                    owner: owner.to_string(),
                    name: name.to_string(),
                    private: true,
                    default_branch: "main".to_string(),
                    clone_url: None,
                    git_dir: None,
                    created_at: now_secs(),
                    roles: BTreeMap::new(),
                    branches,
                    files: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    issues: BTreeMap::new(),
                    comments: BTreeMap::new(),
                    check_runs: BTreeMap::new(),
                    check_suites: BTreeMap::new(),
                    next_number: 1,
                    api_commits: Vec::new(),
                },
            );
        }
        for inst in st.installations.values_mut() {
            inst.repos.retain(|k| *k != key);
        }
        if let Some(inst) = st.installations.get_mut(&installation_id) {
            inst.repos.push(key.clone());
        }
        st.repos[&key].id
    }

    /// Takes a repository out of an installation (the repository stays on GitHub).
    pub fn remove_repo(&self, installation_id: i64, full_name: &str) {
        let mut st = self.lock();
        let key = key_of(full_name);
        st.installation_mut(installation_id)
            .repos
            .retain(|k| *k != key);
    }

    /// Suspends an installation: its tokens stop working (403) and no new ones are issued.
    pub fn suspend_installation(&self, installation_id: i64) {
        let mut st = self.lock();
        let inst = st.installation_mut(installation_id);
        inst.suspended_at = Some(now_secs());
    }

    /// Lifts a suspension.
    pub fn unsuspend_installation(&self, installation_id: i64) {
        let mut st = self.lock();
        st.installation_mut(installation_id).suspended_at = None;
    }

    /// Uninstalls the App: the installation is gone (404) and its tokens are bad
    /// credentials (401). Its repositories stay on GitHub but are no longer reachable.
    pub fn remove_installation(&self, installation_id: i64) {
        let mut st = self.lock();
        st.installations.remove(&installation_id);
    }

    /// Issues an installation token directly (no HTTP, not recorded), as
    /// `POST /app/installations/{id}/access_tokens` would.
    pub fn installation_token(&self, installation_id: i64) -> String {
        let mut st = self.lock();
        assert!(
            st.installations.contains_key(&installation_id),
            "fake GitHub: no installation {installation_id}"
        );
        st.issue_token(installation_id, None, None).0
    }

    /// Makes `login` an organization (affects `type` in its JSON and owner permissions).
    pub fn make_organization(&self, login: &str) {
        let mut st = self.lock();
        st.ensure_user(login);
        if let Some(user) = st.users.get_mut(&login.to_ascii_lowercase()) {
            user.kind = UserKind::Organization;
        }
    }

    /// Public or private (the default).
    pub fn set_private(&self, repo: &str, private: bool) {
        self.lock().repo_mut(repo).private = private;
    }

    /// What `clone_url` reports, e.g. a `file://` URL of a local bare repository.
    pub fn set_clone_url(&self, repo: &str, url: &str) {
        self.lock().repo_mut(repo).clone_url = Some(url.to_string());
    }

    /// Makes the repository's branches those of the bare git repository `git_dir`, as GitHub's
    /// are those of its own git storage: before each request (and each snapshot) the fake
    /// reads the branches, moves the heads of open pull requests that were pushed to, and
    /// computes `mergeable` with `git merge-tree` when a head or base moved.
    pub fn follow_git(&self, repo: &str, git_dir: &std::path::Path) {
        let mut st = self.lock();
        st.repo_mut(repo).git_dir = Some(git_dir.to_path_buf());
        st.sync_git();
    }

    /// Points `branch` at `sha` (creating it).
    pub fn set_branch(&self, repo: &str, branch: &str, sha: &str) {
        self.lock()
            .repo_mut(repo)
            .branches
            .insert(branch.to_string(), sha.to_string());
    }

    /// The commits made through the Git database API, oldest first: GitHub signs these
    /// when an App makes them.
    pub fn api_commits(&self, repo: &str) -> Vec<String> {
        self.lock().repo_ref(repo).api_commits.clone()
    }

    /// The sha `branch` points at.
    pub fn branch_sha(&self, repo: &str, branch: &str) -> Option<String> {
        self.lock().repo_ref(repo).branches.get(branch).cloned()
    }

    /// Puts a file on a branch, served by `GET /repos/{o}/{r}/contents/{path}?ref=`.
    pub fn set_file(&self, repo: &str, branch: &str, path: &str, content: &str) {
        let mut st = self.lock();
        let r = st.repo_mut(repo);
        r.branches
            .entry(branch.to_string())
            .or_insert_with(random_sha);
        r.files.insert(
            (branch.to_string(), path.trim_start_matches('/').to_string()),
            content.to_string(),
        );
    }

    // --- users and permissions ------------------------------------------------------------

    /// Grants `login` a role on `repo`: `admin`, `maintain`, `write`, `triage`, `read` or
    /// `none` (removes the grant).
    pub fn set_permission(&self, repo: &str, login: &str, role: &str) {
        assert!(ROLES.contains(&role), "fake GitHub: unknown role {role:?}");
        let mut st = self.lock();
        st.ensure_user(login);
        let r = st.repo_mut(repo);
        if role == "none" {
            r.roles.remove(&login.to_ascii_lowercase());
        } else {
            r.roles.insert(login.to_ascii_lowercase(), role.to_string());
        }
    }

    /// Makes sure a user exists (so permission lookups find it) without granting anything.
    pub fn add_user(&self, login: &str) {
        self.lock().ensure_user(login);
    }

    // --- issues and comments --------------------------------------------------------------

    /// Opens an issue as `author`; returns its number.
    pub fn create_issue(&self, repo: &str, author: &str, title: &str, body: &str) -> u64 {
        let mut st = self.lock();
        st.new_issue(&key_of(repo), author, title, Some(body.to_string()), None)
            .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    /// Adds a label to an issue or PR (as a human would), creating the label if needed.
    pub fn add_label(&self, repo: &str, number: u64, label: &str) {
        let mut st = self.lock();
        st.issue_mut(repo, number);
        st.add_labels(&key_of(repo), number, &[label.to_string()]);
    }

    /// `actor` adds a label to an issue, as its timeline records it (`GET …/events`); no
    /// webhook is sent.
    pub fn add_label_by(&self, repo: &str, number: u64, label: &str, actor: &str) {
        let mut st = self.lock();
        st.ensure_user(actor);
        st.issue_mut(repo, number);
        st.add_labels(&key_of(repo), number, &[label.to_string()]);
        let id = bump(&st.ids);
        let issue = st.issue_mut(repo, number);
        issue
            .labelled
            .push((id, actor.to_string(), label.to_string(), now_secs()));
    }

    /// Removes a label from an issue or PR.
    pub fn remove_label(&self, repo: &str, number: u64, label: &str) {
        let mut st = self.lock();
        let lower = label.to_lowercase();
        let issue = st.issue_mut(repo, number);
        issue.labels.retain(|l| *l != lower);
        issue.updated_at = now_secs();
    }

    /// Edits an issue's body (as a person would).
    pub fn edit_issue(&self, repo: &str, number: u64, body: &str) {
        let mut st = self.lock();
        let issue = st.issue_mut(repo, number);
        issue.body = Some(body.to_string());
        issue.updated_at = now_secs();
    }

    /// Closes an issue as the repository owner (state reason `completed`).
    pub fn close_issue(&self, repo: &str, number: u64) {
        let mut st = self.lock();
        let owner = st.repo_ref(repo).owner.clone();
        set_issue_state(st.issue_mut(repo, number), true, None, &owner);
    }

    /// Reopens an issue.
    pub fn reopen_issue(&self, repo: &str, number: u64) {
        let mut st = self.lock();
        let owner = st.repo_ref(repo).owner.clone();
        set_issue_state(st.issue_mut(repo, number), false, None, &owner);
    }

    /// The issue (or PR issue) as it stands now.
    pub fn issue(&self, repo: &str, number: u64) -> IssueSnapshot {
        let st = self.lock();
        let r = st.repo_ref(repo);
        let i = r
            .issues
            .get(&number)
            .unwrap_or_else(|| panic!("fake GitHub: no issue {repo}#{number}"));
        IssueSnapshot {
            number,
            title: i.title.clone(),
            body: i.body.clone(),
            state: state_str(i.closed).to_string(),
            state_reason: i.state_reason.clone(),
            author: i.author.clone(),
            labels: r.label_names(&i.labels),
            locked: i.locked,
            is_pull_request: i.pull.is_some(),
            reactions: reaction_snapshots(&i.reactions),
            comment_count: r.comment_count(number),
            closed_by: i.closed_by.clone(),
        }
    }

    /// The issue's comments, oldest first.
    pub fn comments(&self, repo: &str, number: u64) -> Vec<CommentSnapshot> {
        let st = self.lock();
        st.repo_ref(repo)
            .comments
            .values()
            .filter(|c| c.issue_number == number)
            .map(comment_snapshot)
            .collect()
    }

    /// One comment by id, if it exists (deleted comments do not).
    pub fn comment(&self, repo: &str, comment_id: i64) -> Option<CommentSnapshot> {
        let st = self.lock();
        st.repo_ref(repo)
            .comments
            .get(&comment_id)
            .map(comment_snapshot)
    }

    /// A human (`login`) comments on an issue or PR; returns the comment id.
    pub fn add_comment_as(&self, repo: &str, number: u64, login: &str, body: &str) -> i64 {
        let mut st = self.lock();
        st.add_comment(&key_of(repo), number, login, body)
            .unwrap_or_else(|| panic!("fake GitHub: no issue {repo}#{number}"))
    }

    /// A human edits a comment.
    pub fn edit_comment_as(&self, repo: &str, comment_id: i64, body: &str) {
        let mut st = self.lock();
        assert!(
            st.edit_comment(&key_of(repo), comment_id, body),
            "fake GitHub: no comment {comment_id} in {repo}"
        );
    }

    /// A human deletes a comment.
    pub fn delete_comment(&self, repo: &str, comment_id: i64) {
        let mut st = self.lock();
        st.repo_mut(repo).comments.remove(&comment_id);
    }

    /// `login` reacts to an issue or PR; returns the reaction id.
    pub fn react_to_issue_as(&self, repo: &str, number: u64, login: &str, content: &str) -> i64 {
        let mut st = self.lock();
        st.react(&key_of(repo), Target::Issue(number), login, content)
            .unwrap_or_else(|| panic!("fake GitHub: cannot react to {repo}#{number}"))
            .0
    }

    /// `login` reacts to a comment; returns the reaction id.
    pub fn react_to_comment_as(
        &self,
        repo: &str,
        comment_id: i64,
        login: &str,
        content: &str,
    ) -> i64 {
        let mut st = self.lock();
        st.react(&key_of(repo), Target::Comment(comment_id), login, content)
            .unwrap_or_else(|| panic!("fake GitHub: cannot react to comment {comment_id}"))
            .0
    }

    // --- pull requests --------------------------------------------------------------------

    /// Opens a pull request from `head_ref` into `base_ref` as `author`; returns its number.
    /// The head branch is created with a random sha if the fake does not know it yet.
    pub fn create_pull(
        &self,
        repo: &str,
        head_ref: &str,
        base_ref: &str,
        title: &str,
        body: &str,
        author: &str,
    ) -> u64 {
        let mut st = self.lock();
        st.open_pull(
            &key_of(repo),
            head_ref,
            base_ref,
            title,
            Some(body),
            author,
            false,
        )
        .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    /// The pull request as it stands now.
    pub fn pull(&self, repo: &str, number: u64) -> PullSnapshot {
        let mut st = self.lock();
        st.sync_git();
        let r = st.repo_ref(repo);
        let i = r
            .issues
            .get(&number)
            .unwrap_or_else(|| panic!("fake GitHub: no pull request {repo}#{number}"));
        let p = i
            .pull
            .as_ref()
            .unwrap_or_else(|| panic!("fake GitHub: {repo}#{number} is an issue, not a PR"));
        PullSnapshot {
            number,
            id: p.id,
            title: i.title.clone(),
            body: i.body.clone(),
            state: state_str(i.closed).to_string(),
            author: i.author.clone(),
            head_ref: p.head_ref.clone(),
            head_sha: p.head_sha.clone(),
            base_ref: p.base_ref.clone(),
            draft: p.draft,
            merged: p.merged_at.is_some(),
            merge_commit_sha: p.merge_commit_sha.clone(),
            mergeable: p.mergeable,
            labels: r.label_names(&i.labels),
            requested_reviewers: p.requested_reviewers.clone(),
        }
    }

    /// Every pull request of the repository, by number.
    pub fn pulls(&self, repo: &str) -> Vec<PullSnapshot> {
        let numbers: Vec<u64> = {
            let st = self.lock();
            let r = st.repo_ref(repo);
            r.issues
                .iter()
                .filter(|(_, i)| i.pull.is_some())
                .map(|(n, _)| *n)
                .collect()
        };
        let mut pulls: Vec<PullSnapshot> =
            numbers.into_iter().map(|n| self.pull(repo, n)).collect();
        pulls.sort_by_key(|p| p.number);
        pulls
    }

    /// A push to the PR's head branch: the head (and the branch) now point at `sha`.
    pub fn set_pull_head(&self, repo: &str, number: u64, sha: &str) {
        let mut st = self.lock();
        let pull = st.pull_mut(repo, number);
        pull.head_sha = sha.to_string();
        let head_ref = pull.head_ref.clone();
        st.issue_mut(repo, number).updated_at = now_secs();
        st.repo_mut(repo).branches.insert(head_ref, sha.to_string());
    }

    /// Merges the PR (as the repository owner); returns the merge commit sha, which the
    /// base branch now points at.
    pub fn merge_pull(&self, repo: &str, number: u64) -> String {
        let mut st = self.lock();
        let owner = st.repo_ref(repo).owner.clone();
        let sha = random_sha();
        let now = now_secs();
        let pull = st.pull_mut(repo, number);
        assert!(
            pull.merged_at.is_none(),
            "fake GitHub: {repo}#{number} already merged"
        );
        pull.merged_at = Some(now);
        pull.merged_by = Some(owner.clone());
        pull.merge_commit_sha = Some(sha.clone());
        let base_ref = pull.base_ref.clone();
        let issue = st.issue_mut(repo, number);
        set_issue_state(issue, true, None, &owner);
        issue.state_reason = None;
        let body = issue.body.clone().unwrap_or_default();
        let r = st.repo_mut(repo);
        r.branches.insert(base_ref.clone(), sha.clone());
        // GitHub closes the issues a PR says it closes when it merges into the default branch.
        if base_ref == r.default_branch {
            for closed in closing_references(&body) {
                if let Some(issue) = r.issues.get_mut(&closed).filter(|i| i.pull.is_none()) {
                    set_issue_state(issue, true, Some("completed".to_string()), &owner);
                }
            }
        }
        sha
    }

    /// Closes the PR without merging (as the repository owner).
    pub fn close_pull(&self, repo: &str, number: u64) {
        let mut st = self.lock();
        let owner = st.repo_ref(repo).owner.clone();
        st.pull_mut(repo, number);
        let issue = st.issue_mut(repo, number);
        set_issue_state(issue, true, None, &owner);
        issue.state_reason = None;
    }

    /// `mergeable` as GitHub computes it: `None` while it is still computing.
    pub fn set_mergeable(&self, repo: &str, number: u64, mergeable: Option<bool>) {
        self.lock().pull_mut(repo, number).mergeable = mergeable;
    }

    /// Marks the PR draft or ready for review.
    pub fn set_draft(&self, repo: &str, number: u64, draft: bool) {
        self.lock().pull_mut(repo, number).draft = draft;
    }

    /// `login` submits a review: `state` is `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`,
    /// `DISMISSED` or `PENDING`. Returns the review id.
    pub fn add_review(&self, repo: &str, number: u64, login: &str, state: &str, body: &str) -> i64 {
        let mut st = self.lock();
        st.ensure_user(login);
        let id = bump(&st.ids);
        let pull = st.pull_mut(repo, number);
        let commit_id = pull.head_sha.clone();
        pull.reviews.push(Review {
            id,
            user: login.to_string(),
            state: state.to_ascii_uppercase(),
            body: body.to_string(),
            commit_id,
            submitted_at: now_secs(),
        });
        id
    }

    /// `login` leaves a review comment on `path` at `line` of the PR's head. Returns its id.
    pub fn add_review_comment(
        &self,
        repo: &str,
        number: u64,
        login: &str,
        path: &str,
        line: u64,
        body: &str,
    ) -> i64 {
        let mut st = self.lock();
        st.ensure_user(login);
        let id = bump(&st.ids);
        let pull = st.pull_mut(repo, number);
        let commit_id = pull.head_sha.clone();
        pull.review_comments.push(ReviewComment {
            id,
            review_id: None,
            user: login.to_string(),
            path: path.to_string(),
            line,
            body: body.to_string(),
            commit_id,
            created_at: now_secs(),
        });
        id
    }

    /// `login` submits a review with inline comments, as GitHub does when a reviewer
    /// finishes a review: `comments` are `(path, line, body)`. Returns the review id and the
    /// comments' ids.
    pub fn add_review_with_comments(
        &self,
        repo: &str,
        number: u64,
        login: &str,
        state: &str,
        body: &str,
        comments: &[(&str, u64, &str)],
    ) -> (i64, Vec<i64>) {
        let review_id = self.add_review(repo, number, login, state, body);
        let ids = comments
            .iter()
            .map(|(path, line, text)| {
                let id = self.add_review_comment(repo, number, login, path, *line, text);
                let mut st = self.lock();
                let pull = st.pull_mut(repo, number);
                let c = pull
                    .review_comments
                    .iter_mut()
                    .find(|c| c.id == id)
                    .unwrap();
                c.review_id = Some(review_id);
                id
            })
            .collect();
        (review_id, ids)
    }

    /// One review comment as in `GET /repos/{o}/{r}/pulls/comments/{id}`.
    pub fn review_comment_json(&self, repo: &str, number: u64, comment_id: i64) -> Value {
        let st = self.lock();
        let r = st.repo_ref(repo);
        let c = r
            .issues
            .get(&number)
            .and_then(|i| i.pull.as_ref())
            .and_then(|p| p.review_comments.iter().find(|c| c.id == comment_id))
            .unwrap_or_else(|| panic!("fake GitHub: no review comment {comment_id}"));
        st.review_comment_json(r, number, c)
    }

    // --- checks ---------------------------------------------------------------------------

    /// A CI check run on `head_sha`: `status` is `queued`, `in_progress` or `completed`
    /// (which needs a `conclusion`: `success`, `failure`, `neutral`, `cancelled`,
    /// `skipped`, `timed_out`, `action_required`). Runs on one sha share a check suite.
    /// Returns the run id.
    pub fn add_check_run(
        &self,
        repo: &str,
        head_sha: &str,
        name: &str,
        status: &str,
        conclusion: Option<&str>,
    ) -> i64 {
        check_status_args(status, conclusion);
        let mut st = self.lock();
        let now = now_secs();
        let run_id = bump(&st.ids);
        let new_suite_id = bump(&st.ids);
        let r = st.repo_mut(repo);
        let suite_id = match r.check_suites.values_mut().find(|s| s.head_sha == head_sha) {
            Some(suite) => {
                suite.updated_at = now;
                suite.id
            }
            None => {
                r.check_suites.insert(
                    new_suite_id,
                    CheckSuite {
                        id: new_suite_id,
                        head_sha: head_sha.to_string(),
                        created_at: now,
                        updated_at: now,
                    },
                );
                new_suite_id
            }
        };
        r.check_runs.insert(
            run_id,
            CheckRun {
                id: run_id,
                suite_id,
                head_sha: head_sha.to_string(),
                name: name.to_string(),
                status: status.to_string(),
                conclusion: conclusion.map(str::to_string),
                started_at: now,
                completed_at: (status == "completed").then_some(now),
                summary: None,
            },
        );
        run_id
    }

    /// Moves a check run to a new status/conclusion.
    /// Sets a check run's `output.summary` (what its app reported).
    pub fn set_check_run_summary(&self, repo: &str, run_id: i64, summary: &str) {
        let mut st = self.lock();
        let r = st.repo_mut(repo);
        let run = r
            .check_runs
            .get_mut(&run_id)
            .unwrap_or_else(|| panic!("fake GitHub: no check run {run_id}"));
        run.summary = Some(summary.to_owned());
    }

    pub fn update_check_run(
        &self,
        repo: &str,
        run_id: i64,
        status: &str,
        conclusion: Option<&str>,
    ) {
        check_status_args(status, conclusion);
        let mut st = self.lock();
        let now = now_secs();
        let r = st.repo_mut(repo);
        let run = r
            .check_runs
            .get_mut(&run_id)
            .unwrap_or_else(|| panic!("fake GitHub: no check run {run_id}"));
        run.status = status.to_string();
        run.conclusion = conclusion.map(str::to_string);
        run.completed_at = (status == "completed").then_some(now);
        let suite_id = run.suite_id;
        if let Some(suite) = r.check_suites.get_mut(&suite_id) {
            suite.updated_at = now;
        }
    }

    // --- JSON of objects (same shape as the REST endpoints; for webhook payloads) -----------

    /// `GET /repos/{o}/{r}/issues/{n}`.
    pub fn issue_json(&self, repo: &str, number: u64) -> Value {
        self.lock()
            .issue_json(&key_of(repo), number)
            .unwrap_or_else(|| panic!("fake GitHub: no issue {repo}#{number}"))
    }

    /// `GET /repos/{o}/{r}/issues/comments/{id}`.
    pub fn comment_json(&self, repo: &str, comment_id: i64) -> Value {
        self.lock()
            .comment_json(&key_of(repo), comment_id)
            .unwrap_or_else(|| panic!("fake GitHub: no comment {comment_id} in {repo}"))
    }

    /// `GET /repos/{o}/{r}/pulls/{n}`.
    pub fn pull_json(&self, repo: &str, number: u64) -> Value {
        self.lock()
            .pull_json(&key_of(repo), number, true)
            .unwrap_or_else(|| panic!("fake GitHub: no pull request {repo}#{number}"))
    }

    /// `GET /repos/{o}/{r}`.
    pub fn repo_json(&self, repo: &str) -> Value {
        self.lock()
            .repo_json(&key_of(repo))
            .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    /// `GET /app/installations/{id}`.
    pub fn installation_json(&self, installation_id: i64) -> Value {
        self.lock()
            .installation_json(installation_id)
            .unwrap_or_else(|| panic!("fake GitHub: no installation {installation_id}"))
    }

    /// A user object (`user`, `sender`, `owner`, … in payloads).
    pub fn user_json(&self, login: &str) -> Value {
        let mut st = self.lock();
        st.ensure_user(login);
        st.user_json(login)
    }

    /// `GET /repos/{o}/{r}/check-runs/{id}`.
    pub fn check_run_json(&self, repo: &str, run_id: i64) -> Value {
        self.lock()
            .check_run_json(&key_of(repo), run_id)
            .unwrap_or_else(|| panic!("fake GitHub: no check run {run_id}"))
    }

    /// `GET /repos/{o}/{r}/check-suites/{id}`.
    pub fn check_suite_json(&self, repo: &str, suite_id: i64) -> Value {
        self.lock()
            .check_suite_json(&key_of(repo), suite_id)
            .unwrap_or_else(|| panic!("fake GitHub: no check suite {suite_id}"))
    }

    /// One review as in `GET /repos/{o}/{r}/pulls/{n}/reviews`.
    pub fn review_json(&self, repo: &str, number: u64, review_id: i64) -> Value {
        let st = self.lock();
        let key = key_of(repo);
        let r = st.repo_ref(repo);
        let p = r.issues.get(&number).and_then(|i| i.pull.as_ref());
        let review = p
            .and_then(|p| p.reviews.iter().find(|rv| rv.id == review_id))
            .unwrap_or_else(|| panic!("fake GitHub: no review {review_id} on {repo}#{number}"));
        st.review_json(&key, number, review)
    }

    /// The JSON of the App (`GET /app`).
    pub fn app_json(&self) -> Value {
        self.lock().app_json()
    }

    // --- faults ---------------------------------------------------------------------------

    /// The next `times` requests matching `method` (`"*"` for any) and `path_prefix` fail
    /// with `status` before they take effect.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, times: u32) {
        self.push_fault(method, path_prefix, times, FaultKind::Status(status));
    }

    /// The next `times` matching requests hit a rate limit: `status` (403 or 429) with
    /// `Retry-After`, `x-ratelimit-remaining: 0` and `x-ratelimit-reset`; no effect.
    pub fn rate_limit_next(
        &self,
        method: &str,
        path_prefix: &str,
        status: u16,
        retry_after: Duration,
        times: u32,
    ) {
        let kind = FaultKind::RateLimit {
            status,
            retry_after_secs: retry_after.as_secs(),
        };
        self.push_fault(method, path_prefix, times, kind);
    }

    /// The next matching request TAKES EFFECT, but its response is lost: the client sees a
    /// 502. This is the "unknown outcome" case.
    pub fn drop_response_next(&self, method: &str, path_prefix: &str) {
        self.push_fault(method, path_prefix, 1, FaultKind::DropResponse);
    }

    fn push_fault(&self, method: &str, path_prefix: &str, times: u32, kind: FaultKind) {
        self.lock().faults.push(Fault {
            method: method.to_ascii_uppercase(),
            path_prefix: path_prefix.to_string(),
            remaining: times,
            kind,
        });
    }

    // --- request log ----------------------------------------------------------------------

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// How many requests matched `method` (`"*"` for any) and `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| method_matches(method, &r.method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(method)
}

fn check_status_args(status: &str, conclusion: Option<&str>) {
    assert!(
        ["queued", "in_progress", "completed"].contains(&status),
        "fake GitHub: unknown check status {status:?}"
    );
    assert_eq!(
        status == "completed",
        conclusion.is_some(),
        "fake GitHub: a conclusion goes with status completed, and only with it"
    );
}

fn comment_snapshot(c: &Comment) -> CommentSnapshot {
    CommentSnapshot {
        id: c.id,
        issue_number: c.issue_number,
        author: c.author.clone(),
        body: c.body().to_string(),
        history: c.history.clone(),
        reactions: reaction_snapshots(&c.reactions),
    }
}

fn reaction_snapshots(reactions: &[Reaction]) -> Vec<ReactionSnapshot> {
    reactions
        .iter()
        .map(|r| ReactionSnapshot {
            id: r.id,
            user: r.user.clone(),
            content: r.content.clone(),
        })
        .collect()
}

fn state_str(closed: bool) -> &'static str {
    if closed { "closed" } else { "open" }
}

fn set_issue_state(issue: &mut Issue, closed: bool, reason: Option<String>, actor: &str) {
    let now = now_secs();
    if closed {
        if !issue.closed {
            issue.closed_at = Some(now);
            issue.closed_by = Some(actor.to_string());
        }
        issue.closed = true;
        issue.state_reason = Some(reason.unwrap_or_else(|| "completed".to_string()));
    } else {
        if issue.closed {
            issue.state_reason = Some("reopened".to_string());
        }
        issue.closed = false;
        issue.closed_at = None;
        issue.closed_by = None;
    }
    issue.updated_at = now;
}

// ---------------------------------------------------------------------------------------
// Small utilities: time, encodings
// ---------------------------------------------------------------------------------------

fn now_secs() -> i64 {
    system_secs(SystemTime::now())
}

fn system_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn random_sha() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, GitHub's timestamp format (public for tests
/// that build payloads).
/// The issue numbers a pull request body closes (`Closes #N`, `Fixes #N`, `Resolves #N`).
fn closing_references(body: &str) -> Vec<u64> {
    let lower = body.to_ascii_lowercase();
    let words = lower.split_whitespace().collect::<Vec<_>>();
    words
        .windows(2)
        .filter(|w| {
            [
                "close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves",
                "resolved",
            ]
            .contains(&w[0])
        })
        .filter_map(|w| w[1].strip_prefix('#'))
        .filter_map(|n| {
            n.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .collect()
}

/// The output of a git command on a bare repository, when it succeeds.
fn git_out(dir: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` to Unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |from: usize, to: usize| s.get(from..to)?.parse::<i64>().ok();
    let bytes = s.as_bytes();
    let separators_ok = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = s.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours = rest.get(1..3)?.parse::<i64>().ok()?;
            let minutes = rest.get(4..6)?.parse::<i64>().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Standard base64 in 60-character lines, the way the contents API returns files.
fn base64_lines(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                encoded.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 60 + 1);
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL path segments).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes in a path segment.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z")
                .map(rfc3339)
                .as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("nonsense"), None);
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_lines(b""), "\n");
        assert_eq!(base64_lines(b"f"), "Zg==\n");
        assert_eq!(base64_lines(b"fo"), "Zm8=\n");
        assert_eq!(base64_lines(b"foobar"), "Zm9vYmFy\n");
    }

    #[test]
    fn percent_coding_round_trips() {
        assert_eq!(percent_encode("app[bot]"), "app%5Bbot%5D");
        assert_eq!(percent_decode("needs%20triage"), "needs triage");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
