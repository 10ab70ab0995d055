//! Integration tests: one crate, one module per concern.

mod budget;
mod ci;
mod client;
mod commands;
mod daemon;
mod harness;
mod hostile;
mod metrics;
mod migration;
mod properties;
mod real_systemd;
mod reliability;
mod restart;
mod systemd;
mod vectors;
mod webhook;
