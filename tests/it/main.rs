//! End-to-end and store tests: one test binary, so the crate and its dependencies link once.

mod cli;
mod crash;
mod fake_github_tests;
mod github_app;
mod store;
mod support;
mod tick;
mod webhooks;
