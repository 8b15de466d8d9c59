//! Copying a checked-out tree, fast: directories first, then files on several threads (each
//! copy is a `copy_file_range` in the kernel), keeping modes and modification times so that
//! git's index of the copied tree stays valid and nothing needs re-hashing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};

/// Threads copying files at once.
const COPY_THREADS: usize = 4;

/// Copies the tree at `from` to `to` (which must not exist).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut links = Vec::new();
    walk(from, Path::new(""), &mut dirs, &mut files, &mut links)?;
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for dir in &dirs {
        std::fs::create_dir_all(to.join(dir))
            .with_context(|| format!("cannot create {}", to.join(dir).display()))?;
    }
    for link in &links {
        let target = std::fs::read_link(from.join(link))?;
        std::os::unix::fs::symlink(&target, to.join(link))
            .with_context(|| format!("cannot link {}", to.join(link).display()))?;
    }
    let next = AtomicUsize::new(0);
    let failures = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..COPY_THREADS)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else {
                            return Ok(());
                        };
                        copy_file(&from.join(file), &to.join(file))?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("copy thread panicked")))
                    .err()
            })
            .collect::<Vec<_>>()
    });
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One file: its bytes (copied in the kernel), its mode and its modification time, with as
/// few system calls as it takes.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut source =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let meta = source.metadata()?;
    let mut target = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    std::io::copy(&mut source, &mut target)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    target
        .set_modified(meta.modified()?)
        .with_context(|| format!("cannot set the time of {}", to.display()))?;
    Ok(())
}

fn walk(
    root: &Path,
    rel: &Path,
    dirs: &mut Vec<PathBuf>,
    files: &mut Vec<PathBuf>,
    links: &mut Vec<PathBuf>,
) -> Result<()> {
    let here = root.join(rel);
    for entry in
        std::fs::read_dir(&here).with_context(|| format!("cannot read {}", here.display()))?
    {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            links.push(path);
        } else if kind.is_dir() {
            dirs.push(path.clone());
            walk(root, &path, dirs, files, links)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn trees_are_copied_with_modes_times_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("a/b")).unwrap();
        std::fs::write(from.join("a/b/file.txt"), "hello").unwrap();
        std::fs::write(from.join("run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(from.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("a/b/file.txt", from.join("link")).unwrap();
        std::fs::create_dir_all(from.join("empty")).unwrap();
        let to = dir.path().join("to");
        copy_tree(&from, &to).unwrap();
        assert_eq!(
            std::fs::read_to_string(to.join("a/b/file.txt")).unwrap(),
            "hello"
        );
        assert_eq!(std::fs::read_to_string(to.join("link")).unwrap(), "hello");
        assert!(to.join("empty").is_dir());
        let mode = std::fs::metadata(to.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let times = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(
            times(&from.join("a/b/file.txt")),
            times(&to.join("a/b/file.txt"))
        );
    }
}
