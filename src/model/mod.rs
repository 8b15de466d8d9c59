//! Domain types and state machines. No I/O lives here: these are the words the rest of the
//! program speaks, and the rules about how things may change.

pub mod delivery;
pub mod gc;
pub mod ids;
pub mod links;
pub mod markers;
pub mod network;
pub mod outbox;
pub mod pulls;
pub mod question;
pub mod repo_config;
pub mod secrets;
pub mod session;
pub mod supervisor;
pub mod targets;
pub mod text;
pub mod time;
pub mod workspace;

pub use ids::*;
pub use session::{
    AgentKind, Budget, FollowupKind, Objective, ObjectiveStatus, Role, Session, SessionStatus,
    Usage, label_missed,
};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use workspace::{PullRequest, Workspace, WorkspaceStatus};
