//! The GitHub App identity against the fake GitHub: JWTs it accepts, installation tokens cached
//! and refreshed one at a time, both key formats, and clear errors.

use std::sync::Arc;
use std::time::Duration;

use foreman::github::app::AppCredentials;
use foreman::github::app::{Access, GitHubApp};
use foreman::model::{InstallationId, SystemClock};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::support::fake_github::FakeGitHub;

fn app(fake: &FakeGitHub, pem: String) -> Arc<GitHubApp> {
    let creds = AppCredentials {
        app_id: fake.app_id() as u64,
        private_key_pem: SecretString::from(pem),
    };
    Arc::new(GitHubApp::new(&creds, &fake.url(), Arc::new(SystemClock)).unwrap())
}

#[tokio::test]
async fn the_app_jwt_is_accepted_with_either_key_format() {
    let fake = FakeGitHub::start().await;
    for pem in [fake.private_key_pem(), fake.private_key_pkcs8_pem()] {
        let app = app(&fake, pem);
        let me = app
            .app_client()
            .unwrap()
            .get::<serde_json::Value, _, ()>("/app", None)
            .await;
        let me = me.unwrap_or_else(|e| panic!("{}", foreman::github::app::describe(&e)));
        assert_eq!(me["id"].as_i64(), Some(fake.app_id()));
    }
}

#[tokio::test]
async fn installation_clients_act_as_the_installation() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, "octo/widgets");
    let number = fake.create_issue("octo/widgets", "alice", "Broken", "It broke");
    let app = app(&fake, fake.private_key_pem());
    let client = app
        .installation_client(InstallationId(installation), "octo/widgets")
        .await
        .unwrap();
    client
        .issues("octo", "widgets")
        .create_comment(number, "on it")
        .await
        .unwrap();
    let comments = fake.comments("octo/widgets", number);
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].author, fake.bot_login());
}

#[tokio::test]
async fn tokens_are_cached_and_fetched_once_for_concurrent_callers() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, "octo/widgets");
    let app = app(&fake, fake.private_key_pem());
    let mut calls = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        calls.push(tokio::spawn(async move {
            app.installation_token(
                InstallationId(installation),
                "octo/widgets",
                Access::GitRead,
            )
            .await
            .unwrap()
        }));
    }
    let mut tokens = Vec::new();
    for c in calls {
        tokens.push(c.await.unwrap().expose_secret().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "one token shared by every caller");
    let path = format!("/app/installations/{installation}/access_tokens");
    assert_eq!(fake.count("POST", &path), 1);
    app.installation_token(
        InstallationId(installation),
        "Octo/Widgets",
        Access::GitRead,
    )
    .await
    .unwrap();
    assert_eq!(fake.count("POST", &path), 1, "still cached");
    // Another kind of work is another token, asked for with its own permissions.
    app.installation_client(InstallationId(installation), "octo/widgets")
        .await
        .unwrap();
    assert_eq!(fake.count("POST", &path), 2);
}

#[tokio::test]
async fn every_token_is_scoped_to_one_repository_and_what_the_work_needs() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, "octo/widgets");
    fake.add_repo(installation, "octo/secret");
    let secret_issue = fake.create_issue("octo/secret", "alice", "Private", "x");
    let number = fake.create_issue("octo/widgets", "alice", "Broken", "It broke");
    let app = app(&fake, fake.private_key_pem());
    for (access, permissions) in [
        (Access::GitRead, json!({"contents": "read"})),
        (Access::GitWrite, json!({"contents": "write"})),
    ] {
        app.installation_token(InstallationId(installation), "octo/widgets", access)
            .await
            .unwrap();
        let asked = fake.token_requests().pop().unwrap();
        assert_eq!(asked["repositories"], json!(["widgets"]));
        assert_eq!(asked["permissions"], permissions);
    }
    // The API client's token reaches only its repository, and only what its permissions say.
    let client = app
        .installation_client(InstallationId(installation), "octo/widgets")
        .await
        .unwrap();
    client
        .issues("octo", "widgets")
        .create_comment(number, "on it")
        .await
        .unwrap();
    let elsewhere = client
        .issues("octo", "secret")
        .create_comment(secret_issue, "leak")
        .await
        .unwrap_err();
    assert!(format!("{elsewhere:?}").contains("404"), "{elsewhere:?}");
    // A git token cannot comment.
    let git = app
        .installation_token(
            InstallationId(installation),
            "octo/widgets",
            Access::GitWrite,
        )
        .await
        .unwrap();
    let as_git = octocrab::Octocrab::builder()
        .base_uri(fake.url())
        .unwrap()
        .personal_token(git.expose_secret().to_owned())
        .build()
        .unwrap();
    let refused = as_git
        .issues("octo", "widgets")
        .create_comment(number, "no")
        .await
        .unwrap_err();
    assert!(format!("{refused:?}").contains("403"), "{refused:?}");
    // The fake refuses installation-wide tokens: an unscoped request from foreman fails tests.
    let unscoped = reqwest::Client::new()
        .post(format!(
            "{}/app/installations/{installation}/access_tokens",
            fake.url()
        ))
        .bearer_auth(app.jwt().unwrap().expose_secret())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unscoped.status(), 422);
    assert!(
        app.installation_client(InstallationId(installation), "not-a-repository")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, "octo/widgets");
    // Tokens that live less than the refresh margin are refreshed on every use.
    fake.set_token_ttl(Duration::from_secs(120));
    let app = app(&fake, fake.private_key_pem());
    let first = app
        .installation_token(
            InstallationId(installation),
            "octo/widgets",
            Access::GitRead,
        )
        .await
        .unwrap();
    let second = app
        .installation_token(
            InstallationId(installation),
            "octo/widgets",
            Access::GitRead,
        )
        .await
        .unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    let path = format!("/app/installations/{installation}/access_tokens");
    assert_eq!(fake.count("POST", &path), 2);
}

#[tokio::test]
async fn refusals_are_clear_errors() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.suspend_installation(installation);
    let app = app(&fake, fake.private_key_pem());
    let err = app
        .installation_client(InstallationId(installation), "octo/widgets")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("installation {installation}")) && err.contains("403"),
        "{err}"
    );

    let err = app
        .installation_client(InstallationId(999_999), "octo/widgets")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");

    let healthy = fake.add_installation("other");
    fake.add_repo(healthy, "other/gadgets");
    fake.fail_next("POST", "/app/installations/", 502, 1);
    let err = app
        .installation_client(InstallationId(healthy), "other/gadgets")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("502"), "{err}");
    // The failure is not cached: the next call succeeds.
    app.installation_client(InstallationId(healthy), "other/gadgets")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_key_of_another_app_is_refused() {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    let creds = AppCredentials {
        app_id: fake.app_id() as u64 + 1,
        private_key_pem: SecretString::from(fake.private_key_pem()),
    };
    let app = GitHubApp::new(&creds, &fake.url(), Arc::new(SystemClock)).unwrap();
    let err = app
        .installation_client(InstallationId(installation), "octo/widgets")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
}
