//! Pure evaluation of a job's timeline: whether the job is visible at a
//! given offset, and the response body ECS would send for it then.
//!
//! Offsets are durations since the job's base (the simulator's start, or
//! the moment the job was added through the control API); wall times are
//! the base's wall time plus the offset. Nothing here reads a clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::scenario::{JobSpec, SubJobSpec, TimelineEntry};

/// The statuses after which `end_time` is set.
const FINAL_STATUSES: [&str; 2] = ["SUCCESS", "FAIL"];

/// The entry that applies at `elapsed`: the last whose `at` has passed, or
/// the first entry while none has (a job is never served without a status).
pub fn entry_at(timeline: &[TimelineEntry], elapsed: Duration) -> Option<&TimelineEntry> {
    timeline
        .iter()
        .rev()
        .find(|entry| entry.at <= elapsed)
        .or_else(|| timeline.first())
}

/// True when the job answers 200 at `elapsed`, false when it answers 404.
pub fn is_visible(job: &JobSpec, elapsed: Duration) -> bool {
    elapsed >= job.visible_after && job.vanish_after.is_none_or(|vanish| elapsed < vanish)
}

/// `2016-04-25T20:04:34.604Z`, the way ECS writes times.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `base + offset`, saturating at the largest representable time.
pub fn wall_time(base: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(offset)
        .ok()
        .and_then(|delta| base.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The 200 body of `GET /v1/{project_id}/jobs/{job_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobBody {
    /// The current status.
    pub status: String,
    /// Sub-jobs, or the job's own server and NIC ids.
    pub entities: Entities,
    /// The job id.
    pub job_id: String,
    /// The job type.
    pub job_type: String,
    /// The wall time of the first timeline entry.
    pub begin_time: String,
    /// `""` until SUCCESS or FAIL, then the wall time of that entry.
    pub end_time: String,
    /// Set only while the current entry sets it.
    pub error_code: Option<String>,
    /// Set only while the current entry sets it.
    pub fail_reason: Option<String>,
}

/// `entities` of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entities {
    /// The number of sub-jobs; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_jobs_total: Option<usize>,
    /// The sub-jobs; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_jobs: Option<Vec<SubJobBody>>,
    /// The job's own server id, when the scenario sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The job's own NIC id, when the scenario sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
}

/// One element of `entities.sub_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubJobBody {
    /// The current status.
    pub status: String,
    /// `server_id`, `nic_id`, `errorcode_message` when set.
    pub entities: SubJobEntities,
    /// The sub-job id.
    pub job_id: String,
    /// The sub-job type.
    pub job_type: String,
    /// The wall time of the first timeline entry.
    pub begin_time: String,
    /// `""` until SUCCESS or FAIL, then the wall time of that entry.
    pub end_time: String,
    /// Set only while the current entry sets it.
    pub error_code: Option<String>,
    /// Set only while the current entry sets it.
    pub fail_reason: Option<String>,
}

/// `entities` of a sub-job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubJobEntities {
    /// The server the sub-job works on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The NIC the sub-job works on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// Why the sub-job failed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errorcode_message: Option<String>,
}

/// The fields every timeline yields: status, times, error code and reason.
struct Evaluated {
    status: String,
    begin_time: String,
    end_time: String,
    error_code: Option<String>,
    fail_reason: Option<String>,
}

fn evaluate(timeline: &[TimelineEntry], elapsed: Duration, base: DateTime<Utc>) -> Evaluated {
    let begin_time = timeline
        .first()
        .map(|first| format_time(wall_time(base, first.at)))
        .unwrap_or_default();
    let Some(entry) = entry_at(timeline, elapsed) else {
        return Evaluated {
            status: String::new(),
            begin_time,
            end_time: String::new(),
            error_code: None,
            fail_reason: None,
        };
    };
    let end_time = if FINAL_STATUSES.contains(&entry.status.as_str()) {
        format_time(wall_time(base, entry.at))
    } else {
        String::new()
    };
    Evaluated {
        status: entry.status.clone(),
        begin_time,
        end_time,
        error_code: entry.error_code.clone(),
        fail_reason: entry.fail_reason.clone(),
    }
}

/// The body served for `job` at `elapsed` after its base, whose wall time
/// is `base`. Visibility is the caller's business (`is_visible`).
pub fn job_body(job: &JobSpec, elapsed: Duration, base: DateTime<Utc>) -> JobBody {
    let own = evaluate(&job.timeline, elapsed, base);
    let sub_jobs: Vec<SubJobBody> = job
        .sub_jobs
        .iter()
        .map(|sub_job| sub_job_body(sub_job, elapsed, base))
        .collect();
    let (sub_jobs_total, sub_jobs) = if sub_jobs.is_empty() {
        (None, None)
    } else {
        (Some(sub_jobs.len()), Some(sub_jobs))
    };
    JobBody {
        status: own.status,
        entities: Entities {
            sub_jobs_total,
            sub_jobs,
            server_id: job.server_id.clone(),
            nic_id: job.nic_id.clone(),
        },
        job_id: job.id.clone(),
        job_type: job.job_type.clone(),
        begin_time: own.begin_time,
        end_time: own.end_time,
        error_code: own.error_code,
        fail_reason: own.fail_reason,
    }
}

fn sub_job_body(sub_job: &SubJobSpec, elapsed: Duration, base: DateTime<Utc>) -> SubJobBody {
    let own = evaluate(&sub_job.timeline, elapsed, base);
    SubJobBody {
        status: own.status,
        entities: SubJobEntities {
            server_id: sub_job.server_id.clone(),
            nic_id: sub_job.nic_id.clone(),
            errorcode_message: sub_job.errorcode_message.clone(),
        },
        job_id: sub_job.id.clone(),
        job_type: sub_job.job_type.clone(),
        begin_time: own.begin_time,
        end_time: own.end_time,
        error_code: own.error_code,
        fail_reason: own.fail_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Scenario;

    fn job() -> JobSpec {
        let text = r#"
[[credential]]
access_key = "AK"
secret_key = "SK"

[[job]]
id = "ff80808288d41e1b018990260955686a"
job_type = "createServer"
visible_after = "1s"
vanish_after = "1h"
timeline = [
  { at = "0s",  status = "INIT" },
  { at = "2s",  status = "RUNNING" },
  { at = "20s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "insufficient EIP quota" },
]
[[job.sub_job]]
id = "ff80808288d41e1b018990260955686b"
job_type = "createSingleServer"
server_id = "1c74e090-c569-4b52-9eaa-fd34776cec28"
errorcode_message = "no EIP"
timeline = [ { at = "1s", status = "RUNNING" }, { at = "18s", status = "FAIL", fail_reason = "quota" } ]
"#;
        let mut scenario = Scenario::from_toml_str(text).unwrap();
        scenario.jobs.remove(0)
    }

    fn base() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2016-04-25T20:04:34.604Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn status_at_several_offsets() {
        let job = job();
        let check = |millis: u64, status: &str, sub_status: &str| {
            let body = job_body(&job, Duration::from_millis(millis), base());
            assert_eq!(body.status, status, "{millis} ms");
            let sub_jobs = body.entities.sub_jobs.as_ref().unwrap();
            assert_eq!(sub_jobs[0].status, sub_status, "{millis} ms");
        };
        check(0, "INIT", "RUNNING");
        check(1_999, "INIT", "RUNNING");
        check(2_000, "RUNNING", "RUNNING");
        check(18_000, "RUNNING", "FAIL");
        check(20_000, "FAIL", "FAIL");
        check(86_400_000, "FAIL", "FAIL");
    }

    #[test]
    fn times_and_errors_follow_the_current_entry() {
        let job = job();
        let running = job_body(&job, Duration::from_secs(5), base());
        assert_eq!(running.begin_time, "2016-04-25T20:04:34.604Z");
        assert_eq!(running.end_time, "");
        assert_eq!(running.error_code, None);
        assert_eq!(running.fail_reason, None);
        let failed = job_body(&job, Duration::from_secs(30), base());
        assert_eq!(failed.end_time, "2016-04-25T20:04:54.604Z");
        assert_eq!(failed.error_code.as_deref(), Some("Ecs.0013"));
        assert_eq!(
            failed.fail_reason.as_deref(),
            Some("insufficient EIP quota")
        );
        let sub_jobs = failed.entities.sub_jobs.as_ref().unwrap();
        assert_eq!(sub_jobs[0].begin_time, "2016-04-25T20:04:35.604Z");
        assert_eq!(sub_jobs[0].end_time, "2016-04-25T20:04:52.604Z");
        assert_eq!(sub_jobs[0].fail_reason.as_deref(), Some("quota"));
    }

    #[test]
    fn wire_shape_matches_the_reference() {
        let body = serde_json::to_value(job_body(&job(), Duration::from_secs(30), base())).unwrap();
        let expected = serde_json::json!({
            "status": "FAIL",
            "entities": {
                "sub_jobs_total": 1,
                "sub_jobs": [{
                    "status": "FAIL",
                    "entities": {
                        "server_id": "1c74e090-c569-4b52-9eaa-fd34776cec28",
                        "errorcode_message": "no EIP"
                    },
                    "job_id": "ff80808288d41e1b018990260955686b",
                    "job_type": "createSingleServer",
                    "begin_time": "2016-04-25T20:04:35.604Z",
                    "end_time": "2016-04-25T20:04:52.604Z",
                    "error_code": null,
                    "fail_reason": "quota"
                }]
            },
            "job_id": "ff80808288d41e1b018990260955686a",
            "job_type": "createServer",
            "begin_time": "2016-04-25T20:04:34.604Z",
            "end_time": "2016-04-25T20:04:54.604Z",
            "error_code": "Ecs.0013",
            "fail_reason": "insufficient EIP quota"
        });
        assert_eq!(body, expected);
        let mut plain = job();
        plain.sub_jobs.clear();
        let body = serde_json::to_value(job_body(&plain, Duration::ZERO, base())).unwrap();
        assert_eq!(body["entities"], serde_json::json!({}));
        assert_eq!(body["error_code"], serde_json::Value::Null);
    }

    #[test]
    fn visibility_window() {
        let job = job();
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
