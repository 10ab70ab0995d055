//! Integration tests: one crate, one module per concern.

mod budget;
mod ci;
mod client;
mod client_signing;
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
mod sdk;
mod smn;
mod systemd;
mod tls;
mod vectors;
mod webhook;
