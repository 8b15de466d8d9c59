//! Running commands on a remote target over SSH. The script goes to the remote shell on
//! standard input (`sh -s`), so nothing in it is ever re-split by a command line; ssh runs
//! with [`SshSpec::options`]: unattended, strict about host keys, with the operator's key.
//! A [`Connection`] keeps one multiplexed connection per target for commands that run long
//! (agent turns): started in a session of their own, streamed back, killed as a group.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
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
        self.command(&format!(
            "exec sh -c {}",
            crate::model::text::shell_quote(script)
        ))
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
            .map(|w| crate::model::text::shell_quote(w))
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
        self.kill_group(child.group).await
    }

    /// Kills process group `group` there.
    pub async fn kill_group(&self, group: u32) -> Result<()> {
        let output = self
            .command(&format!("kill -KILL -- -{group}"))
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run ssh")?;
        if !output.status.success() {
            return Err(anyhow!(
                "cannot kill process group {group} on {}: {}",
                self.remote.spec.host,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Makes `local` (foreman's own endpoint: `HOST:PORT`, or the path of a Unix socket)
    /// reachable on the target at the Unix socket `remote_socket`, through this connection:
    /// nothing listens on the target's network, and the socket goes when the forward is
    /// cancelled or the connection ends. A socket left at that path by an earlier connection
    /// is replaced.
    pub async fn forward(&self, remote_socket: &Path, local: &str) -> Result<()> {
        self.control("forward", remote_socket, local).await
    }

    /// Makes `local` reachable on the target's loopback, at a port the target chooses
    /// (returned), through this connection.
    pub async fn forward_port(&self, local: &str) -> Result<u16> {
        let output = self
            .control_command(&[], "forward", &format!("127.0.0.1:0:{local}"))
            .await?;
        let said = String::from_utf8_lossy(&output.stdout);
        match said.trim().parse::<u16>() {
            Ok(port) if output.status.success() && port > 0 => Ok(port),
            _ => Err(anyhow!(
                "cannot forward {local} to {}: {} {}",
                self.remote.spec.host,
                said.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        match self.master.try_lock() {
            Ok(mut master) => !matches!(master.try_wait(), Ok(None)),
            // Someone waits for it to close ([`Connection::closed`]): it has not yet.
            Err(_) => false,
        }
    }

    /// Stops a [`Connection::forward`].
    pub async fn cancel_forward(&self, remote_socket: &Path, local: &str) -> Result<()> {
        self.control("cancel", remote_socket, local).await
    }

    async fn control(&self, operation: &str, remote_socket: &Path, local: &str) -> Result<()> {
        let output = self
            .control_command(
                &["-o", "StreamLocalBindUnlink=yes"],
                operation,
                &format!("{}:{local}", remote_socket.display()),
            )
            .await?;
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

    /// Asks the master to `operation` (forward, cancel) the remote forward `spec`.
    async fn control_command(
        &self,
        options: &[&str],
        operation: &str,
        spec: &str,
    ) -> Result<Output> {
        tokio::process::Command::new(&self.remote.ssh)
            .args(self.remote.spec.options())
            .args(options)
            .arg("-S")
            .arg(&self.socket)
            .args(["-O", operation, "-R", spec, "--"])
            .arg(self.remote.spec.destination())
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run ssh")
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
    /// Where agents there reach foreman's MCP endpoint: a port on the target's loopback that
    /// the connection forwards to foreman's (empty where nothing is forwarded).
    pub mcp_url: String,
    /// foreman's relay there, once shipped ([`Site::relay`]).
    relay: tokio::sync::OnceCell<PathBuf>,
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
    pub fn new(name: &str, connection: Connection, work_root: PathBuf, mcp_url: String) -> Site {
        Site {
            name: name.to_owned(),
            connection,
            work_root,
            mcp_url,
            relay: tokio::sync::OnceCell::new(),
        }
    }

    /// foreman's relay on this target (`local`, foreman's own executable, copied to
    /// `bin/` under the work root the first time a turn there needs it, and checked to run
    /// there). It holds nothing secret; agents see it read-only.
    pub async fn relay(&self, local: &Path) -> Result<PathBuf> {
        self.relay
            .get_or_try_init(|| self.ship_relay(local))
            .await
            .cloned()
    }

    async fn ship_relay(&self, local: &Path) -> Result<PathBuf> {
        let meta = tokio::fs::metadata(local)
            .await
            .with_context(|| format!("cannot read foreman's relay {}", local.display()))?;
        let stamp = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        // Named for the file's size and time: another build is another file.
        let there = self
            .work_root
            .join("bin")
            .join(format!("foreman-{}-{stamp}", meta.len()));
        let quoted = crate::model::text::shell_quote(&there.display().to_string());
        let runs = format!("{quoted} relay -- true");
        if self.connection.run_script(&runs).await.is_err() {
            let part = crate::model::text::shell_quote(&format!("{}.part", there.display()));
            let bin =
                crate::model::text::shell_quote(&self.work_root.join("bin").display().to_string());
            let mut child = self
                .connection
                .script_command(&format!(
                    "set -e; umask 022; mkdir -p {bin}; cat > {part}; chmod 755 {part}; \
                     mv -f {part} {quoted}"
                ))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("cannot run `{}`", self.connection.remote.ssh))?;
            let mut stdin = child.stdin.take().expect("piped stdin");
            let mut file = tokio::fs::File::open(local)
                .await
                .with_context(|| format!("cannot read foreman's relay {}", local.display()))?;
            tokio::io::copy(&mut file, &mut stdin)
                .await
                .with_context(|| {
                    format!("cannot copy foreman's relay to target `{}`", self.name)
                })?;
            drop(stdin);
            let output = child.wait_with_output().await?;
            if !output.status.success() {
                bail!(
                    "cannot copy foreman's relay to target `{}`: {}",
                    self.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            self.connection.run_script(&runs).await.with_context(|| {
                format!(
                    "foreman's relay does not run on target `{}` (the network allowlist needs a \
                     target with the foreman host's architecture and C library, or \
                     FOREMAN_NETWORK=open)",
                    self.name
                )
            })?;
        }
        Ok(there)
    }

    /// Makes each local Unix socket `(name, path)` (a turn's egress sockets) reachable on
    /// the target as `name` in a new directory there only its login user can enter; that
    /// directory. [`Site::close_sockets`] removes it.
    pub async fn forward_sockets(&self, sockets: &[(String, PathBuf)]) -> Result<PathBuf> {
        use rand::RngExt;
        let nonce: u64 = rand::rng().random();
        let dir = self.work_root.join("egress").join(format!("{nonce:016x}"));
        let longest = sockets.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        if dir.as_os_str().len() + 1 + longest > crate::sandbox::MAX_SOCKET_PATH {
            bail!(
                "the work root of target `{}` ({}) is too long a path for the sockets agents \
                 there reach the network through",
                self.name,
                self.work_root.display()
            );
        }
        let quoted = crate::model::text::shell_quote(&dir.display().to_string());
        self.connection
            .run_script(&format!("umask 077; mkdir -p {quoted}"))
            .await?;
        for (name, local) in sockets {
            let forwarded = self
                .connection
                .forward(&dir.join(name), &local.display().to_string())
                .await;
            if let Err(e) = forwarded {
                self.close_sockets(&dir, sockets).await;
                return Err(e);
            }
        }
        Ok(dir)
    }

    /// Ends [`Site::forward_sockets`]: the forwards, and the directory there.
    pub async fn close_sockets(&self, dir: &Path, sockets: &[(String, PathBuf)]) {
        for (name, local) in sockets {
            let _ = self
                .connection
                .cancel_forward(&dir.join(name), &local.display().to_string())
                .await;
        }
        let quoted = crate::model::text::shell_quote(&dir.display().to_string());
        if let Err(e) = self
            .connection
            .run_script(&format!("rm -rf {quoted}"))
            .await
        {
            tracing::debug!(target = %self.name, error = %format!("{e:#}"),
                "cannot remove a turn's socket directory");
        }
    }

    /// The target's mirror of `repository`.
    pub fn mirror(&self, repository: &str) -> PathBuf {
        self.work_root
            .join("mirrors")
            .join(format!("{repository}.git"))
    }

    /// A session's state directory there (its agent's home).
    pub fn state_dir(&self, session: crate::model::SessionId) -> PathBuf {
        self.work_root
            .join("sessions")
            .join(session.to_string())
            .join("state")
    }

    /// Where a session's checkout goes there.
    pub fn checkout_path(&self, session: crate::model::SessionId) -> PathBuf {
        self.work_root
            .join("workspaces")
            .join(format!("s{session}"))
    }

    /// Whether `path` exists there.
    pub async fn exists(&self, path: &Path) -> Result<bool> {
        let quoted = crate::model::text::shell_quote(&path.display().to_string());
        let said = self
            .connection
            .run_script(&format!(
                "if [ -e {quoted} ] || [ -L {quoted} ]; then echo yes; else echo no; fi"
            ))
            .await?;
        Ok(said == "yes")
    }

    /// Bytes free in the file system of the work root there (`None`: not measured).
    pub async fn free_space(&self) -> Result<Option<u64>> {
        let script = crate::model::targets::free_space_script(&self.work_root);
        let said = self.connection.run_script(&script).await?;
        Ok(crate::model::targets::read_probe(&said).free)
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

/// This instance's connections to its remote targets: each opened when first needed (its
/// MCP forward with it) and opened again once lost.
pub struct Sites {
    targets: Vec<crate::model::targets::TargetSpec>,
    /// foreman's MCP endpoint, forwarded to each target.
    mcp_url: String,
    /// Where the control sockets go (foreman's own, out of every agent's reach).
    dir: PathBuf,
    open: tokio::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Site>>>,
    /// Targets found unreachable, since when and why.
    down: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>,
}

/// How long a target that could not be reached is left out of placement before it is tried
/// again.
pub const DOWN_FOR: Duration = Duration::from_secs(60);

impl Sites {
    pub fn new(targets: &crate::model::targets::Targets, dir: PathBuf, mcp_url: &str) -> Sites {
        Sites {
            targets: targets.remote().cloned().collect(),
            mcp_url: mcp_url.to_owned(),
            dir,
            open: Default::default(),
            down: Default::default(),
        }
    }

    /// The targets found unreachable lately, with why.
    pub fn down(&self) -> std::collections::HashMap<String, String> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.iter()
            .filter(|(_, (since, _))| since.elapsed() < DOWN_FOR)
            .map(|(name, (_, why))| (name.clone(), why.clone()))
            .collect()
    }

    /// Records that `name` was lost or could not be reached.
    pub fn mark_down(&self, name: &str, why: &str) {
        tracing::warn!(target = name, why, "a target is unreachable");
        self.down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (std::time::Instant::now(), why.to_owned()));
    }

    /// The names of the remote targets.
    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// The remote target `name`, connected, its MCP forward to foreman's endpoint in place;
    /// `None` for the foreman host itself.
    pub async fn site(&self, name: &str) -> Result<Option<std::sync::Arc<Site>>> {
        let mcp_url = self.mcp_url.as_str();
        if name == crate::model::targets::LOCAL {
            return Ok(None);
        }
        let spec = self
            .targets
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("there is no target `{name}` (the targets file changed)"))?;
        let mut open = self.open.lock().await;
        if let Some(site) = open.get(name)
            && !site.connection.is_closed()
        {
            return Ok(Some(site.clone()));
        }
        let (Some(ssh), Some(work_root)) = (&spec.ssh, &spec.work_root) else {
            anyhow::bail!("target `{name}` has no SSH settings");
        };
        std::fs::create_dir_all(&self.dir)?;
        let connection = match Connection::open(Remote::new(ssh.clone()), &self.dir).await {
            Ok(connection) => connection,
            Err(e) => {
                let e = match e {
                    RemoteError::Ssh(what, fix) => anyhow!("target `{name}`: {what} ({fix})"),
                    RemoteError::Other(e) => e.context(format!("target `{name}`")),
                };
                self.mark_down(name, &format!("{e:#}"));
                return Err(e);
            }
        };
        self.down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let mcp_url = match url::Url::parse(mcp_url) {
            Ok(mut url) if !mcp_url.is_empty() => {
                let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
                let port = url.port_or_known_default().unwrap_or(80);
                let there = match connection.forward_port(&format!("{host}:{port}")).await {
                    Ok(there) => there,
                    Err(e) => {
                        let e = e.context(format!(
                            "target `{name}`: cannot forward foreman's endpoint"
                        ));
                        self.mark_down(name, &format!("{e:#}"));
                        return Err(e);
                    }
                };
                let _ = url.set_scheme("http");
                let _ = url.set_host(Some("127.0.0.1"));
                let _ = url.set_port(Some(there));
                url.to_string()
            }
            _ => String::new(),
        };
        let site = std::sync::Arc::new(Site::new(name, connection, work_root.clone(), mcp_url));
        open.insert(name.to_owned(), site.clone());
        tracing::info!(target = name, "connected to the target");
        Ok(Some(site))
    }
}
