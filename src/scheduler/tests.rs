//! The scheduler under tokio's paused clock against a scripted fake
//! poller: what it announces, how often it calls, and when.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use serde_json::Value;

use super::*;
use crate::job::{JobView, Status, SubJobView};
use crate::output::render;
use crate::services::PollFuture;
use crate::store::Store;

type Script = dyn Fn(&str, Duration) -> Result<JobView, ApiError> + Send + Sync;

/// A poller that answers from a script of virtual time and logs calls.
struct Fake {
    origin: Instant,
    script: Box<Script>,
    calls: Mutex<Vec<(String, Duration)>>,
    generation: AtomicU64,
}

impl Poller for Arc<Fake> {
    fn poll(&self, key: &JobKey) -> PollFuture {
        let at = Instant::now().saturating_duration_since(self.origin);
        let name = key.to_string();
        self.calls.lock().unwrap().push((name.clone(), at));
        let answer = (self.script)(&name, at).map(|view| Polled {
            view,
            server_now_ms: None,
        });
        Box::pin(async move { answer })
    }

    fn credentials_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

fn job(status: &str) -> Result<JobView, ApiError> {
    Ok(JobView {
        status: Status::parse(status),
        service_status: status.to_string(),
        job_type: Some("createServer".into()),
        ..JobView::default()
    })
}

fn error(kind: ErrorKind) -> Result<JobView, ApiError> {
    Err(ApiError::transport(kind, "scripted"))
}

/// A field of an event, as its JSON line says it.
fn field(event: &Event, name: &str) -> Value {
    let line: Value = serde_json::from_str(&render::json(event, "T")).unwrap();
    line[name].clone()
}

fn key(text: &str) -> JobKey {
    JobKey::parse(text).unwrap()
}

struct Run {
    fake: Arc<Fake>,
    events: Arc<Mutex<Vec<Event>>>,
    handle: Handle,
    _dir: tempfile::TempDir,
}

fn settings() -> Settings {
    Settings {
        cadence: Cadence {
            not_found_grace: Duration::from_secs(60),
            ..Cadence::default()
        },
        requests_per_second: 100.0,
        burst: 1,
        max_in_flight: 4,
        projects: HashMap::new(),
        adaptive: true,
        sinks: Vec::new(),
    }
}

/// Starts a scheduler over a fake poller: `ids` are watched, `records`
/// come from an earlier run (and are watched too), `durations` seed the
/// adaptive history.
fn launch(
    ids: &[&str],
    settings: Settings,
    records: Vec<JobRecord>,
    durations: Vec<DurationRow>,
    script: impl Fn(&str, Duration) -> Result<JobView, ApiError> + Send + Sync + 'static,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::start(Store::open(dir.path()).unwrap(), Box::new(|_| {}));
    let fake = Arc::new(Fake {
        origin: Instant::now(),
        script: Box::new(script),
        calls: Mutex::new(Vec::new()),
        generation: AtomicU64::new(0),
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let list: WatchList = ids
        .iter()
        .map(|id| key(id))
        .chain(records.iter().map(|r| r.key.clone()))
        .map(|key| (key, Labels::new()))
        .collect();
    let handle = spawn(Start {
        settings,
        poller: Arc::new(fake.clone()),
        writer,
        records,
        announced: Vec::new(),
        watch_list: list,
        durations,
        observer: Some(Arc::new(move |event: &Event| {
            sink.lock().unwrap().push(event.clone())
        })),
    });
    Run {
        fake,
        events,
        handle,
        _dir: dir,
    }
}

fn start(
    ids: &[&str],
    settings: Settings,
    script: impl Fn(&str, Duration) -> Result<JobView, ApiError> + Send + Sync + 'static,
) -> Run {
    launch(ids, settings, Vec::new(), Vec::new(), script)
}

impl Run {
    fn names(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e.status() {
                Some(status) => format!("{}:{status}", e.name()),
                None => e.name().to_string(),
            })
            .collect()
    }

    fn calls(&self) -> Vec<(String, Duration)> {
        self.fake.calls.lock().unwrap().clone()
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(start_paused = true)]
async fn transitions_are_announced_and_final_jobs_stop() {
    let run = start(&["a"], settings(), |_, at| {
        job(if at < S(10) { "RUNNING" } else { "SUCCESS" })
    });
    tokio::time::sleep(S(120)).await;
    assert_eq!(
        run.names(),
        ["job.transition:RUNNING", "job.transition:SUCCESS"]
    );
    let calls = run.calls();
    assert!(calls.last().unwrap().1 >= S(10));
    assert!(calls.last().unwrap().1 < S(40), "detected late: {calls:?}");
    let count = calls.len();
    tokio::time::sleep(S(600)).await;
    assert_eq!(
        run.calls().len(),
        count,
        "a finished job is not polled again"
    );
    let events = run.events.lock().unwrap().clone();
    assert_eq!(field(&events[1], "previous_status"), "RUNNING");
    assert_eq!(field(&events[0], "previous_status"), Value::Null);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn never_seen_job_is_not_found_after_the_grace_only() {
    let run = start(&["late", "never"], settings(), |id, at| {
        if id == "late" && at >= S(30) {
            job("SUCCESS")
        } else {
            error(ErrorKind::NotFound)
        }
    });
    tokio::time::sleep(S(59)).await;
    assert_eq!(run.names(), ["job.transition:SUCCESS"]);
    tokio::time::sleep(S(120)).await;
    assert_eq!(run.names(), ["job.transition:SUCCESS", "job.not_found"]);
    let events = run.events.lock().unwrap().clone();
    assert_eq!(field(&events[1], "job_id"), "never");
    assert_eq!(field(&events[1], "last_status"), Value::Null);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn vanished_job_is_not_found_at_once_with_last_status() {
    let run = start(&["a"], settings(), |_, at| {
        if at < S(5) {
            job("RUNNING")
        } else {
            error(ErrorKind::NotFound)
        }
    });
    tokio::time::sleep(S(30)).await;
    assert_eq!(run.names(), ["job.transition:RUNNING", "job.not_found"]);
    assert_eq!(
        field(&run.events.lock().unwrap()[1], "last_status"),
        "RUNNING"
    );
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wrong_credentials_make_one_call_per_pause() {
    let ids: Vec<String> = (0..20).map(|i| format!("j{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let run = start(&refs, settings(), |_, _| error(ErrorKind::Auth));
    tokio::time::sleep(S(299)).await;
    assert_eq!(run.calls().len(), 1);
    assert_eq!(run.names(), ["api.error"]);
    tokio::time::sleep(S(305)).await;
    assert_eq!(run.calls().len(), 3, "one probe per five minutes");
    // New credentials end the pause at once.
    run.fake.generation.store(1, Ordering::SeqCst);
    tokio::time::sleep(S(2)).await;
    assert_eq!(run.calls().len(), 4);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn throttling_pauses_every_job() {
    let ids: Vec<String> = (0..10).map(|i| format!("j{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let run = start(&refs, settings(), |_, at| {
        if at < S(1) {
            Err(ApiError {
                kind: ErrorKind::Throttled {
                    retry_after: Some(S(5)),
                },
                ..ApiError::transport(ErrorKind::Server, "slow down")
            })
        } else {
            job("RUNNING")
        }
    });
    tokio::time::sleep(S(30)).await;
    let calls = run.calls();
    let first_throttled = calls[0].1;
    let during: Vec<_> = calls
        .iter()
        .filter(|(_, at)| {
            *at > first_throttled + Duration::from_millis(100) && *at < first_throttled + S(5)
        })
        .collect();
    assert!(during.is_empty(), "calls during the pause: {during:?}");
    assert_eq!(run.names().iter().filter(|n| *n == "api.error").count(), 1);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_never_exceeded_and_nobody_starves() {
    let ids: Vec<String> = (0..200).map(|i| format!("j{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let settings = Settings {
        requests_per_second: 5.0,
        burst: 1,
        ..settings()
    };
    let run = start(&refs, settings, |_, _| job("RUNNING"));
    tokio::time::sleep(S(120)).await;
    let calls = run.calls();
    let times: Vec<Duration> = calls.iter().map(|(_, at)| *at).collect();
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|t| **t < *start + S(1))
            .count();
        assert!(
            in_window <= 5 + 1,
            "{in_window} calls in the second after {start:?}"
        );
    }
    let polled: HashSet<&str> = calls.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(polled.len(), 200, "every job got polled");
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failed_sub_jobs_and_timeouts_are_announced_once() {
    let cadence = Cadence {
        job_timeout: S(60),
        max_interval: S(10),
        ..Cadence::default()
    };
    let run = start(
        &["a"],
        Settings {
            cadence,
            ..settings()
        },
        |_, _| {
            let mut view = job("RUNNING")?;
            view.sub_jobs = vec![
                SubJobView {
                    key: "s1".into(),
                    job_id: Some("s1".into()),
                    status: Status::Fail,
                    fail_reason: Some("no EIP".into()),
                    ..SubJobView::default()
                },
                SubJobView {
                    key: "s2".into(),
                    job_id: Some("s2".into()),
                    status: Status::Running,
                    ..SubJobView::default()
                },
            ];
            Ok(view)
        },
    );
    tokio::time::sleep(S(300)).await;
    assert_eq!(
        run.names(),
        ["job.transition:RUNNING", "job.subjob_failed", "job.timeout"]
    );
    let events = run.events.lock().unwrap().clone();
    assert_eq!(field(&events[1], "fail_reason"), "no EIP");
    assert!(field(&events[2], "elapsed_s").as_u64().unwrap() >= 60);
    // After the timeout, polling goes on at max_interval.
    let calls = run.calls();
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(gaps.iter().rev().take(5).all(|g| *g <= S(10)), "{gaps:?}");
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_and_recover() {
    let run = start(&["a"], settings(), |_, at| {
        if at < S(20) {
            error(ErrorKind::Server)
        } else {
            job("SUCCESS")
        }
    });
    tokio::time::sleep(S(600)).await;
    // The last transition is SUCCESS; a counted api.error line for the
    // errors of the last period may still follow it.
    let transitions: Vec<String> = run
        .names()
        .into_iter()
        .filter(|n| n.starts_with("job.transition"))
        .collect();
    assert_eq!(
        transitions.last().map(String::as_str),
        Some("job.transition:SUCCESS")
    );
    let errors = run.names().iter().filter(|n| *n == "api.error").count();
    let failed_calls = run.calls().iter().filter(|(_, at)| *at < S(20)).count();
    assert!(failed_calls <= 8, "{failed_calls} calls in 20 s of errors");
    assert!(errors <= 3, "{errors} api.error lines in 20 s");
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn leaving_the_watch_list_stops_polling_only_that_job() {
    let run = start(&["a", "b"], settings(), |_, _| job("RUNNING"));
    tokio::time::sleep(S(10)).await;
    let list: WatchList = [(key("b"), Labels::new())].into_iter().collect();
    run.handle.send(Command::WatchList(list));
    tokio::time::sleep(S(1)).await;
    let before = run.calls().iter().filter(|(id, _)| id == "a").count();
    tokio::time::sleep(S(120)).await;
    assert_eq!(
        run.calls().iter().filter(|(id, _)| id == "a").count(),
        before
    );
    assert!(run.calls().iter().filter(|(id, _)| id == "b").count() > before);
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wall_clock_jumps_between_runs_cause_no_storm_and_no_stall() {
    // Records written while the wall clock was a year ahead (it has
    // since jumped back) and a year behind (it has jumped forward).
    let year = 365 * 24 * 3600 * 1000;
    let record = |id: &str, at: i64| JobRecord {
        key: key(id),
        labels: Labels::new(),
        status: Some("RUNNING".into()),
        job_type: Some("createServer".into()),
        tracked_since: at,
        first_seen: Some(at),
        last_change: Some(at),
        last_poll: Some(at),
        next_poll: Some(at),
        polls: 3,
        transitions: 1,
        finished: false,
        finished_at: None,
        timeout_announced: false,
    };
    let now = now_ms();
    let run = launch(
        &[],
        settings(),
        vec![record("ahead", now + year), record("behind", now - year)],
        Vec::new(),
        |_, _| job("RUNNING"),
    );
    tokio::time::sleep(S(2)).await;
    let calls = run.calls();
    for id in ["ahead", "behind"] {
        let count = calls.iter().filter(|(job, _)| job == id).count();
        assert!(
            (1..=2).contains(&count),
            "{id} polled within the initial interval: {calls:?}"
        );
    }
    tokio::time::sleep(S(58)).await;
    let per_job = |id: &str| run.calls().iter().filter(|(job, _)| job == id).count();
    // A minute of the plain cadence is about seven polls whatever the
    // wall clock says; the job past its deadline goes on at max_interval.
    assert!(
        (4..=10).contains(&per_job("ahead")),
        "ahead: {} polls",
        per_job("ahead")
    );
    assert!(
        (2..=3).contains(&per_job("behind")),
        "behind: {} polls",
        per_job("behind")
    );
    // The job recorded a year ago is past its deadline; the other is not.
    let names = run.names();
    assert_eq!(names, ["job.timeout"], "{names:?}");
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn learned_durations_place_polls_near_the_likely_end() {
    // Fifty earlier createServer jobs took 55 to 65 s.
    let durations: Vec<DurationRow> = (0..50)
        .map(|n| DurationRow {
            service: crate::job::Service::Ecs,
            job_type: "createServer".to_string(),
            phase: crate::policy::adaptive::Phase::Whole,
            source: crate::policy::server_time::Source::Sighting,
            duration_ms: 55_000 + n * 200,
        })
        .collect();
    let script = |_: &str, at: Duration| job(if at < S(60) { "RUNNING" } else { "SUCCESS" });
    let adaptive = launch(&["a"], settings(), Vec::new(), durations.clone(), script);
    let plain = launch(
        &["a"],
        Settings {
            adaptive: false,
            ..settings()
        },
        Vec::new(),
        durations,
        script,
    );
    tokio::time::sleep(S(300)).await;
    let early = |run: &Run| run.calls().iter().filter(|(_, at)| *at < S(45)).count();
    let total = |run: &Run| run.calls().len();
    let detected = |run: &Run| run.calls().last().map(|(_, at)| *at).unwrap_or_default();
    // Sparse while completion is unlikely, dense around it: fewer calls
    // in all, and the end seen within a few seconds.
    assert!(
        early(&adaptive) < early(&plain),
        "{:?} vs {:?}",
        adaptive.calls(),
        plain.calls()
    );
    assert!(
        total(&adaptive) <= total(&plain),
        "{:?} vs {:?}",
        adaptive.calls(),
        plain.calls()
    );
    assert!(detected(&adaptive) < S(60) + S(5), "{:?}", adaptive.calls());
    for run in [adaptive, plain] {
        assert_eq!(
            run.names().last().map(String::as_str),
            Some("job.transition:SUCCESS")
        );
        run.handle.shutdown().await;
    }
}

fn closed_before_answer() -> Result<JobView, ApiError> {
    Err(ApiError {
        closed_before_answer: true,
        ..ApiError::transport(
            ErrorKind::Connect,
            "connection closed before message completed",
        )
    })
}

#[tokio::test(start_paused = true)]
async fn a_connection_closed_before_the_answer_is_resent_at_once_without_an_error() {
    // The first call of each job meets a connection the server closed.
    let called = std::sync::Mutex::new(std::collections::HashSet::new());
    let run = start(&["a", "b"], settings(), move |id, _| {
        if called.lock().unwrap().insert(id.to_string()) {
            closed_before_answer()
        } else {
            job("RUNNING")
        }
    });
    tokio::time::sleep(S(5)).await;
    let calls = run.calls();
    for id in ["a", "b"] {
        let at: Vec<Duration> = calls
            .iter()
            .filter(|(job, _)| job == id)
            .map(|(_, at)| *at)
            .collect();
        // Again at once (the next dispatch turn), not after a backoff.
        assert!(at.len() >= 2, "{calls:?}");
        assert!(
            at[1] - at[0] < Duration::from_millis(100),
            "{id}: {calls:?}"
        );
    }
    assert!(!run.names().contains(&"api.error".to_string()));
    run.handle.shutdown().await;

    // Twice in a row is an error like any other.
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let run = start(&["a"], settings(), move |_, _| {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            closed_before_answer()
        } else {
            job("RUNNING")
        }
    });
    tokio::time::sleep(S(30)).await;
    assert_eq!(
        run.names().iter().filter(|n| *n == "api.error").count(),
        1,
        "{:?}",
        run.names()
    );
    run.handle.shutdown().await;
}

/// Takes `count` permits one after the other, each reported answered,
/// recording when each was granted (from `origin`).
fn take_permits(
    permits: crate::policy::permit::Permits,
    count: usize,
    origin: Instant,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut granted = Vec::with_capacity(count);
        for _ in 0..count {
            permits.acquire().await.unwrap();
            granted.push(Instant::now().saturating_duration_since(origin));
            permits.report(crate::policy::permit::CallOutcome::Answered);
        }
        granted
    })
}

#[tokio::test(start_paused = true)]
async fn permits_share_the_budget_with_the_polls() {
    let ids: Vec<String> = (0..50).map(|i| format!("j{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let settings = Settings {
        requests_per_second: 5.0,
        burst: 1,
        ..settings()
    };
    let run = start(&refs, settings, |_, _| job("RUNNING"));
    let granted = take_permits(run.handle.permits(), 30, run.fake.origin);
    tokio::time::sleep(S(60)).await;
    let granted = granted.await.unwrap();
    assert_eq!(granted.len(), 30, "every permit was granted");
    let mut times: Vec<Duration> = run.calls().iter().map(|(_, at)| *at).collect();
    times.extend(&granted);
    times.sort();
    for (i, start) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|t| **t < *start + S(1))
            .count();
        assert!(
            in_window <= 5 + 1,
            "{in_window} calls and permits in the second after {start:?}"
        );
    }
    // The polls went on meanwhile.
    assert!(run.calls().len() > 100, "{}", run.calls().len());
    run.handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_throttled_or_refused_permit_holds_up_the_polls() {
    use crate::policy::permit::CallOutcome;
    for (outcome, quiet) in [
        (
            CallOutcome::Throttled {
                retry_after: Some(S(5)),
            },
            S(5),
        ),
        // The authentication gate's pause.
        (
            CallOutcome::Unauthenticated,
            crate::policy::auth_gate::AUTH_PAUSE,
        ),
    ] {
        let run = start(&["a", "b"], settings(), |_, _| job("RUNNING"));
        tokio::time::sleep(S(10)).await;
        let permits = run.handle.permits();
        permits.acquire().await.unwrap();
        let reported = Instant::now().saturating_duration_since(run.fake.origin);
        permits.report(outcome.clone());
        tokio::time::sleep(quiet + S(30)).await;
        let during: Vec<_> = run
            .calls()
            .into_iter()
            .filter(|(_, at)| *at > reported + Duration::from_millis(100) && *at < reported + quiet)
            .collect();
        assert!(
            during.is_empty(),
            "{outcome:?}: polls during the pause: {during:?}"
        );
        assert!(
            run.calls().iter().any(|(_, at)| *at > reported + quiet),
            "{outcome:?}: polls resume"
        );
        run.handle.shutdown().await;
    }
}
