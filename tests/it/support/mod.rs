//! The shared test harness: temporary databases on both backends, a real foreman server
//! started in-process, signed webhook posting, fixtures, and the fake GitHub.
#![allow(dead_code)]

pub mod fake_github;
pub mod fake_model;
pub mod ssh_host;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use foreman::config::{AgentArgs, DatabaseArgs, GitArgs, GitHubArgs, ServeArgs};
use foreman::model::AgentKind;
use foreman::model::SystemClock;
use foreman::service::Running;
use foreman::store::Store;
use secrecy::{ExposeSecret, SecretString};

/// Where PostgreSQL tests connect (an admin connection; each test makes its own schema).
/// `skip` disables the PostgreSQL variants explicitly.
pub const POSTGRES_ENV: &str = "FOREMAN_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long `eventually` waits before failing a test.
pub const EVENTUALLY: Duration = Duration::from_secs(30);
/// The webhook secret test servers use.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// Runs a test body twice: once on SQLite, once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::support::with_db($crate::support::Kind::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::support::with_db($crate::support::Kind::Postgres, super::$name).await
            }
        }
    };
}

/// Which backend a test database is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test: a SQLite file in a temporary directory, or a
/// PostgreSQL schema of its own.
#[derive(Clone)]
pub struct TestDb {
    pub kind: Kind,
    pub url: SecretString,
    dir: Arc<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

impl TestDb {
    /// A temporary directory that lives as long as the database (for files a test needs).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A store on this database, migrated.
    pub async fn store(&self) -> Store {
        foreman::service::open_store(&self.url)
            .await
            .expect("open test store")
    }

    /// Runs raw SQL against the test database (to break it on purpose).
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(self.url.expose_secret())
            .await
            .expect("connect for raw SQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("raw SQL failed: {e}\n{sql}"));
    }

    /// Makes everything the database remembers `d` older — every time it holds (the
    /// `…_at` columns: when things began, were last heard of, expire) — as if foreman had
    /// been stopped for `d` and started again now, with real clocks everywhere else.
    pub async fn age(&self, d: std::time::Duration) {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(self.url.expose_secret())
            .await
            .expect("connect for raw SQL");
        let columns = match self.kind {
            Kind::Sqlite => {
                "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND p.name LIKE '%\\_at' ESCAPE '\\'
                   AND p.type = 'BIGINT'"
            }
            Kind::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND column_name LIKE '%\\_at'
                   AND data_type = 'bigint'"
            }
        };
        let rows: Vec<(String, String)> = sqlx::query_as(columns)
            .fetch_all(&mut conn)
            .await
            .expect("list time columns");
        assert!(rows.len() > 10, "time columns found: {rows:?}");
        let ms = d.as_millis() as i64;
        for (table, column) in rows {
            let sql =
                format!("UPDATE {table} SET {column} = {column} - {ms} WHERE {column} IS NOT NULL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("age a time column");
        }
    }

    async fn create(kind: Kind) -> Option<TestDb> {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        match kind {
            Kind::Sqlite => {
                let path = dir.path().join("foreman.db");
                Some(TestDb {
                    kind,
                    url: SecretString::from(format!("sqlite://{}", path.display())),
                    dir,
                    schema: None,
                })
            }
            Kind::Postgres => {
                let admin = postgres_admin()?;
                let schema = format!("t_{}_{}", std::process::id(), random_suffix());
                admin_execute(&admin, &format!("CREATE SCHEMA {schema}")).await;
                let sep = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
                Some(TestDb {
                    kind,
                    url: SecretString::from(url),
                    dir,
                    schema: Some((admin, schema)),
                })
            }
        }
    }

    async fn drop_schema(&self) {
        if let Some((admin, schema)) = &self.schema {
            admin_execute(admin, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        }
    }
}

/// The PostgreSQL server the PostgreSQL variants use, or `None` to skip them. Named by
/// `FOREMAN_TEST_POSTGRES`, it is required (CI names one); unnamed, the default local server
/// is used when one answers, and otherwise the variants are skipped — said once per run on
/// the terminal, past the test harness's capture.
fn postgres_admin() -> Option<String> {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let say = |what: String| {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "\n*** {what} ***\n");
            };
            match std::env::var(POSTGRES_ENV) {
                Ok(admin) if admin == "skip" => {
                    say(format!(
                        "PostgreSQL variants SKIPPED: {POSTGRES_ENV}=skip; only SQLite is tested"
                    ));
                    None
                }
                Ok(admin) => Some(admin),
                Err(_) => {
                    let local = "127.0.0.1:5432".parse().expect("address");
                    let answers =
                        std::net::TcpStream::connect_timeout(&local, Duration::from_secs(1))
                            .is_ok();
                    if answers {
                        Some(DEFAULT_POSTGRES.to_owned())
                    } else {
                        say(format!(
                            "PostgreSQL variants SKIPPED: no server at 127.0.0.1:5432 and \
                             {POSTGRES_ENV} is not set (CI sets it and runs them)"
                        ));
                        None
                    }
                }
            }
        })
        .clone()
}

async fn admin_execute(admin: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}). Start it, point {POSTGRES_ENV} \
                 at a server, or set {POSTGRES_ENV}=skip to run only the SQLite variants."
            )
        });
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn random_suffix() -> String {
    use rand::RngExt;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// Runs `test` against a fresh database of `kind` and removes the database afterwards, even
/// when the test panics.
pub async fn with_db<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_test_writer()
        .try_init();
    let Some(db) = TestDb::create(kind).await else {
        return;
    };
    let outcome = tokio::spawn(test(db.clone())).await;
    db.drop_schema().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Server options for tests: a random port, quick retries, a short tick.
pub fn serve_args(db: &TestDb) -> ServeArgs {
    ServeArgs {
        database: DatabaseArgs {
            url: db.url.clone(),
        },
        github: GitHubArgs {
            app_id: None,
            private_key: None,
            private_key_path: None,
            webhook_secret: Some(SecretString::from(WEBHOOK_SECRET.to_owned())),
            api_url: "http://127.0.0.1:9".to_owned(),
            web_url: "http://127.0.0.1:9".to_owned(),
            client_id: None,
            client_secret: None,
            comment_spacing: Duration::ZERO,
            comment_retry_base: Duration::from_millis(50),
        },
        agents: scripted_agents(db),
        gc: foreman::config::GcArgs::default(),
        supervisor: foreman::config::SupervisorArgs::default(),
        reconcile: foreman::config::ReconcileArgs::default(),
        setup: foreman::config::SetupArgs {
            public_url: None,
            app_file: db.dir().join("github-app.json"),
        },
        git: GitArgs {
            git: "git".to_owned(),
            git_url: format!("file://{}", origins(db).display()),
            // The App's bot account, as foreman asks GitHub for it.
            author_name: None,
            author_email: None,
        },
        listen: Some("127.0.0.1:0".parse().unwrap()),
        port: None,
        tick_interval: Duration::from_millis(100),
        tick_lease: Duration::from_secs(2),
        inbox_concurrency: 4,
        inbox_max_attempts: 3,
        inbox_retry_base: Duration::from_millis(20),
        inbox_claim_ttl: Duration::from_secs(2),
        instance_id: Some(format!("test-{}", random_suffix())),
        metrics_token: None,
        webhook_buffer_mib: 256,
        webhook_read_timeout: Duration::from_secs(10),
    }
}

/// The directory of the test's git origins (`<owner>/<name>.git`), with `octo/widgets`
/// made on first use.
pub fn origins(db: &TestDb) -> PathBuf {
    let dir = db.dir().join("origins");
    if !dir.join("octo/widgets.git").exists() {
        make_origin(
            &dir,
            "octo/widgets",
            &[
                ("README.md", "# Widgets\n"),
                ("src/lib.rs", "pub fn widget() {}\n"),
            ],
        );
    }
    dir
}

/// Runs git synchronously for test setup, panicking with its error.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Makes a bare origin repository under `origins` with one commit on `main`.
pub fn make_origin(origins: &std::path::Path, repository: &str, files: &[(&str, &str)]) -> PathBuf {
    let bare = origins.join(format!("{repository}.git"));
    std::fs::create_dir_all(&bare).unwrap();
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--quiet", "--initial-branch=main"]);
    for (path, content) in files {
        let file = work.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    git(work.path(), &["add", "--all"]);
    git(work.path(), &["commit", "--quiet", "-m", "initial"]);
    git(
        work.path(),
        &["push", "--quiet", bare.to_str().unwrap(), "main"],
    );
    bare
}

/// The path of the plan the scripted agents of a test database's server follow. It is in a
/// directory of its own, which their sandbox shows them (the database's directory is never
/// shown).
pub fn plan_path(db: &TestDb) -> PathBuf {
    let dir = db.dir().join("agent");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("plan.json")
}

/// Set to `bwrap` to require the agent sandbox (CI does: a machine where it cannot start
/// fails the run), or to `none` to run the agents unconfined; unset, the tests use the sandbox
/// when it starts here and say loudly when it does not.
pub const SANDBOX_ENV: &str = "FOREMAN_TEST_SANDBOX";

/// Whether the tests' agents run in the bubblewrap sandbox on this machine.
pub fn sandboxed() -> bool {
    static SANDBOXED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SANDBOXED.get_or_init(|| {
        let wanted = std::env::var(SANDBOX_ENV).unwrap_or_default();
        if wanted == "none" {
            eprintln!("{SANDBOX_ENV}=none: agents run without a sandbox; sandbox tests skip");
            return false;
        }
        let probe = std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(foreman::sandbox::Sandbox::bwrap().check())
        })
        .join()
        .unwrap();
        match probe {
            Ok(()) => true,
            Err(why) if wanted == "bwrap" => {
                panic!("{SANDBOX_ENV}=bwrap but the sandbox cannot start: {why}")
            }
            Err(why) => {
                eprintln!(
                    "WARNING: the agent sandbox cannot start here ({why}); agents run \
                     without it and the sandbox tests are SKIPPED"
                );
                false
            }
        }
    })
}

/// The sandbox settings for the tests' agents: bubblewrap where it starts (showing them
/// `read_only` too), else none (root allowed: test machines often run as root).
pub fn sandbox_args(read_only: &[&std::path::Path]) -> foreman::config::SandboxArgs {
    if sandboxed() {
        foreman::config::SandboxArgs {
            read_only: read_only
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            ..foreman::config::SandboxArgs::default()
        }
    } else {
        foreman::config::SandboxArgs {
            mode: foreman::config::SandboxMode::None,
            allow_root_agents: true,
            ..foreman::config::SandboxArgs::default()
        }
    }
}

/// A TCP server on `bind` (an address with port 0) that accepts, counts and drops every
/// connection: a place nothing should reach.
pub async fn counting_server(
    bind: &str,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, hits)
}

/// An address of this machine other than loopback, if it has one: under the network
/// allowlist a sandbox reaches it only through foreman's proxy.
pub fn outside_address() -> Option<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_owned)
}

/// The sandbox for tests that run git in checkouts directly.
pub fn test_sandbox() -> Arc<foreman::sandbox::Sandbox> {
    Arc::new(foreman::sandbox::Sandbox::from_args(&sandbox_args(&[]), &[]).unwrap())
}

/// The sandbox settings as `foreman serve` takes them from its environment.
pub fn sandbox_env(args: &foreman::config::SandboxArgs) -> Vec<(&'static str, String)> {
    vec![
        ("FOREMAN_SANDBOX", args.mode.as_str().to_owned()),
        ("FOREMAN_SANDBOX_READ_ONLY", args.read_only.clone()),
        (
            "FOREMAN_ALLOW_ROOT_AGENTS",
            args.allow_root_agents.to_string(),
        ),
    ]
}

/// The scripted agent (`examples/scripted_agent.rs`), which `cargo test` builds beside the
/// test binaries.
pub fn scripted_agent() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let debug = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary lives in target/<profile>/deps");
        let agent = debug.join("examples/scripted_agent");
        assert!(
            agent.exists(),
            "{} is missing: run the tests with `cargo test`, which builds the examples",
            agent.display()
        );
        agent.display().to_string()
    })
}

/// The directory of the scripted agents' code.
pub fn agents_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents"))
}

/// Writes the plan the scripted agents follow (see `examples/scripted_agent.rs`).
pub fn write_plan(db: &TestDb, plan: &serde_json::Value) {
    std::fs::write(plan_path(db), serde_json::to_vec_pretty(plan).unwrap()).unwrap();
}

/// Agents for tests: every role runs the scripted agent, a real process speaking MCP.
pub fn scripted_agents(db: &TestDb) -> AgentArgs {
    if !plan_path(db).exists() {
        write_plan(db, &serde_json::json!({}));
    }
    let plan = plan_path(db);
    let args = plan.display().to_string();
    AgentArgs {
        work_root: db.dir().join("work"),
        mcp_url: None,
        manager_agent: AgentKind::Command,
        manager_command: Some(scripted_agent().to_owned()),
        manager_model: None,
        manager_args: args.clone(),
        worker_agent: AgentKind::Command,
        worker_command: Some(scripted_agent().to_owned()),
        worker_model: None,
        worker_args: args,
        agent_env: String::new(),
        max_sessions: 4,
        targets: None,
        max_workers: 3,
        turn_timeout: Duration::from_secs(60),
        budget_sessions: 20,
        budget_turns: 200,
        budget_time: Duration::from_secs(24 * 60 * 60),
        budget_cost: None,
        max_budget_sessions: None,
        max_budget_turns: None,
        max_budget_time: None,
        max_budget_cost: None,
        max_comments_per_hour: 10,
        max_questions_per_hour: 5,
        repo_models: "*".to_owned(),
        sandbox: sandbox_args(&[&agents_dir(), plan.parent().unwrap()]),
        network: foreman::config::NetworkArgs {
            egress_relay: Some(env!("CARGO_BIN_EXE_foreman").into()),
            ..foreman::config::NetworkArgs::default()
        },
    }
}

/// A foreman running in this process, with a client that posts signed webhooks to it.
pub struct TestServer {
    pub running: Running,
    pub client: reqwest::Client,
    /// What it was started with (to start it again).
    pub args: ServeArgs,
}

impl TestServer {
    /// Waits for the inbox to hold nothing pending: every delivery sent so far is handled
    /// (or dead), its effects committed.
    pub async fn drain(&self) {
        let store = self.store();
        eventually("the inbox to drain", || async {
            (store.inbox_depth().await.unwrap() == 0).then_some(())
        })
        .await;
    }

    /// Rings the tick loop and waits for a complete pass that began after the ring: whatever
    /// periodic work was due then (scheduling, the outbox, status comments) has been done.
    pub async fn tick(&self) {
        let engine = &self.running.engine;
        let mut passes = engine.periodic.tick_passes.subscribe();
        let before = *passes.borrow_and_update();
        engine.tick_bell.notify_one();
        // A pass under way when the bell rang may have missed what came before it: the next
        // one, which the bell starts, has not.
        let waited = tokio::time::timeout(EVENTUALLY, passes.wait_for(|n| *n >= before + 2));
        assert!(
            matches!(waited.await, Ok(Ok(_))),
            "the tick loop did not complete a pass"
        );
    }

    /// The inbox drained and two tick passes after it: what the deliveries set off is done,
    /// and what that in turn made due. A test asserts after it that nothing more happens.
    pub async fn quiesce(&self) {
        self.drain().await;
        self.tick().await;
        self.tick().await;
    }

    pub async fn start(args: &ServeArgs) -> TestServer {
        let running = foreman::service::start(args, Arc::new(SystemClock))
            .await
            .expect("start foreman");
        TestServer {
            running,
            client: reqwest::Client::new(),
            args: args.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    pub fn store(&self) -> &Store {
        &self.running.engine.store
    }

    /// Posts a body signed with the test secret.
    pub async fn post_webhook(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> reqwest::Response {
        post_webhook(
            &self.client,
            &self.url("/webhooks/github"),
            event,
            delivery,
            body,
        )
        .await
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Posts a webhook signed with [`WEBHOOK_SECRET`] to `url`.
pub async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> reqwest::Response {
    let signature =
        foreman::github::signature::sign(&SecretString::from(WEBHOOK_SECRET.to_owned()), body);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body.to_vec())
        .send()
        .await
        .expect("post webhook")
}

/// A recorded GitHub payload from `tests/fixtures/webhooks/<name>.json`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Polls `check` until it returns `Some`, failing the test after [`EVENTUALLY`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(EVENTUALLY, what, check).await
}

/// [`eventually`], failing the test after `within` (for work that takes many more processes
/// than most, such as turns on a target over SSH, on a loaded machine).
pub async fn eventually_within<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `foreman serve` child process (the real binary), for tests that kill it.
pub struct Process {
    pub child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    /// Everything it logged, collected in the background.
    pub log: Arc<std::sync::Mutex<String>>,
}

impl Process {
    /// Starts `foreman serve` on `db` with only the environment given (plus PATH), and waits
    /// until it listens.
    pub async fn serve(db: &TestDb, extra_env: &[(&str, &str)]) -> Process {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_foreman"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db.url.expose_secret())
            .env("FOREMAN_LISTEN", "127.0.0.1:0")
            .env("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("FOREMAN_LOG", "info")
            .current_dir(db.dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn foreman");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let addr = loop {
            let line = tokio::time::timeout(EVENTUALLY, lines.next_line())
                .await
                .expect("foreman to start listening")
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("foreman exited before listening:\n{}", log.lock().unwrap())
                });
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(at) = line.split("listening on http://").nth(1) {
                break at.trim().parse().expect("listen address");
            }
        };
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Process { child, addr, log }
    }

    /// Starts `foreman serve` whose agents are the scripted ones (see [`scripted_agents`]),
    /// with the test's git origins; `extra` settings are added last, so they win.
    pub async fn serve_scripted(db: &TestDb, extra: &[(&str, &str)]) -> Process {
        let agents = scripted_agents(db);
        let work_root = agents.work_root.display().to_string();
        let git_url = format!("file://{}", origins(db).display());
        let sandbox = sandbox_env(&agents.sandbox);
        let mut env = vec![
            ("FOREMAN_GIT_URL", git_url.as_str()),
            ("FOREMAN_TICK_INTERVAL", "200ms"),
            ("FOREMAN_WORK_ROOT", work_root.as_str()),
            ("FOREMAN_MANAGER_AGENT", "command"),
            ("FOREMAN_MANAGER_COMMAND", scripted_agent()),
            ("FOREMAN_MANAGER_ARGS", agents.manager_args.as_str()),
            ("FOREMAN_WORKER_AGENT", "command"),
            ("FOREMAN_WORKER_COMMAND", scripted_agent()),
            ("FOREMAN_WORKER_ARGS", agents.worker_args.as_str()),
        ];
        env.extend(sandbox.iter().map(|(k, v)| (*k, v.as_str())));
        env.extend_from_slice(extra);
        Process::serve(db, &env).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill foreman");
    }

    /// SIGTERM, then wait for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) with a pid we own; no memory is involved.
        unsafe { libc_kill(pid, SIGTERM) };
        tokio::time::timeout(EVENTUALLY, self.child.wait())
            .await
            .expect("foreman to exit after SIGTERM")
            .unwrap()
    }
}

const SIGTERM: i32 = 15;
unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Points a server's GitHub App settings at the fake GitHub.
pub fn use_fake_github(args: &mut ServeArgs, fake: &fake_github::FakeGitHub) {
    args.github.app_id = Some(fake.app_id() as u64);
    args.github.private_key = Some(SecretString::from(fake.private_key_pem()));
    args.github.api_url = fake.url();
    args.github.web_url = fake.url();
}

/// An engine on the test database, with the scripted agents' settings: it starts objectives
/// that a `foreman serve` process ([`Process::serve_scripted`]) then runs.
pub async fn engine_on(db: &TestDb) -> (Store, foreman::engine::Engine) {
    let store = db.store().await;
    let engine = foreman::engine::Engine::configured(
        store.clone(),
        Arc::new(foreman::model::SystemClock),
        foreman::engine::AgentSettings::from_args(&scripted_agents(db), &[]).unwrap(),
        "test".into(),
        foreman::config::Posting::default(),
    );
    (store, engine)
}

/// The live processes (zombies not counted) whose working directory is `dir` — how tests find
/// what an agent started, whichever pid namespace its sandbox gave it.
pub fn processes_in(dir: &std::path::Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| !stat.contains(") Z "))
        })
        .collect()
}

/// The checkout a session works in.
pub fn checkout_of(db: &TestDb, session: foreman::model::SessionId) -> PathBuf {
    db.dir().join("work/workspaces").join(format!("s{session}"))
}

/// Every file under `dir` whose contents include `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && std::fs::read(&path)
                .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
        {
            found.push(path);
        }
    }
    found
}
