//! Integration tests: one crate, one module per concern.

mod budget;
mod commands;
mod daemon;
mod harness;
mod restart;
mod vectors;
