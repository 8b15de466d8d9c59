//! The setup pages: `GET /` (to `/setup`), `GET /setup` (the form that posts the App
//! manifest to GitHub) and `GET /setup/callback` (where GitHub sends the browser back with
//! the code to exchange). The flow itself lives in [`crate::setup`]; these render it as
//! plain HTML forms that work without JavaScript.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::setup::credentials::Source;
use crate::setup::{AppInfo, Completed, Setup, SetupError, Target, manifest};

type Params = Query<HashMap<String, String>>;

/// The setup routes, to merge into the main router.
pub fn routes(setup: Arc<Setup>) -> Router {
    Router::new()
        .route("/", get(root))
        .route(manifest::SETUP_PATH, get(setup_page))
        .route(manifest::CALLBACK_PATH, get(callback))
        .with_state(setup)
}

/// The setup page until an App is registered, then the web view.
async fn root(State(setup): State<Arc<Setup>>) -> Redirect {
    if setup.is_configured() {
        Redirect::to("/objectives")
    } else {
        Redirect::to(manifest::SETUP_PATH)
    }
}

async fn setup_page(
    State(setup): State<Arc<Setup>>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    if let Some(info) = setup.info() {
        // To anyone else, only that it is set up: which App, from where, and what is missing
        // are for whoever holds the token from the log.
        let body = match setup.check_token(params.get("token").map(String::as_str)) {
            Ok(()) => done(&setup, &info),
            Err(_) => paragraph("foreman is set up as a GitHub App. Nothing is registered here."),
        };
        return html(StatusCode::OK, "foreman is set up", &body);
    }
    if let Err(e) = setup.check_token(params.get("token").map(String::as_str)) {
        return refusal(StatusCode::FORBIDDEN, &e);
    }
    let Some(public_url) = setup.public_url(&headers) else {
        let e = SetupError::BadInput(
            "cannot tell foreman's public URL from this request; set FOREMAN_PUBLIC_URL".into(),
        );
        return refusal(StatusCode::BAD_REQUEST, &e);
    };
    let target = Target {
        org: params.get("org").cloned().filter(|o| !o.trim().is_empty()),
        name: params.get("name").cloned().filter(|n| !n.trim().is_empty()),
    };
    match setup.begin(&target, &public_url) {
        Ok(registration) => html(
            StatusCode::OK,
            "Register foreman as a GitHub App",
            &register(&setup, &target, &registration),
        ),
        Err(SetupError::AlreadyConfigured) => match setup.info() {
            Some(info) => html(StatusCode::OK, "foreman is set up", &done(&setup, &info)),
            None => refusal(StatusCode::CONFLICT, &SetupError::AlreadyConfigured),
        },
        Err(e) => refusal(StatusCode::BAD_REQUEST, &e),
    }
}

async fn callback(State(setup): State<Arc<Setup>>, Query(params): Params) -> Response {
    let code = params.get("code").map(String::as_str).unwrap_or_default();
    let state = params.get("state").map(String::as_str).unwrap_or_default();
    match setup.complete(code, state).await {
        Ok(completed) => html(
            StatusCode::OK,
            "foreman is now a GitHub App",
            &registered(&completed),
        ),
        Err(SetupError::AlreadyConfigured) => {
            let body = match setup.info() {
                Some(info) => done(&setup, &info),
                None => paragraph(&SetupError::AlreadyConfigured.to_string()),
            };
            html(StatusCode::CONFLICT, "foreman is set up", &body)
        }
        Err(e @ (SetupError::BadState | SetupError::BadInput(_) | SetupError::BadToken)) => {
            refusal(StatusCode::BAD_REQUEST, &e)
        }
        Err(e @ SetupError::Storage(_)) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(e @ SetupError::GitHub(_)) => refusal(StatusCode::BAD_GATEWAY, &e),
    }
}

/// The registration page: what will be registered, and the button that posts it.
fn register(setup: &Setup, target: &Target, registration: &crate::setup::Registration) -> String {
    let owner = match &target.org {
        Some(org) => format!("the organization <b>{}</b>", escape(org)),
        None => "your personal account (the one signed in to GitHub)".to_owned(),
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>foreman has no GitHub App yet. This registers one from its manifest, owned by \
         {owner}. GitHub shows the App before creating it; its name can be changed there \
         (App names are unique across GitHub).</p>"
    );
    let public = &registration.public_url;
    if is_local(public) {
        let _ = write!(
            body,
            "<p class=warn>GitHub cannot deliver webhooks to {}: set FOREMAN_PUBLIC_URL to \
             an address GitHub reaches (or open this page through it) before registering.</p>",
            escape(public)
        );
    }
    let permissions: Vec<String> = manifest::permissions()
        .into_iter()
        .map(|(name, access)| format!("{name}: {access}"))
        .collect();
    let _ = write!(
        body,
        "<table><tr><th>Webhook URL</th><td><code>{}{}</code></td></tr>\
         <tr><th>Returns to</th><td><code>{}{}</code></td></tr>\
         <tr><th>Permissions</th><td>{}</td></tr>\
         <tr><th>Events</th><td>{}</td></tr></table>",
        escape(public),
        manifest::WEBHOOK_PATH,
        escape(public),
        manifest::CALLBACK_PATH,
        escape(&permissions.join(", ")),
        escape(&manifest::subscribed_events().join(", ")),
    );
    let _ = write!(
        body,
        "<form method=post action=\"{}\"><input type=hidden name=manifest value=\"{}\">\
         <button type=submit>Create the GitHub App on GitHub</button></form>",
        escape(&registration.action),
        escape(&registration.manifest),
    );
    let _ = write!(
        body,
        "<h2>Another owner or name</h2><form method=get action=\"{}\">\
         <input type=hidden name=token value=\"{}\">\
         <label>Organization (empty: your personal account) \
         <input name=org value=\"{}\"></label> \
         <label>App name <input name=name value=\"{}\" maxlength={}></label> \
         <button type=submit>Update</button></form>",
        manifest::SETUP_PATH,
        escape(setup.token()),
        escape(target.org.as_deref().unwrap_or_default()),
        escape(
            target
                .name
                .clone()
                .unwrap_or_else(manifest::default_name)
                .as_str()
        ),
        manifest::MAX_APP_NAME,
    );
    body.push_str(
        "<p>To register the App by hand instead, follow <code>app-manifest/README.md</code> \
         and give foreman GITHUB_APP_ID, GITHUB_PRIVATE_KEY and GITHUB_WEBHOOK_SECRET.</p>",
    );
    body
}

/// The page after GitHub sent the browser back and the App was installed in foreman.
fn registered(completed: &Completed) -> String {
    let info = &completed.info;
    let mut body = format!(
        "<p>Registered the GitHub App <b>{}</b> (id {}){}. foreman serves as it from now \
         on; no restart needed.</p>",
        escape(info.slug.as_deref().unwrap_or_default()),
        info.app_id,
        info.owner
            .as_deref()
            .map(|o| format!(" owned by {}", escape(o)))
            .unwrap_or_default(),
    );
    match &completed.saved {
        Ok(path) => {
            let _ = write!(
                body,
                "<p>Its id, private key and webhook secret are saved in <code>{}</code> \
                 (readable only by foreman's user) and used at every start. To run several \
                 instances, give each GITHUB_APP_ID, GITHUB_PRIVATE_KEY and \
                 GITHUB_WEBHOOK_SECRET from that file.</p>",
                escape(&path.display().to_string())
            );
        }
        Err(error) => {
            let _ = write!(
                body,
                "<p class=warn>The credentials could not be saved ({}): foreman serves as the \
                 App until it stops, and then no more. Fix the file's location \
                 (FOREMAN_APP_FILE), delete the App on GitHub and register again.</p>",
                escape(error)
            );
        }
    }
    let _ = write!(
        body,
        "<p><a class=button href=\"{}\">Install it on your repositories</a></p>\
         <p>Then label an issue <code>foreman</code>.</p>",
        escape(&completed.install_url)
    );
    body
}

/// The page once an App is configured: nothing more is registered here.
fn done(setup: &Setup, info: &AppInfo) -> String {
    let from = match info.source {
        Source::Settings => "the GITHUB_* settings",
        Source::File => "the credentials saved by the setup page",
        Source::Missing => "nowhere",
    };
    let mut body = format!(
        "<p>foreman serves as the GitHub App {}id {}, from {from}. Nothing is registered \
         again here.</p>",
        info.slug
            .as_deref()
            .map(|s| format!("<b>{}</b>, ", escape(s)))
            .unwrap_or_default(),
        info.app_id,
    );
    if let Some(slug) = &info.slug {
        let _ = write!(
            body,
            "<p><a class=button href=\"{}\">Install it on a repository</a></p>",
            escape(&setup.install_url(slug))
        );
    }
    if !setup.has_webhook_secret() {
        body.push_str(
            "<p class=warn>No webhook secret is configured: set GITHUB_WEBHOOK_SECRET to the \
             App's secret, or webhooks are refused.</p>",
        );
    }
    body.push_str(
        "<p>To register a different App, stop foreman, remove its App settings and \
         credentials file, and start it again.</p>",
    );
    body
}

fn refusal(status: StatusCode, error: &SetupError) -> Response {
    html(status, "foreman setup", &paragraph(&error.to_string()))
}

fn paragraph(text: &str) -> String {
    format!("<p>{}</p>", escape(text))
}

/// A page that is never cached and never sends its address (which may hold the setup
/// token) on to GitHub.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title),
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;\
    padding:0 1rem;line-height:1.5}th{text-align:left;padding-right:1rem;vertical-align:top}\
    .warn{background:#fff3cd;padding:.5rem}button,.button{font-size:1rem;padding:.4rem .9rem}";

/// Whether GitHub could not reach `url` (a loopback or unspecified host).
fn is_local(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || host.ends_with(".localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
        })
}

/// Escapes text for HTML content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_attributes() {
        assert_eq!(
            escape(r#"{"a":"<b>&'"}"#),
            "{&quot;a&quot;:&quot;&lt;b&gt;&amp;&#39;&quot;}"
        );
    }

    #[test]
    fn local_addresses_are_recognised() {
        assert!(is_local("http://127.0.0.1:3000"));
        assert!(is_local("http://localhost:3000"));
        assert!(is_local("http://[::1]:3000"));
        assert!(!is_local("https://foreman.example.com"));
    }
}
