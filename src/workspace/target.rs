//! Where checkouts live and how they go: a [`Target`] is a machine holding checkouts: the
//! foreman host itself ([`LocalTarget`]) or a remote target over SSH ([`RemoteTarget`]). Tests
//! wrap the local one to make a removal fail or pause at a chosen moment.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::model::gc::Inspection;
use crate::workspace::remote::Sites;
use crate::workspace::{Inspect, Workspaces};
use futures_util::future::BoxFuture;

/// A machine holding checkouts.
pub trait Target: Send + Sync {
    /// Whether `path` still exists there. An error means the target cannot tell.
    fn exists<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<bool>>;
    /// What the checkout holds that is not upstream.
    fn inspect<'a>(
        &'a self,
        workspaces: &'a Workspaces,
        what: &'a Inspect<'a>,
    ) -> BoxFuture<'a, Result<Inspection>>;
    /// Removes the checkout, everything in it (`rm -rf`); returns the bytes it took on disk.
    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<u64>>;
}

/// The foreman host itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalTarget;

impl Target for LocalTarget {
    fn exists<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            match tokio::fs::symlink_metadata(path).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e).with_context(|| format!("cannot look at {}", path.display())),
            }
        })
    }

    fn inspect<'a>(
        &'a self,
        workspaces: &'a Workspaces,
        what: &'a Inspect<'a>,
    ) -> BoxFuture<'a, Result<Inspection>> {
        Box::pin(workspaces.inspect(what))
    }

    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<u64>> {
        let path: PathBuf = path.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let bytes = disk_usage(&path);
                // Moved aside first, in one step: whatever still reaches for the checkout by
                // its path (a look from a concurrent pass, which may create files in it) finds
                // nothing there instead of refilling what is being removed.
                let name = path.file_name().context("a checkout path without a name")?;
                let aside = path.with_file_name(format!(
                    ".{}.removing-{}",
                    name.to_string_lossy(),
                    std::process::id()
                ));
                std::fs::rename(&path, &aside)
                    .with_context(|| format!("cannot move {} aside", path.display()))?;
                if let Err(e) = std::fs::remove_dir_all(&aside) {
                    // Back where the next pass will find it and try again.
                    let _ = std::fs::rename(&aside, &path);
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
                Ok(bytes)
            })
            .await
            .context("removal task failed")?
        })
    }
}

/// A remote target, reached over its SSH connection ([`Sites`]).
pub struct RemoteTarget {
    pub name: String,
    pub sites: Arc<Sites>,
}

impl RemoteTarget {
    async fn site(&self) -> Result<Arc<crate::workspace::remote::Site>> {
        self.sites
            .site(&self.name)
            .await?
            .with_context(|| format!("`{}` is not a remote target", self.name))
    }
}

impl Target for RemoteTarget {
    fn exists<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { self.site().await?.exists(path).await })
    }

    fn inspect<'a>(
        &'a self,
        workspaces: &'a Workspaces,
        what: &'a Inspect<'a>,
    ) -> BoxFuture<'a, Result<Inspection>> {
        Box::pin(async move {
            let site = self.site().await?;
            workspaces.inspect_on(Some(&site), what).await
        })
    }

    fn remove<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let site = self.site().await?;
            let quoted = crate::model::text::shell_quote(&path.display().to_string());
            // Moved aside first, as here, then measured and removed.
            let said = site
                .connection
                .run_script(&format!(
                    "set -e\np={quoted}\n[ -e \"$p\" ] || {{ echo \"$p does not exist\" >&2; exit 1; }}\n\
                     a=\"${{p%/*}}/.${{p##*/}}.removing-$$\"\nmv \"$p\" \"$a\"\n\
                     k=$(du -sk \"$a\" | cut -f1)\nrm -rf \"$a\"\necho \"$k\"\n"
                ))
                .await
                .with_context(|| format!("cannot remove {} on target {}", path.display(), self.name))?;
            Ok(said.trim().parse::<u64>().unwrap_or(0) * 1024)
        })
    }
}

/// Bytes the tree at `path` takes on disk (allocated blocks; symbolic links not followed).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        total += meta.blocks() * 512;
        if !meta.is_dir() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if let Ok(meta) = entry.metadata() {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn removal_reports_what_the_tree_took_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/big"), vec![7u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/etc", tree.join("outside")).unwrap();
        let target = LocalTarget;
        assert!(target.exists(&tree).await.unwrap());
        let bytes = target.remove(&tree).await.unwrap();
        assert!(bytes >= 64 * 1024, "{bytes}");
        assert!(!target.exists(&tree).await.unwrap());
        assert!(Path::new("/etc").exists(), "links are not followed");
        assert!(target.remove(&tree).await.is_err());
    }
}
