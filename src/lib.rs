//! ecs-jobwatch: watches Huawei Cloud ECS jobs until they finish and
//! announces every outcome as a structured log event.
//!
//! The binary is a thin shell over this library; see `docs/architecture.md`
//! for the map of modules.

pub mod api;
pub mod ids;
pub mod secret;
pub mod sim;
pub mod watch;
