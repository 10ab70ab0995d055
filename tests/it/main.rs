//! Integration tests: one crate, one module per concern.

mod budget;
mod client;
mod commands;
mod daemon;
mod family;
mod harness;
mod hostile;
mod metrics;
mod migration;
mod prometheus;
mod properties;
mod real_systemd;
mod reliability;
mod restart;
mod smn;
mod systemd;
mod tools;
mod vectors;
mod webhook;
