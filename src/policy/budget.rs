//! The process-wide policies that sit between the timer queue and the API:
//! the request budget, the global throttle, the authentication gate and
//! the rate limit of `api.error` lines.
//!
//! The scheduler is the only task that starts calls, so these are plain
//! values it owns; every decision is a function of `now` (monotonic,
//! `tokio::time::Instant`) and is tested with made-up instants.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::huaweicloud::error::ApiError;
use crate::output::event::ApiErrorReport;

/// How long authentication failures stop all calls (five failed
/// signatures lock an AK for five minutes).
pub const AUTH_PAUSE: Duration = Duration::from_secs(300);
/// The slowest the throttle takes the process, as a share of the budget.
pub const MIN_RATE_FACTOR: f64 = 1.0 / 16.0;
/// How much of the budget comes back per [`RECOVERY_STEP`] without throttling.
pub const RECOVERY_PER_STEP: f64 = 0.125;
/// The period of the gradual climb back after throttling.
pub const RECOVERY_STEP: Duration = Duration::from_secs(5);
/// Pause after a throttled answer without `Retry-After`: 2 s doubling…
pub const THROTTLE_BACKOFF_BASE: Duration = Duration::from_secs(2);
/// …up to this.
pub const THROTTLE_BACKOFF_CAP: Duration = Duration::from_secs(60);
/// At most one `api.error` line per `error_type` in this period.
pub const API_ERROR_PERIOD: Duration = Duration::from_secs(10);

/// governor's view of tokio's clock, so that the budget follows paused
/// time in tests exactly like every other timer of the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

/// The configured request budget: `requests_per_second` with `burst`,
/// enforced by governor.
pub struct Budget {
    limiter: RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        TokioClock,
        governor::middleware::NoOpMiddleware<Duration>,
    >,
    clock: TokioClock,
    requests_per_second: f64,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("requests_per_second", &self.requests_per_second)
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// A budget of `requests_per_second` (may be fractional) with `burst`.
    pub fn new(requests_per_second: f64, burst: u32) -> Budget {
        let rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            1.0
        };
        let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_micros(1));
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        // The origin lies a little in the past so that the first instants
        // are never at zero.
        let now = Instant::now();
        let clock = TokioClock {
            origin: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
        };
        Budget {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
            requests_per_second: rate,
        }
    }

    /// The configured rate.
    pub fn requests_per_second(&self) -> f64 {
        self.requests_per_second
    }

    /// Takes one request from the budget, or says how long to wait first.
    pub fn try_take(&self) -> Result<(), Duration> {
        match self.limiter.check() {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(self.clock.now())),
        }
    }
}

/// Global slow-down after throttled answers: a pause, then a reduced rate
/// that climbs back step by step.
#[derive(Clone, Debug)]
pub struct Throttle {
    factor: f64,
    paused_until: Option<Instant>,
    consecutive: u32,
    changed_at: Option<Instant>,
    last_dispatch: Option<Instant>,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle {
            factor: 1.0,
            paused_until: None,
            consecutive: 0,
            changed_at: None,
            last_dispatch: None,
        }
    }
}

impl Throttle {
    /// A throttled answer arrived at `now`.
    pub fn on_throttled(&mut self, now: Instant, retry_after: Option<Duration>) {
        self.settle(now);
        // Answers to calls sent before the pause began report the same
        // congestion: they may lengthen the pause, but cut the rate once.
        if let Some(until) = self.paused_until
            && until > now
        {
            if let Some(retry_after) = retry_after {
                self.paused_until = Some(until.max(now + retry_after));
            }
            return;
        }
        let pause = retry_after.unwrap_or_else(|| {
            THROTTLE_BACKOFF_BASE
                .saturating_mul(1u32 << self.consecutive.min(16))
                .min(THROTTLE_BACKOFF_CAP)
        });
        let until = now + pause;
        self.paused_until = Some(self.paused_until.map_or(until, |old| old.max(until)));
        self.consecutive = self.consecutive.saturating_add(1);
        self.factor = (self.factor / 2.0).max(MIN_RATE_FACTOR);
        self.changed_at = Some(now);
    }

    /// A call got through without throttling.
    pub fn on_answer(&mut self) {
        self.consecutive = 0;
    }

    /// A call was started at `now`.
    pub fn on_dispatch(&mut self, now: Instant) {
        self.last_dispatch = Some(now);
    }

    /// The share of the budget in force at `now`, climbing back by
    /// [`RECOVERY_PER_STEP`] every [`RECOVERY_STEP`] since the last change.
    pub fn factor(&mut self, now: Instant) -> f64 {
        self.settle(now);
        self.factor
    }

    fn settle(&mut self, now: Instant) {
        let Some(changed_at) = self.changed_at else {
            return;
        };
        if self.factor >= 1.0 {
            return;
        }
        let start = self.paused_until.map_or(changed_at, |p| p.max(changed_at));
        let steps =
            now.saturating_duration_since(start).as_secs_f64() / RECOVERY_STEP.as_secs_f64();
        let whole = steps.floor();
        if whole >= 1.0 {
            self.factor = (self.factor + RECOVERY_PER_STEP * whole).min(1.0);
            self.changed_at = Some(start + RECOVERY_STEP.mul_f64(whole));
            if self.paused_until.is_some_and(|p| p <= now) {
                self.paused_until = None;
            }
        }
    }

    /// The earliest moment the next call may start, given the budget's own
    /// rate: after any pause, and spaced by `1 / (rate * factor)` while the
    /// rate is reduced.
    pub fn next_allowed(&mut self, now: Instant, requests_per_second: f64) -> Instant {
        let factor = self.factor(now);
        let mut at = now;
        if let Some(until) = self.paused_until {
            at = at.max(until);
        }
        if factor < 1.0
            && let Some(last) = self.last_dispatch
        {
            let spacing = Duration::from_secs_f64(1.0 / (requests_per_second * factor).max(1e-3));
            at = at.max(last + spacing);
        }
        at
    }
}

/// Whether calls may be made with the current credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthGate {
    /// Not known to work yet: one call at a time until one succeeds.
    Probing,
    /// Known to work: full concurrency.
    Open,
    /// Refused: no call until `until`, or until the credentials change.
    Paused {
        /// End of the pause.
        until: Instant,
        /// The credential generation that was refused.
        generation: u64,
    },
}

impl AuthGate {
    /// A call was refused with `Auth` or `Forbidden`.
    pub fn on_refused(&mut self, now: Instant, generation: u64) {
        *self = AuthGate::Paused {
            until: now + AUTH_PAUSE,
            generation,
        };
    }

    /// A call was answered by the API proper (anything but an auth refusal).
    pub fn on_answer(&mut self) {
        *self = AuthGate::Open;
    }

    /// The configuration was reloaded: try again, carefully.
    pub fn on_reload(&mut self) {
        if matches!(self, AuthGate::Paused { .. }) {
            *self = AuthGate::Probing;
        }
    }

    /// How many calls may be in flight at `now` with credentials of
    /// `generation`; ends a pause whose time is up or whose credentials
    /// changed.
    pub fn allowed_in_flight(&mut self, now: Instant, generation: u64, max: usize) -> usize {
        if let AuthGate::Paused {
            until,
            generation: refused,
        } = *self
            && (now >= until || generation != refused)
        {
            *self = AuthGate::Probing;
        }
        match self {
            AuthGate::Open => max,
            AuthGate::Probing => 1,
            AuthGate::Paused { .. } => 0,
        }
    }

    /// When a pause ends by itself.
    pub fn paused_until(&self) -> Option<Instant> {
        match self {
            AuthGate::Paused { until, .. } => Some(*until),
            _ => None,
        }
    }
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
    fn budget_allows_burst_then_waits() {
        let budget = Budget::new(10.0, 2);
        assert_eq!(budget.try_take(), Ok(()));
        assert_eq!(budget.try_take(), Ok(()));
        let wait = budget.try_take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        let slow = Budget::new(0.5, 1);
        assert_eq!(slow.try_take(), Ok(()));
        assert!(slow.try_take().unwrap_err() > S(1));
    }

    #[test]
    fn throttle_pauses_halves_and_recovers() {
        let t0 = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.next_allowed(t0, 10.0), t0);
        throttle.on_throttled(t0, Some(S(3)));
        assert_eq!(throttle.factor(t0), 0.5);
        assert_eq!(throttle.next_allowed(t0, 10.0), t0 + S(3));
        // More throttled answers during the pause (calls sent before it)
        // cut the rate only once; a later Retry-After lengthens the pause.
        throttle.on_throttled(t0 + S(1), None);
        throttle.on_throttled(t0 + S(1), Some(S(3)));
        assert_eq!(throttle.factor(t0 + S(1)), 0.5);
        assert_eq!(throttle.next_allowed(t0 + S(1), 10.0), t0 + S(4));
        // After the pause, without Retry-After, the pause doubles.
        throttle.on_throttled(t0 + S(4), None);
        assert_eq!(throttle.factor(t0 + S(4)), 0.25);
        assert_eq!(throttle.next_allowed(t0 + S(4), 10.0), t0 + S(8));
        // While reduced, calls are spaced by 1 / (rate * factor).
        throttle.on_dispatch(t0 + S(8));
        assert_eq!(
            throttle.next_allowed(t0 + S(8), 10.0),
            t0 + S(8) + Duration::from_millis(400)
        );
        // The rate climbs back a step per RECOVERY_STEP after the pause.
        assert_eq!(throttle.factor(t0 + S(8) + RECOVERY_STEP), 0.375);
        assert_eq!(throttle.factor(t0 + S(8) + RECOVERY_STEP * 100), 1.0);
        throttle.on_answer();
        throttle.on_throttled(t0 + S(1000), None);
        assert_eq!(throttle.next_allowed(t0 + S(1000), 10.0), t0 + S(1002));
    }

    #[test]
    fn throttle_factor_has_a_floor() {
        let t0 = Instant::now();
        let mut throttle = Throttle::default();
        for n in 0..20 {
            throttle.on_throttled(t0 + S(n), Some(Duration::ZERO));
        }
        assert_eq!(throttle.factor(t0), MIN_RATE_FACTOR);
    }

    #[test]
    fn auth_gate() {
        let t0 = Instant::now();
        let mut gate = AuthGate::Probing;
        assert_eq!(gate.allowed_in_flight(t0, 0, 16), 1);
        gate.on_answer();
        assert_eq!(gate.allowed_in_flight(t0, 0, 16), 16);
        gate.on_refused(t0, 0);
        assert_eq!(gate.allowed_in_flight(t0 + S(299), 0, 16), 0);
        assert_eq!(gate.paused_until(), Some(t0 + AUTH_PAUSE));
        assert_eq!(gate.allowed_in_flight(t0 + S(300), 0, 16), 1);
        gate.on_refused(t0, 0);
        assert_eq!(
            gate.allowed_in_flight(t0 + S(1), 1, 16),
            1,
            "new credentials end the pause"
        );
        gate.on_refused(t0, 1);
        gate.on_reload();
        assert_eq!(gate, AuthGate::Probing);
    }

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
