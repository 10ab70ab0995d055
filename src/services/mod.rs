//! The job APIs of the Huawei Cloud job family, one adapter per file.

pub mod ecs;
