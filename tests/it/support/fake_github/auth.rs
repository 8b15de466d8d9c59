//! Who calls the fake: the App's key and JWTs, installation tokens, and the permission each
//! endpoint needs.

use super::*;

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

pub(super) struct AppKeys {
    pub(super) pkcs1_pem: String,
    pub(super) pkcs8_pem: String,
    pub(super) encoding: jsonwebtoken::EncodingKey,
    pub(super) decoding: jsonwebtoken::DecodingKey,
}

/// The App's RSA key, generated once per test process (slow in debug builds).
pub(super) fn app_keys() -> &'static AppKeys {
    static KEYS: OnceLock<AppKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        use rsa::traits::PublicKeyParts;

        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("generate RSA key");
        let pkcs1_pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .expect("encode PKCS#1")
            .to_string();
        let pkcs8_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode PKCS#8")
            .to_string();
        let public = key.to_public_key();
        AppKeys {
            encoding: jsonwebtoken::EncodingKey::from_rsa_pem(pkcs1_pem.as_bytes())
                .expect("load PKCS#1 key"),
            decoding: jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &public.n().to_bytes_be(),
                &public.e().to_bytes_be(),
            ),
            pkcs1_pem,
            pkcs8_pem,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

pub(super) enum Credential<'a> {
    Jwt(&'a str),
    Token(&'a str),
}

pub(super) fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let secret = secret.trim();
    if secret.matches('.').count() == 2 {
        Some(Credential::Jwt(secret))
    } else {
        Some(Credential::Token(secret))
    }
}

/// Checks an App JWT the way GitHub does; the error is GitHub's message.
pub(super) fn verify_app_jwt(jwt: &str, now: i64) -> Result<(), &'static str> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<Value>(jwt, &app_keys().decoding, &validation)
        .map_err(|_| "A JSON web token could not be decoded")?
        .claims;
    let numeric = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let iss = match claims.get("iss") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let Some(iss) = iss else {
        return Err("'Issuer' claim ('iss') must be an Integer");
    };
    if iss != APP_ID {
        return Err("Integration not found");
    }
    let iat_message = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.";
    let exp_message = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.";
    let iat = numeric("iat").ok_or(iat_message)?;
    let exp = numeric("exp").ok_or(exp_message)?;
    if iat > now + MAX_JWT_IAT_SKEW_SECS {
        return Err(iat_message);
    }
    if exp <= now {
        return Err(exp_message);
    }
    if exp - iat > MAX_JWT_LIFETIME_SECS {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(())
}

/// Who is calling with an installation token.
pub(super) struct Caller {
    pub(super) installation_id: i64,
    pub(super) repos: Option<Vec<String>>,
    pub(super) permissions: HashMap<String, String>,
}

/// `none` < `read` < `write` < `admin`.
pub(super) fn level_rank(level: &str) -> u8 {
    match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

/// The permission (and level) GitHub requires of an installation token for a repository
/// route, as its docs list them; `None` for routes the fake does not check.
pub(super) fn required_permission(
    method: &str,
    rest: &[&str],
) -> Option<(&'static str, &'static str)> {
    let level = if method == "GET" { "read" } else { "write" };
    let name = match rest.first().copied() {
        None | Some("collaborators") => return Some(("metadata", "read")),
        Some("issues") => "issues",
        Some("pulls") => "pull_requests",
        Some("check-runs" | "check-suites") => "checks",
        Some("commits") if rest.get(2).is_some_and(|r| r.starts_with("check-")) => {
            return Some(("checks", "read"));
        }
        Some("actions") => "actions",
        Some("contents" | "git" | "branches" | "commits") => "contents",
        _ => return None,
    };
    Some((name, level))
}

impl Caller {
    /// Whether the token's permissions allow the route.
    pub(super) fn allowed(&self, method: &str, rest: &[&str]) -> bool {
        match required_permission(method, rest) {
            None => true,
            Some((name, level)) => {
                let has = self.permissions.get(name).map_or("none", String::as_str);
                level_rank(has) >= level_rank(level)
            }
        }
    }
}

impl Caller {
    pub(super) fn can_access(&self, st: &State, key: &str) -> bool {
        let installed = st
            .installations
            .get(&self.installation_id)
            .is_some_and(|i| i.repos.iter().any(|k| k == key));
        let scoped = self
            .repos
            .as_ref()
            .is_none_or(|repos| repos.iter().any(|k| k == key));
        installed && scoped
    }
}

impl State {
    pub(super) fn require_app(&self, req: &Req) -> Result<(), Reply> {
        match credential(req.headers) {
            None => Err(Reply::error(401, "Requires authentication")),
            Some(Credential::Token(_)) => {
                Err(Reply::error(401, "A JSON web token could not be decoded"))
            }
            Some(Credential::Jwt(jwt)) => {
                verify_app_jwt(jwt, now_secs()).map_err(|m| Reply::error(401, m))
            }
        }
    }

    pub(super) fn require_installation(&self, req: &Req) -> Result<Caller, Reply> {
        let token = match credential(req.headers) {
            None => return Err(Reply::error(401, "Requires authentication")),
            Some(Credential::Jwt(_)) => {
                return Err(Reply::error(403, "Resource not accessible by integration"));
            }
            Some(Credential::Token(token)) => token,
        };
        let Some(token) = self.tokens.get(token) else {
            return Err(Reply::bad_credentials());
        };
        if SystemTime::now() >= token.expires_at {
            return Err(Reply::bad_credentials());
        }
        let Some(installation) = self.installations.get(&token.installation_id) else {
            return Err(Reply::bad_credentials());
        };
        if installation.suspended_at.is_some() {
            return Err(Reply::error(403, "This installation has been suspended"));
        }
        Ok(Caller {
            installation_id: token.installation_id,
            repos: token.repos.clone(),
            permissions: token.permissions.clone(),
        })
    }
}
