//! Running git: a hermetic environment (no host or user config, never a prompt), bounded
//! time, errors that say which command failed and why — and credentials that reach git
//! without landing anywhere else.
//!
//! The installation token travels in the environment of the one git process that needs it,
//! as an `http.extraHeader` set through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/
//! `GIT_CONFIG_VALUE_0`: not in argv (which `ps` shows), not in a remote URL, not in
//! `.git/config`, not in a log line. Error text is scrubbed of it all the same.
//!
//! A checkout an agent wrote to is never trusted: its `.git` may hold hooks, an fsmonitor
//! command, `insteadOf` rewrites, filters or includes. git runs there only in the agent
//! sandbox, offline, with those settings overridden, and never with a credential
//! ([`Place::Checkout`]); what foreman pushes is first copied out of it into a repository
//! foreman owns.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::sandbox::{Jail, Sandbox};
use crate::workspace::remote::Connection;

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

/// Settings that defuse what a hostile repository's own config (or an `include` it pulls
/// in) could make git run or send when foreman runs git in a checkout an agent wrote to:
/// no hooks, no fsmonitor, no transport at all, no credential helper, signing, editor or
/// pager programs, no automatic gc. Command-line settings win over every config file.
const DISTRUST: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "protocol.allow=never",
    "core.sshCommand=false",
    "credential.helper=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gpg.program=false",
    "core.editor=false",
    "sequence.editor=false",
    "core.pager=cat",
    "gc.auto=0",
    "maintenance.auto=false",
    "status.showUntrackedFiles=normal",
    "safe.directory=*",
];

/// Where a git command runs: a repository foreman owns, or a checkout an agent wrote to.
pub enum Place<'a> {
    /// Run directly, in this directory, with foreman's settings.
    Trusted(&'a Path),
    /// Run in the sandbox, confined to the jail (the checkout and the mirror objects it
    /// borrows), offline, with [`DISTRUST`] and the checkout's git directory named
    /// explicitly. Never with a credential.
    Checkout {
        sandbox: &'a Sandbox,
        jail: &'a Jail,
    },
    /// The same, in a checkout on a remote target: in the sandbox there
    /// ([`crate::sandbox::remote_script`]), over the target's connection. `before` is shell
    /// run there first (checks of the checkout, options for the jail).
    Remote {
        connection: &'a Connection,
        jail: &'a Jail,
        before: &'a str,
    },
}

impl Git {
    /// Runs `git ARGS` in `dir` and returns its standard output, trimmed.
    pub async fn run(&self, dir: &Path, args: &[&str], call: Call<'_>) -> Result<String> {
        self.run_in(&Place::Trusted(dir), args, call, None).await
    }

    /// Runs `git ARGS` at `place`; with `stdout_to`, its standard output goes to that file
    /// (at most `limit` bytes) instead of being returned.
    pub async fn run_in(
        &self,
        place: &Place<'_>,
        args: &[&str],
        call: Call<'_>,
        stdout_to: Option<(&Path, u64)>,
    ) -> Result<String> {
        let home = match place {
            Place::Trusted(_) => std::env::var("HOME").unwrap_or_else(|_| "/".to_owned()),
            Place::Checkout { .. } | Place::Remote { .. } => "/nonexistent".to_owned(),
        };
        let path = match place {
            Place::Remote { .. } => "/usr/local/bin:/usr/bin:/bin".to_owned(),
            _ => std::env::var("PATH").unwrap_or_default(),
        };
        let mut env: Vec<(String, String)> = [
            ("PATH", path.as_str()),
            ("HOME", home.as_str()),
            ("LANG", "C"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_ASKPASS", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        if let Place::Checkout { jail, .. } | Place::Remote { jail, .. } = place {
            // Named, never discovered: a `.git` file or a parent repository cannot redirect it.
            env.extend([
                (
                    "GIT_DIR".to_owned(),
                    jail.cwd.join(".git").display().to_string(),
                ),
                ("GIT_WORK_TREE".to_owned(), jail.cwd.display().to_string()),
                ("GIT_NO_REPLACE_OBJECTS".to_owned(), "1".to_owned()),
                ("GIT_ATTR_NOSYSTEM".to_owned(), "1".to_owned()),
                ("GIT_OPTIONAL_LOCKS".to_owned(), "0".to_owned()),
            ]);
        }
        if let Some((name, email)) = call.author {
            for who in ["AUTHOR", "COMMITTER"] {
                env.push((format!("GIT_{who}_NAME"), name.to_owned()));
                env.push((format!("GIT_{who}_EMAIL"), email.to_owned()));
            }
        }
        let distrusted = || {
            let mut full: Vec<String> = Vec::with_capacity(args.len() + DISTRUST.len() * 2);
            for setting in DISTRUST {
                full.extend(["-c".to_owned(), (*setting).to_owned()]);
            }
            full.extend(args.iter().map(|a| (*a).to_owned()));
            full
        };
        let mut command = match place {
            Place::Trusted(dir) => {
                let mut command = tokio::process::Command::new(&self.program);
                command.args(args).current_dir(dir);
                command
            }
            Place::Checkout { sandbox, jail } => {
                if call.auth.is_some() {
                    bail!("refusing to hand a credential to git in an agent's checkout");
                }
                sandbox.command(jail, &self.program, &distrusted())?
            }
            Place::Remote {
                connection,
                jail,
                before,
            } => {
                if call.auth.is_some() {
                    bail!("refusing to hand a credential to git on a target");
                }
                let script = crate::sandbox::remote_script(
                    jail,
                    "git",
                    &distrusted(),
                    &env,
                    &[],
                    before,
                    None,
                );
                connection.script_command(&script)
            }
        };
        if !matches!(place, Place::Remote { .. }) {
            // (Remotely the environment is set there, by the script; ssh keeps foreman's.)
            command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
        command
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = call.auth {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", auth_header(token));
        }
        let timeout = if call.network {
            NETWORK_TIMEOUT
        } else {
            LOCAL_TIMEOUT
        };
        let shown = args.join(" ");
        let output = tokio::time::timeout(timeout, collect(command, stdout_to))
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
        if output.truncated {
            bail!("`git {shown}` wrote more than its limit; refused");
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `git --version`, for diagnostics.
    pub async fn version(&self) -> Result<String> {
        self.run(Path::new("/"), &["--version"], Call::default())
            .await
    }
}

/// What a finished git process left.
struct Output {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Its standard output went past the file's limit (and the process was stopped).
    truncated: bool,
}

/// Runs the command to its end: its standard output collected, or copied into a file (at
/// most `limit` bytes: beyond, the process is killed), its error output collected.
async fn collect(
    mut command: tokio::process::Command,
    stdout_to: Option<(&Path, u64)>,
) -> std::io::Result<Output> {
    use tokio::io::AsyncReadExt;
    command.stdout(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let errors = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut buf).await;
        // Past the first MiB it is read and dropped: a process blocked on a full pipe would
        // only end at its timeout.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        buf
    });
    let mut collected = Vec::new();
    let mut truncated = false;
    match stdout_to {
        None => {
            stdout.read_to_end(&mut collected).await?;
        }
        Some((path, limit)) => {
            let mut file = tokio::fs::File::create(path).await?;
            let copied = tokio::io::copy(&mut (&mut stdout).take(limit + 1), &mut file).await?;
            tokio::io::AsyncWriteExt::flush(&mut file).await?;
            if copied > limit {
                truncated = true;
                let _ = child.start_kill();
            }
        }
    }
    let status = child.wait().await?;
    let stderr = errors.await.unwrap_or_default();
    Ok(Output {
        status,
        stdout: collected,
        stderr,
        truncated,
    })
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
