//! Integration tests: one crate, one module per concern.

mod daemon;
mod harness;
mod vectors;
