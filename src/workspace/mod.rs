//! Git checkouts for sessions, from a mirror cache.
//!
//! Per repository there is one bare **mirror** (the object store) and, per base branch, one
//! **seed**: a checkout of that branch kept up to date. A new workspace is a copy of the seed
//! — its working tree and its small `.git` whose objects are borrowed from the mirror
//! (`git clone --shared`) — put on its own branch. Copying an already checked-out tree is far
//! cheaper than checking one out (which rebuilds every file from compressed deltas), so the
//! Nth checkout of a repository costs a fetch of its base branch and a file copy (measured
//! against worktrees and `clone --shared` plus checkout in `benches/checkout.rs`).
//!
//! Every workspace starts from a fresh fetch of its base branch. Credentials reach git only
//! through [`git::Git`]'s environment; the workspace's `origin` is the plain upstream URL, so
//! agents working in it hold no credential at all.
//!
//! Once an agent has worked in a checkout, foreman trusts nothing in it: git runs there only
//! in the agent sandbox, offline and with the checkout's dangerous settings overridden
//! ([`git::Place::Checkout`]). What is published is taken out as a bundle of the new commits
//! ([`Workspaces::take`]), checked (`fsckObjects`) into the repository's mirror, and pushed
//! from the mirror: the checkout's `insteadOf`, hooks and `sshCommand` never see the token.

pub mod copy;
pub mod gc;
pub mod git;
pub mod remote;
pub mod replay;
mod space;
pub mod target;

pub use space::free_space;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use secrecy::SecretString;

use crate::model::text::shell_quote as quote;
use crate::sandbox::{Jail, Sandbox};
use crate::workspace::remote::Site;
use git::{Call, Git, Place};

/// The largest bundle of new commits taken out of a checkout (GitHub refuses pushes over
/// 2 GiB).
pub const MAX_TAKE_BYTES: u64 = 2 << 30;

/// The target name of the foreman host itself.
pub const LOCAL_TARGET: &str = "local";

/// Who commits are made as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitAuthor {
    pub name: String,
    pub email: String,
}

impl CommitAuthor {
    /// The App's bot account: GitHub links a commit to it (and shows the App's avatar) only
    /// by this address, which carries the bot user's id.
    pub fn bot(slug: &str, bot_user_id: u64) -> CommitAuthor {
        CommitAuthor {
            name: format!("{slug}[bot]"),
            email: format!("{bot_user_id}+{slug}[bot]@users.noreply.github.com"),
        }
    }

    /// Until the App's bot account is known (no App yet, or GitHub could not say).
    pub fn fallback() -> CommitAuthor {
        CommitAuthor {
            name: "foreman[bot]".to_owned(),
            email: "foreman[bot]@users.noreply.github.com".to_owned(),
        }
    }
}

/// How workspaces are made.
#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    pub git: Git,
    /// Base of clone URLs: `https://github.com`, a GitHub Enterprise host, or `file:///…`.
    pub git_url: String,
    /// Identity commits are made as, when the operator chose one; otherwise the App's bot
    /// account's (see [`Workspaces::set_author`]).
    pub author: Option<CommitAuthor>,
    /// Directory holding mirrors and checkouts.
    pub root: PathBuf,
    /// Where git runs in checkouts agents wrote to.
    pub sandbox: Arc<Sandbox>,
}

impl WorkspaceSettings {
    /// The settings of the command line.
    pub fn from_args(
        args: &crate::config::GitArgs,
        root: PathBuf,
        sandbox: Arc<Sandbox>,
    ) -> WorkspaceSettings {
        WorkspaceSettings {
            git: Git {
                program: crate::sandbox::resolve_program(&args.git),
            },
            git_url: args.git_url.clone(),
            author: match (&args.author_name, &args.author_email) {
                (None, None) => None,
                (name, email) => Some(CommitAuthor {
                    name: name
                        .clone()
                        .unwrap_or_else(|| CommitAuthor::fallback().name),
                    email: email
                        .clone()
                        .unwrap_or_else(|| CommitAuthor::fallback().email),
                }),
            },
            root,
            sandbox,
        }
    }

    /// GitHub.com with the `git` on the search path.
    pub fn github(root: PathBuf, sandbox: Arc<Sandbox>) -> WorkspaceSettings {
        WorkspaceSettings {
            git: Git {
                program: crate::sandbox::resolve_program("git"),
            },
            git_url: "https://github.com".to_owned(),
            author: None,
            root,
            sandbox,
        }
    }
}

/// What to prepare.
#[derive(Debug, Clone)]
pub struct Prepare<'a> {
    /// `owner/name`.
    pub repository: &'a str,
    /// The branch to start from; the repository's default branch when `None`.
    pub base: Option<&'a str>,
    /// Where the checkout goes (must not exist yet).
    pub path: &'a Path,
    /// The branch to create for the work; `None` leaves a read-only, detached checkout.
    pub branch: Option<&'a str>,
    /// A branch upstream the work continues (a pull request's head): the checkout starts at
    /// its tip instead of the base's, and `origin/<base>` is the base's tip.
    pub start_at: Option<&'a str>,
    pub auth: Option<&'a SecretString>,
}

/// A checkout agents have worked in: its path, and the repository whose mirror lends it
/// objects.
#[derive(Debug, Clone, Copy)]
pub struct Checkout<'a> {
    pub path: &'a Path,
    pub repository: &'a str,
    /// The remote target it is on (`None`: this machine).
    pub site: Option<&'a Site>,
}

/// What was prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub base_ref: String,
    pub base_sha: String,
}

/// What [`Workspaces::fetch_base`] found upstream.
struct Fetched {
    /// The upstream's URL, without credentials.
    url: String,
    base: String,
    /// The base's tip.
    sha: String,
    /// The tip of the branch the work continues, if any.
    start_sha: Option<String>,
}

/// The mirror cache and the checkouts made from it.
pub struct Workspaces {
    pub settings: WorkspaceSettings,
    /// One preparation at a time per mirror (fetches and seed updates must not interleave).
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Who commits are made as now.
    author: std::sync::RwLock<CommitAuthor>,
}

impl Workspaces {
    pub fn new(settings: WorkspaceSettings) -> Workspaces {
        Workspaces {
            author: std::sync::RwLock::new(
                settings
                    .author
                    .clone()
                    .unwrap_or_else(CommitAuthor::fallback),
            ),
            settings,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The repository's URL, without credentials.
    pub fn upstream_url(&self, repository: &str) -> String {
        format!(
            "{}/{repository}.git",
            self.settings.git_url.trim_end_matches('/')
        )
    }

    /// The mirror's object store, which checkouts of the repository borrow (read-only).
    pub fn mirror_objects(&self, repository: &str) -> PathBuf {
        self.mirror_path(repository).join("objects")
    }

    fn mirror_path(&self, repository: &str) -> PathBuf {
        self.settings
            .root
            .join("mirrors")
            .join(format!("{repository}.git"))
    }

    fn seed_path(&self, repository: &str, base: &str) -> PathBuf {
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.settings
            .root
            .join("mirrors")
            .join(format!("{repository}.seeds"))
            .join(base)
    }

    fn lock(&self, mirror: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(mirror.to_owned()).or_default().clone()
    }

    /// Who commits are made as now.
    pub fn author(&self) -> CommitAuthor {
        self.author
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the operator chose the commit identity (then [`Workspaces::set_author`] is
    /// never needed).
    pub fn author_configured(&self) -> bool {
        self.settings.author.is_some()
    }

    /// Commits are made as `author` from now on (the App's bot account, once known).
    pub fn set_author(&self, author: CommitAuthor) {
        *self.author.write().unwrap_or_else(|e| e.into_inner()) = author;
    }

    /// Prepares a checkout: fetches the base branch fresh, brings the seed to it, copies the
    /// seed, and puts the copy on its own branch. On failure nothing is left at `path`.
    pub async fn prepare(&self, p: &Prepare<'_>) -> Result<Prepared> {
        if !valid_repository(p.repository) {
            bail!("`{}` is not a repository name (owner/name)", p.repository);
        }
        let result = self.try_prepare(p).await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(p.path).await;
        }
        result
    }

    async fn try_prepare(&self, p: &Prepare<'_>) -> Result<Prepared> {
        let git = &self.settings.git;
        let mirror = self.mirror_path(p.repository);
        let lock = self.lock(&mirror);
        let _guard = lock.lock().await;
        let Fetched {
            url,
            base,
            sha,
            start_sha,
        } = self.fetch_base(p, &mirror).await?;
        let seed = self.seed_path(p.repository, &base);
        self.update_seed(&mirror, &seed, &sha).await?;
        let (from, to) = (seed.clone(), p.path.to_owned());
        tokio::task::spawn_blocking(move || copy::copy_tree(&from, &to))
            .await
            .context("copy task failed")??;
        drop(_guard);
        tokio::fs::write(p.path.join(".git/config"), self.checkout_config(&url)).await?;
        let local = Call::default();
        match (p.branch, &start_sha) {
            (Some(branch), Some(start)) => {
                git.run(
                    p.path,
                    &["update-ref", &format!("refs/remotes/origin/{base}"), &sha],
                    local,
                )
                .await?;
                git.run(p.path, &["checkout", "--quiet", "-B", branch, start], local)
                    .await?;
            }
            (Some(branch), None) => {
                git.run(
                    p.path,
                    &["update-ref", &format!("refs/heads/{branch}"), &sha],
                    local,
                )
                .await?;
                git.run(
                    p.path,
                    &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")],
                    local,
                )
                .await?;
            }
            (None, _) => {}
        }
        Ok(Prepared {
            base_ref: base,
            base_sha: start_sha.unwrap_or(sha),
        })
    }

    /// Prepares a checkout on a remote target, as [`Workspaces::prepare`] does here: the base
    /// is fetched into foreman's mirror (with the credential, on this machine), pushed over
    /// SSH into the target's mirror, and the checkout is made there from that. No credential
    /// ever reaches the target. On failure nothing is left at `path` there.
    pub async fn prepare_on(&self, site: &Site, p: &Prepare<'_>) -> Result<Prepared> {
        if !valid_repository(p.repository) {
            bail!("`{}` is not a repository name (owner/name)", p.repository);
        }
        let result = self.try_prepare_on(site, p).await;
        if result.is_err() {
            let _ = site
                .connection
                .run_script(&format!("rm -rf {}", quote_path(p.path)))
                .await;
        }
        result.with_context(|| format!("cannot prepare a checkout on target {}", site.name))
    }

    async fn try_prepare_on(&self, site: &Site, p: &Prepare<'_>) -> Result<Prepared> {
        let mirror = self.mirror_path(p.repository);
        let lock = self.lock(&mirror);
        let guard = lock.lock().await;
        let Fetched {
            url,
            base,
            sha,
            start_sha,
        } = self.fetch_base(p, &mirror).await?;
        let there = site.mirror(p.repository);
        let config = site.checkout_config(p.repository);
        let text = self.checkout_config(&url);
        site.connection
            .run_script(&format!(
                "set -e\n{HERMETIC}\nm={m}\n\
                 if [ ! -f \"$m/HEAD\" ]; then\n\
                 \x20 mkdir -p \"$m\"\n\
                 \x20 git init --quiet --bare \"$m\"\n\
                 \x20 git -C \"$m\" config gc.pruneExpire never\n\
                 \x20 git -C \"$m\" config gc.auto 0\n\
                 fi\n\
                 cat > {c}.new <<'FOREMAN_END'\n{text}FOREMAN_END\n\
                 mv {c}.new {c}\n",
                m = quote_path(&there),
                c = quote_path(&config),
            ))
            .await
            .context("cannot make the target's mirror")?;
        let mut push = vec![
            "-c".to_owned(),
            format!("core.sshCommand={}", site.connection.ssh_command()),
            "push".to_owned(),
            "--quiet".to_owned(),
            "--no-verify".to_owned(),
            format!("{}:{}", site.connection.destination(), there.display()),
            format!("+{sha}:refs/heads/{base}"),
        ];
        if let (Some(start), Some(start_sha)) = (p.start_at, &start_sha) {
            push.push(format!("+{start_sha}:refs/heads/{start}"));
        }
        let push: Vec<&str> = push.iter().map(String::as_str).collect();
        let network = Call {
            network: true,
            ..Call::default()
        };
        self.settings
            .git
            .run(&mirror, &push, network)
            .await
            .context("cannot push the base to the target's mirror")?;
        drop(guard);
        let at = start_sha.as_deref().unwrap_or(&sha);
        let checkout = match p.branch {
            Some(branch) => format!("git checkout --quiet -B {} {at}", quote(branch)),
            None => format!("git checkout --quiet --detach {at}"),
        };
        site.connection
            .run_script(&format!(
                "set -e\n{HERMETIC}\nc={c}\nm={m}\n\
                 rm -rf \"$c\"\nmkdir -p \"$c\"\n\
                 git init --quiet \"$c\"\n\
                 echo \"$m/objects\" > \"$c/.git/objects/info/alternates\"\n\
                 cp {config} \"$c/.git/config\"\n\
                 cd \"$c\"\n\
                 git update-ref {origin} {sha}\n\
                 {checkout}\n",
                c = quote_path(p.path),
                m = quote_path(&there),
                config = quote_path(&config),
                origin = quote(&format!("refs/remotes/origin/{base}")),
            ))
            .await
            .context("cannot make the checkout")?;
        Ok(Prepared {
            base_ref: base,
            base_sha: start_sha.unwrap_or(sha),
        })
    }

    /// Brings the mirror's copy of the base branch (and of `start_at`) up to date from
    /// upstream, cloning the mirror on first use. The caller holds the mirror's lock.
    async fn fetch_base(&self, p: &Prepare<'_>, mirror: &Path) -> Result<Fetched> {
        let git = &self.settings.git;
        let url = self.upstream_url(p.repository);
        let network = Call {
            auth: p.auth,
            network: true,
            author: None,
        };
        if !mirror.join("HEAD").exists() {
            let parent = mirror.parent().context("mirror path has no parent")?;
            tokio::fs::create_dir_all(parent).await?;
            let _ = tokio::fs::remove_dir_all(mirror).await;
            let target = mirror.display().to_string();
            git.run(
                parent,
                &["clone", "--bare", "--quiet", &url, &target],
                network,
            )
            .await
            .with_context(|| format!("cannot clone {} from {url}", p.repository))?;
            // Checkouts borrow the mirror's objects: it must never drop one they may use.
            for (key, value) in [("gc.pruneExpire", "never"), ("gc.auto", "0")] {
                git.run(mirror, &["config", key, value], Call::default())
                    .await?;
            }
        }
        let base = match p.base {
            Some(base) => base.to_owned(),
            None => default_branch(git, mirror).await?,
        };
        let mut fetch = vec![
            "fetch".to_owned(),
            "--quiet".to_owned(),
            "--no-tags".to_owned(),
            url.clone(),
            format!("+refs/heads/{base}:refs/heads/{base}"),
        ];
        if let Some(start) = p.start_at {
            fetch.push(format!("+refs/heads/{start}:refs/heads/{start}"));
        }
        let fetch: Vec<&str> = fetch.iter().map(String::as_str).collect();
        git.run(mirror, &fetch, network)
            .await
            .with_context(|| match p.start_at {
                Some(start) => format!(
                    "cannot fetch the base branch `{base}` or the branch `{start}` of {}",
                    p.repository
                ),
                None => format!("cannot fetch the base branch `{base}` of {}", p.repository),
            })?;
        let tip = |branch: String| {
            let mirror = mirror.to_owned();
            async move {
                git.run(
                    &mirror,
                    &["rev-parse", &format!("refs/heads/{branch}^{{commit}}")],
                    Call::default(),
                )
                .await
            }
        };
        let sha = tip(base.clone()).await?;
        let start_sha = match p.start_at {
            Some(start) => Some(tip(start.to_owned()).await?),
            None => None,
        };
        Ok(Fetched {
            url,
            base,
            sha,
            start_sha,
        })
    }

    /// Brings the seed checkout of a base branch to `sha` (making it on first use).
    async fn update_seed(&self, mirror: &Path, seed: &Path, sha: &str) -> Result<()> {
        let git = &self.settings.git;
        let local = Call::default();
        if !seed.join(".git").exists() {
            let parent = seed.parent().context("seed path has no parent")?;
            tokio::fs::create_dir_all(parent).await?;
            let _ = tokio::fs::remove_dir_all(seed).await;
            let (from, to) = (mirror.display().to_string(), seed.display().to_string());
            git.run(
                parent,
                &["clone", "--quiet", "--shared", "--no-checkout", &from, &to],
                local,
            )
            .await
            .context("cannot create the checkout seed")?;
        }
        git.run(
            seed,
            &["checkout", "--quiet", "--force", "--detach", sha],
            local,
        )
        .await
        .context("cannot update the checkout seed")?;
        Ok(())
    }

    /// A checkout's `.git/config`: its origin is the upstream without credentials, commits
    /// are the bot's, and git trusts the copied index (only sizes and whole-second times are
    /// compared, since a copy has new inodes and change times).
    fn checkout_config(&self, url: &str) -> String {
        let CommitAuthor { name, email } = self.author();
        format!(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\
             \tlogallrefupdates = true\n\ttrustctime = false\n\tcheckStat = minimal\n\
             [remote \"origin\"]\n\turl = {url}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n\
             [user]\n\tname = {name}\n\temail = {email}\n"
        )
    }

    /// The sandbox jail for git in a checkout: the checkout (writable or not) and the mirror
    /// objects it borrows. The mirror is found from the repository's name, never from the
    /// checkout's own `alternates` file, which its agent could have pointed anywhere. The
    /// checkout's `.git/config` is replaced by the one foreman wrote when it made the checkout
    /// (and its `.git/info/attributes` by nothing), so no setting its agent planted — an
    /// `include`, a filter driver, a hook path, an `insteadOf` — exists for git there.
    fn jail(&self, checkout: &Checkout<'_>, writable: bool) -> Result<Jail> {
        if !valid_repository(checkout.repository) {
            bail!(
                "`{}` is not a repository name (owner/name)",
                checkout.repository
            );
        }
        let git_dir = checkout.path.join(".git");
        let meta = std::fs::symlink_metadata(&git_dir)
            .with_context(|| format!("{} has no .git", checkout.path.display()))?;
        if !meta.is_dir() {
            bail!(
                "{} is not a git directory (a link or a file)",
                git_dir.display()
            );
        }
        let objects = self.mirror_objects(checkout.repository);
        let here = checkout.path.to_owned();
        let (writable, mut read_only) = if writable {
            (vec![here.clone()], Vec::new())
        } else {
            (Vec::new(), vec![here.clone()])
        };
        if objects.is_dir() {
            read_only.push(objects);
        }
        let trusted = self.trusted_config(checkout.repository)?;
        let config = git_dir.join("config");
        if !std::fs::symlink_metadata(&config).is_ok_and(|m| m.is_file()) {
            // Gone, or made a link or a directory: foreman's own goes back (it is shown in its
            // place in any case; the place must be a plain file).
            let _ = std::fs::remove_dir_all(&config);
            let _ = std::fs::remove_file(&config);
            std::fs::copy(&trusted, &config)
                .with_context(|| format!("cannot restore {}", config.display()))?;
        }
        let mut overlays = vec![(trusted, config)];
        let attributes = git_dir.join("info/attributes");
        if std::fs::symlink_metadata(&attributes).is_ok_and(|m| m.is_file()) {
            overlays.push((PathBuf::from("/dev/null"), attributes));
        }
        Ok(Jail {
            cwd: here,
            writable,
            read_only,
            overlays,
            network: false,
            egress: None,
        })
    }

    /// A copy of the config foreman gives a repository's checkouts, in a place of foreman's
    /// own (written again each time: it depends on settings only).
    fn trusted_config(&self, repository: &str) -> Result<PathBuf> {
        let path = self
            .settings
            .root
            .join("mirrors")
            .join(format!("{repository}.checkout-config"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let config = self.checkout_config(&self.upstream_url(repository));
        let stale = std::fs::read_to_string(&path).map_or(true, |now| now != config);
        if stale {
            // A name of its own, so two git commands preparing it at once cannot collide.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let temp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
            std::fs::write(&temp, &config)?;
            std::fs::rename(&temp, &path)?;
        }
        Ok(path)
    }

    /// Runs git in the checkout, in the sandbox (on its target).
    async fn in_checkout(
        &self,
        checkout: &Checkout<'_>,
        writable: bool,
        args: &[&str],
        call: Call<'_>,
    ) -> Result<String> {
        self.in_checkout_to(checkout, writable, args, call, None)
            .await
    }

    /// [`Workspaces::in_checkout`], its standard output into a file when `stdout_to` says.
    async fn in_checkout_to(
        &self,
        checkout: &Checkout<'_>,
        writable: bool,
        args: &[&str],
        call: Call<'_>,
        stdout_to: Option<(&Path, u64)>,
    ) -> Result<String> {
        let git = &self.settings.git;
        match checkout.site {
            None => {
                let jail = self.jail(checkout, writable)?;
                let place = Place::Checkout {
                    sandbox: &self.settings.sandbox,
                    jail: &jail,
                };
                git.run_in(&place, args, call, stdout_to).await
            }
            Some(site) => {
                let (jail, before) = remote_jail(site, checkout, writable)?;
                let place = Place::Remote {
                    connection: &site.connection,
                    jail: &jail,
                    before: &before,
                };
                git.run_in(&place, args, call, stdout_to)
                    .await
                    .with_context(|| format!("on target {}", site.name))
            }
        }
    }

    /// Commits everything in the checkout with `message` (in the sandbox, hooks off). False
    /// when there was nothing to commit.
    pub async fn commit_all(&self, checkout: &Checkout<'_>, message: &str) -> Result<bool> {
        let author = self.author();
        let call = Call {
            author: Some((&author.name, &author.email)),
            ..Call::default()
        };
        let status = self
            .in_checkout(checkout, false, &["status", "--porcelain"], call)
            .await?;
        if status.is_empty() {
            return Ok(false);
        }
        self.in_checkout(checkout, true, &["add", "--all"], call)
            .await?;
        self.in_checkout(
            checkout,
            true,
            &["commit", "--quiet", "--no-verify", "-m", message],
            call,
        )
        .await?;
        Ok(true)
    }

    /// The checkout's current commit.
    pub async fn head(&self, checkout: &Checkout<'_>) -> Result<String> {
        let head = self
            .in_checkout(
                checkout,
                false,
                &["rev-parse", "--verify", "HEAD^{commit}"],
                Call::default(),
            )
            .await?;
        if !is_sha(&head) {
            bail!("the checkout's HEAD is not a commit (`{head}`)");
        }
        Ok(head)
    }

    /// Takes the checkout's work out into the mirror: commits what is left (with `message`),
    /// then, if HEAD has commits `since` does not, copies them as a bundle made in the
    /// sandbox, checks every object, and stores them in the mirror. Returns the head now
    /// pushable from the mirror, or `None` when there is nothing new.
    pub async fn take(
        &self,
        checkout: &Checkout<'_>,
        message: &str,
        since: &str,
    ) -> Result<Option<String>> {
        if !is_sha(since) {
            bail!("`{since}` is not a commit id");
        }
        self.commit_all(checkout, message).await?;
        let head = self.head(checkout).await?;
        let new = self
            .in_checkout(
                checkout,
                false,
                &["rev-list", "--count", "HEAD", "--not", since],
                Call::default(),
            )
            .await?;
        if new.trim() == "0" {
            return Ok(None);
        }
        let bundle = self.transfer_file(&head, "bundle").await?;
        let result = self.take_bundle(checkout, since, &head, &bundle).await;
        let _ = tokio::fs::remove_file(&bundle).await;
        result.map(|()| Some(head))
    }

    /// A path of foreman's own (out of every agent's reach) for a file in transit about
    /// `what`, unique per call: two checkouts can hold the very same commit (the same change
    /// made twice on the same base), and their publications can run at once.
    async fn transfer_file(&self, what: &str, extension: &str) -> Result<PathBuf> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let transfers = self.settings.root.join("transfers");
        tokio::fs::create_dir_all(&transfers).await?;
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        Ok(transfers.join(format!("{what}-{pid}-{n}.{extension}")))
    }

    async fn take_bundle(
        &self,
        checkout: &Checkout<'_>,
        since: &str,
        head: &str,
        bundle: &Path,
    ) -> Result<()> {
        let git = &self.settings.git;
        self.in_checkout_to(
            checkout,
            false,
            &["bundle", "create", "--quiet", "-", "HEAD", "--not", since],
            Call::default(),
            Some((bundle, MAX_TAKE_BYTES)),
        )
        .await
        .context("cannot bundle the checkout's new commits")?;
        let mirror = self.mirror_path(checkout.repository);
        let file = bundle.display().to_string();
        let heads = git
            .run(&mirror, &["bundle", "list-heads", &file], Call::default())
            .await?;
        let bundled = heads.split_whitespace().next().unwrap_or_default();
        if bundled != head {
            bail!("the checkout's HEAD moved while its work was taken ({head}, then {bundled})");
        }
        let lock = self.lock(&mirror);
        let _guard = lock.lock().await;
        git.run(
            &mirror,
            &[
                "-c",
                "fetch.fsckObjects=true",
                "-c",
                "transfer.fsckObjects=true",
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                &file,
                "HEAD",
            ],
            Call::default(),
        )
        .await
        .context("the checkout's new commits did not pass foreman's checks")?;
        git.run(
            &mirror,
            &["cat-file", "-e", &format!("{head}^{{commit}}")],
            Call::default(),
        )
        .await?;
        Ok(())
    }

    /// Where `branch` is upstream now (`None` if it does not exist).
    pub async fn remote_head(
        &self,
        repository: &str,
        branch: &str,
        auth: Option<&SecretString>,
    ) -> Result<Option<String>> {
        let url = self.upstream_url(repository);
        let call = Call {
            auth,
            network: true,
            author: None,
        };
        let listing = self
            .settings
            .git
            .run(
                Path::new("/"),
                &["ls-remote", &url, &format!("refs/heads/{branch}")],
                call,
            )
            .await?;
        Ok(listing.split_whitespace().next().map(str::to_owned))
    }

    /// Pushes `sha` (taken into the mirror by [`Workspaces::take`]) to `branch` upstream,
    /// from the mirror. Without `force_over` a branch that moved on upstream is refused; with
    /// it, the branch is overwritten only if it is still at that commit (a lease, so nothing
    /// pushed meanwhile is lost unseen).
    pub async fn push(
        &self,
        repository: &str,
        sha: &str,
        branch: &str,
        auth: Option<&SecretString>,
        force_over: Option<&str>,
    ) -> Result<()> {
        if !valid_repository(repository) {
            bail!("`{repository}` is not a repository name (owner/name)");
        }
        if !is_sha(sha) {
            bail!("`{sha}` is not a commit id");
        }
        let mirror = self.mirror_path(repository);
        let url = self.upstream_url(repository);
        let refspec = format!("{sha}:refs/heads/{branch}");
        let lease = force_over.map(|old| format!("--force-with-lease=refs/heads/{branch}:{old}"));
        let mut args = vec!["push", "--quiet", "--no-verify"];
        if let Some(lease) = &lease {
            args.push(lease);
        }
        args.extend([url.as_str(), refspec.as_str()]);
        let call = Call {
            auth,
            network: true,
            author: None,
        };
        match self.settings.git.run(&mirror, &args, call).await {
            Ok(_) => Ok(()),
            Err(e) if is_non_fast_forward(&e) => Err(moved_on_upstream(branch)),
            Err(e) => Err(e.context(format!("cannot push `{branch}` to {repository}"))),
        }
    }
}

/// Settings for git commands foreman runs on a target outside a checkout: no system or user
/// config of that machine applies.
const HERMETIC: &str = "export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LANG=C";

/// The jail for git in a checkout on a target, as [`Workspaces::jail`] makes it here, and the
/// shell that checks and defuses the checkout there first: its `.git` must be a directory;
/// a config that is gone or is a link or a directory is replaced by foreman's (which is shown
/// in its place in any case); a plain `.git/info/attributes` is hidden.
fn remote_jail(site: &Site, checkout: &Checkout<'_>, writable: bool) -> Result<(Jail, String)> {
    if !valid_repository(checkout.repository) {
        bail!(
            "`{}` is not a repository name (owner/name)",
            checkout.repository
        );
    }
    let here = checkout.path.to_owned();
    let (writable, mut read_only) = if writable {
        (vec![here.clone()], Vec::new())
    } else {
        (Vec::new(), vec![here.clone()])
    };
    read_only.push(site.mirror(checkout.repository).join("objects"));
    let trusted = site.checkout_config(checkout.repository);
    let git_dir = here.join(".git");
    let before = format!(
        "g={g}\n\
         if [ -L \"$g\" ] || [ ! -d \"$g\" ]; then echo \"$g is not a git directory (a link or \
         a file)\" >&2; exit 1; fi\n\
         if [ -L \"$g/config\" ] || [ ! -f \"$g/config\" ]; then rm -rf \"$g/config\"; cp {t} \
         \"$g/config\" || exit 1; fi\n\
         if [ -f \"$g/info/attributes\" ] && [ ! -L \"$g/info/attributes\" ]; then set -- \"$@\" \
         --ro-bind /dev/null \"$g/info/attributes\"; fi",
        g = quote_path(&git_dir),
        t = quote_path(&trusted),
    );
    Ok((
        Jail {
            cwd: here,
            writable,
            read_only,
            overlays: vec![(trusted, git_dir.join("config"))],
            network: false,
            egress: None,
        },
        before,
    ))
}

/// A path quoted for a POSIX shell.
fn quote_path(path: &Path) -> String {
    quote(&path.display().to_string())
}

/// Why `branch` was not updated: it moved on upstream, and nothing said to overwrite it.
pub fn moved_on_upstream(branch: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the push to `{branch}` was rejected because the branch moved on upstream \
         (non-fast-forward); publish with a force reason to overwrite it"
    )
}

/// What to inspect in a checkout before it is removed.
#[derive(Debug, Clone)]
pub struct Inspect<'a> {
    pub path: &'a Path,
    /// The repository it is a checkout of (whose mirror lends it objects).
    pub repository: &'a str,
    /// The commit it started from.
    pub base_sha: Option<&'a str>,
    /// Commits known to be upstream (its pull requests' heads).
    pub known: &'a [String],
    /// Where to ask where branches are now, when the known commits do not reach all of the
    /// checkout's (`None`: do not ask; what they do not reach counts as unpushed).
    pub upstream: Option<Upstream<'a>>,
}

/// A repository and branches of it to look up upstream.
#[derive(Debug, Clone)]
pub struct Upstream<'a> {
    pub repository: &'a str,
    pub branches: Vec<&'a str>,
    pub auth: Option<&'a SecretString>,
}

impl Workspaces {
    /// What the checkout holds that is not upstream: uncommitted changes (untracked files
    /// included), commits beyond its base, and commits no upstream ref reaches. Every ref of
    /// the checkout counts (branches, tags, the stash, a detached HEAD), not only HEAD.
    pub async fn inspect(&self, what: &Inspect<'_>) -> Result<crate::model::gc::Inspection> {
        self.inspect_on(None, what).await
    }

    /// [`Workspaces::inspect`] of a checkout on a target (`None`: here).
    pub async fn inspect_on(
        &self,
        site: Option<&Site>,
        what: &Inspect<'_>,
    ) -> Result<crate::model::gc::Inspection> {
        let checkout = Checkout {
            path: what.path,
            repository: what.repository,
            site,
        };
        let status = self
            .in_checkout(
                &checkout,
                false,
                &["status", "--porcelain"],
                Call::default(),
            )
            .await
            .context("cannot read the checkout's status")?;
        let mut known: Vec<String> = what.base_sha.iter().map(|s| s.to_string()).collect();
        let ahead_of_base = self.commits_not_in(&checkout, &known).await?;
        known.extend(what.known.iter().cloned());
        let mut unpushed = if ahead_of_base == 0 {
            0
        } else {
            self.commits_not_in(&checkout, &known).await?
        };
        if unpushed > 0
            && let Some(upstream) = &what.upstream
            && !upstream.branches.is_empty()
        {
            known.extend(self.upstream_heads(upstream).await?);
            unpushed = self.commits_not_in(&checkout, &known).await?;
        }
        Ok(crate::model::gc::Inspection {
            dirty: !status.is_empty(),
            ahead_of_base,
            unpushed,
        })
    }

    /// How many commits the checkout's refs reach that neither its remote-tracking refs nor
    /// any of `known` do (commits `known` names that the checkout lacks are ignored).
    async fn commits_not_in(&self, checkout: &Checkout<'_>, known: &[String]) -> Result<u64> {
        let mut args = vec![
            "rev-list",
            "--count",
            "--ignore-missing",
            "--all",
            "HEAD",
            "--not",
            "--remotes",
        ];
        args.extend(known.iter().map(String::as_str).filter(|k| is_sha(k)));
        let n = self
            .in_checkout(checkout, false, &args, Call::default())
            .await?;
        n.parse()
            .with_context(|| format!("unexpected rev-list output `{n}`"))
    }

    /// Where the branches are upstream now (those that exist).
    async fn upstream_heads(&self, upstream: &Upstream<'_>) -> Result<Vec<String>> {
        let url = self.upstream_url(upstream.repository);
        let refs: Vec<String> = upstream
            .branches
            .iter()
            .map(|b| format!("refs/heads/{b}"))
            .collect();
        let mut args = vec!["ls-remote", url.as_str()];
        args.extend(refs.iter().map(String::as_str));
        let call = Call {
            auth: upstream.auth,
            network: true,
            author: None,
        };
        let listing = self
            .settings
            .git
            .run(Path::new("/"), &args, call)
            .await
            .with_context(|| {
                format!("cannot ask {} where its branches are", upstream.repository)
            })?;
        Ok(listing
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|sha| sha.len() >= 40 && sha.chars().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_owned)
            .collect())
    }

    /// The repositories (`owner/name`) with a mirror in the cache.
    pub fn mirrors(&self) -> Vec<String> {
        let root = self.settings.root.join("mirrors");
        let mut found = Vec::new();
        let Ok(owners) = std::fs::read_dir(&root) else {
            return found;
        };
        for owner in owners.flatten() {
            let Ok(repos) = std::fs::read_dir(owner.path()) else {
                continue;
            };
            for repo in repos.flatten() {
                let name = repo.file_name().to_string_lossy().into_owned();
                if let Some(name) = name.strip_suffix(".git")
                    && repo.path().join("HEAD").is_file()
                {
                    found.push(format!("{}/{name}", owner.file_name().to_string_lossy()));
                }
            }
        }
        found.sort();
        found
    }

    /// Looks after a mirror: drops stale worktree metadata and, with `gc`, repacks it. Its
    /// settings are asserted again first: checkouts borrow its objects, so it must never
    /// prune one (`gc.pruneExpire=never`), and only this runs its gc (`gc.auto=0`). Holds the
    /// mirror's lock, so no checkout is prepared from it meanwhile.
    pub async fn maintain_mirror(&self, repository: &str, gc: bool) -> Result<()> {
        if !valid_repository(repository) {
            bail!("`{repository}` is not a repository name (owner/name)");
        }
        let git = &self.settings.git;
        let mirror = self.mirror_path(repository);
        let lock = self.lock(&mirror);
        let _guard = lock.lock().await;
        for (key, value) in [("gc.pruneExpire", "never"), ("gc.auto", "0")] {
            git.run(&mirror, &["config", key, value], Call::default())
                .await?;
        }
        git.run(&mirror, &["worktree", "prune"], Call::default())
            .await?;
        if gc {
            // A large repository takes a while: allow it as long as a fetch.
            let long = Call {
                network: true,
                ..Call::default()
            };
            git.run(&mirror, &["gc", "--quiet"], long).await?;
        }
        Ok(())
    }
}

fn is_non_fast_forward(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("non-fast-forward") || text.contains("fetch first") || text.contains("stale info")
}

/// The branch the mirror's HEAD names (the repository's default branch when it was cloned).
async fn default_branch(git: &Git, mirror: &Path) -> Result<String> {
    let head = git
        .run(
            mirror,
            &["symbolic-ref", "--quiet", "HEAD"],
            Call::default(),
        )
        .await
        .context("cannot tell the repository's default branch")?;
    Ok(head.trim_start_matches("refs/heads/").to_owned())
}

/// A full commit id (SHA-1 or SHA-256), and nothing that could be read as an option.
pub fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `owner/name` with characters GitHub allows, and no path tricks.
fn valid_repository(name: &str) -> bool {
    let Some((owner, repo)) = name.split_once('/') else {
        return false;
    };
    let part_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    part_ok(owner) && part_ok(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_cannot_escape_the_cache() {
        assert!(valid_repository("octo/widgets"));
        assert!(valid_repository("my-org/repo.rs"));
        for bad in [
            "octo",
            "../etc/passwd",
            "octo/..",
            "a/b/c",
            "octo/wid gets",
            "/x",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }
}
