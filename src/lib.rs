//! ecs-jobwatch: watches Huawei Cloud ECS jobs until they finish and
//! announces every outcome as a structured log event.
//!
//! The binary is a thin shell over this library; see `docs/architecture.md`
//! for the map of modules.

pub mod adaptive;
pub mod api;
pub mod budget;
pub mod cadence;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod events;
pub mod ids;
pub mod logging;
pub mod scheduler;
pub mod secret;
pub mod signals;
pub mod sim;
pub mod state;
pub mod systemd;
pub mod telemetry;
pub mod watch;
pub mod webhook;
