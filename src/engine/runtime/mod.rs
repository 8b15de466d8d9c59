//! Agents running: a session's turn as a sandboxed process in its checkout, what it reports
//! while it runs, and how the turn ends.

pub mod capacity;
pub mod process;
pub mod push;
pub mod tokens;
pub mod turns;
