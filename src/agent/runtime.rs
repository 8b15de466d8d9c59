//! Agent processes: one per turn, each in its own process group, in its workspace, with a
//! minimal environment. Killing a turn kills the whole group, grandchildren included.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::TurnCommand;

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
    child: tokio::process::Child,
    /// Also the process group id: the process leads its own group.
    pub pid: u32,
    /// Its output, line by line, until both pipes close.
    pub lines: mpsc::Receiver<(Stream, String)>,
}

/// Starts a turn's process: writes its files (owner-only), then runs the program in
/// `workdir` with exactly `base_env` plus the command's own variables.
pub async fn spawn(
    cmd: &TurnCommand,
    workdir: &Path,
    base_env: &[(String, String)],
) -> Result<AgentProcess> {
    for (path, content) in &cmd.files {
        write_private(path, content)
            .with_context(|| format!("cannot write agent file {}", path.display()))?;
    }
    let mut command = tokio::process::Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .current_dir(workdir)
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
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it asks the
    // kernel to kill the agent if foreman dies, so no agent outlives its supervisor.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
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
    Ok(AgentProcess { child, pid, lines })
}

impl AgentProcess {
    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
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

async fn forward<R>(pipe: R, stream: Stream, sink: mpsc::Sender<(Stream, String)>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                buf.truncate(MAX_LINE);
                let line = String::from_utf8_lossy(&buf).into_owned();
                if sink.send((stream, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, content.as_bytes())
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

    #[tokio::test]
    async fn output_arrives_line_by_line_with_only_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = sh("echo out; echo err >&2; echo \"[$SECRET_TEST][$ONLY]\"; cat input.txt");
        cmd.env = vec![("ONLY".into(), SecretString::from("given".to_owned()))];
        cmd.files = vec![(dir.path().join("input.txt"), "from a file".into())];
        // SAFETY: test-only; no other thread of this test reads the variable.
        unsafe { std::env::set_var("SECRET_TEST", "leaked") };
        let mut p = spawn(&cmd, dir.path(), &path_env()).await.unwrap();
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
        let mut p = spawn(&cmd, dir.path(), &path_env()).await.unwrap();
        let (_, grandchild) = p.lines.recv().await.unwrap();
        let grandchild: i32 = grandchild.trim().parse().unwrap();
        assert!(group_alive(p.pid));
        kill_group(p.pid);
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
        let err = spawn(&cmd, dir.path(), &[])
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot start `/nonexistent/agent`"), "{err}");
    }
}
