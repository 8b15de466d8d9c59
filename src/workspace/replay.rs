//! What commits made through GitHub's API need from the mirror: the commits taken from a
//! checkout, each as the tree changes from its first parent, and the blobs they add. Reads
//! only; everything here runs on foreman's own mirror, never in a checkout.

use anyhow::{Context, Result, bail};

use super::git::{Call, Place};
use super::{Checkout, Workspaces, is_sha};

/// Largest file a commit made through the API may add (GitHub's blob limit is 100 MB).
const MAX_BLOB_BYTES: u64 = 100 * 1024 * 1024;

/// One commit to make again through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCommit {
    pub sha: String,
    pub parents: Vec<String>,
    pub message: String,
    /// Its tree: the API must arrive at the same one.
    pub tree: String,
    /// Its first parent's tree, which the changes apply to.
    pub base_tree: String,
    pub changes: Vec<TreeChange>,
}

/// A path that differs from the first parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeChange {
    pub path: String,
    /// `100644`, `100755`, `120000` (a link) or `160000` (a submodule).
    pub mode: String,
    /// The new object; `None` when the path was deleted.
    pub sha: Option<String>,
}

impl Workspaces {
    /// The commits `head` has that neither `start` nor any upstream branch has, oldest first
    /// (parents before children), as they are in the mirror after [`Workspaces::take`].
    pub async fn commits_to_replay(
        &self,
        repository: &str,
        head: &str,
        start: &str,
    ) -> Result<Vec<ReplayCommit>> {
        if !is_sha(head) || !is_sha(start) {
            bail!("`{head}` or `{start}` is not a commit id");
        }
        let mirror = self.mirror_path(repository);
        let git = &self.settings.git;
        let run = |args: Vec<String>| {
            let mirror = mirror.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                git.run(&mirror, &args, Call::default()).await
            }
        };
        // Nothing already upstream is made again: not what the checkout started from, nor
        // what any branch fetched from upstream reaches (a base merged or rebased onto).
        let listing = run(vec![
            "rev-list".into(),
            "--reverse".into(),
            "--topo-order".into(),
            "--parents".into(),
            head.into(),
            format!("^{start}"),
            "--not".into(),
            "--branches".into(),
        ])
        .await?;
        let mut commits = Vec::new();
        for line in listing.lines() {
            let mut shas = line.split_whitespace().map(str::to_owned);
            let sha = shas.next().context("an empty line from rev-list")?;
            let parents: Vec<String> = shas.collect();
            let Some(first) = parents.first().cloned() else {
                bail!("commit {sha} has no parent: a new root cannot be made through the API");
            };
            let message = run(vec![
                "show".into(),
                "-s".into(),
                "--format=%B".into(),
                sha.clone(),
            ])
            .await?;
            let tree = run(vec!["rev-parse".into(), format!("{sha}^{{tree}}")]).await?;
            let base_tree = run(vec!["rev-parse".into(), format!("{first}^{{tree}}")]).await?;
            let raw = run(vec![
                "diff-tree".into(),
                "-r".into(),
                "-z".into(),
                "--raw".into(),
                "--no-renames".into(),
                "--no-commit-id".into(),
                first,
                sha.clone(),
            ])
            .await?;
            commits.push(ReplayCommit {
                sha,
                parents,
                message,
                tree,
                base_tree,
                changes: parse_raw_diff(&raw)?,
            });
        }
        Ok(commits)
    }

    /// A blob's bytes, from the mirror.
    pub async fn blob(&self, repository: &str, sha: &str) -> Result<Vec<u8>> {
        if !is_sha(sha) {
            bail!("`{sha}` is not an object id");
        }
        let mirror = self.mirror_path(repository);
        let file = self.transfer_file(sha, "blob").await?;
        let result = async {
            self.settings
                .git
                .run_in(
                    &Place::Trusted(&mirror),
                    &["cat-file", "blob", sha],
                    Call::default(),
                    Some((&file, MAX_BLOB_BYTES)),
                )
                .await?;
            tokio::fs::read(&file)
                .await
                .with_context(|| format!("cannot read blob {sha}"))
        }
        .await;
        let _ = tokio::fs::remove_file(&file).await;
        result
    }

    /// Fetches `branch` from upstream into the mirror (after commits were made on GitHub).
    pub async fn fetch_branch(
        &self,
        repository: &str,
        branch: &str,
        auth: Option<&secrecy::SecretString>,
    ) -> Result<()> {
        let mirror = self.mirror_path(repository);
        let url = self.upstream_url(repository);
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        let lock = self.lock(&mirror);
        let _guard = lock.lock().await;
        let call = Call {
            auth,
            network: true,
            author: None,
        };
        self.settings
            .git
            .run(
                &mirror,
                &["fetch", "--quiet", "--no-tags", &url, &refspec],
                call,
            )
            .await
            .with_context(|| format!("cannot fetch `{branch}` of {repository}"))?;
        Ok(())
    }

    /// Moves the checkout's HEAD to `sha`, a commit with the same tree made upstream for it
    /// (its files stay as they are): what it holds is then known to be upstream.
    pub async fn adopt(&self, checkout: &Checkout<'_>, sha: &str) -> Result<()> {
        if !is_sha(sha) {
            bail!("`{sha}` is not a commit id");
        }
        self.in_checkout(
            checkout,
            true,
            &["reset", "--quiet", "--soft", sha],
            Call::default(),
        )
        .await
        .context("cannot move the checkout onto the commits made on GitHub")?;
        Ok(())
    }
}

/// Parses `git diff-tree -r -z --raw` output: `:OLDMODE NEWMODE OLDSHA NEWSHA STATUS\0PATH\0`…
fn parse_raw_diff(raw: &str) -> Result<Vec<TreeChange>> {
    let mut fields = raw.split('\0').filter(|f| !f.is_empty());
    let mut changes = Vec::new();
    while let Some(meta) = fields.next() {
        let path = fields.next().context("a diff-tree entry without a path")?;
        let parts: Vec<&str> = meta.trim_start_matches(':').split_whitespace().collect();
        let [_, new_mode, _, new_sha, status] = parts[..] else {
            bail!("cannot read diff-tree output `{meta}`");
        };
        let deleted = status.starts_with('D');
        changes.push(TreeChange {
            path: path.to_owned(),
            mode: if deleted {
                parts[0].to_owned()
            } else {
                new_mode.to_owned()
            },
            sha: (!deleted).then(|| new_sha.to_owned()),
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_diffs_parse_into_changes() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let z = "0".repeat(40);
        let raw = format!(
            ":100644 100644 {a} {b} M\0src/lib.rs\0:000000 100755 {z} {b} A\0run.sh\0:100644 000000 {a} {z} D\0old.txt\0"
        );
        let changes = parse_raw_diff(&raw).unwrap();
        assert_eq!(
            changes,
            vec![
                TreeChange {
                    path: "src/lib.rs".into(),
                    mode: "100644".into(),
                    sha: Some(b.clone())
                },
                TreeChange {
                    path: "run.sh".into(),
                    mode: "100755".into(),
                    sha: Some(b.clone())
                },
                TreeChange {
                    path: "old.txt".into(),
                    mode: "100644".into(),
                    sha: None
                },
            ]
        );
        assert!(parse_raw_diff(":100644 100644\0x\0").is_err());
    }
}
