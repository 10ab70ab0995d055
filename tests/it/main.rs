//! Integration tests: one crate, one module per concern.

mod client;
mod hostile;
mod properties;
mod vectors;
