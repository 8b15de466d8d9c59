//! The App credentials file: what the setup flow got from GitHub (id, private key, webhook
//! secret, client id and secret), kept in one JSON file with mode 0600, and read back at
//! startup for whatever the `GITHUB_*` settings leave out.
//!
//! Why a file and not the database: the credentials are needed before anything else (the
//! database URL is configured the same way), a file is easy to move into a secret store
//! later, and its mode keeps other users of the machine out. The file is written whole
//! (a temporary file renamed over it), so a crash never leaves half a key behind.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{GitHubArgs, SetupArgs};
use crate::github::app::AppCredentials;

/// The file's mode: read and write for its owner only.
pub const FILE_MODE: u32 = 0o600;

/// A GitHub App as registered through the setup page.
#[derive(Clone, Deserialize)]
pub struct StoredApp {
    pub app_id: u64,
    pub slug: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    pub webhook_secret: SecretString,
    pub private_key: SecretString,
}

impl std::fmt::Debug for StoredApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredApp")
            .field("app_id", &self.app_id)
            .field("slug", &self.slug)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// What is written: the same fields, secrets exposed only here.
#[derive(Serialize)]
struct OnDisk<'a> {
    app_id: u64,
    slug: &'a str,
    name: Option<&'a str>,
    owner: Option<&'a str>,
    html_url: Option<&'a str>,
    client_id: Option<&'a str>,
    client_secret: Option<&'a str>,
    webhook_secret: &'a str,
    private_key: &'a str,
}

impl StoredApp {
    /// The App id and key, checked.
    pub fn credentials(&self) -> Result<AppCredentials> {
        crate::github::app::check_private_key(&self.private_key)?;
        Ok(AppCredentials {
            app_id: self.app_id,
            private_key_pem: self.private_key.clone(),
        })
    }

    /// Reads the file; `None` when there is none. A file others may read is made private
    /// (with a warning); one that cannot be read or parsed is an error naming the file.
    pub fn load(path: &Path) -> Result<Option<StoredApp>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the App credentials file {}", path.display())
                });
            }
        };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the App credentials file was readable by others; making it private (0600)"
            );
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE));
        }
        let app: StoredApp = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "the App credentials file {} is not valid ({e}); remove it to register again",
                path.display()
            )
        })?;
        Ok(Some(app))
    }

    /// Writes the file with mode 0600, replacing any earlier one in one step.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&OnDisk {
            app_id: self.app_id,
            slug: &self.slug,
            name: self.name.as_deref(),
            owner: self.owner.as_deref(),
            html_url: self.html_url.as_deref(),
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_ref().map(|s| s.expose_secret()),
            webhook_secret: self.webhook_secret.expose_secret(),
            private_key: self.private_key.expose_secret(),
        })?;
        write_private(path, text.as_bytes())
            .with_context(|| format!("cannot write the App credentials file {}", path.display()))
    }
}

/// Writes `bytes` to `path` through a temporary file created with mode 0600 in the same
/// directory, synced, then renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.as_deref().unwrap_or("github-app.json"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)?;
        // The umask can only take bits away; make the mode exact anyway.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Ok(dir) = std::fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Checks, before registering anything on GitHub, that the credentials file can be written
/// where it is configured (so a registered App's key is never lost for want of a directory).
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    let probe = dir.join(format!(".foreman-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("cannot write in {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    if path.is_dir() {
        bail!("{} is a directory", path.display());
    }
    Ok(())
}

/// Where the App identity in use comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `GITHUB_APP_ID` and the private key settings.
    Settings,
    /// The credentials file the setup flow wrote.
    File,
    /// Nowhere yet: the setup page is waiting.
    Missing,
}

/// The GitHub identity foreman starts with: from the settings where they give it, else from
/// the credentials file.
pub struct Resolved {
    pub app: Option<AppCredentials>,
    pub webhook_secrets: Vec<SecretString>,
    pub source: Source,
    /// The credentials file's App, when there is one.
    pub stored: Option<StoredApp>,
    /// The webhook secrets of the settings alone (kept when the setup flow adds its own).
    pub configured_secrets: Vec<SecretString>,
}

impl Resolved {
    /// Names of what is still missing, for a clear startup message.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.app.is_none() {
            missing.push("GITHUB_APP_ID");
            missing.push("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH");
        }
        if self.webhook_secrets.is_empty() {
            missing.push("GITHUB_WEBHOOK_SECRET");
        }
        missing
    }
}

/// Works out the identity: the settings' App id and key when both are given, else the
/// credentials file's; the settings' webhook secrets, plus the file's when its App is the
/// one in use (or the settings give none for that App).
pub fn resolve(github: &GitHubArgs, setup: &SetupArgs) -> Result<Resolved> {
    let configured = github.app_credentials()?;
    let configured_secrets = github.webhook_secrets();
    let stored = StoredApp::load(&setup.app_file)?;
    let (app, source) = match (configured, &stored) {
        (Some(app), _) => (Some(app), Source::Settings),
        (None, Some(stored)) => (Some(stored.credentials()?), Source::File),
        (None, None) => (None, Source::Missing),
    };
    let mut webhook_secrets = configured_secrets.clone();
    if let (Some(app), Some(stored)) = (&app, &stored) {
        let same_app = stored.app_id == app.app_id;
        if source == Source::File || (same_app && webhook_secrets.is_empty()) {
            webhook_secrets.push(stored.webhook_secret.clone());
        }
    }
    Ok(Resolved {
        app,
        webhook_secrets,
        source,
        stored,
        configured_secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredApp {
        StoredApp {
            app_id: 7,
            slug: "acme-foreman".into(),
            name: Some("acme foreman".into()),
            owner: Some("acme".into()),
            html_url: None,
            client_id: Some("Iv1.abc".into()),
            client_secret: Some(SecretString::from("client-secret-value".to_owned())),
            webhook_secret: SecretString::from("hook-secret-value".to_owned()),
            private_key: SecretString::from("-----BEGIN RSA PRIVATE KEY-----".to_owned()),
        }
    }

    #[test]
    fn the_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/github-app.json");
        sample().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        let back = StoredApp::load(&path).unwrap().unwrap();
        assert_eq!(back.app_id, 7);
        assert_eq!(back.webhook_secret.expose_secret(), "hook-secret-value");
        assert_eq!(
            back.client_secret.as_ref().unwrap().expose_secret(),
            "client-secret-value"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        let shown = format!("{back:?}");
        assert!(!shown.contains("secret-value") && !shown.contains("PRIVATE"));
    }

    #[test]
    fn a_missing_file_is_none_and_a_broken_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            StoredApp::load(&dir.path().join("none.json"))
                .unwrap()
                .is_none()
        );
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{").unwrap();
        let err = StoredApp::load(&broken).unwrap_err().to_string();
        assert!(err.contains("remove it to register again"), "{err}");
    }

    #[test]
    fn a_file_readable_by_others_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("github-app.json");
        sample().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        StoredApp::load(&path).unwrap().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
    }
}
