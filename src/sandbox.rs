//! Sandboxes for code foreman does not trust: every agent turn, and every git command foreman
//! runs in a checkout an agent wrote to.
//!
//! Agents run the repository's build scripts and whatever an issue's text talks them into, so
//! whatever they can read must be assumed public and whatever they can write hostile. With
//! bubblewrap (`bwrap`, the default) each such process gets new user, pid, ipc, uts, cgroup
//! and mount namespaces, its own `/proc`, a private `/tmp` and `/dev`, no capabilities, a
//! session of its own, and it dies with foreman. Its file system holds only the system, read
//! only (`/usr`, the `/bin`-style links, a short list of `/etc` files: resolver, hosts,
//! certificates, users and groups, the loader cache), the program's own installation, and
//! the paths of its [`Jail`]. foreman's database, credentials, other checkouts and foreman's
//! own process are not in it. When the sandbox's first process exits, the kernel kills
//! everything else in its pid namespace, so nothing an agent started outlives its turn.
//!
//! `FOREMAN_SANDBOX=none` runs agents as foreman's own user, with no isolation but their
//! environment: an operator's explicit choice, warned about at start and by `foreman
//! doctor`, and refused for root unless `FOREMAN_ALLOW_ROOT_AGENTS` says otherwise.
//!
//! Paths are bound at the same place inside as outside, so config files that name paths (the
//! session's MCP config, its state directory) mean the same thing on both sides.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::{SandboxArgs, SandboxMode};
use crate::model::text::shell_quote as quote;

/// The uid and gid an agent has inside the sandbox when foreman runs as root (a process that
/// is not uid 0 inside gains no capabilities by running a program).
const SANDBOX_ID: &str = "1000";
/// How long a failed availability check is trusted before it is tried again.
const RECHECK_FAILED_AFTER: Duration = Duration::from_secs(30);
/// How long a successful availability check is trusted.
const RECHECK_OK_AFTER: Duration = Duration::from_secs(10 * 60);
/// Top-level system paths that are links into `/usr` on merged-/usr systems and directories
/// elsewhere; each is reproduced inside as what it is outside.
const SYSTEM_ROOTS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// The files of `/etc` programs need: name resolution, TLS roots, users and groups, the
/// dynamic loader's cache, time zone, MIME types. Nothing else of `/etc` (it may hold
/// secrets: `shadow`, service credentials) is visible.
const ETC_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/passwd",
    "/etc/group",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/os-release",
];
/// Where a program counts as part of the system (already visible, read-only).
const SYSTEM_PREFIXES: &[&str] = &["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"];

/// Where a turn's egress sockets are shown inside its sandbox.
pub const EGRESS_DIR: &str = "/run/foreman-egress";
/// Longest path a Unix socket can be bound at (`sun_path`, less its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// What one sandboxed process may see besides the system.
#[derive(Debug, Clone, Default)]
pub struct Jail {
    /// Its working directory (also bound, read-write or read-only as listed below).
    pub cwd: PathBuf,
    /// Bound read-write.
    pub writable: Vec<PathBuf>,
    /// Bound read-only.
    pub read_only: Vec<PathBuf>,
    /// Files shown read-only in place of others: `(what, where)`. The place must exist.
    pub overlays: Vec<(PathBuf, PathBuf)>,
    /// Whether it shares foreman's network (agents reach their model API and foreman's MCP
    /// endpoint); without, it has only a loopback of its own.
    pub network: bool,
    /// A way out under an allowlist: a loopback of its own whose only exits are the egress
    /// sockets (overrides `network`).
    pub egress: Option<Gated>,
}

/// A jail's exits under an allowlist ([`crate::egress`]): the relay runs first and passes its
/// loopback ports to the turn's sockets.
#[derive(Debug, Clone)]
pub struct Gated {
    /// The relay program: foreman's own executable.
    pub relay: PathBuf,
    /// The turn's socket directory, shown read-only at [`EGRESS_DIR`].
    pub sockets: PathBuf,
    /// The relay's `--forward` arguments.
    pub relay_args: Vec<String>,
}

/// How untrusted processes are run: the checked settings and whether the sandbox can start.
#[derive(Debug)]
pub struct Sandbox {
    mode: SandboxMode,
    bwrap: String,
    /// Extra read-only paths from the operator (`FOREMAN_SANDBOX_READ_ONLY`).
    read_only: Vec<PathBuf>,
    allow_root: bool,
    /// foreman's own files and directories, never to be made visible.
    protected: Vec<PathBuf>,
    checked: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Sandbox {
    /// The sandbox the settings describe. `protected` are foreman's own files and
    /// directories (database, credentials, work root): an extra read-only path that would show
    /// one of them is a configuration error.
    pub fn from_args(args: &SandboxArgs, protected: &[PathBuf]) -> Result<Sandbox> {
        let protected: Vec<PathBuf> = protected.iter().map(|p| canonical_or_self(p)).collect();
        let mut read_only = Vec::new();
        for raw in args.read_only.split(',').map(str::trim) {
            if raw.is_empty() {
                continue;
            }
            let path = PathBuf::from(raw);
            if !path.is_absolute() {
                bail!("FOREMAN_SANDBOX_READ_ONLY: `{raw}` is not an absolute path");
            }
            shows_nothing_of(&protected, &path)
                .with_context(|| format!("FOREMAN_SANDBOX_READ_ONLY: `{raw}`"))?;
            read_only.push(path);
        }
        Ok(Sandbox {
            mode: args.mode,
            bwrap: resolve_program(&args.bwrap),
            read_only,
            allow_root: args.allow_root_agents,
            protected,
            checked: Mutex::new(None),
        })
    }

    /// The bubblewrap sandbox with default settings (tests and benchmarks).
    pub fn bwrap() -> Sandbox {
        Sandbox::from_args(&SandboxArgs::default(), &[]).expect("default sandbox settings")
    }

    /// No sandbox: agents run as foreman's user (tests on machines without bubblewrap).
    pub fn none(allow_root: bool) -> Sandbox {
        Sandbox::from_args(
            &SandboxArgs {
                mode: SandboxMode::None,
                allow_root_agents: allow_root,
                ..SandboxArgs::default()
            },
            &[],
        )
        .expect("sandbox settings")
    }

    /// The operator's extra read-only paths (`FOREMAN_SANDBOX_READ_ONLY`).
    pub fn extra_read_only(&self) -> &[PathBuf] {
        &self.read_only
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// Whether processes really are confined.
    pub fn confines(&self) -> bool {
        self.mode == SandboxMode::Bwrap
    }

    /// Whether untrusted processes can be started now; the error says why not and what to
    /// do. Checked once and remembered (a failure for half a minute, a success for ten).
    pub async fn ready(&self) -> Result<(), String> {
        if let Some((at, result)) = self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let fresh = match result {
                Ok(()) => RECHECK_OK_AFTER,
                Err(_) => RECHECK_FAILED_AFTER,
            };
            if at.elapsed() < fresh {
                return result.clone();
            }
        }
        let result = self.check().await;
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let before = checked.as_ref().map(|(_, r)| r.clone());
        if before.as_ref() != Some(&result) {
            match &result {
                Ok(()) => tracing::info!(mode = self.mode.as_str(), "the agent sandbox is ready"),
                Err(why) => tracing::error!(why, "agents cannot start: they wait"),
            }
        }
        *checked = Some((Instant::now(), result.clone()));
        result
    }

    /// Checks, without remembering, whether the sandbox starts: a process in it must run
    /// `true`.
    pub async fn check(&self) -> Result<(), String> {
        match self.mode {
            SandboxMode::None if is_root() && !self.allow_root => Err(
                "foreman runs as root and FOREMAN_SANDBOX=none: agents are never run as root \
                 without a sandbox. Install bubblewrap and use FOREMAN_SANDBOX=bwrap (the \
                 default), run foreman as an unprivileged user, or set \
                 FOREMAN_ALLOW_ROOT_AGENTS=true to accept the risk"
                    .to_owned(),
            ),
            SandboxMode::None => Ok(()),
            SandboxMode::Bwrap => self.probe().await,
        }
    }

    async fn probe(&self) -> Result<(), String> {
        let jail = Jail {
            cwd: PathBuf::from("/"),
            ..Jail::default()
        };
        let output = self.run_true(&jail).await?;
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said.trim();
        Err(format!(
            "the agent sandbox cannot start ({}): {said}. bubblewrap needs user namespaces: \
             on a host, allow them (sysctl kernel.unprivileged_userns_clone=1, \
             user.max_user_namespaces > 0); in a container, run it with a seccomp profile \
             that allows unshare/clone of user namespaces (Docker's default refuses them; \
             Fly.io machines allow them)",
            output.status
        ))
    }

    /// Runs `true` confined to `jail`, with nothing of foreman's environment, and returns how
    /// it ended (its standard error kept); the error says why it could not be started.
    pub async fn run_true(&self, jail: &Jail) -> Result<std::process::Output, String> {
        let mut command = self
            .command(jail, "true", &[])
            .map_err(|e| format!("{e:#}"))?;
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        match tokio::time::timeout(Duration::from_secs(20), command.output()).await {
            Err(_) => Err("the agent sandbox (bubblewrap) did not start within 20 s".into()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "the agent sandbox cannot start: bubblewrap (`{}`) is not installed. \
                 Install it (Debian/Ubuntu: apt-get install bubblewrap), or set \
                 FOREMAN_SANDBOX=none to run agents without a sandbox",
                self.bwrap
            )),
            Ok(Err(e)) => Err(format!(
                "the agent sandbox cannot start `{}`: {e}",
                self.bwrap
            )),
            Ok(Ok(output)) => Ok(output),
        }
    }

    /// The command that runs `program ARGS` confined to `jail` (or, without a sandbox,
    /// directly in its working directory). The caller sets its environment and pipes; the
    /// environment passes into the sandbox unchanged.
    pub fn command(
        &self,
        jail: &Jail,
        program: &str,
        args: &[String],
    ) -> Result<tokio::process::Command> {
        match self.mode {
            SandboxMode::None => {
                if is_root() && !self.allow_root {
                    bail!("refusing to run `{program}` as root without a sandbox");
                }
                let mut command = tokio::process::Command::new(resolve_program(program));
                command.args(args).current_dir(&jail.cwd);
                Ok(command)
            }
            SandboxMode::Bwrap => {
                let (exec, extra) = locate(program)?;
                for dir in &extra {
                    shows_nothing_of(&self.protected, dir).with_context(|| {
                        format!(
                            "`{program}` cannot run in the sandbox from {}",
                            dir.display()
                        )
                    })?;
                }
                let mut command = tokio::process::Command::new(&self.bwrap);
                command.args(self.bwrap_args(jail, &extra)).arg("--");
                if let Some(gated) = &jail.egress {
                    command
                        .arg(&gated.relay)
                        .arg("relay")
                        .args(&gated.relay_args)
                        .arg("--");
                }
                command.arg(exec).args(args).current_dir(&jail.cwd);
                Ok(command)
            }
        }
    }

    /// bubblewrap's options for a jail, the program's own directories `program_dirs` added
    /// read-only.
    fn bwrap_args(&self, jail: &Jail, program_dirs: &[PathBuf]) -> Vec<String> {
        let mut args = namespace_args(jail);
        if is_root() {
            args.extend(UNPRIVILEGED.map(str::to_owned));
        }
        args.extend(["--ro-bind", "/usr", "/usr"].map(str::to_owned));
        for root in SYSTEM_ROOTS {
            let path = Path::new(root);
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(path) {
                        args.extend([
                            "--symlink".to_owned(),
                            target.display().to_string(),
                            (*root).to_owned(),
                        ]);
                    }
                }
                Ok(meta) if meta.is_dir() => args.extend([
                    "--ro-bind".to_owned(),
                    (*root).to_owned(),
                    (*root).to_owned(),
                ]),
                _ => {}
            }
        }
        let extra: Vec<&Path> = self
            .read_only
            .iter()
            .chain(program_dirs)
            .map(PathBuf::as_path)
            .collect();
        args.extend(jail_args(jail, &extra));
        args
    }
}

/// The options every jail starts with: new namespaces (the network shared only when the
/// jail has it), no capabilities, a session of its own, death with its parent.
fn namespace_args(jail: &Jail) -> Vec<String> {
    let mut args: Vec<String> = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    .map(str::to_owned)
    .to_vec();
    if jail.network && jail.egress.is_none() {
        args.push("--share-net".into());
    }
    args
}

/// For root: another uid inside. Without this, root stays root (if without capabilities)
/// inside; as another uid mapped onto the caller's, files still belong to whoever runs it.
const UNPRIVILEGED: [&str; 5] = ["--unshare-user", "--uid", SANDBOX_ID, "--gid", SANDBOX_ID];

/// The jail's own part of bubblewrap's options, after the system's: the `/etc` files, fresh
/// `/proc`, `/dev` and `/tmp`, `extra` read-only, the jail's paths, its overlays and exits,
/// and its working directory.
fn jail_args(jail: &Jail, extra: &[&Path]) -> Vec<String> {
    let mut args = Vec::new();
    for file in ETC_FILES {
        args.extend([
            "--ro-bind-try".to_owned(),
            (*file).to_owned(),
            (*file).to_owned(),
        ]);
    }
    args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(str::to_owned));
    // Parents before children, so a path bound inside another stays visible.
    let mut binds: Vec<(&Path, &str)> = Vec::new();
    binds.extend(extra.iter().map(|p| (*p, "--ro-bind-try")));
    binds.extend(jail.read_only.iter().map(|p| (p.as_path(), "--ro-bind")));
    binds.extend(jail.writable.iter().map(|p| (p.as_path(), "--bind")));
    binds.sort_by_key(|(p, _)| p.components().count());
    for (path, how) in binds {
        let shown = path.display().to_string();
        args.extend([how.to_owned(), shown.clone(), shown]);
    }
    for (what, place) in &jail.overlays {
        args.extend([
            "--ro-bind".to_owned(),
            what.display().to_string(),
            place.display().to_string(),
        ]);
    }
    if let Some(gated) = &jail.egress {
        let relay = gated.relay.display().to_string();
        args.extend([
            "--ro-bind".to_owned(),
            relay.clone(),
            relay,
            "--ro-bind".to_owned(),
            gated.sockets.display().to_string(),
            EGRESS_DIR.to_owned(),
        ]);
    }
    args.extend(["--chdir".to_owned(), jail.cwd.display().to_string()]);
    args
}

/// A POSIX shell script that runs `program ARGS` confined to `jail` on another machine (a
/// target reached over SSH), with exactly `env`: the same bubblewrap sandbox
/// [`Sandbox::command`] makes here, its system part decided there (which top-level
/// directories are links, whether it runs as root), `extra` shown read-only where it exists
/// there. `program` is looked up on that machine's `PATH` (its installation shown read-only,
/// as here). Under an allowlist (`jail.egress`, its paths those on that machine) the relay
/// starts first, as here. `before` runs first; it may add options (`set -- "$@" ...`) or
/// stop the script.
/// Nothing of `env` is ever on a command line (which any user there could see): the script's
/// own environment is emptied, then given `env`, and passes into the sandbox.
pub fn remote_script(
    jail: &Jail,
    program: &str,
    args: &[String],
    env: &[(String, String)],
    extra: &[PathBuf],
    before: &str,
    input: Option<&Path>,
) -> String {
    let words =
        |list: &[String]| -> String { list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ") };
    let roots = SYSTEM_ROOTS.join(" ");
    let system = SYSTEM_PREFIXES
        .iter()
        .map(|p| format!("{p}*"))
        .collect::<Vec<_>>()
        .join("|");
    let uid = words(&UNPRIVILEGED.map(str::to_owned));
    let extra: Vec<&Path> = extra.iter().map(PathBuf::as_path).collect();
    let exports: String = env
        .iter()
        .filter(|(k, _)| is_variable_name(k))
        .map(|(k, v)| format!("export {k}={}\n", quote(v)))
        .collect();
    format!(
        "bwrap=$(command -v bwrap) || {{ echo 'bubblewrap (bwrap) is not installed on this \
         target' >&2; exit 127; }}\n\
         program={program}\n\
         case \"$program\" in */*) ;; *) program=$(command -v \"$program\") || {{ echo \
         {missing} >&2; exit 127; }};; esac\n\
         set -- {namespaces}\n\
         if [ \"$(id -u)\" = 0 ]; then set -- \"$@\" {uid}; fi\n\
         set -- \"$@\" --ro-bind /usr /usr\n\
         for r in {roots}; do\n\
         \x20 if [ -L \"$r\" ]; then set -- \"$@\" --symlink \"$(readlink \"$r\")\" \"$r\"\n\
         \x20 elif [ -d \"$r\" ]; then set -- \"$@\" --ro-bind \"$r\" \"$r\"; fi\n\
         done\n\
         set -- \"$@\" {jail}\n\
         for p in \"$program\" \"$(readlink -f \"$program\")\"; do\n\
         \x20 case \"$p\" in {system}) continue;; */node_modules/*) d=${{p%%/node_modules/*}}/node_modules;; \
         *) d=${{p%/*}};; esac\n\
         \x20 set -- \"$@\" --ro-bind-try \"$d\" \"$d\"\n\
         done\n\
         {before}\n\
         for v in $(env | sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p'); do unset \"$v\" 2>/dev/null; done\n\
         {exports}\
         exec \"$bwrap\" \"$@\" -- {relay}\"$program\" {args}{input}\n",
        program = quote(program),
        missing = quote(&format!("`{program}` is not installed on this target")),
        namespaces = words(&namespace_args(jail)),
        jail = words(&jail_args(jail, &extra)),
        args = words(args),
        relay = jail.egress.as_ref().map_or(String::new(), |gated| {
            let mut relay = vec![gated.relay.display().to_string(), "relay".to_owned()];
            relay.extend(gated.relay_args.iter().cloned());
            relay.push("--".to_owned());
            format!("{} ", words(&relay))
        }),
        input = input.map_or(String::new(), |p| format!(
            " < {}",
            quote(&p.display().to_string())
        )),
    )
}

/// Whether `name` can be a shell variable's name.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where a bare program name is found on foreman's `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// `program` by its absolute path when it is a bare name found on foreman's `PATH`, else as
/// given (a missing program then fails where it is started, with its name). Started by path,
/// a child that gets its own `PATH` is spawned with `posix_spawn`; by bare name the standard
/// library must fork all of foreman to search the child's `PATH` — a copy of every page table
/// of a large process for each git command.
pub fn resolve_program(program: &str) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    match on_path(program).and_then(|p| std::path::absolute(p).ok()) {
        Some(found) => found.display().to_string(),
        None => program.to_owned(),
    }
}

/// Where `program` is on foreman's search path (as `execvp` would find it), and the
/// directories outside the system it needs to be visible: its own, and for a program
/// installed with npm the whole `node_modules` tree it lives in (a CLI's launcher finds its
/// platform binary in a sibling package).
fn locate(program: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
    let found = if program.contains('/') {
        PathBuf::from(program)
    } else {
        on_path(program).with_context(|| format!("`{program}` is not on foreman's PATH"))?
    };
    let found = std::path::absolute(&found)
        .with_context(|| format!("cannot resolve `{}`", found.display()))?;
    let real = std::fs::canonicalize(&found)
        .with_context(|| format!("`{}` does not exist", found.display()))?;
    let mut dirs = Vec::new();
    for path in [&found, &real] {
        if is_system(path) {
            continue;
        }
        let node_modules = path
            .ancestors()
            .filter(|a| a.file_name().is_some_and(|n| n == "node_modules"))
            .last();
        match node_modules {
            Some(tree) => dirs.push(tree.to_owned()),
            None => dirs.extend(path.parent().map(Path::to_owned)),
        }
    }
    dirs.sort();
    dirs.dedup();
    Ok((found, dirs))
}

/// Fails when making `path` visible would show one of foreman's own files.
fn shows_nothing_of(protected: &[PathBuf], path: &Path) -> Result<()> {
    let shown = canonical_or_self(path);
    if let Some(hit) = protected.iter().find(|p| p.starts_with(&shown)) {
        bail!(
            "it would show agents foreman's own {} (the database, the credentials file and \
             the work root are never visible to agents)",
            hit.display()
        );
    }
    Ok(())
}

fn is_system(path: &Path) -> bool {
    let shown = path.display().to_string();
    SYSTEM_PREFIXES.iter().any(|p| shown.starts_with(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn canonical_or_self(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Whether foreman runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Makes foreman's own process unreadable to other processes of its user: no core dumps, and
/// `/proc/<pid>/environ`, `mem` and `fd` belong to root, so an agent running as the same
/// user cannot read the App's key from foreman's environment or memory.
pub fn protect_process() -> Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_DUMPABLE, 0) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_outside_the_system_bring_their_directory_or_node_modules_tree() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("node_modules/@scope/cli");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/.bin")).unwrap();
        let script = pkg.join("cli.js");
        std::fs::write(&script, "#!/usr/bin/env node\n").unwrap();
        let link = dir.path().join("node_modules/.bin/cli");
        std::os::unix::fs::symlink("../@scope/cli/cli.js", &link).unwrap();
        let (exec, dirs) = locate(link.to_str().unwrap()).unwrap();
        assert_eq!(exec, link);
        let tree = std::fs::canonicalize(dir.path().join("node_modules")).unwrap();
        assert!(dirs.contains(&tree), "{dirs:?}");

        let (exec, dirs) = locate("sh").unwrap();
        assert!(exec.ends_with("sh"));
        assert!(dirs.is_empty(), "{dirs:?}");
        assert!(locate("no-such-program-here").is_err());
    }

    #[test]
    fn foremans_process_is_not_dumpable() {
        protect_process().unwrap();
        // SAFETY: PR_GET_DUMPABLE takes no pointer.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }

    #[tokio::test]
    async fn without_a_sandbox_root_never_runs_agents_unless_the_operator_says_so() {
        let refused = Sandbox::none(false).check().await;
        assert_eq!(refused.is_err(), is_root(), "{refused:?}");
        if is_root() {
            assert!(refused.unwrap_err().contains("FOREMAN_ALLOW_ROOT_AGENTS"));
            let jail = Jail {
                cwd: "/".into(),
                ..Jail::default()
            };
            assert!(Sandbox::none(false).command(&jail, "true", &[]).is_err());
        }
        assert!(Sandbox::none(true).check().await.is_ok());
    }

    #[tokio::test]
    async fn a_missing_bubblewrap_says_what_to_install() {
        let args = SandboxArgs {
            bwrap: "/nonexistent/bwrap".into(),
            ..SandboxArgs::default()
        };
        let why = Sandbox::from_args(&args, &[])
            .unwrap()
            .check()
            .await
            .unwrap_err();
        assert!(why.contains("apt-get install bubblewrap"), "{why}");
    }

    #[test]
    fn an_extra_read_only_path_cannot_show_foremans_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/foreman.db");
        let args = SandboxArgs {
            read_only: dir.path().display().to_string(),
            ..SandboxArgs::default()
        };
        let err = format!("{:#}", Sandbox::from_args(&args, &[db]).unwrap_err());
        assert!(err.contains("never visible"), "{err}");
        let args = SandboxArgs {
            read_only: "relative/path".into(),
            ..SandboxArgs::default()
        };
        assert!(Sandbox::from_args(&args, &[]).is_err());
    }

    #[test]
    fn quoted_words_reach_the_shell_unchanged() {
        for word in [
            "plain",
            "it's",
            "a b",
            "$HOME",
            "`id`",
            "\\",
            "'",
            "\n;rm -rf /",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }

    #[test]
    fn a_remote_script_builds_the_same_jail_and_sets_exactly_its_environment() {
        let jail = Jail {
            cwd: "/srv/w/s1".into(),
            writable: vec!["/srv/w/s1".into()],
            read_only: vec!["/srv/m/o/r.git/objects".into()],
            overlays: vec![("/srv/m/o/r.config".into(), "/srv/w/s1/.git/config".into())],
            network: false,
            egress: None,
        };
        let env = [("HOME".to_owned(), "/nonexistent".to_owned())];
        let script = remote_script(
            &jail,
            "git",
            &["status".to_owned()],
            &env,
            &[],
            "true",
            None,
        );
        let local = Sandbox::bwrap().bwrap_args(&jail, &[]);
        let own = &local[local.iter().position(|a| a == "--ro-bind-try").unwrap()..];
        let quoted: Vec<String> = own.iter().map(|w| quote(w)).collect();
        assert!(script.contains(&quoted.join(" ")), "{script}");
        assert!(!script.contains("--share-net"), "{script}");
        assert!(
            script.contains("\nexport HOME='/nonexistent'\n"),
            "{script}"
        );
        assert!(
            script.ends_with("exec \"$bwrap\" \"$@\" -- \"$program\" 'status'\n"),
            "{script}"
        );
        // Under an allowlist: the relay there starts first, the network shared with nothing.
        let gated = Jail {
            network: true,
            egress: Some(Gated {
                relay: "/srv/bin/foreman-1".into(),
                sockets: "/srv/egress/ab".into(),
                relay_args: vec!["--forward".into(), "127.0.0.1:3128=/run/x".into()],
            }),
            ..jail
        };
        let script = remote_script(&gated, "git", &[], &env, &[], "true", None);
        assert!(!script.contains("--share-net"), "{script}");
        assert!(
            script.contains("'--ro-bind' '/srv/egress/ab' '/run/foreman-egress'"),
            "{script}"
        );
        assert!(
            script.ends_with(
                "exec \"$bwrap\" \"$@\" -- '/srv/bin/foreman-1' 'relay' '--forward' \
                 '127.0.0.1:3128=/run/x' '--' \"$program\" \n"
            ),
            "{script}"
        );
    }

    #[test]
    fn jails_bind_parents_before_children_and_only_what_they_list() {
        let sandbox = Sandbox::bwrap();
        let jail = Jail {
            cwd: "/w/work/s1".into(),
            writable: vec!["/w/work/s1".into(), "/w/state/1".into()],
            read_only: vec!["/w/mirrors/o/r.git/objects".into()],
            overlays: vec![("/w/ours.config".into(), "/w/work/s1/.git/config".into())],
            network: true,
            egress: None,
        };
        let args = sandbox.bwrap_args(&jail, &[]);
        let text = args.join(" ");
        assert!(text.contains("--unshare-all"), "{text}");
        assert!(text.contains("--share-net"), "{text}");
        assert!(text.contains("--die-with-parent"), "{text}");
        assert!(text.contains("--bind /w/work/s1 /w/work/s1"), "{text}");
        assert!(text.contains("--ro-bind /w/mirrors/o/r.git/objects /w/mirrors/o/r.git/objects"));
        assert!(
            text.ends_with("--ro-bind /w/ours.config /w/work/s1/.git/config --chdir /w/work/s1"),
            "{text}"
        );
        assert!(!text.contains("/etc/shadow"), "{text}");
        let offline = sandbox.bwrap_args(
            &Jail {
                network: false,
                ..jail.clone()
            },
            &[],
        );
        assert!(!offline.join(" ").contains("--share-net"));
        let gated = sandbox
            .bwrap_args(
                &Jail {
                    egress: Some(Gated {
                        relay: "/opt/foreman".into(),
                        sockets: "/tmp/foreman-egress-1".into(),
                        relay_args: Vec::new(),
                    }),
                    ..jail
                },
                &[],
            )
            .join(" ");
        assert!(
            !gated.contains("--share-net"),
            "an allowlist has no network: {gated}"
        );
        assert!(
            gated.contains("--ro-bind /opt/foreman /opt/foreman"),
            "{gated}"
        );
        assert!(
            gated.contains("--ro-bind /tmp/foreman-egress-1 /run/foreman-egress"),
            "{gated}"
        );
    }
}
