//! Checkout benchmark: how long preparing the Nth workspace of a repository takes (mirror
//! warm), against a plain `git clone` of the same repository from the same origin — and, for
//! comparison, the other ways a checkout could be made from the mirror (`git worktree add`,
//! `git clone --shared` plus checkout).
//!
//! The repository is generated: 3,000 source files and 5,000 commits of small edits, so its
//! history is deltas over deltas like a real project's (about 28 MB packed).
//!
//! Run with `cargo bench --bench checkout`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foreman::workspace::{Prepare, WorkspaceSettings, Workspaces};

const FILES: usize = 3_000;
const COMMITS: usize = 5_000;
const RUNS: usize = 5;
const WORDS: &[&str] = &[
    "let", "mut", "fn", "impl", "struct", "enum", "match", "if", "else", "for", "while", "return",
    "self", "Some", "None", "Ok", "Err", "pub", "use", "mod", "async", "await", "move", "where",
];

/// A small deterministic generator (xorshift), so every run benches the same repository.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn line(&mut self) -> String {
        let n = 4 + self.below(9);
        let words: Vec<&str> = (0..n).map(|_| WORDS[self.below(WORDS.len())]).collect();
        format!("{};\n", words.join(" "))
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdout(Stdio::null())
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

/// Writes the repository's history with `git fast-import`.
fn generate(origin: &Path) {
    std::fs::create_dir_all(origin).unwrap();
    git(
        origin,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet", "--done"])
        .current_dir(origin)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufWriter::new(import.stdin.take().unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut files: Vec<Vec<String>> = (0..FILES)
        .map(|_| (0..60 + rng.below(140)).map(|_| rng.line()).collect())
        .collect();
    let path = |i: usize| format!("src/m{:02}/f{i:04}.rs", i % 40);
    let blob = |out: &mut dyn Write, p: String, lines: &[String]| {
        let body = lines.concat();
        write!(out, "M 644 inline {p}\ndata {}\n{body}\n", body.len()).unwrap();
    };
    writeln!(out, "commit refs/heads/main\nmark :1\ncommitter Dev <dev@example.com> 1600000000 +0000\ndata 8\ninitial").unwrap();
    for (i, lines) in files.iter().enumerate() {
        blob(&mut out, path(i), lines);
    }
    for c in 2..=COMMITS {
        let message = format!("change {c}\n");
        write!(
            out,
            "commit refs/heads/main\nmark :{c}\ncommitter Dev <dev@example.com> {} +0000\ndata {}\n{message}from :{}\n",
            1_600_000_000 + c * 60,
            message.len(),
            c - 1
        )
        .unwrap();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(FILES);
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(files[i].len());
                let line = rng.line();
                if rng.below(2) == 0 {
                    files[i][at] = line;
                } else {
                    files[i].insert(at, line);
                }
            }
            blob(&mut out, path(i), &files[i]);
        }
    }
    writeln!(out, "done").unwrap();
    drop(out);
    assert!(import.wait().unwrap().success());
    git(origin, &["repack", "-a", "-d", "--quiet"]);
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn main() {
    // In memory when the machine has it: this measures the work each way does, not how a
    // virtual disk throttles bursts of writes (which slows both alike, and varies by the run).
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    println!("working in {}", dir.path().display());
    let origins = dir.path().join("origins");
    let origin = origins.join("bench/repo.git");
    let generated = timed(|| generate(&origin));
    let pack: u64 = std::fs::read_dir(origin.join("objects/pack"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .sum();
    println!(
        "repository: {FILES} files, {COMMITS} commits, {:.1} MB packed (generated in {})",
        pack as f64 / 1e6,
        secs(generated)
    );
    let url = format!("file://{}", origins.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut settings = WorkspaceSettings::github(
        dir.path().join("work"),
        std::sync::Arc::new(foreman::sandbox::Sandbox::bwrap()),
    );
    settings.git_url = url.clone();
    let workspaces = Workspaces::new(settings);
    let prepare = |n: usize| {
        let path = dir.path().join(format!("work/checkouts/{n}"));
        let branch = format!("foreman/1-bench-s{n}");
        timed(|| {
            runtime
                .block_on(workspaces.prepare(&Prepare {
                    repository: "bench/repo",
                    base: None,
                    path: &path,
                    branch: Some(&branch),
                    start_at: None,
                    auth: None,
                }))
                .unwrap();
        })
    };
    let first = prepare(1);
    let nth = median((2..2 + RUNS).map(prepare).collect());

    let clone_url = format!("{url}/bench/repo.git");
    let plain = median(
        (0..3)
            .map(|n| {
                let target = dir.path().join(format!("plain{n}"));
                timed(|| {
                    git(
                        dir.path(),
                        &["clone", "--quiet", &clone_url, target.to_str().unwrap()],
                    )
                })
            })
            .collect(),
    );
    let mirror = dir.path().join("work/mirrors/bench/repo.git");
    let worktree = median(
        (0..3)
            .map(|n| {
                let target = dir.path().join(format!("wt{n}"));
                let branch = format!("wt{n}");
                timed(|| {
                    git(
                        &mirror,
                        &[
                            "worktree",
                            "add",
                            "--quiet",
                            "-b",
                            &branch,
                            target.to_str().unwrap(),
                            "main",
                        ],
                    )
                })
            })
            .collect(),
    );
    let shared = median(
        (0..3)
            .map(|n| {
                let target = dir.path().join(format!("shared{n}"));
                timed(|| {
                    git(
                        dir.path(),
                        &[
                            "clone",
                            "--quiet",
                            "--shared",
                            mirror.to_str().unwrap(),
                            target.to_str().unwrap(),
                        ],
                    )
                })
            })
            .collect(),
    );
    println!("first checkout (mirror and seed made):   {}", secs(first));
    println!("Nth checkout (median of {RUNS}):             {}", secs(nth));
    println!("plain git clone (median of 3):            {}", secs(plain));
    println!(
        "alternatives from the warm mirror: worktree add {}, clone --shared + checkout {}",
        secs(worktree),
        secs(shared)
    );
    println!(
        "Nth checkout is {:.1}x faster than a plain clone",
        plain.as_secs_f64() / nth.as_secs_f64()
    );
}
