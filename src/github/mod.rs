//! Everything that speaks GitHub: webhook signatures and payloads, App authentication,
//! the REST client, and what GitHub says of a repository (its foreman config, people's
//! permissions), cached.

pub mod app;
pub mod commits;
pub mod events;
pub mod repos;
pub mod rest;
pub mod signature;
