//! Integration tests: one crate, one module per concern.

mod systemd;
mod vectors;
