//! Everything the daemon says: typed events, their text, where the text
//! is written, and the notification sinks that deliver it.

pub mod delivery;
pub mod event;
pub mod journal;
pub mod log;
pub mod notify;
pub mod render;
pub mod signing;
pub mod sink;
pub mod smn;
pub mod webhook;
