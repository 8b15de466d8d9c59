//! End-to-end and store tests: one test binary, so the crate and its dependencies link once.

mod agents;
mod cli;
mod crash;
mod fake_github_tests;
mod gc;
mod github_app;
mod issues;
mod real_agents;
mod store;
mod support;
mod tick;
mod webhooks;
mod workspaces;
