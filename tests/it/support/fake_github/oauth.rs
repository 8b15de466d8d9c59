//! The fake's side of signing in with GitHub (the OAuth web flow of the App's client):
//!
//! - `GET /login/oauth/authorize?client_id&redirect_uri&state` stands for the person's visit to
//!   GitHub: whoever [`FakeGitHub::sign_in_as`] named is signed in there and approves, and the
//!   browser is redirected (302) to `redirect_uri?code=…&state=…`. With nobody signed in it
//!   answers 401.
//! - `POST /login/oauth/access_token` exchanges a code, once, for a user token (`ghu_…`); a
//!   wrong client id or secret, or a spent code, gets GitHub's `bad_verification_code` error
//!   (with status 200, as GitHub does).
//! - With a user token: `GET /user`, and `GET /repos/{owner}/{repo}` with the person's
//!   `permissions` (404 where they cannot read).

use std::collections::HashMap;

use serde_json::json;

use super::{Credential, FakeGitHub, ROLES, Reply, Req, State, credential, key_of};

/// The App's OAuth client.
pub const CLIENT_ID: &str = "Iv1.fakeclient";
pub const CLIENT_SECRET: &str = "fake-client-secret";

#[derive(Default)]
pub(super) struct OAuth {
    signed_in: Option<String>,
    codes: HashMap<String, String>,
    tokens: HashMap<String, String>,
}

impl FakeGitHub {
    /// Who is signed in to GitHub in the browser that signs in to foreman.
    pub fn sign_in_as(&self, login: &str) {
        let mut st = self.lock();
        st.ensure_user(login);
        st.oauth.signed_in = Some(login.to_owned());
    }

    /// The App's OAuth client id and secret.
    pub fn oauth_client(&self) -> (&'static str, &'static str) {
        (CLIENT_ID, CLIENT_SECRET)
    }
}

impl State {
    /// The routes of the sign-in flow, and of calls made with a user token.
    pub(super) fn oauth_routes(&mut self, req: &Req, segs: &[&str]) -> Option<Reply> {
        match (req.method, segs) {
            ("GET", ["login", "oauth", "authorize"]) => Some(self.authorize(req)),
            ("POST", ["login", "oauth", "access_token"]) => Some(self.access_token(req)),
            _ => {
                let Some(Credential::Token(token)) = credential(req.headers) else {
                    return None;
                };
                let login = self.oauth.tokens.get(token)?.clone();
                Some(match (req.method, segs) {
                    ("GET", ["user"]) => Reply::ok(self.user_json(&login)),
                    ("GET", ["repos", owner, repo]) => self.repo_for_user(&login, owner, repo),
                    _ => Reply::error(403, "Resource not accessible by user token in this fake"),
                })
            }
        }
    }

    fn authorize(&mut self, req: &Req) -> Reply {
        if req.param("client_id") != Some(CLIENT_ID) {
            return Reply::not_found();
        }
        let Some(login) = self.oauth.signed_in.clone() else {
            return Reply::error(401, "nobody is signed in to the fake GitHub");
        };
        let Some(redirect) = req.param("redirect_uri") else {
            return Reply::error(422, "redirect_uri is missing");
        };
        let code = format!("code-{}", super::state::bump(&self.ids));
        self.oauth.codes.insert(code.clone(), login);
        let state: String =
            url::form_urlencoded::byte_serialize(req.param("state").unwrap_or_default().as_bytes())
                .collect();
        Reply {
            status: 302,
            body: None,
            headers: vec![("location", format!("{redirect}?code={code}&state={state}"))],
        }
    }

    fn access_token(&mut self, req: &Req) -> Reply {
        let field = |name: &str| req.body_str(name).or_else(|| req.param(name));
        let client_ok =
            field("client_id") == Some(CLIENT_ID) && field("client_secret") == Some(CLIENT_SECRET);
        let login = field("code").and_then(|c| self.oauth.codes.remove(c));
        match (client_ok, login) {
            (true, Some(login)) => {
                let token = format!("ghu_{}", super::state::bump(&self.ids));
                self.oauth.tokens.insert(token.clone(), login);
                Reply::ok(json!({"access_token": token, "token_type": "bearer", "scope": ""}))
            }
            _ => Reply::ok(json!({
                "error": "bad_verification_code",
                "error_description": "The code passed is incorrect or expired."
            })),
        }
    }

    fn repo_for_user(&self, login: &str, owner: &str, repo: &str) -> Reply {
        let key = key_of(&format!("{owner}/{repo}"));
        let Some(r) = self.repos.get(&key) else {
            return Reply::not_found();
        };
        let role = self.role_of(r, login);
        let rank = ROLES.iter().position(|x| *x == role).unwrap_or(ROLES.len());
        let at_least = |name: &str| rank <= ROLES.iter().position(|x| *x == name).unwrap_or(0);
        if !at_least("read") {
            return Reply::not_found();
        }
        let Some(mut json) = self.repo_json(&key) else {
            return Reply::not_found();
        };
        json["permissions"] = json!({
            "admin": at_least("admin"),
            "maintain": at_least("maintain"),
            "push": at_least("write"),
            "triage": at_least("triage"),
            "pull": at_least("read"),
        });
        Reply::ok(json)
    }
}
