//! Integration tests: one crate, one module per concern.

mod properties;
mod vectors;
