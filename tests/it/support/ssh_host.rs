//! Test hosts for targets: a real `sshd` (Debian's openssh-server) in a network namespace of
//! its own, reached over a veth pair at an address on this machine only, with its own host
//! key, the tests' login key authorised, and a work root of its own. Made by the test; gone
//! (sshd killed, namespace and link deleted) when dropped.
//!
//! It needs root (namespaces) and sshd. Without them the tests say loudly that they skip;
//! with `FOREMAN_TEST_SSH=required` (CI) they fail instead.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

pub const SSH_ENV: &str = "FOREMAN_TEST_SSH";
const SSHD: &str = "/usr/sbin/sshd";

/// Whether test hosts can be made here; says why not, once, when they cannot.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let why_not = if unsafe { libc::geteuid() } != 0 {
            Some("network namespaces need root".to_owned())
        } else if !Path::new(SSHD).exists() {
            Some(format!(
                "{SSHD} is missing (Debian: apt-get install openssh-server)"
            ))
        } else if !run_ok("ip", &["-V"]) || !run_ok("ssh", &["-V"]) {
            Some("ip or ssh is missing (Debian: iproute2, openssh-client)".to_owned())
        } else {
            None
        };
        match why_not {
            None => true,
            Some(why) if std::env::var(SSH_ENV).as_deref() == Ok("required") => {
                panic!("{SSH_ENV}=required but test hosts cannot be made: {why}")
            }
            Some(why) => {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SSH target tests SKIPPED: {why} (CI runs them) ***\n"
                );
                false
            }
        }
    })
}

fn run_ok(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key pair made with ssh-keygen: the private key's path and the public key's line.
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            path.to_str().unwrap(),
        ],
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// One test host.
pub struct SshHost {
    pub addr: Ipv4Addr,
    /// The host's public key line (`ssh-ed25519 AAAA… name`).
    pub host_key: String,
    /// The work root set aside for this host.
    pub work_root: PathBuf,
    pub dir: TempDir,
    namespace: String,
    sshd: std::process::Child,
}

impl SshHost {
    /// Starts a host that lets in whoever holds the private half of `authorized`.
    pub async fn start(authorized: &str) -> SshHost {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // A /30 of its own per host and run: 10.233.<a>.<4b + 1..2>.
        let slot = (std::process::id() * 8 + n) % (250 * 64);
        let (a, b) = ((slot / 64) as u8, (slot % 64) as u8 * 4);
        let outside = Ipv4Addr::new(10, 233, a, b + 1);
        let addr = Ipv4Addr::new(10, 233, a, b + 2);
        let namespace = format!("fmt-{}-{n}", std::process::id());
        let (host_link, inner_link) = (format!("fmh{slot}"), format!("fmn{slot}"));
        let dir = tempfile::tempdir().unwrap();
        let work_root = dir.path().join("work");
        run("ip", &["netns", "add", &namespace]);
        let host = |args: &[&str]| run("ip", args);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &namespace, "ip"];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        host(&[
            "link",
            "add",
            &host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner_link,
        ]);
        host(&["link", "set", &inner_link, "netns", &namespace]);
        host(&["addr", "add", &format!("{outside}/30"), "dev", &host_link]);
        host(&["link", "set", &host_link, "up"]);
        inside(&["addr", "add", &format!("{addr}/30"), "dev", &inner_link]);
        inside(&["link", "set", &inner_link, "up"]);
        inside(&["link", "set", "lo", "up"]);

        let (host_key_path, host_key) = key_pair(dir.path(), "host_ed25519");
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("{authorized}\n"),
        )
        .unwrap();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port 22\nListenAddress {addr}\nHostKey {}\nPidFile none\n\
                 AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nMaxStartups 100\n",
                host_key_path.display(),
                dir.path().join("authorized_keys").display()
            ),
        )
        .unwrap();
        // sshd wants its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new("ip")
            .args(["netns", "exec", &namespace, SSHD, "-D", "-e", "-f"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.path().join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        let host = SshHost {
            addr,
            host_key,
            work_root,
            dir,
            namespace,
            sshd,
        };
        host.wait_listening().await;
        host
    }

    async fn wait_listening(&self) {
        let to = SocketAddrV4::new(self.addr, 22);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(to).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "sshd did not listen at {to}: {}",
            std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
        );
    }

    /// The line of a known_hosts file that trusts `key` for this host.
    pub fn known_hosts_line(&self, key: &str) -> String {
        format!("{} {key}\n", self.addr)
    }

    /// Kills sshd and every connection it serves, as a host that dies would drop them.
    pub fn kill_sshd(&mut self) {
        let listener = self.sshd.id();
        for pid in descendants(listener) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        self.stop();
    }

    /// A known_hosts file trusting this host's key, in `dir`.
    pub fn known_hosts(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("known_hosts_{}", self.addr));
        std::fs::write(&path, self.known_hosts_line(&self.host_key)).unwrap();
        path
    }

    /// Runs a command in the host's own mount namespace (`ip netns exec` gave sshd one: what
    /// is mounted there, the host's sessions see and this machine does not); whether it
    /// succeeded.
    pub fn in_mounts(&self, command: &[&str]) -> bool {
        let target = self.sshd.id().to_string();
        let mut all = vec!["-t", &target, "-m", "--"];
        all.extend_from_slice(command);
        run_ok("nsenter", &all)
    }

    /// The pid of the host's sshd: its processes are the ones descended from it.
    pub fn sshd_pid(&self) -> u32 {
        self.sshd.id()
    }

    /// Stops sshd: the host is unreachable from now on.
    pub fn stop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.stop();
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.namespace])
            .output();
    }
}

/// The processes descended from `root` (not itself), from /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so read after its `)`.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The processes on this machine that run `sleep <seconds>` (the test hosts share its
/// process table: their namespaces are of the network only).
pub fn sleeping(seconds: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c == format!("sleep\0{seconds}\0").as_bytes())
        })
        .collect()
}
