//! The GitHub App identity: a short-lived RS256 JWT signed with the App's private key, traded
//! for installation access tokens, which are refreshed before they expire, one refresh in
//! flight at a time.
//!
//! Tokens are least-privilege: each is asked for one repository and only the permissions one
//! kind of work needs ([`Access`]) — never an installation-wide token, which would reach every
//! repository of the installation. They are cached per (installation, repository, access),
//! each with its own octocrab client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::{Clock, InstallationId, Timestamp};

/// How far `iat` is backdated, for clocks that drift (GitHub's advice).
const JWT_BACKDATE: Duration = Duration::from_secs(60);
/// How long an App JWT is valid after `iat`; GitHub allows at most ten minutes.
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// An installation token is refreshed when it has less than this left.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Time allowed to connect to the GitHub API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a response from the GitHub API.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

/// An installation token and the client that uses it.
struct CachedToken {
    token: SecretString,
    expires_at: Timestamp,
    client: Octocrab,
}

type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// What an installation token is for. Each asks GitHub for only these permissions
/// (`metadata: read` comes with every token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Clone, fetch and ask where branches are: `contents: read`.
    GitRead,
    /// Push foreman's branches: `contents: write`.
    GitWrite,
    /// The REST calls foreman makes about a repository: comments, reactions and closing on
    /// issues, pull requests, checks and workflow runs read, files read.
    Api,
}

impl Access {
    /// The `permissions` object of the token request.
    pub fn permissions(self) -> serde_json::Value {
        match self {
            Access::GitRead => serde_json::json!({ "contents": "read" }),
            Access::GitWrite => serde_json::json!({ "contents": "write" }),
            Access::Api => serde_json::json!({
                "contents": "read",
                "issues": "write",
                "pull_requests": "write",
                "checks": "read",
                "actions": "read",
                "metadata": "read",
            }),
        }
    }
}

/// One token's scope: an installation, one of its repositories, what it may do there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Scope {
    installation: InstallationId,
    /// `owner/name`, lowercased (GitHub's names are case-insensitive).
    repository: String,
    access: Access,
}

/// The App's identity and its installation token cache. Cheap to share behind an `Arc`.
pub struct GitHubApp {
    app_id: u64,
    key: EncodingKey,
    api_url: String,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<Scope, Slot>>,
}

impl std::fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// A parsed and checked GitHub App configuration.
#[derive(Clone)]
pub struct AppCredentials {
    pub app_id: u64,
    pub private_key_pem: SecretString,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("private_key_pem", &"[REDACTED]")
            .finish()
    }
}

/// Checks that a PEM holds an RSA private key that can sign (PKCS#1 or PKCS#8).
pub fn check_private_key(pem: &SecretString) -> Result<()> {
    let key = encoding_key(pem)?;
    sign(&key, 0, Timestamp(0)).map(drop)
}

fn encoding_key(pem: &SecretString) -> Result<EncodingKey> {
    EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(|e| {
        anyhow!("the GitHub App private key is not an RSA private key in PEM form ({e})")
    })
}

fn sign(key: &EncodingKey, app_id: u64, now: Timestamp) -> Result<SecretString> {
    let iat = now.minus(JWT_BACKDATE);
    let claims = Claims {
        iat: iat.unix_seconds(),
        exp: iat.plus(JWT_LIFETIME).unix_seconds(),
        iss: app_id.to_string(),
    };
    let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map_err(|e| anyhow!("cannot sign the GitHub App JWT with the private key ({e})"))?;
    Ok(SecretString::from(jwt))
}

impl GitHubApp {
    /// An App identity talking to the API at `api_url`.
    pub fn new(creds: &AppCredentials, api_url: &str, clock: Arc<dyn Clock>) -> Result<GitHubApp> {
        url::Url::parse(api_url)
            .with_context(|| format!("GITHUB_API_URL `{api_url}` is not a URL"))?;
        Ok(GitHubApp {
            app_id: creds.app_id,
            key: encoding_key(&creds.private_key_pem)?,
            api_url: api_url.trim_end_matches('/').to_owned(),
            clock,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The App's numeric id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// A fresh App JWT.
    pub fn jwt(&self) -> Result<SecretString> {
        sign(&self.key, self.app_id, self.clock.now())
    }

    /// A client authenticated as the App itself (for `/app…` endpoints).
    pub fn app_client(&self) -> Result<Octocrab> {
        self.client_with(&self.jwt()?)
    }

    /// A client for the REST calls about one repository ([`Access::Api`]), authenticated
    /// with a token scoped to it that has at least a few minutes left.
    pub async fn installation_client(
        &self,
        id: InstallationId,
        repository: &str,
    ) -> Result<Octocrab> {
        self.scoped_client(id, repository, Access::Api).await
    }

    /// A REST client for one repository whose token has only `access` (commits made through
    /// the API need `contents: write`, which no other call does).
    pub async fn scoped_client(
        &self,
        id: InstallationId,
        repository: &str,
        access: Access,
    ) -> Result<Octocrab> {
        let scope = Scope::new(id, repository, access)?;
        self.with_token(scope, |cached| cached.client.clone()).await
    }

    /// An access token for git over HTTPS on one repository, with only `access`.
    pub async fn installation_token(
        &self,
        id: InstallationId,
        repository: &str,
        access: Access,
    ) -> Result<SecretString> {
        let scope = Scope::new(id, repository, access)?;
        self.with_token(scope, |cached| cached.token.clone()).await
    }

    /// Forgets every cached token of an installation (GitHub said one is no longer valid).
    pub async fn invalidate(&self, id: InstallationId) {
        let slots: Vec<Slot> = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .iter()
                .filter(|(scope, _)| scope.installation == id)
                .map(|(_, slot)| slot.clone())
                .collect()
        };
        for slot in slots {
            *slot.lock().await = None;
        }
    }

    async fn with_token<T>(&self, scope: Scope, pick: impl FnOnce(&CachedToken) -> T) -> Result<T> {
        let slot = self.slot(&scope);
        // Holding the slot's lock across the refresh makes concurrent callers wait for the one
        // request in flight instead of each asking GitHub for a token.
        let mut cached = slot.lock().await;
        let now = self.clock.now();
        let fresh = cached
            .as_ref()
            .is_some_and(|c| c.expires_at > now.plus(TOKEN_REFRESH_MARGIN));
        if !fresh {
            *cached = Some(self.fetch_token(&scope).await?);
        }
        Ok(pick(cached.as_ref().expect("token just stored")))
    }

    fn slot(&self, scope: &Scope) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(scope.clone()).or_default().clone()
    }

    async fn fetch_token(&self, scope: &Scope) -> Result<CachedToken> {
        let id = scope.installation;
        let route = format!("/app/installations/{id}/access_tokens");
        let body = serde_json::json!({
            "repositories": [scope.name()],
            "permissions": scope.access.permissions(),
        });
        let response: AccessToken =
            self.app_client()?
                .post(route, Some(&body))
                .await
                .map_err(|e| {
                    anyhow!(
                        "GitHub refused an access token for {} (installation {id}, {:?}): {}",
                        scope.repository,
                        scope.access,
                        describe(&e)
                    )
                })?;
        let expires_at = parse_github_time(&response.expires_at).with_context(|| {
            format!(
                "GitHub sent an unreadable token expiry `{}`",
                response.expires_at
            )
        })?;
        let token = SecretString::from(response.token);
        tracing::debug!(installation = %id, repository = scope.repository, access = ?scope.access, expires_at = %response.expires_at, "installation token refreshed");
        Ok(CachedToken {
            client: self.client_with(&token)?,
            token,
            expires_at,
        })
    }

    fn client_with(&self, token: &SecretString) -> Result<Octocrab> {
        Octocrab::builder()
            .base_uri(self.api_url.as_str())
            .with_context(|| format!("GITHUB_API_URL `{}` is not usable", self.api_url))?
            .personal_token(token.expose_secret().to_owned())
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(READ_TIMEOUT))
            .build()
            .context("cannot build the GitHub client")
    }
}

impl Scope {
    fn new(installation: InstallationId, repository: &str, access: Access) -> Result<Scope> {
        match repository.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Scope {
                    installation,
                    repository: repository.to_ascii_lowercase(),
                    access,
                })
            }
            _ => Err(anyhow!("`{repository}` is not a repository (owner/name)")),
        }
    }

    /// The repository's name without its owner, as the token request wants it.
    fn name(&self) -> &str {
        self.repository
            .split_once('/')
            .map_or(self.repository.as_str(), |(_, n)| n)
    }
}

/// A one-line description of a GitHub API error: status and GitHub's message when there is one.
pub fn describe(error: &octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            format!("{} {}", source.status_code.as_u16(), source.message)
        }
        other => other.to_string(),
    }
}

/// Parses GitHub's `YYYY-MM-DDTHH:MM:SSZ` timestamps.
pub fn parse_github_time(s: &str) -> Result<Timestamp> {
    let bytes = s.as_bytes();
    let field = |range: std::ops::Range<usize>| -> Result<i64> {
        s.get(range)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("not a GitHub timestamp: `{s}`"))
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[10] != b'T' || !s.ends_with('Z') {
        anyhow::bail!("not a GitHub timestamp: `{s}`");
    }
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        anyhow::bail!("not a GitHub timestamp: `{s}`");
    }
    let days = days_from_civil(year, month, day);
    Ok(Timestamp(
        ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_times_parse_to_epoch_millis() {
        assert_eq!(
            parse_github_time("1970-01-01T00:00:00Z").unwrap(),
            Timestamp(0)
        );
        assert_eq!(
            parse_github_time("2026-11-26T14:31:44Z").unwrap(),
            Timestamp(1_795_703_504_000)
        );
        assert!(parse_github_time("2026-13-01T00:00:00Z").is_err());
        assert!(parse_github_time("yesterday").is_err());
    }

    #[test]
    fn a_key_that_is_not_rsa_pem_is_a_clear_error() {
        let err = check_private_key(&SecretString::from("not a key".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an RSA private key in PEM form"), "{err}");
    }
}
