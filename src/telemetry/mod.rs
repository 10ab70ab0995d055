//! Prometheus metrics and the health endpoints.
//!
//! Metrics are recorded with the `metrics` facade everywhere in the code
//! (a no-op until a recorder is installed, so a daemon without
//! `metrics.listen` pays nothing) and exposed by
//! `metrics-exporter-prometheus` in the text format.

pub mod http;
pub mod names;
pub mod stats;

pub use names::*;
pub use stats::{ERROR_TYPES, Stats};
