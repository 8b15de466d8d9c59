//! Everything that speaks GitHub: webhook signatures and payloads, App authentication,
//! and the REST client.

pub mod app;
pub mod events;
pub mod rest;
pub mod signature;
