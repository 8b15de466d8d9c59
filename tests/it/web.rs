//! The web view over HTTP, on both backends: sign-in through the fake GitHub's OAuth
//! endpoints, only readable repositories shown, a running objective's page and live
//! transcript, a message to the manager arriving as its next turn, a stop from the page told
//! in the status comment — and every way in without the right to be refused.

use std::collections::HashMap;

use foreman::engine::objective::lifecycle;
use foreman::model::{ObjectiveId, ObjectiveStatus, SessionId, SessionStatus};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

use crate::agents::new_objective;
use crate::issues::{World, world_with};
use crate::on_both_backends;
use crate::support::fake_github::oauth;
use crate::support::{TestDb, eventually};

/// A browser: cookies kept, redirects shown rather than followed.
struct Browser {
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            assert!(
                attributes.contains("HttpOnly") && attributes.contains("SameSite=Lax"),
                "{text}"
            );
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let response = self
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .client
            .post(url)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Signs in as `login` through the fake GitHub; returns the page it lands on.
    async fn sign_in(&mut self, w: &World, login: &str, path: &str) -> Page {
        let page = self.get(&w.server.url(path)).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let login_url = w.server.url(page.location.as_deref().unwrap());
        let to_github = self.get(&login_url).await;
        let authorize = to_github.location.expect("to GitHub");
        assert!(authorize.starts_with(&w.fake.url()), "{authorize}");
        w.fake.sign_in_as(login);
        let back = self.get(&authorize).await;
        assert_eq!(back.status, StatusCode::FOUND);
        let callback = self.get(back.location.as_deref().unwrap()).await;
        assert_eq!(callback.status, StatusCode::SEE_OTHER, "{}", callback.body);
        assert_eq!(callback.location.as_deref(), Some(path));
        assert!(self.cookies.contains_key("foreman_session"));
        self.get(&w.server.url(path)).await
    }
}

/// The CSRF token the page's forms carry.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + 19..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A world whose foreman has the fake's OAuth client, with a manager that plans, then
/// idles until a message from the web view reaches it.
pub async fn web_world(db: &TestDb) -> World {
    let plan = json!({
        "manager": [
            {"print": ["planning the widgets"], "unless": "A message from the web view"},
            {"when": "A message from the web view", "print": ["got the message"]}
        ]
    });
    web_world_with(db, plan).await
}

/// [`web_world`], with the scripted agents following `plan`.
pub async fn web_world_with(db: &TestDb, plan: serde_json::Value) -> World {
    let w = world_with(db, plan, |args| {
        args.github.client_id = Some(oauth::CLIENT_ID.to_owned());
        args.github.client_secret = Some(SecretString::from(oauth::CLIENT_SECRET.to_owned()));
    })
    .await;
    // As FOREMAN_PUBLIC_URL would say (the port is known once the server listens).
    w.server
        .running
        .engine
        .github
        .set_public_url(Some(w.server.url("")));
    w
}

/// Starts the objective of the world's issue (labelled by alice) and waits for its manager's
/// first turn to end.
pub async fn started(w: &World) -> (ObjectiveId, SessionId) {
    w.label("d-web", "foreman", "alice", true).await;
    let store = w.server.store();
    eventually("the manager's first turn", || async {
        let o = w.objectives().await.into_iter().next()?;
        let manager = store.session(o.manager?).await.unwrap()?;
        (manager.turns >= 1 && manager.status == SessionStatus::Idle).then_some((o.id, manager.id))
    })
    .await
}

/// An objective in `octo/secret`, which only dana can read.
pub async fn secret_objective(w: &World) -> (ObjectiveId, SessionId) {
    w.fake.add_repo(w.installation, "octo/secret");
    w.fake.set_permission("octo/secret", "dana", "admin");
    let issue = w
        .fake
        .create_issue("octo/secret", "dana", "Secret plans", "Hush.");
    let mut new = new_objective(issue);
    new.repository = "octo/secret".to_owned();
    new.title = "Secret plans".to_owned();
    lifecycle::start(&w.server.running.engine.objectives, &new)
        .await
        .unwrap()
        .unwrap()
}

async fn signing_in_shows_what_github_lets_each_person_read(db: TestDb) {
    let w = web_world(&db).await;
    let (widgets, _) = started(&w).await;
    let (secret, secret_manager) = secret_objective(&w).await;

    // Nobody signed in: sent to sign in, and nothing is done.
    let mut anonymous = Browser::new();
    let page = anonymous
        .get(&w.server.url(&format!("/objectives/{widgets}")))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some(format!("/login?next=%2Fobjectives%2F{widgets}").as_str())
    );
    let stop = anonymous
        .post(
            &w.server.url(&format!("/objectives/{widgets}/stop")),
            &[("csrf", "x")],
        )
        .await;
    assert_eq!(stop.status, StatusCode::UNAUTHORIZED);
    let live = anonymous
        .get(&w.server.url(&format!("/sessions/{secret_manager}/live")))
        .await;
    assert_eq!(live.status, StatusCode::UNAUTHORIZED);

    // alice can write to octo/widgets and cannot read octo/secret.
    let mut alice = Browser::new();
    let list = alice.sign_in(&w, "alice", "/objectives").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Widgets break"), "{}", list.body);
    assert!(!list.body.contains("Secret plans"), "{}", list.body);
    assert!(!list.body.contains("octo/secret"), "{}", list.body);
    for path in [
        format!("/objectives/{secret}"),
        format!("/sessions/{secret_manager}"),
        format!("/sessions/{secret_manager}/live"),
    ] {
        let page = alice.get(&w.server.url(&path)).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("Secret"), "{path}: {}", page.body);
    }
    let token = csrf(&list.body);
    let refused = alice
        .post(
            &w.server.url(&format!("/objectives/{secret}/stop")),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let ended = alice.get(&w.server.url("/objectives?show=ended")).await;
    assert!(!ended.body.contains("Widgets break"), "{}", ended.body);

    // dana reads both.
    let mut dana = Browser::new();
    let list = dana.sign_in(&w, "dana", "/objectives").await;
    assert!(list.body.contains("Widgets break") && list.body.contains("Secret plans"));

    // Signed out, the cookie is gone and so is the access.
    let out = alice
        .post(&w.server.url("/logout"), &[("csrf", &token)])
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(!alice.cookies.contains_key("foreman_session"));
    let again = alice.get(&w.server.url("/objectives")).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let store = w.server.store();
    assert!(
        !store
            .objective(secret)
            .await
            .unwrap()
            .unwrap()
            .status
            .is_terminal(),
        "nothing refused was done"
    );
    w.server.shutdown().await;
}
on_both_backends!(signing_in_shows_what_github_lets_each_person_read);

async fn the_page_follows_the_work_and_its_actions_act(db: TestDb) {
    let w = web_world(&db).await;
    let (objective, manager) = started(&w).await;
    let mut alice = Browser::new();
    let page = alice
        .sign_in(&w, "alice", &format!("/objectives/{objective}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Stop this objective"), "{}", page.body);
    let headers = alice
        .client
        .get(w.server.url(&format!("/objectives/{objective}")))
        .header("cookie", alice.cookie_header())
        .send()
        .await
        .unwrap();
    let header = |name: &str| headers.headers()[name].to_str().unwrap().to_owned();
    assert!(header("content-security-policy").contains("default-src 'self'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    assert!(page.body.contains(&format!("/sessions/{manager}")));
    let token = csrf(&page.body);

    // The transcript, on its page and live.
    let session = alice
        .get(&w.server.url(&format!("/sessions/{manager}")))
        .await;
    assert!(
        session.body.contains("planning the widgets"),
        "{}",
        session.body
    );
    let mut live = alice
        .client
        .get(w.server.url(&format!("/sessions/{manager}/live?after=0")))
        .header("cookie", alice.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), live.chunk())
        .await
        .expect("a live event")
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(
        first.contains("event: lines") && first.contains("planning the widgets"),
        "{first}"
    );

    // A forged token, and someone who may only read, are refused.
    let forged = alice
        .post(
            &w.server.url(&format!("/objectives/{objective}/message")),
            &[("csrf", "forged"), ("text", "Use red")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let mut bob = Browser::new();
    let bobs = bob
        .sign_in(&w, "bob", &format!("/objectives/{objective}"))
        .await;
    assert_eq!(bobs.status, StatusCode::OK);
    assert!(!bobs.body.contains("Stop this objective"), "{}", bobs.body);
    let bobs_token = csrf(&bobs.body);
    for (path, form) in [
        (
            format!("/objectives/{objective}/message"),
            vec![("csrf", bobs_token.as_str()), ("text", "Use green")],
        ),
        (
            format!("/objectives/{objective}/stop"),
            vec![("csrf", bobs_token.as_str())],
        ),
    ] {
        let refused = bob.post(&w.server.url(&path), &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }

    // alice's message is the manager's next turn; it arrives live.
    let sent = alice
        .post(
            &w.server.url(&format!("/objectives/{objective}/message")),
            &[("csrf", token.as_str()), ("text", "Please use blue.")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let arrived = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut seen = String::new();
        while let Some(chunk) = live.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("got the message") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("the next turn's output, live");
    assert!(arrived.contains("got the message"), "{arrived}");
    let prompts = crate::agents::state_file(&db, manager, "prompts.txt");
    assert!(
        prompts.contains("Please use blue.") && prompts.contains("@alice"),
        "{prompts}"
    );
    assert!(!prompts.contains("Use red") && !prompts.contains("Use green"));

    // Stopped from the page: the status comment says who.
    let stopped = alice
        .post(
            &w.server.url(&format!("/objectives/{objective}/stop")),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER);
    w.objective_in(ObjectiveStatus::Cancelled).await;
    w.status_saying("stopped by @alice from foreman's web view")
        .await;
    let audit = w.server.store().audit_of(objective).await.unwrap();
    for kind in ["web_message", "web_stop"] {
        assert!(
            audit
                .iter()
                .any(|e| e.kind == kind && e.detail.contains("@alice")),
            "{kind}: {audit:?}"
        );
    }
    let page = alice
        .get(&w.server.url(&format!("/objectives/{objective}")))
        .await;
    assert!(page.body.contains("web_stop") && !page.body.contains("Stop this objective"));
    w.server.shutdown().await;
}
on_both_backends!(the_page_follows_the_work_and_its_actions_act);

/// A worker's question answered from the page reaches the worker as its next turn; another
/// worker cancelled from the page stops. Both in the timeline with who did it; someone who
/// may only read can do neither.
async fn answering_and_cancelling_from_the_page(db: TestDb) {
    let plan = json!({
        "manager": [{"calls": [
            {"tool": "spawn_worker", "args": {"title": "Unsure", "instructions": "Paint it."}},
            {"tool": "spawn_worker", "args": {"title": "Slow", "instructions": "Take your time."}}
        ]}],
        "workers": {
            "Unsure": [
                {"calls": [{"tool": "ask_user", "args": {"question": "Which colour?"}}]},
                {"expect_prompt": "Blue, please.", "calls": [{"tool": "report_result", "args": {"summary": "painted blue"}}]}
            ],
            "Slow": {"print": ["working slowly"], "sleep": 300}
        }
    });
    let w = web_world_with(&db, plan).await;
    w.label("d-web-q", "foreman", "alice", true).await;
    let store = w.server.store();
    let objective = w.objective_in(ObjectiveStatus::Waiting).await;
    let slow = eventually("the slow worker running", || async {
        let sessions = store.sessions_of(objective.id).await.unwrap();
        sessions
            .into_iter()
            .find(|s| s.title == "Slow" && s.status == SessionStatus::Running)
    })
    .await;
    let question = store.questions_of(objective.id).await.unwrap()[0].clone();
    let path = format!("/objectives/{}", objective.id);

    let mut bob = Browser::new();
    let bobs = bob.sign_in(&w, "bob", &path).await;
    assert!(!bobs.body.contains("Cancel this worker") && !bobs.body.contains(">Answer<"));
    let bobs_token = csrf(&bobs.body);
    for (path, form) in [
        (
            format!("/questions/{}/answer", question.id),
            vec![("csrf", bobs_token.as_str()), ("text", "Red")],
        ),
        (
            format!("/sessions/{}/cancel", slow.id),
            vec![("csrf", bobs_token.as_str())],
        ),
    ] {
        let refused = bob.post(&w.server.url(&path), &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }

    let mut alice = Browser::new();
    let page = alice.sign_in(&w, "alice", &path).await;
    assert!(page.body.contains("Which colour?") && page.body.contains("Cancel this worker"));
    let token = csrf(&page.body);
    let answered = alice
        .post(
            &w.server.url(&format!("/questions/{}/answer", question.id)),
            &[("csrf", token.as_str()), ("text", "Blue, please.")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let cancelled = alice
        .post(
            &w.server.url(&format!("/sessions/{}/cancel", slow.id)),
            &[("csrf", token.as_str())],
        )
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    let unsure = eventually("the answered worker done", || async {
        let sessions = store.sessions_of(objective.id).await.unwrap();
        sessions
            .into_iter()
            .find(|s| s.title == "Unsure" && s.status == SessionStatus::Succeeded)
    })
    .await;
    assert_eq!(unsure.result.as_deref(), Some("painted blue"));
    let slow = store.session(slow.id).await.unwrap().unwrap();
    assert_eq!(slow.status, SessionStatus::Cancelled);
    assert!(
        slow.status_reason.unwrap_or_default().contains("@alice"),
        "the reason names who"
    );
    let answered = store.question(question.id).await.unwrap().unwrap();
    assert_eq!(answered.answered_by.as_deref(), Some("alice"));
    let audit = store.audit_of(objective.id).await.unwrap();
    for kind in ["web_answer", "web_cancel"] {
        assert!(
            audit
                .iter()
                .any(|e| e.kind == kind && e.detail.contains("@alice")),
            "{kind}: {audit:?}"
        );
    }
    assert!(!audit.iter().any(|e| e.detail.contains("@bob")));
    w.server.shutdown().await;
}
on_both_backends!(answering_and_cancelling_from_the_page);
