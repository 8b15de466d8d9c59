//! Domain types and state machines. No I/O lives here: these are the words the rest of the
//! program speaks, and the rules about how things may change.

pub mod delivery;
pub mod ids;
pub mod time;

pub use ids::*;
pub use time::{Clock, SystemClock, Timestamp};
