//! What can happen to an objective — start, steer, ask, publish, finish — as one service that
//! both the webhook handlers and the agents' MCP tools call, so the rules hold whichever way
//! a change comes in.

pub mod followups;
pub mod lifecycle;
pub mod publish;
pub mod pulls;
pub mod questions;
pub mod requests;
