//! The scheduler: one task that owns the tracked jobs and the timer queue,
//! starts polls within the budget, and turns their answers into events and
//! records.
//!
//! Jobs of every project and service live in one map keyed by [`JobKey`];
//! their next due times in one binary heap (a stale heap entry is
//! recognised by its sequence number and skipped), so 100,000 jobs cost one
//! small struct each and no task or timer of their own. The scheduler pops
//! the job that is due earliest, waits for the account's throttle,
//! authentication gate and request budget, and starts the call; at most
//! `max_in_flight` calls run at once. Answers come back through a
//! `JoinSet`. What an answer means is decided by [`observe`] (pure); this
//! file is the edge that announces first and records after (see
//! [`crate::store`]), so a crash in between repeats an event with the same
//! `event_id` instead of losing it.

pub mod clock;
mod dispatch;
mod metrics;
pub mod observe;
mod outcome;
mod permits;
pub mod queue;
pub mod tracked;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::huaweicloud::error::{ApiError, ErrorKind};
use crate::job::{JobKey, Labels, ProjectName};
use crate::output::event::{self, Event};
use crate::output::log;
use crate::output::sink::{self, SinkFilter};
use crate::policy::adaptive::{self, History, Record as Learned};
use crate::policy::auth_gate::AuthGate;
use crate::policy::budget::Budget;
use crate::policy::cadence::{self, Cadence};
use crate::policy::error_lines::ErrorLines;
use crate::policy::permit::{PermitMessage, Permits};
use crate::policy::throttle::Throttle;
use crate::policy::triage::{self, LoadMeter};
use crate::services::{Polled, Poller};
use crate::store::{DurationRow, JobRecord, Write, Writer, now_ms};
use crate::telemetry::{self, Stats};
use crate::watch::WatchList;

use clock::WallClock;
use observe::{Context, Next, Observation, ProjectInfo, Record};
use queue::Queue;
use tracked::{Tracked, share_labels};

/// How often counters of polls that changed nothing are written.
pub const POLL_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the scheduler wakes even with nothing due (housekeeping,
/// watchdog progress, `api.error` lines that waited).
pub const TICK: Duration = Duration::from_secs(1);

/// The scheduler's settings, from the configuration; replaced on reload.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The per-job cadence.
    pub cadence: Cadence,
    /// The request budget of the account.
    pub requests_per_second: f64,
    /// Burst of the budget.
    pub burst: u32,
    /// At most this many calls at once.
    pub max_in_flight: usize,
    /// What events say about each project.
    pub projects: HashMap<ProjectName, ProjectInfo>,
    /// Whether INIT/RUNNING polls are placed by learned durations.
    pub adaptive: bool,
    /// The notification sinks and what each takes.
    pub sinks: Vec<SinkFilter>,
}

/// Orders to the scheduler.
pub enum Command {
    /// The watch list changed (start, reload, file change).
    WatchList(WatchList),
    /// New settings and, when endpoints or credentials changed, a new
    /// poller.
    Reconfigure {
        /// The settings.
        settings: Box<Settings>,
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

/// A callback that sees every event the scheduler announces (the demo and
/// in-process tests use it).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

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
    pub announced: Vec<(JobKey, String)>,
    /// The watch list at start.
    pub watch_list: WatchList,
    /// Durations of finished jobs (from the store), oldest first.
    pub durations: Vec<DurationRow>,
    /// Sees every event.
    pub observer: Option<Observer>,
}

/// The handle to a running scheduler.
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    permits: Permits,
    /// Counters.
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<Option<Writer>>,
}

impl Handle {
    /// Sends a command; false when the scheduler is gone.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// The permits of calls made outside the scheduler (SMN publishes)
    /// that go through the account's budget, throttle and gate.
    pub fn permits(&self) -> Permits {
        self.permits.clone()
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
    let (permits, permit_requests) = Permits::channel();
    let scheduler = Scheduler::new(start, stats.clone(), permit_requests);
    let task = tokio::spawn(scheduler.run(receiver));
    Handle {
        commands,
        permits,
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
    jobs: HashMap<JobKey, Tracked>,
    /// Unfinished jobs known from the store but not in the watch list.
    dormant: HashMap<JobKey, Tracked>,
    /// Jobs that are done: never polled or announced again.
    finished: HashSet<JobKey>,
    /// Jobs whose last call met a connection closed before the answer and
    /// was made again at once.
    resent: HashSet<JobKey>,
    queue: Queue,
    clock: WallClock,
    load: LoadMeter,
    in_flight: JoinSet<(JobKey, Result<Polled, ApiError>)>,
    budget_ready_at: Option<Instant>,
    budget_blocked_since: Option<Instant>,
    writes: Vec<Write>,
    poll_writes: HashMap<JobKey, (u64, i64, Option<i64>)>,
    last_poll_flush: Instant,
    rng: SmallRng,
    history: History,
    stats: Arc<Stats>,
    observer: Option<Observer>,
    unknown_project: ProjectInfo,
    /// The (service, job type) series of the unpaid-since gauge last set.
    unpaid_series: HashSet<(crate::job::Service, Option<Arc<str>>)>,
    /// Requests for permits and reports of their calls.
    permit_requests: mpsc::UnboundedReceiver<PermitMessage>,
    /// Permits asked for and not yet granted, in order.
    waiting_permits: VecDeque<oneshot::Sender<()>>,
}

impl Scheduler {
    fn new(
        start: Start,
        stats: Arc<Stats>,
        permit_requests: mpsc::UnboundedReceiver<PermitMessage>,
    ) -> Scheduler {
        let now = Instant::now();
        let wall = now_ms();
        let budget = Budget::new(start.settings.requests_per_second, start.settings.burst);
        let store_healthy = start.writer.health_flag();
        metrics::export_known_job_types(
            start
                .durations
                .iter()
                .map(|row| (row.service, row.job_type.as_str())),
        );
        let history = History::from_records(start.durations.into_iter().map(|row| Learned {
            service: row.service,
            job_type: row.job_type,
            phase: row.phase,
            duration_ms: row.duration_ms,
        }));
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
            resent: HashSet::new(),
            queue: Queue::new(now),
            clock: WallClock::new(now, wall),
            load: LoadMeter::new(),
            in_flight: JoinSet::new(),
            budget_ready_at: None,
            budget_blocked_since: None,
            writes: Vec::new(),
            poll_writes: HashMap::new(),
            last_poll_flush: now,
            rng: SmallRng::from_os_rng(),
            history,
            stats,
            observer: start.observer,
            unknown_project: ProjectInfo::default(),
            unpaid_series: HashSet::new(),
            permit_requests,
            waiting_permits: VecDeque::new(),
        };
        let mut announced: HashMap<JobKey, Vec<Box<str>>> = HashMap::new();
        for (key, event_id) in start.announced {
            announced
                .entry(key)
                .or_default()
                .push(event_id.into_boxed_str());
        }
        let mut pool = HashMap::new();
        for record in start.records {
            if record.finished {
                scheduler.finished.insert(record.key);
                continue;
            }
            let labels = share_labels(&mut pool, &record.labels);
            let mut tracked = Tracked::from_record(&record, labels, now, wall);
            tracked.subjobs_announced = announced.remove(&record.key).unwrap_or_default();
            scheduler.dormant.insert(record.key, tracked);
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
                        self.reconfigure(*settings, poller);
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
                Some(message) = self.permit_requests.recv() => {
                    self.on_permit_message(message, Instant::now());
                }
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok((key, result)) = joined {
                        self.handle(key, result, Instant::now());
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

    /// The adaptive spacing now: wider as the budget fills.
    fn spacing(&self, now: Instant) -> Duration {
        let utilisation = self
            .load
            .utilisation(self.queue.clock(now), self.budget.requests_per_second());
        triage::loaded_spacing(adaptive::SPACING, utilisation)
    }

    fn schedule(&mut self, key: &JobKey, due: Instant) {
        let Some(tracked) = self.jobs.get_mut(key) else {
            return;
        };
        self.queue.schedule(key, tracked, due);
        let gap_ms = due.saturating_duration_since(Instant::now()).as_millis() as i64;
        tracked.record.next_poll_ms = Some(self.clock.wall(Instant::now()) + gap_ms);
    }

    fn random(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Applies a new watch list: new jobs start (spread over the initial
    /// interval), jobs that left stop, the others are not disturbed.
    fn apply_watch_list(&mut self, list: WatchList, now: Instant) {
        let wall = self.clock.wall(now);
        let leaving: Vec<JobKey> = self
            .jobs
            .keys()
            .filter(|key| !list.contains(key))
            .cloned()
            .collect();
        for key in leaving {
            if let Some(mut tracked) = self.jobs.remove(&key) {
                tracked.in_flight = false;
                self.dormant.insert(key, tracked);
            }
        }
        let mut pool: HashMap<Labels, Arc<Labels>> = HashMap::new();
        for (key, labels) in list.iter() {
            if self.finished.contains(key) {
                continue;
            }
            if let Some(tracked) = self.jobs.get_mut(key) {
                if *tracked.labels != *labels {
                    tracked.labels = share_labels(&mut pool, labels);
                    let record = tracked.to_record(key);
                    self.writes.push(Write::Job(record));
                }
                continue;
            }
            // A job resumed from the store is written again only when its
            // labels changed; a new one is written at once so that
            // `status` shows it.
            let (tracked, write) = match self.dormant.remove(key) {
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
                self.writes.push(Write::Job(tracked.to_record(key)));
            }
            self.jobs.insert(key.clone(), tracked);
            let delay = self.first_delay(key, now);
            self.schedule(key, now + delay);
        }
        // The jobs moved out of `dormant` leave its table as large as it
        // ever was (at start: every job of the store).
        if self.dormant.capacity() > 2 * self.dormant.len() + 1024 {
            self.dormant.shrink_to_fit();
        }
        self.update_counts();
    }

    /// When to poll a job that starts being tracked: a moment within the
    /// initial interval, or, while the budget is loaded, where its
    /// service's history says jobs usually end.
    fn first_delay(&mut self, key: &JobKey, now: Instant) -> Duration {
        let random = self.random();
        let spacing = self.spacing(now);
        let learned = (self.settings.adaptive && spacing > adaptive::SPACING)
            .then(|| {
                adaptive::first_gap(
                    &self.history,
                    &self.settings.cadence,
                    key.service,
                    spacing,
                    random,
                )
            })
            .flatten();
        learned.unwrap_or_else(|| cadence::first_delay(&self.settings.cadence, random))
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
        self.count_by_status();
        for report in self.error_lines.due(now) {
            self.announce(event::api_error(&report));
        }
        if now.saturating_duration_since(self.last_poll_flush) >= POLL_FLUSH_INTERVAL {
            self.flush_polls(now);
        }
    }

    /// Handles the answer to one call.
    fn handle(&mut self, key: JobKey, result: Result<Polled, ApiError>, now: Instant) {
        let Some(tracked) = self.jobs.get_mut(&key) else {
            // The job left the watch list while the call was in flight.
            return;
        };
        if !tracked.in_flight {
            return;
        }
        tracked.in_flight = false;
        if self.resend_closed(&key, &result, now) {
            return;
        }
        self.count_outcome(&key, &result);
        match result {
            Ok(polled) => {
                self.auth.on_answer();
                self.throttle.on_answer();
                let observation =
                    self.decide(&key, now, polled.server_now_ms, |tracked, context| {
                        observe::observe(tracked, &polled.view, context)
                    });
                self.apply(key, observation, now);
            }
            Err(error) => self.failed(key, error, now),
        }
    }

    /// Runs a decision over one job with the current context.
    fn decide(
        &mut self,
        key: &JobKey,
        now: Instant,
        server_now_ms: Option<i64>,
        decision: impl FnOnce(&mut Tracked, &Context<'_>) -> Observation,
    ) -> Option<Observation> {
        let random = self.random();
        let spacing = self.spacing(now);
        let tracked = self.jobs.get_mut(key)?;
        let context = Context {
            key,
            project: self
                .settings
                .projects
                .get(&key.project)
                .unwrap_or(&self.unknown_project),
            cadence: &self.settings.cadence,
            history: self.settings.adaptive.then_some(&self.history),
            store_healthy: self.store_healthy.load(Ordering::SeqCst),
            now,
            wall_ms: self.clock.wall(now),
            server_now_ms,
            spacing,
            random,
        };
        Some(decision(tracked, &context))
    }

    /// Carries out an observation: announce, record, schedule.
    fn apply(&mut self, key: JobKey, observation: Option<Observation>, now: Instant) {
        let Some(observation) = observation else {
            return;
        };
        for event in observation.events {
            self.announce(event);
        }
        let wall = self.clock.wall(now);
        for event_id in observation.announced {
            self.writes.push(Write::Announced {
                key: key.clone(),
                event_id,
                event: event::JOB_SUBJOB_FAILED,
                at: wall,
            });
        }
        for row in observation.durations {
            if row.phase == crate::policy::adaptive::Phase::Whole {
                telemetry::record_job_duration(
                    row.service.as_str(),
                    &row.job_type,
                    row.duration_ms,
                );
            }
            let worked = Duration::from_millis(row.duration_ms.max(0) as u64);
            self.history
                .record_for(row.service, &row.job_type, row.phase, worked);
            self.writes.push(Write::Duration {
                row,
                finished_at: wall,
            });
        }
        match observation.next {
            Next::Finish => self.finish(key),
            Next::Poll(gap) => {
                self.schedule(&key, now + gap);
                match observation.record {
                    Record::Full => {
                        if let Some(tracked) = self.jobs.get(&key) {
                            self.writes.push(Write::Job(tracked.to_record(&key)));
                        }
                        self.poll_writes.remove(&key);
                    }
                    Record::Counters => {
                        if let Some(tracked) = self.jobs.get(&key) {
                            let counters = &tracked.record;
                            let row = (counters.polls, wall, counters.next_poll_ms);
                            self.poll_writes.insert(key, row);
                        }
                    }
                    Record::Nothing => {}
                }
                self.update_counts();
            }
        }
    }

    fn failed(&mut self, key: JobKey, error: ApiError, now: Instant) {
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
                let observation = self.decide(&key, now, None, observe::not_found);
                self.apply(key, observation, now);
            }
            ErrorKind::Throttled { retry_after } => {
                self.throttle.on_throttled(now, retry_after);
                // Keep its place in the queue: it was due now.
                self.schedule(&key, now);
            }
            ErrorKind::Auth | ErrorKind::Forbidden => {
                self.auth
                    .on_refused(now, self.poller.credentials_generation());
                self.schedule(&key, now);
            }
            ErrorKind::Server
            | ErrorKind::Client
            | ErrorKind::Timeout
            | ErrorKind::Connect
            | ErrorKind::Decode => {
                self.throttle.on_answer();
                let random_gap = self.random();
                let observation = self.decide(&key, now, None, |tracked, context| {
                    let delay = observe::retry(tracked, context, random_gap);
                    Observation::poll(delay, Record::Counters)
                });
                self.apply(key, observation, now);
            }
        }
    }

    /// The job is done: record it as finished and stop tracking it.
    fn finish(&mut self, key: JobKey) {
        let wall = self.clock.wall(Instant::now());
        if let Some(tracked) = self.jobs.remove(&key) {
            let mut record = tracked.to_record(&key);
            record.finished = true;
            record.finished_at = Some(wall);
            record.next_poll = None;
            self.writes.push(Write::Job(record));
        }
        self.poll_writes.remove(&key);
        self.resent.remove(&key);
        self.finished.insert(key);
        self.update_counts();
    }

    /// Announces one event: the log line, the outbox rows of the sinks
    /// that take it (queued in the batch that records the fact), the
    /// metrics and the observer.
    fn announce(&mut self, event: Event) {
        let line = log::announce(&event);
        let queued = sink::outbox_writes(
            &self.settings.sinks,
            &event,
            &line,
            self.clock.wall(Instant::now()),
        );
        self.writes.extend(queued);
        if let (Some(job), event::JOB_TRANSITION | event::JOB_NOT_FOUND) =
            (event.job(), event.name())
        {
            // The job's row exists since it was first tracked; the record
            // written after this does not touch the column.
            self.writes.push(Write::LastEvent {
                key: job.key.clone(),
                json: line.json.clone(),
            });
        }
        metrics::count_event(&event);
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
        for (key, (polls, last_poll, next_poll)) in self.poll_writes.drain() {
            self.writes.push(Write::Polled {
                key,
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

    /// Lets calls in flight finish and handles their answers.
    async fn drain(&mut self) {
        while let Some(joined) = self.in_flight.join_next().await {
            if let Ok((key, result)) = joined {
                self.handle(key, result, Instant::now());
            }
        }
        self.flush_polls(Instant::now());
        self.flush();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
