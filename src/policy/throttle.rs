//! The global throttle: after a throttled answer every call of the
//! account pauses, then the rate climbs back step by step. A plain value
//! the scheduler owns; every decision is a function of `now`.

use std::time::Duration;

use tokio::time::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

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
}
