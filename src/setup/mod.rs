//! Registering foreman as a GitHub App from its manifest (GitHub's "manifest flow"), so a
//! team goes from nothing to a running App without copying keys around:
//!
//! 1. `foreman serve` starts without App credentials and logs a setup link with a one-time
//!    token (`/setup?token=…`). Only someone who can read foreman's log can register the
//!    App: without the token, anyone who reached the page first could make foreman serve an
//!    App of *their* account, at the operator's agent costs.
//! 2. The setup page posts the manifest (with foreman's public URL filled in) from the
//!    browser to GitHub, for a personal account or an organization, with a random `state`.
//! 3. GitHub creates the App and sends the browser back to `/setup/callback?code=…&state=…`.
//!    The state must be one this process handed out within the hour; the code is exchanged
//!    (`POST /app-manifests/{code}/conversions`, no authentication) for the App's id, slug,
//!    private key, webhook secret and client id and secret.
//! 4. Those are written to the credentials file (mode 0600; never logged) and installed in
//!    the running engine, which serves as the App from the next request on. The page links
//!    to the App's installation page.
//!
//! Once an App is configured the setup routes register nothing more; they say so.

pub mod credentials;
pub mod manifest;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http::{HeaderMap, Method};
use octocrab::Octocrab;
use secrecy::SecretString;
use serde_json::Value;

use crate::config::ServeArgs;
use crate::engine::identity::Identity;
use crate::github::app::GitHubApp;
use crate::github::rest;
use crate::model::Clock;
use crate::model::Timestamp;
use credentials::{Resolved, Source, StoredApp};

/// How long a setup started from the page may take to come back from GitHub (GitHub's
/// manifest codes last an hour too).
pub const STATE_TTL: Duration = Duration::from_secs(60 * 60);
/// Setups in flight at once; the oldest is forgotten beyond this.
const MAX_PENDING: usize = 64;
/// Longest manifest code accepted from the redirect.
const MAX_CODE_LEN: usize = 200;
/// Longest GitHub account name.
const MAX_LOGIN_LEN: usize = 39;
/// Time allowed to connect to the GitHub API for the exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for GitHub's answer to the exchange.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the setup pages show about the App in use.
#[derive(Debug, Clone)]
pub struct AppInfo {
    pub app_id: u64,
    pub slug: Option<String>,
    pub owner: Option<String>,
    pub html_url: Option<String>,
    pub source: Source,
}

/// Where the App will be registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// An organization's login; `None`: the personal account of whoever is signed in.
    pub org: Option<String>,
    /// The App's name (GitHub's page lets it be changed there too).
    pub name: Option<String>,
}

/// A registration ready to post: the form's action and the manifest field.
#[derive(Debug, Clone)]
pub struct Registration {
    pub action: String,
    pub manifest: String,
    pub public_url: String,
}

/// A completed registration.
#[derive(Debug, Clone)]
pub struct Completed {
    pub info: AppInfo,
    /// Where to install the App.
    pub install_url: String,
    /// Whether the credentials file was written (the App works until restart either way).
    pub saved: Result<PathBuf, String>,
}

/// Why a setup step was refused.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("foreman already serves as a GitHub App; nothing was registered")]
    AlreadyConfigured,
    #[error("the setup token is missing or wrong: open the setup link from foreman's log")]
    BadToken,
    #[error(
        "this setup was not started here, or started more than an hour ago: start again from the setup link in foreman's log"
    )]
    BadState,
    #[error("{0}")]
    BadInput(String),
    #[error("cannot store the App credentials: {0}")]
    Storage(String),
    #[error("GitHub did not complete the registration: {0}")]
    GitHub(String),
}

/// The setup flow's state: its token, the setups in flight, and what it needs to install a
/// newly registered App as foreman's identity.
pub struct Setup {
    github: Arc<Identity>,
    clock: Arc<dyn Clock>,
    web_url: String,
    api_url: String,
    public_url: Option<String>,
    app_file: PathBuf,
    configured_secrets: Vec<SecretString>,
    token: String,
    pending: Mutex<HashMap<String, Timestamp>>,
    registering: tokio::sync::Mutex<()>,
    info: RwLock<Option<AppInfo>>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("web_url", &self.web_url)
            .field("app_file", &self.app_file)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// The flow for a foreman started with `args`, whose identity was `resolved`.
    pub fn new(
        github: Arc<Identity>,
        clock: Arc<dyn Clock>,
        args: &ServeArgs,
        resolved: &Resolved,
    ) -> Setup {
        let info = resolved.app.as_ref().map(|app| {
            let stored = resolved.stored.as_ref().filter(|s| s.app_id == app.app_id);
            AppInfo {
                app_id: app.app_id,
                slug: stored.map(|s| s.slug.clone()),
                owner: stored.and_then(|s| s.owner.clone()),
                html_url: stored.and_then(|s| s.html_url.clone()),
                source: resolved.source,
            }
        });
        Setup {
            github,
            clock,
            web_url: args.github.web_url.trim_end_matches('/').to_owned(),
            api_url: args.github.api_url.trim_end_matches('/').to_owned(),
            public_url: args
                .setup
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
            app_file: std::path::absolute(&args.setup.app_file)
                .unwrap_or_else(|_| args.setup.app_file.clone()),
            configured_secrets: resolved.configured_secrets.clone(),
            token: random_hex(16),
            pending: Mutex::new(HashMap::new()),
            registering: tokio::sync::Mutex::new(()),
            info: RwLock::new(info),
        }
    }

    /// The one-time token the setup page asks for (logged at startup).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The setup link to log: on the public URL when one is configured, else on `addr`.
    pub fn link(&self, addr: std::net::SocketAddr) -> String {
        let base = self.public_url.clone().unwrap_or_else(|| {
            let host = if addr.ip().is_unspecified() {
                "localhost".to_owned()
            } else if addr.is_ipv6() {
                format!("[{}]", addr.ip())
            } else {
                addr.ip().to_string()
            };
            format!("http://{host}:{}", addr.port())
        });
        format!("{base}{}?token={}", manifest::SETUP_PATH, self.token)
    }

    /// Whether foreman serves as an App already.
    pub fn is_configured(&self) -> bool {
        self.github.app().is_some()
    }

    /// The App in use, when there is one.
    pub fn info(&self) -> Option<AppInfo> {
        if !self.is_configured() {
            return None;
        }
        let known = self.info.read().unwrap_or_else(|e| e.into_inner()).clone();
        known.or_else(|| {
            self.github.app().map(|app| AppInfo {
                app_id: app.app_id(),
                slug: None,
                owner: None,
                html_url: None,
                source: Source::Settings,
            })
        })
    }

    /// Where the credentials file is.
    pub fn app_file(&self) -> &std::path::Path {
        &self.app_file
    }

    /// GitHub's page to install the App `slug`.
    pub fn install_url(&self, slug: &str) -> String {
        format!("{}/apps/{slug}/installations/new", self.web_url)
    }

    /// Whether webhooks can be accepted (a webhook secret is configured).
    pub fn has_webhook_secret(&self) -> bool {
        !self.github.webhook_secrets().is_empty()
    }

    /// Checks the setup token, in constant time.
    pub fn check_token(&self, given: Option<&str>) -> Result<(), SetupError> {
        let given = given.unwrap_or_default().as_bytes();
        if crate::github::signature::constant_time_eq(given, self.token.as_bytes()) {
            Ok(())
        } else {
            Err(SetupError::BadToken)
        }
    }

    /// foreman's public base URL for a request with `headers`: the configured one, else
    /// what the proxy (`X-Forwarded-Proto`, `X-Forwarded-Host`) or the `Host` header says.
    pub fn public_url(&self, headers: &HeaderMap) -> Option<String> {
        self.public_url
            .clone()
            .or_else(|| public_url_from_headers(headers))
    }

    /// Starts a registration: a fresh state and the form that posts the manifest to GitHub.
    pub fn begin(&self, target: &Target, public_url: &str) -> Result<Registration, SetupError> {
        if self.is_configured() {
            return Err(SetupError::AlreadyConfigured);
        }
        let name = check_name(target.name.as_deref())?;
        let path = match check_org(target.org.as_deref())? {
            Some(org) => format!("/organizations/{org}/settings/apps/new"),
            None => "/settings/apps/new".to_owned(),
        };
        let state = random_hex(16);
        let now = self.clock.now();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.retain(|_, at| now.since(*at) < STATE_TTL);
            while pending.len() >= MAX_PENDING {
                let oldest = pending
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(s, _)| s.clone());
                match oldest {
                    Some(s) => pending.remove(&s),
                    None => break,
                };
            }
            pending.insert(state.clone(), now);
        }
        let manifest = manifest::for_public_url(public_url, name.as_deref());
        Ok(Registration {
            action: format!("{}{path}?state={state}", self.web_url),
            manifest: manifest.to_string(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Completes a registration GitHub sent back: checks the state, exchanges the code,
    /// stores the credentials and starts serving as the new App.
    pub async fn complete(&self, code: &str, state: &str) -> Result<Completed, SetupError> {
        let _one_at_a_time = self.registering.lock().await;
        if self.is_configured() {
            return Err(SetupError::AlreadyConfigured);
        }
        let code = check_code(code)?;
        let now = self.clock.now();
        let started = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state);
        if started.is_none_or(|at| now.since(at) >= STATE_TTL) {
            return Err(SetupError::BadState);
        }
        // Fail before GitHub hands out a key that could not be kept.
        credentials::check_writable(&self.app_file).map_err(|e| {
            SetupError::Storage(format!(
                "{e:#} (FOREMAN_APP_FILE is {}); fix it and start again",
                self.app_file.display()
            ))
        })?;
        let stored = self.exchange(code).await?;
        let app_credentials = stored.credentials().map_err(|e| {
            SetupError::GitHub(format!("the App's private key is not usable ({e:#})"))
        })?;
        let app = GitHubApp::new(&app_credentials, &self.api_url, self.clock.clone())
            .map_err(|e| SetupError::GitHub(format!("{e:#}")))?;
        let saved = stored
            .save(&self.app_file)
            .map(|()| self.app_file.clone())
            .map_err(|e| format!("{e:#}"));
        let mut secrets = self.configured_secrets.clone();
        secrets.push(stored.webhook_secret.clone());
        self.github.set(Some(Arc::new(app)), secrets);
        let info = AppInfo {
            app_id: stored.app_id,
            slug: Some(stored.slug.clone()),
            owner: stored.owner.clone(),
            html_url: stored.html_url.clone(),
            source: Source::File,
        };
        *self.info.write().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
        match &saved {
            Ok(path) => tracing::info!(
                app_id = stored.app_id,
                slug = %stored.slug,
                file = %path.display(),
                "GitHub App registered; its credentials are saved and foreman now serves as it"
            ),
            Err(error) => tracing::error!(
                app_id = stored.app_id,
                slug = %stored.slug,
                error = %error,
                "GitHub App registered and in use, but its credentials could not be saved: \
                 they are lost at the next restart"
            ),
        }
        Ok(Completed {
            install_url: self.install_url(&stored.slug),
            info,
            saved,
        })
    }

    /// `POST /app-manifests/{code}/conversions`: GitHub's answer holds the App's secrets.
    async fn exchange(&self, code: &str) -> Result<StoredApp, SetupError> {
        let client = Octocrab::builder()
            .base_uri(self.api_url.as_str())
            .and_then(|b| {
                b.set_connect_timeout(Some(CONNECT_TIMEOUT))
                    .set_read_timeout(Some(READ_TIMEOUT))
                    .build()
            })
            .map_err(|e| SetupError::GitHub(format!("cannot reach {}: {e}", self.api_url)))?;
        let path = format!("/app-manifests/{code}/conversions");
        let answer = rest::call(&client, Method::POST, &path, None)
            .await
            .map_err(|e| SetupError::GitHub(e.to_string()))?;
        parse_conversion(&answer)
    }
}

/// Reads GitHub's answer to a manifest conversion.
fn parse_conversion(answer: &Value) -> Result<StoredApp, SetupError> {
    let text = |field: &str| answer[field].as_str().map(str::to_owned);
    let missing = |field: &str| SetupError::GitHub(format!("its answer has no `{field}`"));
    Ok(StoredApp {
        app_id: answer["id"].as_u64().ok_or_else(|| missing("id"))?,
        slug: text("slug").ok_or_else(|| missing("slug"))?,
        name: text("name"),
        owner: answer["owner"]["login"].as_str().map(str::to_owned),
        html_url: text("html_url"),
        client_id: text("client_id"),
        client_secret: text("client_secret").map(SecretString::from),
        webhook_secret: text("webhook_secret")
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| missing("webhook_secret"))?,
        private_key: text("pem")
            .map(SecretString::from)
            .ok_or_else(|| missing("pem"))?,
    })
}

/// The public base URL a proxy or the client says this request came to.
pub fn public_url_from_headers(headers: &HeaderMap) -> Option<String> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = match first("x-forwarded-proto").map(str::to_ascii_lowercase) {
        Some(p) if p == "https" || p == "http" => p,
        _ => "http".to_owned(),
    };
    let host = first("x-forwarded-host").or_else(|| first("host"))?;
    let plausible = host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    plausible.then(|| format!("{proto}://{host}"))
}

fn check_org(org: Option<&str>) -> Result<Option<String>, SetupError> {
    let Some(org) = org.map(str::trim).filter(|o| !o.is_empty()) else {
        return Ok(None);
    };
    let valid = org.len() <= MAX_LOGIN_LEN
        && org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !org.starts_with('-')
        && !org.ends_with('-');
    if !valid {
        return Err(SetupError::BadInput(format!(
            "`{org}` is not a GitHub organization name"
        )));
    }
    Ok(Some(org.to_owned()))
}

fn check_name(name: Option<&str>) -> Result<Option<String>, SetupError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > manifest::MAX_APP_NAME || name.chars().any(char::is_control) {
        return Err(SetupError::BadInput(format!(
            "an App name has at most {} characters",
            manifest::MAX_APP_NAME
        )));
    }
    Ok(Some(name.to_owned()))
}

fn check_code(code: &str) -> Result<&str, SetupError> {
    let code = code.trim();
    let valid = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(code)
    } else {
        Err(SetupError::BadInput(
            "GitHub's redirect carried no usable code".to_owned(),
        ))
    }
}

pub fn random_hex(bytes: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_public_url_comes_from_the_proxy_or_the_host() {
        assert_eq!(
            public_url_from_headers(&headers(&[("host", "127.0.0.1:3000")])).as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            public_url_from_headers(&headers(&[
                ("host", "10.0.0.5:8080"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "foreman.example.com, proxy.internal"),
            ]))
            .as_deref(),
            Some("https://foreman.example.com")
        );
        assert_eq!(
            public_url_from_headers(&headers(&[
                ("host", "foreman.fly.dev"),
                ("x-forwarded-proto", "https")
            ]))
            .as_deref(),
            Some("https://foreman.fly.dev")
        );
        assert_eq!(
            public_url_from_headers(&headers(&[("host", "evil.example\"><script>")])),
            None
        );
        assert_eq!(public_url_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn organization_names_and_codes_are_checked() {
        assert_eq!(
            check_org(Some(" acme-co ")).unwrap().as_deref(),
            Some("acme-co")
        );
        assert_eq!(check_org(Some("")).unwrap(), None);
        assert!(check_org(Some("acme/../x")).is_err());
        assert!(check_org(Some("-acme")).is_err());
        assert!(check_code("abc123_-").is_ok());
        assert!(check_code("../app").is_err());
        assert!(check_code("").is_err());
        assert!(check_name(Some(&"x".repeat(35))).is_err());
        assert_eq!(check_name(Some(" ")).unwrap(), None);
    }

    #[test]
    fn a_conversion_needs_its_secrets() {
        let full = serde_json::json!({
            "id": 9, "slug": "s", "pem": "KEY", "webhook_secret": "w",
            "client_id": "c", "client_secret": "cs", "owner": {"login": "acme"}
        });
        let app = parse_conversion(&full).unwrap();
        assert_eq!(app.owner.as_deref(), Some("acme"));
        for field in ["id", "slug", "pem", "webhook_secret"] {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(field);
            let err = parse_conversion(&partial).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
