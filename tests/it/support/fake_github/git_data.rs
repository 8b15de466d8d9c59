//! The Git database API (blobs, trees, commits, refs) on a repository that follows a real
//! bare git repository: each call is carried out there, so what foreman makes through the
//! API is what its git reads back.

use std::io::Write;

use base64::Engine as _;

use super::*;

/// Runs git on the bare repository with `stdin` and `env`; `None` when it fails.
fn git_with(
    dir: &std::path::Path,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &str)],
) -> Option<String> {
    let mut child = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(stdin).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        eprintln!(
            "fake git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl State {
    pub(super) fn git_data_routes(&mut self, req: &Req, key: &str, rest: &[&str]) -> Reply {
        let Some(dir) = self.repos[key].git_dir.clone() else {
            return Reply::error(409, "Git Repository is empty.");
        };
        let body = req.body.cloned().unwrap_or(Value::Null);
        let text = |field: &str| body[field].as_str().map(str::to_owned);
        match (req.method, rest) {
            ("POST", ["blobs"]) => {
                let Some(content) = text("content") else {
                    return Reply::invalid("Blob", "content", "missing_field", None);
                };
                let bytes = match body["encoding"].as_str().unwrap_or("utf-8") {
                    "base64" => match base64::engine::general_purpose::STANDARD.decode(&content) {
                        Ok(b) => b,
                        Err(_) => return Reply::invalid("Blob", "content", "invalid", None),
                    },
                    "utf-8" => content.into_bytes(),
                    _ => return Reply::invalid("Blob", "encoding", "invalid", None),
                };
                match git_with(&dir, &["hash-object", "-w", "--stdin"], &bytes, &[]) {
                    Some(sha) => Reply::created(json!({"sha": sha})),
                    None => Reply::error(500, "cannot store the blob"),
                }
            }
            ("POST", ["trees"]) => {
                let Some(entries) = body["tree"].as_array() else {
                    return Reply::invalid("Tree", "tree", "missing_field", None);
                };
                let index = dir.join(format!("fake-index-{}", random_sha()));
                let index_env = index.display().to_string();
                let env = [("GIT_INDEX_FILE", index_env.as_str())];
                let made = (|| {
                    match body["base_tree"].as_str() {
                        Some(base) => git_with(&dir, &["read-tree", base], b"", &env)?,
                        None => git_with(&dir, &["read-tree", "--empty"], b"", &env)?,
                    };
                    // `mode sha<TAB>path` per entry; mode 0 removes the path.
                    let mut info = String::new();
                    for e in entries {
                        let path = e["path"].as_str()?;
                        match (e["sha"].as_str(), e["mode"].as_str()) {
                            (None, _) => info.push_str(&format!("0 {}\t{path}\n", "0".repeat(40))),
                            (Some(sha), Some(mode)) => {
                                info.push_str(&format!("{mode} {sha}\t{path}\n"))
                            }
                            (Some(_), None) => return None,
                        }
                    }
                    git_with(
                        &dir,
                        &["update-index", "--index-info"],
                        info.as_bytes(),
                        &env,
                    )?;
                    git_with(&dir, &["write-tree"], b"", &env)
                })();
                let _ = std::fs::remove_file(&index);
                match made {
                    Some(sha) => Reply::created(json!({"sha": sha})),
                    None => Reply::invalid("Tree", "tree", "invalid", None),
                }
            }
            ("POST", ["commits"]) => {
                let (Some(message), Some(tree)) = (text("message"), text("tree")) else {
                    return Reply::invalid("Commit", "message", "missing_field", None);
                };
                let mut args = vec!["commit-tree".to_owned(), tree];
                for parent in body["parents"].as_array().into_iter().flatten() {
                    args.extend([
                        "-p".to_owned(),
                        parent.as_str().unwrap_or_default().to_owned(),
                    ]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                // Without an author, GitHub makes the App's bot account the author and
                // itself the committer, and signs the commit.
                let author = bot_login();
                self.ensure_user(&author);
                let id = self.user_json(&author)["id"].as_i64().unwrap_or_default();
                let email = format!("{id}+{author}@users.noreply.github.com");
                let env = [
                    ("GIT_AUTHOR_NAME", author.as_str()),
                    ("GIT_AUTHOR_EMAIL", email.as_str()),
                    ("GIT_COMMITTER_NAME", "GitHub"),
                    ("GIT_COMMITTER_EMAIL", "noreply@github.com"),
                ];
                match git_with(&dir, &args, message.as_bytes(), &env) {
                    Some(sha) => {
                        self.repo_mut(key).api_commits.push(sha.clone());
                        Reply::created(json!({
                            "sha": sha,
                            "verification": {"verified": true, "reason": "valid"},
                        }))
                    }
                    None => Reply::invalid("Commit", "tree", "invalid", None),
                }
            }
            ("POST", ["refs"]) => {
                let (Some(name), Some(sha)) = (text("ref"), text("sha")) else {
                    return Reply::invalid("Reference", "ref", "missing_field", None);
                };
                if !name.starts_with("refs/") {
                    return Reply::invalid("Reference", "ref", "invalid", None);
                }
                let zero = "0".repeat(40);
                if git_with(&dir, &["update-ref", &name, &sha, &zero], b"", &[]).is_none() {
                    return Reply::error(422, "Reference already exists");
                }
                self.sync_git();
                Reply::created(json!({"ref": name, "object": {"sha": sha, "type": "commit"}}))
            }
            ("PATCH", ["refs", "heads", branch @ ..]) if !branch.is_empty() => {
                let name = format!("refs/heads/{}", branch.join("/"));
                let Some(sha) = text("sha") else {
                    return Reply::invalid("Reference", "sha", "missing_field", None);
                };
                let Some(old) = git_with(&dir, &["rev-parse", "--verify", &name], b"", &[]) else {
                    return Reply::error(422, "Reference does not exist");
                };
                let force = body["force"].as_bool().unwrap_or(false);
                if !force
                    && git_with(&dir, &["merge-base", "--is-ancestor", &old, &sha], b"", &[])
                        .is_none()
                {
                    return Reply::error(422, "Update is not a fast forward");
                }
                if git_with(&dir, &["update-ref", &name, &sha, &old], b"", &[]).is_none() {
                    return Reply::error(422, "Object does not exist");
                }
                self.sync_git();
                Reply::ok(json!({"ref": name, "object": {"sha": sha, "type": "commit"}}))
            }
            _ => Reply::not_found(),
        }
    }
}
