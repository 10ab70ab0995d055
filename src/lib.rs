//! ecs-jobwatch: watches Huawei Cloud jobs (ECS and the rest of the job
//! family) until they finish and announces every outcome as a structured
//! log event.
//!
//! The binary is a thin shell over this library; see `docs/architecture.md`
//! for the map of modules.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod huaweicloud;
pub mod job;
pub mod output;
pub mod policy;
pub mod scheduler;
pub mod services;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod watch;
