//! Typed webhook payloads (filled in by the events work).
