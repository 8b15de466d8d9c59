//! The fake's side of GitHub's App manifest flow, and requests held back on purpose.
//!
//! The manifest flow, as the fake models it (state, not canned answers):
//! - `POST /settings/apps/new?state=S` (or `/organizations/{org}/settings/apps/new`) is
//!   the browser's form post of a `manifest` field. It stands for the whole visit to
//!   GitHub's page, the user confirming included: the manifest is checked the way GitHub
//!   does (a homepage URL, a webhook URL, every event covered by a permission, a name not
//!   taken), the App is registered with a fresh webhook secret and client secret, and the
//!   browser is redirected (302) to the manifest's `redirect_url` with `?code=…&state=S`.
//!   [`FakeGitHub::register_manifest_code`] does the same without a form.
//! - `POST /app-manifests/{code}/conversions` (no authentication) answers 201 with the
//!   App's id, slug, private key (`pem`), webhook secret and client id and secret, once: a
//!   code is spent by its conversion and lapses after an hour, like GitHub's (404 after).
//! - Modelling choice: the fake hosts one App, with one key pair and the id and slug of
//!   [`FakeGitHub::app_id`]/[`FakeGitHub::app_slug`] whatever the manifest's name; a second
//!   registration is refused with 422. `GET /app` then shows the registered name, owner,
//!   permissions and events.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::{Method, Uri};
use serde_json::{Value, json};

use super::{
    APP_ID, APP_OWNER, APP_SLUG, FakeGitHub, HTML_BASE, Reply, Req, State, UserKind, app_keys,
    now_secs, rfc3339,
};

/// GitHub's manifest codes last an hour.
const CODE_TTL: Duration = Duration::from_secs(60 * 60);

/// Which permission an event needs before an App may subscribe to it.
const EVENT_PERMISSIONS: &[(&str, &[&str])] = &[
    ("issues", &["issues"]),
    ("issue_comment", &["issues", "pull_requests"]),
    ("pull_request", &["pull_requests"]),
    ("pull_request_review", &["pull_requests"]),
    ("pull_request_review_comment", &["pull_requests"]),
    ("check_run", &["checks"]),
    ("check_suite", &["checks"]),
    ("workflow_run", &["actions"]),
    ("push", &["contents"]),
    ("status", &["statuses"]),
];

/// The flow's state inside the fake's [`State`].
#[derive(Default)]
pub(super) struct Flow {
    codes: HashMap<String, PendingCode>,
    registered: Option<Registered>,
    holds: Vec<Hold>,
    held_now: usize,
}

struct PendingCode {
    issued: SystemTime,
}

struct Registered {
    manifest: Value,
    owner: String,
    webhook_secret: String,
    client_id: String,
    client_secret: String,
    created_at: i64,
}

struct Hold {
    method: String,
    path_prefix: String,
    delay: Duration,
}

impl FakeGitHub {
    /// Registers the App from `manifest` as if someone had posted it and confirmed on
    /// GitHub's page, owned by `org` (or the App owner's personal account); returns the
    /// code GitHub would redirect with. Panics on a manifest GitHub would refuse.
    pub fn register_manifest_code(&self, manifest: &Value, org: Option<&str>) -> String {
        let mut st = self.lock();
        match st.register(manifest, org) {
            Ok(code) => code,
            Err(reply) => panic!("manifest refused: {:?}", reply.body),
        }
    }

    /// The manifest the App was registered from, as GitHub received it.
    pub fn registered_manifest(&self) -> Option<Value> {
        let st = self.lock();
        st.flow.registered.as_ref().map(|r| r.manifest.clone())
    }

    /// The account that owns the registered App.
    pub fn registered_owner(&self) -> Option<String> {
        let st = self.lock();
        st.flow.registered.as_ref().map(|r| r.owner.clone())
    }

    /// The registered App's webhook secret: what GitHub signs its deliveries with.
    pub fn registered_webhook_secret(&self) -> Option<String> {
        let st = self.lock();
        st.flow
            .registered
            .as_ref()
            .map(|r| r.webhook_secret.clone())
    }

    /// Manifest codes issued and not yet exchanged.
    pub fn pending_manifest_codes(&self) -> usize {
        self.lock().flow.codes.len()
    }

    /// The next request matching `method` (`"*"` for any) and `path_prefix` is held for
    /// `delay` before the fake looks at it (a slow GitHub).
    pub fn hold_next(&self, method: &str, path_prefix: &str, delay: Duration) {
        self.lock().flow.holds.push(Hold {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            delay,
        });
    }

    /// Requests being held right now.
    pub fn held(&self) -> usize {
        self.lock().flow.held_now
    }

    /// Holds a request back when [`FakeGitHub::hold_next`] asked for it.
    pub(super) async fn hold_if_asked(&self, method: &Method, uri: &Uri) {
        let delay = {
            let mut st = self.lock();
            let position = st.flow.holds.iter().position(|h| {
                (h.method == "*" || h.method.eq_ignore_ascii_case(method.as_str()))
                    && uri.path().starts_with(&h.path_prefix)
            });
            position.map(|p| {
                st.flow.held_now += 1;
                st.flow.holds.remove(p).delay
            })
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
            self.lock().flow.held_now -= 1;
        }
    }
}

impl State {
    /// `POST …/settings/apps/new?state=…` with a form-encoded `manifest` field.
    pub(super) fn new_app_from_form(&mut self, req: &Req, org: Option<&str>) -> Reply {
        let form = match req.body {
            Some(Value::String(text)) => text.clone(),
            _ => String::new(),
        };
        let fields: HashMap<String, String> = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let Some(manifest) = fields
            .get("manifest")
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
        else {
            return Reply::error(422, "The manifest field is missing or is not JSON");
        };
        let code = match self.register(&manifest, org) {
            Ok(code) => code,
            Err(reply) => return reply,
        };
        let redirect = manifest["redirect_url"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut location = format!("{redirect}?code={code}");
        if let Some(state) = req.param("state") {
            let state: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
            location.push_str(&format!("&state={state}"));
        }
        Reply {
            status: 302,
            body: None,
            headers: vec![("location", location)],
        }
    }

    /// Checks a manifest as GitHub does, registers the App and issues a code.
    fn register(&mut self, manifest: &Value, org: Option<&str>) -> Result<String, Reply> {
        let owner = match org {
            Some(org) => {
                let known = self.users.get(&org.to_ascii_lowercase());
                match known {
                    Some(user) if user.kind == UserKind::Organization => user.login.clone(),
                    _ => return Err(Reply::not_found()),
                }
            }
            None => APP_OWNER.to_owned(),
        };
        let url_of = |v: &Value| v.as_str().filter(|u| u.starts_with("http")).is_some();
        if !url_of(&manifest["url"]) {
            return Err(Reply::invalid("Integration", "url", "missing_field", None));
        }
        if !url_of(&manifest["hook_attributes"]["url"]) {
            return Err(Reply::invalid(
                "Integration",
                "hook_attributes.url",
                "missing_field",
                None,
            ));
        }
        if manifest.to_string().contains("{{") {
            return Err(Reply::invalid(
                "Integration",
                "url",
                "invalid",
                Some("is not a valid URL"),
            ));
        }
        let permissions = manifest["default_permissions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for event in manifest["default_events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let needs = EVENT_PERMISSIONS
                .iter()
                .find(|(e, _)| *e == event)
                .map(|(_, p)| *p);
            let Some(needs) = needs else {
                return Err(Reply::invalid(
                    "Integration",
                    "default_events",
                    "invalid",
                    Some(&format!("{event} is not a known event")),
                ));
            };
            if !needs.iter().any(|p| permissions.contains_key(*p)) {
                return Err(Reply::invalid(
                    "Integration",
                    "default_events",
                    "invalid",
                    Some(&format!("{event} needs one of the permissions {needs:?}")),
                ));
            }
        }
        if self.flow.registered.is_some() {
            return Err(Reply::invalid(
                "Integration",
                "name",
                "already_exists",
                Some("Name is already in use (the fake GitHub hosts one App)"),
            ));
        }
        self.flow.registered = Some(Registered {
            manifest: manifest.clone(),
            owner,
            webhook_secret: random_hex(20),
            client_id: format!("Iv23li{}", random_hex(7)),
            client_secret: random_hex(20),
            created_at: now_secs(),
        });
        let code = random_hex(20);
        self.flow.codes.insert(
            code.clone(),
            PendingCode {
                issued: SystemTime::now(),
            },
        );
        Ok(code)
    }

    /// `POST /app-manifests/{code}/conversions`.
    pub(super) fn convert_manifest(&mut self, code: &str) -> Reply {
        let Some(pending) = self.flow.codes.remove(code) else {
            return Reply::not_found();
        };
        if pending.issued.elapsed().unwrap_or_default() > CODE_TTL {
            return Reply::not_found();
        }
        let Some(mut app) = self.registered_app_json() else {
            return Reply::not_found();
        };
        let Some(registered) = &self.flow.registered else {
            return Reply::not_found();
        };
        super::merge_into(
            &mut app,
            json!({
                "client_id": registered.client_id,
                "client_secret": registered.client_secret,
                "webhook_secret": registered.webhook_secret,
                "pem": app_keys().pkcs1_pem,
            }),
        );
        Reply::created(app)
    }

    /// `GET /app` once an App was registered from a manifest.
    pub(super) fn registered_app_json(&self) -> Option<Value> {
        let registered = self.flow.registered.as_ref()?;
        let manifest = &registered.manifest;
        Some(json!({
            "id": APP_ID,
            "slug": APP_SLUG,
            "node_id": format!("A_kwDO{APP_ID}"),
            "client_id": registered.client_id,
            "owner": self.user_json(&registered.owner),
            "name": manifest["name"].as_str().unwrap_or(APP_SLUG),
            "description": manifest["description"].as_str().unwrap_or_default(),
            "external_url": manifest["url"],
            "html_url": format!("{HTML_BASE}/apps/{APP_SLUG}"),
            "created_at": rfc3339(registered.created_at),
            "updated_at": rfc3339(registered.created_at),
            "permissions": manifest["default_permissions"],
            "events": manifest["default_events"],
            "installations_count": self.installations.len(),
        }))
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}
