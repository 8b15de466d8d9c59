//! Tests of the fake GitHub itself: the real octocrab client must be able to use it (every
//! supported call deserializes), authentication must fail the way GitHub's does, and the
//! fault injection, request log and ETags must behave as documented.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use octocrab::Octocrab;
use octocrab::models::reactions::ReactionContent;
use octocrab::models::{CheckRunId, CommentId, InstallationId, IssueState};
use octocrab::params::repos::Commitish;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::fake_github::{FakeGitHub, rfc3339};

const OWNER: &str = "acme";
const NAME: &str = "widgets";
const REPO: &str = "acme/widgets";

/// A fake with one installation on `acme` holding `acme/widgets`, a token for it minted over
/// HTTP with a test-made JWT, and an octocrab client using that token.
struct Setup {
    fake: FakeGitHub,
    installation: i64,
    token: String,
    gh: Octocrab,
}

async fn setup() -> Setup {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation(OWNER);
    fake.add_repo(installation, REPO);
    let token = token_over_http(&fake, installation).await;
    let gh = octocrab_with(&fake, &token);
    Setup {
        fake,
        installation,
        token,
        gh,
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs(),
    )
    .expect("seconds fit i64")
}

/// An RS256 JWT signed with the App's key, with times relative to now.
fn jwt(fake: &FakeGitHub, iat_offset: i64, exp_offset: i64, iss: Value) -> String {
    let claims = json!({ "iat": now() + iat_offset, "exp": now() + exp_offset, "iss": iss });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(fake.private_key_pem().as_bytes())
        .expect("App key parses");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("sign JWT")
}

/// The JWT the brief prescribes: iat backdated 60 s, exp in 9 minutes.
fn good_jwt(fake: &FakeGitHub) -> String {
    jwt(fake, -60, 9 * 60, json!(fake.app_id()))
}

fn octocrab_with(fake: &FakeGitHub, token: &str) -> Octocrab {
    Octocrab::builder()
        .base_uri(fake.url())
        .expect("base uri")
        .personal_token(token.to_string())
        .build()
        .expect("octocrab client")
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn create_token(fake: &FakeGitHub, installation: i64, body: Value) -> reqwest::Response {
    // These tests are about GitHub's behaviour, which allows installation-wide tokens.
    fake.allow_unscoped_tokens();
    http()
        .post(format!(
            "{}/app/installations/{installation}/access_tokens",
            fake.url()
        ))
        .bearer_auth(good_jwt(fake))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn token_over_http(fake: &FakeGitHub, installation: i64) -> String {
    let response = create_token(fake, installation, json!({})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_string()
}

async fn get(fake: &FakeGitHub, token: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", fake.url()))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .expect("request")
}

async fn app_get(fake: &FakeGitHub, jwt: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", fake.url()))
        .bearer_auth(jwt)
        .send()
        .await
        .expect("request")
}

async fn message(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("json error body");
    body["message"].as_str().expect("message").to_string()
}

fn status_of(err: &octocrab::Error) -> Option<u16> {
    match err {
        octocrab::Error::GitHub { source, .. } => Some(source.status_code.as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn installation_token_over_http_then_octocrab_reads_issue() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation(OWNER);
    fake.add_repo(installation, REPO);
    let number = fake.create_issue(REPO, "alice", "Widgets wobble", "They wobble.");
    fake.add_label(REPO, number, "foreman");

    let response = create_token(&fake, installation, json!({})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_"), "{token}");
    let expires_at = body["expires_at"].as_str().unwrap();
    assert_eq!(
        expires_at.len(),
        "2024-01-01T00:00:00Z".len(),
        "{expires_at}"
    );
    assert!(expires_at.ends_with('Z') && expires_at.as_bytes()[10] == b'T');
    assert_eq!(body["permissions"]["issues"], "write");
    assert_eq!(body["repository_selection"], "selected");
    // The same body deserializes as octocrab's model.
    let parsed: octocrab::models::InstallationToken = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(parsed.token, token);

    let gh = octocrab_with(&fake, token);
    let issue = gh.issues(OWNER, NAME).get(number).await.unwrap();
    assert_eq!(issue.number, number);
    assert_eq!(issue.title, "Widgets wobble");
    assert_eq!(issue.body.as_deref(), Some("They wobble."));
    assert_eq!(issue.user.login, "alice");
    assert_eq!(issue.user.r#type, "User");
    assert_eq!(issue.state, IssueState::Open);
    assert_eq!(issue.labels.len(), 1);
    assert_eq!(issue.labels[0].name, "foreman");
    assert!(issue.pull_request.is_none());

    let listed = gh
        .issues(OWNER, NAME)
        .list()
        .labels(&["foreman".to_string()])
        .send()
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test]
async fn app_endpoints_deserialize_in_octocrab() {
    let Setup {
        fake,
        installation,
        gh,
        ..
    } = setup().await;
    let app = octocrab_with(&fake, &good_jwt(&fake));

    let me = app.apps().get().await.unwrap();
    assert_eq!(me.slug.as_deref(), Some(fake.app_slug()));
    assert_eq!(me.id.0, u64::try_from(fake.app_id()).unwrap());

    let all = app.apps().installations().send().await.unwrap();
    assert_eq!(all.items.len(), 1);
    assert_eq!(all.items[0].account.login, OWNER);

    let id = InstallationId(u64::try_from(installation).unwrap());
    let one = app.apps().installation(id).await.unwrap();
    assert_eq!(one.id, id);
    let by_repo = app
        .apps()
        .get_repository_installation(OWNER, NAME)
        .await
        .unwrap();
    assert_eq!(by_repo.id, id);

    let repos = gh.apps().installation_repositories().send().await.unwrap();
    assert_eq!(repos.total_count, 1);
    assert_eq!(repos.repositories[0].full_name.as_deref(), Some(REPO));

    let repo = gh.repos(OWNER, NAME).get().await.unwrap();
    assert_eq!(repo.default_branch.as_deref(), Some("main"));
    assert_eq!(repo.owner.unwrap().login, OWNER);
}

#[tokio::test]
async fn comments_create_edit_list_paginate_delete() {
    let Setup { fake, gh, .. } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    let issues = gh.issues(OWNER, NAME);

    let mine = issues
        .create_comment(number, "status: starting")
        .await
        .unwrap();
    assert_eq!(mine.user.login, fake.bot_login());
    assert_eq!(mine.user.r#type, "Bot");
    assert_eq!(mine.body.as_deref(), Some("status: starting"));

    let edited = issues
        .update_comment(mine.id, "status: working")
        .await
        .unwrap();
    assert_eq!(edited.body.as_deref(), Some("status: working"));
    let fetched = issues.get_comment(mine.id).await.unwrap();
    assert_eq!(fetched.body.as_deref(), Some("status: working"));

    for i in 0..4 {
        fake.add_comment_as(REPO, number, "bob", &format!("human {i}"));
    }

    let first = issues
        .list_comments(number)
        .per_page(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.next.is_some(), "a Link rel=next is expected");
    let all = gh.all_pages(first).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].id, mine.id);
    assert_eq!(all[4].body.as_deref(), Some("human 3"));

    let future = reaction_at(&fake, now() + 3600).created_at;
    let none = issues
        .list_comments(number)
        .since(future)
        .send()
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let past = reaction_at(&fake, now() - 3600).created_at;
    let some = issues
        .list_comments(number)
        .since(past)
        .send()
        .await
        .unwrap();
    assert_eq!(some.items.len(), 5);

    let snapshot = fake.comment(REPO, mine.id.0 as i64).unwrap();
    assert_eq!(
        snapshot.history,
        vec!["status: starting", "status: working"]
    );
    assert_eq!(snapshot.edit_count(), 1);
    assert_eq!(snapshot.author, fake.bot_login());

    issues.delete_comment(mine.id).await.unwrap();
    assert_eq!(fake.comments(REPO, number).len(), 4);
    let gone = issues.get_comment(mine.id).await.unwrap_err();
    assert_eq!(status_of(&gone), Some(404));
    assert_eq!(fake.issue(REPO, number).comment_count, 4);
}

/// A Reaction whose `created_at` is `secs`: the way to get octocrab's chrono time (which
/// `since` takes) without the test crate depending on chrono itself.
fn reaction_at(fake: &FakeGitHub, secs: i64) -> octocrab::models::reactions::Reaction {
    serde_json::from_value(json!({
        "id": 1,
        "node_id": "REA_1",
        "user": fake.user_json("alice"),
        "content": "eyes",
        "created_at": rfc3339(secs),
    }))
    .expect("reaction")
}

#[tokio::test]
async fn labels_and_issue_state() {
    let Setup { fake, gh, .. } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    let issues = gh.issues(OWNER, NAME);

    let labels = issues
        .add_labels(number, &["foreman".to_string(), "bug".to_string()])
        .await
        .unwrap();
    assert_eq!(labels.len(), 2);
    let left = issues.remove_label(number, "bug").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "foreman");
    let missing = issues.remove_label(number, "bug").await.unwrap_err();
    assert_eq!(status_of(&missing), Some(404));

    let closed = issues
        .update(number)
        .state(IssueState::Closed)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.state, IssueState::Closed);
    let snapshot = fake.issue(REPO, number);
    assert_eq!(snapshot.state, "closed");
    assert_eq!(snapshot.state_reason.as_deref(), Some("completed"));
    assert_eq!(snapshot.closed_by, Some(fake.bot_login()));
    assert_eq!(snapshot.labels, vec!["foreman"]);
}

#[tokio::test]
async fn reactions_on_issues_and_comments() {
    let Setup {
        fake, gh, token, ..
    } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    let comment = fake.add_comment_as(REPO, number, "alice", "please do");
    let issues = gh.issues(OWNER, NAME);

    let eyes = issues
        .create_reaction(number, ReactionContent::Eyes)
        .await
        .unwrap();
    assert_eq!(eyes.content, ReactionContent::Eyes);
    assert_eq!(eyes.user.login, fake.bot_login());

    // Reacting again with the same content answers 200 with the same reaction.
    let url = format!("{}/repos/{REPO}/issues/{number}/reactions", fake.url());
    let again = http()
        .post(&url)
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({ "content": "eyes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"].as_u64(), Some(eyes.id.0));
    let bad = http()
        .post(&url)
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({ "content": "thumbsup" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let plus = issues
        .create_comment_reaction(CommentId(comment as u64), ReactionContent::PlusOne)
        .await
        .unwrap();
    assert_eq!(plus.content, ReactionContent::PlusOne);

    let on_issue = issues.list_reactions(number).send().await.unwrap();
    assert_eq!(on_issue.items.len(), 1);
    let on_comment = issues
        .list_comment_reactions(CommentId(comment as u64))
        .send()
        .await
        .unwrap();
    assert_eq!(on_comment.items.len(), 1);
    assert_eq!(on_comment.items[0].user.login, fake.bot_login());

    let snapshot = fake.issue(REPO, number);
    assert_eq!(snapshot.reactions.len(), 1);
    assert_eq!(snapshot.reactions[0].content, "eyes");
    assert_eq!(fake.comments(REPO, number)[0].reactions[0].content, "+1");
    let issue_json = fake.issue_json(REPO, number);
    assert_eq!(issue_json["reactions"]["eyes"], 1);
}

#[tokio::test]
async fn collaborator_permission_models_github() {
    let Setup {
        fake, gh, token, ..
    } = setup().await;
    fake.set_permission(REPO, "alice", "write");
    fake.set_permission(REPO, "bob", "maintain");
    fake.add_user("carol");

    let permission = |login: &'static str| {
        let fake = fake.clone();
        let token = token.clone();
        async move {
            let path = format!("/repos/{REPO}/collaborators/{login}/permission");
            get(&fake, &token, &path).await
        }
    };

    let alice: Value = permission("alice").await.json().await.unwrap();
    assert_eq!(alice["permission"], "write");
    assert_eq!(alice["role_name"], "write");
    assert_eq!(alice["user"]["login"], "alice");
    assert_eq!(alice["user"]["permissions"]["push"], true);
    assert_eq!(alice["user"]["permissions"]["admin"], false);

    let bob: Value = permission("bob").await.json().await.unwrap();
    assert_eq!(bob["permission"], "write");
    assert_eq!(bob["role_name"], "maintain");
    assert_eq!(bob["user"]["permissions"]["maintain"], true);

    // A known user without a grant on a private repository: 200, "none", role_name "".
    let carol = permission("carol").await;
    assert_eq!(carol.status(), StatusCode::OK);
    let carol: Value = carol.json().await.unwrap();
    assert_eq!(carol["permission"], "none");
    assert_eq!(carol["role_name"], "");
    assert_eq!(carol["user"]["permissions"]["pull"], false);

    // On a public repository everyone can read.
    fake.set_private(REPO, false);
    let carol: Value = permission("carol").await.json().await.unwrap();
    assert_eq!(carol["permission"], "read");
    fake.set_private(REPO, true);

    // A login GitHub does not know is a 404.
    assert_eq!(permission("ghost").await.status(), StatusCode::NOT_FOUND);

    // The owning user is admin; octocrab's model handles that one...
    let owner = gh
        .repos(OWNER, NAME)
        .get_contributor_permission(OWNER)
        .send()
        .await
        .unwrap();
    assert_eq!(owner.role_name, "admin");
    // ...but it cannot represent GitHub's legacy "write"/"read"/"none": foreman must parse
    // this endpoint itself.
    let write = gh
        .repos(OWNER, NAME)
        .get_contributor_permission("alice")
        .send()
        .await;
    assert!(
        matches!(
            write,
            Err(octocrab::Error::Serde { .. } | octocrab::Error::Json { .. })
        ),
        "octocrab 0.54 is expected to reject permission \"write\": {write:?}"
    );
}

#[tokio::test]
async fn pull_requests_create_get_list_reviews_merge() {
    let Setup { fake, gh, .. } = setup().await;
    let pulls = gh.pulls(OWNER, NAME);

    let created = pulls
        .create("Add widget", "foreman/issue-1", "main")
        .body("Closes #1")
        .send()
        .await
        .unwrap();
    let number = created.number;
    assert_eq!(created.head.ref_field, "foreman/issue-1");
    assert_eq!(created.head.sha.len(), 40);
    assert_eq!(created.base.ref_field, "main");
    assert_eq!(created.user.as_ref().unwrap().login, fake.bot_login());
    assert_eq!(
        fake.branch_sha(REPO, "foreman/issue-1").as_deref(),
        Some(created.head.sha.as_str())
    );

    let duplicate = pulls
        .create("Again", "foreman/issue-1", "main")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&duplicate), Some(422));

    let got = pulls.get(number).await.unwrap();
    assert_eq!(got.mergeable, Some(true));
    assert_eq!(
        got.mergeable_state,
        Some(octocrab::models::pulls::MergeableState::Clean)
    );
    assert_eq!(got.merged, Some(false));

    let open = pulls
        .list()
        .state(octocrab::params::State::Open)
        .head(format!("{OWNER}:foreman/issue-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].number, number);
    assert_eq!(open.items[0].mergeable, None, "the list omits mergeability");
    let other = pulls
        .list()
        .head(format!("{OWNER}:other-branch"))
        .send()
        .await
        .unwrap();
    assert!(other.items.is_empty());

    fake.add_review(
        REPO,
        number,
        "alice",
        "CHANGES_REQUESTED",
        "Please rename it.",
    );
    let reviews = pulls.list_reviews(number).send().await.unwrap();
    assert_eq!(reviews.items.len(), 1);
    assert_eq!(
        reviews.items[0].state,
        Some(octocrab::models::pulls::ReviewState::ChangesRequested)
    );
    assert_eq!(reviews.items[0].user.as_ref().unwrap().login, "alice");

    fake.add_review_comment(REPO, number, "alice", "src/lib.rs", 3, "typo");
    let review_comments = pulls.list_comments(Some(number)).send().await.unwrap();
    assert_eq!(review_comments.items.len(), 1);
    assert_eq!(review_comments.items[0].path, "src/lib.rs");

    fake.set_mergeable(REPO, number, None);
    let computing = pulls.get(number).await.unwrap();
    assert_eq!(computing.mergeable, None);

    // The PR is an issue too.
    let as_issue = gh.issues(OWNER, NAME).get(number).await.unwrap();
    assert!(as_issue.pull_request.is_some());

    let merge_sha = fake.merge_pull(REPO, number);
    let merged = pulls.get(number).await.unwrap();
    assert_eq!(merged.merged, Some(true));
    assert_eq!(merged.state, Some(IssueState::Closed));
    assert!(merged.merged_at.is_some());
    assert_eq!(merged.merge_commit_sha.as_deref(), Some(merge_sha.as_str()));
    let closed = pulls
        .list()
        .state(octocrab::params::State::Closed)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.items.len(), 1);

    // Closing through PATCH.
    let second = fake.create_pull(REPO, "feature", "main", "Second", "", "bob");
    let patched = pulls
        .update(second)
        .state(octocrab::params::pulls::State::Closed)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.state, Some(IssueState::Closed));
    assert_eq!(fake.pull(REPO, second).state, "closed");
}

#[tokio::test]
async fn check_runs_and_suites() {
    let Setup { fake, gh, .. } = setup().await;
    let number = fake.create_pull(REPO, "foreman/ci", "main", "CI", "", "alice");
    let sha = fake.pull(REPO, number).head_sha;
    let build = fake.add_check_run(REPO, &sha, "build", "completed", Some("success"));
    fake.add_check_run(REPO, &sha, "test", "completed", Some("failure"));
    let lint = fake.add_check_run(REPO, &sha, "lint", "in_progress", None);
    let checks = gh.checks(OWNER, NAME);

    let runs = checks
        .list_check_runs_for_git_ref(Commitish(sha.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, 3);
    let test_run = runs.check_runs.iter().find(|r| r.name == "test").unwrap();
    assert_eq!(test_run.conclusion.as_deref(), Some("failure"));
    assert_eq!(test_run.pull_requests.len(), 1);
    assert_eq!(test_run.pull_requests[0].number, number);

    let by_branch = checks
        .list_check_runs_for_git_ref(Commitish("foreman/ci".to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_branch.total_count, 3);

    let suites = checks
        .list_check_suites_for_git_ref(Commitish(sha.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(suites.total_count, 1);
    assert_eq!(
        suites.check_suites[0].status.as_deref(),
        Some("in_progress")
    );
    assert_eq!(suites.check_suites[0].conclusion, None);

    fake.update_check_run(REPO, lint, "completed", Some("success"));
    let suites = checks
        .list_check_suites_for_git_ref(Commitish(sha.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(suites.check_suites[0].status.as_deref(), Some("completed"));
    assert_eq!(
        suites.check_suites[0].conclusion.as_deref(),
        Some("failure")
    );

    let one = checks
        .get_check_run(CheckRunId(build as u64))
        .send()
        .await
        .unwrap();
    assert_eq!(one.name, "build");
    assert_eq!(one.head_sha, sha);

    let pr = gh.pulls(OWNER, NAME).get(number).await.unwrap();
    assert_eq!(
        pr.mergeable_state,
        Some(octocrab::models::pulls::MergeableState::Unstable)
    );
}

#[tokio::test]
async fn contents_are_served_base64() {
    let Setup { fake, gh, .. } = setup().await;
    let text = "[foreman]\nallowed = [\"write\"]\n".repeat(5);
    fake.set_file(REPO, "main", ".github/foreman.toml", &text);

    let mut content = gh
        .repos(OWNER, NAME)
        .get_content()
        .path(".github/foreman.toml")
        .r#ref("main")
        .send()
        .await
        .unwrap();
    let items = content.take_items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].decoded_content().as_deref(), Some(text.as_str()));

    let missing = gh
        .repos(OWNER, NAME)
        .get_content()
        .path("nope.toml")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&missing), Some(404));
}

#[tokio::test]
async fn bad_app_jwts_are_401() {
    let Setup { fake, token, .. } = setup().await;
    let now = now();

    // iss as a string works as well as a number.
    let as_string = jwt(&fake, -60, 540, json!(fake.app_id().to_string()));
    assert_eq!(
        app_get(&fake, &as_string, "/app").await.status(),
        StatusCode::OK
    );

    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iat": now - 60, "exp": now + 540, "iss": fake.app_id() }),
        &jsonwebtoken::EncodingKey::from_secret(b"not the app key"),
    )
    .unwrap();
    let cases = [
        ("garbage", "a.b.c".to_string()),
        ("wrong key", hs256),
        ("wrong iss", jwt(&fake, -60, 540, json!(1))),
        ("expired", jwt(&fake, -700, -100, json!(fake.app_id()))),
        ("too long", jwt(&fake, -60, 600, json!(fake.app_id()))),
        (
            "iat in the future",
            jwt(&fake, 120, 500, json!(fake.app_id())),
        ),
    ];
    for (what, bad) in cases {
        let response = app_get(&fake, &bad, "/app/installations").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(!message(response).await.is_empty(), "{what}");
    }

    // An installation token is no App credential, and no credential is none.
    let response = get(&fake, &token, "/app").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http()
        .get(format!("{}/app", fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_and_unknown_tokens_are_401() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation(OWNER);
    fake.add_repo(installation, REPO);
    fake.set_token_ttl(Duration::ZERO);
    let token = token_over_http(&fake, installation).await;

    let response = get(&fake, &token, &format!("/repos/{REPO}")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(message(response).await, "Bad credentials");

    let response = get(&fake, "ghs_unknown", &format!("/repos/{REPO}")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    fake.set_token_ttl(Duration::from_secs(3600));
    let fresh = token_over_http(&fake, installation).await;
    let response = get(&fake, &fresh, &format!("/repos/{REPO}")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn repos_outside_the_installation_are_404() {
    let Setup {
        fake,
        installation,
        token,
        ..
    } = setup().await;
    let other = fake.add_installation("umbrella");
    fake.add_repo(other, "umbrella/secret");
    fake.add_repo(installation, "acme/gadgets");

    assert_eq!(
        get(&fake, &token, "/repos/umbrella/secret").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&fake, &token, "/repos/acme/nothing").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&fake, &token, "/repos/acme/gadgets").await.status(),
        StatusCode::OK
    );

    // A token scoped to one repository sees only that one.
    let response = create_token(&fake, installation, json!({ "repositories": ["widgets"] })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["repositories"][0]["full_name"], REPO);
    let scoped = body["token"].as_str().unwrap();
    assert_eq!(
        get(&fake, scoped, "/repos/acme/gadgets").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&fake, scoped, &format!("/repos/{REPO}")).await.status(),
        StatusCode::OK
    );
    let response = create_token(&fake, installation, json!({ "repositories": ["secret"] })).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn suspended_and_removed_installations() {
    let Setup {
        fake,
        installation,
        token,
        ..
    } = setup().await;

    fake.suspend_installation(installation);
    let response = create_token(&fake, installation, json!({})).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get(&fake, &token, &format!("/repos/{REPO}")).await.status(),
        StatusCode::FORBIDDEN
    );
    let json = fake.installation_json(installation);
    assert!(json["suspended_at"].is_string());

    fake.unsuspend_installation(installation);
    assert_eq!(
        get(&fake, &token, &format!("/repos/{REPO}")).await.status(),
        StatusCode::OK
    );

    fake.remove_installation(installation);
    let response = create_token(&fake, installation, json!({})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&fake, &token, &format!("/repos/{REPO}")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = app_get(
        &fake,
        &good_jwt(&fake),
        &format!("/repos/{REPO}/installation"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fail_next_fails_then_recovers() {
    let Setup { fake, gh, .. } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    let path = format!("/repos/{REPO}/issues/{number}/comments");
    fake.fail_next("POST", &path, 500, 2);
    let issues = gh.issues(OWNER, NAME);

    for _ in 0..2 {
        let err = issues.create_comment(number, "hello").await.unwrap_err();
        assert_eq!(status_of(&err), Some(500));
    }
    assert!(
        fake.comments(REPO, number).is_empty(),
        "a failed request has no effect"
    );
    issues.create_comment(number, "hello").await.unwrap();
    assert_eq!(fake.comments(REPO, number).len(), 1);
    assert_eq!(fake.count("POST", &path), 3);
    assert_eq!(fake.count("GET", &path), 0);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses[statuses.len() - 3..], [500, 500, 201]);
}

#[tokio::test]
async fn rate_limits_carry_retry_headers() {
    let Setup {
        fake, gh, token, ..
    } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    let path = format!("/repos/{REPO}/issues/{number}/comments");

    fake.rate_limit_next("POST", "/repos/", 403, Duration::from_secs(30), 1);
    let response = http()
        .post(format!("{}{path}", fake.url()))
        .header("authorization", format!("token {token}"))
        .json(&json!({ "body": "hi" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let headers = response.headers();
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let reset: i64 = headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((now() + 25..=now() + 35).contains(&reset), "{reset}");
    assert!(message(response).await.contains("rate limit"));

    fake.rate_limit_next("*", &path, 429, Duration::from_secs(5), 1);
    let err = gh
        .issues(OWNER, NAME)
        .create_comment(number, "hi")
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(429));
    match err {
        octocrab::Error::GitHub { source, .. } => assert!(source.rate_limit_reset.is_some()),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(fake.comments(REPO, number).is_empty());
}

#[tokio::test]
async fn dropped_response_applies_the_effect_but_returns_502() {
    let Setup { fake, gh, .. } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    fake.drop_response_next("POST", &format!("/repos/{REPO}/issues/{number}/comments"));

    let err = gh
        .issues(OWNER, NAME)
        .create_comment(number, "<!-- foreman:status -->\nhello")
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(502));
    let comments = fake.comments(REPO, number);
    assert_eq!(
        comments.len(),
        1,
        "the comment exists although the client saw a 502"
    );
    assert!(comments[0].body.contains("foreman:status"));
    assert_eq!(fake.requests().last().unwrap().status, 502);

    // Only once.
    gh.issues(OWNER, NAME)
        .create_comment(number, "again")
        .await
        .unwrap();
    assert_eq!(fake.comments(REPO, number).len(), 2);
}

#[tokio::test]
async fn etags_give_304_until_the_state_changes() {
    let Setup { fake, token, .. } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    fake.add_comment_as(REPO, number, "alice", "one");

    for path in [
        format!("/repos/{REPO}/issues/{number}/comments"),
        format!("/repos/{REPO}/issues/{number}"),
        format!("/repos/{REPO}/pulls?state=all"),
    ] {
        let first = get(&fake, &token, &path).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let etag = first.headers()["etag"].to_str().unwrap().to_string();

        let again = http()
            .get(format!("{}{path}", fake.url()))
            .header("authorization", format!("token {token}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());

        // Change the state behind every one of these responses.
        fake.add_comment_as(REPO, number, "bob", &format!("change for {path}"));
        fake.create_pull(REPO, &format!("b{}", path.len()), "main", "PR", "", "bob");

        let changed = http()
            .get(format!("{}{path}", fake.url()))
            .header("authorization", format!("token {token}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "{path}");
        assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    }
}

#[tokio::test]
async fn unmodelled_endpoints_are_404_and_recorded() {
    let Setup { fake, token, .. } = setup().await;
    let response = get(&fake, &token, &format!("/repos/{REPO}/branches/main")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(message(response).await, "Not Found");
    let response = get(&fake, &token, "/search/issues?q=foo").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let log = fake.requests();
    let last = log.last().unwrap();
    assert_eq!(last.method, "GET");
    assert_eq!(last.path, "/search/issues");
    assert_eq!(last.query.as_deref(), Some("q=foo"));
    assert_eq!(last.status, 404);
    assert_eq!(
        last.authorization.as_deref(),
        Some(format!("token {token}").as_str())
    );
    assert_eq!(fake.count("GET", &format!("/repos/{REPO}/branches")), 1);
}

#[tokio::test]
async fn json_helpers_match_rest_and_octocrab_models() {
    let Setup {
        fake,
        installation,
        token,
        ..
    } = setup().await;
    let number = fake.create_issue(REPO, "alice", "Title", "Body");
    fake.add_label(REPO, number, "foreman");
    let comment = fake.add_comment_as(REPO, number, "alice", "hello");
    let pr = fake.create_pull(REPO, "topic", "main", "PR", "body", "bob");
    let sha = fake.pull(REPO, pr).head_sha;
    let run = fake.add_check_run(REPO, &sha, "build", "queued", None);
    let suite = fake.check_run_json(REPO, run)["check_suite"]["id"]
        .as_i64()
        .unwrap();

    let rest = |path: String| {
        let fake = fake.clone();
        let token = token.clone();
        async move {
            let response = get(&fake, &token, &path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };

    let issue = fake.issue_json(REPO, number);
    assert_eq!(issue, rest(format!("/repos/{REPO}/issues/{number}")).await);
    serde_json::from_value::<octocrab::models::issues::Issue>(issue).unwrap();

    let comment_json = fake.comment_json(REPO, comment);
    assert_eq!(
        comment_json,
        rest(format!("/repos/{REPO}/issues/comments/{comment}")).await
    );
    serde_json::from_value::<octocrab::models::issues::Comment>(comment_json).unwrap();

    let pull = fake.pull_json(REPO, pr);
    assert_eq!(pull, rest(format!("/repos/{REPO}/pulls/{pr}")).await);
    serde_json::from_value::<octocrab::models::pulls::PullRequest>(pull).unwrap();
    let pr_issue = fake.issue_json(REPO, pr);
    assert!(pr_issue["pull_request"]["url"].is_string());
    serde_json::from_value::<octocrab::models::issues::Issue>(pr_issue).unwrap();

    let repo = fake.repo_json(REPO);
    assert_eq!(repo, rest(format!("/repos/{REPO}")).await);
    serde_json::from_value::<octocrab::models::Repository>(repo).unwrap();

    let inst = fake.installation_json(installation);
    let over_http = app_get(
        &fake,
        &good_jwt(&fake),
        &format!("/app/installations/{installation}"),
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(inst, over_http);
    serde_json::from_value::<octocrab::models::Installation>(inst).unwrap();

    let user = fake.user_json(&fake.bot_login());
    assert_eq!(user["type"], "Bot");
    serde_json::from_value::<octocrab::models::Author>(user).unwrap();

    let run_json = fake.check_run_json(REPO, run);
    assert_eq!(
        run_json,
        rest(format!("/repos/{REPO}/check-runs/{run}")).await
    );
    serde_json::from_value::<octocrab::models::checks::CheckRun>(run_json).unwrap();
    let suite_json = fake.check_suite_json(REPO, suite);
    assert_eq!(
        suite_json,
        rest(format!("/repos/{REPO}/check-suites/{suite}")).await
    );
    serde_json::from_value::<octocrab::models::checks::CheckSuite>(suite_json).unwrap();

    let review = fake.add_review(REPO, pr, "alice", "APPROVED", "LGTM");
    serde_json::from_value::<octocrab::models::pulls::Review>(fake.review_json(REPO, pr, review))
        .unwrap();
    serde_json::from_value::<octocrab::models::apps::App>(fake.app_json()).unwrap();
}
