//! The daemon as systemd runs it: the real binary, a fake `NOTIFY_SOCKET`
//! (a Unix datagram socket in a temp dir), signals sent with `kill`, and
//! the in-process simulator as the ECS API.
//!
//! Every wait is for a datagram, a JSON event or the process's exit, under a
//! generous deadline; nothing sleeps to let time pass. Also here: the
//! example configuration shipped in `config/` passes `check-config`.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecs_jobwatch::sim::{self, FaultRule, JobSpec, Scenario, SimHandle};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_ecs-jobwatch");
const ACCESS_KEY: &str = "SIMAK0000000000000001";
const SECRET_KEY: &str = "sim-secret-key-0000000000000000000000001";
const PROJECT_ID: &str = "0123456789abcdef0123456789abcdef";
const JOB_A: &str = "ff80808288d41e1b018990260955686a";
const JOB_B: &str = "ff80808288d41e1b0189902609556870";

/// How long any single expectation may take on a slow, shared machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often a wait checks that the daemon is still alive.
const SLICE: Duration = Duration::from_millis(500);

/// A job whose status is `status` from the moment it is added on.
fn job(id: &str, status: &str) -> JobSpec {
    serde_json::from_value(json!({
        "id": id,
        "job_type": "createServer",
        "timeline": [{"at": "0s", "status": status}],
    }))
    .expect("a valid job")
}

/// A latency fault on every request, uniform in `low..high`.
fn latency(low: &str, high: &str) -> FaultRule {
    serde_json::from_value(json!({"kind": "latency", "latency": [low, high]}))
        .expect("a valid fault")
}

/// The simulator, on a runtime of its own so the tests stay synchronous.
struct Sim {
    handle: SimHandle,
    // Declared after the handle: the server stops before its runtime goes.
    _runtime: tokio::runtime::Runtime,
}

impl Sim {
    fn start(jobs: Vec<JobSpec>, faults: Vec<FaultRule>) -> Sim {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let scenario = Scenario::from_toml_str(&format!(
            "project_id = \"{PROJECT_ID}\"\n\
             [[credential]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n"
        ))
        .expect("a valid scenario");
        let handle = runtime
            .block_on(sim::spawn(scenario))
            .expect("the simulator starts");
        handle.add_jobs(jobs);
        handle.set_faults(faults);
        Sim {
            handle,
            _runtime: runtime,
        }
    }

    fn requests_for(&self, job_id: &str) -> u64 {
        self.handle
            .stats()
            .jobs
            .get(job_id)
            .map_or(0, |stats| stats.requests)
    }
}

/// Writes the daemon's configuration file.
fn write_config(path: &Path, endpoint: &str, state: &Path, extra: &str) {
    let text = format!(
        "[cloud]\nendpoint = \"{endpoint}\"\nproject_id = \"{PROJECT_ID}\"\n\n\
         [credentials]\nsource = \"env\"\n\n\
         [state]\ndir = \"{}\"\n\n\
         [log]\nformat = \"json\"\nlevel = \"info\"\n\n{extra}",
        state.display()
    );
    std::fs::write(path, text).expect("the configuration is written");
}

/// One daemon process with its notify socket and its event stream.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    config: PathBuf,
    endpoint: String,
    datagrams: Receiver<String>,
    events: Receiver<Value>,
    /// Every event read so far, in order.
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `ecs-jobwatch run` with `extra` appended to the configuration
    /// and `env` added to a clean environment.
    fn start(sim: &Sim, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("ecs-jobwatch.toml");
        let endpoint = sim.handle.base_url();
        // systemd's StateDirectory= creates it; the daemon does not.
        std::fs::create_dir(dir.path().join("state")).expect("the state dir is created");
        write_config(&config, &endpoint, &dir.path().join("state"), extra);

        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("the notify socket binds");
        let (datagram_tx, datagrams) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 4096];
            while let Ok(length) = socket.recv(&mut buffer) {
                // sd-notify ends every assignment with a newline; keep the
                // lines, drop the last one's.
                let text = String::from_utf8_lossy(&buffer[..length])
                    .trim_end_matches('\n')
                    .to_string();
                if datagram_tx.send(text).is_err() {
                    break;
                }
            }
        });

        // systemd sets WATCHDOG_PID with WATCHDOG_USEC, and the sd-notify
        // crate ignores WATCHDOG_USEC without a matching WATCHDOG_PID; a
        // shell that exports its own pid and then execs the daemon gives it
        // the right one.
        let mut command = if env.iter().any(|(name, _)| *name == "WATCHDOG_USEC") {
            let mut command = Command::new("/bin/sh");
            command
                .arg("-c")
                .arg("WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" \"$@\"")
                .arg(BINARY);
            command
        } else {
            Command::new(BINARY)
        };
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("HUAWEICLOUD_SDK_AK", ACCESS_KEY)
            .env("HUAWEICLOUD_SDK_SK", SECRET_KEY)
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the daemon starts");

        let stdout = child.stdout.take().expect("piped stdout");
        let (event_tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|error| panic!("stdout line is not JSON ({error}): {line}"));
                if event_tx.send(event).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });

        Daemon {
            child,
            dir,
            config,
            endpoint,
            datagrams,
            events,
            seen: Vec::new(),
            stderr,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// What the daemon said on stderr so far, for failure messages.
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next datagram that is neither `STATUS=` nor `WATCHDOG=1`: the
    /// lifecycle notices, whose order is the point.
    fn next_lifecycle(&mut self) -> String {
        self.next_datagram(|text| !(text.starts_with("STATUS=") || text == "WATCHDOG=1"))
    }

    /// Waits for a datagram matching `wanted`, skipping others.
    fn next_datagram(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            match self.datagrams.recv_timeout(SLICE) {
                Ok(text) if wanted(&text) => return text,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => self.check_alive(start, "datagram"),
                Err(RecvTimeoutError::Disconnected) => panic!("the notify socket closed"),
            }
        }
    }

    /// Panics when the deadline has passed or the daemon died, with what it
    /// said on stderr.
    fn check_alive(&mut self, start: Instant, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the daemon exited ({status}) while waiting for a {what}; events: {:#?}\nstderr:\n{}",
                self.seen,
                self.stderr()
            );
        }
        if start.elapsed() > DEADLINE {
            panic!(
                "no expected {what} within {DEADLINE:?}; events: {:#?}\nstderr:\n{}",
                self.seen,
                self.stderr()
            );
        }
    }

    /// Waits for an event matching `wanted`; every event read is kept in `seen`.
    fn wait_event(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            match self.events.recv_timeout(SLICE) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(_) => self.check_alive(start, what),
            }
        }
    }

    /// The first event named `name` already read, or the next one.
    fn seen_or_wait(&mut self, name: &str) -> Value {
        match self.seen.iter().find(|event| event["event"] == name) {
            Some(event) => event.clone(),
            None => self.wait_named(name),
        }
    }

    fn wait_named(&mut self, name: &str) -> Value {
        self.wait_event(name, |event| event["event"] == name)
    }

    fn wait_transition(&mut self, job_id: &str, status: &str) -> Value {
        self.wait_event(
            &format!("job.transition of {job_id} to {status}"),
            |event| {
                event["event"] == "job.transition"
                    && event["job_id"] == job_id
                    && event["status"] == status
            },
        )
    }

    /// Waits for the process to end; reads the remaining events first.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(event) = self.events.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(event);
                }
                return status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!(
                    "the daemon did not exit within {DEADLINE:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            // A child's exit has no portable event to wait on without new
            // dependencies; look again shortly.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Rewrites the configuration file with `extra` appended.
    fn rewrite_config(&self, extra: &str) {
        write_config(
            &self.config,
            &self.endpoint,
            &self.dir.path().join("state"),
            extra,
        );
    }

    /// The statuses announced for `job_id` so far, in order.
    fn transitions(&self, job_id: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|event| event["event"] == "job.transition" && event["job_id"] == job_id)
            .map(|event| event["status"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a daemon behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const FAST_POLLS: &str = "[poll]\ninitial_interval = \"1s\"\nmax_interval = \"1s\"\n\n";

fn watch_jobs(ids: &[&str]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    format!("[watch]\njobs = [{}]\n", quoted.join(", "))
}

#[test]
fn notify_ready_reloading_ready_stopping_and_status() {
    let sim = Sim::start(vec![job(JOB_A, "RUNNING")], vec![]);
    let mut daemon = Daemon::start(&sim, &format!("{FAST_POLLS}{}", watch_jobs(&[JOB_A])), &[]);

    assert_eq!(daemon.next_lifecycle(), "READY=1");
    let status = daemon.next_datagram(|text| text.starts_with("STATUS="));
    assert!(
        status.starts_with("STATUS=tracking "),
        "status line: {status:?}"
    );
    assert!(!status.contains('\n'), "one line: {status:?}");

    daemon.signal("HUP");
    let reloading = daemon.next_lifecycle();
    let fields: Vec<&str> = reloading.lines().collect();
    assert!(fields.contains(&"RELOADING=1"), "{reloading:?}");
    assert!(
        fields.iter().any(|field| field
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|usec| usec.parse::<u64>().is_ok_and(|usec| usec > 0))),
        "{reloading:?}"
    );
    assert_eq!(daemon.next_lifecycle(), "READY=1");
    daemon.wait_named("daemon.reloaded");

    daemon.signal("TERM");
    assert_eq!(daemon.next_lifecycle(), "STOPPING=1");
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert!(
        daemon
            .seen
            .iter()
            .any(|event| event["event"] == "daemon.stopping"),
        "{:#?}",
        daemon.seen
    );
}

#[test]
fn watchdog_pings_when_watchdog_usec_is_set() {
    let sim = Sim::start(vec![job(JOB_A, "RUNNING")], vec![]);
    let mut daemon = Daemon::start(
        &sim,
        &format!("{FAST_POLLS}{}", watch_jobs(&[JOB_A])),
        &[("WATCHDOG_USEC", "400000")],
    );
    assert_eq!(daemon.next_lifecycle(), "READY=1");
    for _ in 0..3 {
        daemon.next_datagram(|text| text == "WATCHDOG=1");
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0));
}

#[test]
fn no_watchdog_pings_without_watchdog_usec() {
    let sim = Sim::start(vec![job(JOB_A, "RUNNING")], vec![]);
    let mut daemon = Daemon::start(&sim, &format!("{FAST_POLLS}{}", watch_jobs(&[JOB_A])), &[]);
    assert_eq!(daemon.next_lifecycle(), "READY=1");
    // Two polls of the job take more than a second: time a 400 ms watchdog
    // would have pinged in.
    daemon.wait_transition(JOB_A, "RUNNING");
    let before = sim.requests_for(JOB_A);
    while sim.requests_for(JOB_A) < before + 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.signal("TERM");
    assert_eq!(daemon.next_lifecycle(), "STOPPING=1");
    assert_eq!(daemon.wait_exit().code(), Some(0));
    let pings: Vec<String> = daemon
        .datagrams
        .try_iter()
        .filter(|text| text.contains("WATCHDOG"))
        .collect();
    assert!(pings.is_empty(), "{pings:?}");
}

#[test]
fn sighup_with_a_valid_change_keeps_job_state() {
    let sim = Sim::start(vec![job(JOB_A, "RUNNING")], vec![]);
    let mut daemon = Daemon::start(&sim, &format!("{FAST_POLLS}{}", watch_jobs(&[JOB_A])), &[]);
    let first = daemon.wait_transition(JOB_A, "RUNNING");
    assert_eq!(first["previous_status"], Value::Null);

    daemon.rewrite_config(&format!(
        "[poll]\ninitial_interval = \"1s\"\nmax_interval = \"2s\"\n\n{}",
        watch_jobs(&[JOB_A])
    ));
    daemon.signal("HUP");
    let reloaded = daemon.wait_named("daemon.reloaded");
    assert_eq!(reloaded["jobs_tracked"], 1, "{reloaded}");
    assert_eq!(reloaded["level"], "INFO");

    // The job moves on after the reload; the daemon still knows it was RUNNING.
    sim.handle.add_jobs(vec![job(JOB_A, "SUCCESS")]);
    let done = daemon.wait_transition(JOB_A, "SUCCESS");
    assert_eq!(done["previous_status"], "RUNNING", "{done}");
    assert_eq!(daemon.transitions(JOB_A), ["RUNNING", "SUCCESS"]);

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert_eq!(daemon.transitions(JOB_A), ["RUNNING", "SUCCESS"]);
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_configuration() {
    let sim = Sim::start(vec![job(JOB_A, "RUNNING")], vec![]);
    let mut daemon = Daemon::start(&sim, &format!("{FAST_POLLS}{}", watch_jobs(&[JOB_A])), &[]);
    assert_eq!(daemon.next_lifecycle(), "READY=1");
    daemon.wait_transition(JOB_A, "RUNNING");

    // Below the 1 s minimum: a value error that names its key.
    daemon.rewrite_config(&format!(
        "[poll]\ninitial_interval = \"1s\"\nmax_interval = \"100ms\"\n\n{}",
        watch_jobs(&[JOB_A])
    ));
    daemon.signal("HUP");
    let failed = daemon.wait_named("daemon.reload_failed");
    assert_eq!(failed["level"], "ERROR", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("poll.max_interval"), "{failed}");
    let reloading = daemon.next_lifecycle();
    assert!(reloading.contains("RELOADING=1"), "{reloading:?}");
    assert_eq!(daemon.next_lifecycle(), "READY=1");

    // Still polling, with the old configuration.
    sim.handle.add_jobs(vec![job(JOB_A, "FAIL")]);
    let failed_job = daemon.wait_transition(JOB_A, "FAIL");
    assert_eq!(failed_job["previous_status"], "RUNNING");

    // Broken TOML is refused the same way, naming the place.
    std::fs::write(&daemon.config, "[poll\nmax_interval = ").unwrap();
    daemon.signal("HUP");
    let failed = daemon.wait_named("daemon.reload_failed");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&daemon.config.display().to_string()),
        "{failed}"
    );
    assert!(daemon.next_lifecycle().contains("RELOADING=1"));
    assert_eq!(daemon.next_lifecycle(), "READY=1");

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert!(
        !daemon
            .seen
            .iter()
            .any(|event| event["event"] == "daemon.reloaded"),
        "{:#?}",
        daemon.seen
    );
}

#[test]
fn sighup_reads_a_new_watch_file() {
    let sim = Sim::start(
        vec![job(JOB_A, "RUNNING"), job(JOB_B, "PENDING_PAYMENT")],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let jobs_d = dir.path().join("jobs.d");
    std::fs::create_dir(&jobs_d).unwrap();
    std::fs::write(jobs_d.join("a.jobs"), format!("{JOB_A} team=payments\n")).unwrap();
    let mut daemon = Daemon::start(
        &sim,
        &format!("{FAST_POLLS}[watch]\ndir = \"{}\"\n", jobs_d.display()),
        &[],
    );
    let a = daemon.wait_transition(JOB_A, "RUNNING");
    assert_eq!(a["labels"], json!({"team": "payments"}));

    std::fs::write(jobs_d.join("b.jobs"), format!("{JOB_B} team=platform\n")).unwrap();
    daemon.signal("HUP");
    let b = daemon.wait_transition(JOB_B, "PENDING_PAYMENT");
    assert_eq!(b["labels"], json!({"team": "platform"}));
    assert_eq!(b["level"], "WARN");
    // The reload's own event may come before or after the new job's.
    let reloaded = daemon.seen_or_wait("daemon.reloaded");
    assert_eq!(reloaded["jobs_tracked"], 2, "{reloaded}");

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0));
    assert_eq!(daemon.transitions(JOB_A), ["RUNNING"]);
    assert_eq!(daemon.transitions(JOB_B), ["PENDING_PAYMENT"]);
}

/// Waits until the simulator has received `count` requests.
fn wait_requests(sim: &Sim, count: u64) {
    let start = Instant::now();
    while sim.handle.stats().requests_total < count {
        assert!(
            start.elapsed() < DEADLINE,
            "no requests reached the simulator"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_with_polls_in_flight_exits_cleanly() {
    let ids = [JOB_A, JOB_B, "job-c", "job-d"];
    let sim = Sim::start(
        ids.iter().map(|id| job(id, "RUNNING")).collect(),
        vec![latency("1s", "2s")],
    );
    let mut daemon = Daemon::start(&sim, &format!("{FAST_POLLS}{}", watch_jobs(&ids)), &[]);
    assert_eq!(daemon.next_lifecycle(), "READY=1");
    // Every request takes at least a second, so these are still in flight.
    wait_requests(&sim, ids.len() as u64);

    daemon.signal("TERM");
    assert_eq!(daemon.next_lifecycle(), "STOPPING=1");
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert!(
        daemon
            .seen
            .iter()
            .any(|event| event["event"] == "daemon.stopping")
    );
}

#[test]
fn a_second_sigterm_exits_at_once_with_75() {
    let ids = [JOB_A, JOB_B];
    let sim = Sim::start(
        ids.iter().map(|id| job(id, "RUNNING")).collect(),
        vec![latency("5s", "5s")],
    );
    let mut daemon = Daemon::start(&sim, &format!("{FAST_POLLS}{}", watch_jobs(&ids)), &[]);
    assert_eq!(daemon.next_lifecycle(), "READY=1");
    wait_requests(&sim, ids.len() as u64);

    daemon.signal("TERM");
    // The second signal once the first is being acted on: the signal
    // handler itself exits. Two signals sent back to back, before the
    // first is even delivered, are one pending signal to the kernel and
    // can only count as one.
    assert_eq!(daemon.next_lifecycle(), "STOPPING=1");
    daemon.signal("TERM");
    let status = daemon.wait_exit();
    assert_eq!(
        status.code(),
        Some(ecs_jobwatch::daemon::signals::FORCED_EXIT),
        "stderr:\n{}",
        daemon.stderr()
    );
}

#[test]
fn the_shipped_example_configuration_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .arg("check-config")
        .arg("--config")
        .arg(root.join("config/ecs-jobwatch.toml"))
        .env_clear()
        .env("ECS_JOBWATCH__WATCH__DIR", root.join("config/jobs.d"))
        .env("STATE_DIRECTORY", state.path())
        .env("HUAWEICLOUD_SDK_AK", ACCESS_KEY)
        .env("HUAWEICLOUD_SDK_SK", SECRET_KEY)
        .output()
        .expect("check-config runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The example watch file's three jobs are all valid.
    assert!(stdout.contains("# watch list: 3 jobs"), "{stdout}");
    assert!(!stdout.contains(SECRET_KEY), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
}
