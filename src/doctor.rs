//! `foreman doctor`: checks that a configuration can work before it is served — the
//! database, the GitHub App (a real `GET /app` with its JWT), the webhook secret, git, the
//! agent CLIs, the work root and each remote target over SSH — and prints one line per
//! check, with what to do about each one that fails. It changes nothing: no migration is
//! applied, no database file is created, nothing is written on a target.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Result;
use http::Method;
use secrecy::ExposeSecret;

use crate::config::{AgentProfile, ServeArgs, redact_url, sqlite_path};
use crate::github::app::GitHubApp;
use crate::github::rest::{self, RestError};
use crate::model::AgentKind;
use crate::model::SystemClock;
use crate::model::targets::{self, Verdict};
use crate::model::text::human_bytes;
use crate::setup::credentials::{self, Source};
use crate::setup::manifest;
use crate::store::{Backend, Store};
use crate::workspace::free_space;
use crate::workspace::remote::{Remote, RemoteError};

/// How long one probe (a connection, a `--version`, a call to GitHub) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, but something deserves a look; does not fail the run.
    Warn,
    /// foreman cannot work like this.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: Cow<'static, str>,
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do about it (for warnings and failures).
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(
        name: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            level: Level::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(
        name: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            level: Level::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The report line: status, check, what was found, and what to do.
    pub fn line(&self) -> String {
        let status = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let detail = self.detail.replace('\n', " ");
        match &self.fix {
            Some(fix) => format!("{status:<5}{:<15}{detail} -> {fix}", self.name),
            None => format!("{status:<5}{:<15}{detail}", self.name),
        }
    }
}

/// Runs every check, prints the report, and says whether every required check passed.
pub async fn run(args: &ServeArgs) -> bool {
    let checks = checks(args).await;
    for check in &checks {
        println!("{}", check.line());
    }
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    if failed == 0 {
        println!("all {} checks passed", checks.len());
    } else {
        println!("{failed} of {} checks failed", checks.len());
    }
    failed == 0
}

/// Every check, in report order.
pub async fn checks(args: &ServeArgs) -> Vec<Check> {
    let mut checks = vec![database(args).await];
    checks.extend(github(args).await);
    checks.push(git(&args.git.git).await);
    checks.extend(agents(args).await);
    checks.push(sandbox(args).await);
    checks.push(network(args).await);
    checks.push(work_root(args));
    checks.extend(targets(args).await);
    checks
}

/// Each remote target: reachable with its host key known, git, bubblewrap and the agent
/// CLIs there, and room in its work root. One ssh connection each, all at once.
async fn targets(args: &ServeArgs) -> Vec<Check> {
    const NAME: &str = "targets";
    let targets = match args.agents.targets() {
        Ok(targets) => targets,
        Err(e) => return vec![Check::fail(NAME, format!("{e:#}"), "fix the targets file")],
    };
    let programs: Vec<String> = [crate::model::Role::Manager, crate::model::Role::Worker]
        .into_iter()
        .filter_map(|role| args.agents.profile(role).ok())
        .map(|profile| profile.program)
        .fold(Vec::new(), |mut all, program| {
            if !all.contains(&program) {
                all.push(program);
            }
            all
        });
    let probes = targets.remote().map(|spec| {
        let programs = &programs;
        async move {
            let remote = Remote::new(spec.ssh.clone().expect("a remote target"));
            let root = spec.work_root.clone().unwrap_or_default();
            let script = targets::probe_script(&root, programs);
            let verdict = match remote.run(&script, PROBE_TIMEOUT).await {
                Ok(output) => targets::judge(
                    spec,
                    &targets::read_probe(&String::from_utf8_lossy(&output.stdout)),
                    args.gc.min_free_disk,
                ),
                Err(RemoteError::Ssh(what, fix)) => Verdict::Refused(what, fix),
                Err(RemoteError::Other(e)) => Verdict::Refused(
                    format!("{e:#}"),
                    "check that ssh (Debian: openssh-client) is installed".to_owned(),
                ),
            };
            let name = format!("target {}", spec.name);
            match verdict {
                Verdict::Ready(summary) => Check::ok(name, summary),
                Verdict::Wanting(summary, fix) => Check::warn(name, summary, fix),
                Verdict::Refused(what, fix) => Check::fail(name, what, fix),
            }
        }
    });
    futures_util::future::join_all(probes).await
}

/// Whether agents can be started in their sandbox, and what is missing when not.
async fn sandbox(args: &ServeArgs) -> Check {
    const NAME: &str = "sandbox";
    let sandbox =
        match crate::sandbox::Sandbox::from_args(&args.agents.sandbox, &args.protected_paths()) {
            Ok(sandbox) => sandbox,
            Err(e) => return Check::fail(NAME, format!("{e:#}"), "fix FOREMAN_SANDBOX_READ_ONLY"),
        };
    match (sandbox.confines(), sandbox.check().await) {
        (true, Ok(())) => Check::ok(
            NAME,
            "bubblewrap starts: agents see only their checkout, their state and the system",
        ),
        (true, Err(why)) => Check::fail(
            NAME,
            why,
            "install bubblewrap and allow user namespaces (sessions wait until then)",
        ),
        (false, Ok(())) => Check::warn(
            NAME,
            "FOREMAN_SANDBOX=none: agents run unconfined as foreman's user",
            "use FOREMAN_SANDBOX=bwrap unless every agent and repository is trusted",
        ),
        (false, Err(why)) => Check::fail(NAME, why, "set FOREMAN_SANDBOX=bwrap"),
    }
}

/// Whether agents' network is checked where they cannot reach: the policy parses, and under
/// an allowlist a sandbox starts behind the relay and its proxy.
async fn network(args: &ServeArgs) -> Check {
    const NAME: &str = "network";
    let network = &args.agents.network;
    let policy = match network.policy() {
        Ok(policy) => policy,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{e:#}"),
                "fix FOREMAN_NETWORK_ALLOW / FOREMAN_NETWORK_PERMIT",
            );
        }
    };
    if policy.mode == crate::model::network::NetworkMode::Open {
        return Check::warn(
            NAME,
            "FOREMAN_NETWORK=open: agents can send what they read to any host",
            "use FOREMAN_NETWORK=allowlist (the default) and list the hosts agents need",
        );
    }
    let Ok(sandbox) =
        crate::sandbox::Sandbox::from_args(&args.agents.sandbox, &args.protected_paths())
    else {
        return Check::fail(
            NAME,
            "the sandbox settings are invalid",
            "see the sandbox line",
        );
    };
    if !sandbox.confines() {
        return Check::warn(
            NAME,
            "the allowlist is not enforced: without the sandbox agents have foreman's network",
            "use FOREMAN_SANDBOX=bwrap",
        );
    }
    let relay = match network.relay() {
        Ok(relay) => relay,
        Err(e) => return Check::fail(NAME, format!("{e:#}"), "set FOREMAN_EGRESS_RELAY"),
    };
    match crate::egress::probe(&sandbox, &relay).await {
        Ok(()) => Check::ok(
            NAME,
            format!(
                "allowlist: agents reach their model API, foreman and {} listed host{} through \
                 foreman's proxy, nothing else",
                policy.allow.len(),
                if policy.allow.len() == 1 { "" } else { "s" }
            ),
        ),
        Err(why) => Check::fail(
            NAME,
            why,
            "agents cannot start behind the allowlist: see the sandbox line",
        ),
    }
}

async fn database(args: &ServeArgs) -> Check {
    const NAME: &str = "database";
    let url = args.database.url.expose_secret();
    let shown = redact_url(url);
    let backend = match Backend::of_url(url) {
        Ok(backend) => backend,
        Err(e) => return Check::fail(NAME, format!("{e:#}"), "fix DATABASE_URL"),
    };
    if backend == Backend::Sqlite
        && let Some(path) = sqlite_path(url)
        && !path.exists()
    {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return if dir.is_dir() {
            Check::warn(
                NAME,
                format!("{shown} does not exist yet"),
                "`foreman serve` or `foreman migrate` creates it",
            )
        } else {
            Check::fail(
                NAME,
                format!("{shown}: the directory {} does not exist", dir.display()),
                "create it, or point DATABASE_URL elsewhere",
            )
        };
    }
    let store = match tokio::time::timeout(PROBE_TIMEOUT, Store::connect(&args.database.url)).await
    {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            return Check::fail(
                NAME,
                format!("{e:#}"),
                "check DATABASE_URL and that the database server is running and reachable",
            );
        }
        Err(_) => {
            return Check::fail(
                NAME,
                format!("no answer from {shown} within {}s", PROBE_TIMEOUT.as_secs()),
                "check DATABASE_URL and the network to the database",
            );
        }
    };
    let status = store.migration_status().await;
    store.close().await;
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{shown}: {e:#}"),
                "check the database user's rights",
            );
        }
    };
    let kind = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    if !status.unknown.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{kind} {shown} has migrations {:?} this foreman does not know",
                status.unknown
            ),
            "run the newer foreman that applied them",
        );
    }
    if !status.changed.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{kind} {shown}: migrations {:?} changed after they were applied",
                status.changed
            ),
            "restore the original migration files",
        );
    }
    if status.applied < status.known {
        return Check::warn(
            NAME,
            format!(
                "{kind} {shown} reachable; {} of {} migrations applied",
                status.applied, status.known
            ),
            "`foreman migrate` (or `foreman serve`) applies the rest",
        );
    }
    Check::ok(
        NAME,
        format!(
            "{kind} {shown} reachable; all {} migrations applied",
            status.known
        ),
    )
}

/// The file of a `sqlite://PATH?…` URL.
async fn github(args: &ServeArgs) -> Vec<Check> {
    const APP: &str = "github app";
    const SECRET: &str = "webhook secret";
    let resolved = match credentials::resolve(&args.github, &args.setup) {
        Ok(resolved) => resolved,
        Err(e) => {
            return vec![
                Check::fail(
                    APP,
                    format!("{e:#}"),
                    "fix GITHUB_APP_ID / GITHUB_PRIVATE_KEY or the credentials file (FOREMAN_APP_FILE)",
                ),
                Check::warn(
                    SECRET,
                    "not checked: the App settings are unreadable",
                    "fix the App settings first",
                ),
            ];
        }
    };
    let secret = if resolved.webhook_secrets.is_empty() {
        Check::fail(
            SECRET,
            "none configured: GitHub's deliveries are refused (503)",
            "set GITHUB_WEBHOOK_SECRET to the App's webhook secret (the setup page stores it for you)",
        )
    } else {
        Check::ok(
            SECRET,
            format!("{} configured", resolved.webhook_secrets.len()),
        )
    };
    let Some(credentials) = &resolved.app else {
        return vec![
            Check::fail(
                APP,
                "no App id and private key",
                "register the App from the setup page of `foreman serve` (its link is in the log), \
                 or set GITHUB_APP_ID and GITHUB_PRIVATE_KEY",
            ),
            secret,
        ];
    };
    let from = match resolved.source {
        Source::File => format!("from {}", args.setup.app_file.display()),
        _ => "from the settings".to_owned(),
    };
    let api = &args.github.api_url;
    let answer = async {
        let app = GitHubApp::new(credentials, api, std::sync::Arc::new(SystemClock))?;
        let client = app.app_client()?;
        anyhow::Ok(rest::call(&client, Method::GET, "/app", None).await)
    };
    let app = match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
        Err(_) => {
            return vec![
                Check::fail(
                    APP,
                    format!("no answer from {api} within {}s", PROBE_TIMEOUT.as_secs()),
                    "check GITHUB_API_URL and the network",
                ),
                secret,
            ];
        }
        Ok(Err(e)) => {
            return vec![
                Check::fail(APP, format!("{e:#}"), "fix GITHUB_API_URL"),
                secret,
            ];
        }
        Ok(Ok(Err(e @ RestError::Transport(_)))) => {
            return vec![
                Check::fail(APP, e.to_string(), "check GITHUB_API_URL and the network"),
                secret,
            ];
        }
        Ok(Ok(Err(e))) => {
            return vec![
                Check::fail(
                    APP,
                    format!("GET /app as App {} ({from}): {e}", credentials.app_id),
                    "check that the App id and the private key belong to the same App, and that \
                     this machine's clock is right",
                ),
                secret,
            ];
        }
        Ok(Ok(Ok(app))) => app,
    };
    let slug = app["slug"].as_str().unwrap_or("?");
    let owner = app["owner"]["login"].as_str().unwrap_or("?");
    let detail = format!(
        "App {slug} (id {}) of {owner}, {from}; {} installations",
        credentials.app_id,
        app["installations_count"].as_u64().unwrap_or(0)
    );
    let lacking = lacking(&app);
    let check = if lacking.is_empty() {
        Check::ok(APP, detail)
    } else {
        let settings = app["html_url"]
            .as_str()
            .map(|u| format!(" ({u}, then accept the change on each installation)"))
            .unwrap_or_default();
        Check::warn(
            APP,
            format!("{detail}; lacks {}", lacking.join(", ")),
            format!("add them in the App's settings on GitHub{settings}"),
        )
    };
    vec![check, secret]
}

/// Permissions and events of the manifest that the App (as `GET /app` shows it) lacks.
fn lacking(app: &serde_json::Value) -> Vec<String> {
    let rank = |access: &str| match access {
        "write" | "admin" => 2,
        "read" => 1,
        _ => 0,
    };
    let mut lacking = Vec::new();
    for (permission, access) in manifest::permissions() {
        let has = app["permissions"][&permission].as_str().unwrap_or("none");
        if rank(has) < rank(&access) {
            lacking.push(format!("permission {permission}: {access}"));
        }
    }
    let events: Vec<&str> = app["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for event in manifest::subscribed_events() {
        if !events.contains(&event.as_str()) {
            lacking.push(format!("event {event}"));
        }
    }
    lacking
}

async fn git(program: &str) -> Check {
    const NAME: &str = "git";
    match version(program).await {
        Ok(version) => Check::ok(NAME, version),
        Err(e) => Check::fail(
            NAME,
            format!("`{program} --version`: {e}"),
            "install git (Debian: apt-get install git) or set FOREMAN_GIT to it",
        ),
    }
}

async fn agents(args: &ServeArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut seen: Vec<(String, AgentKind)> = Vec::new();
    let passthrough = args.agents.passthrough_env().unwrap_or_default();
    for (name, role) in [
        ("manager agent", crate::model::Role::Manager),
        ("worker agent", crate::model::Role::Worker),
    ] {
        let profile = match args.agents.profile(role) {
            Ok(profile) => profile,
            Err(e) => {
                checks.push(Check::fail(
                    name,
                    format!("{e:#}"),
                    "set the agent settings (see `foreman serve --help`)",
                ));
                continue;
            }
        };
        checks.push(agent(name, &profile).await);
        if !seen.contains(&(profile.program.clone(), profile.kind)) {
            seen.push((profile.program.clone(), profile.kind));
        }
    }
    let mut keys = Vec::new();
    for kind in [AgentKind::Claude, AgentKind::Codex] {
        if !seen.iter().any(|(_, k)| *k == kind) {
            continue;
        }
        let wanted: &[&str] = match kind {
            AgentKind::Claude => &["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"],
            _ => &["OPENAI_API_KEY", "FOREMAN_CODEX_BASE_URL"],
        };
        let given = wanted.iter().any(|var| {
            passthrough.iter().any(|p| p == var) && std::env::var(var).is_ok_and(|v| !v.is_empty())
        });
        if !given {
            keys.push(format!(
                "{} gets none of {} (set and listed in FOREMAN_AGENT_ENV)",
                kind.as_str(),
                wanted.join(", ")
            ));
        }
    }
    if seen.iter().any(|(_, k)| *k != AgentKind::Command) {
        checks.push(if keys.is_empty() {
            Check::ok("agent keys", "every agent CLI gets an API key")
        } else {
            Check::warn(
                "agent keys",
                keys.join("; "),
                "set the key, or log the CLI in for foreman's user",
            )
        });
    }
    checks
}

async fn agent(name: &'static str, profile: &AgentProfile) -> Check {
    let program = &profile.program;
    let Some(found) = find_program(program) else {
        let fix = match profile.kind {
            AgentKind::Claude => "npm install -g @anthropic-ai/claude-code, or set the command",
            AgentKind::Codex => "npm install -g @openai/codex, or set the command",
            AgentKind::Command => {
                "install it, or fix FOREMAN_MANAGER_COMMAND / FOREMAN_WORKER_COMMAND"
            }
        };
        return Check::fail(
            name,
            format!(
                "{} agent `{program}` is not on PATH or not executable",
                profile.kind.as_str()
            ),
            fix,
        );
    };
    let shown = found.display();
    match version(&found.to_string_lossy()).await {
        Ok(version) => Check::ok(
            name,
            format!("{} `{shown}`: {version}", profile.kind.as_str()),
        ),
        Err(e) if profile.kind == AgentKind::Command => Check::warn(
            name,
            format!("command `{shown}` is there, but `--version` failed: {e}"),
            "fine if the program takes no --version; otherwise check it runs",
        ),
        Err(e) => Check::fail(
            name,
            format!("{} `{shown}` does not run: {e}", profile.kind.as_str()),
            "reinstall the CLI (it needs Node.js 18 or newer)",
        ),
    }
}

/// `program` as a path, or found on PATH; only if it is an executable file.
fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// The first line `program --version` prints, run with a small environment like agents get.
async fn version(program: &str) -> Result<String> {
    let mut command = tokio::process::Command::new(program);
    command
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in ["PATH", "HOME", "LANG"] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    let output = tokio::time::timeout(PROBE_TIMEOUT, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {}s", PROBE_TIMEOUT.as_secs()))??;
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    if !output.status.success() {
        anyhow::bail!(
            "{}{}",
            output.status,
            text(&output.stderr)
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        );
    }
    text(&output.stdout)
        .or_else(|| text(&output.stderr))
        .ok_or_else(|| anyhow::anyhow!("printed nothing"))
}

fn work_root(args: &ServeArgs) -> Check {
    const NAME: &str = "work root";
    let root = std::path::absolute(&args.agents.work_root)
        .unwrap_or_else(|_| args.agents.work_root.clone());
    let shown = root.display();
    if root.exists() && !root.is_dir() {
        return Check::fail(
            NAME,
            format!("{shown} is not a directory"),
            "point FOREMAN_WORK_ROOT at a directory",
        );
    }
    // The directory, or the nearest one that exists (foreman creates the rest).
    let Some(existing) = root.ancestors().find(|p| p.is_dir()) else {
        return Check::fail(
            NAME,
            format!("{shown}: no parent exists"),
            "fix FOREMAN_WORK_ROOT",
        );
    };
    let probe = existing.join(format!(".foreman-doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"") {
        return Check::fail(
            NAME,
            format!("cannot write in {}: {e}", existing.display()),
            "give foreman's user write access, or point FOREMAN_WORK_ROOT elsewhere",
        );
    }
    let _ = std::fs::remove_file(&probe);
    let created = if existing == root {
        String::new()
    } else {
        " (created on first use)".to_owned()
    };
    let minimum = args.gc.min_free_disk;
    match free_space(&root) {
        Ok(free) if minimum > 0 && free < minimum => Check::fail(
            NAME,
            format!(
                "{shown}{created}: {} free, under FOREMAN_MIN_FREE_DISK ({}); new checkouts wait",
                human_bytes(free),
                human_bytes(minimum)
            ),
            "free space there (`foreman serve` also reclaims finished checkouts) or lower FOREMAN_MIN_FREE_DISK",
        ),
        Ok(free) => Check::ok(
            NAME,
            format!("{shown}{created}: writable, {} free", human_bytes(free)),
        ),
        Err(e) => Check::warn(
            NAME,
            format!("{shown}{created}: writable; free space unknown ({e})"),
            "check the file system",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite:///data/foreman.db?mode=rwc"),
            Some(PathBuf::from("/data/foreman.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://foreman.db"),
            Some(PathBuf::from("foreman.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn lines_say_what_to_do() {
        let line = Check::fail("git", "not found", "install git").line();
        assert_eq!(line, "FAIL git            not found -> install git");
        assert_eq!(Check::ok("git", "2.39").line(), "ok   git            2.39");
    }

    #[test]
    fn missing_permissions_and_events_are_named() {
        let app = serde_json::json!({
            "permissions": {"contents": "read", "issues": "write"},
            "events": ["issues"]
        });
        let lacking = lacking(&app);
        assert!(lacking.contains(&"permission contents: write".to_owned()));
        assert!(!lacking.iter().any(|l| l.contains("issues:")));
        assert!(lacking.contains(&"event pull_request".to_owned()));
        assert!(!lacking.contains(&"event issues".to_owned()));
    }
}
