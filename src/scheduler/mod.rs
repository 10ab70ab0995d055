//! The scheduler: one task that owns the tracked jobs and the timer queue,
//! starts polls within the budget, and turns their answers into events and
//! records.
//!
//! Jobs live in a map; their next due times in one binary heap (a stale
//! heap entry is recognised by its sequence number and skipped), so 100,000
//! jobs cost one small struct each and no task or timer of their own. The
//! scheduler pops the job that is due earliest, waits for the global
//! throttle, the authentication gate and the request budget, and starts
//! the call; at most `max_in_flight` calls run at once. Answers come back
//! through a `JoinSet`. What a call found is announced first and recorded
//! after (see [`crate::store`]), so a crash in between repeats an event
//! with the same `event_id` instead of losing it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::huaweicloud::client::Client;
use crate::huaweicloud::error::{ApiError, ErrorKind};
use crate::job::id::JobId;
use crate::output::event::{self, Event, TransitionContext};
use crate::output::webhook::{self, SinkFilter};
use crate::policy::adaptive::{self, History};
use crate::policy::budget::{AuthGate, Budget, ErrorLines, Throttle};
use crate::policy::cadence::{self, Cadence, Situation};
use crate::services::ecs::{Job, JobStatus};
use crate::store::{JobRecord, Write, Writer, now_ms};
use crate::telemetry;
use crate::watch::{Labels, WatchList};

/// How often counters of polls that changed nothing are written.
pub const POLL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the scheduler wakes even with nothing due (housekeeping,
/// watchdog progress, `api.error` lines that waited).
pub const TICK: Duration = Duration::from_secs(1);

/// Something that can read one job: the API client, or a fake in tests.
pub trait Poller: Send + Sync + 'static {
    /// Reads the job.
    fn poll(&self, job_id: JobId) -> Pin<Box<dyn Future<Output = Result<Job, ApiError>> + Send>>;
    /// The generation of the credentials in use (changes when they do).
    fn credentials_generation(&self) -> u64;
}

impl Poller for Client {
    fn poll(&self, job_id: JobId) -> Pin<Box<dyn Future<Output = Result<Job, ApiError>> + Send>> {
        let client = self.clone();
        Box::pin(async move { client.get_job(job_id.as_str()).await })
    }

    fn credentials_generation(&self) -> u64 {
        self.credentials().generation()
    }
}

/// The scheduler's settings, from the configuration; replaced on reload.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The per-job cadence.
    pub cadence: Cadence,
    /// The request budget.
    pub requests_per_second: f64,
    /// Burst of the budget.
    pub burst: u32,
    /// At most this many calls at once.
    pub max_in_flight: usize,
    /// The project (for events).
    pub project_id: String,
    /// Whether INIT/RUNNING polls are placed by learned durations.
    pub adaptive: bool,
    /// The webhook sinks and what each takes.
    pub webhooks: Vec<SinkFilter>,
}

/// Orders to the scheduler.
pub enum Command {
    /// The watch list changed (start, reload, file change).
    WatchList(WatchList),
    /// New settings and, when the endpoint or credentials changed, a new
    /// poller.
    Reconfigure {
        /// The settings.
        settings: Settings,
        /// The new poller, if any.
        poller: Option<Arc<dyn Poller>>,
    },
    /// Forget finished jobs that finished before this Unix millisecond
    /// (`state.retention`).
    Forget(i64),
    /// Answers once every command sent before it has been applied.
    Sync(oneshot::Sender<()>),
    /// Stop: finish calls in flight, record, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// Counters the outside reads (status line, watchdog, tests).
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs being polled.
    pub tracked: AtomicU64,
    /// Of which in PENDING_PAYMENT.
    pub pending_payment: AtomicU64,
    /// Calls made since start.
    pub polls: AtomicU64,
    /// Loop iterations; moves while the scheduler makes progress.
    pub heartbeat: AtomicU64,
    /// The last `api.error` type and when (Unix ms).
    pub last_error: Mutex<Option<(i64, &'static str)>>,
    /// When the API last answered with anything but an authentication
    /// refusal (Unix ms; 0: never).
    pub last_answer_ms: AtomicI64,
    /// When the API last refused the credentials (Unix ms; 0: never).
    pub last_auth_failure_ms: AtomicI64,
    /// When the scheduler started (Unix ms).
    pub started_ms: AtomicI64,
}

/// A callback that sees every event the scheduler announces (the demo and
/// in-process tests use it).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// One tracked job.
#[derive(Debug)]
struct Tracked {
    labels: Arc<Labels>,
    status: Option<JobStatus>,
    job_type: Option<Arc<str>>,
    tracked_since: Instant,
    status_since: Instant,
    /// When the job was first seen doing work (any status but
    /// PENDING_PAYMENT): the origin of the adaptive cadence and of the
    /// recorded duration.
    active_since: Option<(Instant, i64)>,
    streak: u32,
    failures: u32,
    in_flight: bool,
    due_seq: u64,
    subjobs_announced: Vec<Box<str>>,
    record: Counters,
}

/// What is recorded of a job besides its status.
#[derive(Clone, Debug)]
struct Counters {
    tracked_since_ms: i64,
    first_seen_ms: Option<i64>,
    last_change_ms: Option<i64>,
    last_poll_ms: Option<i64>,
    next_poll_ms: Option<i64>,
    polls: u64,
    transitions: u32,
    timeout_announced: bool,
}

/// Everything the scheduler needs at start.
pub struct Start {
    /// Settings.
    pub settings: Settings,
    /// The poller.
    pub poller: Arc<dyn Poller>,
    /// The state writer.
    pub writer: Writer,
    /// Jobs recorded by earlier runs.
    pub records: Vec<JobRecord>,
    /// Sub-job event ids already announced, per unfinished job.
    pub announced: Vec<(JobId, String)>,
    /// The watch list at start.
    pub watch_list: WatchList,
    /// Durations of finished jobs by `job_type`, newest last (from the store).
    pub durations: Vec<(String, i64)>,
    /// Sees every event.
    pub observer: Option<Observer>,
}

/// The handle to a running scheduler.
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    /// Counters.
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<Option<Writer>>,
}

impl Handle {
    /// Sends a command; false when the scheduler is gone.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// Stops the scheduler: calls in flight finish and are recorded.
    /// Returns the writer so the caller can wait for the last writes.
    pub async fn shutdown(self) -> Option<Writer> {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
        self.task.await.ok().flatten()
    }
}

/// Starts the scheduler task.
pub fn spawn(start: Start) -> Handle {
    let (commands, receiver) = mpsc::unbounded_channel();
    let stats = Arc::new(Stats::default());
    stats.started_ms.store(now_ms(), Ordering::Relaxed);
    let scheduler = Scheduler::new(start, stats.clone());
    let task = tokio::spawn(scheduler.run(receiver));
    Handle {
        commands,
        stats,
        task,
    }
}

struct Scheduler {
    settings: Settings,
    poller: Arc<dyn Poller>,
    writer: Writer,
    store_healthy: Arc<AtomicBool>,
    budget: Budget,
    throttle: Throttle,
    auth: AuthGate,
    error_lines: ErrorLines,
    jobs: HashMap<JobId, Tracked>,
    /// Unfinished jobs known from the store but not in the watch list.
    dormant: HashMap<JobId, Tracked>,
    /// Jobs that are done: never polled or announced again.
    finished: HashSet<JobId>,
    queue: BinaryHeap<Reverse<(Instant, u64, JobId)>>,
    next_seq: u64,
    in_flight: JoinSet<(JobId, Result<Job, ApiError>)>,
    budget_ready_at: Option<Instant>,
    budget_blocked_since: Option<Instant>,
    writes: Vec<Write>,
    poll_writes: HashMap<JobId, (u64, i64, Option<i64>)>,
    last_poll_flush: Instant,
    rng: SmallRng,
    history: History,
    stats: Arc<Stats>,
    observer: Option<Observer>,
}

impl Scheduler {
    fn new(start: Start, stats: Arc<Stats>) -> Scheduler {
        let now = Instant::now();
        let wall = now_ms();
        let budget = Budget::new(start.settings.requests_per_second, start.settings.burst);
        let store_healthy = start.writer.health_flag();
        let mut scheduler = Scheduler {
            settings: start.settings,
            poller: start.poller,
            writer: start.writer,
            store_healthy,
            budget,
            throttle: Throttle::default(),
            auth: AuthGate::Probing,
            error_lines: ErrorLines::default(),
            jobs: HashMap::new(),
            dormant: HashMap::new(),
            finished: HashSet::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            in_flight: JoinSet::new(),
            budget_ready_at: None,
            budget_blocked_since: None,
            writes: Vec::new(),
            poll_writes: HashMap::new(),
            last_poll_flush: now,
            rng: SmallRng::from_os_rng(),
            history: History::from_rows(start.durations),
            stats,
            observer: start.observer,
        };
        let mut announced: HashMap<JobId, Vec<Box<str>>> = HashMap::new();
        for (job_id, event_id) in start.announced {
            announced
                .entry(job_id)
                .or_default()
                .push(event_id.into_boxed_str());
        }
        let mut pool = HashMap::new();
        for record in start.records {
            if record.finished {
                scheduler.finished.insert(record.job_id);
                continue;
            }
            let labels = share_labels(&mut pool, &record.labels);
            let mut tracked = Tracked::from_record(&record, labels, now, wall);
            tracked.subjobs_announced = announced.remove(&record.job_id).unwrap_or_default();
            scheduler.dormant.insert(record.job_id, tracked);
        }
        scheduler.apply_watch_list(start.watch_list, now);
        scheduler.flush();
        scheduler
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> Option<Writer> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.stats.heartbeat.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let wake = self.next_dispatch(now);
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::WatchList(list)) => {
                        self.apply_watch_list(list, Instant::now());
                    }
                    Some(Command::Reconfigure { settings, poller }) => {
                        self.reconfigure(settings, poller);
                    }
                    Some(Command::Forget(cutoff_ms)) => {
                        self.writes.push(Write::Forget { cutoff_ms });
                    }
                    Some(Command::Sync(done)) => {
                        let _ = done.send(());
                    }
                    Some(Command::Shutdown(done)) => {
                        self.drain().await;
                        let _ = done.send(());
                        return Some(self.writer);
                    }
                    None => {
                        self.drain().await;
                        return Some(self.writer);
                    }
                },
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok((job_id, result)) = joined {
                        self.handle(job_id, result, Instant::now());
                    }
                }
                () = sleep_until(wake), if wake.is_some() => {
                    self.dispatch_due(Instant::now());
                }
                _ = tick.tick() => {
                    self.housekeeping(Instant::now());
                }
            }
            self.flush();
        }
    }

    /// When the next call may start, or `None` when none may (nothing due,
    /// all slots busy, authentication paused).
    fn next_dispatch(&mut self, now: Instant) -> Option<Instant> {
        let allowed = self.auth.allowed_in_flight(
            now,
            self.poller.credentials_generation(),
            self.settings.max_in_flight,
        );
        if self.in_flight.len() >= allowed {
            return None;
        }
        let due = self.peek_due()?;
        let mut at = due.max(
            self.throttle
                .next_allowed(now, self.budget.requests_per_second()),
        );
        if let Some(ready) = self.budget_ready_at {
            at = at.max(ready);
        }
        Some(at)
    }

    /// The due time of the earliest valid queue entry, dropping stale ones.
    fn peek_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((due, seq, job_id))) = self.queue.peek() {
            match self.jobs.get(job_id) {
                Some(tracked) if tracked.due_seq == *seq && !tracked.in_flight => {
                    return Some(*due);
                }
                _ => {
                    self.queue.pop();
                }
            }
        }
        None
    }

    /// Starts every call that is due and allowed at `now`, not only the
    /// first: a timer wakes the loop at most once a millisecond, so one
    /// call per wake would cap the rate near 1,000 calls per second and
    /// cost a thread wake-up per call.
    fn dispatch_due(&mut self, now: Instant) {
        for _ in 0..self.settings.max_in_flight.max(1) {
            if self.next_dispatch(now).is_none_or(|at| at > now) {
                return;
            }
            self.dispatch(now);
        }
    }

    fn dispatch(&mut self, now: Instant) {
        if self.peek_due().is_none_or(|due| due > now) {
            return;
        }
        match self.budget.try_take() {
            Ok(()) => {
                self.budget_ready_at = None;
                if let Some(since) = self.budget_blocked_since.take() {
                    let waited = now.saturating_duration_since(since).as_secs_f64();
                    ::metrics::histogram!(telemetry::BUDGET_WAIT).record(waited);
                }
            }
            Err(wait) => {
                self.budget_ready_at = Some(now + wait);
                self.budget_blocked_since.get_or_insert(now);
                return;
            }
        }
        let Some(Reverse((due, _, job_id))) = self.queue.pop() else {
            return;
        };
        let Some(tracked) = self.jobs.get_mut(&job_id) else {
            return;
        };
        tracked.in_flight = true;
        self.throttle.on_dispatch(now);
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let lag = now.saturating_duration_since(due).as_secs_f64();
        ::metrics::histogram!(telemetry::SCHEDULER_LAG).record(lag);
        let call = self.poller.poll(job_id.clone());
        self.in_flight.spawn(async move {
            let started = Instant::now();
            let result = call.await;
            let seconds = started.elapsed().as_secs_f64();
            ::metrics::histogram!(telemetry::API_REQUEST_DURATION).record(seconds);
            (job_id, result)
        });
    }

    fn schedule(&mut self, job_id: &JobId, due: Instant) {
        let Some(tracked) = self.jobs.get_mut(job_id) else {
            return;
        };
        self.next_seq += 1;
        tracked.due_seq = self.next_seq;
        let gap_ms = due.saturating_duration_since(Instant::now()).as_millis() as i64;
        tracked.record.next_poll_ms = Some(now_ms() + gap_ms);
        self.queue
            .push(Reverse((due, self.next_seq, job_id.clone())));
    }

    fn random(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Applies a new watch list: new jobs start (spread over the initial
    /// interval), jobs that left stop, the others are not disturbed.
    fn apply_watch_list(&mut self, list: WatchList, now: Instant) {
        let wall = now_ms();
        let leaving: Vec<JobId> = self
            .jobs
            .keys()
            .filter(|id| !list.contains(id))
            .cloned()
            .collect();
        for job_id in leaving {
            if let Some(mut tracked) = self.jobs.remove(&job_id) {
                tracked.in_flight = false;
                self.dormant.insert(job_id, tracked);
            }
        }
        let mut pool = HashMap::new();
        for (job_id, labels) in list.iter() {
            if self.finished.contains(job_id) {
                continue;
            }
            if let Some(tracked) = self.jobs.get_mut(job_id) {
                if *tracked.labels != *labels {
                    tracked.labels = share_labels(&mut pool, labels);
                    let record = tracked.to_record(job_id);
                    self.writes.push(Write::Job(record));
                }
                continue;
            }
            // A job resumed from the store is written again only when its
            // labels changed; a new one is written at once so that
            // `status` shows it.
            let (tracked, write) = match self.dormant.remove(job_id) {
                Some(mut tracked) => {
                    let relabelled = *tracked.labels != *labels;
                    if relabelled {
                        tracked.labels = share_labels(&mut pool, labels);
                    }
                    (tracked, relabelled)
                }
                None => (
                    Tracked::new(share_labels(&mut pool, labels), now, wall),
                    true,
                ),
            };
            if write {
                self.writes.push(Write::Job(tracked.to_record(job_id)));
            }
            self.jobs.insert(job_id.clone(), tracked);
            let random = self.random();
            let delay = cadence::first_delay(&self.settings.cadence, random);
            self.schedule(job_id, now + delay);
        }
        // The jobs moved out of `dormant` leave its table as large as it
        // ever was (at start: every job of the store).
        if self.dormant.capacity() > 2 * self.dormant.len() + 1024 {
            self.dormant.shrink_to_fit();
        }
        self.update_counts();
    }

    fn reconfigure(&mut self, settings: Settings, poller: Option<Arc<dyn Poller>>) {
        if settings.requests_per_second != self.settings.requests_per_second
            || settings.burst != self.settings.burst
        {
            self.budget = Budget::new(settings.requests_per_second, settings.burst);
            self.budget_ready_at = None;
        }
        if let Some(poller) = poller {
            self.poller = poller;
        }
        self.auth.on_reload();
        self.settings = settings;
    }

    fn housekeeping(&mut self, now: Instant) {
        self.count_pending();
        for report in self.error_lines.due(now) {
            self.announce(event::api_error(&report));
        }
        if now.saturating_duration_since(self.last_poll_flush) >= POLL_FLUSH_INTERVAL {
            self.flush_polls(now);
        }
    }

    /// Handles the answer to one call.
    fn handle(&mut self, job_id: JobId, result: Result<Job, ApiError>, now: Instant) {
        let Some(tracked) = self.jobs.get_mut(&job_id) else {
            // The job left the watch list while the call was in flight.
            return;
        };
        if !tracked.in_flight {
            return;
        }
        tracked.in_flight = false;
        self.count_outcome(&result);
        match result {
            Ok(job) => {
                self.auth.on_answer();
                self.throttle.on_answer();
                self.observe(job_id, job, now);
            }
            Err(error) => self.failed(job_id, error, now),
        }
    }

    /// Metrics and readiness timestamps of one answer.
    fn count_outcome(&self, result: &Result<Job, ApiError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.kind.error_type(),
        };
        ::metrics::counter!(telemetry::POLLS, "outcome" => outcome).increment(1);
        let wall = now_ms();
        match result {
            Err(error) if matches!(error.kind, ErrorKind::Auth | ErrorKind::Forbidden) => {
                self.stats
                    .last_auth_failure_ms
                    .store(wall, Ordering::Relaxed);
            }
            // No answer arrived (timeout, connection): it says nothing.
            Err(error) if error.http_status.is_none() && error.kind != ErrorKind::Decode => {}
            _ => self.stats.last_answer_ms.store(wall, Ordering::Relaxed),
        }
        if let Err(error) = result
            && error.kind != ErrorKind::NotFound
        {
            let error_type = error.kind.error_type();
            ::metrics::counter!(telemetry::API_ERRORS, "error_type" => error_type).increment(1);
            if let Ok(mut last) = self.stats.last_error.lock() {
                *last = Some((wall, error_type));
            }
        }
    }

    fn count_poll(&mut self, job_id: &JobId) {
        if let Some(tracked) = self.jobs.get_mut(job_id) {
            tracked.record.polls += 1;
            tracked.record.last_poll_ms = Some(now_ms());
        }
    }

    fn failed(&mut self, job_id: JobId, error: ApiError, now: Instant) {
        // A 404 is an answer about the job, not a failure of the API.
        if error.kind != ErrorKind::NotFound
            && let Some(report) = self.error_lines.record(now, &error)
        {
            self.announce(event::api_error(&report));
        }
        match error.kind {
            ErrorKind::NotFound => {
                self.auth.on_answer();
                self.throttle.on_answer();
                self.count_poll(&job_id);
                self.not_found(job_id, now);
            }
            ErrorKind::Throttled { retry_after } => {
                self.throttle.on_throttled(now, retry_after);
                // Keep its place in the queue: it was due now.
                self.schedule(&job_id, now);
            }
            ErrorKind::Auth | ErrorKind::Forbidden => {
                self.auth
                    .on_refused(now, self.poller.credentials_generation());
                self.schedule(&job_id, now);
            }
            ErrorKind::Server
            | ErrorKind::Client
            | ErrorKind::Timeout
            | ErrorKind::Connect
            | ErrorKind::Decode => {
                self.throttle.on_answer();
                self.count_poll(&job_id);
                let random = self.random();
                let random_gap = self.random();
                let Some(tracked) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                tracked.failures = tracked.failures.saturating_add(1);
                let history = self.settings.adaptive.then_some(&self.history);
                let gap = tracked.cadence_gap(&self.settings.cadence, history, now, random_gap);
                let delay = cadence::retry_delay(tracked.failures, gap, random);
                self.schedule(&job_id, now + delay);
            }
        }
    }

    fn not_found(&mut self, job_id: JobId, now: Instant) {
        let cadence = self.settings.cadence;
        let random = self.random();
        let Some(tracked) = self.jobs.get_mut(&job_id) else {
            return;
        };
        tracked.failures = 0;
        let seen_before = tracked.status.is_some();
        let expired = cadence::not_found_expired(
            &cadence,
            now.saturating_duration_since(tracked.tracked_since),
        );
        if !seen_before && !expired {
            tracked.streak = tracked.streak.saturating_add(1);
            let gap = cadence::next_gap(
                &cadence,
                Situation::NotYetVisible,
                tracked.streak,
                Duration::ZERO,
                random,
            );
            self.schedule(&job_id, now + gap);
            return;
        }
        if !self.store_healthy.load(Ordering::SeqCst) {
            self.hold_back(&job_id, now);
            return;
        }
        let last_status = tracked.status.as_ref().map(|s| s.as_str().to_string());
        let event = event::job_not_found(&job_id, last_status.as_deref(), &tracked.labels);
        self.announce(event);
        self.finish(job_id);
    }

    /// Announcements wait while the store cannot record them: poll again
    /// later and announce then.
    fn hold_back(&mut self, job_id: &JobId, now: Instant) {
        let gap = self
            .settings
            .cadence
            .initial_interval
            .max(Duration::from_secs(1));
        self.schedule(job_id, now + gap);
    }

    /// Compares an answer with what is recorded, announces, records, and
    /// plans the next poll.
    fn observe(&mut self, job_id: JobId, job: Job, now: Instant) {
        let Some(status) = job.status.clone() else {
            return;
        };
        let wall = now_ms();
        let healthy = self.store_healthy.load(Ordering::SeqCst);
        let cadence = self.settings.cadence;
        let project_id = self.settings.project_id.clone();
        let random = self.random();
        let Some(tracked) = self.jobs.get_mut(&job_id) else {
            return;
        };
        tracked.failures = 0;
        tracked.record.polls += 1;
        tracked.record.last_poll_ms = Some(wall);

        // A job that ends gets its sub-job failures announced first (they
        // happened before); otherwise its status comes first.
        let mut announcements = Vec::new();
        let mut new_subjobs = Vec::new();
        for (index, sub_job) in job.sub_jobs.iter().enumerate() {
            if sub_job.status != Some(JobStatus::Fail) {
                continue;
            }
            let key = event::sub_job_key(sub_job, index);
            let event = event::job_subjob_failed(&job_id, sub_job, &key, &tracked.labels);
            let Some(event_id) = event.event_id() else {
                continue;
            };
            if tracked.subjobs_announced.iter().any(|id| **id == *event_id) {
                continue;
            }
            new_subjobs.push(event_id.to_string());
            announcements.push(event);
        }
        let changed = tracked.status.as_ref() != Some(&status);
        if changed {
            let previous = tracked.status.as_ref().map(|s| s.as_str().to_string());
            let context = TransitionContext {
                job_id: &job_id,
                project_id: &project_id,
                previous: previous.as_deref(),
                sequence: tracked.record.transitions,
                labels: &tracked.labels,
            };
            let transition = event::job_transition(context, &status, &job);
            if status.is_final() {
                announcements.push(transition);
            } else {
                announcements.insert(0, transition);
            }
        }
        let elapsed = if changed {
            Duration::ZERO
        } else {
            now.saturating_duration_since(tracked.status_since)
        };
        let timeout =
            !tracked.record.timeout_announced && cadence::timed_out(&cadence, &status, elapsed);
        if timeout {
            announcements.push(event::job_timeout(
                &job_id,
                &status,
                elapsed.as_secs(),
                &tracked.labels,
            ));
        }

        if !announcements.is_empty() && !healthy {
            // Nothing is announced that cannot be recorded; the same facts
            // will be seen again at the next poll.
            self.hold_back(&job_id, now);
            return;
        }

        if changed {
            tracked.status = Some(status.clone());
            tracked.status_since = now;
            tracked.streak = 0;
            tracked.record.transitions = tracked.record.transitions.saturating_add(1);
            tracked.record.last_change_ms = Some(wall);
            if tracked.record.first_seen_ms.is_none() {
                tracked.record.first_seen_ms = Some(wall);
            }
            if let Some(job_type) = &job.job_type
                && tracked.job_type.as_deref() != Some(job_type.as_str())
            {
                tracked.job_type = Some(Arc::from(job_type.as_str()));
            }
        }
        if timeout {
            tracked.record.timeout_announced = true;
        }
        for event_id in &new_subjobs {
            tracked
                .subjobs_announced
                .push(event_id.clone().into_boxed_str());
        }
        tracked.streak = tracked.streak.saturating_add(1);
        let record_needed = changed || timeout || !new_subjobs.is_empty();
        if tracked.active_since.is_none() && status != JobStatus::PendingPayment {
            tracked.active_since = Some((now, wall));
        }
        // How long the job worked, for the adaptive cadence: from its first
        // sighting at work to its end, so time spent waiting for payment
        // does not count.
        let duration = if status.is_final() {
            tracked
                .active_since
                .map(|(_, since)| (tracked.job_type.clone(), wall - since))
        } else {
            None
        };
        let history = self.settings.adaptive.then_some(&self.history);
        let gap = tracked.cadence_gap(&cadence, history, now, random);

        for event in announcements {
            self.announce(event);
        }
        for event_id in new_subjobs {
            self.writes.push(Write::Announced {
                job_id: job_id.clone(),
                event_id,
                event: event::JOB_SUBJOB_FAILED,
                at: wall,
            });
        }
        if status.is_final() {
            if let Some((Some(job_type), duration_ms)) = duration {
                let worked = Duration::from_millis(duration_ms.max(0) as u64);
                self.history.record(&job_type, worked);
                self.writes.push(Write::Duration {
                    job_type: job_type.to_string(),
                    duration_ms,
                    finished_at: wall,
                });
            }
            self.finish(job_id);
            return;
        }
        self.schedule(&job_id, now + gap);
        if record_needed {
            if let Some(tracked) = self.jobs.get(&job_id) {
                self.writes.push(Write::Job(tracked.to_record(&job_id)));
            }
            self.poll_writes.remove(&job_id);
        } else if let Some(tracked) = self.jobs.get(&job_id) {
            self.poll_writes.insert(
                job_id,
                (tracked.record.polls, wall, tracked.record.next_poll_ms),
            );
        }
        self.update_counts();
    }

    /// The job is done: record it as finished and stop tracking it.
    fn finish(&mut self, job_id: JobId) {
        let wall = now_ms();
        if let Some(tracked) = self.jobs.remove(&job_id) {
            let mut record = tracked.to_record(&job_id);
            record.finished = true;
            record.finished_at = Some(wall);
            record.next_poll = None;
            self.writes.push(Write::Job(record));
        }
        self.poll_writes.remove(&job_id);
        self.finished.insert(job_id);
        self.update_counts();
    }

    fn announce(&mut self, event: Event) {
        let timestamp = event::timestamp_now();
        event.emit_at(&timestamp);
        // Webhook deliveries are queued in the batch that records the fact.
        let queued = webhook::outbox_writes(&self.settings.webhooks, &event, &timestamp);
        self.writes.extend(queued);
        ::metrics::counter!(telemetry::EVENTS, "event" => event.name).increment(1);
        if event.name == event::JOB_TRANSITION {
            let status = event
                .fields
                .get("status")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let label = telemetry::status_label(status);
            ::metrics::counter!(telemetry::TRANSITIONS, "status" => label).increment(1);
        }
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }

    fn flush(&mut self) {
        if !self.writes.is_empty() {
            self.writer.send(std::mem::take(&mut self.writes));
        }
    }

    fn flush_polls(&mut self, now: Instant) {
        self.last_poll_flush = now;
        if self.poll_writes.is_empty() {
            return;
        }
        for (job_id, (polls, last_poll, next_poll)) in self.poll_writes.drain() {
            self.writes.push(Write::Polled {
                job_id,
                polls,
                last_poll,
                next_poll,
            });
        }
    }

    /// Cheap counters, updated whenever the set changes.
    fn update_counts(&self) {
        self.stats
            .tracked
            .store(self.jobs.len() as u64, Ordering::Relaxed);
    }

    /// Counting by status walks every job, so it is done once per tick
    /// rather than per poll.
    fn count_pending(&self) {
        const LABELS: [&str; 5] = ["UNSEEN", "INIT", "RUNNING", "PENDING_PAYMENT", "OTHER"];
        let mut counts = [0u64; 5];
        for tracked in self.jobs.values() {
            let index = match &tracked.status {
                None => 0,
                Some(JobStatus::Init) => 1,
                Some(JobStatus::Running) => 2,
                Some(JobStatus::PendingPayment) => 3,
                Some(_) => 4,
            };
            counts[index] += 1;
        }
        self.stats
            .pending_payment
            .store(counts[3], Ordering::Relaxed);
        for (label, count) in LABELS.iter().zip(counts) {
            ::metrics::gauge!(telemetry::JOBS_TRACKED, "status" => *label).set(count as f64);
        }
    }

    /// Lets calls in flight finish and handles their answers.
    async fn drain(&mut self) {
        while let Some(joined) = self.in_flight.join_next().await {
            if let Ok((job_id, result)) = joined {
                self.handle(job_id, result, Instant::now());
            }
        }
        self.flush_polls(Instant::now());
        self.flush();
    }
}

impl Tracked {
    fn new(labels: Arc<Labels>, now: Instant, wall: i64) -> Tracked {
        Tracked {
            labels,
            status: None,
            job_type: None,
            tracked_since: now,
            status_since: now,
            active_since: None,
            streak: 0,
            failures: 0,
            in_flight: false,
            due_seq: 0,
            subjobs_announced: Vec::new(),
            record: Counters {
                tracked_since_ms: wall,
                first_seen_ms: None,
                last_change_ms: None,
                last_poll_ms: None,
                next_poll_ms: None,
                polls: 0,
                transitions: 0,
                timeout_announced: false,
            },
        }
    }

    /// Rebuilds a job from its record: monotonic instants are placed as far
    /// in the past as the wall clock says, never in the future.
    fn from_record(record: &JobRecord, labels: Arc<Labels>, now: Instant, wall: i64) -> Tracked {
        let ago = |ms: Option<i64>| {
            let elapsed = ms.map_or(0, |ms| (wall - ms).max(0)) as u64;
            now.checked_sub(Duration::from_millis(elapsed))
                .unwrap_or(now)
        };
        Tracked {
            labels,
            status: record.status.as_deref().map(JobStatus::parse),
            job_type: record.job_type.as_deref().map(Arc::from),
            tracked_since: ago(Some(record.tracked_since)),
            status_since: ago(record.last_change),
            // Not recorded: a job that was working is taken to have worked
            // since its first sighting.
            active_since: match record.status.as_deref() {
                Some("PENDING_PAYMENT") | None => None,
                Some(_) => record.first_seen.map(|ms| (ago(Some(ms)), ms)),
            },
            streak: 0,
            failures: 0,
            in_flight: false,
            due_seq: 0,
            subjobs_announced: Vec::new(),
            record: Counters {
                tracked_since_ms: record.tracked_since,
                first_seen_ms: record.first_seen,
                last_change_ms: record.last_change,
                last_poll_ms: record.last_poll,
                next_poll_ms: record.next_poll,
                polls: record.polls,
                transitions: record.transitions,
                timeout_announced: record.timeout_announced,
            },
        }
    }

    fn to_record(&self, job_id: &JobId) -> JobRecord {
        JobRecord {
            job_id: job_id.clone(),
            labels: (*self.labels).clone(),
            status: self.status.as_ref().map(|s| s.as_str().to_string()),
            job_type: self.job_type.as_deref().map(str::to_string),
            tracked_since: self.record.tracked_since_ms,
            first_seen: self.record.first_seen_ms,
            last_change: self.record.last_change_ms,
            last_poll: self.record.last_poll_ms,
            next_poll: self.record.next_poll_ms,
            polls: self.record.polls,
            transitions: self.record.transitions,
            finished: false,
            finished_at: None,
            timeout_announced: self.record.timeout_announced,
        }
    }

    /// The gap before the next poll: the adaptive placement when
    /// `history` is given and knows this job's type, else the plain
    /// cadence. Only working jobs (INIT, RUNNING, unknown statuses) not yet
    /// past their deadline are placed adaptively.
    fn cadence_gap(
        &self,
        cadence: &Cadence,
        history: Option<&History>,
        now: Instant,
        random: f64,
    ) -> Duration {
        let elapsed = now.saturating_duration_since(self.status_since);
        let situation = match &self.status {
            Some(status) => Situation::Status(status),
            None => Situation::NotYetVisible,
        };
        if let (Some(history), Some(status), Some((active, _))) =
            (history, &self.status, self.active_since)
            && !matches!(status, JobStatus::PendingPayment)
            && !status.is_final()
            && !cadence::timed_out(cadence, status, elapsed)
            && let Some(gap) = adaptive::next_gap(
                history,
                cadence,
                self.job_type.as_deref(),
                now.saturating_duration_since(active),
                random,
            )
        {
            return gap;
        }
        cadence::next_gap(cadence, situation, self.streak.max(1), elapsed, random)
    }
}

/// One `Arc` for equal label sets: the jobs of a watch file mostly carry
/// the same few, and a label map costs hundreds of bytes.
fn share_labels(pool: &mut HashMap<Labels, Arc<Labels>>, labels: &Labels) -> Arc<Labels> {
    if let Some(shared) = pool.get(labels) {
        return shared.clone();
    }
    let shared = Arc::new(labels.clone());
    pool.insert(labels.clone(), shared.clone());
    shared
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ecs::parse_job;
    use crate::store::Store;

    type Script = dyn Fn(&str, Duration) -> Result<Job, ApiError> + Send + Sync;

    /// A poller that answers from a script of virtual time and logs calls.
    struct Fake {
        origin: Instant,
        script: Box<Script>,
        calls: Mutex<Vec<(String, Duration)>>,
        generation: AtomicU64,
    }

    impl Poller for Arc<Fake> {
        fn poll(
            &self,
            job_id: JobId,
        ) -> Pin<Box<dyn Future<Output = Result<Job, ApiError>> + Send>> {
            let at = Instant::now().saturating_duration_since(self.origin);
            self.calls.lock().unwrap().push((job_id.to_string(), at));
            let answer = (self.script)(job_id.as_str(), at);
            Box::pin(async move { answer })
        }

        fn credentials_generation(&self) -> u64 {
            self.generation.load(Ordering::SeqCst)
        }
    }

    fn job(status: &str) -> Result<Job, ApiError> {
        Ok(
            parse_job(format!(r#"{{"status":"{status}","job_type":"createServer"}}"#).as_bytes())
                .unwrap(),
        )
    }

    fn error(kind: ErrorKind) -> Result<Job, ApiError> {
        Err(ApiError::transport(kind, "scripted"))
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
            project_id: "p".into(),
            adaptive: true,
            webhooks: Vec::new(),
        }
    }

    /// Starts a scheduler over a fake poller: `ids` are watched, `records`
    /// come from an earlier run (and are watched too), `durations` seed the
    /// adaptive history.
    fn launch(
        ids: &[&str],
        settings: Settings,
        records: Vec<JobRecord>,
        durations: Vec<(String, i64)>,
        script: impl Fn(&str, Duration) -> Result<Job, ApiError> + Send + Sync + 'static,
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
            .map(|id| JobId::parse(id).unwrap())
            .chain(records.iter().map(|r| r.job_id.clone()))
            .map(|id| (id, Labels::new()))
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
        script: impl Fn(&str, Duration) -> Result<Job, ApiError> + Send + Sync + 'static,
    ) -> Run {
        launch(ids, settings, Vec::new(), Vec::new(), script)
    }

    impl Run {
        fn names(&self) -> Vec<String> {
            self.events
                .lock()
                .unwrap()
                .iter()
                .map(|e| match e.fields.get("status").and_then(|s| s.as_str()) {
                    Some(status) if e.name == event::JOB_TRANSITION => {
                        format!("{}:{status}", e.name)
                    }
                    _ => e.name.to_string(),
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
        assert_eq!(events[1].fields["previous_status"], "RUNNING");
        assert_eq!(events[0].fields["previous_status"], serde_json::Value::Null);
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
        assert_eq!(events[1].fields["job_id"], "never");
        assert_eq!(events[1].fields["last_status"], serde_json::Value::Null);
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
            run.events.lock().unwrap()[1].fields["last_status"],
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
                Ok(parse_job(
                    br#"{"status":"RUNNING","entities":{"sub_jobs":[
                {"status":"FAIL","job_id":"s1","entities":{"errorcode_message":"no EIP"}},
                {"status":"RUNNING","job_id":"s2"}]}}"#,
                )
                .unwrap())
            },
        );
        tokio::time::sleep(S(300)).await;
        assert_eq!(
            run.names(),
            ["job.transition:RUNNING", "job.subjob_failed", "job.timeout"]
        );
        let events = run.events.lock().unwrap().clone();
        assert_eq!(events[1].fields["fail_reason"], "no EIP");
        assert!(events[2].fields["elapsed_s"].as_u64().unwrap() >= 60);
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
        let list: WatchList = [(JobId::parse("b").unwrap(), Labels::new())]
            .into_iter()
            .collect();
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
            job_id: JobId::parse(id).unwrap(),
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
        let durations: Vec<(String, i64)> = (0..50)
            .map(|n| ("createServer".to_string(), 55_000 + n * 200))
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
}
