//! The tick loop's lease: with two instances on one database exactly one runs the periodic
//! work at a time, and the other takes over when the holder stops or dies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foreman::engine::Engine;
use foreman::engine::periodic::Periodic;
use foreman::engine::periodic::tick::{self, TickSettings, TickTask};
use foreman::model::SystemClock;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;
use crate::support::{TestDb, eventually};

/// Records which instance ran each tick, and whether two ever overlapped.
#[derive(Default)]
struct Log {
    runs: Vec<&'static str>,
    running: Option<&'static str>,
    overlaps: usize,
}

struct Recorder {
    who: &'static str,
    log: Arc<Mutex<Log>>,
}

impl TickTask for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn run<'a>(&'a self, _periodic: &'a Arc<Periodic>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            {
                let mut log = self.log.lock().unwrap();
                if log.running.is_some() {
                    log.overlaps += 1;
                }
                log.running = Some(self.who);
                log.runs.push(self.who);
            }
            // Cleared however the run ends, an instance "dying" (its task aborted) included.
            let _running = Running(self.log.clone());
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(())
        })
    }
}

/// Marks the recorder not running when dropped.
struct Running(Arc<Mutex<Log>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.lock().unwrap().running = None;
    }
}

fn instance(
    who: &'static str,
    engine: Arc<Engine>,
    log: &Arc<Mutex<Log>>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let settings = TickSettings {
        holder: who.to_owned(),
        interval: Duration::from_millis(20),
        lease: Duration::from_millis(600),
    };
    let tasks: Vec<Box<dyn TickTask>> = vec![Box::new(Recorder {
        who,
        log: log.clone(),
    })];
    let handle = tokio::spawn(tick::run(
        engine.periodic.clone(),
        settings,
        tasks,
        stop.clone(),
    ));
    (stop, handle)
}

fn count(log: &Arc<Mutex<Log>>, who: &str) -> usize {
    log.lock()
        .unwrap()
        .runs
        .iter()
        .filter(|w| **w == who)
        .count()
}

async fn one_instance_ticks_and_another_takes_over(db: TestDb) {
    let log = Arc::new(Mutex::new(Log::default()));
    // Two engines with separate connection pools, as two processes would have.
    let a = Arc::new(Engine::new(db.store().await, Arc::new(SystemClock)));
    let b = Arc::new(Engine::new(db.store().await, Arc::new(SystemClock)));
    let (stop_a, run_a) = instance("a", a.clone(), &log);
    eventually("a to tick", || async {
        (count(&log, "a") >= 3).then_some(())
    })
    .await;
    let (stop_b, run_b) = instance("b", b.clone(), &log);
    // While a holds the lease, b never runs the work.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(&log, "b"), 0, "b ticked while a held the lease");

    // a stops gracefully and releases the lease: b takes over.
    stop_a.cancel();
    run_a.await.unwrap();
    eventually("b to take over", || async {
        (count(&log, "b") >= 3).then_some(())
    })
    .await;

    // A third instance that "dies" holding the lease (its task aborted: no release) is
    // replaced once the lease lapses.
    stop_b.cancel();
    run_b.await.unwrap();
    let c = Arc::new(Engine::new(db.store().await, Arc::new(SystemClock)));
    let (_stop_c, run_c) = instance("c", c, &log);
    eventually("c to tick", || async {
        (count(&log, "c") >= 1).then_some(())
    })
    .await;
    run_c.abort();
    let _ = run_c.await;
    let before = count(&log, "a");
    let (stop_a2, run_a2) = instance("a", a, &log);
    eventually("a to take over after c's lease lapsed", || async {
        (count(&log, "a") > before).then_some(())
    })
    .await;
    stop_a2.cancel();
    run_a2.await.unwrap();
    assert_eq!(
        log.lock().unwrap().overlaps,
        0,
        "two instances ran ticks at once"
    );
}
on_both_backends!(one_instance_ticks_and_another_takes_over);
