//! GC's state in this process: its settings, the lock that keeps passes from overlapping, when
//! passes ran, and the targets checkouts live on. The passes themselves are periodic work
//! ([`crate::engine::periodic::gc`]); the agent runtime reads the settings and asks for a pass
//! when the work root runs short of space.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::model::gc::PassClock;
use crate::workspace::LOCAL_TARGET;
use crate::workspace::target::{LocalTarget, Target};

/// How GC behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSettings {
    /// Time between passes.
    pub interval: Duration,
    /// Free bytes the work root must keep: under it a pass runs at once and new checkouts
    /// wait. Zero turns the check off.
    pub min_free_disk: u64,
    /// Least time between two `git gc` runs of one mirror.
    pub mirror_gc_every: Duration,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            interval: Duration::from_secs(5 * 60),
            min_free_disk: 2 << 30,
            mirror_gc_every: Duration::from_secs(6 * 60 * 60),
        }
    }
}

impl GcSettings {
    pub fn from_args(args: &crate::config::GcArgs) -> GcSettings {
        GcSettings {
            interval: args.interval.max(Duration::from_millis(10)),
            min_free_disk: args.min_free_disk,
            mirror_gc_every: args.mirror_gc_every,
        }
    }
}

/// GC's state in the process: its settings, the lock that keeps passes from overlapping, when
/// passes ran, and the targets checkouts live on.
pub struct Gc {
    settings: Mutex<GcSettings>,
    /// Held while a pass runs.
    pub running: Arc<tokio::sync::Mutex<()>>,
    clock: Mutex<PassClock>,
    targets: RwLock<HashMap<String, Arc<dyn Target>>>,
    /// This instance, on claims.
    pub by: String,
    /// This process's claim token.
    pub token: String,
}

impl Gc {
    pub fn new(runner: &str) -> Gc {
        use rand::RngExt;
        let nonce: u64 = rand::rng().random();
        let local: Arc<dyn Target> = Arc::new(LocalTarget);
        Gc {
            settings: Mutex::new(GcSettings::default()),
            running: Arc::new(tokio::sync::Mutex::new(())),
            clock: Mutex::new(PassClock::default()),
            targets: RwLock::new(HashMap::from([(LOCAL_TARGET.to_owned(), local)])),
            by: runner.to_owned(),
            token: format!("{runner}#{nonce:016x}"),
        }
    }

    pub fn settings(&self) -> GcSettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the settings (at startup, or at run time).
    pub fn configure(&self, settings: GcSettings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// Puts a target in place under `name` (tests wrap the local one).
    pub fn set_target(&self, name: &str, target: Arc<dyn Target>) {
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), target);
    }

    /// The target named `name`, if it exists.
    pub fn target(&self, name: &str) -> Option<Arc<dyn Target>> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Whether a pass is running in this process.
    pub fn is_running(&self) -> bool {
        self.running.try_lock().is_err()
    }

    pub fn pass_clock(&self) -> std::sync::MutexGuard<'_, PassClock> {
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }
}
