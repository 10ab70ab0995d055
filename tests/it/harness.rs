//! A harness that runs the real `ecs-jobwatch` binary against the in-process
//! simulator and reads its JSON lines, so the daemon tests read as data.
//!
//! [`sim`] starts the simulator with a scenario (the credential and project
//! are supplied here; a test gives only its `[[job]]` and `[[fault]]`
//! tables). [`Setup`] owns a temporary directory holding the configuration,
//! the state directory and the watch directory; [`Setup::start`] spawns the
//! daemon with the scenario's keys, and nothing else, in its environment.
//! [`Daemon`] collects every stdout line and awaits events matching a
//! [`Match`] under one generous deadline; a line that is not a JSON object
//! is kept in `bad_lines`, for the test to judge. [`Setup::notify_socket`]
//! gives the daemon a `NOTIFY_SOCKET` whose datagrams a test awaits as a
//! [`Notice`] (and [`Setup::watchdog`] the systemd watchdog's variables);
//! nothing here sleeps to wait for a result.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ecs_jobwatch::sim::{self, FaultRule, JobSpec, Scenario, SimHandle, Stats};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The project every scenario and configuration uses.
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// The access key the simulator accepts.
pub const AK: &str = "ITAK00000000000000000001";
/// Its secret key.
pub const SK: &str = "it-secret-key-00000000000000000000000001";
/// The longest any single await may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A scenario file's text: the harness project and credential, then
/// `tables` (`[[job]]` and `[[fault]]`).
pub fn scenario_text(tables: &str) -> String {
    format!(
        "project_id = \"{PROJECT}\"\n\n[[credential]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n\n{tables}"
    )
}

/// The jobs of `[[job]]` tables, for adding to a running simulator.
pub fn jobs(tables: &str) -> Vec<JobSpec> {
    Scenario::from_toml_str(&scenario_text(tables))
        .expect("test jobs are a valid scenario")
        .jobs
}

/// The fault rules of `[[fault]]` tables.
pub fn faults(tables: &str) -> Vec<FaultRule> {
    Scenario::from_toml_str(&scenario_text(tables))
        .expect("test faults are a valid scenario")
        .faults
}

/// A running simulator and the moment it was started.
pub struct Sim {
    handle: SimHandle,
    started: Instant,
}

impl Deref for Sim {
    type Target = SimHandle;

    fn deref(&self) -> &SimHandle {
        &self.handle
    }
}

impl Sim {
    /// An upper bound of the time on the simulator's clock (fault windows
    /// count from its start).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The requests the simulator has seen naming `job_id`.
    pub fn requests(&self, job_id: &str) -> u64 {
        self.stats().jobs.get(job_id).map_or(0, |job| job.requests)
    }

    /// Awaits a condition on the simulator's statistics (checked every
    /// 50 ms, which is observation, not a wait for a fixed time).
    pub async fn await_stats(&self, what: &str, condition: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let stats = self.stats();
            if condition(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "timed out awaiting simulator stats: {what}; last {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts the simulator with the harness credential and `tables`.
pub async fn sim(tables: &str) -> Sim {
    sim_of(&scenario_text(tables), sim::ServerOptions::default()).await
}

/// Like [`sim`], serving HTTPS or closing idle connections as `options`
/// say.
pub async fn sim_with(tables: &str, options: sim::ServerOptions) -> Sim {
    sim_of(&scenario_text(tables), options).await
}

/// A second project the simulator serves beside [`PROJECT`].
pub const PROJECT_2: &str = "fedcba9876543210fedcba9876543210";

/// Starts the simulator serving [`PROJECT`] and [`PROJECT_2`].
pub async fn sim_two_projects(tables: &str) -> Sim {
    sim_of(
        &format!("project_ids = [\"{PROJECT_2}\"]\n{}", scenario_text(tables)),
        sim::ServerOptions::default(),
    )
    .await
}

async fn sim_of(text: &str, options: sim::ServerOptions) -> Sim {
    let scenario = Scenario::from_toml_str(text).expect("valid test scenario");
    let started = Instant::now();
    let handle = sim::spawn_with(scenario, options)
        .await
        .expect("simulator starts");
    Sim { handle, started }
}

/// A temporary directory with a daemon configuration, its state directory
/// and an optional watch directory.
pub struct Setup {
    /// Shared with every daemon started, so the files outlive a temporary
    /// `Setup`.
    dir: Arc<TempDir>,
    config: toml::Table,
    env: BTreeMap<String, String>,
    notify: bool,
    watchdog_usec: Option<u64>,
}

impl Setup {
    /// A configuration against `sim` with short intervals, JSON logs and
    /// the harness keys in the environment.
    pub fn new(sim: &Sim) -> Setup {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state directory");
        let mut setup = Setup {
            dir: Arc::new(dir),
            config: toml::Table::new(),
            env: BTreeMap::from([
                ("HUAWEICLOUD_SDK_AK".to_string(), AK.to_string()),
                ("HUAWEICLOUD_SDK_SK".to_string(), SK.to_string()),
            ]),
            notify: false,
            watchdog_usec: None,
        };
        setup = setup
            .set("cloud.endpoint", sim.base_url())
            .set("cloud.project_id", PROJECT)
            .set("credentials.source", "env")
            .set("poll.initial_interval", "1s")
            .set("poll.max_interval", "2s")
            .set("poll.not_found_grace", "30s")
            .set("limits.requests_per_second", 50)
            .set("state.dir", state.to_str().expect("UTF-8 temp path"))
            .set("log.format", "json");
        setup
    }

    /// Sets the dotted configuration key `section.key`.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Setup {
        let (section, name) = key.split_once('.').expect("a dotted key");
        let table = self
            .config
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table
            .as_table_mut()
            .expect("a section is a table")
            .insert(name.to_string(), value.into());
        self
    }

    /// Removes the dotted configuration key `section.key` (and the section,
    /// once it is empty), as if it had never been set.
    pub fn unset(mut self, key: &str) -> Setup {
        let (section, name) = key.split_once('.').expect("a dotted key");
        if let Some(toml::Value::Table(table)) = self.config.get_mut(section) {
            table.remove(name);
            if table.is_empty() {
                self.config.remove(section);
            }
        }
        self
    }

    /// Sets `watch.jobs`.
    pub fn watch(self, ids: &[&str]) -> Setup {
        let ids: Vec<toml::Value> = ids.iter().map(|id| toml::Value::from(*id)).collect();
        self.set("watch.jobs", ids)
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: &str, value: &str) -> Setup {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Gives every daemon started a `NOTIFY_SOCKET` of its own: a Unix
    /// datagram socket in the temporary directory, read by the harness
    /// (see [`Daemon::await_datagram`]).
    pub fn notify_socket(mut self) -> Setup {
        self.notify = true;
        self
    }

    /// Turns the systemd watchdog on as systemd does: `WATCHDOG_USEC` is
    /// `usec` and `WATCHDOG_PID` the daemon's own process id (implies
    /// [`Setup::notify_socket`]). A test that wants other values sets the
    /// variables with [`Setup::env`] instead.
    pub fn watchdog(mut self, usec: u64) -> Setup {
        self.notify = true;
        self.watchdog_usec = Some(usec);
        self
    }

    /// Writes `text` as the watch file `name` and points `watch.dir` at
    /// its directory.
    pub fn watch_file(self, name: &str, text: &str) -> Setup {
        let dir = self.watch_dir();
        std::fs::create_dir_all(&dir).expect("watch directory");
        std::fs::write(dir.join(name), text).expect("watch file");
        let dir = dir.to_str().expect("UTF-8 temp path").to_string();
        self.set("watch.dir", dir)
    }

    /// The state directory (`state` in the temporary directory).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The watch directory (`jobs.d` in the temporary directory).
    pub fn watch_dir(&self) -> PathBuf {
        self.dir.path().join("jobs.d")
    }

    /// The configuration file (written by `start`, `write` and `cli`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ecs-jobwatch.toml")
    }

    /// Writes the configuration file.
    pub fn write(&self) -> PathBuf {
        let path = self.config_path();
        let text = toml::to_string(&self.config).expect("configuration serializes");
        std::fs::write(&path, text).expect("configuration written");
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = binary_command(args);
        command.envs(&self.env);
        command
    }

    /// Runs a command of the binary with `--config` to its end.
    pub async fn cli(&self, args: &[&str]) -> Output {
        let path = self.write();
        let mut args = args.to_vec();
        args.extend(["--config", path.to_str().expect("UTF-8 temp path")]);
        output_of(self.command(&args)).await
    }

    /// Writes the configuration and starts `ecs-jobwatch run`.
    pub async fn start(&self) -> Daemon {
        let path = self.write();
        let args = ["run", "--config", path.to_str().expect("UTF-8 temp path")];
        let mut command = match self.watchdog_usec {
            // systemd sets WATCHDOG_PID beside WATCHDOG_USEC, and sd-notify
            // ignores the watchdog unless it names the process itself: a
            // shell that exports its own pid and then execs the daemon gives
            // it the right one (and drops the PWD the shell made up).
            Some(usec) => {
                let mut command = Command::new("/bin/sh");
                command
                    .arg("-c")
                    .arg("unset PWD; WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" \"$@\"")
                    .arg(BINARY)
                    .args(args);
                clean(&mut command);
                command
                    .envs(&self.env)
                    .env("WATCHDOG_USEC", usec.to_string());
                command
            }
            None => self.command(&args),
        };
        let notify = self.notify.then(|| notify::Listener::bind(self.dir.path()));
        if let Some(listener) = &notify {
            command.env("NOTIFY_SOCKET", listener.path());
        }
        let mut child = command.spawn().expect("the daemon starts");
        let pid = child.id().expect("a running child has a pid");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (sender, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Bytes, not `read_line`: a line that is not UTF-8 is one more
            // bad line, not the end of reading (and of the test's view).
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&line).into_owned();
                        if sender.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Daemon {
            _dir: self.dir.clone(),
            child,
            pid,
            incoming,
            events: Vec::new(),
            lines: Vec::new(),
            bad_lines: Vec::new(),
            notify,
            datagrams: Vec::new(),
            stderr: Some(stderr),
        }
    }
}

/// The binary.
const BINARY: &str = env!("CARGO_BIN_EXE_ecs-jobwatch");

/// Pipes, no stdin, killed on drop, and an empty environment: nothing of
/// the developer's shell (`ECS_JOBWATCH__*`, `HUAWEICLOUD_*`,
/// `NOTIFY_SOCKET`) reaches a process a test starts.
fn clean(command: &mut Command) {
    command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
}

/// The binary with `args`, ready as [`clean`] makes it.
fn binary_command(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args);
    clean(&mut command);
    command
}

/// Runs `command` to its end, under [`DEADLINE`].
async fn output_of(mut command: Command) -> Output {
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .expect("the command ends in time")
        .expect("the binary runs");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary with `args` and only `env` in its environment, to its
/// end (for a command that needs no [`Setup`], such as `check-config` of a
/// shipped file).
pub async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = binary_command(args);
    command.envs(env.iter().copied());
    output_of(command).await
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Fields an event must have, compared for equality.
#[derive(Clone, Debug)]
pub struct Match(Vec<(String, Value)>);

impl Match {
    /// Events named `event`.
    pub fn event(event: &str) -> Match {
        Match(vec![("event".to_string(), Value::from(event))])
    }

    /// `job.transition` of `job_id` into `status`.
    pub fn transition(job_id: &str, status: &str) -> Match {
        Match::event("job.transition")
            .with("job_id", job_id)
            .with("status", status)
    }

    /// `job.transition` of any job into `status`.
    pub fn transition_into(status: &str) -> Match {
        Match::event("job.transition").with("status", status)
    }

    /// And field `key` equal to `value`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Match {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// Whether `event` has every field.
    pub fn matches(&self, event: &Value) -> bool {
        self.0
            .iter()
            .all(|(key, value)| event.get(key) == Some(value))
    }

    /// The events among `events` that match.
    pub fn all<'a>(&self, events: &'a [Value]) -> Vec<&'a Value> {
        events.iter().filter(|event| self.matches(event)).collect()
    }
}

/// A running daemon and every line it printed so far.
pub struct Daemon {
    _dir: Arc<TempDir>,
    child: Child,
    pid: u32,
    incoming: mpsc::UnboundedReceiver<String>,
    /// Every stdout line that parsed as a JSON object, in order.
    pub events: Vec<Value>,
    /// The text of each of `events` as printed (without its line end):
    /// `lines[i]` is the line `events[i]` was parsed from.
    pub lines: Vec<String>,
    /// Every stdout line that did not (with its line end, if any).
    pub bad_lines: Vec<String>,
    notify: Option<notify::Listener>,
    /// Every datagram read from the notify socket so far, in order (each
    /// without its last newline).
    pub datagrams: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Daemon {
    /// Fails the test with what the daemon printed.
    async fn fail(&mut self, why: String) -> ! {
        let stderr = match self.stderr.take() {
            Some(handle) => tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        panic!(
            "{why}\nevents so far:\n{}\nother stdout lines: {:?}\nnotify datagrams so far: {:?}\nstderr: {stderr}",
            dump(&self.events),
            self.bad_lines,
            self.datagrams
        );
    }

    fn take(&mut self, line: String) {
        let text = line.trim_end_matches('\n');
        match serde_json::from_str::<Value>(text) {
            Ok(value) if value.is_object() => {
                self.lines.push(text.to_string());
                self.events.push(value);
            }
            _ => self.bad_lines.push(line),
        }
    }

    /// The next line, or `None` once stdout is closed or at `deadline`.
    async fn next_line(&mut self, deadline: Instant) -> Option<String> {
        tokio::time::timeout_at(deadline, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// The first event (since start) that matches, awaiting it for at most
    /// [`DEADLINE`].
    pub async fn await_event(&mut self, wanted: &Match) -> Value {
        self.await_events(wanted, 1).await.remove(0)
    }

    /// The first `count` events (since start) that match.
    pub async fn await_events(&mut self, wanted: &Match, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found = wanted.all(&self.events);
            if found.len() >= count {
                return found.into_iter().take(count).cloned().collect();
            }
            let found = found.len();
            match self.next_line(deadline).await {
                Some(line) => self.take(line),
                None => {
                    let why = if Instant::now() >= deadline {
                        "timed out"
                    } else {
                        "the daemon closed stdout"
                    };
                    self.fail(format!(
                        "awaiting {count} of {wanted:?}: {why} (found {found})"
                    ))
                    .await
                }
            }
        }
    }

    /// Waits at most `within` for a new event that matches (a bounded
    /// wait for something that should not come).
    pub async fn next_event_within(&mut self, wanted: &Match, within: Duration) -> Option<Value> {
        let already = wanted.all(&self.events).len();
        let deadline = Instant::now() + within;
        while let Some(line) = self.next_line(deadline).await {
            self.take(line);
            if wanted.all(&self.events).len() > already {
                return self.events.last().cloned();
            }
        }
        None
    }

    /// The daemon's process id (for signals a test sends itself, such as
    /// SIGHUP).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The names of the daemon's environment variables, sorted, as the
    /// kernel shows them (`/proc/PID/environ`).
    pub fn environment(&self) -> Vec<String> {
        let environ = std::fs::read(format!("/proc/{}/environ", self.pid))
            .expect("the daemon's environment is readable");
        let mut names: Vec<String> = environ
            .split(|byte| *byte == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let name = entry.split(|byte| *byte == b'=').next().unwrap_or_default();
                String::from_utf8_lossy(name).into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// Sends the signal `name` (`HUP`, `TERM`, `KILL`) to the daemon.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    /// The first datagram (since start) on the notify socket that matches,
    /// awaiting it for at most [`DEADLINE`].
    pub async fn await_datagram(&mut self, wanted: &Notice) -> String {
        self.await_datagrams(wanted, 1).await.remove(0)
    }

    /// The first `count` datagrams (since start) that match.
    pub async fn await_datagrams(&mut self, wanted: &Notice, count: usize) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found = wanted.all(&self.datagrams);
            if found.len() >= count {
                return found.into_iter().take(count).map(str::to_string).collect();
            }
            let found = found.len();
            let Some(listener) = self.notify.as_mut() else {
                self.fail(format!(
                    "awaiting {count} of {wanted:?}: the setup has no notify socket"
                ))
                .await
            };
            match listener.next(deadline).await {
                Some(datagram) => self.datagrams.push(datagram),
                None => {
                    self.fail(format!(
                        "awaiting {count} of {wanted:?}: timed out (found {found})"
                    ))
                    .await
                }
            }
        }
    }

    /// Everything the daemon printed and sent until it exited, awaiting
    /// its exit (after a signal the test sent) for at most [`DEADLINE`].
    pub async fn finish(mut self) -> Finished {
        let deadline = Instant::now() + DEADLINE;
        while let Some(line) = self.next_line(deadline).await {
            self.take(line);
        }
        let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(status) => status.expect("wait for the daemon"),
            Err(_) => {
                let _ = self.child.start_kill();
                self.fail(format!("the daemon did not exit within {DEADLINE:?}"))
                    .await
            }
        };
        if let Some(mut listener) = self.notify.take() {
            let rest = listener.rest(deadline).await;
            self.datagrams.extend(rest);
        }
        let stderr = match self.stderr.take() {
            Some(handle) => tokio::time::timeout_at(deadline, handle)
                .await
                .expect("the daemon's stderr closes in time")
                .unwrap_or_default(),
            None => String::new(),
        };
        Finished {
            code: status.code(),
            events: self.events,
            lines: self.lines,
            bad_lines: self.bad_lines,
            datagrams: self.datagrams,
            stderr,
        }
    }

    /// SIGTERM, then everything it printed until it exited.
    pub async fn stop(self) -> Finished {
        self.signal("TERM");
        self.finish().await
    }

    /// SIGTERM, and checks the clean exit.
    pub async fn stop_cleanly(self) -> Finished {
        let finished = self.stop().await;
        assert_eq!(finished.code, Some(0), "stderr: {}", finished.stderr);
        finished
    }

    /// SIGKILL, then everything it printed before it died.
    pub async fn kill9(self) -> Finished {
        self.signal("KILL");
        self.finish().await
    }
}

/// A daemon run that ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Every JSON line of stdout.
    pub events: Vec<Value>,
    /// The text of each of `events` as printed (without its line end).
    pub lines: Vec<String>,
    /// Every other line of stdout.
    pub bad_lines: Vec<String>,
    /// Every datagram on the notify socket, in order (empty without one).
    pub datagrams: Vec<String>,
    /// Standard error.
    pub stderr: String,
}

/// Events as one JSON line each, for failure messages.
pub fn dump(events: &[Value]) -> String {
    events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

mod notify;
mod skip;
pub use notify::{Notice, lifecycle};
#[allow(unused_imports)]
pub use skip::{require, require_command, skip, skip_log, tools_required};
