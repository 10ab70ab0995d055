//! The request budget: one process-wide rate limit for every API call the
//! account makes (every project, every service, SMN publishes), on
//! tokio's clock so that paused time in tests drives it.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
