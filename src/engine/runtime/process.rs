//! Agent processes: one per turn, each in the sandbox ([`crate::sandbox`]) and its own
//! process group, in its workspace, with a minimal environment. Killing a turn kills the
//! whole group (and, in the sandbox, everything in its pid namespace), grandchildren
//! included. Output is read in bounded chunks: a stream without newlines cannot grow
//! foreman's memory past [`MAX_LINE`].

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use std::sync::Arc;

use crate::agent::TurnCommand;
use crate::sandbox::{Jail, Sandbox};
use crate::workspace::remote::Site;

/// Longest output line kept. Agents print whole tool results on one line; the final
/// `result` event of a long turn can be large, and cutting it loses the turn's end.
pub const MAX_LINE: usize = 4 * 1024 * 1024;
/// Lines buffered between the process and whoever reads them.
const LINE_BUFFER: usize = 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// A running agent process.
pub struct AgentProcess {
    /// The process here: the agent itself, or the ssh client that runs it on a target.
    child: tokio::process::Child,
    /// Where the agent runs, and the process group that ends with it.
    pub group: Group,
    /// Its output, line by line, until both pipes close.
    pub lines: mpsc::Receiver<(Stream, String)>,
}

/// An agent's process group: everything it started.
#[derive(Clone)]
pub enum Group {
    /// On this machine: the agent's pid, which leads its own group.
    Local(u32),
    /// On a remote target: the group of the command started there.
    Remote { site: Arc<Site>, group: u32 },
}

/// Starts a turn's process: writes its files (owner-only, under `files_root`, which the
/// agent can write to: links it planted there are replaced, never followed), then runs the
/// program confined to `jail` with exactly `base_env` plus the command's own variables.
pub async fn spawn(
    cmd: &TurnCommand,
    sandbox: &Sandbox,
    jail: &Jail,
    files_root: &Path,
    base_env: &[(String, String)],
) -> Result<AgentProcess> {
    // Said plainly: spawning in a missing directory fails with the same error as a missing
    // program, and would blame the program.
    if !jail.cwd.is_dir() {
        anyhow::bail!(
            "cannot start the agent: its working directory {} does not exist on this machine",
            jail.cwd.display()
        );
    }
    for (path, content) in &cmd.files {
        write_private(files_root, path, content)
            .with_context(|| format!("cannot write agent file {}", path.display()))?;
    }
    let mut command = sandbox.command(jail, &cmd.program, &cmd.args)?;
    command
        .env_clear()
        .envs(base_env.iter().map(|(k, v)| (k, v)))
        .envs(cmd.env.iter().map(|(k, v)| (k, v.expose_secret())))
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // No agent outlives its supervisor. In the sandbox, bubblewrap sees to it
    // (`--die-with-parent`); unconfined, the kernel is asked to kill the agent when foreman
    // dies. The hook costs a full fork of foreman, so it is added only where it is needed.
    if sandbox.mode() == crate::config::SandboxMode::None {
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start `{}`", cmd.program))?;
    let pid = child.id().context("the agent exited at once")?;
    if let (Some(input), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
        let input = input.clone();
        tokio::spawn(async move {
            // An agent that exits without reading its input is not an error here.
            let _ = stdin.write_all(input.as_bytes()).await;
        });
    }
    let (sender, lines) = mpsc::channel(LINE_BUFFER);
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    tokio::spawn(forward(stdout, Stream::Out, sender.clone()));
    tokio::spawn(forward(stderr, Stream::Err, sender));
    Ok(AgentProcess {
        child,
        group: Group::Local(pid),
        lines,
    })
}

/// What a turn's process on a target is given besides its command.
pub struct RemoteStart<'a> {
    pub site: &'a Arc<Site>,
    pub jail: &'a Jail,
    /// Where its files go there (its state directory, which the agent can write to).
    pub files_root: &'a Path,
    pub base_env: &'a [(String, String)],
    /// Shown read-only besides the jail (the operator's extra read-only paths).
    pub extra: &'a [std::path::PathBuf],
    /// Directories to make there first (its temporary directory).
    pub make: &'a [std::path::PathBuf],
}

/// Starts a turn's process on a remote target, over the target's connection, in the same
/// sandbox as here ([`crate::sandbox::remote_script`]): its files are written there first
/// (owner-only, links an agent planted on the way removed, never followed), all of it sent on
/// the connection's standard input — no file content, variable or input ever on a command
/// line there. Its output streams back as it comes; it runs in a process group of its own
/// there, killed as one.
pub async fn spawn_remote(cmd: &TurnCommand, start: &RemoteStart<'_>) -> Result<AgentProcess> {
    use base64::Engine as _;
    let quote = |p: &Path| crate::model::text::shell_quote(&p.display().to_string());
    let root = start.files_root;
    let mut script = format!("set -e\numask 077\nmkdir -p {}\n", quote(root));
    for dir in start.make {
        script.push_str(&format!("mkdir -p {}\n", quote(dir)));
    }
    let mut files: Vec<(std::path::PathBuf, &str)> = cmd
        .files
        .iter()
        .map(|(p, c)| (p.clone(), c.as_str()))
        .collect();
    let input = root.join(".foreman-input");
    if let Some(text) = &cmd.stdin {
        files.push((input.clone(), text));
    }
    for (path, content) in &files {
        let relative = path
            .strip_prefix(root)
            .with_context(|| format!("{} is not under {}", path.display(), root.display()))?;
        if !relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            bail!("{} is not a plain path", path.display());
        }
        let mut dir = root.to_owned();
        let parts: Vec<_> = relative.components().collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push(part);
            let d = quote(&dir);
            script.push_str(&format!(
                "if [ -L {d} ] || {{ [ -e {d} ] && [ ! -d {d} ]; }}; then rm -f {d}; fi\n\
                 [ -d {d} ] || mkdir {d}\n"
            ));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(content.as_bytes());
        let f = quote(path);
        script.push_str(&format!(
            "rm -rf {f}\nbase64 -d > {f} <<'FOREMAN_END'\n{encoded}\nFOREMAN_END\n"
        ));
    }
    script.push_str("set +e\n");
    let env: Vec<(String, String)> = start
        .base_env
        .iter()
        .cloned()
        .chain(
            cmd.env
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_secret().to_owned())),
        )
        .collect();
    let redirect = cmd.stdin.is_some().then_some(input.as_path());
    script.push_str(&crate::sandbox::remote_script(
        start.jail,
        &cmd.program,
        &cmd.args,
        &env,
        start.extra,
        "",
        redirect,
    ));
    let remote = start
        .site
        .connection
        .start(&script)
        .await
        .with_context(|| format!("cannot start the agent on target {}", start.site.name))?;
    let crate::workspace::remote::RemoteChild {
        mut child,
        stdout,
        group,
    } = remote;
    let (sender, lines) = mpsc::channel(LINE_BUFFER);
    let stderr = child.stderr.take().context("no stderr pipe")?;
    tokio::spawn(forward(stdout.into_inner(), Stream::Out, sender.clone()));
    tokio::spawn(forward(stderr, Stream::Err, sender));
    Ok(AgentProcess {
        child,
        group: Group::Remote {
            site: start.site.clone(),
            group,
        },
        lines,
    })
}

impl AgentProcess {
    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// The pid here, for a process on this machine.
    pub fn local_pid(&self) -> Option<u32> {
        match &self.group {
            Group::Local(pid) => Some(*pid),
            Group::Remote { .. } => None,
        }
    }

    /// Kills the agent and everything it started, wherever it runs.
    pub async fn kill(&self) {
        match &self.group {
            Group::Local(pid) => kill_group(*pid),
            Group::Remote { site, group } => {
                if let Err(e) = site.connection.kill_group(*group).await {
                    tracing::warn!(target = site.name, error = %format!("{e:#}"), "cannot kill the agent's process group there");
                }
            }
        }
    }
}

/// Kills a process group (the agent and everything it started).
pub fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) on a process group id we started; no memory is involved.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Whether any process of the group is still alive.
pub fn group_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    pid > 1 && unsafe { libc::kill(-pid, 0) } == 0
}

/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;

/// Splits a pipe into lines, reading fixed-size chunks: a line longer than [`MAX_LINE`] is
/// cut there and the rest of it skipped up to its newline, so memory stays bounded whatever
/// the process writes.
async fn forward<R>(mut pipe: R, stream: Stream, sink: mpsc::Sender<(Stream, String)>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut chunk = vec![0u8; CHUNK];
    let mut line: Vec<u8> = Vec::new();
    let mut skipping = false;
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let (part, ended) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            rest = if ended { &rest[part.len() + 1..] } else { &[] };
            if skipping {
                skipping = !ended;
                continue;
            }
            let room = MAX_LINE - line.len();
            let full = part.len() > room;
            line.extend_from_slice(&part[..part.len().min(room)]);
            if full || ended {
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                skipping = full && !ended;
                if sink.send((stream, text)).await.is_err() {
                    return;
                }
            }
        }
    }
    if !line.is_empty() {
        let _ = sink
            .send((stream, String::from_utf8_lossy(&line).into_owned()))
            .await;
    }
}

/// Writes `content` to `path` (owner-only), which must lie under `root`. Every directory on
/// the way and the file itself are checked without following links: something the agent put
/// there (a link to foreman's credentials, say) is removed, not written through.
pub fn write_private(root: &Path, path: &Path, content: &str) -> Result<()> {
    let relative = path
        .strip_prefix(root)
        .with_context(|| format!("{} is not under {}", path.display(), root.display()))?;
    let mut dir = root.to_owned();
    let parts: Vec<_> = relative.components().collect();
    let Some((_, dirs)) = parts.split_last() else {
        bail!("no file name in {}", path.display());
    };
    for part in dirs {
        let std::path::Component::Normal(part) = part else {
            bail!("{} is not a plain path", path.display());
        };
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => std::fs::remove_file(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::create_dir(&dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, content.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::time::Duration;

    fn sh(script: &str) -> TurnCommand {
        TurnCommand {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            ..TurnCommand::default()
        }
    }

    fn path_env() -> Vec<(String, String)> {
        vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
    }

    /// No sandbox: these tests are about the process itself.
    fn plain() -> Sandbox {
        Sandbox::none(true)
    }

    fn jail(dir: &Path) -> Jail {
        Jail {
            cwd: dir.to_owned(),
            writable: vec![dir.to_owned()],
            ..Jail::default()
        }
    }

    async fn run(cmd: &TurnCommand, dir: &Path) -> Result<AgentProcess> {
        spawn(cmd, &plain(), &jail(dir), dir, &path_env()).await
    }

    #[tokio::test]
    async fn output_arrives_line_by_line_with_only_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = sh("echo out; echo err >&2; echo \"[$SECRET_TEST][$ONLY]\"; cat input.txt");
        cmd.env = vec![("ONLY".into(), SecretString::from("given".to_owned()))];
        cmd.files = vec![(dir.path().join("input.txt"), "from a file".into())];
        // SAFETY: test-only; no other thread of this test reads the variable.
        unsafe { std::env::set_var("SECRET_TEST", "leaked") };
        let mut p = run(&cmd, dir.path()).await.unwrap();
        let mut out = Vec::new();
        while let Some(line) = p.lines.recv().await {
            out.push(line);
        }
        assert!(p.wait().await.unwrap().success());
        assert!(out.contains(&(Stream::Out, "out".into())));
        assert!(out.contains(&(Stream::Err, "err".into())));
        assert!(out.contains(&(Stream::Out, "[][given]".into())), "{out:?}");
        assert!(out.contains(&(Stream::Out, "from a file".into())));
        let mode = std::fs::metadata(dir.path().join("input.txt"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[tokio::test]
    async fn killing_the_group_kills_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = sh("sleep 300 & echo $!; wait");
        let mut p = run(&cmd, dir.path()).await.unwrap();
        let (_, grandchild) = p.lines.recv().await.unwrap();
        let grandchild: i32 = grandchild.trim().parse().unwrap();
        assert!(group_alive(p.local_pid().unwrap()));
        kill_group(p.local_pid().unwrap());
        let status = tokio::time::timeout(Duration::from_secs(10), p.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success());
        // The grandchild is gone too (allow the kernel a moment to reap it).
        for _ in 0..100 {
            // SAFETY: signal 0 only checks for existence.
            if unsafe { libc::kill(grandchild, 0) } != 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("grandchild {grandchild} survived the group kill");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = TurnCommand {
            program: "/nonexistent/agent".into(),
            ..TurnCommand::default()
        };
        let err = run(&cmd, dir.path()).await.err().unwrap().to_string();
        assert!(err.contains("cannot start `/nonexistent/agent`"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_named_not_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = spawn(&sh("true"), &plain(), &jail(&gone), dir.path(), &path_env())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("working directory") && err.contains("gone") && !err.contains("`sh`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_line_without_end_is_cut_and_memory_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // 12 MiB without a newline, then a normal line.
        let cmd = sh("head -c 12582912 /dev/zero | tr '\\0' x; echo; echo after");
        let mut p = run(&cmd, dir.path()).await.unwrap();
        let mut lines = Vec::new();
        while let Some((_, line)) = p.lines.recv().await {
            lines.push(line.len());
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], MAX_LINE);
        assert_eq!(lines[1], "after".len());
    }

    #[test]
    fn files_are_written_through_no_link_the_agent_planted() {
        let root = tempfile::tempdir().unwrap();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "private key").unwrap();
        // The agent links its config file, and a directory, to foreman's files.
        std::os::unix::fs::symlink(secret.path(), root.path().join("prompt.md")).unwrap();
        std::os::unix::fs::symlink(std::env::temp_dir(), root.path().join("home")).unwrap();
        write_private(root.path(), &root.path().join("prompt.md"), "the prompt").unwrap();
        write_private(root.path(), &root.path().join("home/config.toml"), "cfg").unwrap();
        assert_eq!(
            std::fs::read_to_string(secret.path()).unwrap(),
            "private key"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("prompt.md")).unwrap(),
            "the prompt"
        );
        assert!(root.path().join("home").is_dir());
        assert!(
            !std::fs::symlink_metadata(root.path().join("home"))
                .unwrap()
                .is_symlink()
        );
        assert!(write_private(root.path(), Path::new("/etc/x"), "no").is_err());
    }
}
