//! The pure policies: the cadence of one job, the adaptive cadence learned
//! from finished jobs, and the account-wide budget, throttle and
//! authentication gate.

pub mod adaptive;
pub mod budget;
pub mod cadence;
