//! Tests of the server-time rules: each rule once with sane times (the
//! server's account is used) and once broken (the sightings are used).

use super::*;

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000;
const SEC: i64 = 1000;

fn server(begin: Option<i64>, end: Option<i64>, date: Option<i64>) -> ServerTimes {
    ServerTimes {
        begin_ms: begin,
        end_ms: end,
        server_now_ms: date,
    }
}

/// Seen at work from `first` to `last`, now at `now` (all relative to
/// `T0`, in seconds).
fn seen(now: i64, first: Option<i64>, last: Option<i64>) -> Sightings {
    Sightings {
        now_ms: T0 + now * SEC,
        first_at_work_ms: first.map(|s| T0 + s * SEC),
        last_at_work_ms: last.map(|s| T0 + s * SEC),
        was_pending: false,
    }
}

fn at(seconds: i64) -> Option<i64> {
    Some(T0 + seconds * SEC)
}

#[test]
fn durations_from_the_server_when_sane() {
    // (server times, sightings, expected seconds and source)
    let cases = [
        // Exact server duration, although we saw it for less.
        (
            server(at(0), at(65), at(70)),
            seen(70, Some(5), Some(60)),
            Some((65_000, Source::Server)),
        ),
        // Added late: never seen at work, the server still knows.
        (
            server(at(0), at(300), at(400)),
            seen(400, None, None),
            Some((300_000, Source::Server)),
        ),
        // No Date header: our clock is the reference.
        (
            server(at(0), at(30), None),
            seen(31, Some(2), Some(25)),
            Some((30_000, Source::Server)),
        ),
        // An end a little ahead of the Date header (within the skew).
        (
            server(at(0), at(79), at(70)),
            seen(70, Some(1), Some(60)),
            Some((79_000, Source::Server)),
        ),
        // A zero-length job is possible.
        (
            server(at(10), at(10), at(11)),
            seen(11, None, None),
            Some((0, Source::Server)),
        ),
    ];
    for (server, seen, want) in cases {
        let got = finished_duration(server, seen).map(|m| (m.value.as_millis() as i64, m.source));
        assert_eq!(got, want, "{server:?} {seen:?}");
    }
}

#[test]
fn durations_fall_back_to_sightings_when_absurd() {
    // Seen at work from `first` to 60 s, final at `now`: the end is taken
    // halfway between 60 s and `now`.
    let sighting =
        |first: i64, now: i64| Some(((60 + now) * SEC / 2 - first * SEC, Source::Sighting));
    let cases = [
        // Missing fields.
        (
            server(None, at(60), at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        (
            server(at(0), None, at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        // The end before the begin.
        (
            server(at(50), at(40), at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        // Before 2000: a zero or a misread.
        (
            server(Some(0), Some(65_000), at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        // An end far in the future of the answer.
        (
            server(at(0), at(3600), at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        // An end far in the future of our clock (no Date header).
        (
            server(at(0), at(3600), None),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        // Longer than 30 days.
        (
            server(at(-31 * 24 * 3600), at(60), at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
        // Shorter than what we saw ourselves (seen at work 3 s .. 60 s).
        (
            server(at(40), at(60), at(70)),
            seen(70, Some(3), Some(60)),
            sighting(3, 70),
        ),
    ];
    for (server, seen, want) in cases {
        let got = finished_duration(server, seen).map(|m| (m.value.as_millis() as i64, m.source));
        assert_eq!(got, want, "{server:?} {seen:?}");
    }
}

#[test]
fn durations_of_paid_jobs_and_of_jobs_never_seen_at_work() {
    // Waited for payment: begin_time is the order's; only sightings count
    // (at work from 3900 s to 3990 s, final at 4000 s: ended about 3995 s).
    let paid = Sightings {
        was_pending: true,
        ..seen(4000, Some(3900), Some(3990))
    };
    let got = finished_duration(server(at(0), at(3995), at(4000)), paid);
    assert_eq!(
        got,
        Some(Measured {
            value: Duration::from_secs(95),
            source: Source::Sighting
        })
    );
    // Seen at work only once, at the first sighting: from there to now.
    let once = seen(40, Some(10), None);
    assert_eq!(
        finished_duration(server(None, None, None), once).map(|m| m.value),
        Some(Duration::from_secs(30))
    );
    // Never seen at work and no usable server times: nothing to learn.
    assert_eq!(
        finished_duration(server(None, None, at(10)), seen(10, None, None)),
        None
    );
    // A sighting span that is absurd (our clock went back) teaches nothing.
    assert_eq!(
        finished_duration(server(None, None, None), seen(10, Some(20), None)),
        None
    );
}

#[test]
fn ages_from_the_server_when_sane() {
    let cases = [
        // Date header: its middle second minus begin.
        (
            server(at(0), None, at(40)),
            seen(40, Some(38), None),
            40_500,
        ),
        // Added late: first sighting now, yet 10 minutes old.
        (
            server(at(0), None, at(600)),
            seen(600, Some(600), None),
            600_500,
        ),
        // No Date header: our clock stands in.
        (server(at(0), None, None), seen(40, Some(38), None), 40_000),
        // Begun slightly in the future (within the skew): age zero.
        (server(at(45), None, at(40)), seen(40, Some(40), None), 0),
        // The Date header may disagree with our clock by minutes.
        (
            server(at(0), None, at(40 + 600)),
            seen(40, Some(40), None),
            640_500,
        ),
    ];
    for (server, seen, want) in cases {
        let got = running_age(server, seen);
        assert_eq!(got.source, Source::Server, "{server:?} {seen:?}");
        assert_eq!(got.value.as_millis() as i64, want, "{server:?} {seen:?}");
    }
}

#[test]
fn ages_fall_back_to_sightings_when_absurd() {
    let cases = [
        // No begin_time.
        (server(None, None, at(40)), seen(40, Some(10), None), 30_000),
        // Begun far in the future.
        (
            server(at(400), None, at(40)),
            seen(40, Some(10), None),
            30_000,
        ),
        // Before 2000.
        (
            server(Some(5), None, at(40)),
            seen(40, Some(10), None),
            30_000,
        ),
        // The Date header an hour from our clock.
        (
            server(at(0), None, at(40 + 3600)),
            seen(40, Some(10), None),
            30_000,
        ),
        // Older than 30 days.
        (
            server(at(-31 * 24 * 3600), None, at(40)),
            seen(40, Some(10), None),
            30_000,
        ),
        // Younger than our own sightings say (seen at work for 30 s).
        (
            server(at(35), None, at(40)),
            seen(40, Some(10), None),
            30_000,
        ),
        // The first sighting: age zero.
        (server(None, None, None), seen(40, Some(40), None), 0),
        // Never seen at work yet (caller passes none): age zero.
        (server(None, None, None), seen(40, None, None), 0),
        // Our clock went back: age zero, not a panic.
        (server(None, None, None), seen(40, Some(50), None), 0),
    ];
    for (server, seen, want) in cases {
        let got = running_age(server, seen);
        assert_eq!(got.source, Source::Sighting, "{server:?} {seen:?}");
        assert_eq!(got.value.as_millis() as i64, want, "{server:?} {seen:?}");
    }
    // Paid late: the order's begin_time is no age.
    let paid = Sightings {
        was_pending: true,
        ..seen(4000, Some(3990), None)
    };
    let got = running_age(server(at(0), None, at(4000)), paid);
    assert_eq!(
        got,
        Measured {
            value: Duration::from_secs(10),
            source: Source::Sighting
        }
    );
}

#[test]
fn extreme_inputs_do_not_panic() {
    let extremes = [i64::MIN, -1, 0, MIN_EPOCH_MS, T0, i64::MAX];
    for &a in &extremes {
        for &b in &extremes {
            for &c in &extremes {
                let times = server(Some(a), Some(b), Some(c));
                let sightings = Sightings {
                    now_ms: c,
                    first_at_work_ms: Some(a),
                    last_at_work_ms: Some(b),
                    was_pending: false,
                };
                let _ = finished_duration(times, sightings);
                let age = running_age(times, sightings);
                assert!(age.value <= MAX_DURATION);
            }
        }
    }
}

#[test]
fn sources_and_date_headers() {
    for source in [Source::Server, Source::Sighting] {
        assert_eq!(Source::parse(source.as_str()), source);
    }
    assert_eq!(Source::parse("anything"), Source::Sighting);
    assert_eq!(parse_date_header("Mon, 01 Jan 2024 00:00:00 GMT"), Some(T0));
    assert_eq!(parse_date_header("yesterday"), None);
}
