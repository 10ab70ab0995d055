//! The scheduler's wall clock: Unix milliseconds derived from the
//! monotonic clock since start. Ages and durations measured by sightings
//! then follow the same clock as the cadence (a wall clock that jumps
//! while the daemon runs moves neither), and tests on tokio's paused
//! clock see them advance with virtual time.

use tokio::time::Instant;

/// Unix milliseconds of monotonic instants.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    origin: Instant,
    origin_ms: i64,
}

impl WallClock {
    /// A clock that reads `origin_ms` at `origin`.
    pub fn new(origin: Instant, origin_ms: i64) -> WallClock {
        WallClock { origin, origin_ms }
    }

    /// Unix milliseconds at `at` (instants before the origin read as the
    /// origin).
    pub fn wall(&self, at: Instant) -> i64 {
        let since = at.saturating_duration_since(self.origin).as_millis();
        self.origin_ms
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn follows_the_monotonic_clock() {
        let origin = Instant::now();
        let clock = WallClock::new(origin, 1_000);
        assert_eq!(clock.wall(origin), 1_000);
        assert_eq!(clock.wall(origin + Duration::from_millis(2_500)), 3_500);
        assert_eq!(
            clock.wall(origin.checked_sub(Duration::from_secs(1)).unwrap_or(origin)),
            1_000
        );
    }
}
