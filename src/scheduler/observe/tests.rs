//! Decisions tested as plain functions: no runtime, no clock, no I/O.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::job::{JobKey, JobView, Labels, Status, SubJobView};
use crate::output::event::{JOB_NOT_FOUND, JOB_SUBJOB_FAILED, JOB_TIMEOUT, JOB_TRANSITION};

const S: fn(u64) -> Duration = Duration::from_secs;

struct Fixture {
    key: JobKey,
    project: ProjectInfo,
    cadence: Cadence,
    origin: Instant,
}

impl Fixture {
    fn new(key: &str) -> Fixture {
        Fixture {
            key: JobKey::parse(key).unwrap(),
            project: ProjectInfo {
                project_id: Arc::from("p"),
                region: Some(Arc::from("cn-north-4")),
            },
            cadence: Cadence::default(),
            origin: Instant::now(),
        }
    }

    fn context(&self, at: Duration, healthy: bool) -> Context<'_> {
        Context {
            key: &self.key,
            project: &self.project,
            cadence: &self.cadence,
            history: None,
            store_healthy: healthy,
            now: self.origin + at,
            wall_ms: 1_000_000 + at.as_millis() as i64,
            server_now_ms: None,
            spacing: crate::policy::adaptive::SPACING,
            random: 0.5,
        }
    }

    fn job(&self) -> Tracked {
        Tracked::new(Arc::new(Labels::new()), self.origin, 1_000_000)
    }
}

fn view(status: Status) -> JobView {
    JobView {
        service_status: status.as_str().to_string(),
        status,
        job_type: Some("createVolume".into()),
        ..JobView::default()
    }
}

fn names(observation: &Observation) -> Vec<String> {
    observation
        .events
        .iter()
        .map(|e| match e.status() {
            Some(status) => format!("{}:{status}", e.name()),
            None => e.name().to_string(),
        })
        .collect()
}

#[test]
fn first_sighting_then_no_change_then_final() {
    let f = Fixture::new("evs:v1");
    let mut job = f.job();
    let first = observe(&mut job, &view(Status::Running), &f.context(S(2), true));
    assert_eq!(names(&first), [format!("{JOB_TRANSITION}:RUNNING")]);
    assert_eq!(first.record, Record::Full);
    assert!(matches!(first.next, Next::Poll(_)));
    let Some(event) = first.events.first() else {
        panic!("an event")
    };
    assert_eq!(event.job().unwrap().key.service, crate::job::Service::Evs);

    let same = observe(&mut job, &view(Status::Running), &f.context(S(4), true));
    assert!(same.events.is_empty());
    assert_eq!(same.record, Record::Counters);

    let done = observe(&mut job, &view(Status::Success), &f.context(S(30), true));
    assert_eq!(names(&done), [format!("{JOB_TRANSITION}:SUCCESS")]);
    assert_eq!(done.next, Next::Finish);
    assert_eq!(done.durations.len(), 1);
    let learned = &done.durations[0];
    assert_eq!(learned.service, crate::job::Service::Evs);
    assert_eq!(learned.job_type, "createVolume");
    // First seen at work at 2 s, last at 4 s, final at 30 s: the end is
    // taken halfway between the last two sightings.
    assert_eq!(learned.duration_ms, 15_000);
    assert_eq!(learned.source, crate::policy::server_time::Source::Sighting);
    assert_eq!(job.record.polls, 3);
    assert_eq!(job.record.transitions, 2);
}

#[test]
fn unknown_words_are_transitions_and_not_final() {
    let f = Fixture::new("evs:v1");
    let mut job = f.job();
    let waiting = observe(
        &mut job,
        &view(Status::other("WAITING_EXECUTE")),
        &f.context(S(1), true),
    );
    assert_eq!(
        names(&waiting),
        [format!("{JOB_TRANSITION}:WAITING_EXECUTE")]
    );
    assert!(matches!(waiting.next, Next::Poll(_)));
}

#[test]
fn failed_sub_jobs_come_before_a_final_status_and_once() {
    let f = Fixture::new("j");
    let mut job = f.job();
    let mut answer = view(Status::Running);
    answer.sub_jobs = vec![SubJobView {
        key: "s1".into(),
        status: Status::Fail,
        ..SubJobView::default()
    }];
    let first = observe(&mut job, &answer, &f.context(S(1), true));
    assert_eq!(
        names(&first),
        [
            format!("{JOB_TRANSITION}:RUNNING"),
            JOB_SUBJOB_FAILED.into()
        ]
    );
    assert_eq!(first.announced.len(), 1);
    let again = observe(&mut job, &answer, &f.context(S(3), true));
    assert!(again.events.is_empty());
    answer.sub_jobs.push(SubJobView {
        key: "s2".into(),
        status: Status::Fail,
        ..SubJobView::default()
    });
    answer.status = Status::Fail;
    let last = observe(&mut job, &answer, &f.context(S(5), true));
    assert_eq!(
        names(&last),
        [
            JOB_SUBJOB_FAILED.to_string(),
            format!("{JOB_TRANSITION}:FAIL")
        ]
    );
}

#[test]
fn nothing_is_announced_while_the_store_fails() {
    let f = Fixture::new("j");
    let mut job = f.job();
    let held = observe(&mut job, &view(Status::Running), &f.context(S(1), false));
    assert!(held.events.is_empty());
    assert_eq!(held.record, Record::Nothing);
    assert_eq!(job.status, None);
    let later = observe(&mut job, &view(Status::Running), &f.context(S(3), true));
    assert_eq!(names(&later).len(), 1);
}

#[test]
fn a_timeout_is_announced_once() {
    let mut f = Fixture::new("j");
    f.cadence.job_timeout = S(60);
    let mut job = f.job();
    observe(&mut job, &view(Status::Running), &f.context(S(1), true));
    let late = observe(&mut job, &view(Status::Running), &f.context(S(70), true));
    assert_eq!(names(&late), [JOB_TIMEOUT]);
    assert_eq!(late.record, Record::Full);
    let later = observe(&mut job, &view(Status::Running), &f.context(S(90), true));
    assert!(later.events.is_empty());
}

#[test]
fn not_found_waits_for_the_grace_unless_the_job_was_seen() {
    let f = Fixture::new("rds:r1");
    let mut unseen = f.job();
    let early = not_found(&mut unseen, &f.context(S(10), true));
    assert!(early.events.is_empty());
    assert!(matches!(early.next, Next::Poll(_)));
    let late = not_found(&mut unseen, &f.context(S(61), true));
    assert_eq!(names(&late), [JOB_NOT_FOUND]);
    assert_eq!(late.next, Next::Finish);

    let mut seen = f.job();
    observe(&mut seen, &view(Status::Running), &f.context(S(1), true));
    let vanished = not_found(&mut seen, &f.context(S(5), true));
    assert_eq!(names(&vanished), [JOB_NOT_FOUND]);
    let crate::output::event::Kind::NotFound(found) = &vanished.events[0].kind else {
        panic!("not found")
    };
    assert_eq!(found.last_status, Some(Status::Running));
}

#[test]
fn retries_back_off_and_never_beat_the_cadence() {
    let f = Fixture::new("j");
    let mut job = f.job();
    observe(&mut job, &view(Status::Running), &f.context(S(1), true));
    let mut last = Duration::ZERO;
    for n in 1..6 {
        let delay = retry(&mut job, &f.context(S(2 * n), true), 0.5);
        assert!(delay >= Duration::from_secs(1), "{delay:?}");
        last = last.max(delay);
    }
    assert_eq!(job.failures, 5);
    assert!(last > S(2));
}
