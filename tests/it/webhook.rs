//! Webhooks end to end: the real binary against the simulator, delivering
//! to a receiver in this test that can be told to fail, hang or accept.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ecs_jobwatch::output::webhook::signature;
use ecs_jobwatch::sim::Scenario;
use ecs_jobwatch::sim::{self, SimHandle};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::harness;

const AK: &str = "WEBHOOKTESTAK000001";
const SK: &str = "webhook-test-secret-key-00000000000001";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "hook-secret";
/// Generous: a shared 2-core machine.
const PATIENCE: Duration = Duration::from_secs(90);

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

    fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.value.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
    }

    fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.value.lock().unwrap())
    }

    /// Waits until `done` holds, or panics with `what` after [`PATIENCE`].
    async fn wait(&self, what: &str, done: impl Fn(&T) -> bool) {
        let mut changes = self.changed.subscribe();
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                changes.mark_unchanged();
                if self.read(&done) {
                    return;
                }
                let _ = changes.changed().await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
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
    headers: HeaderMap,
    body: String,
    answer: Option<u16>,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Shared<Vec<Seen>>>,
    url: String,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver {
            mode: Arc::new(Mutex::new(mode)),
            seen: Shared::new(Vec::new()),
            url,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(answer))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The bodies answered 2xx, in the order they arrived.
    fn delivered(&self) -> Vec<String> {
        self.seen.read(|seen| delivered(seen))
    }
}

fn delivered(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter(|s| s.answer.is_some_and(|a| (200..300).contains(&a)))
        .map(|s| s.body.clone())
        .collect()
}

async fn answer(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let (status, retry_after) = {
        let mut mode = receiver.mode.lock().unwrap();
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
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            answer: status,
        })
    });
    let Some(status) = status else {
        return std::future::pending().await;
    };
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds.to_string())]).into_response(),
        None => status.into_response(),
    }
}

/// Two jobs that end quickly: one SUCCESS, one FAIL with a failed sub-job.
async fn simulator() -> SimHandle {
    let scenario = Scenario::from_toml_str(&format!(
        r#"
project_id = "{PROJECT}"
[[credential]]
access_key = "{AK}"
secret_key = "{SK}"

[[job]]
id = "job-ok"
job_type = "createServer"
timeline = [ {{ at = "0s", status = "RUNNING" }}, {{ at = "2s", status = "SUCCESS" }} ]

[[job]]
id = "job-bad"
job_type = "createServer"
timeline = [ {{ at = "0s", status = "RUNNING" }}, {{ at = "3s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "quota" }} ]
[[job.sub_job]]
id = "sub-bad"
job_type = "createSingleServer"
timeline = [ {{ at = "0s", status = "RUNNING" }}, {{ at = "2s", status = "FAIL", fail_reason = "quota" }} ]
"#
    ))
    .unwrap();
    sim::spawn(scenario).await.unwrap()
}

const JOBS: [&str; 2] = ["job-ok", "job-bad"];

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(sim: &SimHandle, receiver: &Receiver, max_age: &str) -> Setup {
    setup_with_secrets(sim, receiver, max_age, &[SECRET], "")
}

/// A configuration whose one webhook has `secrets` (several: a rotation,
/// as `secret_files`) and the extra keys `extra`.
fn setup_with_secrets(
    sim: &SimHandle,
    receiver: &Receiver,
    max_age: &str,
    secrets: &[&str],
    extra: &str,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let files: Vec<String> = secrets
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let file = dir.path().join(format!("secret-{index}"));
            std::fs::write(&file, format!("{text}\n")).unwrap();
            file.to_str().unwrap().to_string()
        })
        .collect();
    let config = dir.path().join("ecs-jobwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[cloud]
endpoint = "{endpoint}"
project_id = "{PROJECT}"
[credentials]
source = "env"
[poll]
initial_interval = "1s"
max_interval = "1s"
[watch]
jobs = ["job-ok", "job-bad"]
[state]
dir = {state:?}
[log]
format = "json"
[[notify.webhook]]
url = "{url}"
secret_files = {files:?}
max_age = "{max_age}"
{extra}
"#,
            endpoint = sim.base_url(),
            url = receiver.url,
        ),
    )
    .unwrap();
    Setup { dir, config }
}

/// The daemon, with its JSON lines collected as they come.
struct Daemon {
    child: Child,
    lines: Arc<Shared<Vec<Value>>>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-jobwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env("HUAWEICLOUD_SDK_AK", AK)
            .env("HUAWEICLOUD_SDK_SK", SK)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Shared::new(Vec::new());
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                sink.update(|lines| lines.push(value));
            }
        });
        Daemon { child, lines }
    }

    fn events(&self, name: &str) -> Vec<Value> {
        self.lines.read(|lines| {
            lines
                .iter()
                .filter(|l| l["event"] == name)
                .cloned()
                .collect()
        })
    }

    /// Waits for the final transition of every job.
    async fn wait_for_final_transitions(&self) {
        self.lines
            .wait("the final transition of every job", |lines| {
                JOBS.iter().all(|job| {
                    lines.iter().any(|l| {
                        l["event"] == "job.transition"
                            && l["job_id"] == *job
                            && (l["status"] == "SUCCESS" || l["status"] == "FAIL")
                    })
                })
            })
            .await;
    }

    /// The log lines a default-filtered sink must receive, in order.
    fn expected_deliveries(&self) -> Vec<Value> {
        self.lines.read(|lines| {
            lines
                .iter()
                .filter(|l| match l["event"].as_str() {
                    Some("job.transition") => ["SUCCESS", "FAIL", "PENDING_PAYMENT"]
                        .contains(&l["status"].as_str().unwrap()),
                    Some("job.subjob_failed" | "job.timeout" | "job.not_found") => true,
                    _ => false,
                })
                .cloned()
                .collect()
        })
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    async fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        tokio::task::spawn_blocking(move || self.child.wait().unwrap().code())
            .await
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every request is well formed and signed; every expected event was
/// delivered (2xx) exactly once, in announcement order, with the log
/// line's exact JSON as body.
fn check_deliveries(receiver: &Receiver, expected: &[Value]) {
    let seen = receiver.seen.read(Clone::clone);
    for request in &seen {
        let header = |name: &str| request.headers[name].to_str().unwrap().to_string();
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(
            header("idempotency-key"),
            body["event_id"].as_str().unwrap()
        );
        assert_eq!(
            header("x-jobwatch-signature"),
            signature(SECRET.as_bytes(), request.body.as_bytes())
        );
        assert!(header("user-agent").starts_with("ecs-jobwatch/"));
    }
    let delivered: Vec<Value> = receiver
        .delivered()
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(delivered, expected);
    // Byte for byte, the body is the log line's JSON.
    for (body, line) in receiver.delivered().iter().zip(expected) {
        assert_eq!(*body, line.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_comes_back_gets_every_event_once_in_order() {
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::FailFirst(503, 3)).await;
    let setup = setup(&sim, &receiver, "24h");
    let daemon = Daemon::start(&setup.config);
    daemon.wait_for_final_transitions().await;
    let expected = daemon.expected_deliveries();
    // Both final transitions and the failed sub-job.
    assert_eq!(expected.len(), 3, "{expected:#?}");
    receiver
        .seen
        .wait("every event delivered", |seen| {
            delivered(seen).len() >= expected.len()
        })
        .await;
    assert_eq!(daemon.stop().await, Some(0));
    check_deliveries(&receiver, &expected);
    // The receiver did refuse the first three.
    let refused = receiver
        .seen
        .read(|seen| seen.iter().filter(|s| s.answer == Some(503)).count());
    assert_eq!(refused, 3);
    drop(setup.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_gets_notify_dropped_after_max_age() {
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::Always(500)).await;
    let setup = setup(&sim, &receiver, "3s");
    let daemon = Daemon::start(&setup.config);
    daemon.wait_for_final_transitions().await;
    let expected = daemon.expected_deliveries();
    let ids: Vec<String> = expected
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_string())
        .collect();
    daemon
        .lines
        .wait("a notify.dropped for every event", |lines| {
            ids.iter().all(|id| {
                lines
                    .iter()
                    .any(|l| l["event"] == "notify.dropped" && l["event_id"] == **id)
            })
        })
        .await;
    let dropped = daemon.events("notify.dropped");
    for line in &dropped {
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["url"], receiver.url);
        assert!(line["attempts"].is_u64());
        assert!(!line["error"].as_str().unwrap().is_empty());
    }
    // The first one was tried and refused.
    let first = dropped.iter().find(|l| l["event_id"] == ids[0]).unwrap();
    assert!(first["attempts"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["error"], "HTTP 500");
    assert!(receiver.delivered().is_empty());
    assert_eq!(daemon.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_polling_or_stopping() {
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::Hang).await;
    let setup = setup(&sim, &receiver, "24h");
    let daemon = Daemon::start(&setup.config);
    // The receiver holds a request while the jobs go on to their end.
    receiver
        .seen
        .wait("a request to the receiver", |seen| !seen.is_empty())
        .await;
    daemon.wait_for_final_transitions().await;
    // A stop does not wait for the receiver either.
    assert_eq!(daemon.stop().await, Some(0));
    assert!(receiver.delivered().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_resume_after_a_restart() {
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::Always(503)).await;
    let setup = setup(&sim, &receiver, "24h");
    let daemon = Daemon::start(&setup.config);
    daemon.wait_for_final_transitions().await;
    let expected = daemon.expected_deliveries();
    receiver
        .seen
        .wait("a refused request", |seen| !seen.is_empty())
        .await;
    assert_eq!(daemon.stop().await, Some(0));

    receiver.set(Mode::Always(200));
    let daemon = Daemon::start(&setup.config);
    receiver
        .seen
        .wait("every event delivered", |seen| {
            delivered(seen).len() >= expected.len()
        })
        .await;
    // The finished jobs are not announced again: what arrives comes from
    // the outbox, with the first run's bodies.
    assert!(daemon.events("job.transition").is_empty());
    assert_eq!(daemon.stop().await, Some(0));
    check_deliveries(&receiver, &expected);
}

/// The Standard Webhooks headers of every request the receiver saw, and
/// their bodies, checked by the `standardwebhooks` package from PyPI with
/// every secret in `secrets` (an implementation that is not ours).
fn verify_with_reference_library(seen: &[Seen], secrets: &[&str]) -> String {
    let requests: Vec<Value> = seen
        .iter()
        .map(|request| {
            let header = |name: &str| request.headers[name].to_str().unwrap().to_string();
            serde_json::json!({
                "headers": {
                    "webhook-id": header("webhook-id"),
                    "webhook-timestamp": header("webhook-timestamp"),
                    "webhook-signature": header("webhook-signature"),
                },
                "body": request.body,
            })
        })
        .collect();
    let input = serde_json::json!({"secrets": secrets, "requests": requests});
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/tools/standard_webhooks_verify.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        input.to_string().as_bytes(),
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
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
/// or fails under CI).
fn reference_library() -> bool {
    harness::require_command(
        "python3",
        &["-c", "import standardwebhooks"],
        "the standardwebhooks Python package (pip install standardwebhooks; .ci/run installs it)",
    )
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_signatures_pass_the_reference_library() {
    if !reference_library() {
        return;
    }
    let sim = simulator().await;
    // One refusal, so that one event is sent twice, each attempt with its
    // own timestamp and signature.
    let receiver = Receiver::start(Mode::FailFirst(503, 1)).await;
    let setup = setup_with_secrets(&sim, &receiver, "24h", &[WHSEC], "");
    let daemon = Daemon::start(&setup.config);
    daemon.wait_for_final_transitions().await;
    let expected = daemon.expected_deliveries();
    receiver
        .seen
        .wait("every event delivered", |seen| {
            delivered(seen).len() >= expected.len()
        })
        .await;
    assert_eq!(daemon.stop().await, Some(0));
    let seen = receiver.seen.read(Clone::clone);
    for request in &seen {
        let header = |name: &str| request.headers[name].to_str().unwrap().to_string();
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(header("webhook-id"), body["event_id"].as_str().unwrap());
        assert_eq!(header("idempotency-key"), header("webhook-id"));
        // The old header stays, over the secret's text.
        assert_eq!(
            header("x-jobwatch-signature"),
            signature(WHSEC.as_bytes(), request.body.as_bytes())
        );
        let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
        assert!(timestamp > 1_700_000_000, "{timestamp}");
    }
    // The retried event was signed anew (same id, its own attempt).
    assert_eq!(seen[0].body, seen[1].body);
    verify_with_reference_library(&seen, &[WHSEC]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_sets_the_next_attempt() {
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::RetryAfter(503, 1, 3)).await;
    let setup = setup(&sim, &receiver, "24h");
    let daemon = Daemon::start(&setup.config);
    receiver
        .seen
        .wait("the retried request", |seen| seen.len() >= 2)
        .await;
    assert_eq!(daemon.stop().await, Some(0));
    let seen = receiver.seen.read(Clone::clone);
    assert_eq!(seen[0].body, seen[1].body, "the same event, tried again");
    // The contract's promise: the next attempt comes when the receiver
    // asked (3 s), not before, and without a backoff of its own on top.
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(
        gap >= Duration::from_secs(3) && gap < Duration::from_secs(4),
        "the second attempt came {gap:?} after the first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_verify_with_the_reference_library() {
    if !reference_library() {
        return;
    }
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::FailFirst(503, 0)).await;
    // The new key first (it signs X-Jobwatch-Signature), the old one
    // still accepted by receivers that have not switched yet.
    let old = "old-plain-secret";
    let setup = setup_with_secrets(&sim, &receiver, "24h", &[WHSEC, old], "name = \"ops-hook\"");
    let daemon = Daemon::start(&setup.config);
    daemon.wait_for_final_transitions().await;
    let expected = daemon.expected_deliveries();
    receiver
        .seen
        .wait("every event delivered", |seen| {
            delivered(seen).len() >= expected.len()
        })
        .await;
    assert_eq!(daemon.stop().await, Some(0));
    let seen = receiver.seen.read(Clone::clone);
    for request in &seen {
        let signatures = request.headers["webhook-signature"].to_str().unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        assert!(
            signatures.split(' ').all(|s| s.starts_with("v1,")),
            "{signatures}"
        );
        assert_eq!(
            request.headers["x-jobwatch-signature"].to_str().unwrap(),
            signature(WHSEC.as_bytes(), request.body.as_bytes())
        );
    }
    // A receiver that knows only one of the two accepts every request.
    let report = verify_with_reference_library(&seen, &[WHSEC, old]);
    assert_eq!(
        report.matches("verified").count(),
        seen.len() * 2,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_removed_from_the_configuration_gives_up_its_events() {
    let sim = simulator().await;
    let receiver = Receiver::start(Mode::Always(503)).await;
    let setup = setup(&sim, &receiver, "24h");
    let daemon = Daemon::start(&setup.config);
    daemon.wait_for_final_transitions().await;
    let expected = daemon.expected_deliveries();
    receiver
        .seen
        .wait("a refused request", |seen| !seen.is_empty())
        .await;
    assert_eq!(daemon.stop().await, Some(0));

    // The sink leaves the configuration: its queued events are given up at
    // the next start, one notify.dropped each, rather than kept for ever.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let cut = text.find("[[notify.webhook]]").unwrap();
    std::fs::write(&setup.config, &text[..cut]).unwrap();
    let daemon = Daemon::start(&setup.config);
    let ids: Vec<String> = expected
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_string())
        .collect();
    daemon
        .lines
        .wait("a notify.dropped for every queued event", |lines| {
            ids.iter().all(|id| {
                lines
                    .iter()
                    .any(|l| l["event"] == "notify.dropped" && l["event_id"] == **id)
            })
        })
        .await;
    let dropped = daemon.events("notify.dropped");
    assert_eq!(daemon.stop().await, Some(0));
    assert_eq!(dropped.len(), ids.len(), "{dropped:#?}");
    for line in &dropped {
        assert_eq!(line["sink"], "webhook-1", "{line}");
        let error = line["error"].as_str().unwrap();
        assert!(
            error.starts_with("the sink is no longer configured"),
            "{line}"
        );
    }
    // The oldest was tried and refused; the others waited behind it.
    let first = dropped.iter().find(|l| l["event_id"] == ids[0]).unwrap();
    assert!(
        first["error"].as_str().unwrap().ends_with("HTTP 503"),
        "{first}"
    );
    assert!(first["attempts"].as_u64().unwrap() >= 1, "{first}");
    // Nothing was delivered, and nothing more was tried.
    assert!(receiver.delivered().is_empty());
}
