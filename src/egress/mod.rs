//! Agents' network, enforced outside the agent.
//!
//! Under an allowlist a turn's sandbox gets a network namespace of its own with nothing but
//! a loopback: no route out, no DNS. The only ways out are Unix sockets foreman listens on,
//! shown read-only inside, which a small relay (`foreman relay`, the sandbox's first process:
//! [`relay`]) exposes on the sandbox's loopback:
//!
//! - a **proxy** port (HTTP `CONNECT` and plain HTTP by host name), named in the agent's
//!   `HTTPS_PROXY` and friends. foreman's side ([`proxy`]) checks each host against the
//!   turn's [`Allowlist`], resolves and connects itself, and records what it refused;
//! - **forwards** of the loopback endpoints foreman gives the agent (its MCP endpoint, a model
//!   API on this machine), on the same address and port inside as outside, so their URLs work
//!   unchanged.
//!
//! Unsetting the proxy variables only takes an agent to a loopback where nothing listens:
//! the policy lives in foreman's process, out of the agent's reach.

pub mod proxy;
pub mod relay;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::net::UnixListener;
use tokio::task::JoinSet;

use crate::model::network::{Allowlist, Blocked, HostRule};
use crate::model::{Clock, Timestamp};
use crate::sandbox::{EGRESS_DIR, MAX_SOCKET_PATH};

/// The proxy's port inside the sandbox, unless a forward takes it.
const PROXY_PORT: u16 = 3128;

/// An endpoint on this machine an agent reaches at the same address inside its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The host as the agent's URL names it (`127.0.0.1`, `localhost`, `::1`).
    pub host: String,
    pub port: u16,
}

/// Most destinations a turn's refusals are kept apart for; the rest are counted together
/// under [`OTHER_HOSTS`] (an agent inventing names cannot grow foreman's memory or tables).
const MAX_HOSTS: usize = 200;
/// Where refusals past [`MAX_HOSTS`] destinations are counted.
pub const OTHER_HOSTS: &str = "(other hosts)";

/// What the proxy refused since it was last asked, by destination.
#[derive(Default)]
pub struct BlockedLog {
    by_host: Mutex<BTreeMap<String, Blocked>>,
}

impl BlockedLog {
    fn record(&self, host: String, at: Timestamp) {
        let mut map = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        let host = if map.len() >= MAX_HOSTS && !map.contains_key(&host) {
            OTHER_HOSTS.to_owned()
        } else {
            host
        };
        let entry = map.entry(host.clone()).or_insert(Blocked {
            host,
            attempts: 0,
            first_at: at,
            last_at: at,
        });
        entry.attempts += 1;
        entry.last_at = at;
    }

    /// What was refused since the last call.
    pub fn take(&self) -> Vec<Blocked> {
        std::mem::take(&mut *self.by_host.lock().unwrap_or_else(|e| e.into_inner()))
            .into_values()
            .collect()
    }
}

/// Which endpoints agents always reach, and which of them are forwarded: those whose host is
/// on this machine. `urls` are foreman's MCP endpoint and the model APIs.
pub fn endpoints(urls: &[String]) -> (Vec<HostRule>, Vec<Forward>) {
    let mut rules = Vec::new();
    let mut forwards = Vec::new();
    for raw in urls {
        let Ok(url) = url::Url::parse(raw) else {
            continue;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        rules.push(HostRule::endpoint(&host, port));
        let local = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let forward = Forward { host, port };
        if local && !forwards.contains(&forward) {
            forwards.push(forward);
        }
    }
    (rules, forwards)
}

/// One turn's way out: the sockets, the tasks serving them, and what they refused. Dropping
/// it closes everything (connections in flight included) and removes the sockets.
pub struct Gate {
    dir: PathBuf,
    /// The sockets' names in `dir`.
    names: Vec<String>,
    relay_args: Vec<String>,
    proxy_port: u16,
    blocked: Arc<BlockedLog>,
    _tasks: JoinSet<()>,
}

impl Gate {
    /// Listens for a turn: the proxy under `allowlist`, and each forward.
    pub fn open(allowlist: Allowlist, forwards: &[Forward], clock: Arc<dyn Clock>) -> Result<Gate> {
        let dir = private_dir()?;
        let gate = Gate::listen(&dir, allowlist, forwards, clock);
        if gate.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        gate
    }

    fn listen(
        dir: &Path,
        allowlist: Allowlist,
        forwards: &[Forward],
        clock: Arc<dyn Clock>,
    ) -> Result<Gate> {
        let mut tasks = JoinSet::new();
        let mut relay_args = Vec::new();
        let mut names = Vec::new();
        let blocked = Arc::new(BlockedLog::default());
        for (i, forward) in forwards.iter().enumerate() {
            let name = format!("f{i}.sock");
            let listener = bind(&dir.join(&name))?;
            names.push(name.clone());
            let target = (forward.host.clone(), forward.port);
            tasks.spawn(proxy::serve_forward(listener, target));
            for inside in inside_addresses(forward) {
                relay_args.push("--forward".to_owned());
                relay_args.push(format!("{inside}={EGRESS_DIR}/{name}"));
            }
        }
        let taken: Vec<u16> = forwards.iter().map(|f| f.port).collect();
        let proxy_port = (PROXY_PORT..u16::MAX)
            .find(|p| !taken.contains(p))
            .unwrap_or(PROXY_PORT);
        let listener = bind(&dir.join("proxy.sock"))?;
        names.push("proxy.sock".to_owned());
        tasks.spawn(proxy::serve_proxy(
            listener,
            Arc::new(allowlist),
            blocked.clone(),
            clock,
        ));
        relay_args.push("--forward".to_owned());
        relay_args.push(format!("127.0.0.1:{proxy_port}={EGRESS_DIR}/proxy.sock"));
        Ok(Gate {
            dir: dir.to_owned(),
            names,
            relay_args,
            proxy_port,
            blocked,
            _tasks: tasks,
        })
    }

    /// A jail's way out through this gate, with `relay` starting the sandbox: the socket
    /// directory (shown read-only at [`EGRESS_DIR`]) and each `--forward LISTEN=SOCKET`.
    pub fn exits(&self, relay: &Path) -> crate::sandbox::Gated {
        crate::sandbox::Gated {
            relay: relay.to_owned(),
            sockets: self.dir.clone(),
            relay_args: self.relay_args.clone(),
        }
    }

    /// The gate's sockets, by name (a remote target's sandbox sees them forwarded over its
    /// connection).
    pub fn sockets(&self) -> Vec<(String, PathBuf)> {
        self.names
            .iter()
            .map(|n| (n.clone(), self.dir.join(n)))
            .collect()
    }

    /// The variables that point an agent's tools at the proxy (loopback destinations go
    /// direct: to the forwards, or to nothing).
    pub fn env(&self) -> Vec<(String, String)> {
        let proxy = format!("http://127.0.0.1:{}", self.proxy_port);
        let mut env: Vec<(String, String)> = [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ]
        .iter()
        .map(|name| ((*name).to_owned(), proxy.clone()))
        .collect();
        for name in ["NO_PROXY", "no_proxy"] {
            env.push((name.to_owned(), "localhost,127.0.0.1,::1".to_owned()));
        }
        env
    }

    /// What the proxy refused since the last call.
    pub fn take_blocked(&self) -> Vec<Blocked> {
        self.blocked.take()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a sandbox starts behind the relay: `true` runs in it under an empty allowlist.
pub async fn probe(sandbox: &crate::sandbox::Sandbox, relay: &Path) -> Result<(), String> {
    let gate = Gate::open(
        Allowlist::default(),
        &[],
        Arc::new(crate::model::SystemClock),
    )
    .map_err(|e| format!("{e:#}"))?;
    let jail = crate::sandbox::Jail {
        cwd: PathBuf::from("/"),
        egress: Some(gate.exits(relay)),
        ..crate::sandbox::Jail::default()
    };
    let output = sandbox.run_true(&jail).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "the sandbox behind the relay `{}` failed ({}): {}",
        relay.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// Where a forward listens inside: its own address, and for `localhost` both loopbacks.
fn inside_addresses(forward: &Forward) -> Vec<SocketAddr> {
    let ips: Vec<std::net::IpAddr> = match forward.host.parse() {
        Ok(ip) => vec![ip],
        Err(_) => vec![
            std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ],
    };
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, forward.port))
        .collect()
}

/// A new directory only foreman's user can enter, short enough for socket paths.
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let name = format!(
        "foreman-egress-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let dir = base.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot make the egress socket directory {}", dir.display()))?;
    Ok(dir)
}

fn bind(path: &Path) -> Result<UnixListener> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        anyhow::bail!(
            "the egress socket path {} is too long for a Unix socket: set TMPDIR to a shorter \
             directory",
            path.display()
        );
    }
    UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_endpoints_are_forwarded_and_every_endpoint_allowed() {
        let (rules, forwards) = endpoints(&[
            "http://127.0.0.1:4000/mcp".to_owned(),
            "http://localhost:9/v1".to_owned(),
            "https://api.anthropic.com".to_owned(),
            "http://[::1]:8080".to_owned(),
            "not a url".to_owned(),
        ]);
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:4000",
                "localhost:9",
                "api.anthropic.com:443",
                "[::1]:8080"
            ]
        );
        assert_eq!(
            forwards,
            [
                Forward {
                    host: "127.0.0.1".into(),
                    port: 4000
                },
                Forward {
                    host: "localhost".into(),
                    port: 9
                },
                Forward {
                    host: "::1".into(),
                    port: 8080
                },
            ]
        );
        assert_eq!(inside_addresses(&forwards[1]).len(), 2);
    }

    #[test]
    fn refusals_are_counted_per_destination() {
        let log = BlockedLog::default();
        log.record("evil.example:443".into(), Timestamp(1));
        log.record("evil.example:443".into(), Timestamp(5));
        log.record("other.example:80".into(), Timestamp(3));
        let taken = log.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].host, "evil.example:443");
        assert_eq!(
            (taken[0].attempts, taken[0].first_at, taken[0].last_at),
            (2, Timestamp(1), Timestamp(5))
        );
        assert!(log.take().is_empty());
        for i in 0..MAX_HOSTS + 50 {
            log.record(format!("h{i}.example:443"), Timestamp(i as i64));
        }
        let taken = log.take();
        assert_eq!(taken.len(), MAX_HOSTS + 1);
        let other = taken.iter().find(|b| b.host == OTHER_HOSTS).unwrap();
        assert_eq!(other.attempts, 50);
    }
}
