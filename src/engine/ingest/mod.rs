//! Deliveries in: the inbox processor takes stored webhooks in arrival order and hands each to
//! the handler of its event, which reads what it needs and writes its effects in the
//! transaction that marks the delivery handled.

pub mod handlers;
pub mod inbox;
pub mod issues;
pub mod pull_events;
pub mod replies;
pub mod work;
