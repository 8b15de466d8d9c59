//! foreman: a GitHub App that hands issues to a team of AI coding agents and supervises
//! them until the work is merged or a human decides otherwise.
//!
//! The HTTP server ([`server`]) verifies and stores webhook deliveries; the [`engine`]
//! processes them and runs periodic work; the [`store`] is the only place with SQL; [`model`]
//! holds the domain types and their rules; [`github`] speaks to GitHub.

pub mod agent;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod egress;
pub mod engine;
pub mod github;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod sandbox;
pub mod server;
pub mod service;
pub mod setup;
mod snapshot;
pub mod store;
pub mod web;
pub mod workspace;
