//! The scheduler's counters that the outside reads: the status line, the
//! watchdog, `/readyz` and tests. Plain atomics, so that nothing on the
//! poll path takes a lock.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// The `error_type`s of the contract, in a fixed order (the index is what
/// [`Stats`] stores of the last one).
pub const ERROR_TYPES: [&str; 9] = [
    "auth",
    "forbidden",
    "throttled",
    "timeout",
    "connect",
    "server",
    "client",
    "decode",
    "not_found",
];

/// Counters the outside reads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs being polled.
    pub tracked: AtomicU64,
    /// Of which in PENDING_PAYMENT.
    pub pending_payment: AtomicU64,
    /// Calls made since start.
    pub polls: AtomicU64,
    /// Loop iterations; moves while the scheduler makes progress.
    pub heartbeat: AtomicU64,
    /// When the last API error happened (Unix ms; 0: never).
    pub last_error_ms: AtomicI64,
    /// Its `error_type`, as an index into [`ERROR_TYPES`].
    pub last_error_type: AtomicUsize,
    /// When the API last answered with anything but an authentication
    /// refusal (Unix ms; 0: never).
    pub last_answer_ms: AtomicI64,
    /// When the API last refused the credentials (Unix ms; 0: never).
    pub last_auth_failure_ms: AtomicI64,
    /// When the scheduler started (Unix ms).
    pub started_ms: AtomicI64,
}

impl Stats {
    /// Notes an API error of `error_type` at `at_ms`.
    pub fn note_error(&self, error_type: &str, at_ms: i64) {
        let index = ERROR_TYPES
            .iter()
            .position(|known| *known == error_type)
            .unwrap_or(0);
        self.last_error_type.store(index, Ordering::Relaxed);
        self.last_error_ms.store(at_ms, Ordering::Relaxed);
    }

    /// The last API error: when (Unix ms) and its `error_type`.
    pub fn last_error(&self) -> Option<(i64, &'static str)> {
        let at = self.last_error_ms.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        let index = self.last_error_type.load(Ordering::Relaxed);
        Some((at, ERROR_TYPES.get(index).copied().unwrap_or("server")))
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
