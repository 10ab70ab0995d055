//! When to poll a job next: the per-job cadence and the retry of a failed
//! call, as pure functions of the job's situation and a random number.
//!
//! Three policies stay apart (see `docs/architecture.md`): this file holds
//! the cadence of one job and the retry of one failed call; the global
//! budget and throttling live in [`crate::policy::budget`] and
//! [`crate::policy::throttle`]. Randomness comes in as
//! a number in `[0, 1)` so that tests can pin it.

use std::time::Duration;

use crate::job::Status;

/// Growth of the gap between two polls of a job whose status stays put.
pub const GROWTH: f64 = 1.6;
/// Relative jitter of a cadence gap: the gap is scaled by a factor in
/// `[1 - JITTER, 1 + JITTER]`, then capped.
pub const JITTER: f64 = 0.2;
/// The first retry backoff of a failed call, before jitter.
pub const RETRY_BASE: Duration = Duration::from_secs(2);
/// The cap of the retry backoff.
pub const RETRY_CAP: Duration = Duration::from_secs(300);

/// The cadence parameters, from `[poll]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// First gap after a job is first seen; first polls are spread over it.
    pub initial_interval: Duration,
    /// Cap of the gap while INIT/RUNNING.
    pub max_interval: Duration,
    /// Gap while PENDING_PAYMENT.
    pub pending_payment_interval: Duration,
    /// INIT/RUNNING longer than this: `job.timeout`, then `max_interval`.
    pub job_timeout: Duration,
    /// How long a never-seen job may answer 404.
    pub not_found_grace: Duration,
}

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence {
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            pending_payment_interval: Duration::from_secs(300),
            job_timeout: Duration::from_secs(7200),
            not_found_grace: Duration::from_secs(60),
        }
    }
}

/// What the last answer said about the job, as far as the cadence cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation<'a> {
    /// The job answered with this status.
    Status(&'a Status),
    /// 404 for a job never seen.
    NotYetVisible,
}

/// The delay before the first poll of a job: a random moment in
/// `[0, initial_interval]`, so 10,000 jobs arriving at once (or after a
/// restart) do not poll in the same instant.
pub fn first_delay(cadence: &Cadence, random: f64) -> Duration {
    cadence.initial_interval.mul_f64(unit(random))
}

/// The gap after a poll that found the job in `situation` for the
/// `streak`-th time in a row (1 for the first answer in that situation).
/// `elapsed` is how long the job has been in its status.
pub fn next_gap(
    cadence: &Cadence,
    situation: Situation<'_>,
    streak: u32,
    elapsed: Duration,
    random: f64,
) -> Duration {
    match situation {
        Situation::Status(Status::PendingPayment) => {
            // A slow lane: only a person's action moves the job.
            scale(cadence.pending_payment_interval, random, 0.1)
        }
        Situation::Status(status) if status.is_final() => Duration::MAX,
        Situation::Status(_) if elapsed >= cadence.job_timeout => cadence.max_interval,
        Situation::Status(_) | Situation::NotYetVisible => growth(cadence, streak, random),
    }
}

/// Capped exponential growth with jitter: `initial * GROWTH^(streak-1)`,
/// jittered by ±[`JITTER`], never above `max_interval`, never below 1 s.
fn growth(cadence: &Cadence, streak: u32, random: f64) -> Duration {
    let exponent = streak.saturating_sub(1).min(64) as i32;
    let base = cadence.initial_interval.as_secs_f64() * GROWTH.powi(exponent);
    let capped = base.min(cadence.max_interval.as_secs_f64());
    let gap = Duration::from_secs_f64(capped).mul_f64(1.0 + JITTER * (2.0 * unit(random) - 1.0));
    gap.clamp(Duration::from_secs(1), cadence.max_interval)
}

fn scale(gap: Duration, random: f64, jitter: f64) -> Duration {
    gap.mul_f64(1.0 + jitter * (2.0 * unit(random) - 1.0))
}

/// Whether a job is past its deadline and `job.timeout` is due.
pub fn timed_out(cadence: &Cadence, status: &Status, elapsed: Duration) -> bool {
    matches!(status, Status::Init | Status::Running) && elapsed >= cadence.job_timeout
}

/// Whether a never-seen job that answers 404 has used up its grace.
pub fn not_found_expired(cadence: &Cadence, tracked_for: Duration) -> bool {
    tracked_for >= cadence.not_found_grace
}

/// The delay before retrying a call that failed `failures` times in a row
/// (`Server`, `Timeout`, `Connect`, `Decode`, `Client`): full jitter,
/// `random * min(RETRY_CAP, RETRY_BASE * 2^(failures-1))`, but never
/// sooner than the cadence would have polled anyway (`cadence_gap`).
pub fn retry_delay(failures: u32, cadence_gap: Duration, random: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(32);
    let ceiling = RETRY_BASE
        .saturating_mul(1u32 << exponent.min(31))
        .min(RETRY_CAP);
    ceiling.mul_f64(unit(random)).max(cadence_gap)
}

/// Clamps a random draw into `[0, 1]`, turning NaN into 0.
fn unit(random: f64) -> f64 {
    if random.is_nan() {
        0.0
    } else {
        random.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn first_polls_spread_over_the_initial_interval() {
        let cadence = Cadence::default();
        assert_eq!(first_delay(&cadence, 0.0), Duration::ZERO);
        assert_eq!(first_delay(&cadence, 0.5), S(1));
        assert_eq!(first_delay(&cadence, 1.0), S(2));
        assert_eq!(first_delay(&cadence, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn running_gaps_grow_then_cap() {
        let cadence = Cadence::default();
        let running = Status::Running;
        let gap =
            |streak, random| next_gap(&cadence, Situation::Status(&running), streak, S(0), random);
        // With the middle draw the jitter is zero.
        let gaps: Vec<f64> = (1..=10).map(|n| gap(n, 0.5).as_secs_f64()).collect();
        let expected = [
            2.0, 3.2, 5.12, 8.192, 13.1072, 20.97152, 30.0, 30.0, 30.0, 30.0,
        ];
        for (got, want) in gaps.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{gaps:?}");
        }
        // Jitter stays within bounds and under the cap.
        assert_eq!(gap(1, 0.0), Duration::from_secs_f64(1.6));
        assert_eq!(gap(1, 1.0), Duration::from_secs_f64(2.4));
        assert_eq!(gap(50, 1.0), S(30));
        assert_eq!(gap(u32::MAX, 1.0), S(30));
    }

    #[test]
    fn gaps_never_below_one_second() {
        let cadence = Cadence {
            initial_interval: S(1),
            ..Cadence::default()
        };
        let running = Status::Running;
        assert_eq!(
            next_gap(&cadence, Situation::Status(&running), 1, S(0), 0.0),
            S(1)
        );
    }

    #[test]
    fn pending_payment_has_its_own_lane() {
        let cadence = Cadence::default();
        let pending = Status::PendingPayment;
        assert_eq!(
            next_gap(&cadence, Situation::Status(&pending), 9, S(0), 0.5),
            S(300)
        );
        assert_eq!(
            next_gap(&cadence, Situation::Status(&pending), 1, S(0), 0.0),
            S(270)
        );
    }

    #[test]
    fn timeout_and_unknown_statuses() {
        let cadence = Cadence::default();
        let running = Status::Running;
        let other = Status::Other("ROLLING_BACK".into());
        assert!(!timed_out(&cadence, &running, S(7199)));
        assert!(timed_out(&cadence, &running, S(7200)));
        assert!(timed_out(&cadence, &Status::Init, S(9000)));
        assert!(!timed_out(&cadence, &Status::PendingPayment, S(90000)));
        assert!(!timed_out(&cadence, &other, S(90000)));
        assert_eq!(
            next_gap(&cadence, Situation::Status(&running), 1, S(7200), 0.0),
            S(30)
        );
        assert_eq!(
            next_gap(&cadence, Situation::Status(&other), 1, S(0), 0.5),
            S(2)
        );
        assert_eq!(
            next_gap(&cadence, Situation::Status(&Status::Success), 1, S(0), 0.5),
            Duration::MAX
        );
    }

    #[test]
    fn not_found_grace() {
        let cadence = Cadence::default();
        assert!(!not_found_expired(&cadence, S(59)));
        assert!(not_found_expired(&cadence, S(60)));
        assert_eq!(
            next_gap(&cadence, Situation::NotYetVisible, 2, S(0), 0.5),
            Duration::from_secs_f64(3.2)
        );
    }

    #[test]
    fn retries_use_full_jitter_but_respect_the_cadence() {
        assert_eq!(retry_delay(1, Duration::ZERO, 1.0), S(2));
        assert_eq!(retry_delay(3, Duration::ZERO, 1.0), S(8));
        assert_eq!(retry_delay(3, Duration::ZERO, 0.25), S(2));
        assert_eq!(retry_delay(30, Duration::ZERO, 1.0), RETRY_CAP);
        assert_eq!(retry_delay(u32::MAX, Duration::ZERO, 1.0), RETRY_CAP);
        assert_eq!(retry_delay(1, S(5), 0.0), S(5));
        assert_eq!(retry_delay(8, S(5), 1.0), S(256));
    }
}
