//! Running commands on a remote target over SSH. The script goes to the remote shell on
//! standard input (`sh -s`), so nothing in it is ever re-split by a command line; ssh runs
//! with [`SshSpec::options`]: unattended, strict about host keys, with the operator's key.

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::AsyncWriteExt;

use crate::model::targets::SshSpec;

/// How a remote target is reached: the ssh program and the target's settings.
#[derive(Debug, Clone)]
pub struct Remote {
    pub spec: SshSpec,
    pub ssh: String,
}

/// What went wrong running a script remotely.
#[derive(Debug)]
pub enum RemoteError {
    /// ssh itself failed (unreachable, host key, login): what and what to do.
    Ssh(String, String),
    /// Anything else (ssh could not be started, the script timed out).
    Other(anyhow::Error),
}

impl Remote {
    pub fn new(spec: SshSpec) -> Remote {
        Remote {
            spec,
            ssh: "ssh".to_owned(),
        }
    }

    /// Runs `script` with the remote user's `sh`; its output, whatever its exit status, when
    /// ssh got through.
    pub async fn run(&self, script: &str, timeout: Duration) -> Result<Output, RemoteError> {
        let mut command = tokio::process::Command::new(&self.ssh);
        command
            .args(self.spec.options())
            .arg("--")
            .arg(self.spec.destination())
            .args(["sh", "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run `{}`", self.ssh))
            .map_err(RemoteError::Other)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let script = script.to_owned();
        let output = async move {
            // A script larger than the pipe is fed while the output is read.
            let feed = async move {
                let _ = stdin.write_all(script.as_bytes()).await;
            };
            let (_, output) = tokio::join!(feed, child.wait_with_output());
            output
        };
        let output = tokio::time::timeout(timeout, output)
            .await
            .map_err(|_| {
                RemoteError::Other(anyhow!(
                    "{} did not answer within {}s",
                    self.spec.host,
                    timeout.as_secs()
                ))
            })?
            .context("ssh failed")
            .map_err(RemoteError::Other)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        match crate::model::targets::ssh_failure(&self.spec, output.status.code(), &stderr) {
            Some((what, fix)) => Err(RemoteError::Ssh(what, fix)),
            None => Ok(output),
        }
    }
}
