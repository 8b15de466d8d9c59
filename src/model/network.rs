//! Where agents may connect: the operator's network policy, a repository's narrowing of it,
//! and the one question the egress proxy asks of it ([`Allowlist::permits`]). Pure: no
//! sockets, no resolving.
//!
//! A host rule is a name (`registry.npmjs.org`), a suffix (`*.pythonhosted.org`: the name's
//! subdomains, not the name itself) or an IP address, each with an optional port. A rule
//! without a port allows 80 and 443 only, so listing `127.0.0.1` never opens every service on
//! the machine; a rule that needs another port says it (`127.0.0.1:8080`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// Hosts agents commonly need to build a repository: the package registries, unless the
/// operator says otherwise (`FOREMAN_NETWORK_ALLOW`).
pub const DEFAULT_ALLOW: &str = "registry.npmjs.org,registry.yarnpkg.com,pypi.org,\
files.pythonhosted.org,crates.io,index.crates.io,static.crates.io,static.rust-lang.org,\
proxy.golang.org,sum.golang.org,rubygems.org,repo.maven.apache.org,repo1.maven.org,\
plugins.gradle.org,api.nuget.org,packagist.org,deb.debian.org";

/// Ports a rule without one allows.
const WEB_PORTS: [u16; 2] = [80, 443];

/// Whether agents' connections are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Only the listed hosts, through foreman's proxy; nothing else leaves the sandbox.
    Allowlist,
    /// The host's network, unfiltered.
    Open,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Allowlist => "allowlist",
            NetworkMode::Open => "open",
        }
    }

    pub fn parse(text: &str) -> Result<NetworkMode, String> {
        match text.trim() {
            "allowlist" => Ok(NetworkMode::Allowlist),
            "open" => Ok(NetworkMode::Open),
            other => Err(format!(
                "`{other}` is not a network mode (allowlist or open)"
            )),
        }
    }
}

/// The host part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This name or address exactly.
    Exact(String),
    /// Any name ending in `.suffix` (stored without the dot).
    Suffix(String),
}

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: HostPattern,
    port: Option<u16>,
}

impl HostRule {
    /// Parses `name`, `*.suffix`, `1.2.3.4` or `[::1]`, each optionally with `:port`.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let text = text.trim();
        let (host, port) = split_host_port(text)
            .ok_or_else(|| format!("`{text}` is not a host name, `*.suffix` or address"))?;
        let host = normalize(host);
        let pattern = match host.strip_prefix("*.") {
            Some(suffix) if valid_name(suffix) && suffix.contains('.') => {
                HostPattern::Suffix(suffix.to_owned())
            }
            Some(_) => {
                return Err(format!(
                    "`{text}`: a wildcard must cover a domain's subdomains (`*.example.com`)"
                ));
            }
            None if host.parse::<std::net::IpAddr>().is_ok() || valid_name(&host) => {
                HostPattern::Exact(host)
            }
            None => {
                return Err(format!(
                    "`{text}` is not a host name, `*.suffix` or address"
                ));
            }
        };
        Ok(HostRule {
            host: pattern,
            port,
        })
    }

    /// The rule for exactly `host:port` (an endpoint foreman itself gives agents).
    pub fn endpoint(host: &str, port: u16) -> HostRule {
        HostRule {
            host: HostPattern::Exact(normalize(host)),
            port: Some(port),
        }
    }

    /// Whether a connection to `host:port` (as the agent named it) matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = normalize(host);
        let port_ok = match self.port {
            Some(p) => p == port,
            None => WEB_PORTS.contains(&port),
        };
        port_ok
            && match &self.host {
                HostPattern::Exact(name) => *name == host,
                HostPattern::Suffix(suffix) => is_subdomain(&host, suffix),
            }
    }

    /// Whether a host matched by this rule is named by a wildcard (its addresses are then
    /// checked to be public: a wildcard never reaches the machine's own network).
    pub fn is_wildcard(&self) -> bool {
        matches!(self.host, HostPattern::Suffix(_))
    }

    /// Whether everything `other` allows, this allows too.
    fn covers(&self, other: &HostRule) -> bool {
        let ports_ok = match (self.port, other.port) {
            (None, None) => true,
            (None, Some(p)) => WEB_PORTS.contains(&p),
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        ports_ok
            && match (&self.host, &other.host) {
                (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
                (HostPattern::Suffix(s), HostPattern::Exact(name)) => is_subdomain(name, s),
                (HostPattern::Suffix(a), HostPattern::Suffix(b)) => a == b || is_subdomain(b, a),
                (HostPattern::Exact(_), HostPattern::Suffix(_)) => false,
            }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Exact(name) if name.contains(':') => format!("[{name}]"),
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Suffix(suffix) => format!("*.{suffix}"),
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

/// Parses a comma-separated list of rules; the error names the bad entry.
pub fn parse_rules(list: &str) -> Result<Vec<HostRule>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(HostRule::parse)
        .collect()
}

/// The operator's policy (`FOREMAN_NETWORK`, `FOREMAN_NETWORK_ALLOW`,
/// `FOREMAN_NETWORK_PERMIT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub mode: NetworkMode,
    /// What every repository's agents may reach (besides their model API and foreman).
    pub allow: Vec<HostRule>,
    /// What a repository may add to its own list.
    pub permit: Vec<HostRule>,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            mode: NetworkMode::Allowlist,
            allow: parse_rules(DEFAULT_ALLOW).expect("the default allowlist parses"),
            permit: Vec::new(),
        }
    }
}

/// A repository's `network:` in `.github/foreman.yml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkChoice {
    pub mode: Option<NetworkMode>,
    /// Replaces the server's list: entries from it narrow, entries from the operator's
    /// permitted hosts add.
    pub allow: Option<Vec<String>>,
}

/// A destination the egress proxy refused a session's agent, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `host:port` as the agent asked for it.
    pub host: String,
    pub attempts: u64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

/// The connections one turn may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Egress {
    Open,
    Allowlist(Allowlist),
}

/// The rules a turn's proxy enforces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowlist {
    pub rules: Vec<HostRule>,
}

impl Allowlist {
    /// The rule that lets `host:port` through, if any.
    pub fn permits(&self, host: &str, port: u16) -> Option<&HostRule> {
        self.rules.iter().find(|r| r.matches(host, port))
    }
}

impl NetworkPolicy {
    /// Whether a repository's choice stays within this policy; the error says which entry
    /// does not and what the operator allows.
    pub fn check(&self, choice: &NetworkChoice) -> Result<(), String> {
        if self.mode == NetworkMode::Allowlist && choice.mode == Some(NetworkMode::Open) {
            return Err(
                "network.mode: `open` is not a repository's to choose on this server \
                 (its operator runs agents behind an allowlist); list the hosts the agents \
                 need under network.allow"
                    .to_owned(),
            );
        }
        let Some(list) = &choice.allow else {
            return Ok(());
        };
        for entry in list {
            let rule = HostRule::parse(entry).map_err(|e| format!("network.allow: {e}"))?;
            if !self.lets_repositories_allow(&rule) {
                return Err(format!(
                    "network.allow: `{entry}` is not a host this server lets repositories \
                     allow (its operator permits {})",
                    self.describe_permitted()
                ));
            }
        }
        Ok(())
    }

    /// Whether a repository's list may hold `rule`: anything on an open server, else what the
    /// operator allows or permits.
    fn lets_repositories_allow(&self, rule: &HostRule) -> bool {
        self.mode == NetworkMode::Open
            || self
                .allow
                .iter()
                .chain(&self.permit)
                .any(|o| o.covers(rule))
    }

    fn describe_permitted(&self) -> String {
        let all: Vec<String> = self
            .allow
            .iter()
            .chain(&self.permit)
            .map(ToString::to_string)
            .collect();
        if all.is_empty() {
            "no hosts".to_owned()
        } else {
            all.join(", ")
        }
    }

    /// What a turn may reach: the repository's choice within this policy (a choice outside
    /// it, which [`NetworkPolicy::check`] refuses when the config is read, is narrowed to
    /// what the policy allows), plus `endpoints` — foreman's MCP endpoint and the model
    /// APIs — which an agent always needs.
    pub fn egress(&self, choice: &NetworkChoice, endpoints: &[HostRule]) -> Egress {
        let mode = match (self.mode, choice.mode) {
            (NetworkMode::Open, Some(NetworkMode::Allowlist)) => NetworkMode::Allowlist,
            (mode, _) => mode,
        };
        if mode == NetworkMode::Open {
            return Egress::Open;
        }
        let mut rules: Vec<HostRule> = endpoints.to_vec();
        match &choice.allow {
            None => rules.extend(self.allow.iter().cloned()),
            Some(list) => rules.extend(
                list.iter()
                    .filter_map(|e| HostRule::parse(e).ok())
                    .filter(|r| self.lets_repositories_allow(r)),
            ),
        }
        let mut unique: Vec<HostRule> = Vec::with_capacity(rules.len());
        for rule in rules {
            if !unique.contains(&rule) {
                unique.push(rule);
            }
        }
        Egress::Allowlist(Allowlist { rules: unique })
    }
}

/// `host` and its port from `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address
/// is a host without a port.
pub fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((text, None));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((text, None)),
    }
}

/// Whether `name` is a subdomain of `suffix` (never an address).
fn is_subdomain(name: &str, suffix: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_err()
        && name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> HostRule {
        HostRule::parse(text).unwrap()
    }

    #[test]
    fn rules_match_names_suffixes_addresses_and_ports() {
        let npm = rule("registry.npmjs.org");
        assert!(npm.matches("Registry.NPMJS.org.", 443));
        assert!(npm.matches("registry.npmjs.org", 80));
        assert!(
            !npm.matches("registry.npmjs.org", 22),
            "no port: web ports only"
        );
        assert!(!npm.matches("evil-registry.npmjs.org", 443));
        let suffix = rule("*.pythonhosted.org");
        assert!(suffix.matches("files.pythonhosted.org", 443));
        assert!(
            !suffix.matches("pythonhosted.org", 443),
            "the apex is not a subdomain"
        );
        assert!(!suffix.matches("evilpythonhosted.org", 443));
        let local = rule("127.0.0.1:8080");
        assert!(local.matches("127.0.0.1", 8080));
        assert!(!local.matches("127.0.0.1", 5432));
        assert!(
            !local.matches("localhost", 8080),
            "names are matched as written"
        );
        assert!(rule("[::1]:80").matches("::1", 80));
        assert!(rule("::1").matches("::1", 443));
        assert_eq!(rule("[::1]:80").to_string(), "[::1]:80");
        assert_eq!(rule("*.Example.com:8443").to_string(), "*.example.com:8443");
        for bad in [
            "*",
            "*.com",
            "a b",
            "host:port",
            "",
            "-x.com",
            "*x.com",
            "[::1",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
        assert!(!rule("*.example.com").matches("10.0.0.1", 443));
    }

    #[test]
    fn the_default_list_is_the_registries() {
        let policy = NetworkPolicy::default();
        assert_eq!(policy.mode, NetworkMode::Allowlist);
        let Egress::Allowlist(list) = policy.egress(&NetworkChoice::default(), &[]) else {
            panic!("allowlist by default");
        };
        assert!(list.permits("registry.npmjs.org", 443).is_some());
        assert!(list.permits("crates.io", 443).is_some());
        assert!(list.permits("example.com", 443).is_none());
    }

    #[test]
    fn a_repository_narrows_and_adds_only_what_the_operator_permits() {
        let policy = NetworkPolicy {
            mode: NetworkMode::Allowlist,
            allow: parse_rules("registry.npmjs.org,pypi.org").unwrap(),
            permit: parse_rules("*.internal.example,ghcr.io").unwrap(),
        };
        let mcp = HostRule::endpoint("127.0.0.1", 4000);
        let narrow = NetworkChoice {
            mode: None,
            allow: Some(vec!["pypi.org".into(), "pkgs.internal.example".into()]),
        };
        assert_eq!(policy.check(&narrow), Ok(()));
        let Egress::Allowlist(list) = policy.egress(&narrow, std::slice::from_ref(&mcp)) else {
            panic!()
        };
        assert!(list.permits("pypi.org", 443).is_some());
        assert!(list.permits("pkgs.internal.example", 443).is_some());
        assert!(
            list.permits("registry.npmjs.org", 443).is_none(),
            "narrowed"
        );
        assert!(
            list.permits("127.0.0.1", 4000).is_some(),
            "foreman's endpoint stays"
        );

        for widen in [
            "example.com",
            "*.npmjs.org",
            "pypi.org:8080",
            "127.0.0.1:5432",
        ] {
            let wider = NetworkChoice {
                mode: None,
                allow: Some(vec![widen.into()]),
            };
            let why = policy.check(&wider).unwrap_err();
            assert!(why.contains(widen) && why.contains("ghcr.io"), "{why}");
            let Egress::Allowlist(list) = policy.egress(&wider, &[]) else {
                panic!()
            };
            assert!(list.rules.is_empty(), "{widen} was let through: {list:?}");
        }
        let open = NetworkChoice {
            mode: Some(NetworkMode::Open),
            allow: None,
        };
        assert!(
            policy
                .check(&open)
                .unwrap_err()
                .contains("not a repository's")
        );
        assert!(matches!(policy.egress(&open, &[]), Egress::Allowlist(_)));
    }

    #[test]
    fn an_open_server_lets_a_repository_close_its_network() {
        let policy = NetworkPolicy {
            mode: NetworkMode::Open,
            ..NetworkPolicy::default()
        };
        assert_eq!(policy.egress(&NetworkChoice::default(), &[]), Egress::Open);
        let closed = NetworkChoice {
            mode: Some(NetworkMode::Allowlist),
            allow: Some(vec!["example.com".into()]),
        };
        assert_eq!(policy.check(&closed), Ok(()));
        let Egress::Allowlist(list) = policy.egress(&closed, &[]) else {
            panic!()
        };
        assert_eq!(list.rules, vec![rule("example.com")]);
    }
}
