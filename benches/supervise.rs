//! Supervisor benchmark: one supervise pass (load every active objective's view in one
//! statement, decide) over 10,000 active objectives with 50,000 sessions, on SQLite and on
//! PostgreSQL, and at 2,500 and 5,000 objectives to show how the time grows.
//!
//! Run with `cargo bench --bench supervise`. PostgreSQL is reached at `FOREMAN_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); a fresh database is made and
//! dropped. Set `FOREMAN_TEST_POSTGRES=skip` to bench SQLite alone.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use foreman::engine::Engine;
use foreman::engine::objective::lifecycle;
use foreman::engine::periodic::supervisor;
use foreman::model::AgentKind;
use foreman::model::supervisor::Settings;
use foreman::model::{Budget, ObjectiveStatus, Role, SessionStatus, SystemClock};
use foreman::store::{NewObjective, NewSession};
use secrecy::SecretString;

/// Objective counts measured, in order; the last is the goal's.
const SIZES: [usize; 3] = [2_500, 5_000, 10_000];
/// Workers per objective (with its manager: five sessions each).
const WORKERS: usize = 4;
/// Passes timed at each size (the median is printed).
const PASSES: usize = 15;

fn objective(issue: usize) -> NewObjective {
    NewObjective {
        installation_id: None,
        repository_id: Some(1),
        repository: format!("octo/repo-{}", issue % 50),
        issue_number: issue as u64,
        title: format!("Issue {issue}"),
        body: "Make it work.".into(),
        author: "alice".into(),
        author_permission: "write".into(),
        budget: Budget {
            sessions: 50,
            turns: 500,
            wall: Duration::from_secs(86_400),
            cost_micros: None,
        },
        config: Default::default(),
        trigger_key: None,
        previous: None,
        started_by: None,
    }
}

/// Adds objectives `from..to`: each a manager and four workers, three of them ended and one
/// queued (the steady state of busy objectives; a few have no live worker).
async fn populate(engine: &Engine, from: usize, to: usize) {
    const BATCH: usize = 250;
    let mut issue = from;
    while issue < to {
        let mut tx = engine.store.begin().await.unwrap();
        for i in issue..(issue + BATCH).min(to) {
            let now = engine.clock.now();
            let (id, manager) = lifecycle::start_in(&engine.objectives, &mut tx, &objective(i))
                .await
                .unwrap()
                .unwrap();
            for w in 0..WORKERS {
                let worker = tx
                    .insert_session(
                        &NewSession {
                            objective_id: id,
                            role: Role::Worker,
                            agent: AgentKind::Command,
                            title: format!("task {w}"),
                            instructions: "do it".into(),
                            spawned_by: Some(manager),
                            depends_on: Vec::new(),
                        },
                        now,
                    )
                    .await
                    .unwrap();
                if w + 1 < WORKERS || i % 10 == 0 {
                    tx.set_session_status(worker, SessionStatus::Cancelled, None, now)
                        .await
                        .unwrap();
                }
            }
        }
        tx.commit().await.unwrap();
        issue = (issue + BATCH).min(to);
    }
}

async fn bench(backend: &str, url: &str) {
    let store = foreman::service::open_store(&SecretString::from(url.to_owned()))
        .await
        .unwrap();
    let engine = Engine::new(store, Arc::new(SystemClock));
    let settings = Settings::default();
    let mut have = 0;
    let mut figures = Vec::new();
    for size in SIZES {
        let started = Instant::now();
        populate(&engine, have, size).await;
        have = size;
        eprintln!(
            "{backend}: {size} objectives stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut times = Vec::new();
        for _ in 0..PASSES {
            let started = Instant::now();
            let pass = supervisor::supervise(&engine.periodic, &settings)
                .await
                .unwrap();
            times.push(started.elapsed());
            assert_eq!(pass.objectives, size, "every objective is active");
            assert_eq!(pass.pokes + pass.respawns + pass.escalations, 0);
        }
        times.sort();
        let median = times[PASSES / 2];
        figures.push((size, median));
        println!(
            "{backend}: supervise pass over {size} active objectives ({} sessions): median {:.1} ms, best {:.1} ms",
            size * (WORKERS + 1),
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
        );
    }
    let (small, t_small) = figures[0];
    let (large, t_large) = *figures.last().unwrap();
    println!(
        "{backend}: time ×{:.2} for objectives ×{:.0}",
        t_large.as_secs_f64() / t_small.as_secs_f64(),
        large as f64 / small as f64
    );
    let live = engine.store.live_objectives().await.unwrap();
    assert!(live.iter().all(|o| o.status == ObjectiveStatus::Active));
}

fn main() {
    common::on_both_backends("supervise_bench", bench);
}
