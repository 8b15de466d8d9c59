//! Every option foreman takes: a command-line flag and an environment variable each.
//!
//! Secrets (private key, webhook secrets, the database URL, which may hold a password) are
//! held as [`SecretString`] so that no `Debug`, log line or `--help` output ever shows them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

/// Default listen address when neither `FOREMAN_LISTEN` nor `PORT` is set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default database: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://foreman.db";
/// Default GitHub REST API base URL.
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

/// Where the database lives. Shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path.db` (default, created on first run) or `postgres://…`.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        hide_default_value = false,
        value_parser = parse_secret
    )]
    pub url: SecretString,
}

/// The GitHub App identity. Every field is optional so that `foreman serve` starts without
/// them (and says what is missing) instead of refusing to start.
#[derive(Args, Debug, Clone)]
pub struct GitHubArgs {
    /// The GitHub App's numeric id.
    #[arg(long = "github-app-id", env = "GITHUB_APP_ID")]
    pub app_id: Option<u64>,
    /// The App's private key as PEM text (PKCS#1 or PKCS#8). `\n` escapes are accepted.
    #[arg(
        long = "github-private-key",
        env = "GITHUB_PRIVATE_KEY",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub private_key: Option<SecretString>,
    /// Path to the App's private key PEM file (alternative to GITHUB_PRIVATE_KEY).
    #[arg(long = "github-private-key-path", env = "GITHUB_PRIVATE_KEY_PATH")]
    pub private_key_path: Option<PathBuf>,
    /// Webhook secret; several comma-separated secrets are all accepted (for rotation).
    #[arg(
        long = "github-webhook-secret",
        env = "GITHUB_WEBHOOK_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub webhook_secret: Option<SecretString>,
    /// GitHub REST API base URL (GitHub Enterprise Server: `https://HOST/api/v3`).
    #[arg(long = "github-api-url", env = "GITHUB_API_URL", default_value = DEFAULT_GITHUB_API_URL)]
    pub api_url: String,
}

/// Options of the long-running service.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub github: GitHubArgs,
    /// Address to listen on. Defaults to 127.0.0.1:3000; `PORT` alone sets the port.
    #[arg(long = "listen", env = "FOREMAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Port to listen on when FOREMAN_LISTEN is not set (as set by many hosting platforms).
    #[arg(long = "port", env = "PORT")]
    pub port: Option<u16>,
    /// How often the tick loop runs its periodic work when nothing wakes it earlier.
    #[arg(long = "tick-interval", env = "FOREMAN_TICK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub tick_interval: Duration,
    /// How long the tick lease lasts before another instance may take it over.
    #[arg(long = "tick-lease", env = "FOREMAN_TICK_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub tick_lease: Duration,
    /// How many deliveries (of different repositories) are processed at once.
    #[arg(
        long = "inbox-concurrency",
        env = "FOREMAN_INBOX_CONCURRENCY",
        default_value_t = 8
    )]
    pub inbox_concurrency: usize,
    /// Attempts before a failing delivery is parked as dead.
    #[arg(
        long = "inbox-max-attempts",
        env = "FOREMAN_INBOX_MAX_ATTEMPTS",
        default_value_t = 6
    )]
    pub inbox_max_attempts: u32,
    /// First retry delay of a failing delivery; doubles on each attempt.
    #[arg(long = "inbox-retry-base", env = "FOREMAN_INBOX_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    pub inbox_retry_base: Duration,
    /// How long a delivery claim lasts without renewal; a crashed processor's deliveries are
    /// picked up again after this.
    #[arg(long = "inbox-claim-ttl", env = "FOREMAN_INBOX_CLAIM_TTL", default_value = "30s", value_parser = parse_duration)]
    pub inbox_claim_ttl: Duration,
    /// A name for this instance in leases and logs (default: host name and process id).
    #[arg(long = "instance-id", env = "FOREMAN_INSTANCE_ID")]
    pub instance_id: Option<String>,
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

impl ServeArgs {
    /// The address to bind: `FOREMAN_LISTEN`, else `127.0.0.1:$PORT`, else the default.
    pub fn listen_addr(&self) -> SocketAddr {
        if let Some(addr) = self.listen {
            return addr;
        }
        let mut addr: SocketAddr = DEFAULT_LISTEN.parse().expect("default listen address");
        if let Some(port) = self.port {
            addr.set_port(port);
        }
        addr
    }

    /// This instance's name in leases and claims.
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(default_instance_id)
    }
}

impl GitHubArgs {
    /// The webhook secrets accepted right now (empty when none is configured).
    pub fn webhook_secrets(&self) -> Vec<SecretString> {
        self.webhook_secret
            .as_ref()
            .map(|s| split_secrets(s.expose_secret()))
            .unwrap_or_default()
    }

    /// The App id and key, if both are configured. A key given both ways, an unreadable key
    /// file or a key that is not an RSA PEM is an error.
    pub fn app_credentials(&self) -> Result<Option<AppCredentials>> {
        let pem = match (&self.private_key, &self.private_key_path) {
            (Some(_), Some(_)) => {
                bail!("set only one of GITHUB_PRIVATE_KEY and GITHUB_PRIVATE_KEY_PATH")
            }
            (Some(key), None) => Some(SecretString::from(unescape_pem(key.expose_secret()))),
            (None, Some(path)) => Some(SecretString::from(
                std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read GITHUB_PRIVATE_KEY_PATH {}", path.display())
                })?,
            )),
            (None, None) => None,
        };
        if let Some(pem) = &pem {
            crate::github::app::check_private_key(pem)?;
        }
        Ok(match (self.app_id, pem) {
            (Some(app_id), Some(private_key_pem)) => Some(AppCredentials {
                app_id,
                private_key_pem,
            }),
            _ => None,
        })
    }

    /// Names of the GitHub App settings that are not set, for a clear startup message.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.app_id.is_none() {
            missing.push("GITHUB_APP_ID");
        }
        if self.private_key.is_none() && self.private_key_path.is_none() {
            missing.push("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH");
        }
        if self.webhook_secrets().is_empty() {
            missing.push("GITHUB_WEBHOOK_SECRET");
        }
        missing
    }
}

/// Splits a comma-separated list of secrets, dropping blanks.
pub fn split_secrets(list: &str) -> Vec<SecretString> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect()
}

/// Environment variables often carry a PEM with literal `\n` escapes; turn them into newlines.
fn unescape_pem(pem: &str) -> String {
    if pem.contains('\n') {
        pem.to_owned()
    } else {
        pem.replace("\\n", "\n")
    }
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

/// Parses a duration such as `90s`, `5m`, `1h 30m` or `250ms`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("`{value}` is not a duration like 90s, 5m or 1h ({e})"))
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "foreman".to_owned());
    format!("{host}-{}", std::process::id())
}

/// A database URL safe to print: any password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_split_on_commas_and_skip_blanks() {
        let secrets = split_secrets(" one, two ,,three ");
        let exposed: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(exposed, ["one", "two", "three"]);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn redacted_urls_hide_passwords() {
        let shown = redact_url("postgres://app:hunter2@db.internal:5432/foreman");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"));
    }

    #[test]
    fn escaped_pem_newlines_are_restored() {
        assert_eq!(unescape_pem("a\\nb"), "a\nb");
        assert_eq!(unescape_pem("a\nb\\n"), "a\nb\\n");
    }
}
