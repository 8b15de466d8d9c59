//! Running commands on a remote target over SSH. The script goes to the remote shell on
//! standard input (`sh -s`), so nothing in it is ever re-split by a command line; ssh runs
//! with [`SshSpec::options`]: unattended, strict about host keys, with the operator's key.
//! A [`Connection`] keeps one multiplexed connection per target for commands that run long
//! (agent turns): started in a session of their own, streamed back, killed as a group.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStdout;

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

/// One multiplexed SSH connection to a target (a master, `ssh -M`): every command after
/// [`Connection::open`] rides it, so it starts without a handshake of its own, and when the
/// connection is lost the master ends, which [`Connection::closed`] reports within seconds
/// (`ServerAliveInterval` 5 s, 3 misses; at once when the other side closes it).
pub struct Connection {
    remote: Remote,
    socket: PathBuf,
    master: tokio::sync::Mutex<tokio::process::Child>,
}

/// A command running on a target, started by [`Connection::start`] in a process group (a
/// session) of its own, so that [`Connection::kill`] ends everything it started.
pub struct RemoteChild {
    pub child: tokio::process::Child,
    /// Its output, past the first line (the group's id).
    pub stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    pub group: u32,
}

/// The first line a started command prints: its process group.
const GROUP_LINE: &str = "foreman-group=";

impl Connection {
    /// Opens the master connection, its control socket in `dir` (private to foreman; the
    /// socket's path must stay under about 100 bytes).
    pub async fn open(remote: Remote, dir: &Path) -> Result<Connection, RemoteError> {
        let socket = dir.join(format!(
            "{}_{}.sock",
            remote.spec.host.replace(':', "_"),
            remote.spec.port
        ));
        let mut master = tokio::process::Command::new(&remote.ssh)
            .args(remote.spec.options())
            .args(["-M", "-N", "-o", "ControlPersist=no", "-S"])
            .arg(&socket)
            .arg("--")
            .arg(remote.spec.destination())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run `{}`", remote.ssh))
            .map_err(RemoteError::Other)?;
        // Up once the control socket answers; a master that ends first says why on stderr.
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            if let Some(status) = master
                .try_wait()
                .map_err(|e| RemoteError::Other(e.into()))?
            {
                let mut stderr = String::new();
                if let Some(mut err) = master.stderr.take() {
                    let _ = err.read_to_string(&mut stderr).await;
                }
                return Err(
                    match crate::model::targets::ssh_failure(&remote.spec, status.code(), &stderr) {
                        Some((what, fix)) => RemoteError::Ssh(what, fix),
                        None => RemoteError::Other(anyhow!("ssh ended: {}", stderr.trim())),
                    },
                );
            }
            if socket.exists() && check(&remote, &socket).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(RemoteError::Other(anyhow!(
                    "{} did not answer within {}s",
                    remote.spec.host,
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Connection {
            remote,
            socket,
            master: tokio::sync::Mutex::new(master),
        })
    }

    /// A command that runs `script` (POSIX sh) there over this connection, as the remote
    /// user, with that user's environment; the caller sets its pipes.
    pub fn script_command(&self, script: &str) -> tokio::process::Command {
        self.command(&format!("exec sh -c {}", crate::sandbox::quote(script)))
    }

    /// Runs `script` there to its end; an error (with what it wrote to standard error) when
    /// it fails. Its standard output is returned.
    pub async fn run_script(&self, script: &str) -> Result<String> {
        let output = tokio::time::timeout(
            SCRIPT_TIMEOUT,
            self.script_command(script)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "{} did not finish a command within {}s",
                self.remote.spec.host,
                SCRIPT_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("cannot run `{}`", self.remote.ssh))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            return Err(anyhow!(
                "on {} ({}): {}",
                self.remote.spec.host,
                output.status,
                said.trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The ssh command (for `core.sshCommand`) that rides this connection: git's own
    /// transport to the target (a push into its mirror) needs no handshake of its own.
    pub fn ssh_command(&self) -> String {
        let mut words = vec![self.remote.ssh.clone()];
        words.extend(self.remote.spec.options());
        words.extend([
            "-o".to_owned(),
            "ControlMaster=no".to_owned(),
            "-S".to_owned(),
        ]);
        words.push(self.socket.display().to_string());
        words
            .iter()
            .map(|w| crate::sandbox::quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `user@host`, as git's scp-like addresses begin.
    pub fn destination(&self) -> String {
        self.remote.spec.destination()
    }

    /// A command that runs `remote_command` over this connection.
    fn command(&self, remote_command: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.remote.ssh);
        command
            .args(self.remote.spec.options())
            .args(["-o", "ControlMaster=no", "-S"])
            .arg(&self.socket)
            .arg("--")
            .arg(self.remote.spec.destination())
            .arg(remote_command)
            .kill_on_drop(true);
        command
    }

    /// Starts `script` (POSIX sh, given on its standard input) in a session of its own there;
    /// its output streams back as it comes.
    pub async fn start(&self, script: &str) -> Result<RemoteChild> {
        let wrapper = format!("exec setsid -w sh -c 'echo {GROUP_LINE}$$; exec sh -s'");
        let mut child = self
            .command(&wrapper)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run `{}`", self.remote.ssh))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(script.as_bytes())
            .await
            .context("cannot send the script")?;
        drop(stdin);
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = tokio::time::timeout(CONNECT_TIMEOUT, stdout.next_line())
            .await
            .map_err(|_| anyhow!("{} did not start the command", self.remote.spec.host))?
            .context("cannot read the command's output")?
            .unwrap_or_default();
        let group = first
            .strip_prefix(GROUP_LINE)
            .and_then(|g| g.trim().parse::<u32>().ok())
            .filter(|g| *g > 1)
            .ok_or_else(|| anyhow!("the command did not start there (it said `{first}`)"))?;
        Ok(RemoteChild {
            child,
            stdout,
            group,
        })
    }

    /// Kills a started command's whole process group there.
    pub async fn kill(&self, child: &RemoteChild) -> Result<()> {
        let output = self
            .command(&format!("kill -KILL -- -{}", child.group))
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run ssh")?;
        if !output.status.success() {
            return Err(anyhow!(
                "cannot kill process group {} on {}: {}",
                child.group,
                self.remote.spec.host,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Makes `local` (foreman's own endpoint, such as its MCP server) reachable on the target
    /// at the Unix socket `remote_socket`, through this connection: nothing listens on the
    /// target's network, and the socket goes when the forward is cancelled or the connection
    /// ends. A socket left at that path by an earlier connection is replaced.
    pub async fn forward(&self, remote_socket: &Path, local: std::net::SocketAddr) -> Result<()> {
        self.control("forward", remote_socket, local).await
    }

    /// Stops a [`Connection::forward`].
    pub async fn cancel_forward(
        &self,
        remote_socket: &Path,
        local: std::net::SocketAddr,
    ) -> Result<()> {
        self.control("cancel", remote_socket, local).await
    }

    async fn control(
        &self,
        operation: &str,
        remote_socket: &Path,
        local: std::net::SocketAddr,
    ) -> Result<()> {
        let output = tokio::process::Command::new(&self.remote.ssh)
            .args(self.remote.spec.options())
            .args(["-o", "StreamLocalBindUnlink=yes", "-S"])
            .arg(&self.socket)
            .args(["-O", operation, "-R"])
            .arg(format!("{}:{local}", remote_socket.display()))
            .arg("--")
            .arg(self.remote.spec.destination())
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run ssh")?;
        if !output.status.success() {
            return Err(anyhow!(
                "cannot {operation} {} on {}: {}",
                remote_socket.display(),
                self.remote.spec.host,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Resolves when the connection is gone (the target vanished, its sshd died, or the
    /// network dropped it).
    pub async fn closed(&self) {
        let _ = self.master.lock().await.wait().await;
    }
}

/// How long a connection or a command's start may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a short script ([`Connection::run_script`]) may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A remote target as checkouts see it: its connection, and foreman's directory there.
/// Under the work root: `mirrors/OWNER/NAME.git`, the target's mirror of a repository, which
/// only foreman writes (pushed to from foreman's own mirror); `mirrors/OWNER/NAME.checkout-config`,
/// the git config foreman gives checkouts of it; and the checkouts themselves.
pub struct Site {
    pub name: String,
    pub connection: Connection,
    pub work_root: PathBuf,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("work_root", &self.work_root)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// The target's mirror of `repository`.
    pub fn mirror(&self, repository: &str) -> PathBuf {
        self.work_root
            .join("mirrors")
            .join(format!("{repository}.git"))
    }

    /// The config foreman gives checkouts of `repository` there.
    pub fn checkout_config(&self, repository: &str) -> PathBuf {
        self.work_root
            .join("mirrors")
            .join(format!("{repository}.checkout-config"))
    }
}

async fn check(remote: &Remote, socket: &Path) -> bool {
    tokio::process::Command::new(&remote.ssh)
        .args(remote.spec.options())
        .args(["-S"])
        .arg(socket)
        .args(["-O", "check", "--"])
        .arg(remote.spec.destination())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
