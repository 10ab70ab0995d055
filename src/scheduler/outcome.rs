//! What the scheduler makes of the outcome of one call before deciding
//! anything about the job: the metrics and readiness timestamps it feeds,
//! and the one failure that is not counted as one, a connection the server
//! closed as the request went out.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::Scheduler;
use crate::huaweicloud::error::{ApiError, ErrorKind};
use crate::job::JobKey;
use crate::services::Polled;
use crate::store::now_ms;
use crate::telemetry;

impl Scheduler {
    /// Whether the call is made again at once instead of handling `result`:
    /// the server closed the connection as the request went out (a gateway
    /// closing an idle keep-alive connection the client was reusing), so
    /// nothing was answered. The call is queued as due now, so it goes out
    /// on a new connection with a permit of the budget, and it is not an
    /// error; a second such failure in a row is handled like any other.
    pub(super) fn resend_closed(
        &mut self,
        key: &JobKey,
        result: &Result<Polled, ApiError>,
        now: Instant,
    ) -> bool {
        if let Err(error) = result
            && error.closed_before_answer
            && self.resent.insert(key.clone())
        {
            self.schedule(key, now);
            return true;
        }
        self.resent.remove(key);
        false
    }

    /// Metrics and readiness timestamps of one answer.
    pub(super) fn count_outcome(&self, key: &JobKey, result: &Result<Polled, ApiError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.kind.error_type(),
        };
        let service = key.service.as_str();
        ::metrics::counter!(telemetry::POLLS, "outcome" => outcome, "service" => service)
            .increment(1);
        let wall = now_ms();
        match result {
            Err(error) if matches!(error.kind, ErrorKind::Auth | ErrorKind::Forbidden) => {
                self.stats
                    .last_auth_failure_ms
                    .store(wall, Ordering::Relaxed);
            }
            // No answer arrived (timeout, connection): it says nothing.
            Err(error) if error.http_status.is_none() && error.kind != ErrorKind::Decode => {}
            _ => self.stats.last_answer_ms.store(wall, Ordering::Relaxed),
        }
        if let Err(error) = result
            && error.kind != ErrorKind::NotFound
        {
            let error_type = error.kind.error_type();
            ::metrics::counter!(telemetry::API_ERRORS, "error_type" => error_type).increment(1);
            self.stats.note_error(error_type, wall);
        }
    }
}
