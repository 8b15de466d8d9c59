//! The setup flow end to end against the fake GitHub: the setup page posts the manifest,
//! GitHub redirects back with a code, foreman exchanges it, stores the credentials (mode
//! 0600), and serves as the new App at once — webhooks signed with its secret are accepted
//! and its identity gets installation tokens — and after a restart, from the file.

use std::os::unix::fs::PermissionsExt;

use foreman::model::InstallationId;
use foreman::setup::manifest;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::on_both_backends;
use crate::support::fake_github::FakeGitHub;
use crate::support::{Kind, Process, TestDb, TestServer, eventually, fixture, serve_args, with_db};

/// The public address the tests pretend a proxy serves foreman at.
const PUBLIC_HOST: &str = "foreman.example.com";

/// A client that does not follow redirects, like a test wants to see them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Server options with no App at all, GitHub being the fake.
fn unconfigured(db: &TestDb, fake: &FakeGitHub) -> foreman::config::ServeArgs {
    let mut args = serve_args(db);
    args.github.webhook_secret = None;
    args.github.api_url = fake.url();
    args.github.web_url = fake.url();
    args
}

/// The registration form on the setup page: its action and the manifest it posts.
struct Form {
    action: String,
    manifest: String,
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn form(page: &str) -> Form {
    Form {
        action: unescape(
            between(page, "<form method=post action=\"", "\"")
                .unwrap_or_else(|| panic!("no registration form:\n{page}")),
        ),
        manifest: unescape(between(page, "name=manifest value=\"", "\"").unwrap()),
    }
}

/// Opens the setup page as a browser behind a TLS proxy would.
async fn setup_page(base: &str, query: &str) -> (u16, String) {
    let response = client()
        .get(format!("{base}/setup?{query}"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", PUBLIC_HOST)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The browser posts the form to GitHub; GitHub answers with a redirect to foreman. Returns
/// that redirect's path and query (the proxy's public host taken off).
async fn post_to_github(form: &Form) -> String {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("manifest", &form.manifest)
        .finish();
    let response = client()
        .post(&form.action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    location
        .strip_prefix(&format!("https://{PUBLIC_HOST}"))
        .unwrap_or_else(|| panic!("redirected elsewhere: {location}"))
        .to_owned()
}

async fn post_signed(base: &str, secret: &str, delivery: &str) -> u16 {
    let body = fixture("ping");
    let signature = foreman::github::signature::sign(&SecretString::from(secret.to_owned()), &body);
    client()
        .post(format!("{base}/webhooks/github"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn the_app_is_registered_from_the_setup_page(db: TestDb) {
    let fake = FakeGitHub::start().await;
    let installation = fake.add_installation("octo");
    fake.add_repo(installation, "octo/widgets");
    let args = unconfigured(&db, &fake);
    let server = TestServer::start(&args).await;
    let base = server.url("");
    let token = server.running.setup.token().to_owned();

    // Nothing configured: webhooks are refused, `/` leads to the setup page, which wants the
    // token from the log.
    assert_eq!(post_signed(&base, "anything", "before-1").await, 503);
    let root = client().get(format!("{base}/")).send().await.unwrap();
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()["location"], "/setup");
    let (status, page) = setup_page(&base, "").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("setup link from foreman"), "{page}");

    // The page posts the manifest, with the proxy's public URL filled in, to GitHub.
    let (status, page) = setup_page(&base, &format!("token={token}")).await;
    assert_eq!(status, 200, "{page}");
    let registration = form(&page);
    let state = registration
        .action
        .strip_prefix(&format!("{}/settings/apps/new?state=", fake.url()))
        .unwrap_or_else(|| panic!("form action {}", registration.action))
        .to_owned();
    let posted: Value = serde_json::from_str(&registration.manifest).unwrap();
    let public = format!("https://{PUBLIC_HOST}");
    assert_eq!(posted["url"], public.as_str());
    assert_eq!(
        posted["hook_attributes"]["url"],
        format!("{public}/webhooks/github")
    );
    assert_eq!(posted["redirect_url"], format!("{public}/setup/callback"));
    assert_eq!(posted["public"], false);
    assert_eq!(
        posted["default_events"],
        manifest::template()["default_events"]
    );
    assert_eq!(
        posted["default_permissions"],
        manifest::template()["default_permissions"]
    );

    let callback = post_to_github(&registration).await;
    assert_eq!(fake.registered_manifest().as_ref(), Some(&posted));
    assert_eq!(fake.registered_owner().as_deref(), Some("foreman-dev"));
    assert!(callback.starts_with("/setup/callback?code="), "{callback}");
    assert!(callback.ends_with(&format!("&state={state}")), "{callback}");

    // A redirect whose state this foreman did not hand out exchanges nothing.
    let forged = callback.replace(&state, "0123456789abcdef0123456789abcdef");
    let response = client().get(server.url(&forged)).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(fake.count("POST", "/app-manifests/"), 0);
    assert_eq!(fake.pending_manifest_codes(), 1);

    // The real redirect: the code is exchanged (without credentials) and the App is in use.
    let response = client().get(server.url(&callback)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let install = format!("{}/apps/{}/installations/new", fake.url(), fake.app_slug());
    assert!(page.contains(&install), "{page}");
    let conversions: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/app-manifests/"))
        .collect();
    assert_eq!(conversions.len(), 1);
    assert_eq!(conversions[0].status, 201);
    assert_eq!(conversions[0].authorization, None);
    assert_eq!(fake.pending_manifest_codes(), 0);

    // Stored privately, and never shown.
    let secret = fake.registered_webhook_secret().unwrap();
    let file = &args.setup.app_file;
    let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials file mode");
    let stored: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(stored["app_id"], fake.app_id());
    assert_eq!(stored["slug"], fake.app_slug());
    assert_eq!(stored["webhook_secret"], secret.as_str());
    assert_eq!(stored["private_key"], fake.private_key_pem().as_str());
    assert!(stored["client_id"].is_string() && stored["client_secret"].is_string());
    assert!(!page.contains(&secret) && !page.contains("PRIVATE KEY"));
    assert!(!page.contains(stored["client_secret"].as_str().unwrap()));

    // Webhooks signed with the new secret are accepted at once, others are not.
    assert_eq!(post_signed(&base, &secret, "after-1").await, 202);
    assert_eq!(post_signed(&base, "a-wrong-secret", "after-2").await, 401);
    // The identity works: an installation token, through the App's JWT.
    let app = server
        .running
        .engine
        .github
        .app()
        .expect("the App is in use");
    assert_eq!(app.app_id(), fake.app_id() as u64);
    let token = app
        .installation_token(
            InstallationId(installation),
            "octo/widgets",
            foreman::github::app::Access::GitRead,
        )
        .await
        .unwrap();
    assert!(!token.expose_secret().is_empty());
    assert_eq!(
        fake.count(
            "POST",
            &format!("/app/installations/{installation}/access_tokens")
        ),
        1
    );

    // Once set up, the setup routes register nothing again.
    let (status, page) =
        setup_page(&base, &format!("token={}", server.running.setup.token())).await;
    assert_eq!(status, 200);
    assert!(page.contains("Nothing is registered again"), "{page}");
    assert!(!page.contains("<form method=post"), "{page}");
    assert!(page.contains(&install), "{page}");
    let again = client().get(server.url(&callback)).send().await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(fake.count("POST", "/app-manifests/"), 1);
    server.shutdown().await;

    // After a restart the credentials come from the file.
    let server = TestServer::start(&args).await;
    assert_eq!(
        server.running.engine.github.app().map(|a| a.app_id()),
        Some(fake.app_id() as u64)
    );
    assert_eq!(
        post_signed(&server.url(""), &secret, "restart-1").await,
        202
    );
    // To a stranger the page says only that foreman is set up; the token shows which App.
    let (_, page) = setup_page(&server.url(""), "").await;
    assert!(page.contains("foreman is set up"), "{page}");
    assert!(!page.contains(&fake.app_id().to_string()), "{page}");
    assert!(!page.contains(fake.app_slug()), "{page}");
    let token = server.running.setup.token().to_owned();
    let (_, page) = setup_page(&server.url(""), &format!("token={token}")).await;
    assert!(page.contains(&fake.app_id().to_string()), "{page}");
    server.shutdown().await;
}
on_both_backends!(the_app_is_registered_from_the_setup_page);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_owns_the_app_when_named() {
    with_db(Kind::Sqlite, |db| async move {
        let fake = FakeGitHub::start().await;
        fake.make_organization("acme");
        let mut args = unconfigured(&db, &fake);
        args.setup.public_url = Some("https://foreman.acme.dev/".to_owned());
        let server = TestServer::start(&args).await;
        let token = server.running.setup.token().to_owned();
        let base = server.url("");

        let (status, page) = setup_page(&base, &format!("token={token}&org=acme%2F..")).await;
        assert_eq!(status, 400, "{page}");
        assert!(page.contains("not a GitHub organization name"), "{page}");

        let (status, page) =
            setup_page(&base, &format!("token={token}&org=acme&name=acme-foreman")).await;
        assert_eq!(status, 200, "{page}");
        let registration = form(&page);
        assert!(
            registration.action.starts_with(&format!(
                "{}/organizations/acme/settings/apps/new?state=",
                fake.url()
            )),
            "{}",
            registration.action
        );
        // FOREMAN_PUBLIC_URL wins over the proxy's headers.
        let posted: Value = serde_json::from_str(&registration.manifest).unwrap();
        assert_eq!(posted["name"], "acme-foreman");
        assert_eq!(
            posted["hook_attributes"]["url"],
            "https://foreman.acme.dev/webhooks/github"
        );
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("manifest", &registration.manifest)
            .finish();
        let response = client()
            .post(&registration.action)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let path = location.strip_prefix("https://foreman.acme.dev").unwrap();
        let done = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(done.status(), 200);
        assert_eq!(fake.registered_owner().as_deref(), Some("acme"));
        server.shutdown().await;
    })
    .await;
}

/// The real binary: the setup link is in the log, registering through it works, the
/// credentials never reach the log, and the next start uses the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_the_setup_link_and_never_a_secret() {
    with_db(Kind::Sqlite, |db| async move {
        let fake = FakeGitHub::start().await;
        let app_file = db.dir().join("secrets/github-app.json");
        let app_file = app_file.to_str().unwrap().to_owned();
        let env = [
            ("GITHUB_API_URL", fake.url()),
            ("GITHUB_WEB_URL", fake.url()),
            ("FOREMAN_APP_FILE", app_file.clone()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let process = Process::serve(&db, &env).await;
        let log = process.log.clone();
        let link = eventually("the setup link in the log", || async {
            let log = log.lock().unwrap().clone();
            log.lines()
                .find_map(|l| l.split("setup page, ").nth(1))
                .map(|l| l.trim().to_owned())
        })
        .await;
        let query = link
            .split_once("/setup?")
            .map(|(_, q)| q.to_owned())
            .unwrap_or_else(|| panic!("setup link {link}"));
        let base = process.url("");
        let (status, page) = setup_page(&base, &query).await;
        assert_eq!(status, 200, "{page}");
        let callback = post_to_github(&form(&page)).await;
        let response = client().get(process.url(&callback)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let secret = fake.registered_webhook_secret().unwrap();
        assert_eq!(post_signed(&base, &secret, "binary-1").await, 202);
        let status = process.terminate().await;
        assert!(status.success());

        let stored: Value = serde_json::from_slice(&std::fs::read(&app_file).unwrap()).unwrap();
        let log = log.lock().unwrap().clone();
        for field in ["webhook_secret", "client_secret", "private_key"] {
            let value = stored[field].as_str().unwrap();
            assert!(!log.contains(value), "{field} was logged:\n{log}");
        }
        assert!(!log.contains("PRIVATE KEY"), "{log}");
        assert!(log.contains("GitHub App registered"), "{log}");

        let second = Process::serve(&db, &env).await;
        assert_eq!(post_signed(&second.url(""), &secret, "binary-2").await, 202);
        assert!(
            second
                .log
                .lock()
                .unwrap()
                .contains("GitHub App configured from the credentials file")
        );
        assert!(second.terminate().await.success());
    })
    .await;
}
