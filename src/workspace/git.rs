//! Running git: a hermetic environment (no host or user config, never a prompt), bounded
//! time, errors that say which command failed and why — and credentials that reach git
//! without landing anywhere else.
//!
//! The installation token travels in the environment of the one git process that needs it,
//! as an `http.extraHeader` set through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/
//! `GIT_CONFIG_VALUE_0`: not in argv (which `ps` shows), not in a remote URL, not in
//! `.git/config`, not in a log line. Error text is scrubbed of it all the same.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Longest a network git command (clone, fetch, push) may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Longest a local git command may take.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How to run git.
#[derive(Debug, Clone)]
pub struct Git {
    /// The git program.
    pub program: String,
}

/// What one git command is allowed and given.
#[derive(Default, Clone, Copy)]
pub struct Call<'a> {
    /// A token for HTTPS remotes.
    pub auth: Option<&'a SecretString>,
    /// Whether it talks to a remote (longer timeout).
    pub network: bool,
    /// `(name, email)` for commits.
    pub author: Option<(&'a str, &'a str)>,
}

impl Git {
    /// Runs `git ARGS` in `dir` and returns its standard output, trimmed.
    pub async fn run(&self, dir: &Path, args: &[&str], call: Call<'_>) -> Result<String> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/".to_owned()),
            )
            .env("LANG", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(token) = call.auth {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", auth_header(token));
        }
        if let Some((name, email)) = call.author {
            for who in ["AUTHOR", "COMMITTER"] {
                command
                    .env(format!("GIT_{who}_NAME"), name)
                    .env(format!("GIT_{who}_EMAIL"), email);
            }
        }
        let timeout = if call.network {
            NETWORK_TIMEOUT
        } else {
            LOCAL_TIMEOUT
        };
        let shown = args.join(" ");
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .with_context(|| format!("`git {shown}` took longer than {}s", timeout.as_secs()))?
            .with_context(|| format!("cannot run {}", self.program))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let mut why = last_lines(&stderr, 4);
            if let Some(token) = call.auth {
                why = why.replace(token.expose_secret(), "[REDACTED]");
            }
            bail!("`git {shown}` failed ({}): {why}", output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `git --version`, for diagnostics.
    pub async fn version(&self) -> Result<String> {
        self.run(Path::new("/"), &["--version"], Call::default())
            .await
    }
}

/// The header GitHub accepts for git over HTTPS with an installation token.
fn auth_header(token: &SecretString) -> String {
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("x-access-token:{}", token.expose_secret()));
    format!("Authorization: Basic {basic}")
}

/// The last `n` lines of git's error output that say something (its `hint:` lines only
/// advise).
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("hint:"))
        .collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" / ");
    if joined.is_empty() {
        "(no message)".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_carries_the_token_as_basic_auth() {
        let header = auth_header(&SecretString::from("ghs_abc".to_owned()));
        // base64("x-access-token:ghs_abc")
        assert_eq!(
            header,
            "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hzX2FiYw=="
        );
    }

    #[tokio::test]
    async fn the_token_reaches_git_in_its_environment_and_is_scrubbed_from_errors() {
        // A stand-in for git that prints the credential it was given, then fails.
        let git = Git {
            program: "sh".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let token = SecretString::from("ghs_secret123".to_owned());
        let call = Call {
            auth: Some(&token),
            network: true,
            author: None,
        };
        let script = "echo \"$GIT_CONFIG_KEY_0\" >&2; \
                      echo \"$GIT_CONFIG_VALUE_0\" | cut -d' ' -f3 | base64 -d >&2; exit 3";
        let err = git
            .run(dir.path(), &["-c", script], call)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.extraHeader"), "{err}");
        assert!(err.contains("x-access-token:[REDACTED]"), "{err}");
        assert!(!err.contains("ghs_secret123"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
    }
}
