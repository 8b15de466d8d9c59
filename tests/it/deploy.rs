//! The deployment files, checked without a Docker engine or a Fly.io account (neither is
//! available where the tests run): `fly.toml` parses as TOML and says what foreman needs;
//! the `Dockerfile` parses into instructions and stages whose structure is right; the two,
//! the entrypoint script, `.dockerignore` and foreman's own settings agree with each other.
//! What this cannot show is that `docker build` succeeds: that needs an engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Instructions Docker knows.
const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// One Dockerfile instruction: its keyword and its arguments (continuations joined).
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

/// One build stage.
#[derive(Debug, Default)]
struct Stage {
    from: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

#[derive(Debug, Default)]
struct Dockerfile {
    directives: Vec<String>,
    /// `ARG`s before the first `FROM`, with their defaults.
    global_args: HashMap<String, String>,
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn parse(text: &str) -> Dockerfile {
        let mut file = Dockerfile::default();
        let mut pending: Option<(String, usize)> = None;
        let mut in_header = true;
        for (number, raw) in text.lines().enumerate() {
            let number = number + 1;
            let trimmed = raw.trim();
            if in_header && let Some(directive) = trimmed.strip_prefix("# syntax=") {
                file.directives.push(directive.to_owned());
                continue;
            }
            if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
                continue;
            }
            in_header = false;
            let (mut text, start) = pending.take().unwrap_or((String::new(), number));
            if let Some(continued) = trimmed.strip_suffix('\\') {
                text.push_str(continued);
                text.push(' ');
                pending = Some((text, start));
                continue;
            }
            text.push_str(trimmed);
            let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
            let keyword = keyword.to_ascii_uppercase();
            assert!(
                INSTRUCTIONS.contains(&keyword.as_str()),
                "Dockerfile line {start}: unknown instruction `{keyword}`"
            );
            let instruction = Instruction {
                keyword: keyword.clone(),
                args: args.split_whitespace().collect::<Vec<_>>().join(" "),
                line: start,
            };
            if keyword == "FROM" {
                let words: Vec<&str> = instruction.args.split(' ').collect();
                let (from, name) = match words.as_slice() {
                    [image] => (image.to_string(), None),
                    [image, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
                        (image.to_string(), Some(name.to_string()))
                    }
                    _ => panic!("Dockerfile line {start}: malformed FROM"),
                };
                file.stages.push(Stage {
                    from,
                    name,
                    instructions: Vec::new(),
                });
            } else if let Some(stage) = file.stages.last_mut() {
                stage.instructions.push(instruction);
            } else {
                assert_eq!(
                    keyword, "ARG",
                    "Dockerfile line {start}: only ARG may come before the first FROM"
                );
                let (name, default) = instruction
                    .args
                    .split_once('=')
                    .unwrap_or((&instruction.args, ""));
                file.global_args.insert(name.to_owned(), default.to_owned());
            }
        }
        assert!(
            pending.is_none(),
            "the Dockerfile ends in a line continuation"
        );
        file
    }

    /// `FROM`'s image with the global `ARG` defaults (and `overrides`) substituted.
    fn image(&self, stage: &Stage, overrides: &[(&str, &str)]) -> String {
        let mut image = stage.from.clone();
        for (name, default) in &self.global_args {
            let value = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| default.clone());
            image = image.replace(&format!("${{{name}}}"), &value);
        }
        assert!(
            !image.contains('$'),
            "unresolved ARG in FROM {}",
            stage.from
        );
        image
    }

    fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no stage `{name}`"))
    }

    fn final_stage(&self) -> &Stage {
        self.stages.last().expect("at least one stage")
    }
}

impl Stage {
    fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .collect()
    }

    /// Every `ENV` of the stage, `KEY=value` pairs.
    fn env(&self) -> HashMap<String, String> {
        self.all("ENV")
            .iter()
            .flat_map(|i| i.args.split(' '))
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn runs(&self) -> String {
        self.all("RUN")
            .iter()
            .map(|i| i.args.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn dockerfile() -> Dockerfile {
    Dockerfile::parse(&read("Dockerfile"))
}

fn port_of(listen: &str) -> i64 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{listen}`"))
}

/// The npm versions `.ci/run` installs the agent CLIs at.
fn ci_cli_versions() -> (String, String) {
    let ci = read(".ci/run");
    let version = |package: &str| {
        ci.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{package}@")))
            .unwrap_or_else(|| panic!("{package} not pinned in .ci/run"))
            .to_owned()
    };
    (
        version("@anthropic-ai/claude-code"),
        version("@openai/codex"),
    )
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged() {
    let file = dockerfile();
    assert_eq!(file.directives, ["docker/dockerfile:1"]);

    // Build: the Rust image, the release binary, from the locked dependencies.
    let build = file.stage("build");
    assert!(file.image(build, &[]).starts_with("rust:"), "{build:?}");
    assert!(file.image(build, &[]).contains("-slim-"), "{build:?}");
    assert!(
        build
            .runs()
            .contains("cargo build --release --locked --bin foreman"),
        "{}",
        build.runs()
    );

    // Runtime: Debian slim, with or without Node and the agent CLIs.
    assert_eq!(file.global_args["AGENT_CLIS"], "false");
    let plain = file.stage("runtime-false");
    assert!(
        file.image(plain, &[]).starts_with("debian:") && file.image(plain, &[]).ends_with("-slim"),
        "{plain:?}"
    );
    let agents = file.stage("runtime-true");
    assert!(file.image(agents, &[]).starts_with("node:"));
    assert!(file.image(agents, &[]).ends_with("-slim"));
    let debian = &file.global_args["DEBIAN"];
    for stage in [build, plain, agents] {
        assert!(
            file.image(stage, &[]).contains(debian.as_str()),
            "every stage on the same Debian release (the binary's C library): {}",
            stage.from
        );
    }
    let npm = agents.runs();
    let (claude, codex) = ci_cli_versions();
    let args: HashMap<String, String> = agents
        .all("ARG")
        .iter()
        .filter_map(|a| a.args.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(npm.contains("npm install --global"), "{npm}");
    assert!(npm.contains("\"@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}\""));
    assert!(npm.contains("\"@openai/codex@${CODEX_VERSION}\""));
    assert_eq!(args["CLAUDE_CODE_VERSION"], claude, "same as the tests");
    assert_eq!(args["CODEX_VERSION"], codex, "same as the tests");

    let runtime = file.final_stage();
    for value in ["false", "true"] {
        let base = file.image(runtime, &[("AGENT_CLIS", value)]);
        assert_eq!(base, format!("runtime-{value}"));
        let position = file
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(base.as_str()));
        assert!(
            position.is_some_and(|p| p + 1 < file.stages.len()),
            "AGENT_CLIS={value} picks a stage defined before the runtime"
        );
    }
    let runs = runtime.runs();
    let install = runs
        .split("&&")
        .find(|c| c.contains("apt-get install"))
        .expect("an apt-get install");
    // bubblewrap: the agents' sandbox.
    for package in [
        "bubblewrap",
        "ca-certificates",
        "git",
        "--no-install-recommends",
    ] {
        assert!(install.contains(package), "{install}");
    }
    assert!(runs.contains("rm -rf /var/lib/apt/lists/*"), "{runs}");
    assert!(
        runs.contains("useradd --system --uid 10001"),
        "an unprivileged user: {runs}"
    );
    let copies = runtime.all("COPY");
    let from_build: Vec<_> = copies
        .iter()
        .filter(|c| c.args.starts_with("--from="))
        .collect();
    assert_eq!(from_build.len(), 1);
    assert!(
        from_build[0]
            .args
            .starts_with("--from=build /usr/local/bin/foreman")
    );

    // Settings: foreman listens on all interfaces, keeps its state on the /data volume.
    let env = runtime.env();
    assert_eq!(env["FOREMAN_LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["DATABASE_URL"], "sqlite:///data/foreman.db");
    assert_eq!(env["FOREMAN_WORK_ROOT"], "/data/work");
    assert!(env["FOREMAN_APP_FILE"].starts_with("/data/"));
    let exposed = &runtime.all("EXPOSE")[0].args;
    assert_eq!(
        exposed.parse::<i64>().unwrap(),
        port_of(&env["FOREMAN_LISTEN"])
    );
    assert_eq!(runtime.all("VOLUME")[0].args, "[\"/data\"]");

    // The process: tini reaps orphans; the entrypoint drops root before foreman starts.
    let entrypoint: Vec<String> =
        serde_json::from_str(&runtime.all("ENTRYPOINT")[0].args).expect("exec form ENTRYPOINT");
    assert_eq!(entrypoint, ["tini", "--", "foreman-entrypoint"]);
    let cmd: Vec<String> =
        serde_json::from_str(&runtime.all("CMD")[0].args).expect("exec form CMD");
    assert_eq!(cmd, ["serve"]);
    assert!(
        copies
            .iter()
            .any(|c| c.args == "docker/entrypoint.sh /usr/local/bin/foreman-entrypoint")
    );
    if let Some(user) = runtime.all("USER").last() {
        assert_ne!(user.args, "root", "line {}", user.line);
    }
}

#[test]
fn the_entrypoint_drops_root_and_is_valid_sh() {
    let script = read("docker/entrypoint.sh");
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(
        script.contains(
            "exec setpriv --reuid=foreman --regid=foreman --init-groups -- foreman \"$@\""
        ),
        "{script}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(repo("docker/entrypoint.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "the entrypoint is executable");
    let syntax = std::process::Command::new("sh")
        .arg("-n")
        .arg(repo("docker/entrypoint.sh"))
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
}

/// Whether `.dockerignore` leaves `path` out of the build context (the patterns this
/// repository uses: plain paths, and `**/NAME` or `**/*.EXT` anywhere).
fn ignored(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|pattern| {
        if let Some(any) = pattern.strip_prefix("**/") {
            let name = path.rsplit('/').next().unwrap_or(path);
            match any.strip_prefix('*') {
                Some(suffix) => name.ends_with(suffix),
                None => name == any,
            }
        } else {
            path == pattern || path.starts_with(&format!("{pattern}/"))
        }
    })
}

#[test]
fn the_build_context_has_what_the_build_copies_and_no_secrets() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for must in [
        "target",
        ".git",
        "github-app.json",
        "**/*.pem",
        "**/*.db",
        "**/.env",
    ] {
        assert!(patterns.iter().any(|p| p == must), "{must} is not ignored");
    }
    let file = dockerfile();
    for stage in &file.stages {
        for copy in stage.all("COPY") {
            if copy.args.starts_with("--from=") {
                continue;
            }
            let words: Vec<&str> = copy.args.split(' ').collect();
            let (sources, _destination) = words.split_at(words.len() - 1);
            for source in sources {
                assert!(
                    repo(source).exists(),
                    "Dockerfile line {}: {source} does not exist",
                    copy.line
                );
                assert!(
                    !ignored(&patterns, source),
                    "Dockerfile line {}: {source} is left out by .dockerignore",
                    copy.line
                );
            }
        }
    }
    // Everything the crate compiles from is copied: the sources and what they include.
    let build = file.stage("build");
    let copied: Vec<String> = build
        .all("COPY")
        .iter()
        .flat_map(|c| c.args.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "migrations",
        "prompts",
        "app-manifest",
        "benches",
    ] {
        assert!(
            copied.iter().any(|c| c == needed),
            "the build stage does not copy {needed}"
        );
    }
}

fn fly() -> toml::Table {
    read("fly.toml").parse().expect("fly.toml is valid TOML")
}

#[test]
fn fly_toml_serves_checks_and_keeps_the_machine_running() {
    let fly = fly();
    let str_of = |v: &toml::Value| v.as_str().unwrap_or_default().to_owned();
    assert_eq!(str_of(&fly["build"]["dockerfile"]), "Dockerfile");
    assert!(repo("Dockerfile").exists());
    let agent_clis = str_of(&fly["build"]["args"]["AGENT_CLIS"]);
    assert!(agent_clis == "true" || agent_clis == "false");
    assert_eq!(str_of(&fly["kill_signal"]), "SIGTERM");

    let env = fly["env"].as_table().expect("[env]");
    let service = fly["http_service"].as_table().expect("[http_service]");
    let port = service["internal_port"]
        .as_integer()
        .expect("internal_port");
    assert_eq!(port, port_of(&str_of(&env["FOREMAN_LISTEN"])));
    assert!(str_of(&env["FOREMAN_LISTEN"]).starts_with("0.0.0.0:"));
    let image_env = dockerfile().final_stage().env();
    assert_eq!(port, port_of(&image_env["FOREMAN_LISTEN"]));
    assert_eq!(service["force_https"].as_bool(), Some(true));
    let auto_stop = &service["auto_stop_machines"];
    assert!(
        auto_stop.as_str() == Some("off") || auto_stop.as_bool() == Some(false),
        "machines must keep running: {auto_stop}"
    );
    assert!(service["min_machines_running"].as_integer().unwrap_or(0) >= 1);
    let checks = service["checks"].as_array().expect("http_service.checks");
    assert!(
        checks
            .iter()
            .any(|c| c["path"].as_str() == Some("/healthz") && c["method"].as_str() == Some("GET")),
        "{checks:?}"
    );

    let app = str_of(&fly["app"]);
    assert_eq!(
        str_of(&env["FOREMAN_PUBLIC_URL"]),
        format!("https://{app}.fly.dev"),
        "the public URL follows the app's name"
    );

    let mounts = fly["mounts"].as_array().expect("[[mounts]]");
    let data = mounts
        .iter()
        .find(|m| m["destination"].as_str() == Some("/data"))
        .expect("a volume at /data");
    assert!(data["source"].as_str().is_some_and(|s| !s.is_empty()));
    for (key, prefix) in [
        ("DATABASE_URL", "sqlite:///data/"),
        ("FOREMAN_WORK_ROOT", "/data/"),
        ("FOREMAN_APP_FILE", "/data/"),
    ] {
        assert!(
            str_of(&env[key]).starts_with(prefix),
            "{key} must live on the volume"
        );
    }
}

/// Every setting the image and fly.toml set is one foreman has.
#[test]
fn the_deployment_sets_only_real_settings() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_foreman"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let fly = fly();
    let mut names: Vec<String> = fly["env"].as_table().unwrap().keys().cloned().collect();
    names.extend(dockerfile().final_stage().env().into_keys());
    for name in names.iter().filter(|n| *n != "HOME") {
        assert!(
            help.contains(&format!("env: {name}")),
            "`{name}` is not a foreman setting"
        );
    }
}
