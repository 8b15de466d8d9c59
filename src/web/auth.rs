//! Sign-in with GitHub (the App's OAuth client), the session cookie, CSRF tokens, and what a
//! signed-in person may read, asked of GitHub with their own token and remembered briefly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{Refused, Web, pages};
use crate::engine::runtime::tokens::token_hash;
use crate::model::repo_config::Permission;
use crate::setup::random_hex;
use crate::store::WebSession;

/// The session cookie.
const SESSION_COOKIE: &str = "foreman_session";
/// The cookie that carries a sign-in's state (and where to go after) through GitHub.
const STATE_COOKIE: &str = "foreman_oauth";
/// How long a sign-in lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// How long what GitHub said about a person's access is trusted.
const ACCESS_TTL: Duration = Duration::from_secs(60);
/// Where GitHub sends the browser back.
pub const CALLBACK_PATH: &str = "/auth/callback";

/// What GitHub said each person may do in each repository, for [`ACCESS_TTL`].
#[derive(Default)]
pub struct Access {
    cache: Mutex<HashMap<(String, String), (Instant, Permission)>>,
}

impl Access {
    /// The viewer's permission on `repository` (`None` when they cannot read it).
    pub async fn permission(
        &self,
        web: &Web,
        viewer: &WebSession,
        repository: &str,
    ) -> anyhow::Result<Permission> {
        let key = (viewer.login.to_ascii_lowercase(), repository.to_owned());
        if let Some((at, permission)) = lock(&self.cache).get(&key)
            && at.elapsed() < ACCESS_TTL
        {
            return Ok(*permission);
        }
        let client = user_client(&web.settings.api_url, &viewer.token)?;
        let permission = match crate::github::rest::call(
            &client,
            http::Method::GET,
            &format!("/repos/{repository}"),
            None,
        )
        .await
        {
            Ok(repo) => permission_of(&repo["permissions"]),
            Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => Permission::None,
            Err(e) => return Err(e.into()),
        };
        let mut cache = lock(&self.cache);
        cache.retain(|_, (at, _)| at.elapsed() < ACCESS_TTL);
        cache.insert(key, (Instant::now(), permission));
        Ok(permission)
    }
}

/// The highest permission GitHub's `permissions` object grants.
fn permission_of(permissions: &Value) -> Permission {
    let has = |name: &str| permissions[name].as_bool() == Some(true);
    if has("admin") {
        Permission::Admin
    } else if has("maintain") {
        Permission::Maintain
    } else if has("push") {
        Permission::Write
    } else if has("triage") {
        Permission::Triage
    } else if has("pull") {
        Permission::Read
    } else {
        Permission::None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn user_client(api_url: &str, token: &SecretString) -> anyhow::Result<Octocrab> {
    Ok(Octocrab::builder()
        .base_uri(api_url)?
        .personal_token(token.expose_secret().to_owned())
        .build()?)
}

/// The signed-in person, or the response that sends them to sign in (`here` is where they
/// come back to).
pub async fn viewer(web: &Web, headers: &HeaderMap, here: &str) -> Result<WebSession, Refused> {
    session_of(web, headers)
        .await?
        .ok_or_else(|| Refused::with(Redirect::to(&format!("/login?next={}", encode(here)))))
}

/// The signed-in person, for a request that is not a page (a form, a live stream): 401 when
/// nobody is.
pub async fn signed_in(web: &Web, headers: &HeaderMap) -> Result<WebSession, Refused> {
    session_of(web, headers).await?.ok_or_else(|| {
        Refused::with((
            StatusCode::UNAUTHORIZED,
            pages::message("Signed out", "Sign in to do that."),
        ))
    })
}

/// The session the request's cookie belongs to, if it is live.
pub async fn session_of(web: &Web, headers: &HeaderMap) -> anyhow::Result<Option<WebSession>> {
    let Some(cookie) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = token_hash(&SecretString::from(cookie));
    web.store.web_session(&hash, web.clock.now()).await
}

/// Whether a form's CSRF token is the session's.
pub fn csrf_ok(session: &WebSession, given: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A cookie that only this site's pages send, over HTTPS when foreman is reached by it.
fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .expect("cookie text is ASCII")
}

fn public_url(web: &Web, headers: &HeaderMap) -> Option<String> {
    web.objectives
        .github
        .public_url()
        .or_else(|| crate::setup::public_url_from_headers(headers))
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// The App's OAuth client: from the settings, else from the credentials file the setup page
/// wrote.
fn client(web: &Web) -> Option<(String, SecretString)> {
    if let (Some(id), Some(secret)) = (&web.settings.client_id, &web.settings.client_secret) {
        return Some((id.clone(), secret.clone()));
    }
    let stored = crate::setup::credentials::StoredApp::load(&web.settings.app_file)
        .ok()
        .flatten()?;
    Some((stored.client_id?, stored.client_secret?))
}

/// A path on this site to go to after signing in; anything else is the objectives page.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-?=&.".contains(c)) =>
        {
            n.to_owned()
        }
        _ => "/objectives".to_owned(),
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: to GitHub, to sign in with the App's OAuth client.
pub async fn login(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some((client_id, _)) = client(&web) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message(
                "Sign-in is not set up",
                "foreman has no OAuth client for its GitHub App: register the App from the \
                 setup page, or set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET.",
            ),
        )
            .into_response();
    };
    let Some(base) = public_url(&web, &headers) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            pages::message(
                "Sign-in is not set up",
                "foreman does not know its public address: set FOREMAN_PUBLIC_URL.",
            ),
        )
            .into_response();
    };
    let state = random_hex(16);
    let next = safe_next(query.next.as_deref());
    let location = format!(
        "{}/login/oauth/authorize?client_id={}&redirect_uri={}&state={state}",
        web.settings.web_url.trim_end_matches('/'),
        encode(&client_id),
        encode(&format!("{base}{CALLBACK_PATH}")),
    );
    let mut response = Redirect::to(&location).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            STATE_COOKIE,
            &format!("{state}:{next}"),
            Duration::from_secs(600),
            base.starts_with("https://"),
        ),
    );
    response
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /auth/callback`: GitHub sends the browser back with a code, which becomes the
/// person's token and a session.
pub async fn callback(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let refused = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            pages::message("Sign-in failed", why),
        )
            .into_response()
    };
    let Some((state, next)) = cookie(&headers, STATE_COOKIE)
        .and_then(|c| c.split_once(':').map(|(s, n)| (s.to_owned(), n.to_owned())))
    else {
        return refused("the sign-in was not started here (or took too long): try again.");
    };
    if query.state.as_deref() != Some(state.as_str()) {
        return refused("the sign-in's state does not match: try again.");
    }
    let Some(code) = query.code else {
        return refused("GitHub sent no code: try again.");
    };
    let (Some((client_id, client_secret)), Some(base)) = (client(&web), public_url(&web, &headers))
    else {
        return refused("sign-in is not set up on this foreman.");
    };
    let user = match exchange(&web, &client_id, &client_secret, &code, &base).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "a sign-in failed");
            return refused("GitHub did not accept the sign-in: try again.");
        }
    };
    let cookie_value = random_hex(32);
    let now = web.clock.now();
    let session = WebSession {
        id_hash: token_hash(&SecretString::from(cookie_value.clone())),
        login: user.login,
        user_id: user.id,
        token: user.token,
        csrf: random_hex(16),
        created_at: now,
        expires_at: now.plus(SESSION_TTL),
    };
    if let Err(e) = web.store.create_web_session(&session).await {
        return super::server_error(&e);
    }
    tracing::info!(login = %session.login, "signed in to the web view");
    let secure = base.starts_with("https://");
    let mut response = Redirect::to(&safe_next(Some(&next))).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &cookie_value, SESSION_TTL, secure),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(STATE_COOKIE, "", Duration::ZERO, secure),
    );
    response
}

struct SignedIn {
    login: String,
    id: i64,
    token: SecretString,
}

/// The code for a user token, and who it belongs to.
async fn exchange(
    web: &Web,
    client_id: &str,
    client_secret: &SecretString,
    code: &str,
    base: &str,
) -> anyhow::Result<SignedIn> {
    let oauth = Octocrab::builder()
        .base_uri(web.settings.web_url.as_str())?
        .add_header(header::ACCEPT, "application/json".to_owned())
        .build()?;
    let body = serde_json::json!({
        "client_id": client_id,
        "client_secret": client_secret.expose_secret(),
        "code": code,
        "redirect_uri": format!("{base}{CALLBACK_PATH}"),
    });
    let answer = crate::github::rest::call(
        &oauth,
        http::Method::POST,
        "/login/oauth/access_token",
        Some(&body),
    )
    .await?;
    let Some(token) = answer["access_token"].as_str() else {
        anyhow::bail!(
            "GitHub answered without a token: {}",
            answer["error_description"]
                .as_str()
                .or(answer["error"].as_str())
                .unwrap_or("no reason given")
        );
    };
    let token = SecretString::from(token.to_owned());
    let user = crate::github::rest::call(
        &user_client(&web.settings.api_url, &token)?,
        http::Method::GET,
        "/user",
        None,
    )
    .await?;
    Ok(SignedIn {
        login: user["login"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("GitHub's /user has no login"))?
            .to_owned(),
        id: user["id"].as_i64().unwrap_or(0),
        token,
    })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    match session_of(&web, &headers).await {
        Ok(Some(session)) if csrf_ok(&session, &form.csrf) => {
            if let Err(e) = web.store.delete_web_session(&session.id_hash).await {
                return super::server_error(&e);
            }
        }
        Ok(Some(_)) => return forbidden("the form is stale: reload the page and try again."),
        Ok(None) => {}
        Err(e) => return super::server_error(&e),
    }
    let secure = public_url(&web, &headers).is_some_and(|u| u.starts_with("https://"));
    let mut response = (
        StatusCode::OK,
        pages::message("Signed out", "You are signed out of foreman."),
    )
        .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Duration::ZERO, secure),
    );
    response
}

pub fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, pages::message("Not allowed", why)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_permissions_object_maps_to_the_highest() {
        let p = |v: Value| permission_of(&v);
        assert_eq!(
            p(
                serde_json::json!({"admin": false, "maintain": false, "push": true, "triage": true, "pull": true})
            ),
            Permission::Write
        );
        assert_eq!(p(serde_json::json!({"pull": true})), Permission::Read);
        assert_eq!(p(serde_json::json!({"admin": true})), Permission::Admin);
        assert_eq!(p(Value::Null), Permission::None);
    }

    #[test]
    fn only_paths_here_are_gone_to_after_sign_in() {
        assert_eq!(safe_next(Some("/objectives/4")), "/objectives/4");
        assert_eq!(
            safe_next(Some("/objectives?show=ended")),
            "/objectives?show=ended"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/x\"y",
            "",
            "/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/objectives", "{bad}");
        }
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; foreman_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", SESSION_TTL, true);
        let text = set.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Secure")
        );
    }
}
