//! Server times: how long a finished job worked and how old a running job
//! is, from the times the service itself states (`begin_time`, `end_time`
//! and the answer's `Date` header), with our own sightings as the fallback
//! when those are missing or absurd.
//!
//! Two pure functions, [`finished_duration`] and [`running_age`], take the
//! service's times as Unix milliseconds (`None` when absent or unreadable)
//! and our own sightings on our own clock, and say which source they used
//! ([`Source`]). The server's times are preferred: `end_time - begin_time`
//! is the exact duration, not blurred by the offset of our first poll and
//! our detection delay, and `Date - begin_time` places a job that was added
//! to the watch list late at its true age at once.
//!
//! The rules, each a constant below: a time before [`MIN_EPOCH_MS`] is
//! absurd; `begin_time` may lie in the future by at most [`CLOCK_SKEW`]
//! (the job service and the gateway that stamps `Date` need not agree to
//! the millisecond); `end_time` may not precede `begin_time`; nothing lasts
//! longer than [`MAX_DURATION`]; a `Date` more than [`MAX_CLOCK_OFFSET`]
//! from our clock is not believed for ages (the gateway itself refuses a
//! signature more than 15 minutes off, so an honest answer is never that
//! far); and the server's account may not contradict our own sightings: a
//! job we saw at work at two moments lasted at least the time between them,
//! and a job we saw at work `x` ago is at least `x` old (each up to
//! [`CLOCK_SKEW`] and the `Date` header's one-second resolution).
//!
//! A job that waited in PENDING_PAYMENT is the one case where the server's
//! `begin_time` is right but useless: it is the order's time, and the wait
//! for a person's payment is not work. The caller says so
//! ([`Sightings::was_pending`]) and the sightings are used.

use std::time::Duration;

/// How far the server's `begin_time` or `end_time` may lie ahead of the
/// reference "now" (the `Date` header, else our clock), and how far the
/// server's account may fall short of our sightings.
pub const CLOCK_SKEW: Duration = Duration::from_secs(10);
/// Durations and ages above this are absurd.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// A `Date` header farther than this from our clock is not believed.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(15 * 60);
/// Times before 2000-01-01T00:00:00Z are absurd (a zero or a parse gone
/// wrong).
pub const MIN_EPOCH_MS: i64 = 946_684_800_000;
/// The `Date` header has a resolution of one second and is truncated: the
/// server's true "now" lies in `[Date, Date + 1 s)`, so the middle is used.
const DATE_MIDPOINT_MS: i64 = 500;
/// The slack for the `Date` header's resolution in the consistency checks.
const DATE_RESOLUTION_MS: i64 = 1000;

/// Where a duration or an age came from; recorded with every duration so
/// that the store says how exact it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// From the service's own times: `end_time - begin_time`, or the
    /// `Date` header minus `begin_time`.
    Server,
    /// From our sightings: first sighting at work to the final answer, or
    /// to now.
    Sighting,
}

impl Source {
    /// The word stored beside a duration: `server` or `sighting`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Server => "server",
            Source::Sighting => "sighting",
        }
    }

    /// The source of a stored word; unknown words are sightings (the
    /// less exact, so the safer reading).
    pub fn parse(word: &str) -> Source {
        match word {
            "server" => Source::Server,
            _ => Source::Sighting,
        }
    }
}

/// What the service stated in one answer, as Unix milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerTimes {
    /// The job's `begin_time` (`JobView::begin_ms`).
    pub begin_ms: Option<i64>,
    /// The job's `end_time` (`JobView::end_ms`); absent while it runs.
    pub end_ms: Option<i64>,
    /// The answer's `Date` header (whole seconds, as sent).
    pub server_now_ms: Option<i64>,
}

/// What we saw ourselves, on our own clock (Unix milliseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sightings {
    /// Our clock when the answer at hand arrived.
    pub now_ms: i64,
    /// When we first saw the job at work (INIT, RUNNING or a status of
    /// the service's own that is not final); `None` when we never did.
    pub first_at_work_ms: Option<i64>,
    /// When we last saw it at work (for a finished job: the answer before
    /// the final one); `None` when we never did.
    pub last_at_work_ms: Option<i64>,
    /// Whether we ever saw the job in PENDING_PAYMENT: its `begin_time`
    /// is then the order's, and only sightings measure its work.
    pub was_pending: bool,
}

/// A duration or an age and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    /// The duration or age.
    pub value: Duration,
    /// Its source.
    pub source: Source,
}

/// How long a job that has just been seen final worked: `end_time -
/// begin_time` when both are present and sane, else from our first
/// sighting at work to the middle between our last sighting at work and
/// now (to now when there was none). `None` when neither is known (the job was
/// never seen at work and the server's times are missing or absurd), or
/// when the sighting span itself is absurd.
pub fn finished_duration(server: ServerTimes, seen: Sightings) -> Option<Measured> {
    if let Some(value) = server_duration(server, seen) {
        return Some(Measured {
            value,
            source: Source::Server,
        });
    }
    let first = seen.first_at_work_ms?;
    // The job ended between our last sighting at work and this answer:
    // the middle, so that the detection delay does not lengthen what is
    // learned (and, through later polls, the next delay).
    let end = match seen.last_at_work_ms {
        Some(last) if last >= first && last <= seen.now_ms => {
            let half = (i128::from(seen.now_ms) - i128::from(last)) / 2;
            last.saturating_add(i64::try_from(half).unwrap_or(0))
        }
        _ => seen.now_ms,
    };
    let span = end.checked_sub(first)?;
    let value = millis(span)?;
    (value <= MAX_DURATION).then_some(Measured {
        value,
        source: Source::Sighting,
    })
}

/// How old a job still at work is: the server's now minus `begin_time`
/// when sane, else the time since our first sighting at work (zero when
/// this answer is that first sighting). The server's now is the `Date`
/// header (its middle second) when it agrees with our clock, else our
/// clock when the header is absent; a `Date` that disagrees with our clock
/// by more than [`MAX_CLOCK_OFFSET`] means the sightings are used.
pub fn running_age(server: ServerTimes, seen: Sightings) -> Measured {
    let sighted = seen
        .first_at_work_ms
        .and_then(|first| seen.now_ms.checked_sub(first))
        .and_then(millis)
        .unwrap_or(Duration::ZERO)
        .min(MAX_DURATION);
    match server_age(server, seen, sighted) {
        Some(value) => Measured {
            value,
            source: Source::Server,
        },
        None => Measured {
            value: sighted,
            source: Source::Sighting,
        },
    }
}

/// `end - begin` when the server's times pass every rule of the module.
fn server_duration(server: ServerTimes, seen: Sightings) -> Option<Duration> {
    if seen.was_pending {
        return None;
    }
    let (begin, end) = (server.begin_ms?, server.end_ms?);
    if begin < MIN_EPOCH_MS || end < begin {
        return None;
    }
    // The end may not lie in the future of the answer that reported it,
    // on the server's clock when it sent one, else on ours.
    let reference = server.server_now_ms.unwrap_or(seen.now_ms);
    let future_allowance = skew_ms() + DATE_RESOLUTION_MS;
    if end > reference.saturating_add(future_allowance) {
        return None;
    }
    let value = millis(end - begin)?;
    if value > MAX_DURATION {
        return None;
    }
    // We saw it at work at two moments: it worked at least that long.
    if let (Some(first), Some(last)) = (seen.first_at_work_ms, seen.last_at_work_ms)
        && (end - begin).saturating_add(future_allowance) < last.saturating_sub(first)
    {
        return None;
    }
    Some(value)
}

/// The server's now minus `begin` when every rule holds.
fn server_age(server: ServerTimes, seen: Sightings, sighted: Duration) -> Option<Duration> {
    if seen.was_pending {
        return None;
    }
    let begin = server.begin_ms?;
    if begin < MIN_EPOCH_MS {
        return None;
    }
    let reference = match server.server_now_ms {
        Some(date) if date.abs_diff(seen.now_ms) <= MAX_CLOCK_OFFSET.as_millis() as u64 => {
            date.saturating_add(DATE_MIDPOINT_MS)
        }
        Some(_) => return None,
        None => seen.now_ms,
    };
    let allowance = skew_ms() + DATE_RESOLUTION_MS;
    let age_ms = reference.checked_sub(begin)?;
    if age_ms < -allowance {
        // Begun in the future beyond the skew allowance.
        return None;
    }
    let age = millis(age_ms.max(0))?;
    if age > MAX_DURATION {
        return None;
    }
    // We have seen it at work for `sighted`: it is at least that old.
    if age_ms.saturating_add(allowance) < sighted.as_millis() as i64 {
        return None;
    }
    Some(age)
}

fn skew_ms() -> i64 {
    CLOCK_SKEW.as_millis() as i64
}

/// A non-negative count of milliseconds as a duration.
fn millis(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// The `Date` header of an answer as Unix milliseconds, or `None` when it
/// is not an HTTP date.
pub fn parse_date_header(value: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(value).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests;
