//! foreman: a GitHub App that hands issues to a team of AI coding agents and supervises
//! them until the work is merged or a human decides otherwise.

pub mod cli;
pub mod github;
