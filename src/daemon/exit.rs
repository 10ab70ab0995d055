//! Every exit code of every command, in one table (sysexits where one
//! fits), and the errors of `run` mapped to them.

use crate::store::StateError;

/// Success; for `wait` and `status JOB`: every job SUCCESS.
pub const OK: u8 = 0;
/// `wait`, `status JOB`: a job FAIL or not found.
pub const FAILED: u8 = 1;
/// `wait`, `status JOB`: a job waits for payment (a person must pay;
/// nothing failed).
pub const PENDING_PAYMENT: u8 = 3;
/// `status JOB`: the job is still working.
pub const WORKING: u8 = 4;
/// `status JOB`: the job is not tracked.
pub const NOT_TRACKED: u8 = 5;
/// The command line was wrong (EX_USAGE).
pub const USAGE: u8 = 64;
/// Bad data on the command line: a job id or label (EX_DATAERR).
pub const DATA: u8 = 65;
/// An internal error (EX_SOFTWARE).
pub const SOFTWARE: u8 = 70;
/// The state directory is missing and cannot be created (EX_CANTCREAT).
pub const CANT_CREATE: u8 = 73;
/// An I/O error on the state store (EX_IOERR).
pub const IO: u8 = 74;
/// The state directory is locked by another daemon, or a forced stop
/// (EX_TEMPFAIL).
pub const TEMP_FAIL: u8 = 75;
/// The configuration is invalid (EX_CONFIG).
pub const CONFIG: u8 = 78;
/// `wait`: the timeout passed first (as timeout(1)).
pub const TIMEOUT: u8 = 124;

/// Why the daemon could not run. Each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration cannot work (exit 78).
    #[error("{0}")]
    Config(String),
    /// The state store cannot be used (exit 73, 74 or 75).
    #[error(transparent)]
    State(#[from] StateError),
    /// Anything else (exit 70).
    #[error("{0}")]
    Internal(String),
}

impl DaemonError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => CONFIG,
            DaemonError::State(error) => state_exit_code(error),
            DaemonError::Internal(_) => SOFTWARE,
        }
    }
}

/// The exit code for a state store that cannot be used (the same for
/// `run`, `status` and `wait`).
pub fn state_exit_code(error: &StateError) -> u8 {
    match error {
        StateError::MissingDir(_) => CANT_CREATE,
        StateError::Locked(_) => TEMP_FAIL,
        StateError::Io { .. } | StateError::Sqlite { .. } => IO,
        StateError::TooNew { .. } => CONFIG,
    }
}
