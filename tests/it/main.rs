//! Integration tests: one crate, one module per concern.

mod vectors;
mod webhook;
