//! Webhooks end to end: the real binary, started by the harness (a clean
//! environment, every stdout line collected, one deadline for every wait),
//! watches jobs of the simulator and delivers to a receiver in this test
//! that can be told to fail, hang, ask for a later attempt or accept.
//!
//! Each test awaits events, requests and outbox rows under the harness's
//! deadline and never sleeps for a result. Every run must print only JSON
//! objects: a bad stdout line fails the test. Deliveries are compared byte
//! for byte with the lines the daemon printed, in announcement order, each
//! exactly once; where a test needs to know what the daemon scheduled or
//! kept, it reads the outbox of the state database.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ecs_jobwatch::output::webhook::signature;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::harness::{self, DEADLINE, Daemon, Finished, Match, Setup, Sim, dump, sim};

/// The plain secret of most tests.
const SECRET: &str = "hook-secret";
/// A Standard Webhooks secret (`whsec_` and base64).
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The name a webhook gets without `name`: `webhook-{position}`.
const DEFAULT_SINK: &str = "webhook-1";

/// Two jobs that end quickly: one SUCCESS, one FAIL with a failed sub-job.
const JOBS: &str = r#"
[[job]]
id = "job-ok"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]

[[job]]
id = "job-bad"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "3s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "quota" } ]
[[job.sub_job]]
id = "sub-bad"
job_type = "createSingleServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "FAIL", fail_reason = "quota" } ]
"#;

const JOB_IDS: [&str; 2] = ["job-ok", "job-bad"];

/// A job that runs for the whole test: polled all along.
const LONG_JOB: &str = r#"
[[job]]
id = "job-long"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#;

/// Values that change, with a way to await a condition on them.
struct Shared<T> {
    value: Mutex<T>,
    changed: watch::Sender<u64>,
}

impl<T> Shared<T> {
    fn new(value: T) -> Arc<Shared<T>> {
        Arc::new(Shared {
            value: Mutex::new(value),
            changed: watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.value
            .lock()
            .expect("the receiver's record is not poisoned")
    }

    fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.lock());
        self.changed.send_modify(|n| *n += 1);
    }

    fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.lock())
    }

    /// Awaits `done` (checked at every change) for at most the harness's
    /// [`DEADLINE`]; fails the test with `what` after it.
    async fn wait(&self, what: &str, done: impl Fn(&T) -> bool)
    where
        T: std::fmt::Debug,
    {
        let mut changes = self.changed.subscribe();
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                changes.mark_unchanged();
                if self.read(&done) {
                    return;
                }
                let _ = changes.changed().await;
            }
        })
        .await;
        if waited.is_err() {
            let last = self.read(|value| format!("{value:#?}"));
            panic!("timed out awaiting {what}; last seen:\n{last}");
        }
    }
}

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// This status for the next `n` requests, then 200.
    FailFirst(u16, usize),
    /// Always this status.
    Always(u16),
    /// Never answers.
    Hang,
    /// This status with `Retry-After: {seconds}` for the next `n` requests,
    /// then 200.
    RetryAfter(u16, usize, u64),
}

/// One request the receiver saw, and its answer (`None`: never answered).
#[derive(Clone, Debug)]
struct Seen {
    /// When it arrived.
    at: Instant,
    /// When it arrived, in Unix milliseconds (the daemon's outbox clock).
    received_ms: i64,
    headers: HeaderMap,
    body: Bytes,
    answer: Option<u16>,
}

impl Seen {
    /// The body, which is a JSON line: text.
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a webhook body is UTF-8")
    }

    /// The body's `event_id`.
    fn event_id(&self) -> String {
        let body: Value = serde_json::from_str(self.text()).expect("a webhook body is JSON");
        body["event_id"]
            .as_str()
            .expect("a webhook body has an event_id")
            .to_string()
    }

    /// The value of header `name`, which must be there.
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} missing: {:?}", self.headers))
            .to_str()
            .unwrap_or_else(|_| panic!("header {name} is not text: {:?}", self.headers))
    }

    fn delivered(&self) -> bool {
        self.answer.is_some_and(|a| (200..300).contains(&a))
    }
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Shared<Vec<Seen>>>,
    url: String,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver binds a port");
        let addr = listener.local_addr().expect("a bound address");
        let receiver = Receiver {
            mode: Arc::new(Mutex::new(mode)),
            seen: Shared::new(Vec::new()),
            url: format!("http://{addr}/hook"),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(answer))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("the mode is not poisoned") = mode;
    }

    /// Every request so far.
    fn seen(&self) -> Vec<Seen> {
        self.seen.read(Clone::clone)
    }

    /// The bodies answered 2xx, in the order they arrived.
    fn delivered(&self) -> Vec<String> {
        self.seen.read(|seen| delivered(seen))
    }

    /// Awaits `count` deliveries (2xx answers).
    async fn await_delivered(&self, count: usize) {
        self.seen
            .wait(&format!("{count} deliveries"), |seen| {
                delivered(seen).len() >= count
            })
            .await;
    }

    /// Awaits `count` requests, answered or not.
    async fn await_requests(&self, count: usize) {
        self.seen
            .wait(&format!("{count} requests"), |seen| seen.len() >= count)
            .await;
    }
}

fn delivered(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.delivered())
        .map(|s| s.text().to_string())
        .collect()
}

async fn answer(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let received_ms = chrono::Utc::now().timestamp_millis();
    let (status, retry_after) = {
        let mut mode = receiver.mode.lock().expect("the mode is not poisoned");
        match *mode {
            Mode::FailFirst(status, n) if n > 0 => {
                *mode = Mode::FailFirst(status, n - 1);
                (Some(status), None)
            }
            Mode::RetryAfter(status, n, seconds) if n > 0 => {
                *mode = Mode::RetryAfter(status, n - 1, seconds);
                (Some(status), Some(seconds))
            }
            Mode::FailFirst(..) | Mode::RetryAfter(..) => (Some(200), None),
            Mode::Always(status) => (Some(status), None),
            Mode::Hang => (None, None),
        }
    };
    receiver.seen.update(|seen| {
        seen.push(Seen {
            at,
            received_ms,
            headers,
            body,
            answer: status,
        })
    });
    let Some(status) = status else {
        return std::future::pending().await;
    };
    let status = StatusCode::from_u16(status).expect("a valid test status");
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds.to_string())]).into_response(),
        None => status.into_response(),
    }
}

/// A configuration against `sim` watching both jobs, every job polled each
/// second, with one webhook to `receiver` signed with [`SECRET`].
fn setup(sim: &Sim, receiver: &Receiver, max_age: &str) -> Setup {
    setup_with_secrets(sim, receiver, max_age, &[SECRET], None)
}

/// Like [`setup`], the webhook signed with `secrets` (several: a rotation,
/// as `secret_files`) and named `name` (else it has the default name).
fn setup_with_secrets(
    sim: &Sim,
    receiver: &Receiver,
    max_age: &str,
    secrets: &[&str],
    name: Option<&str>,
) -> Setup {
    let setup = Setup::new(sim)
        .set("poll.max_interval", "1s")
        .watch(&JOB_IDS);
    let dir = setup
        .config_path()
        .parent()
        .expect("the configuration is in the temporary directory")
        .to_path_buf();
    let files: Vec<toml::Value> = secrets
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let file = dir.join(format!("secret-{index}"));
            std::fs::write(&file, format!("{text}\n")).expect("secret file written");
            toml::Value::from(file.to_str().expect("UTF-8 temp path"))
        })
        .collect();
    let mut sink = toml::Table::new();
    sink.insert("url".into(), receiver.url.clone().into());
    sink.insert("secret_files".into(), toml::Value::Array(files));
    sink.insert("max_age".into(), max_age.into());
    if let Some(name) = name {
        sink.insert("name".into(), name.into());
    }
    setup.set("notify.webhook", toml::Value::Array(vec![sink.into()]))
}

/// Awaits the last events of the two jobs: both final transitions and the
/// failed sub-job.
async fn await_jobs_done(daemon: &mut Daemon) {
    daemon
        .await_event(&Match::transition("job-ok", "SUCCESS"))
        .await;
    daemon
        .await_event(&Match::transition("job-bad", "FAIL"))
        .await;
    daemon
        .await_event(&Match::event("job.subjob_failed").with("job_id", "job-bad"))
        .await;
}

/// SIGTERM, a clean exit, and nothing on stdout but JSON objects.
async fn stop(daemon: Daemon) -> Finished {
    let run = daemon.stop_cleanly().await;
    assert!(
        run.bad_lines.is_empty(),
        "stdout lines that are not JSON objects: {:?}\nevents:\n{}",
        run.bad_lines,
        dump(&run.events)
    );
    run
}

/// An event a sink must receive: its `event_id` and its line as printed.
#[derive(Clone, Debug)]
struct Expected {
    id: String,
    line: String,
}

/// The events of a run a sink with the default filter receives, in
/// announcement order (the contract: final transitions into SUCCESS, FAIL
/// and PENDING_PAYMENT, failed sub-jobs, timeouts, jobs not found).
fn expected_deliveries(run: &Finished) -> Vec<Expected> {
    assert_eq!(run.events.len(), run.lines.len());
    run.events
        .iter()
        .zip(&run.lines)
        .filter(|(event, _)| match event["event"].as_str() {
            Some("job.transition") => ["SUCCESS", "FAIL", "PENDING_PAYMENT"]
                .contains(&event["status"].as_str().expect("a status")),
            Some("job.subjob_failed" | "job.timeout" | "job.not_found") => true,
            _ => false,
        })
        .map(|(event, line)| Expected {
            id: event["event_id"]
                .as_str()
                .expect("a job event has an event_id")
                .to_string(),
            line: line.clone(),
        })
        .collect()
}

/// The expected deliveries of a run of [`JOBS`]: both final transitions
/// and the failed sub-job.
fn expected_of_jobs(run: &Finished) -> Vec<Expected> {
    let expected = expected_deliveries(run);
    assert_eq!(expected.len(), 3, "{expected:#?}\n{}", dump(&run.events));
    expected
}

/// Every request is well formed and signed with `secret`; every expected
/// event was delivered (2xx) exactly once, in announcement order, its body
/// byte for byte the line the daemon printed.
fn check_deliveries(seen: &[Seen], expected: &[Expected], secret: &str) {
    for request in seen {
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("idempotency-key"), request.event_id());
        assert_eq!(
            request.header("x-jobwatch-signature"),
            signature(secret.as_bytes(), &request.body)
        );
        assert!(
            request.header("user-agent").starts_with("ecs-jobwatch/"),
            "{:?}",
            request.headers
        );
    }
    let delivered = delivered(seen);
    let lines: Vec<&str> = expected.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(delivered, lines);
}

/// One row of the outbox as the test reads it.
#[derive(Debug)]
struct OutboxRow {
    sink: String,
    event_id: String,
    attempts: i64,
    next_attempt_at: i64,
}

/// The outbox of the setup's state database, oldest row first.
fn outbox(setup: &Setup) -> Vec<OutboxRow> {
    let db = setup.state_dir().join("state.db");
    outbox_of(&db).unwrap_or_else(|error| panic!("reading the outbox of {db:?}: {error}"))
}

fn outbox_of(db: &Path) -> rusqlite::Result<Vec<OutboxRow>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut statement =
        conn.prepare("SELECT sink, event_id, attempts, next_attempt_at FROM outbox ORDER BY id")?;
    let rows = statement.query_map([], |row| {
        Ok(OutboxRow {
            sink: row.get(0)?,
            event_id: row.get(1)?,
            attempts: row.get(2)?,
            next_attempt_at: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// Awaits an outbox whose oldest row has been attempted, checking every
/// 20 ms (observation, not a wait for a fixed time; until the daemon has
/// made its database, reading fails); returns the row and the Unix
/// milliseconds right after it was read.
async fn await_attempted_head(setup: &Setup) -> (OutboxRow, i64) {
    let db = setup.state_dir().join("state.db");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows = outbox_of(&db);
        let read_ms = chrono::Utc::now().timestamp_millis();
        let last = format!("{rows:?}");
        if let Some(head) = rows
            .into_iter()
            .flatten()
            .next()
            .filter(|row| row.attempts >= 1)
        {
            return (head, read_ms);
        }
        assert!(
            Instant::now() < deadline,
            "timed out awaiting a failed attempt in the outbox; last read: {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_comes_back_gets_every_event_once_in_order() {
    let sim = sim(JOBS).await;
    let receiver = Receiver::start(Mode::FailFirst(503, 3)).await;
    let setup = setup(&sim, &receiver, "24h");
    let mut daemon = setup.start().await;
    await_jobs_done(&mut daemon).await;
    receiver.await_delivered(3).await;
    let run = stop(daemon).await;
    let expected = expected_of_jobs(&run);
    let seen = receiver.seen();
    check_deliveries(&seen, &expected, SECRET);
    // The receiver did refuse the first three.
    let refused: Vec<Option<u16>> = seen.iter().take(3).map(|s| s.answer).collect();
    assert_eq!(refused, [Some(503); 3]);
    assert_eq!(seen.iter().filter(|s| s.answer == Some(503)).count(), 3);
    assert!(outbox(&setup).is_empty(), "{:?}", outbox(&setup));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_gets_notify_dropped_after_max_age() {
    let sim = sim(JOBS).await;
    let receiver = Receiver::start(Mode::Always(500)).await;
    let setup = setup(&sim, &receiver, "3s");
    let mut daemon = setup.start().await;
    await_jobs_done(&mut daemon).await;
    // The three events of the two jobs, each given up once it is 3 s old.
    let ids: Vec<String> = daemon
        .events
        .iter()
        .filter(|event| {
            Match::transition("job-ok", "SUCCESS").matches(event)
                || Match::transition("job-bad", "FAIL").matches(event)
                || Match::event("job.subjob_failed").matches(event)
        })
        .map(|event| event["event_id"].as_str().expect("an event_id").to_string())
        .collect();
    for id in &ids {
        daemon
            .await_event(&Match::event("notify.dropped").with("event_id", id.as_str()))
            .await;
    }
    let run = stop(daemon).await;
    let expected = expected_of_jobs(&run);
    let expected_ids: Vec<&str> = expected.iter().map(|e| e.id.as_str()).collect();
    let dropped = Match::event("notify.dropped").all(&run.events);
    // One notify.dropped per event, in the order the events were queued.
    let dropped_ids: Vec<&str> = dropped
        .iter()
        .map(|line| line["event_id"].as_str().expect("an event_id"))
        .collect();
    assert_eq!(dropped_ids, expected_ids, "{}", dump(&run.events));
    for line in &dropped {
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["url"], receiver.url.as_str(), "{line}");
        assert_eq!(line["sink"], DEFAULT_SINK, "{line}");
        assert!(line["attempts"].is_u64(), "{line}");
        assert!(
            !line["error"].as_str().expect("an error").is_empty(),
            "{line}"
        );
    }
    // The first one was tried and refused.
    let first = dropped[0];
    assert!(
        first["attempts"].as_u64().expect("attempts") >= 1,
        "{first}"
    );
    assert_eq!(first["error"], "HTTP 500", "{first}");
    assert!(receiver.delivered().is_empty());
    assert!(outbox(&setup).is_empty(), "{:?}", outbox(&setup));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_polling_or_stopping() {
    let sim = sim(&format!("{JOBS}{LONG_JOB}")).await;
    let receiver = Receiver::start(Mode::Hang).await;
    let setup = setup(&sim, &receiver, "24h").watch(&["job-ok", "job-bad", "job-long"]);
    let mut daemon = setup.start().await;
    // The receiver holds a request, and the polls go on: several more of
    // the running job, and the others to their end.
    receiver.await_requests(1).await;
    let before = sim.requests("job-long");
    sim.await_stats("polls while the receiver holds a request", |stats| {
        stats.jobs.get("job-long").map_or(0, |job| job.requests) >= before + 3
    })
    .await;
    await_jobs_done(&mut daemon).await;
    // A stop does not wait for the receiver either (the harness bounds it).
    let run = stop(daemon).await;
    assert!(receiver.delivered().is_empty());
    assert!(receiver.seen().iter().all(|s| s.answer.is_none()));
    // Every event is still queued for the next start, the held one too.
    let expected = expected_of_jobs(&run);
    let queued: Vec<String> = outbox(&setup).into_iter().map(|row| row.event_id).collect();
    let expected_ids: Vec<String> = expected.into_iter().map(|e| e.id).collect();
    assert_eq!(queued, expected_ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_resume_after_a_restart() {
    let sim = sim(JOBS).await;
    let receiver = Receiver::start(Mode::Always(503)).await;
    let setup = setup(&sim, &receiver, "24h");
    let mut daemon = setup.start().await;
    await_jobs_done(&mut daemon).await;
    receiver.await_requests(1).await;
    let first = stop(daemon).await;
    let expected = expected_of_jobs(&first);
    assert!(receiver.delivered().is_empty());

    receiver.set(Mode::Always(200));
    let daemon = setup.start().await;
    receiver.await_delivered(expected.len()).await;
    let second = stop(daemon).await;
    // The finished jobs are not announced again: what arrives comes from
    // the outbox, with the first run's bodies.
    for event in ["job.transition", "job.subjob_failed"] {
        assert!(
            Match::event(event).all(&second.events).is_empty(),
            "{}",
            dump(&second.events)
        );
    }
    check_deliveries(&receiver.seen(), &expected, SECRET);
    assert!(outbox(&setup).is_empty(), "{:?}", outbox(&setup));
}

/// The Standard Webhooks headers of every request the receiver saw, and
/// their bodies, checked by the `standardwebhooks` package from PyPI with
/// every secret in `secrets` (an implementation that is not ours); returns
/// its report, one line per request and secret.
async fn verify_with_reference_library(seen: &[Seen], secrets: &[&str]) -> String {
    let requests: Vec<Value> = seen
        .iter()
        .map(|request| {
            serde_json::json!({
                "headers": {
                    "webhook-id": request.header("webhook-id"),
                    "webhook-timestamp": request.header("webhook-timestamp"),
                    "webhook-signature": request.header("webhook-signature"),
                },
                "body": request.text(),
            })
        })
        .collect();
    let input = serde_json::json!({"secrets": secrets, "requests": requests});
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/tools/standard_webhooks_verify.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let output = tokio::time::timeout(DEADLINE, async move {
        stdin
            .write_all(input.to_string().as_bytes())
            .await
            .expect("the script reads its input");
        drop(stdin);
        child.wait_with_output().await
    })
    .await
    .expect("the reference library answers in time")
    .expect("the script runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the reference library refused a signature:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(text.lines().count(), seen.len() * secrets.len(), "{text}");
    text
}

/// Whether the `standardwebhooks` package is there (else the test skips,
/// visibly, or fails under CI).
fn reference_library() -> bool {
    harness::require_command(
        "python3",
        &["-c", "import standardwebhooks"],
        "the standardwebhooks Python package (pip install standardwebhooks; .ci/run installs it)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_signatures_pass_the_reference_library() {
    if !reference_library() {
        return;
    }
    let sim = sim(JOBS).await;
    // One refusal, so that one event is sent twice, each attempt with its
    // own timestamp and signature.
    let receiver = Receiver::start(Mode::FailFirst(503, 1)).await;
    let setup = setup_with_secrets(&sim, &receiver, "24h", &[WHSEC], None);
    let mut daemon = setup.start().await;
    await_jobs_done(&mut daemon).await;
    receiver.await_delivered(3).await;
    let run = stop(daemon).await;
    let expected = expected_of_jobs(&run);
    let seen = receiver.seen();
    // The old header stays, over the secret's text.
    check_deliveries(&seen, &expected, WHSEC);
    for request in &seen {
        assert_eq!(request.header("webhook-id"), request.event_id());
        assert_eq!(
            request.header("idempotency-key"),
            request.header("webhook-id")
        );
        let timestamp: i64 = request
            .header("webhook-timestamp")
            .parse()
            .expect("a timestamp in seconds");
        assert!(timestamp > 1_700_000_000, "{timestamp}");
        let signatures = request.header("webhook-signature");
        assert_eq!(signatures.split(' ').count(), 1, "{signatures}");
        assert!(signatures.starts_with("v1,"), "{signatures}");
    }
    // The retried event was signed anew (same id, its own attempt).
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].answer, Some(503));
    assert_eq!(seen[0].body, seen[1].body);
    let report = verify_with_reference_library(&seen, &[WHSEC]).await;
    assert_eq!(report.matches("verified").count(), seen.len(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_sets_the_next_attempt() {
    let sim = sim(JOBS).await;
    // Every attempt is refused with `Retry-After: 3` until the test has
    // seen what the daemon scheduled.
    let receiver = Receiver::start(Mode::RetryAfter(503, usize::MAX, 3)).await;
    let setup = setup(&sim, &receiver, "24h");
    let mut daemon = setup.start().await;
    let (head, read_ms) = await_attempted_head(&setup).await;
    // The contract's promise: the next attempt is due when the receiver
    // asked (3 s after its answer), not before, and without a backoff of
    // the daemon's own on top. The answer came after the request arrived
    // and before the row was read, so the schedule lies 3 s after a moment
    // between the two (a causal bound, not a timing one).
    let attempts = usize::try_from(head.attempts).expect("a small count");
    let answered = receiver.seen()[attempts - 1].clone();
    assert_eq!(answered.event_id(), head.event_id);
    assert_eq!(head.sink, DEFAULT_SINK);
    assert!(
        head.next_attempt_at >= answered.received_ms + 3_000
            && head.next_attempt_at <= read_ms + 3_000,
        "next attempt at {} for an answer at or after {} read at {read_ms}",
        head.next_attempt_at,
        answered.received_ms
    );
    receiver.await_requests(attempts + 1).await;
    receiver.set(Mode::Always(200));
    await_jobs_done(&mut daemon).await;
    receiver.await_delivered(3).await;
    let run = stop(daemon).await;
    let expected = expected_of_jobs(&run);
    let seen = receiver.seen();
    check_deliveries(&seen, &expected, SECRET);
    // Every refusal asked for 3 s, and the next request was the same event,
    // tried again no sooner.
    let refused = seen.iter().filter(|s| s.answer == Some(503)).count();
    assert!(refused >= 2, "{seen:#?}");
    for pair in seen.windows(2) {
        if pair[0].answer == Some(503) {
            assert_eq!(pair[0].body, pair[1].body, "the same event, tried again");
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= Duration::from_secs(3),
                "an attempt came {gap:?} after a refusal that asked for 3 s"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_verify_with_the_reference_library() {
    if !reference_library() {
        return;
    }
    let sim = sim(JOBS).await;
    let receiver = Receiver::start(Mode::Always(200)).await;
    // The new key first (it signs X-Jobwatch-Signature), the old one
    // still accepted by receivers that have not switched yet.
    let old = "old-plain-secret";
    let setup = setup_with_secrets(&sim, &receiver, "24h", &[WHSEC, old], Some("ops-hook"));
    let mut daemon = setup.start().await;
    await_jobs_done(&mut daemon).await;
    receiver.await_delivered(3).await;
    let run = stop(daemon).await;
    let expected = expected_of_jobs(&run);
    let seen = receiver.seen();
    check_deliveries(&seen, &expected, WHSEC);
    for request in &seen {
        let signatures = request.header("webhook-signature");
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        assert!(
            signatures.split(' ').all(|s| s.starts_with("v1,")),
            "{signatures}"
        );
    }
    // A receiver that knows only one of the two accepts every request.
    let report = verify_with_reference_library(&seen, &[WHSEC, old]).await;
    assert_eq!(
        report.matches("verified").count(),
        seen.len() * 2,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_removed_from_the_configuration_gives_up_its_events() {
    let sim = sim(JOBS).await;
    let receiver = Receiver::start(Mode::Always(503)).await;
    let setup = setup(&sim, &receiver, "24h");
    let mut daemon = setup.start().await;
    await_jobs_done(&mut daemon).await;
    receiver.await_requests(1).await;
    let first = stop(daemon).await;
    let expected = expected_of_jobs(&first);
    let tried = receiver.seen().len();

    // The sink leaves the configuration: its queued events are given up at
    // the next start, one notify.dropped each, rather than kept for ever.
    let setup = setup.unset("notify.webhook");
    let mut daemon = setup.start().await;
    for event in &expected {
        daemon
            .await_event(&Match::event("notify.dropped").with("event_id", event.id.as_str()))
            .await;
    }
    let second = stop(daemon).await;
    let dropped = Match::event("notify.dropped").all(&second.events);
    let dropped_ids: Vec<&str> = dropped
        .iter()
        .map(|line| line["event_id"].as_str().expect("an event_id"))
        .collect();
    let expected_ids: Vec<&str> = expected.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(dropped_ids, expected_ids, "{}", dump(&second.events));
    for line in &dropped {
        assert_eq!(line["sink"], DEFAULT_SINK, "{line}");
        // The configuration no longer says where the sink delivered; its
        // rows do.
        assert_eq!(line["url"], receiver.url.as_str(), "{line}");
        assert_eq!(line["level"], "ERROR", "{line}");
    }
    // The oldest was tried and refused; the others waited behind it.
    let first_dropped = dropped[0];
    assert_eq!(
        first_dropped["error"], "the sink is no longer configured; last error: HTTP 503",
        "{first_dropped}"
    );
    assert!(
        first_dropped["attempts"].as_u64().expect("attempts") >= 1,
        "{first_dropped}"
    );
    for line in &dropped[1..] {
        assert_eq!(line["error"], "the sink is no longer configured", "{line}");
        assert_eq!(line["attempts"], 0, "{line}");
    }
    // Nothing was delivered, nothing more was tried, nothing is kept.
    assert!(receiver.delivered().is_empty());
    assert_eq!(receiver.seen().len(), tried);
    assert!(outbox(&setup).is_empty(), "{:?}", outbox(&setup));
}
