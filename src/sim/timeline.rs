//! Pure evaluation of a job's timeline: whether the job is visible at a
//! given offset, and which status, times, error and progress apply then.
//!
//! Offsets are durations since the job's base (the simulator's start, or
//! the moment the job was added through the control API); wall times are
//! the base's wall time plus the offset. Whether a status word is final is
//! the service's adapter's to say. Nothing here reads a clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::scenario::{JobSpec, TimelineEntry};
use crate::job::Service;

/// The entry that applies at `elapsed`: the last whose `at` has passed, or
/// the first entry while none has (a job is never served without a status).
pub fn entry_at(timeline: &[TimelineEntry], elapsed: Duration) -> Option<&TimelineEntry> {
    timeline
        .iter()
        .rev()
        .find(|entry| entry.at <= elapsed)
        .or_else(|| timeline.first())
}

/// True when the job answers 200 at `elapsed`, false when it answers "no
/// such job".
pub fn is_visible(job: &JobSpec, elapsed: Duration) -> bool {
    elapsed >= job.visible_after && job.vanish_after.is_none_or(|vanish| elapsed < vanish)
}

/// `base + offset`, saturating at the largest representable time.
pub fn wall_time(base: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(offset)
        .ok()
        .and_then(|delta| base.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What a timeline says at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The status word of the entry that applies.
    pub status: String,
    /// The wall time of the first entry.
    pub begin: Option<DateTime<Utc>>,
    /// The wall time of the entry that applies.
    pub updated: Option<DateTime<Utc>>,
    /// The wall time of the entry that applies, once its status is final
    /// for the service.
    pub end: Option<DateTime<Utc>>,
    /// The entry's error code.
    pub error_code: Option<String>,
    /// The entry's fail reason.
    pub fail_reason: Option<String>,
    /// The entry's progress in percent.
    pub progress: Option<f64>,
}

/// Evaluates a timeline of a `service` job at `elapsed` after its base,
/// whose wall time is `base`.
pub fn evaluate(
    timeline: &[TimelineEntry],
    elapsed: Duration,
    base: DateTime<Utc>,
    service: Service,
) -> Evaluated {
    let begin = timeline.first().map(|first| wall_time(base, first.at));
    let Some(entry) = entry_at(timeline, elapsed) else {
        return Evaluated {
            status: String::new(),
            begin,
            updated: None,
            end: None,
            error_code: None,
            fail_reason: None,
            progress: None,
        };
    };
    let updated = wall_time(base, entry.at);
    let is_final = crate::services::adapter(service)
        .status(&entry.status)
        .is_final();
    Evaluated {
        status: entry.status.clone(),
        begin,
        updated: Some(updated),
        end: is_final.then_some(updated),
        error_code: entry.error_code.clone(),
        fail_reason: entry.fail_reason.clone(),
        progress: entry.progress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Scenario;

    fn job(service: &str, timeline: &str) -> JobSpec {
        let text = format!(
            r#"
[[credential]]
access_key = "AK"
secret_key = "SK"

[[job]]
id = "j"
service = "{service}"
job_type = "t"
visible_after = "1s"
vanish_after = "1h"
timeline = {timeline}
"#
        );
        let mut scenario = Scenario::from_toml_str(&text).unwrap();
        scenario.jobs.remove(0)
    }

    fn base() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2016-04-25T20:04:34.604Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn status_at_several_offsets() {
        let job = job(
            "ecs",
            r#"[{ at = "0s", status = "INIT" }, { at = "2s", status = "RUNNING" }, { at = "20s", status = "FAIL", error_code = "Ecs.0013" }]"#,
        );
        let check = |millis: u64, status: &str| {
            let evaluated = evaluate(
                &job.timeline,
                Duration::from_millis(millis),
                base(),
                job.service,
            );
            assert_eq!(evaluated.status, status, "{millis} ms");
        };
        check(0, "INIT");
        check(1_999, "INIT");
        check(2_000, "RUNNING");
        check(20_000, "FAIL");
        check(86_400_000, "FAIL");
    }

    #[test]
    fn the_service_says_what_is_final() {
        let cases = [
            ("ecs", "FAIL", true),
            ("ecs", "Failed", false),
            ("cce", "Failed", true),
            ("rds", "Completed", true),
            ("rds", "Running", false),
            ("evs", "WAITING_EXECUTE", false),
        ];
        for (service, word, is_final) in cases {
            let job = job(
                service,
                &format!(
                    r#"[{{ at = "0s", status = "INIT" }}, {{ at = "5s", status = "{word}", progress = 60.0 }}]"#
                ),
            );
            let evaluated = evaluate(&job.timeline, Duration::from_secs(9), base(), job.service);
            assert_eq!(evaluated.end.is_some(), is_final, "{service} {word}");
            assert_eq!(evaluated.begin, Some(base()));
            assert_eq!(
                evaluated.updated,
                Some(wall_time(base(), Duration::from_secs(5)))
            );
            assert_eq!(evaluated.progress, Some(60.0));
        }
    }

    #[test]
    fn visibility_window() {
        let job = job("ecs", r#"[{ at = "0s", status = "INIT" }]"#);
        let check = |millis: u64, expected: bool| {
            assert_eq!(
                is_visible(&job, Duration::from_millis(millis)),
                expected,
                "{millis}"
            );
        };
        check(0, false);
        check(999, false);
        check(1_000, true);
        check(3_599_999, true);
        check(3_600_000, false);
    }

    #[test]
    fn wall_time_saturates() {
        assert_eq!(wall_time(base(), Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
