//! Integration tests: one crate, one module per concern.

mod client;
mod properties;
mod vectors;
