//! The adaptive cadence: where to poll a running job next, learned from how
//! long finished jobs of the same `job_type` took.
//!
//! A pure policy beside [`crate::policy::cadence`]. [`History`] keeps, per
//! `job_type`, a bounded sample of the newest durations (first sighting to
//! final observation, as the scheduler records them); [`next_gap`] turns
//! that sample into the gap before the next poll, or answers `None` when
//! there is not enough history, and the caller falls back to the plain
//! [`crate::policy::cadence::next_gap`].
//!
//! The placement rule: from the moment `t` (time since first sighting), the
//! next gap `g` is the smallest one for which `g * P(done by t + g | not
//! done at t) >= SPACING`. Polls are therefore sparse while completion is
//! unlikely and dense where most jobs of the type finish. For small gaps
//! the rule reads `g = sqrt(SPACING / hazard)`, which is the spacing that
//! minimises `calls + detection delay / (SPACING / 2)` when each gap is
//! short against the shape of the distribution: polls cost where the job
//! is still alive, delay costs where it ends. Each recorded duration is
//! smoothed into a small box (±[`BANDWIDTH`] of itself) so that a sample
//! of a few dozen durations gives a usable distribution. Past the 99th
//! percentile the job has overrun what history knows, and the gap grows
//! with the elapsed time ([`OVERRUN_FRACTION`]), capped at `max_interval`.
//! Every gap is at least 1 s and at most `max_interval`, and is jittered by
//! ±[`JITTER`] so that jobs started together do not poll together.
//!
//! Only INIT, RUNNING and unknown statuses are for this module: the caller
//! keeps PENDING_PAYMENT, final statuses, 404s and the job timeout with the
//! plain cadence.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::policy::cadence::Cadence;

/// Durations kept per `job_type`: the newest this many.
pub const SAMPLE_SIZE: usize = 200;
/// Fewer durations than this for a type and [`next_gap`] answers `None`.
pub const MIN_SAMPLES: usize = 20;
/// The product of the gap and the conditional probability of completion
/// within it that the next poll aims at; also the shortest gap the rule
/// chooses before the 1 s floor and jitter.
pub const SPACING: Duration = Duration::from_secs(1);
/// Half-width of the box each recorded duration is smoothed into,
/// relative to the duration.
pub const BANDWIDTH: f64 = 0.1;
/// Past the 99th percentile the gap is this share of the elapsed time.
pub const OVERRUN_FRACTION: f64 = 0.25;
/// The survival probability below which a job counts as overrunning.
pub const OVERRUN_SURVIVAL: f64 = 0.01;
/// Relative jitter of an adaptive gap.
pub const JITTER: f64 = 0.1;

/// Recent durations of finished jobs, per `job_type`.
#[derive(Clone, Debug, Default)]
pub struct History {
    types: HashMap<Box<str>, Sample>,
}

/// The newest durations of one type, in milliseconds: in arrival order
/// for eviction, and sorted for the placement.
#[derive(Clone, Debug, Default)]
struct Sample {
    recent: VecDeque<u32>,
    sorted: Vec<u32>,
}

impl History {
    /// An empty history: every type falls back to the plain cadence.
    pub fn new() -> History {
        History::default()
    }

    /// A history from stored rows `(job_type, duration_ms)`, oldest first
    /// within a type (the order of `Store::durations`). Negative durations
    /// are skipped.
    pub fn from_rows<I>(rows: I) -> History
    where
        I: IntoIterator<Item = (String, i64)>,
    {
        let mut history = History::new();
        for (job_type, duration_ms) in rows {
            let Ok(ms) = u64::try_from(duration_ms) else {
                continue;
            };
            history.record(&job_type, Duration::from_millis(ms));
        }
        history
    }

    /// Adds the duration of a finished job; the oldest of its type goes
    /// when the type already holds [`SAMPLE_SIZE`].
    pub fn record(&mut self, job_type: &str, duration: Duration) {
        let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        let sample = match self.types.get_mut(job_type) {
            Some(sample) => sample,
            None => self.types.entry(Box::from(job_type)).or_default(),
        };
        if sample.recent.len() >= SAMPLE_SIZE
            && let Some(oldest) = sample.recent.pop_front()
            && let Ok(index) = sample.sorted.binary_search(&oldest)
        {
            sample.sorted.remove(index);
        }
        sample.recent.push_back(ms);
        let index = sample.sorted.partition_point(|&d| d <= ms);
        sample.sorted.insert(index, ms);
    }

    /// How many durations are kept for `job_type`.
    pub fn len(&self, job_type: &str) -> usize {
        self.types.get(job_type).map_or(0, |s| s.sorted.len())
    }

    /// Whether no duration is kept at all.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    fn sorted(&self, job_type: &str) -> Option<&[u32]> {
        let sample = self.types.get(job_type)?;
        (sample.sorted.len() >= MIN_SAMPLES).then_some(sample.sorted.as_slice())
    }
}

/// The gap before the next poll of a job of `job_type` that is still
/// INIT/RUNNING `elapsed` after its first sighting, or `None` when history
/// of that type is too thin (the caller then uses the plain cadence).
/// `random` is a draw in `[0, 1)` for the jitter.
///
/// A job first seen mid-run (after a restart, or added late to the watch
/// list) is older than `elapsed` says; the gap is then longer than ideal
/// but never above `max_interval`.
pub fn next_gap(
    history: &History,
    cadence: &Cadence,
    job_type: Option<&str>,
    elapsed: Duration,
    random: f64,
) -> Option<Duration> {
    next_gap_with_spacing(history, cadence, job_type, elapsed, random, SPACING)
}

/// [`next_gap`] with another target than [`SPACING`]: a larger `spacing`
/// spends fewer calls for a longer detection delay. The benchmark uses it
/// to show the trade-off.
pub fn next_gap_with_spacing(
    history: &History,
    cadence: &Cadence,
    job_type: Option<&str>,
    elapsed: Duration,
    random: f64,
    spacing: Duration,
) -> Option<Duration> {
    let sorted = history.sorted(job_type?)?;
    let floor = Duration::from_secs(1);
    let ceiling = cadence.max_interval.max(floor);
    let t = elapsed.as_secs_f64();
    let survival = 1.0 - smoothed_cdf(sorted, t);
    let gap = if survival <= OVERRUN_SURVIVAL {
        (OVERRUN_FRACTION * t).max(spacing.as_secs_f64())
    } else {
        placement(sorted, t, survival, ceiling.as_secs_f64(), spacing)
    };
    let jitter = 1.0 + JITTER * (2.0 * unit(random) - 1.0);
    let gap = Duration::try_from_secs_f64(gap * jitter).unwrap_or(ceiling);
    Some(gap.clamp(floor, ceiling))
}

/// The smallest gap `g` in `[0, ceiling]` with `g * p(g) >= spacing`,
/// where `p(g)` is the probability of completion within `g` given survival
/// to `t`; `ceiling` when none is. `g * p(g)` grows with `g`, so a
/// bisection finds it.
fn placement(sorted: &[u32], t: f64, survival: f64, ceiling: f64, spacing: Duration) -> f64 {
    let target = spacing.as_secs_f64();
    let base = smoothed_cdf(sorted, t);
    let score = |g: f64| g * (smoothed_cdf(sorted, t + g) - base) / survival;
    if score(ceiling) < target {
        return ceiling;
    }
    let (mut low, mut high) = (0.0, ceiling);
    for _ in 0..40 {
        let middle = 0.5 * (low + high);
        if score(middle) >= target {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// The share of recorded durations at or below `x` seconds, each duration
/// `d` spread evenly over `[d * (1 - BANDWIDTH), d * (1 + BANDWIDTH)]`.
fn smoothed_cdf(sorted: &[u32], x: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Durations whose box lies wholly below `x` count fully; the sorted
    // order lets the loop skip them and stop at the first box above `x`.
    let below = x / (1.0 + BANDWIDTH) * 1000.0;
    let start = sorted.partition_point(|&ms| f64::from(ms) < below);
    let mut total = start as f64;
    for &ms in &sorted[start..] {
        let d = f64::from(ms) / 1000.0;
        let low = d * (1.0 - BANDWIDTH);
        if x <= low {
            break;
        }
        let width = d * 2.0 * BANDWIDTH;
        total += if width > 0.0 {
            ((x - low) / width).min(1.0)
        } else {
            1.0
        };
    }
    total / sorted.len() as f64
}

/// Clamps a random draw into `[0, 1]`, turning NaN into the middle (no
/// jitter).
fn unit(random: f64) -> f64 {
    if random.is_nan() {
        0.5
    } else {
        random.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// A history of one type whose durations are `seconds`.
    fn history(job_type: &str, seconds: &[f64]) -> History {
        let mut history = History::new();
        for &s in seconds {
            history.record(job_type, Duration::from_secs_f64(s));
        }
        history
    }

    /// `count` durations evenly spread over `[low, high]`.
    fn spread(low: f64, high: f64, count: usize) -> Vec<f64> {
        (0..count)
            .map(|i| low + (high - low) * i as f64 / (count - 1) as f64)
            .collect()
    }

    /// The gap in seconds with the middle draw (no jitter).
    fn gap(history: &History, job_type: Option<&str>, elapsed: f64) -> Option<f64> {
        let elapsed = Duration::from_secs_f64(elapsed);
        next_gap(history, &Cadence::default(), job_type, elapsed, 0.5).map(|g| g.as_secs_f64())
    }

    #[test]
    fn thin_or_missing_history_falls_back() {
        let cases: [(&[f64], Option<&str>); 4] = [
            (&[], Some("createServer")),
            (&[60.0; MIN_SAMPLES - 1], Some("createServer")),
            (&[60.0; MIN_SAMPLES], Some("deleteVMs")),
            (&[60.0; MIN_SAMPLES], None),
        ];
        for (seconds, job_type) in cases {
            let history = history("createServer", seconds);
            assert_eq!(
                gap(&history, job_type, 10.0),
                None,
                "{seconds:?} {job_type:?}"
            );
        }
        let history = history("createServer", &[60.0; MIN_SAMPLES]);
        assert!(gap(&history, Some("createServer"), 10.0).is_some());
    }

    #[test]
    fn sparse_early_dense_near_the_end_growing_past_it() {
        // Power actions: 15 to 35 s.
        let history = history("batchStopServers", &spread(15.0, 35.0, 100));
        let cases = [
            // (elapsed, lowest gap, highest gap)
            (0.0, 14.0, 18.0),
            (16.0, 3.5, 5.5),
            (28.0, 2.0, 3.5),
            (33.0, 1.0, 2.5),
            (40.0, 9.0, 11.0),
            (100.0, 25.0, 25.0),
            (1000.0, 30.0, 30.0),
        ];
        for (elapsed, low, high) in cases {
            let got = gap(&history, Some("batchStopServers"), elapsed);
            let Some(got) = got else {
                panic!("no gap at {elapsed}");
            };
            assert!(low <= got && got <= high, "at {elapsed}: {got}");
        }
    }

    #[test]
    fn long_quiet_stretches_are_capped() {
        // Resizes take 90 to 240 s: the first gap is as long as allowed.
        let history = history("resizeServer", &spread(90.0, 240.0, 100));
        assert_eq!(gap(&history, Some("resizeServer"), 0.0), Some(30.0));
        // A job first seen mid-run is polled at most every max_interval.
        assert_eq!(gap(&history, Some("resizeServer"), 1.0), Some(30.0));
    }

    #[test]
    fn gaps_stay_within_one_second_and_max_interval() {
        let tight = history("t", &[1.0; 50]);
        let wide = history("w", &spread(1.0, 100_000.0, 200));
        let cadence = Cadence {
            max_interval: S(10),
            ..Cadence::default()
        };
        for (history, job_type) in [(&tight, "t"), (&wide, "w")] {
            for elapsed in [0.0, 0.5, 1.0, 2.0, 50.0, 1e4, 1e6] {
                for random in [0.0, 0.5, 1.0, f64::NAN] {
                    let elapsed = Duration::from_secs_f64(elapsed);
                    let got = next_gap(history, &cadence, Some(job_type), elapsed, random);
                    let Some(got) = got else {
                        panic!("no gap for {job_type} at {elapsed:?}");
                    };
                    assert!(
                        S(1) <= got && got <= S(10),
                        "{job_type} {elapsed:?}: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn jitter_is_bounded() {
        let history = history("c", &spread(40.0, 300.0, 100));
        let at = |random| {
            let gap = next_gap(&history, &Cadence::default(), Some("c"), S(60), random);
            gap.map_or(0.0, |g| g.as_secs_f64())
        };
        let middle = at(0.5);
        assert!((at(0.0) - middle * (1.0 - JITTER)).abs() < 1e-6);
        assert!((at(1.0) - middle * (1.0 + JITTER)).abs() < 1e-6);
    }

    #[test]
    fn history_keeps_the_newest_per_type() {
        let mut history = History::new();
        for s in 0..(SAMPLE_SIZE as u64 + 50) {
            history.record("a", S(s));
        }
        history.record("b", S(1));
        assert_eq!(history.len("a"), SAMPLE_SIZE);
        assert_eq!(history.len("b"), 1);
        assert_eq!(history.len("c"), 0);
        let sorted = history.sorted("a").unwrap_or_default();
        assert_eq!(sorted.first(), Some(&50_000));
        assert_eq!(sorted.last(), Some(&(1000 * (SAMPLE_SIZE as u32 + 49))));
    }

    #[test]
    fn rows_from_the_store() {
        let rows = vec![
            ("a".to_string(), 1000),
            ("a".to_string(), -5),
            ("b".to_string(), i64::MAX),
        ];
        let history = History::from_rows(rows);
        assert_eq!(history.len("a"), 1);
        assert_eq!(history.len("b"), 1);
        assert!(!history.is_empty());
        assert!(History::new().is_empty());
    }

    #[test]
    fn smoothed_cdf_cases() {
        let sorted = [10_000, 20_000];
        let cases = [
            (0.0, 0.0),
            (9.0, 0.0),
            (10.0, 0.25),
            (11.0, 0.5),
            (15.0, 0.5),
            (20.0, 0.75),
            (22.0, 1.0),
            (1e9, 1.0),
        ];
        for (x, want) in cases {
            let got = smoothed_cdf(&sorted, x);
            assert!((got - want).abs() < 1e-9, "at {x}: {got}");
        }
        assert_eq!(smoothed_cdf(&[0, 0], 0.0), 0.0);
        assert_eq!(smoothed_cdf(&[0, 0], 0.1), 1.0);
    }
}
