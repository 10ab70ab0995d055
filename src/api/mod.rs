//! Everything that speaks the ECS job API: wire model, signing,
//! credentials and the HTTP client.

pub mod client;
pub mod credentials;
pub mod error;
pub mod model;
pub mod sign;
