//! `ecs-jobwatch wait [--timeout DUR] [--json] JOB...`: blocks until every
//! job has an outcome (SUCCESS, FAIL, not found, or PENDING_PAYMENT, which
//! a person must act on), then exits 0 all SUCCESS, 1 any FAIL or not
//! found, 3 any PENDING_PAYMENT and nothing failed, 124 at the timeout,
//! 130/143 at once on SIGINT/SIGTERM.
//!
//! With a daemon running on the same state directory (it holds the
//! exclusive lock of `state.dir/state.lock`, which a shared, non-blocking
//! lock attempt detects), `wait` makes no API call: it adds the jobs the
//! daemon does not track to `watch.dir` the way `add` does, then reads the
//! store read-only every [`FOLLOW_INTERVAL`] until each job's record shows
//! its outcome. Without a daemon, it runs the daemon's scheduler in this
//! process over the real fleet, with the daemon's client, credentials,
//! cadence (and the adaptive history of the store, read-only, when there
//! is one), budget, throttle, authentication gate and not-found grace; the
//! scheduler records into a store in memory ([`Store::open_in_memory`]),
//! so nothing outlives the command. Should the daemon stop for good
//! ([`DAEMON_GONE_AFTER`]) while `wait` follows it, the jobs left are
//! polled that way too.
//!
//! Without `--json` one human line per job goes to stdout as it settles,
//! so a CI log shows progress; with `--json` each job's last event object
//! (`job.transition` or `job.not_found`, as the daemon logs it) goes to
//! stdout at the end, one per line, in the order of the command line.
//! Notes (what was added, API errors of the in-process scheduler) go to
//! stderr.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Config;
use crate::daemon::{self, exit};
use crate::huaweicloud::credentials::Environment;
use crate::job::{JobKey, Labels, Status};
use crate::output::event::{self, Event};
use crate::output::{log, render};
use crate::policy::adaptive;
use crate::scheduler::{self, Command, Observer};
use crate::store::{DurationRow, StateError, Store, Writer};
use crate::watch::WatchList;

use super::add::{self, AddError};
use super::status::{Outcome, outcome_of};
use super::{environment, fail, load_config, parse_job};

/// How often the store is read while a daemon does the polling.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// How long the daemon must be gone before `wait` polls the jobs itself
/// (a restart takes less).
pub const DAEMON_GONE_AFTER: Duration = Duration::from_secs(5);

/// The command line of `wait`.
#[derive(Debug)]
pub struct Options {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--json`.
    pub json: bool,
    /// The jobs as given.
    pub jobs: Vec<String>,
}

/// Waits for the jobs; the exit code of their outcomes.
pub fn main(options: Options) -> ExitCode {
    let env = environment();
    let (_, config) = match load_config(options.config.clone(), &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut keys: Vec<JobKey> = Vec::new();
    for text in &options.jobs {
        match parse_job(&config, text) {
            Ok(key) if keys.contains(&key) => {}
            Ok(key) => keys.push(key),
            Err(message) => return fail(exit::DATA, message),
        }
    }
    // One thread, as `run`: the scheduler was built for it.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(exit::SOFTWARE, format!("cannot start the runtime: {error}")),
    };
    let code = runtime.block_on(async {
        let signals = Signals::install();
        tokio::select! {
            code = wait(&config, &env, keys, &options) => code,
            code = signals.received() => code,
        }
    });
    // The scheduler and its calls are cut off, not awaited.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// SIGINT and SIGTERM, turned into exit codes 130 and 143.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn received(mut self) -> u8 {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                // Not installed: the default action ends the process.
                None => std::future::pending().await,
            }
        }
        let (name, code) = tokio::select! {
            () = next(&mut self.interrupt) => ("SIGINT", 130),
            () = next(&mut self.terminate) => ("SIGTERM", 143),
        };
        eprintln!("ecs-jobwatch: {name} received; stopped waiting");
        code
    }
}

/// Prints the message and returns the code (for the async body).
fn failed(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("ecs-jobwatch: {message}");
    code
}

async fn wait(
    config: &Config,
    env: &BTreeMap<String, String>,
    keys: Vec<JobKey>,
    options: &Options,
) -> u8 {
    let deadline = options.timeout.map(|timeout| Instant::now() + timeout);
    let state_dir = config.state().dir.clone();
    let daemon = match Store::daemon_running(&state_dir) {
        Ok(daemon) => daemon,
        Err(error) => {
            return failed(
                exit::state_exit_code(&error),
                format!(
                    "cannot tell whether a daemon runs on {}: {error}",
                    state_dir.display()
                ),
            );
        }
    };
    let store = match Store::open_read_only(&state_dir) {
        Ok(store) => Some(store),
        Err(error) if daemon => {
            return failed(
                exit::state_exit_code(&error),
                format!(
                    "a daemon runs on {}, but its store cannot be read: {error}",
                    state_dir.display()
                ),
            );
        }
        // Without a daemon the store only lends its history.
        Err(StateError::MissingDir(_)) => None,
        Err(error) => {
            eprintln!(
                "ecs-jobwatch: the state store cannot be read, so no history helps the cadence: {error}"
            );
            None
        }
    };
    let mut waiter = Waiter::new(keys, options.json);
    // What the store knows already settles a job without a call: a finished
    // job, and with a daemon keeping it current, a job waiting for payment.
    if let Some(store) = &store {
        for key in waiter.unsettled() {
            if let Ok(Some(record)) = store.job(&key) {
                match outcome_of(&record, daemon) {
                    Some(outcome) => {
                        let json = store.last_event(&key).ok().flatten();
                        waiter.settle(&key, outcome, json);
                    }
                    None => waiter.progress(&key, record.status.clone(), None),
                }
            }
        }
    }
    let (list, _) = daemon::read_watch_list(config);
    let mut followed = Vec::new();
    let mut polled = Vec::new();
    for key in waiter.unsettled() {
        if !daemon {
            polled.push(key);
        } else if list.contains(&key) {
            followed.push(key);
        } else {
            match add::add(config, &key, &Labels::new()) {
                Ok(added) => {
                    eprintln!("ecs-jobwatch: {added}");
                    followed.push(key);
                }
                Err(AddError::NoWatchDir) => {
                    eprintln!(
                        "ecs-jobwatch: job {key} is not in the daemon's watch list and watch.dir is not set, so wait polls it itself"
                    );
                    polled.push(key);
                }
                Err(error) => return failed(error.exit_code(), error),
            }
        }
    }
    let durations = store
        .as_ref()
        .and_then(|store| store.durations(adaptive::SAMPLE_SIZE).ok())
        .unwrap_or_default();
    let (sender, mut seen) = mpsc::unbounded_channel();
    let mut polling = None;
    if !polled.is_empty() {
        match Polling::start(
            config,
            env,
            &list,
            polled,
            durations.clone(),
            sender.clone(),
        )
        .await
        {
            Ok(started) => polling = Some(started),
            Err((code, message)) => return failed(code, message),
        }
    }
    let mut follower = Follower {
        dir: state_dir,
        store: if daemon { store } else { None },
        keys: followed,
        gone_since: None,
    };
    let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !waiter.all_settled() {
        tokio::select! {
            _ = tick.tick(), if follower.active(&waiter) => {
                let gone = follower.check(&mut waiter);
                if gone.is_empty() {
                    continue;
                }
                eprintln!(
                    "ecs-jobwatch: the daemon on {} stopped; wait polls the jobs left itself",
                    follower.dir.display()
                );
                match &mut polling {
                    Some(polling) => polling.extend(gone, &list),
                    None => match Polling::start(config, env, &list, gone, durations.clone(), sender.clone()).await {
                        Ok(started) => polling = Some(started),
                        Err((code, message)) => return failed(code, message),
                    },
                }
            }
            Some(message) = seen.recv() => waiter.take(message),
            () = sleep_until(deadline) => {
                follower.last_events(&mut waiter);
                return waiter.timed_out(options.timeout.unwrap_or_default());
            }
        }
    }
    waiter.finish()
}

/// Completes at `deadline`, never without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What the in-process scheduler's observer reports.
#[derive(Debug)]
enum Seen {
    /// A job reached an outcome; its event's JSON line.
    Settled(JobKey, Outcome, String),
    /// A job is in a status that is no outcome yet.
    Progress(JobKey, String, String),
}

/// Turns an event of the in-process scheduler into a message; events that
/// are no job's outcome (`api.error`, `job.timeout`, ...) go to stderr as
/// the daemon's text lines.
fn observe(event: &Event, sender: &mpsc::UnboundedSender<Seen>) {
    let timestamp = log::timestamp_now();
    let seen = match (event.name(), event.job(), event.status()) {
        (event::JOB_TRANSITION, Some(job), Some(status)) => {
            let json = render::json(event, &timestamp);
            let key = job.key.clone();
            match status {
                Status::Success => Seen::Settled(key, Outcome::Success, json),
                Status::Fail => Seen::Settled(key, Outcome::Failed, json),
                Status::PendingPayment => Seen::Settled(key, Outcome::PendingPayment, json),
                other => Seen::Progress(key, other.as_str().to_string(), json),
            }
        }
        (event::JOB_NOT_FOUND, Some(job), _) => Seen::Settled(
            job.key.clone(),
            Outcome::NotFound,
            render::json(event, &timestamp),
        ),
        _ => {
            eprintln!("{}", render::text(event, &timestamp));
            return;
        }
    };
    let _ = sender.send(seen);
}

/// The daemon's scheduler, run in this process over the real fleet.
struct Polling {
    handle: scheduler::Handle,
    jobs: Vec<(JobKey, Labels)>,
}

impl Polling {
    /// Connects the account (credentials, project ids; no job API call)
    /// and starts the scheduler over `keys`, with their labels from the
    /// watch list when they are listed.
    async fn start(
        config: &Config,
        env: &BTreeMap<String, String>,
        list: &WatchList,
        keys: Vec<JobKey>,
        durations: Vec<DurationRow>,
        sender: mpsc::UnboundedSender<Seen>,
    ) -> Result<Polling, (u8, String)> {
        let account = daemon::connect(config, &Environment::from_pairs(env.clone()))
            .await
            .map_err(|error| (error.exit_code(), error.to_string()))?;
        let mut settings = daemon::settings(config, &account);
        // Nothing is delivered: the daemon's sinks are the daemon's.
        settings.sinks.clear();
        let store = Store::open_in_memory()
            .map_err(|error| (exit::SOFTWARE, format!("in-memory store: {error}")))?;
        let writer = Writer::start(store, Box::new(|_| {}));
        let jobs: Vec<(JobKey, Labels)> = keys
            .into_iter()
            .map(|key| {
                let labels = list.get(&key).cloned().unwrap_or_default();
                (key, labels)
            })
            .collect();
        let observer: Observer = Arc::new(move |event: &Event| observe(event, &sender));
        let handle = scheduler::spawn(scheduler::Start {
            settings,
            poller: Arc::new(account.fleet.clone()),
            writer,
            records: Vec::new(),
            announced: Vec::new(),
            watch_list: jobs.iter().cloned().collect(),
            durations,
            observer: Some(observer),
        });
        Ok(Polling { handle, jobs })
    }

    /// Polls more jobs, with their labels from the watch list.
    fn extend(&mut self, keys: Vec<JobKey>, list: &WatchList) {
        self.jobs.extend(keys.into_iter().map(|key| {
            let labels = list.get(&key).cloned().unwrap_or_default();
            (key, labels)
        }));
        self.handle
            .send(Command::WatchList(self.jobs.iter().cloned().collect()));
    }
}

/// Follows the store a daemon keeps.
struct Follower {
    dir: PathBuf,
    store: Option<Store>,
    keys: Vec<JobKey>,
    gone_since: Option<Instant>,
}

impl Follower {
    /// Whether a followed job is still unsettled.
    fn active(&self, waiter: &Waiter) -> bool {
        self.keys.iter().any(|key| !waiter.is_settled(key))
    }

    /// Reads the records of the followed jobs; returns the unsettled ones
    /// when the daemon has been gone for [`DAEMON_GONE_AFTER`] (they are
    /// followed no more).
    fn check(&mut self, waiter: &mut Waiter) -> Vec<JobKey> {
        if self.store.is_none() {
            self.store = Store::open_read_only(&self.dir).ok();
        }
        if let Some(store) = &self.store {
            for key in &self.keys {
                if waiter.is_settled(key) {
                    continue;
                }
                match store.job(key) {
                    Ok(Some(record)) => match outcome_of(&record, true) {
                        Some(outcome) => {
                            let json = store.last_event(key).ok().flatten();
                            waiter.settle(key, outcome, json);
                        }
                        None => waiter.progress(key, record.status.clone(), None),
                    },
                    Ok(None) => {}
                    // Opened again at the next tick.
                    Err(_) => {
                        self.store = None;
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        match Store::daemon_running(&self.dir) {
            Ok(false) => {
                let since = *self.gone_since.get_or_insert(now);
                if now.duration_since(since) >= DAEMON_GONE_AFTER {
                    let gone: Vec<JobKey> = std::mem::take(&mut self.keys)
                        .into_iter()
                        .filter(|key| !waiter.is_settled(key))
                        .collect();
                    return gone;
                }
            }
            _ => self.gone_since = None,
        }
        Vec::new()
    }

    /// Reads the last event of every followed job that has not settled,
    /// for `--json` at the timeout.
    fn last_events(&self, waiter: &mut Waiter) {
        let Some(store) = &self.store else {
            return;
        };
        for key in &self.keys {
            if !waiter.is_settled(key)
                && let Ok(Some(json)) = store.last_event(key)
            {
                let status = waiter.status(key);
                waiter.progress(key, status, Some(json));
            }
        }
    }
}

/// The jobs waited for and what is known of each.
struct Waiter {
    order: Vec<JobKey>,
    json: bool,
    settled: HashMap<JobKey, (Outcome, Option<String>)>,
    /// The last status and event of each unsettled job, when known.
    working: HashMap<JobKey, (Option<String>, Option<String>)>,
}

impl Waiter {
    fn new(order: Vec<JobKey>, json: bool) -> Waiter {
        Waiter {
            order,
            json,
            settled: HashMap::new(),
            working: HashMap::new(),
        }
    }

    fn unsettled(&self) -> Vec<JobKey> {
        self.order
            .iter()
            .filter(|key| !self.settled.contains_key(*key))
            .cloned()
            .collect()
    }

    fn is_settled(&self, key: &JobKey) -> bool {
        self.settled.contains_key(key)
    }

    fn all_settled(&self) -> bool {
        self.settled.len() == self.order.len()
    }

    fn status(&self, key: &JobKey) -> Option<String> {
        self.working.get(key).and_then(|(status, _)| status.clone())
    }

    /// Records an outcome (the first one counts) and, without `--json`,
    /// prints its line.
    fn settle(&mut self, key: &JobKey, outcome: Outcome, json: Option<String>) {
        if self.settled.contains_key(key) || !self.order.contains(key) {
            return;
        }
        if !self.json {
            println!("{}", human_line(key, outcome, json.as_deref()));
        }
        self.working.remove(key);
        self.settled.insert(key.clone(), (outcome, json));
    }

    /// Records a status that is no outcome; an event, when given, replaces
    /// the one known.
    fn progress(&mut self, key: &JobKey, status: Option<String>, json: Option<String>) {
        if self.settled.contains_key(key) {
            return;
        }
        let entry = self.working.entry(key.clone()).or_default();
        if status.is_some() {
            entry.0 = status;
        }
        if json.is_some() {
            entry.1 = json;
        }
    }

    fn take(&mut self, seen: Seen) {
        match seen {
            Seen::Settled(key, outcome, json) => self.settle(&key, outcome, Some(json)),
            Seen::Progress(key, status, json) => self.progress(&key, Some(status), Some(json)),
        }
    }

    /// With `--json`, each job's last known event, in the order given.
    fn print_events(&self) {
        if !self.json {
            return;
        }
        for key in &self.order {
            let json = match (self.settled.get(key), self.working.get(key)) {
                (Some((_, json)), _) => json.as_deref(),
                (None, Some((_, json))) => json.as_deref(),
                (None, None) => None,
            };
            match json {
                Some(json) => println!("{json}"),
                None if self.settled.contains_key(key) => {
                    eprintln!("ecs-jobwatch: job {key}: the store holds no event of its outcome");
                }
                None => {}
            }
        }
    }

    /// Every job has an outcome: print and exit.
    fn finish(self) -> u8 {
        self.print_events();
        let with = |wanted: &[Outcome]| -> Vec<String> {
            self.order
                .iter()
                .filter_map(|key| {
                    let (outcome, _) = self.settled.get(key)?;
                    wanted
                        .contains(outcome)
                        .then(|| format!("{key} ({})", outcome.word()))
                })
                .collect()
        };
        let bad = with(&[Outcome::Failed, Outcome::NotFound]);
        if !bad.is_empty() {
            return failed(exit::FAILED, format!("failed: {}", bad.join(", ")));
        }
        let pending = with(&[Outcome::PendingPayment]);
        if !pending.is_empty() {
            return failed(
                exit::PENDING_PAYMENT,
                format!(
                    "waiting for payment, a person must pay: {}",
                    pending.join(", ")
                ),
            );
        }
        exit::OK
    }

    /// The timeout passed: print what is known, name the jobs still working.
    fn timed_out(self, timeout: Duration) -> u8 {
        self.print_events();
        let working: Vec<String> = self
            .unsettled()
            .iter()
            .map(|key| match self.status(key) {
                Some(status) => format!("{key} ({status})"),
                None => format!("{key} (not seen yet)"),
            })
            .collect();
        failed(
            exit::TIMEOUT,
            format!(
                "timed out after {}; still working: {}",
                humantime::format_duration(timeout),
                working.join(", ")
            ),
        )
    }
}

/// One human line for a settled job, from its event when there is one:
/// `job-a: FAIL (createServer; Ecs.0001: quota exceeded; labels run=42)`.
fn human_line(key: &JobKey, outcome: Outcome, json: Option<&str>) -> String {
    let event: Value = json
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let text = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_string);
    let mut details = Vec::new();
    if let Some(job_type) = text("job_type") {
        details.push(job_type);
    }
    match outcome {
        Outcome::Success => {
            let ids: Vec<&str> = event
                .get("resource_ids")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !ids.is_empty() {
                details.push(format!("resources {}", ids.join(", ")));
            }
        }
        Outcome::Failed => {
            let reason = match (text("error_code"), text("fail_reason")) {
                (Some(code), Some(reason)) => Some(format!("{code}: {reason}")),
                (code, reason) => code.or(reason),
            };
            details.extend(reason);
        }
        Outcome::PendingPayment => details.push("a person must pay the order".into()),
        Outcome::NotFound => details.push(match text("last_status") {
            Some(status) => format!("vanished while {status}"),
            None => "never found".into(),
        }),
    }
    if let Some(labels) = event.get("labels").and_then(Value::as_object)
        && !labels.is_empty()
    {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        details.push(format!("labels {}", pairs.join(" ")));
    }
    let mut line = format!("{key}: {}", outcome.word());
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join("; ")));
    }
    line
}

#[cfg(test)]
mod tests;
