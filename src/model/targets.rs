//! Targets: the machines agents run on. `local` (the foreman host) is one and the default;
//! the operator adds others reached over SSH in a targets file (`FOREMAN_TARGETS`, TOML):
//!
//! ```toml
//! [local]
//! capacity = 3            # concurrent turns here (default: FOREMAN_MAX_SESSIONS)
//!
//! [targets.big-1]
//! ssh = "foreman@10.0.0.5:22"
//! key = "/etc/foreman/targets/id_ed25519"
//! known_hosts = "/etc/foreman/targets/known_hosts"
//! work_root = "/srv/foreman"
//! capacity = 4
//! labels = ["big"]
//! ```
//!
//! Everything here is pure: reading and checking the file, and judging what a probe of a
//! target found. Host keys are checked strictly: a host whose key is not in `known_hosts` is
//! refused unless its entry says `accept_new_host_key = true` (trust on first use, the
//! operator's choice); a host whose key changed is always refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The name of the foreman host as a target.
pub const LOCAL: &str = "local";

/// Every target, `local` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    pub all: Vec<TargetSpec>,
}

/// One machine agents may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    /// `None` for the foreman host.
    pub ssh: Option<SshSpec>,
    /// Where checkouts go there (`None` on `local`: FOREMAN_WORK_ROOT).
    pub work_root: Option<PathBuf>,
    /// Turns that may run there at once.
    pub capacity: u32,
    pub labels: Vec<String>,
}

/// How a remote target is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    /// The private key foreman logs in with (`None`: ssh's defaults for foreman's user).
    pub key: Option<PathBuf>,
    /// The host keys trusted (`None`: ssh's defaults for foreman's user).
    pub known_hosts: Option<PathBuf>,
    /// Whether a host not yet in `known_hosts` is trusted on first use.
    pub accept_new_host_key: bool,
}

impl SshSpec {
    /// `user@host` (or `host`), as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The options that make ssh safe to run unattended: no prompt, no configuration file but
    /// these, strict host keys, only the given key, and a dead connection noticed in seconds.
    pub fn options(&self) -> Vec<String> {
        let mut options = vec![
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-p".to_owned(),
            self.port.to_string(),
        ];
        let mut set = |option: &str, value: &str| {
            options.push("-o".to_owned());
            options.push(format!("{option}={value}"));
        };
        set("BatchMode", "yes");
        set(
            "StrictHostKeyChecking",
            if self.accept_new_host_key {
                "accept-new"
            } else {
                "yes"
            },
        );
        if let Some(known_hosts) = &self.known_hosts {
            set("UserKnownHostsFile", &known_hosts.to_string_lossy());
            set("GlobalKnownHostsFile", "/dev/null");
        }
        if let Some(key) = &self.key {
            set("IdentityFile", &key.to_string_lossy());
            set("IdentitiesOnly", "yes");
        }
        set("ConnectTimeout", "10");
        set("ServerAliveInterval", "5");
        set("ServerAliveCountMax", "3");
        set("LogLevel", "ERROR");
        options
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    local: Option<LocalEntry>,
    #[serde(default)]
    targets: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalEntry {
    capacity: Option<u32>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    ssh: String,
    key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    accept_new_host_key: bool,
    work_root: PathBuf,
    capacity: u32,
    #[serde(default)]
    labels: Vec<String>,
}

impl Targets {
    /// Only the foreman host, with room for `capacity` turns.
    pub fn local_only(capacity: u32) -> Targets {
        Targets {
            all: vec![local(capacity, Vec::new())],
        }
    }

    /// Reads a targets file; `local_capacity` is `local`'s room when the file does not say.
    /// The error names what is wrong and where.
    pub fn parse(text: &str, local_capacity: u32) -> Result<Targets, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let (capacity, labels) = match file.local {
            Some(entry) => (entry.capacity.unwrap_or(local_capacity), entry.labels),
            None => (local_capacity, Vec::new()),
        };
        if capacity == 0 {
            return Err("[local]: capacity must be at least 1".to_owned());
        }
        check_labels("[local]", &labels)?;
        let mut all = vec![local(capacity, labels)];
        for (name, entry) in file.targets {
            all.push(target(name, entry)?);
        }
        Ok(Targets { all })
    }

    pub fn get(&self, name: &str) -> Option<&TargetSpec> {
        self.all.iter().find(|t| t.name == name)
    }

    /// The targets reached over SSH.
    pub fn remote(&self) -> impl Iterator<Item = &TargetSpec> {
        self.all.iter().filter(|t| t.ssh.is_some())
    }
}

/// What placing a session's turn depends on.
#[derive(Debug, Clone, Default)]
pub struct Want<'a> {
    /// The target the turn must run on: the session's own once it took a turn (its checkout
    /// and its agent's conversation are there), or the target of the checkout it inherits.
    pub pinned: Option<&'a str>,
    /// Labels the target must have (the repository's config asks for them).
    pub labels: &'a [String],
    /// Targets where the session's objective has turns running or checkouts: preferred, so
    /// that an objective's work stays together.
    pub objective_on: &'a [&'a str],
    /// Targets that cannot be reached now: left out.
    pub down: &'a [&'a str],
}

/// Where a session's next turn runs: a target that has every wanted label and room (turns
/// `running` there below its capacity) — the pinned one if any; else, preferring targets
/// where the objective already is, the one with the most room left (so objectives spread
/// across targets), `local` first among equals. `None`: the turn waits.
pub fn place<'t>(
    targets: &'t Targets,
    running: &std::collections::HashMap<String, u32>,
    want: &Want<'_>,
) -> Option<&'t str> {
    let room = |t: &TargetSpec| {
        t.capacity
            .saturating_sub(*running.get(&t.name).unwrap_or(&0))
    };
    targets
        .all
        .iter()
        .enumerate()
        .filter(|(_, t)| want.pinned.is_none_or(|p| p == t.name))
        .filter(|(_, t)| want.labels.iter().all(|l| t.labels.contains(l)))
        .filter(|(_, t)| room(t) > 0 && !want.down.contains(&t.name.as_str()))
        .max_by_key(|(i, t)| {
            (
                want.objective_on.contains(&t.name.as_str()),
                room(t),
                std::cmp::Reverse(*i),
            )
        })
        .map(|(_, t)| t.name.as_str())
}

/// Why a session cannot be placed at all, whatever runs (`None`: it can, when there is room).
pub fn unplaceable(targets: &Targets, want: &Want<'_>) -> Option<String> {
    if let Some(pinned) = want.pinned
        && targets.get(pinned).is_none()
    {
        return Some(format!(
            "its target `{pinned}` is no longer in the targets file"
        ));
    }
    let fits = targets.all.iter().any(|t| {
        want.pinned.is_none_or(|p| p == t.name) && want.labels.iter().all(|l| t.labels.contains(l))
    });
    (!fits).then(|| {
        format!(
            "no target has the labels {}",
            want.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn local(capacity: u32, labels: Vec<String>) -> TargetSpec {
    TargetSpec {
        name: LOCAL.to_owned(),
        ssh: None,
        work_root: None,
        capacity,
        labels,
    }
}

fn target(name: String, entry: Entry) -> Result<TargetSpec, String> {
    let at = format!("[targets.{name}]");
    if name == LOCAL {
        return Err(format!(
            "{at}: `local` is the foreman host; set its capacity under [local]"
        ));
    }
    if !is_word(&name) {
        return Err(format!(
            "{at}: a target's name is letters, digits, `-` and `_`"
        ));
    }
    if entry.capacity == 0 {
        return Err(format!("{at}: capacity must be at least 1"));
    }
    check_labels(&at, &entry.labels)?;
    let (user, host, port) = destination(&entry.ssh).map_err(|e| format!("{at}: ssh: {e}"))?;
    if !entry.work_root.is_absolute() || !is_plain_path(&entry.work_root) {
        return Err(format!(
            "{at}: work_root must be an absolute path of letters, digits and `/._-`"
        ));
    }
    for (what, path) in [("key", &entry.key), ("known_hosts", &entry.known_hosts)] {
        if path.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err(format!("{at}: {what} must be an absolute path"));
        }
    }
    Ok(TargetSpec {
        name,
        ssh: Some(SshSpec {
            user,
            host,
            port,
            key: entry.key,
            known_hosts: entry.known_hosts,
            accept_new_host_key: entry.accept_new_host_key,
        }),
        work_root: Some(entry.work_root),
        capacity: entry.capacity,
        labels: entry.labels,
    })
}

/// `[user@]host[:port]`, with an IPv6 address in brackets.
fn destination(text: &str) -> Result<(Option<String>, String, u16), String> {
    let (user, rest) = match text.rsplit_once('@') {
        Some((user, rest)) => (Some(user), rest),
        None => (None, text),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or("an IPv6 address without its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{p}` is not a port"))?,
        None => 22,
    };
    // Nothing ssh could take for an option or a shell could split.
    let host_ok = !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !host_ok {
        return Err(format!("`{host}` is not a host name or address"));
    }
    if let Some(user) = user
        && (user.is_empty() || user.starts_with('-') || !is_word_or_dot(user))
    {
        return Err(format!("`{user}` is not a user name"));
    }
    Ok((user.map(str::to_owned), host.to_owned(), port))
}

fn check_labels(at: &str, labels: &[String]) -> Result<(), String> {
    match labels.iter().find(|l| !is_word(l)) {
        Some(label) => Err(format!(
            "{at}: label `{label}` is not letters, digits, `-` and `_`"
        )),
        None => Ok(()),
    }
}

fn is_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

fn is_word_or_dot(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A path that can go into a remote shell command without quoting surprises.
fn is_plain_path(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(|p| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
            && !p.split('/').any(|part| part == "..")
    })
}

/// What a probe of a target found, read from its output (`key=value` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub git: Option<String>,
    pub bwrap: Option<String>,
    /// Agent programs looked for, and where each was found.
    pub agents: Vec<(String, Option<String>)>,
    /// Bytes free in the work root's file system.
    pub free: Option<u64>,
    /// Why the work root could not be made, if it could not.
    pub work_root_error: Option<String>,
    /// How long the login shell there had been running when the probe started: its startup
    /// file, which every command foreman sends there (each turn's start) waits for.
    pub shell_ms: Option<u64>,
}

/// A login shell slower to start than this is pointed out: every turn's start there waits
/// for it.
pub const SLOW_SHELL_MS: u64 = 100;

/// The shell script a probe runs on a target (POSIX sh): one line per finding.
pub fn probe_script(work_root: &std::path::Path, agents: &[String]) -> String {
    // The shell running this is the login shell that ran its startup file (it execs the
    // `sh` it was asked for): its age, from its start time in clock ticks since boot.
    let mut script = String::from(
        "echo \"shell_ms=$(awk -v t=\"$(getconf CLK_TCK)\" 'NR == FNR {up = $1; next} \
         {print int((up - $22 / t) * 1000)}' /proc/uptime /proc/$$/stat 2>/dev/null)\"\n\
         echo \"git=$(git --version 2>/dev/null)\"\n\
         echo \"bwrap=$(bwrap --version 2>/dev/null)\"\n",
    );
    let plain = |a: &&String| {
        !a.starts_with('-')
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    for agent in agents.iter().filter(plain) {
        script.push_str(&format!(
            "echo \"agent {agent}=$(command -v {agent} 2>/dev/null)\"\n"
        ));
    }
    script.push_str(&free_space_script(work_root));
    script
}

/// The part of a probe that reports the free space in the file system of the work root, or of
/// the nearest directory above it that exists (foreman makes the rest): a probe changes
/// nothing. Its output is read by [`read_probe`].
pub fn free_space_script(work_root: &std::path::Path) -> String {
    let root = crate::model::text::shell_quote(&work_root.to_string_lossy());
    format!(
        "d={root}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done\n\
         if [ -w \"$d\" ]; then echo \"free=$(df -Pk \"$d\" | awk 'NR==2 {{print $4}}')\"; \
         else echo \"work_root_error=$d is not writable\"; fi\n"
    )
}

/// Reads a probe's output.
pub fn read_probe(output: &str) -> Probe {
    let mut probe = Probe::default();
    let some = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    for line in output.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "git" => probe.git = some(value),
            "bwrap" => probe.bwrap = some(value),
            "free" => probe.free = value.trim().parse::<u64>().ok().map(|kib| kib * 1024),
            "work_root_error" => probe.work_root_error = some(value),
            "shell_ms" => probe.shell_ms = value.trim().parse().ok(),
            _ => {
                if let Some(agent) = key.strip_prefix("agent ") {
                    probe.agents.push((agent.to_owned(), some(value)));
                }
            }
        }
    }
    probe
}

/// How a target came out of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready(String),
    /// Usable, with something to look at.
    Wanting(String, String),
    /// Not usable: what is wrong and what to do.
    Refused(String, String),
}

/// Judges a target from its probe: `min_free` is the free space its work root must keep.
pub fn judge(spec: &TargetSpec, probe: &Probe, min_free: u64) -> Verdict {
    let root = spec
        .work_root
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Some(e) = &probe.work_root_error {
        return Verdict::Refused(
            format!("cannot make the work root {root}: {e}"),
            "give the target's user a work_root it can write".to_owned(),
        );
    }
    let Some(git) = &probe.git else {
        return Verdict::Refused(
            "git is not installed there".to_owned(),
            "install git on the target (Debian: apt-get install git)".to_owned(),
        );
    };
    let Some(bwrap) = &probe.bwrap else {
        return Verdict::Refused(
            "bubblewrap is not installed there: agents cannot be sandboxed".to_owned(),
            "install bubblewrap on the target (Debian: apt-get install bubblewrap)".to_owned(),
        );
    };
    let missing: Vec<&str> = probe
        .agents
        .iter()
        .filter(|(_, found)| found.is_none())
        .map(|(agent, _)| agent.as_str())
        .collect();
    if !missing.is_empty() {
        return Verdict::Refused(
            format!("agent CLIs not on the PATH there: {}", missing.join(", ")),
            "install them on the target for the user foreman logs in as".to_owned(),
        );
    }
    let free = probe.free.unwrap_or(0);
    let shown = crate::model::text::human_bytes(free);
    let agents: Vec<&str> = probe
        .agents
        .iter()
        .filter_map(|(_, found)| found.as_deref())
        .collect();
    let summary = format!(
        "{}:{}, {git}, {bwrap}, agents {}, {shown} free in {root}, capacity {}",
        spec.ssh
            .as_ref()
            .map(SshSpec::destination)
            .unwrap_or_default(),
        spec.ssh.as_ref().map(|s| s.port).unwrap_or(22),
        if agents.is_empty() {
            "-".to_owned()
        } else {
            agents.join(", ")
        },
        spec.capacity,
    );
    let summary = match probe.shell_ms {
        Some(ms) => format!("{summary}, login shell {ms} ms"),
        None => summary,
    };
    if free < min_free {
        return Verdict::Wanting(
            summary,
            format!(
                "free space there is under FOREMAN_MIN_FREE_DISK ({})",
                crate::model::text::human_bytes(min_free)
            ),
        );
    }
    if let Some(ms) = probe.shell_ms.filter(|ms| *ms > SLOW_SHELL_MS) {
        return Verdict::Wanting(
            summary,
            format!(
                "the login shell there took {ms} ms to start, and every turn's start waits \
                 for it: make the startup file (~/.bashrc) of the user foreman logs in as \
                 return at once for non-interactive shells"
            ),
        );
    }
    Verdict::Ready(summary)
}

/// Why ssh could not run a command on a target, from its exit status and what it printed:
/// what is wrong and what to do. `None` when the failure was not ssh's.
pub fn ssh_failure(spec: &SshSpec, status: Option<i32>, stderr: &str) -> Option<(String, String)> {
    if status != Some(255) {
        return None;
    }
    let host = &spec.host;
    let keyscan = format!(
        "check the host's key fingerprint out of band, then add it: ssh-keyscan -p {} {host} >> {}",
        spec.port,
        spec.known_hosts
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".to_owned())
    );
    let found = |needle: &str| stderr.contains(needle);
    Some(if found("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        (
            format!("the host key of {host} has changed: refused (the host may be impersonated)"),
            format!(
                "if {host} was reinstalled, replace its entry in known_hosts after checking the new key"
            ),
        )
    } else if found("Host key verification failed") || found("No ") && found("host key is known") {
        (
            format!("the host key of {host} is not known: refused"),
            keyscan,
        )
    } else if found("Permission denied") {
        (
            format!("{} refused foreman's key", spec.destination()),
            "add foreman's public key to the user's authorized_keys on the target".to_owned(),
        )
    } else {
        let first = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("ssh failed without saying why");
        (
            format!("cannot reach {host}:{}: {first}", spec.port),
            "check the address, that sshd runs there, and the network".to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [local]
        capacity = 2
        labels = ["small"]

        [targets.big-1]
        ssh = "foreman@10.0.0.5:2222"
        key = "/etc/foreman/id_ed25519"
        known_hosts = "/etc/foreman/known_hosts"
        work_root = "/srv/foreman"
        capacity = 4
        labels = ["big", "gpu"]

        [targets.v6]
        ssh = "[fd00::5]"
        work_root = "/srv/foreman"
        capacity = 1
    "#;

    #[test]
    fn turns_go_where_there_is_room_the_labels_and_the_objective_are() {
        let targets = Targets::parse(FILE, 2).unwrap();
        let mut running: std::collections::HashMap<String, u32> = Default::default();
        let none = Want::default();
        // The most room: big-1 (4) over local (2) and v6 (1).
        assert_eq!(place(&targets, &running, &none), Some("big-1"));
        running.insert("big-1".into(), 3);
        // Now local has the most room (2 against 1 and 1).
        assert_eq!(place(&targets, &running, &none), Some("local"));
        // The objective's own target wins while it has room.
        let on = ["big-1"];
        let together = Want {
            objective_on: &on,
            ..Want::default()
        };
        assert_eq!(place(&targets, &running, &together), Some("big-1"));
        running.insert("big-1".into(), 4);
        assert_eq!(place(&targets, &running, &together), Some("local"));
        // Pinned: there or nowhere.
        let pinned = Want {
            pinned: Some("big-1"),
            ..Want::default()
        };
        assert_eq!(place(&targets, &running, &pinned), None);
        assert_eq!(unplaceable(&targets, &pinned), None, "it only waits");
        running.insert("big-1".into(), 0);
        assert_eq!(place(&targets, &running, &pinned), Some("big-1"));
        // Labels.
        let gpu = ["gpu".to_owned()];
        let wants_gpu = Want {
            labels: &gpu,
            ..Want::default()
        };
        assert_eq!(place(&targets, &running, &wants_gpu), Some("big-1"));
        let tpu = ["tpu".to_owned()];
        let wants_tpu = Want {
            labels: &tpu,
            ..Want::default()
        };
        assert_eq!(place(&targets, &running, &wants_tpu), None);
        assert_eq!(
            unplaceable(&targets, &wants_tpu).as_deref(),
            Some("no target has the labels `tpu`")
        );
        let gone = Want {
            pinned: Some("old"),
            ..Want::default()
        };
        assert!(unplaceable(&targets, &gone).unwrap().contains("`old`"));
        // A target that is down is left out.
        let down = ["big-1"];
        let big_down = Want {
            labels: &gpu,
            down: &down,
            ..Want::default()
        };
        assert_eq!(place(&targets, &running, &big_down), None);
        assert_eq!(
            place(
                &targets,
                &running,
                &Want {
                    down: &down,
                    ..Want::default()
                }
            ),
            Some("local")
        );
        // Full everywhere: wait.
        for (name, n) in [("local", 2), ("big-1", 4), ("v6", 1)] {
            running.insert(name.into(), n);
        }
        assert_eq!(place(&targets, &running, &none), None);
    }

    #[test]
    fn a_targets_file_is_read_with_local_first() {
        let targets = Targets::parse(FILE, 3).unwrap();
        let names: Vec<&str> = targets.all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["local", "big-1", "v6"]);
        let local = targets.get(LOCAL).unwrap();
        assert_eq!((local.capacity, local.ssh.is_none()), (2, true));
        let big = targets.get("big-1").unwrap();
        let ssh = big.ssh.as_ref().unwrap();
        assert_eq!(
            (ssh.user.as_deref(), ssh.host.as_str(), ssh.port),
            (Some("foreman"), "10.0.0.5", 2222)
        );
        assert_eq!(big.labels, ["big", "gpu"]);
        let v6 = targets.get("v6").unwrap().ssh.clone().unwrap();
        assert_eq!((v6.host.as_str(), v6.port, v6.user), ("fd00::5", 22, None));
        assert_eq!(targets.remote().count(), 2);
        assert_eq!(Targets::parse("", 3).unwrap(), Targets::local_only(3));
    }

    #[test]
    fn host_keys_are_checked_strictly_unless_the_operator_says_otherwise() {
        let targets = Targets::parse(FILE, 3).unwrap();
        let options = targets
            .get("big-1")
            .unwrap()
            .ssh
            .as_ref()
            .unwrap()
            .options();
        let joined = options.join(" ");
        for wanted in [
            "-F /dev/null",
            "-p 2222",
            "-o BatchMode=yes",
            "-o StrictHostKeyChecking=yes",
            "-o UserKnownHostsFile=/etc/foreman/known_hosts",
            "-o IdentityFile=/etc/foreman/id_ed25519",
            "-o IdentitiesOnly=yes",
        ] {
            assert!(joined.contains(wanted), "{wanted} in {joined}");
        }
        let tofu = FILE.replace(
            "capacity = 4",
            "capacity = 4\n        accept_new_host_key = true",
        );
        let targets = Targets::parse(&tofu, 3).unwrap();
        let ssh = targets.get("big-1").unwrap().ssh.as_ref().unwrap();
        assert!(
            ssh.options()
                .join(" ")
                .contains("StrictHostKeyChecking=accept-new")
        );
    }

    #[test]
    fn bad_entries_are_refused_naming_the_target() {
        let entry = |body: &str| format!("[targets.t]\n{body}\n");
        let good = "ssh = \"h\"\nwork_root = \"/w\"\ncapacity = 1";
        assert!(Targets::parse(&entry(good), 1).is_ok());
        for (body, wanted) in [
            (
                "ssh = \"-oProxyCommand=x\"\nwork_root = \"/w\"\ncapacity = 1",
                "not a host",
            ),
            (
                "ssh = \"h;rm\"\nwork_root = \"/w\"\ncapacity = 1",
                "not a host",
            ),
            (
                "ssh = \"-u@h\"\nwork_root = \"/w\"\ncapacity = 1",
                "not a user",
            ),
            (
                "ssh = \"h:0\"\nwork_root = \"/w\"\ncapacity = 1",
                "not a port",
            ),
            (
                "ssh = \"h:x\"\nwork_root = \"/w\"\ncapacity = 1",
                "not a port",
            ),
            (
                "ssh = \"[::1\"\nwork_root = \"/w\"\ncapacity = 1",
                "closing",
            ),
            ("ssh = \"h\"\nwork_root = \"w\"\ncapacity = 1", "absolute"),
            (
                "ssh = \"h\"\nwork_root = \"/w/$(id)\"\ncapacity = 1",
                "absolute path of",
            ),
            (
                "ssh = \"h\"\nwork_root = \"/w/../etc\"\ncapacity = 1",
                "absolute path of",
            ),
            (
                "ssh = \"h\"\nwork_root = \"/w\"\ncapacity = 0",
                "at least 1",
            ),
            (
                "ssh = \"h\"\nwork_root = \"/w\"\ncapacity = 1\nkey = \"k\"",
                "key must be",
            ),
            (
                "ssh = \"h\"\nwork_root = \"/w\"\ncapacity = 1\nlabels = [\"a b\"]",
                "label",
            ),
            (
                "ssh = \"h\"\nwork_root = \"/w\"\ncapacity = 1\nport = 2",
                "unknown field",
            ),
            ("work_root = \"/w\"\ncapacity = 1", "missing field `ssh`"),
        ] {
            let error = Targets::parse(&entry(body), 1).unwrap_err();
            assert!(error.contains(wanted), "{body}: {error}");
            assert!(
                error.contains("[targets.t]") || error.contains("field"),
                "{body}: {error}"
            );
        }
        let local = "[targets.local]\nssh = \"h\"\nwork_root = \"/w\"\ncapacity = 1";
        assert!(Targets::parse(local, 1).unwrap_err().contains("[local]"));
        assert!(Targets::parse("[local]\ncapacity = 0", 1).is_err());
        let named = "[targets.\"a b\"]\nssh = \"h\"\nwork_root = \"/w\"\ncapacity = 1";
        assert!(Targets::parse(named, 1).unwrap_err().contains("name"));
    }

    fn big() -> TargetSpec {
        Targets::parse(FILE, 3)
            .unwrap()
            .get("big-1")
            .unwrap()
            .clone()
    }

    #[test]
    fn a_probe_is_read_and_judged() {
        let output = "git=git version 2.39.5\nbwrap=bubblewrap 0.8.0\n\
                      agent claude=/usr/bin/claude\nfree=10485760\n";
        let probe = read_probe(output);
        assert_eq!(probe.free, Some(10 << 30));
        let Verdict::Ready(summary) = judge(&big(), &probe, 2 << 30) else {
            panic!("not ready")
        };
        assert!(summary.contains("git version 2.39.5") && summary.contains("10.0 GiB"));
        assert!(summary.contains("agents /usr/bin/claude"), "{summary}");
        assert!(matches!(
            judge(&big(), &probe, 20 << 30),
            Verdict::Wanting(_, why) if why.contains("FOREMAN_MIN_FREE_DISK")
        ));
        // A login shell slow to start is pointed out; a quick one is not.
        for (ms, slow) in [(12, false), (SLOW_SHELL_MS + 45, true)] {
            let probe = read_probe(&format!("{output}shell_ms={ms}\n"));
            assert_eq!(probe.shell_ms, Some(ms));
            match judge(&big(), &probe, 2 << 30) {
                Verdict::Wanting(_, why) => {
                    assert!(slow && why.contains(&format!("{ms} ms")), "{why}")
                }
                verdict => assert!(!slow && matches!(verdict, Verdict::Ready(_)), "{verdict:?}"),
            }
        }
        for (output, wanted) in [
            ("git=\nbwrap=b\nfree=1", "git is not installed"),
            ("git=g\nbwrap=\nfree=1", "bubblewrap"),
            ("git=g\nbwrap=b\nagent codex=\nfree=1", "codex"),
            ("work_root_error=/srv is not writable", "not writable"),
        ] {
            let verdict = judge(&big(), &read_probe(output), 0);
            assert!(
                matches!(&verdict, Verdict::Refused(what, _) if what.contains(wanted)),
                "{output}: {verdict:?}"
            );
        }
    }

    #[test]
    fn the_probe_script_looks_only_for_plain_program_names() {
        let script = probe_script(
            std::path::Path::new("/srv/foreman"),
            &["claude".to_owned(), "x;rm -rf /".to_owned()],
        );
        assert!(script.contains("command -v claude"));
        assert!(!script.contains("rm -rf /"));
        assert!(script.contains("d='/srv/foreman';"), "{script}");
    }

    #[test]
    fn ssh_failures_say_what_happened() {
        let spec = big().ssh.unwrap();
        let changed = "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n";
        let (what, _) = ssh_failure(&spec, Some(255), changed).unwrap();
        assert!(what.contains("has changed: refused"), "{what}");
        let unknown = "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.\nHost key verification failed.\n";
        let (what, fix) = ssh_failure(&spec, Some(255), unknown).unwrap();
        assert!(what.contains("not known: refused"), "{what}");
        assert!(fix.contains("ssh-keyscan -p 2222 10.0.0.5 >> /etc/foreman/known_hosts"));
        let denied = "foreman@10.0.0.5: Permission denied (publickey).\n";
        assert!(
            ssh_failure(&spec, Some(255), denied)
                .unwrap()
                .0
                .contains("refused foreman's key")
        );
        let refused = "ssh: connect to host 10.0.0.5 port 2222: Connection refused\n";
        assert!(
            ssh_failure(&spec, Some(255), refused)
                .unwrap()
                .0
                .contains("Connection refused")
        );
        assert_eq!(ssh_failure(&spec, Some(1), changed), None);
    }
}
