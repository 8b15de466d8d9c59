//! End-to-end and store tests: one test binary, so the crate and its dependencies link once.

mod agents;
mod authority;
mod cli;
mod crash;
mod deploy;
mod doctor;
mod egress;
mod fake_github_tests;
mod gc;
mod github_app;
mod instances;
mod issues;
mod outage;
mod pulls;
mod questions;
mod real_agents;
mod sandbox;
mod setup;
mod shutdown;
mod store;
mod supervisor;
mod support;
mod tick;
mod web;
mod webhooks;
mod workspaces;
