//! Tests of `delivery`.

use super::*;

#[test]
fn backoff_doubles_to_five_minutes_with_full_jitter() {
    let cases = [
        (1, 0.5, 500),
        (2, 0.5, 1_000),
        (3, 0.999, 3_996),
        (10, 0.5, 150_000),
        (40, 0.5, 150_000),
        (1, 0.0, 100),
        (u64::MAX, 0.0, 100),
    ];
    for (attempts, random, ms) in cases {
        assert_eq!(
            backoff(attempts, random),
            Duration::from_millis(ms),
            "{attempts} {random}"
        );
    }
    assert!(backoff(50, 0.999_999) <= BACKOFF_MAX);
}

#[test]
fn steps_follow_the_head_row() {
    let hour = Duration::from_secs(3600);
    let cases = [
        (None, Step::Idle),
        (Some((0, 0)), Step::Attempt),
        (Some((0, 5_000)), Step::Wait(Duration::from_millis(4_000))),
        // The wait never passes the deadline.
        (
            Some((0, 9_000_000)),
            Step::Wait(Duration::from_millis(3_599_000)),
        ),
        (Some((-3_600_000, 0)), Step::Drop),
    ];
    for (head, expected) in cases {
        assert_eq!(decide(head, hour, 1_000), expected, "{head:?}");
    }
}

#[test]
fn retry_after_replaces_the_backoff() {
    let asked = Failure {
        retry_after: Some(Duration::from_secs(3)),
        ..Failure::new("HTTP 503")
    };
    assert_eq!(next_attempt_at(&asked, 1, 0.5, 10_000), 13_000);
    // Even a long one: the deadline of `max_age` bounds it in `decide`.
    let long = Failure {
        retry_after: Some(Duration::from_secs(86_400 * 30)),
        ..Failure::new("HTTP 429")
    };
    let next = next_attempt_at(&long, 1, 0.5, 0);
    assert_eq!(
        decide(Some((0, next)), Duration::from_secs(60), 0),
        Step::Wait(Duration::from_secs(60))
    );
    // Without one, the backoff.
    assert_eq!(next_attempt_at(&Failure::new("HTTP 500"), 2, 0.5, 0), 1_000);
}
