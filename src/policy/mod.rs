//! The pure policies: the cadence of one job, the adaptive cadence learned
//! from finished jobs (with the server's own times and sub-job progress),
//! the triage of due polls under a short budget, and the account-wide
//! budget, throttle, authentication gate and `api.error` rate limit. Each
//! is a plain value or function of `now`, tested with made-up instants.

pub mod adaptive;
pub mod auth_gate;
pub mod budget;
pub mod cadence;
pub mod error_lines;
pub mod permit;
pub mod server_time;
pub mod throttle;
pub mod triage;
