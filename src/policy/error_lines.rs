//! The rate limit of `api.error` lines: at most one per `error_type` per
//! period, with a count of what it stands for.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::huaweicloud::error::ApiError;

/// At most one `api.error` line per `error_type` in this period.
pub const API_ERROR_PERIOD: Duration = Duration::from_secs(10);

/// What an `api.error` line reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiErrorReport {
    /// The contract's `error_type`.
    pub error_type: &'static str,
    /// The HTTP status, when an answer arrived.
    pub http_status: Option<u16>,
    /// The error code of the body.
    pub error_code: Option<String>,
    /// The `X-Request-Id`.
    pub request_id: Option<String>,
    /// How many such errors this line stands for.
    pub count: u64,
    /// A short description of the latest one.
    pub detail: String,
}

/// One line per `error_type` per [`API_ERROR_PERIOD`], with a count of
/// what it stands for.
#[derive(Debug, Default)]
pub struct ErrorLines {
    by_type: BTreeMap<&'static str, ErrorLine>,
}

#[derive(Debug)]
struct ErrorLine {
    last_emitted: Instant,
    pending: Option<ApiErrorReport>,
}

impl ErrorLines {
    /// Records an error at `now`; returns a report to emit now, if any.
    pub fn record(&mut self, now: Instant, error: &ApiError) -> Option<ApiErrorReport> {
        let error_type = error.kind.error_type();
        let mut report = ApiErrorReport {
            error_type,
            http_status: error.http_status,
            error_code: error.error_code.clone(),
            request_id: error.request_id.clone(),
            count: 1,
            detail: error.message.clone(),
        };
        match self.by_type.get_mut(error_type) {
            Some(line) if now.saturating_duration_since(line.last_emitted) < API_ERROR_PERIOD => {
                report.count += line.pending.as_ref().map_or(0, |p| p.count);
                line.pending = Some(report);
                None
            }
            Some(line) => {
                report.count += line.pending.take().map_or(0, |p| p.count);
                line.last_emitted = now;
                Some(report)
            }
            None => {
                self.by_type.insert(
                    error_type,
                    ErrorLine {
                        last_emitted: now,
                        pending: None,
                    },
                );
                Some(report)
            }
        }
    }

    /// Reports whose period is over, to emit now (called periodically).
    pub fn due(&mut self, now: Instant) -> Vec<ApiErrorReport> {
        let mut due = Vec::new();
        for line in self.by_type.values_mut() {
            if line.pending.is_some()
                && now.saturating_duration_since(line.last_emitted) >= API_ERROR_PERIOD
                && let Some(report) = line.pending.take()
            {
                line.last_emitted = now;
                due.push(report);
            }
        }
        due
    }

    /// The time of the last line of any type, and its type.
    pub fn last(&self) -> Option<(Instant, &'static str)> {
        self.by_type
            .iter()
            .map(|(kind, line)| (line.last_emitted, *kind))
            .max_by_key(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::huaweicloud::error::ErrorKind;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn one_error_line_per_type_per_period() {
        let t0 = Instant::now();
        let error = |kind| ApiError::transport(kind, "x");
        let mut lines = ErrorLines::default();
        assert_eq!(
            lines.record(t0, &error(ErrorKind::Server)).map(|r| r.count),
            Some(1)
        );
        assert!(lines.record(t0 + S(1), &error(ErrorKind::Server)).is_none());
        assert!(lines.record(t0 + S(2), &error(ErrorKind::Server)).is_none());
        assert_eq!(
            lines
                .record(t0 + S(2), &error(ErrorKind::Timeout))
                .map(|r| r.count),
            Some(1)
        );
        assert!(lines.due(t0 + S(9)).is_empty());
        let due = lines.due(t0 + S(10));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].error_type, due[0].count), ("server", 2));
        assert!(
            lines
                .record(t0 + S(11), &error(ErrorKind::Server))
                .is_none()
        );
        assert_eq!(
            lines
                .record(t0 + S(20), &error(ErrorKind::Server))
                .map(|r| r.count),
            Some(2)
        );
        assert_eq!(lines.last().map(|(_, kind)| kind), Some("server"));
    }
}
