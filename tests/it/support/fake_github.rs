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

mod manifest_flow;

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
// State
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum UserKind {
    User,
    Organization,
    Bot,
}

impl UserKind {
    fn for_login(login: &str) -> Self {
        if login.ends_with("[bot]") {
            UserKind::Bot
        } else {
            UserKind::User
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            UserKind::User => "User",
            UserKind::Organization => "Organization",
            UserKind::Bot => "Bot",
        }
    }
}

struct User {
    id: i64,
    login: String,
    kind: UserKind,
}

struct Installation {
    id: i64,
    account: String,
    /// Repository keys (lowercase `owner/name`).
    repos: Vec<String>,
    created_at: i64,
    suspended_at: Option<i64>,
}

struct Token {
    installation_id: i64,
    expires_at: SystemTime,
    /// `None`: every repository of the installation.
    repos: Option<Vec<String>>,
    /// What it may do (`permission -> read|write`): the App's permissions unless the token
    /// request asked for fewer.
    permissions: HashMap<String, String>,
}

struct LabelDef {
    id: i64,
    name: String,
    color: String,
}

struct Reaction {
    id: i64,
    user: String,
    content: String,
    created_at: i64,
}

struct Issue {
    id: i64,
    number: u64,
    title: String,
    body: Option<String>,
    author: String,
    closed: bool,
    state_reason: Option<String>,
    /// Lowercase label keys into `Repo::labels`.
    labels: Vec<String>,
    locked: bool,
    created_at: i64,
    updated_at: i64,
    closed_at: Option<i64>,
    closed_by: Option<String>,
    reactions: Vec<Reaction>,
    pull: Option<Pull>,
}

struct Pull {
    id: i64,
    head_ref: String,
    head_sha: String,
    base_ref: String,
    draft: bool,
    merged_at: Option<i64>,
    merged_by: Option<String>,
    merge_commit_sha: Option<String>,
    mergeable: Option<bool>,
    /// The (head, base) shas `mergeable` was computed from with git, when the repository
    /// follows a git origin.
    merge_checked: Option<(String, String)>,
    reviews: Vec<Review>,
    review_comments: Vec<ReviewComment>,
    /// Logins asked to review, in order.
    requested_reviewers: Vec<String>,
}

struct Review {
    id: i64,
    user: String,
    state: String,
    body: String,
    commit_id: String,
    submitted_at: i64,
}

struct ReviewComment {
    id: i64,
    review_id: Option<i64>,
    user: String,
    path: String,
    line: u64,
    body: String,
    commit_id: String,
    created_at: i64,
}

struct Comment {
    id: i64,
    issue_number: u64,
    author: String,
    history: Vec<String>,
    created_at: i64,
    updated_at: i64,
    reactions: Vec<Reaction>,
}

impl Comment {
    fn body(&self) -> &str {
        self.history.last().map(String::as_str).unwrap_or_default()
    }
}

struct CheckRun {
    id: i64,
    suite_id: i64,
    head_sha: String,
    name: String,
    status: String,
    conclusion: Option<String>,
    started_at: i64,
    completed_at: Option<i64>,
    /// `output.summary`, as the check's app wrote it.
    summary: Option<String>,
}

struct CheckSuite {
    id: i64,
    head_sha: String,
    created_at: i64,
    updated_at: i64,
}

struct Repo {
    id: i64,
    owner: String,
    name: String,
    private: bool,
    default_branch: String,
    clone_url: Option<String>,
    /// A bare git repository whose branches this repository's follow (see `follow_git`).
    git_dir: Option<std::path::PathBuf>,
    created_at: i64,
    /// Lowercase login → role.
    roles: BTreeMap<String, String>,
    /// Branch name → head sha.
    branches: BTreeMap<String, String>,
    /// (branch, path) → file content.
    files: BTreeMap<(String, String), String>,
    /// Lowercase name → label.
    labels: BTreeMap<String, LabelDef>,
    /// Issues and pull requests share one number space, as on GitHub.
    issues: BTreeMap<u64, Issue>,
    comments: BTreeMap<i64, Comment>,
    check_runs: BTreeMap<i64, CheckRun>,
    check_suites: BTreeMap<i64, CheckSuite>,
    next_number: u64,
}

impl Repo {
    fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn label_names(&self, keys: &[String]) -> Vec<String> {
        keys.iter()
            .filter_map(|k| self.labels.get(k))
            .map(|l| l.name.clone())
            .collect()
    }

    fn comment_count(&self, number: u64) -> usize {
        self.comments
            .values()
            .filter(|c| c.issue_number == number)
            .count()
    }

    /// The branch currently pointing at `sha`, or a PR head branch with that sha.
    fn branch_for_sha(&self, sha: &str) -> Option<String> {
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
    fn resolve_ref(&self, reference: &str) -> String {
        let name = reference.strip_prefix("refs/heads/").unwrap_or(reference);
        self.branches
            .get(name)
            .cloned()
            .unwrap_or_else(|| reference.to_string())
    }
}

#[derive(Clone)]
enum FaultKind {
    Status(u16),
    RateLimit { status: u16, retry_after_secs: u64 },
    DropResponse,
}

struct Fault {
    method: String,
    path_prefix: String,
    remaining: u32,
    kind: FaultKind,
}

struct State {
    base: String,
    ids: Cell<i64>,
    /// Lowercase login → user.
    users: BTreeMap<String, User>,
    installations: BTreeMap<i64, Installation>,
    /// Lowercase `owner/name` → repository.
    repos: BTreeMap<String, Repo>,
    tokens: HashMap<String, Token>,
    token_ttl: Duration,
    /// Whether a token request must name its repositories (foreman's rule: never an
    /// installation-wide token). On by default; GitHub itself allows both.
    scoped_tokens_only: bool,
    faults: Vec<Fault>,
    requests: Vec<Recorded>,
    /// The App registration flow: pending manifest codes, the registered App, and
    /// requests held back on purpose (see `manifest_flow`).
    flow: manifest_flow::Flow,
}

/// Takes the next id from the shared counter (a free function so it can run while a
/// repository is mutably borrowed).
fn bump(ids: &Cell<i64>) -> i64 {
    let id = ids.get();
    ids.set(id + 1);
    id
}

fn key_of(full_name: &str) -> String {
    full_name.to_ascii_lowercase()
}

fn bot_login() -> String {
    format!("{APP_SLUG}[bot]")
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

struct AppKeys {
    pkcs1_pem: String,
    pkcs8_pem: String,
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
}

/// The App's RSA key, generated once per test process (slow in debug builds).
fn app_keys() -> &'static AppKeys {
    static KEYS: OnceLock<AppKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        use rsa::traits::PublicKeyParts;

        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("generate RSA key");
        let pkcs1_pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .expect("encode PKCS#1")
            .to_string();
        let pkcs8_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode PKCS#8")
            .to_string();
        let public = key.to_public_key();
        AppKeys {
            encoding: jsonwebtoken::EncodingKey::from_rsa_pem(pkcs1_pem.as_bytes())
                .expect("load PKCS#1 key"),
            decoding: jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &public.n().to_bytes_be(),
                &public.e().to_bytes_be(),
            ),
            pkcs1_pem,
            pkcs8_pem,
        }
    })
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
// State: primitives shared by helpers and HTTP handlers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Target {
    Issue(u64),
    Comment(i64),
}

impl State {
    fn new(base: String) -> Self {
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
        }
    }

    fn ensure_user(&mut self, login: &str) {
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

    fn installation_mut(&mut self, id: i64) -> &mut Installation {
        self.installations
            .get_mut(&id)
            .unwrap_or_else(|| panic!("fake GitHub: no installation {id}"))
    }

    fn repo_ref(&self, repo: &str) -> &Repo {
        self.repos
            .get(&key_of(repo))
            .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    fn repo_mut(&mut self, repo: &str) -> &mut Repo {
        self.repos
            .get_mut(&key_of(repo))
            .unwrap_or_else(|| panic!("fake GitHub: no repository {repo}"))
    }

    fn issue_mut(&mut self, repo: &str, number: u64) -> &mut Issue {
        self.repo_mut(repo)
            .issues
            .get_mut(&number)
            .unwrap_or_else(|| panic!("fake GitHub: no issue {repo}#{number}"))
    }

    fn pull_mut(&mut self, repo: &str, number: u64) -> &mut Pull {
        self.issue_mut(repo, number)
            .pull
            .as_mut()
            .unwrap_or_else(|| panic!("fake GitHub: {repo}#{number} is not a pull request"))
    }

    /// The installation whose repositories include `key`.
    fn installation_of(&self, key: &str) -> Option<&Installation> {
        self.installations
            .values()
            .find(|i| i.repos.iter().any(|k| k == key))
    }

    fn issue_token(
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

    fn new_issue(
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
            },
        );
        Some(number)
    }

    /// Brings repositories that follow a git origin up to date with it (see `follow_git`).
    fn sync_git(&mut self) {
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
    fn open_pull(
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

    fn add_comment(&mut self, key: &str, number: u64, author: &str, body: &str) -> Option<i64> {
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

    fn edit_comment(&mut self, key: &str, comment_id: i64, body: &str) -> bool {
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

    fn add_labels(&mut self, key: &str, number: u64, names: &[String]) {
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
    fn react(
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

    fn reactions(&self, key: &str, target: Target) -> Option<&Vec<Reaction>> {
        let repo = self.repos.get(key)?;
        match target {
            Target::Issue(n) => repo.issues.get(&n).map(|i| &i.reactions),
            Target::Comment(c) => repo.comments.get(&c).map(|c| &c.reactions),
        }
    }

    fn reactions_mut(&mut self, key: &str, target: Target) -> Option<&mut Vec<Reaction>> {
        let repo = self.repos.get_mut(key)?;
        match target {
            Target::Issue(n) => repo.issues.get_mut(&n).map(|i| &mut i.reactions),
            Target::Comment(c) => repo.comments.get_mut(&c).map(|c| &mut c.reactions),
        }
    }

    /// The legacy permission and the role of `login` on a repository.
    fn role_of(&self, repo: &Repo, login: &str) -> String {
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

    fn author_association(&self, repo: &Repo, login: &str) -> &'static str {
        if repo.owner.eq_ignore_ascii_case(login) {
            "OWNER"
        } else if repo.roles.contains_key(&login.to_ascii_lowercase()) {
            "COLLABORATOR"
        } else {
            "NONE"
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------

/// A parsed request, handed to the routes.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: Option<&'a Value>,
}

impl Req<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn body_str(&self, field: &str) -> Option<&str> {
        self.body.and_then(|b| b.get(field)).and_then(Value::as_str)
    }
}

/// A response before serialization.
struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn ok(body: Value) -> Self {
        Reply::json(200, body)
    }

    fn created(body: Value) -> Self {
        Reply::json(201, body)
    }

    fn no_content() -> Self {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Reply::json(
            status,
            json!({ "message": message, "documentation_url": DOCS_URL, "status": status.to_string() }),
        )
    }

    fn not_found() -> Self {
        Reply::error(404, "Not Found")
    }

    fn bad_credentials() -> Self {
        Reply::error(401, "Bad credentials")
    }

    /// 422 Validation Failed with GitHub's `errors` array.
    fn invalid(resource: &str, field: &str, code: &str, message: Option<&str>) -> Self {
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

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn from_option(body: Option<Value>) -> Self {
        body.map(Reply::ok).unwrap_or_else(Reply::not_found)
    }
}

async fn serve(
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
    fn handle(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
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
    fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
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

fn rate_limited(status: u16, retry_after_secs: u64) -> Reply {
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
fn with_etag(reply: Reply, req: &Req) -> Reply {
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
// Authentication
// ---------------------------------------------------------------------------------------

enum Credential<'a> {
    Jwt(&'a str),
    Token(&'a str),
}

fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let secret = secret.trim();
    if secret.matches('.').count() == 2 {
        Some(Credential::Jwt(secret))
    } else {
        Some(Credential::Token(secret))
    }
}

/// Checks an App JWT the way GitHub does; the error is GitHub's message.
fn verify_app_jwt(jwt: &str, now: i64) -> Result<(), &'static str> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<Value>(jwt, &app_keys().decoding, &validation)
        .map_err(|_| "A JSON web token could not be decoded")?
        .claims;
    let numeric = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let iss = match claims.get("iss") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let Some(iss) = iss else {
        return Err("'Issuer' claim ('iss') must be an Integer");
    };
    if iss != APP_ID {
        return Err("Integration not found");
    }
    let iat_message = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.";
    let exp_message = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.";
    let iat = numeric("iat").ok_or(iat_message)?;
    let exp = numeric("exp").ok_or(exp_message)?;
    if iat > now + MAX_JWT_IAT_SKEW_SECS {
        return Err(iat_message);
    }
    if exp <= now {
        return Err(exp_message);
    }
    if exp - iat > MAX_JWT_LIFETIME_SECS {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(())
}

/// Who is calling with an installation token.
struct Caller {
    installation_id: i64,
    repos: Option<Vec<String>>,
    permissions: HashMap<String, String>,
}

/// `none` < `read` < `write` < `admin`.
fn level_rank(level: &str) -> u8 {
    match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

/// The permission (and level) GitHub requires of an installation token for a repository
/// route, as its docs list them; `None` for routes the fake does not check.
fn required_permission(method: &str, rest: &[&str]) -> Option<(&'static str, &'static str)> {
    let level = if method == "GET" { "read" } else { "write" };
    let name = match rest.first().copied() {
        None | Some("collaborators") => return Some(("metadata", "read")),
        Some("issues") => "issues",
        Some("pulls") => "pull_requests",
        Some("check-runs" | "check-suites") => "checks",
        Some("commits") if rest.get(2).is_some_and(|r| r.starts_with("check-")) => {
            return Some(("checks", "read"));
        }
        Some("actions") => "actions",
        Some("contents" | "git" | "branches" | "commits") => "contents",
        _ => return None,
    };
    Some((name, level))
}

impl Caller {
    /// Whether the token's permissions allow the route.
    fn allowed(&self, method: &str, rest: &[&str]) -> bool {
        match required_permission(method, rest) {
            None => true,
            Some((name, level)) => {
                let has = self.permissions.get(name).map_or("none", String::as_str);
                level_rank(has) >= level_rank(level)
            }
        }
    }
}

impl Caller {
    fn can_access(&self, st: &State, key: &str) -> bool {
        let installed = st
            .installations
            .get(&self.installation_id)
            .is_some_and(|i| i.repos.iter().any(|k| k == key));
        let scoped = self
            .repos
            .as_ref()
            .is_none_or(|repos| repos.iter().any(|k| k == key));
        installed && scoped
    }
}

impl State {
    fn require_app(&self, req: &Req) -> Result<(), Reply> {
        match credential(req.headers) {
            None => Err(Reply::error(401, "Requires authentication")),
            Some(Credential::Token(_)) => {
                Err(Reply::error(401, "A JSON web token could not be decoded"))
            }
            Some(Credential::Jwt(jwt)) => {
                verify_app_jwt(jwt, now_secs()).map_err(|m| Reply::error(401, m))
            }
        }
    }

    fn require_installation(&self, req: &Req) -> Result<Caller, Reply> {
        let token = match credential(req.headers) {
            None => return Err(Reply::error(401, "Requires authentication")),
            Some(Credential::Jwt(_)) => {
                return Err(Reply::error(403, "Resource not accessible by integration"));
            }
            Some(Credential::Token(token)) => token,
        };
        let Some(token) = self.tokens.get(token) else {
            return Err(Reply::bad_credentials());
        };
        if SystemTime::now() >= token.expires_at {
            return Err(Reply::bad_credentials());
        }
        let Some(installation) = self.installations.get(&token.installation_id) else {
            return Err(Reply::bad_credentials());
        };
        if installation.suspended_at.is_some() {
            return Err(Reply::error(403, "This installation has been suspended"));
        }
        Ok(Caller {
            installation_id: token.installation_id,
            repos: token.repos.clone(),
            permissions: token.permissions.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------

impl State {
    fn dispatch(&mut self, req: &Req) -> Reply {
        let decoded: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
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

    fn app_routes(&mut self, req: &Req, rest: &[&str]) -> Reply {
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

    fn repo_routes(&mut self, req: &Req, key: &str, rest: &[&str]) -> Reply {
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

    fn issue_routes(&mut self, req: &Req, key: &str, n: u64, tail: &[&str]) -> Reply {
        match (req.method, tail) {
            ("GET", []) => Reply::from_option(self.issue_json(key, n)),
            ("PATCH" | "POST", []) => self.patch_issue(req, key, n),
            ("GET", ["labels"]) => Reply::ok(self.issue_labels_json(key, n)),
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

    fn comment_routes(&mut self, req: &Req, key: &str, id: i64, tail: &[&str]) -> Reply {
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

    fn pull_routes(&mut self, req: &Req, key: &str, n: u64, tail: &[&str]) -> Reply {
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
    fn with_option(mut self, body: Option<Value>) -> Self {
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
fn validate_body<'a>(req: &'a Req, resource: &str) -> Result<&'a str, Reply> {
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
fn label_names(body: &Value) -> Option<Vec<String>> {
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

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

impl State {
    fn create_access_token(&mut self, req: &Req, id: i64) -> Reply {
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

    fn installation_repositories(&self, req: &Req, caller: &Caller) -> Reply {
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

    fn list_issues(&self, req: &Req, key: &str) -> Reply {
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

    fn list_repo_comments(&self, req: &Req, key: &str) -> Reply {
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

    fn patch_issue(&mut self, req: &Req, key: &str, n: u64) -> Reply {
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

    fn issue_labels_json(&self, key: &str, n: u64) -> Value {
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

    fn list_reactions(&self, req: &Req, key: &str, target: Target) -> Reply {
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

    fn create_reaction(&mut self, req: &Req, key: &str, target: Target) -> Reply {
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

    fn delete_reaction(&mut self, key: &str, target: Target, id: &str) -> Reply {
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

    fn permission(&self, key: &str, login: &str) -> Reply {
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

    fn list_pulls(&self, req: &Req, key: &str) -> Reply {
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

    fn create_pull(&mut self, req: &Req, key: &str) -> Reply {
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
    fn request_reviewers(&mut self, req: &Req, key: &str, n: u64) -> Reply {
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
    fn graphql(&mut self, req: &Req, caller: &Caller) -> Reply {
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

    fn patch_pull(&mut self, req: &Req, key: &str, n: u64) -> Reply {
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

    fn list_check_runs(&self, req: &Req, key: &str, select: impl Fn(&CheckRun) -> bool) -> Reply {
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

    fn list_check_suites(&self, req: &Req, key: &str, sha: &str) -> Reply {
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

    fn contents(&self, req: &Req, key: &str, path: &str) -> Reply {
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

fn sort_issues(issues: &mut [&Issue], req: &Req, default_direction: &str) {
    if req.param("sort") == Some("updated") {
        issues.sort_by_key(|i| (i.updated_at, i.number));
    } else {
        issues.sort_by_key(|i| (i.created_at, i.number));
    }
    if req.param("direction").unwrap_or(default_direction) == "desc" {
        issues.reverse();
    }
}

fn with_link(reply: Reply, link: Option<String>) -> Reply {
    match link {
        Some(link) => reply.header("link", link),
        None => reply,
    }
}

impl State {
    /// One page of `items` per `per_page`/`page`, and the `Link` header for the others.
    fn paginate(&self, req: &Req, items: Vec<Value>) -> (Vec<Value>, Option<String>) {
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

    fn page_reply(&self, req: &Req, items: Vec<Value>) -> Reply {
        let (page, link) = self.paginate(req, items);
        with_link(Reply::ok(Value::Array(page)), link)
    }
}

// ---------------------------------------------------------------------------------------
// JSON rendering (one function per GitHub object; REST and helpers share them)
// ---------------------------------------------------------------------------------------

/// The App's permissions: the manifest's (`app-manifest/manifest.json`).
fn app_permissions() -> Value {
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

fn app_events() -> Value {
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
fn merge_into(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

fn repo_html(repo: &Repo, rest: &str) -> String {
    format!("{HTML_BASE}/{}/{}{rest}", repo.owner, repo.name)
}

impl State {
    fn repo_api(&self, repo: &Repo, rest: &str) -> String {
        format!("{}/repos/{}/{}{rest}", self.base, repo.owner, repo.name)
    }

    fn user_json(&self, login: &str) -> Value {
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

    fn app_json(&self) -> Value {
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
    fn ci_app_json(&self) -> Value {
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

    fn installation_json(&self, id: i64) -> Option<Value> {
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

    fn repo_json(&self, key: &str) -> Option<Value> {
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

    fn label_json(&self, repo: &Repo, label: &LabelDef) -> Value {
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

    fn reaction_json(&self, r: &Reaction) -> Value {
        json!({
            "id": r.id,
            "node_id": format!("REA_lALO{}", r.id),
            "user": self.user_json(&r.user),
            "content": r.content,
            "created_at": rfc3339(r.created_at),
        })
    }

    fn reactions_summary(&self, url: String, reactions: &[Reaction]) -> Value {
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

    fn issue_json(&self, key: &str, number: u64) -> Option<Value> {
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

    fn render_comment(&self, repo: &Repo, c: &Comment) -> Value {
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

    fn comment_json(&self, key: &str, id: i64) -> Option<Value> {
        let repo = self.repos.get(key)?;
        let comment = repo.comments.get(&id)?;
        Some(self.render_comment(repo, comment))
    }

    /// Merge state as GitHub derives it from mergeability, draft status and checks.
    fn mergeable_state(&self, repo: &Repo, issue: &Issue, pull: &Pull) -> &'static str {
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

    fn branch_json(&self, repo: &Repo, branch: &str, sha: &str) -> Value {
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
    fn pull_json(&self, key: &str, number: u64, full: bool) -> Option<Value> {
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

    fn review_json(&self, key: &str, number: u64, review: &Review) -> Value {
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

    fn review_comment_json(&self, repo: &Repo, number: u64, c: &ReviewComment) -> Value {
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
    fn pulls_for_sha(&self, repo: &Repo, sha: &str) -> Vec<Value> {
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

    fn check_run_json(&self, key: &str, id: i64) -> Option<Value> {
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

    fn check_suite_json(&self, key: &str, id: i64) -> Option<Value> {
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
fn suite_outcome(runs: &[&CheckRun]) -> (&'static str, Option<String>) {
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
