//! Fault injection: which rules fire for a request, and the bodies that
//! cut a response short.
//!
//! Every active rule is drawn independently. Drawn `latency` rules add up
//! to one delay before the answer; the first drawn rule of any other kind
//! decides the answer. Drawing is a pure function of the rules, the time,
//! the job and a random source, so it is tested with a seeded generator.

use std::time::Duration;

use axum::body::{Body, Bytes};
use rand::Rng;

use super::scenario::{FaultKind, FaultRule};

/// The outcome of drawing the fault rules for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drawn {
    /// The total delay of the drawn `latency` rules.
    pub latency: Duration,
    /// How many `latency` rules were drawn.
    pub latency_rules: u64,
    /// The first drawn rule of another kind, which answers the request.
    pub answer: Option<FaultRule>,
}

/// Draws `rules` for a request at `elapsed` after the simulator's start
/// for the job known by `names` (see [`FaultRule::is_active`]).
pub fn draw(rules: &[FaultRule], elapsed: Duration, names: &[&str], rng: &mut impl Rng) -> Drawn {
    let mut drawn = Drawn::default();
    for rule in rules {
        if !rule.is_active(elapsed, names) {
            continue;
        }
        // `random::<f64>()` is in [0, 1), so probability 1 always fires and
        // probability 0 never does.
        if rng.random::<f64>() >= rule.probability {
            continue;
        }
        if rule.kind == FaultKind::Latency {
            let (low, high) = rule.latency.unwrap_or_default();
            drawn.latency += uniform(low, high, rng);
            drawn.latency_rules += 1;
        } else if drawn.answer.is_none() {
            drawn.answer = Some(rule.clone());
        }
    }
    drawn
}

/// A duration drawn uniformly from `[low, high]`.
fn uniform(low: Duration, high: Duration, rng: &mut impl Rng) -> Duration {
    if high <= low {
        return low;
    }
    let span = u64::try_from((high - low).as_nanos()).unwrap_or(u64::MAX);
    low + Duration::from_nanos(rng.random_range(0..=span))
}

/// The HTTP status of a `server_error`: the rule's, or 500/502/503/504.
pub fn server_error_status(rule: &FaultRule, rng: &mut impl Rng) -> u16 {
    const STATUSES: [u16; 4] = [500, 502, 503, 504];
    rule.status
        .unwrap_or_else(|| STATUSES[rng.random_range(0..STATUSES.len())])
}

/// A body that yields the first half of `full` and then fails, so that a
/// response announcing `full.len()` bytes ends early and its connection is
/// closed. The short pause before failing lets the connection flush the
/// half that was sent.
pub fn truncated_body(full: Vec<u8>) -> Body {
    let full = Bytes::from(full);
    let half = full.slice(..full.len() / 2);
    let stream = futures_util::stream::unfold(Stage::Half(half), |stage| async move {
        match stage {
            Stage::Half(half) => Some((Ok(half), Stage::Fail)),
            Stage::Fail => {
                tokio::time::sleep(FLUSH_PAUSE).await;
                Some((
                    Err(std::io::Error::other("response truncated by a fault rule")),
                    Stage::Done,
                ))
            }
            Stage::Done => None,
        }
    });
    Body::from_stream(stream)
}

/// How long a truncated body waits between its half and its failure.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Where a truncated body is.
enum Stage {
    Half(Bytes),
    Fail,
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rule(kind: FaultKind, probability: f64) -> FaultRule {
        FaultRule {
            probability,
            latency: (kind == FaultKind::Latency)
                .then_some((Duration::from_millis(10), Duration::from_millis(20))),
            ..FaultRule::always(kind)
        }
    }

    #[test]
    fn first_drawn_answer_wins_and_latencies_add_up() {
        let mut rng = StdRng::seed_from_u64(7);
        let rules = [
            rule(FaultKind::Latency, 1.0),
            rule(FaultKind::ServerError, 0.0),
            rule(FaultKind::Throttle, 1.0),
            rule(FaultKind::Latency, 1.0),
            rule(FaultKind::Drop, 1.0),
        ];
        let drawn = draw(&rules, Duration::ZERO, &["j"], &mut rng);
        assert_eq!(
            drawn.answer.map(|rule| rule.kind),
            Some(FaultKind::Throttle)
        );
        assert_eq!(drawn.latency_rules, 2);
        assert!(drawn.latency >= Duration::from_millis(20));
        assert!(drawn.latency <= Duration::from_millis(40));
    }

    #[test]
    fn inactive_rules_are_not_drawn() {
        let mut rng = StdRng::seed_from_u64(7);
        let rules = [FaultRule {
            jobs: vec!["other".into()],
            ..rule(FaultKind::Drop, 1.0)
        }];
        assert_eq!(
            draw(&rules, Duration::ZERO, &["j"], &mut rng),
            Drawn::default()
        );
    }

    #[test]
    fn probability_is_roughly_honoured() {
        let mut rng = StdRng::seed_from_u64(11);
        let rules = [rule(FaultKind::ClientError, 0.25)];
        let fired = (0..4_000)
            .filter(|_| draw(&rules, Duration::ZERO, &[], &mut rng).answer.is_some())
            .count();
        assert!((800..1_200).contains(&fired), "{fired}");
    }

    #[test]
    fn server_error_statuses() {
        let mut rng = StdRng::seed_from_u64(3);
        let fixed = FaultRule {
            status: Some(503),
            ..rule(FaultKind::ServerError, 1.0)
        };
        assert_eq!(server_error_status(&fixed, &mut rng), 503);
        let random = rule(FaultKind::ServerError, 1.0);
        for _ in 0..50 {
            let status = server_error_status(&random, &mut rng);
            assert!([500, 502, 503, 504].contains(&status), "{status}");
        }
    }
}
