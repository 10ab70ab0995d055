//! Everything the daemon says: typed events, their log lines, and the
//! notification sinks that deliver them.

pub mod event;
pub mod log;
pub mod webhook;
