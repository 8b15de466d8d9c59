//! Periodic work: the tick loop and the tasks it runs — the scheduler, the supervisor, the
//! outbox, the status comments, reconciliation and GC.

pub mod gc;
pub mod outbox;
pub mod question_comments;
pub mod reconcile;
pub mod scheduler;
pub mod status;
pub mod supervisor;
pub mod tick;
