//! The cadence benchmark: the same ECS-shaped jobs waited on by each peer's
//! polling policy and by ecs-jobwatch's plain and adaptive cadence, in
//! virtual time. Prints markdown tables of API calls per job and detection
//! delay (first poll at or after completion minus completion), then a
//! verdict per target of issue 13.
//!
//! Scenarios: each job alone with a full history (warm) and from an empty
//! one (cold start); each job alone with a small history (10 to 15
//! finished jobs per type, frozen); batches of 2 to 20 sub-jobs, each
//! alone; and a shared budget of 5 requests per second for 1,000 jobs
//! arriving over 10 minutes, where ecs-jobwatch serves due polls through
//! [`ecs_jobwatch::policy::triage`] as its scheduler does.
//!
//! `cargo bench --bench cadence` runs it; `-- --sweep` adds a sweep of the
//! plain cadence's intervals and of the adaptive spacing. Everything is
//! seeded, so two runs print the same tables. Under `cargo test --benches`
//! (or `--all-targets`), which runs it without `--bench`, it smoke-runs
//! small sets, and exits non-zero if any table measured nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use ecs_jobwatch::job::{Service, Status as JobStatus};
use ecs_jobwatch::policy::adaptive::{self, Batch, History, Observation, Phase};
use ecs_jobwatch::policy::cadence::{self, Cadence, Situation};
use ecs_jobwatch::policy::server_time::{self, ServerTimes, Sightings};
use ecs_jobwatch::policy::triage::{self, Due, Lane, LoadMeter, Triage};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Peers give up after terraform's default timeout.
const PEER_DEADLINE: f64 = 1800.0;
/// How long a PENDING_PAYMENT job is followed.
const HORIZON: f64 = 6.0 * 3600.0;
/// Shared budget: requests per second.
const BUDGET_RATE: f64 = 5.0;
/// The most sub-jobs of a batch.
const MAX_SUBS: usize = 20;
/// The sub-jobs' `job_type` in a batch creation.
const SUB_JOB_TYPE: &str = "createSingleServer";
/// 2024-01-01T00:00:00Z: the server clock's origin (the server clock and
/// ours agree in this bench; the `Date` header has whole seconds).
const EPOCH_MS: i64 = 1_704_067_200_000;

/// How many jobs each set has.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    /// Jobs in the training set that warms the adaptive history.
    training: usize,
    /// Jobs in the measured set of the isolated scenarios.
    test: usize,
    /// Jobs in the shared-budget scenario, arriving over `window`.
    budget_jobs: usize,
    window: f64,
    /// Jobs in the batch scenario.
    batches: usize,
}

const FULL: Sizes = Sizes {
    training: 500,
    test: 4000,
    budget_jobs: 1000,
    window: 600.0,
    batches: 1000,
};

/// Small sets for `cargo test`: the same code, a few seconds in debug.
const SMOKE: Sizes = Sizes {
    training: 100,
    test: 300,
    budget_jobs: 150,
    window: 90.0,
    batches: 60,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Power,
    Create,
    Batch,
    Delete,
    Resize,
    ChangeOs,
    PendingPayment,
}

const KINDS: [Kind; 6] = [
    Kind::Power,
    Kind::Create,
    Kind::Batch,
    Kind::Delete,
    Kind::Resize,
    Kind::ChangeOs,
];

/// The `job_type`s of the mix, for the small history.
const JOB_TYPES: [&str; 5] = [
    "batchStopServers",
    "createServer",
    "deleteVMs",
    "resizeServer",
    "changeOS",
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Power => "power action (15-35 s)",
            Kind::Create => "createServer, single (log-normal ~65 s)",
            Kind::Batch => "createServer, batch of 2-20 sub-jobs",
            Kind::Delete => "deleteVMs (~25 s)",
            Kind::Resize => "resizeServer (1.5-4 min)",
            Kind::ChangeOs => "changeOS (1.5-4 min)",
            Kind::PendingPayment => "createServer, PENDING_PAYMENT",
        }
    }

    /// The `job_type` the API reports; batch and prepaid creations share
    /// `createServer` with single ones, as in ECS.
    fn job_type(self) -> &'static str {
        match self {
            Kind::Power => "batchStopServers",
            Kind::Create | Kind::Batch | Kind::PendingPayment => "createServer",
            Kind::Delete => "deleteVMs",
            Kind::Resize => "resizeServer",
            Kind::ChangeOs => "changeOS",
        }
    }
}

/// One job: PENDING_PAYMENT until `paid_at` (if it is a prepaid one), then
/// running for `run` seconds. A batch's sub-jobs all begin with it and
/// take `subs[..count]` seconds each; it ends a few seconds after the last.
#[derive(Clone, Copy, Debug)]
struct Job {
    kind: Kind,
    pending: Option<Option<f64>>,
    run: f64,
    subs: [f64; MAX_SUBS],
    count: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Pending,
    Running,
    Done,
}

impl Job {
    fn started_at(&self) -> Option<f64> {
        match self.pending {
            None => Some(0.0),
            Some(paid) => paid,
        }
    }

    fn done_at(&self) -> Option<f64> {
        self.started_at().map(|s| s + self.run)
    }

    fn seen(&self, t: f64) -> Seen {
        match self.started_at() {
            Some(s) if t >= s + self.run => Seen::Done,
            Some(s) if t >= s => Seen::Running,
            _ => Seen::Pending,
        }
    }

    fn subs(&self) -> &[f64] {
        &self.subs[..self.count]
    }

    /// The job's `begin_time` on the server clock: its submission, at a
    /// sub-second offset of its own so that the `Date` header's truncation
    /// is not aligned with it.
    fn begin_ms(&self) -> i64 {
        EPOCH_MS + ((self.run * 7919.0).fract() * 1000.0) as i64
    }
}

fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Server creation: 35 s plus a log-normal with median 30 s, 40 s to 5 min.
fn creation(rng: &mut SmallRng) -> f64 {
    (35.0 + 30.0 * (0.6 * normal(rng)).exp()).clamp(40.0, 300.0)
}

/// A batch creation of 2 to 20 servers.
fn batch(rng: &mut SmallRng) -> (f64, [f64; MAX_SUBS], usize) {
    let n = rng.random_range(2..=MAX_SUBS);
    let mut subs = [0.0; MAX_SUBS];
    for sub in subs.iter_mut().take(n) {
        *sub = creation(rng);
    }
    let slowest = subs.iter().fold(0.0, |a: f64, &b| a.max(b));
    (slowest + rng.random_range(3.0..10.0), subs, n)
}

fn draw_job(rng: &mut SmallRng, with_pending: bool) -> Job {
    let weights = [
        (Kind::Power, 0.35),
        (Kind::Create, 0.25),
        (Kind::Delete, 0.15),
        (Kind::Resize, 0.08),
        (Kind::ChangeOs, 0.07),
        (Kind::Batch, 0.05),
        (Kind::PendingPayment, 0.05),
    ];
    let total: f64 = weights
        .iter()
        .filter(|(k, _)| with_pending || *k != Kind::PendingPayment)
        .map(|(_, w)| w)
        .sum();
    let mut pick = rng.random::<f64>() * total;
    let mut kind = Kind::Power;
    for (k, w) in weights {
        if !with_pending && k == Kind::PendingPayment {
            continue;
        }
        kind = k;
        if pick < w {
            break;
        }
        pick -= w;
    }
    let mut subs = [0.0; MAX_SUBS];
    let mut count = 0;
    let run = match kind {
        Kind::Power => rng.random_range(15.0..35.0),
        Kind::Create | Kind::PendingPayment => creation(rng),
        Kind::Batch => {
            let (run, drawn, n) = batch(rng);
            subs = drawn;
            count = n;
            run
        }
        Kind::Delete => 10.0 + 15.0 * (0.5 * normal(rng)).exp(),
        Kind::Resize => rng.random_range(90.0..240.0),
        Kind::ChangeOs => 90.0 + 75.0 * (rng.random::<f64>() + rng.random::<f64>()),
    };
    let pending = (kind == Kind::PendingPayment)
        .then(|| (rng.random::<f64>() < 0.7).then(|| rng.random_range(900.0..5.0 * 3600.0)));
    Job {
        kind,
        pending,
        run,
        subs,
        count,
    }
}

fn draw_batch(rng: &mut SmallRng) -> Job {
    let (run, subs, count) = batch(rng);
    Job {
        kind: Kind::Batch,
        pending: None,
        run,
        subs,
        count,
    }
}

/// What ecs-jobwatch's adaptive cadence may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Features {
    /// `begin_time`, `end_time` and `Date` (else sightings only).
    server_times: bool,
    /// Sub-job progress of batches.
    sub_jobs: bool,
}

const ALL_FEATURES: Features = Features {
    server_times: true,
    sub_jobs: true,
};

/// A policy: how to wait on one job.
#[derive(Clone, Copy, Debug)]
enum Policy {
    GolangSdk,
    Terraform,
    StateChangeConf,
    Smithy,
    /// ecs-jobwatch with this cadence; adaptive with this spacing or plain.
    Jobwatch(Cadence, Option<Duration>, Features),
    /// The plain cadence's formula with another growth (sweep only).
    Growth(Cadence, f64),
}

impl Policy {
    fn waiter(self) -> Waiter {
        Waiter {
            policy: self,
            polls: 0,
            status: None,
            streak: 0,
            status_since: 0.0,
            first_at_work: None,
            last_at_work: None,
            was_pending: false,
            finished_seen: 0,
            finished_changed: None,
            next_wait: 0.1,
            chance: None,
        }
    }

    fn is_jobwatch(self) -> bool {
        matches!(self, Policy::Jobwatch(..))
    }
}

/// The state of one policy waiting on one job.
struct Waiter {
    policy: Policy,
    polls: u32,
    status: Option<Seen>,
    streak: u32,
    status_since: f64,
    /// Our first and last sightings at work (seconds since submission).
    first_at_work: Option<f64>,
    last_at_work: Option<f64>,
    was_pending: bool,
    /// Sub-jobs seen finished, and the age at which that count was first
    /// seen (the sighting fallback of `Batch::last_finished_age`).
    finished_seen: u32,
    finished_changed: Option<f64>,
    next_wait: f64,
    /// The chance of the next poll, for the triage.
    chance: Option<f64>,
}

/// Our clock (and the server's) at `t` seconds after the job's submission.
fn clock_ms(job: &Job, t: f64) -> i64 {
    job.begin_ms() + (t * 1000.0) as i64
}

/// The `Date` header of an answer at `t`: whole seconds.
fn date_ms(job: &Job, t: f64) -> i64 {
    clock_ms(job, t).div_euclid(1000) * 1000
}

impl Waiter {
    /// Delay from submission to the first poll.
    fn first(&mut self, rng: &mut SmallRng) -> f64 {
        match self.policy {
            Policy::GolangSdk | Policy::Terraform => 5.0,
            Policy::StateChangeConf | Policy::Smithy => 0.0,
            Policy::Jobwatch(c, ..) | Policy::Growth(c, _) => {
                cadence::first_delay(&c, rng.random()).as_secs_f64()
            }
        }
    }

    /// The first poll's delay under a load: from the service's history
    /// when the budget is loaded, else as [`Waiter::first`].
    fn first_loaded(&mut self, history: &History, rng: &mut SmallRng, load: f64) -> f64 {
        let plain = self.first(rng);
        let Policy::Jobwatch(c, Some(spacing), _) = self.policy else {
            return plain;
        };
        let loaded = triage::loaded_spacing(spacing, load);
        if loaded <= spacing {
            return plain;
        }
        adaptive::first_gap(history, &c, Service::Ecs, loaded, rng.random())
            .map_or(plain, |g| g.as_secs_f64())
    }

    /// The lane of this waiter's next poll in ecs-jobwatch's triage.
    fn lane(&self) -> Lane {
        match self.status {
            None => Lane::FirstSight,
            Some(Seen::Pending) => Lane::PendingPayment,
            Some(_) => Lane::Working,
        }
    }

    fn sightings(&self, job: &Job, now: f64) -> Sightings {
        Sightings {
            now_ms: clock_ms(job, now),
            first_at_work_ms: self.first_at_work.map(|t| clock_ms(job, t)),
            last_at_work_ms: self.last_at_work.map(|t| clock_ms(job, t)),
            was_pending: self.was_pending,
        }
    }

    /// What the scheduler knows of a running job at `now`.
    fn observation(&self, job: &Job, now: f64, features: Features) -> Observation<'static> {
        let server = if features.server_times {
            ServerTimes {
                begin_ms: Some(job.begin_ms()),
                end_ms: None,
                server_now_ms: Some(date_ms(job, now)),
            }
        } else {
            ServerTimes::default()
        };
        let age = server_time::running_age(server, self.sightings(job, now)).value;
        let batch = (features.sub_jobs && job.count >= 2).then(|| {
            let finished: Vec<f64> = job.subs().iter().copied().filter(|&d| d <= now).collect();
            let last_finished_age = if features.server_times {
                finished
                    .iter()
                    .copied()
                    .reduce(f64::max)
                    .map(Duration::from_secs_f64)
            } else {
                self.finished_changed.map(Duration::from_secs_f64)
            };
            Batch {
                total: job.count as u32,
                finished: finished.len() as u32,
                last_finished_age,
                sub_job_type: Some(SUB_JOB_TYPE),
            }
        });
        Observation {
            service: Service::Ecs,
            job_type: job.kind.job_type(),
            age,
            batch,
        }
    }

    /// After a poll at `now` that saw `seen` (not done): when to poll
    /// next, or `None` when the policy gives up. `load` is what
    /// share of the shared budget is in use (zero without one).
    fn next(
        &mut self,
        job: &Job,
        now: f64,
        seen: Seen,
        history: &History,
        rng: &mut SmallRng,
        load: f64,
    ) -> Option<f64> {
        self.polls += 1;
        if self.status != Some(seen) {
            self.status = Some(seen);
            self.streak = 0;
            self.status_since = now;
        }
        match seen {
            Seen::Running => {
                self.first_at_work.get_or_insert(now);
                self.last_at_work = Some(now);
                let finished = job.subs().iter().filter(|&&d| d <= now).count() as u32;
                if finished != self.finished_seen || self.finished_changed.is_none() {
                    self.finished_seen = finished;
                    self.finished_changed = Some(now);
                }
            }
            Seen::Pending => self.was_pending = true,
            Seen::Done => {}
        }
        self.streak += 1;
        let fixed = |gap: f64| (now + gap <= PEER_DEADLINE).then_some(now + gap);
        match self.policy {
            Policy::GolangSdk | Policy::Terraform => fixed(10.0),
            Policy::StateChangeConf => {
                let gap = self.next_wait;
                self.next_wait = (self.next_wait * 2.0).min(10.0);
                fixed(gap)
            }
            Policy::Smithy => {
                if now >= PEER_DEADLINE {
                    return None;
                }
                let exponent = self.polls.saturating_sub(1).min(30) as i32;
                let high = (2.0 * 2f64.powi(exponent)).min(120.0);
                let gap = rng.random_range(2.0..=high.max(2.0));
                Some((now + gap).min(PEER_DEADLINE))
            }
            Policy::Growth(c, growth) => {
                let exponent = self.streak.saturating_sub(1).min(64) as i32;
                let base = c.initial_interval.as_secs_f64() * growth.powi(exponent);
                let max = c.max_interval.as_secs_f64();
                let jitter = 1.0 + cadence::JITTER * (2.0 * rng.random::<f64>() - 1.0);
                Some(now + (base.min(max) * jitter).clamp(1.0, max))
            }
            Policy::Jobwatch(c, spacing, features) => {
                let status = match seen {
                    Seen::Pending => JobStatus::PendingPayment,
                    _ => JobStatus::Running,
                };
                let random = rng.random();
                let observation = self.observation(job, now, features);
                let adaptive_gap = match (spacing, seen) {
                    (Some(spacing), Seen::Running) => {
                        let spacing = triage::loaded_spacing(spacing, load);
                        adaptive::place(history, &c, &observation, spacing, random)
                    }
                    _ => None,
                };
                let gap = adaptive_gap.unwrap_or_else(|| {
                    cadence::next_gap(
                        &c,
                        Situation::Status(&status),
                        self.streak,
                        Duration::from_secs_f64(now - self.status_since),
                        random,
                    )
                });
                self.chance = match (spacing, seen) {
                    (Some(_), Seen::Running) => adaptive::chance(history, &observation, gap),
                    _ => None,
                };
                Some(now + gap.as_secs_f64())
            }
        }
    }

    /// What ecs-jobwatch records when it sees the job done at `now`: the
    /// server's duration when sane, else from its first sighting at work;
    /// for a batch also each sub-job and the tail after the last one.
    fn learn(&self, job: &Job, now: f64, history: &mut History) {
        let Policy::Jobwatch(_, Some(_), features) = self.policy else {
            return;
        };
        let server = if features.server_times {
            ServerTimes {
                begin_ms: Some(job.begin_ms()),
                end_ms: job.done_at().map(|d| clock_ms(job, d)),
                server_now_ms: Some(date_ms(job, now)),
            }
        } else {
            ServerTimes::default()
        };
        let job_type = job.kind.job_type();
        if let Some(measured) = server_time::finished_duration(server, self.sightings(job, now)) {
            history.record_for(Service::Ecs, job_type, Phase::Whole, measured.value);
        }
        if features.server_times && features.sub_jobs && job.count >= 2 {
            for &sub in job.subs() {
                let sub = Duration::from_secs_f64(sub);
                history.record_for(Service::Ecs, SUB_JOB_TYPE, Phase::Whole, sub);
            }
            let slowest = job.subs().iter().fold(0.0, |a: f64, &b| a.max(b));
            let tail = Duration::from_secs_f64((job.run - slowest).max(0.0));
            history.record_for(Service::Ecs, job_type, Phase::Tail, tail);
        }
    }
}

/// What happened to one job under one policy.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    calls: u32,
    /// Detection delay of completion; `None` when never detected.
    delay: Option<f64>,
    /// PENDING_PAYMENT jobs: calls while pending.
    pending_calls: u32,
    /// PENDING_PAYMENT jobs: delay from payment to the first poll after.
    payment_delay: Option<f64>,
}

impl Outcome {
    fn observe(&mut self, job: &Job, now: f64, seen: Seen) {
        self.calls += 1;
        if seen == Seen::Pending {
            self.pending_calls += 1;
        }
        if let Some(Some(paid)) = job.pending
            && seen != Seen::Pending
            && self.payment_delay.is_none()
        {
            self.payment_delay = Some(now - paid);
        }
        if seen == Seen::Done
            && let Some(done) = job.done_at()
        {
            self.delay = Some(now - done);
        }
    }
}

/// Waits on one job alone; learns from it when the policy does and
/// `learn` is set.
fn run_alone(
    policy: Policy,
    job: &Job,
    history: &mut History,
    rng: &mut SmallRng,
    learn: bool,
) -> Outcome {
    let mut waiter = policy.waiter();
    let mut outcome = Outcome::default();
    let mut now = waiter.first(rng);
    while now <= HORIZON {
        let seen = job.seen(now);
        outcome.observe(job, now, seen);
        if seen == Seen::Done {
            if learn {
                waiter.learn(job, now, history);
            }
            break;
        }
        match waiter.next(job, now, seen, history, rng, 0.0) {
            Some(next) => now = next,
            None => break,
        }
    }
    outcome
}

/// All jobs share one budget of `BUDGET_RATE` calls per second. Peers'
/// due polls are served earliest first (independent processes sharing an
/// account); ecs-jobwatch's go through its triage, as its scheduler does
/// (earliest due first when `fifo` is set).
fn run_shared(
    policy: Policy,
    jobs: &[(f64, Job)],
    history: &mut History,
    rng: &mut SmallRng,
    fifo: bool,
) -> Vec<Outcome> {
    if policy.is_jobwatch() {
        return run_triaged(policy, jobs, history, rng, fifo);
    }
    let mut waiters: Vec<Waiter> = jobs.iter().map(|_| policy.waiter()).collect();
    let mut outcomes = vec![Outcome::default(); jobs.len()];
    let mut queue = BinaryHeap::new();
    let key = |t: f64| (t * 1e6) as u64;
    for (i, (arrival, _)) in jobs.iter().enumerate() {
        let due = arrival + waiters[i].first(rng);
        queue.push(Reverse((key(due), i, due.to_bits())));
    }
    let mut free = 0.0_f64;
    let end = jobs.iter().map(|(a, _)| *a).fold(0.0, f64::max) + HORIZON;
    while let Some(Reverse((_, i, due))) = queue.pop() {
        let due = f64::from_bits(due);
        let at = due.max(free);
        if at > end {
            break;
        }
        free = at + 1.0 / BUDGET_RATE;
        let (arrival, job) = &jobs[i];
        let now = at - arrival;
        let seen = job.seen(now);
        outcomes[i].observe(job, now, seen);
        if seen == Seen::Done {
            waiters[i].learn(job, now, history);
            continue;
        }
        if let Some(next) = waiters[i].next(job, now, seen, history, rng, 0.0) {
            let due = arrival + next;
            queue.push(Reverse((key(due), i, due.to_bits())));
        }
    }
    outcomes
}

/// The shared budget as ecs-jobwatch's scheduler runs it: polls fall due
/// into the triage and each grant of the budget serves the triage's
/// choice; every poll is placed with the spacing the budget's load calls
/// for, and a job's first poll, placed when the job arrives, comes from
/// its service's history while the budget is loaded.
fn run_triaged(
    policy: Policy,
    jobs: &[(f64, Job)],
    history: &mut History,
    rng: &mut SmallRng,
    fifo: bool,
) -> Vec<Outcome> {
    let mut waiters: Vec<Waiter> = jobs.iter().map(|_| policy.waiter()).collect();
    let mut outcomes = vec![Outcome::default(); jobs.len()];
    let mut arrived = vec![false; jobs.len()];
    let mut scheduled = BinaryHeap::new();
    let key = |t: f64| (t * 1e6) as u64;
    for (i, (arrival, _)) in jobs.iter().enumerate() {
        scheduled.push(Reverse((key(*arrival), i, arrival.to_bits())));
    }
    let mut triage: Triage<usize> = Triage::new(triage::Settings::default());
    let mut meter = LoadMeter::new();
    let mut free = 0.0_f64;
    let end = jobs.iter().map(|(a, _)| *a).fold(0.0, f64::max) + HORIZON;
    loop {
        let mut at = free;
        if triage.is_empty() {
            match scheduled.peek() {
                Some(Reverse((_, _, due))) => at = at.max(f64::from_bits(*due)),
                None => break,
            }
        }
        if at > end {
            break;
        }
        while let Some(Reverse((_, i, due))) = scheduled.peek().copied() {
            let due = f64::from_bits(due);
            if due > at {
                break;
            }
            scheduled.pop();
            if !arrived[i] {
                arrived[i] = true;
                let load = meter.utilisation(Duration::from_secs_f64(due), BUDGET_RATE);
                let first = due + waiters[i].first_loaded(history, rng, load);
                scheduled.push(Reverse((key(first), i, first.to_bits())));
                continue;
            }
            // Earliest due first is the triage with one lane and no scores.
            let (lane, chance) = if fifo {
                (Lane::Working, None)
            } else {
                (waiters[i].lane(), waiters[i].chance)
            };
            triage.push(Due {
                item: i,
                lane,
                due: Duration::from_secs_f64(due),
                chance,
            });
        }
        let Some(poll) = triage.pop(Duration::from_secs_f64(at)) else {
            continue;
        };
        free = at + 1.0 / BUDGET_RATE;
        let i = poll.item;
        let (arrival, job) = &jobs[i];
        let now = at - arrival;
        let seen = job.seen(now);
        outcomes[i].observe(job, now, seen);
        meter.record(Duration::from_secs_f64(at));
        if seen == Seen::Done {
            waiters[i].learn(job, now, history);
            continue;
        }
        let load = meter.utilisation(Duration::from_secs_f64(at), BUDGET_RATE);
        if let Some(next) = waiters[i].next(job, now, seen, history, rng, load) {
            let due = arrival + next;
            scheduled.push(Reverse((key(due), i, due.to_bits())));
        }
    }
    outcomes
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Calls per job and delay percentiles of the jobs that match.
#[derive(Clone, Copy, Debug)]
struct Summary {
    jobs: usize,
    calls: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    missed: usize,
}

fn summarise<'a, I>(pairs: I) -> Summary
where
    I: IntoIterator<Item = (&'a Job, &'a Outcome)>,
{
    let mut calls = 0u64;
    let mut delays = Vec::new();
    let mut jobs = 0;
    let mut missed = 0;
    for (_, o) in pairs {
        jobs += 1;
        calls += u64::from(o.calls);
        match o.delay {
            Some(d) => delays.push(d),
            None => missed += 1,
        }
    }
    delays.sort_by(f64::total_cmp);
    Summary {
        jobs,
        calls: calls as f64 / jobs.max(1) as f64,
        p50: percentile(&delays, 0.50),
        p95: percentile(&delays, 0.95),
        p99: percentile(&delays, 0.99),
        missed,
    }
}

/// Which history a row starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Empty; learns during the run.
    Cold,
    /// The training set first; learns during the run.
    Warm,
    /// 10 to 15 finished jobs per type, frozen: learns nothing more.
    Small,
}

struct Named {
    name: String,
    policy: Policy,
    start: Start,
    /// Shared budget only: serve ecs-jobwatch's polls earliest first
    /// instead of through the triage (a reference row).
    fifo: bool,
}

fn named(name: &str, policy: Policy, start: Start) -> Named {
    Named {
        name: name.to_string(),
        policy,
        start,
        fifo: false,
    }
}

fn jobwatch(cadence: Cadence, spacing: Option<Duration>) -> Policy {
    Policy::Jobwatch(cadence, spacing, ALL_FEATURES)
}

const TERRAFORM: &str = "terraform-provider-huaweicloud (Delay 5 s, PollInterval 10 s)";
const PLAIN: &str = "ecs-jobwatch plain (= adaptive without history)";
const WARM: &str = "ecs-jobwatch adaptive, warm history (default)";
const SMALL: &str = "ecs-jobwatch adaptive, small history (10-15 jobs per type)";

fn peers() -> Vec<Named> {
    vec![
        named(
            "golangsdk WaitForJobSuccess (5 s, then 10 s)",
            Policy::GolangSdk,
            Start::Cold,
        ),
        named(TERRAFORM, Policy::Terraform, Start::Cold),
        named(
            "hashicorp StateChangeConf defaults (0.1 s doubling to 10 s)",
            Policy::StateChangeConf,
            Start::Cold,
        ),
        named(
            "Smithy waiter defaults (2 s / 120 s, full jitter)",
            Policy::Smithy,
            Start::Cold,
        ),
        named(PLAIN, jobwatch(Cadence::default(), None), Start::Cold),
    ]
}

/// The full-history scenario's rows (the original table).
fn full_rows() -> Vec<Named> {
    let adaptive = jobwatch(Cadence::default(), Some(adaptive::SPACING));
    let mut rows = peers();
    rows.push(named(
        "ecs-jobwatch adaptive, cold start (learns during the run)",
        adaptive,
        Start::Cold,
    ));
    rows.push(named(WARM, adaptive, Start::Warm));
    rows
}

/// The small-history scenario's rows.
fn small_rows() -> Vec<Named> {
    let mut rows = peers();
    rows.push(named(
        SMALL,
        jobwatch(Cadence::default(), Some(adaptive::SPACING)),
        Start::Small,
    ));
    rows
}

/// The batch scenario's rows.
fn batch_rows() -> Vec<Named> {
    let adaptive = jobwatch(Cadence::default(), Some(adaptive::SPACING));
    let blind = Policy::Jobwatch(
        Cadence::default(),
        Some(adaptive::SPACING),
        Features {
            server_times: true,
            sub_jobs: false,
        },
    );
    let mut rows = peers();
    rows.push(named(
        "ecs-jobwatch adaptive, warm history, sub-job progress ignored",
        blind,
        Start::Warm,
    ));
    rows.push(named(SMALL, adaptive, Start::Small));
    rows.push(named(WARM, adaptive, Start::Warm));
    rows
}

/// The shared-budget scenario's rows.
fn shared_rows() -> Vec<Named> {
    let mut rows = full_rows();
    rows.push(Named {
        name: "ecs-jobwatch adaptive, warm history, triage off (earliest due first)".to_string(),
        policy: jobwatch(Cadence::default(), Some(adaptive::SPACING)),
        start: Start::Warm,
        fifo: true,
    });
    rows
}

/// The history ecs-jobwatch would have after the training set.
fn warm_history(policy: Policy, training: &[Job], seed: u64) -> History {
    let mut history = History::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    for job in training {
        run_alone(policy, job, &mut history, &mut rng, true);
    }
    history
}

/// The history of a user who finished 10 to 15 jobs of each type (drawn
/// from the same mix; `createServer` therefore holds a few batches).
fn small_history(policy: Policy, seed: u64) -> History {
    let mut history = History::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let wanted: Vec<usize> = JOB_TYPES
        .iter()
        .map(|_| rng.random_range(10..=15))
        .collect();
    let mut counts = vec![0; JOB_TYPES.len()];
    while counts.iter().zip(&wanted).any(|(c, w)| c < w) {
        let job = draw_job(&mut rng, false);
        let Some(index) = JOB_TYPES.iter().position(|t| *t == job.kind.job_type()) else {
            continue;
        };
        if counts[index] >= wanted[index] {
            continue;
        }
        counts[index] += 1;
        run_alone(policy, &job, &mut history, &mut rng, true);
    }
    history
}

fn starting_history(named: &Named, training: &[Job]) -> History {
    match named.start {
        Start::Cold => History::new(),
        Start::Warm => warm_history(named.policy, training, 11),
        Start::Small => small_history(named.policy, 14),
    }
}

fn isolated(named: &Named, training: &[Job], test: &[Job]) -> Vec<Outcome> {
    let mut history = starting_history(named, training);
    let learn = named.start != Start::Small;
    let mut rng = SmallRng::seed_from_u64(12);
    test.iter()
        .map(|job| run_alone(named.policy, job, &mut history, &mut rng, learn))
        .collect()
}

fn shared(named: &Named, training: &[Job], jobs: &[(f64, Job)]) -> Vec<Outcome> {
    let mut history = starting_history(named, training);
    let mut rng = SmallRng::seed_from_u64(13);
    run_shared(named.policy, jobs, &mut history, &mut rng, named.fifo)
}

fn header() {
    println!("| policy | jobs | calls/job | delay p50 | p95 | p99 | not detected |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
}

fn row(name: &str, s: Summary) {
    println!(
        "| {name} | {} | {:.2} | {:.1} s | {:.1} s | {:.1} s | {} |",
        s.jobs, s.calls, s.p50, s.p95, s.p99, s.missed
    );
}

/// The summary table of a scenario without its per-kind tables.
fn report_simple(
    title: &str,
    names: &[Named],
    jobs: &[Job],
    results: &[Vec<Outcome>],
) -> Vec<Summary> {
    println!("\n### {title}\n");
    header();
    let mut totals = Vec::new();
    for (named, outcomes) in names.iter().zip(results) {
        let s = summarise(jobs.iter().zip(outcomes));
        row(&named.name, s);
        totals.push(s);
    }
    totals
}

fn report(title: &str, names: &[Named], jobs: &[Job], results: &[Vec<Outcome>]) -> Vec<Summary> {
    println!("\n### {title}: all jobs except PENDING_PAYMENT\n");
    header();
    let mut totals = Vec::new();
    for (named, outcomes) in names.iter().zip(results) {
        let s = summarise(
            jobs.iter()
                .zip(outcomes)
                .filter(|(j, _)| j.kind != Kind::PendingPayment),
        );
        row(&named.name, s);
        totals.push(s);
    }
    for kind in KINDS {
        println!("\n#### {title}: {}\n", kind.label());
        header();
        for (named, outcomes) in names.iter().zip(results) {
            let s = summarise(jobs.iter().zip(outcomes).filter(|(j, _)| j.kind == kind));
            row(&named.name, s);
        }
    }
    if !jobs.iter().any(|j| j.kind == Kind::PendingPayment) {
        return totals;
    }
    println!(
        "\n#### {title}: createServer with PENDING_PAYMENT (paid after 15 min to 5 h, or never; 6 h horizon)\n"
    );
    println!(
        "| policy | jobs | calls while pending | payment detection p50 | p95 | payments missed | completions missed |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (named, outcomes) in names.iter().zip(results) {
        let pending: Vec<(&Job, &Outcome)> = jobs
            .iter()
            .zip(outcomes)
            .filter(|(j, _)| j.kind == Kind::PendingPayment)
            .collect();
        let calls: u64 = pending
            .iter()
            .map(|(_, o)| u64::from(o.pending_calls))
            .sum();
        let mut delays: Vec<f64> = pending
            .iter()
            .filter_map(|(_, o)| o.payment_delay)
            .collect();
        delays.sort_by(f64::total_cmp);
        let paid = pending
            .iter()
            .filter(|(j, _)| matches!(j.pending, Some(Some(_))))
            .count();
        let missed_completion = pending
            .iter()
            .filter(|(j, o)| j.done_at().is_some() && o.delay.is_none())
            .count();
        println!(
            "| {} | {} | {:.1} | {:.0} s | {:.0} s | {} of {paid} | {missed_completion} |",
            named.name,
            pending.len(),
            calls as f64 / pending.len().max(1) as f64,
            percentile(&delays, 0.5),
            percentile(&delays, 0.95),
            paid - delays.len(),
        );
    }
    totals
}

/// A scenario's rows and their totals, to look rows up by name.
struct Table<'a> {
    names: &'a [Named],
    totals: Vec<Summary>,
}

impl Table<'_> {
    fn get(&self, name: &str) -> Summary {
        let index = self
            .names
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        self.totals[index]
    }
}

/// Prints one target's verdict: `calls` and `p50` are the largest ratios
/// to terraform's that the target allows.
fn verdict(label: &str, table: &Table<'_>, row: &str, calls: f64, p50: f64) -> bool {
    let ours = table.get(row);
    let theirs = table.get(TERRAFORM);
    let (call_ratio, delay_ratio) = (ours.calls / theirs.calls, ours.p50 / theirs.p50);
    let holds = call_ratio <= calls && delay_ratio <= p50;
    let mark = if holds { "holds" } else { "FAILS" };
    println!(
        "- {label} (≤ {calls}× calls, ≤ {p50}× median delay): **{mark}**: calls {:.2} vs {:.2} ({call_ratio:.2}×), p50 {:.1} s vs {:.1} s ({delay_ratio:.2}×)",
        ours.calls, theirs.calls, ours.p50, theirs.p50
    );
    holds
}

/// The earlier verdicts, kept for comparison with the earlier tables.
fn old_targets(title: &str, table: &Table<'_>) {
    println!("\n### Earlier targets, {title}\n");
    verdict(
        "plain vs terraform: no more calls per job and no longer median delay",
        table,
        PLAIN,
        1.0,
        1.0,
    );
    verdict(
        "adaptive vs terraform: no more calls per job and at most half the median delay",
        table,
        WARM,
        1.0,
        0.5,
    );
}

/// The trade-offs behind the chosen defaults.
fn sweep(training: &[Job], test: &[Job]) {
    println!("\n### Sweep: plain cadence intervals (isolated, no history)\n");
    header();
    for (initial, max, growth) in [
        (2.0, 30.0, 1.6),
        (2.0, 10.0, 1.6),
        (5.0, 10.0, 1.6),
        (10.0, 10.0, 1.6),
        (10.0, 10.5, 1.6),
        (10.0, 11.0, 1.6),
        (10.0, 12.0, 1.6),
        (7.0, 30.0, 1.1),
        (8.0, 30.0, 1.08),
        (9.0, 30.0, 1.05),
    ] {
        let cadence = Cadence {
            initial_interval: Duration::from_secs_f64(initial),
            max_interval: Duration::from_secs_f64(max),
            ..Cadence::default()
        };
        let named = named(
            &format!("initial {initial} s, max {max} s, growth {growth}"),
            Policy::Growth(cadence, growth),
            Start::Cold,
        );
        let outcomes = isolated(&named, training, test);
        row(
            &named.name,
            summarise(
                test.iter()
                    .zip(&outcomes)
                    .filter(|(j, _)| j.kind != Kind::PendingPayment),
            ),
        );
    }
    for (title, start, features) in [
        ("warm history", Start::Warm, ALL_FEATURES),
        ("small history", Start::Small, ALL_FEATURES),
        (
            "warm history, sightings only (no server times, no sub-jobs)",
            Start::Warm,
            Features {
                server_times: false,
                sub_jobs: false,
            },
        ),
    ] {
        println!("\n### Sweep: adaptive spacing (isolated, {title}, default intervals)\n");
        header();
        for ms in [800, 1000, 1200, 1500, 2000, 3000, 5000] {
            let named = named(
                &format!("spacing {:.1} s", ms as f64 / 1000.0),
                Policy::Jobwatch(
                    Cadence::default(),
                    Some(Duration::from_millis(ms)),
                    features,
                ),
                start,
            );
            let outcomes = isolated(&named, training, test);
            row(
                &named.name,
                summarise(
                    test.iter()
                        .zip(&outcomes)
                        .filter(|(j, _)| j.kind != Kind::PendingPayment),
                ),
            );
        }
    }
}

/// The schedule of polls (seconds after submission) that minimises
/// `calls + lambda * loss` for jobs whose durations are exactly `runs`,
/// first poll at `first`, gaps at most `cap`, on a grid of `DT` seconds:
/// a dynamic programme over the moment of the last poll. The loss of a
/// job detected `delay` late is `delay` (mean objective) or, with
/// `within` set, 1 when `delay` exceeds it (median objective).
fn optimal_schedule(
    runs: &[f64],
    lambda: f64,
    within: Option<f64>,
    cap: f64,
    first: f64,
) -> Vec<f64> {
    const DT: f64 = 0.25;
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.last().copied().unwrap_or(0.0);
    let n = ((last + cap) / DT).ceil() as usize + 2;
    let t = |i: usize| i as f64 * DT;
    let count = sorted.len().max(1) as f64;
    let cdf: Vec<f64> = (0..n)
        .map(|i| sorted.partition_point(|&r| r <= t(i)) as f64 / count)
        .collect();
    // The integral of the CDF, for the mean delay.
    let mut area = vec![0.0; n];
    for i in 1..n {
        area[i] = area[i - 1] + 0.5 * (cdf[i] + cdf[i - 1]) * DT;
    }
    let reach = (cap / DT).round() as usize;
    let mut value = vec![0.0; n];
    let mut next = vec![usize::MAX; n];
    for i in (0..n.saturating_sub(1)).rev() {
        let survival = 1.0 - cdf[i];
        if survival <= 1e-12 {
            continue;
        }
        let mut best = (f64::INFINITY, usize::MAX);
        for j in (i + 1)..(i + 1 + reach).min(n) {
            let loss = match within {
                None => (area[j] - area[i]) - cdf[i] * (t(j) - t(i)),
                Some(d) => {
                    let late = ((t(j) - d) / DT).floor().max(i as f64) as usize;
                    cdf[late] - cdf[i]
                }
            };
            let cost = survival + lambda * loss + value[j];
            if cost < best.0 {
                best = (cost, j);
            }
        }
        value[i] = best.0;
        next[i] = best.1;
    }
    let mut i = (first / DT).round() as usize;
    let mut polls = vec![t(i)];
    while i < n && next[i] != usize::MAX {
        i = next[i];
        polls.push(t(i));
    }
    polls
}

/// What no policy can beat: for each type, the optimal schedule knowing
/// the type's true durations (those of the measured jobs themselves), with
/// the same first poll (1 s, the middle of `initial_interval`) and the
/// same cap (`max_interval`, 30 s), and without sub-job progress.
fn bound(test: &[Job]) {
    println!(
        "\n### Bound: the optimal schedule per type, knowing the true durations (isolated, no sub-jobs, gaps ≤ 30 s)\n"
    );
    header();
    let jobs: Vec<&Job> = test
        .iter()
        .filter(|j| j.kind != Kind::PendingPayment)
        .collect();
    for (label, lambda, within) in [
        ("mean delay, λ = 1 call per s", 1.0, None),
        ("mean delay, λ = 2", 2.0, None),
        ("mean delay, λ = 3", 3.0, None),
        (
            "share detected within 2 s, λ = 6 calls per job",
            6.0,
            Some(2.0),
        ),
        ("share detected within 2 s, λ = 8", 8.0, Some(2.0)),
        ("share detected within 2 s, λ = 10", 10.0, Some(2.0)),
    ] {
        let mut outcomes = Vec::new();
        for kind in KINDS {
            let runs: Vec<f64> = jobs
                .iter()
                .filter(|j| j.kind == kind)
                .map(|j| j.run)
                .collect();
            let polls = optimal_schedule(&runs, lambda, within, 30.0, 1.0);
            for job in jobs.iter().filter(|j| j.kind == kind) {
                let index = polls.partition_point(|&p| p < job.run).min(polls.len() - 1);
                let outcome = Outcome {
                    calls: index as u32 + 1,
                    delay: Some(polls[index] - job.run),
                    ..Outcome::default()
                };
                outcomes.push((**job, outcome));
            }
        }
        row(
            &format!("optimal for {label}"),
            summarise(outcomes.iter().map(|(j, o)| (j, o))),
        );
    }
}

fn main() {
    let started = Instant::now();
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let mut rng = SmallRng::seed_from_u64(2024);
    let training: Vec<Job> = (0..sizes.training)
        .map(|_| draw_job(&mut rng, false))
        .collect();
    let test: Vec<Job> = (0..sizes.test).map(|_| draw_job(&mut rng, true)).collect();
    let mut arrivals: Vec<(f64, Job)> = (0..sizes.budget_jobs)
        .map(|_| {
            (
                rng.random_range(0.0..sizes.window),
                draw_job(&mut rng, true),
            )
        })
        .collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let batches: Vec<Job> = (0..sizes.batches).map(|_| draw_batch(&mut rng)).collect();

    println!("## Cadence benchmark\n");
    if !full {
        println!("Smoke run (small sets; `cargo bench --bench cadence` measures).\n");
    }
    println!(
        "Seeded, virtual time. Training set {} jobs (PENDING_PAYMENT excluded), measured set {} jobs; peers give up after {PEER_DEADLINE} s.",
        sizes.training, sizes.test
    );
    let mut all = Vec::new();

    let full_names = full_rows();
    let results: Vec<Vec<Outcome>> = full_names
        .iter()
        .map(|n| isolated(n, &training, &test))
        .collect();
    let full_table = Table {
        names: &full_names,
        totals: report("Each job alone", &full_names, &test, &results),
    };

    let small_names = small_rows();
    let results: Vec<Vec<Outcome>> = small_names
        .iter()
        .map(|n| isolated(n, &training, &test))
        .collect();
    let small_table = Table {
        names: &small_names,
        totals: report(
            "Each job alone, small history (10 to 15 finished jobs per type, frozen)",
            &small_names,
            &test,
            &results,
        ),
    };

    let batch_names = batch_rows();
    let results: Vec<Vec<Outcome>> = batch_names
        .iter()
        .map(|n| isolated(n, &training, &batches))
        .collect();
    let batch_table = Table {
        names: &batch_names,
        totals: report_simple(
            &format!(
                "Batches: {} createServer jobs of 2 to 20 sub-jobs, each alone",
                sizes.batches
            ),
            &batch_names,
            &batches,
            &results,
        ),
    };

    let shared_names = shared_rows();
    let jobs: Vec<Job> = arrivals.iter().map(|(_, j)| *j).collect();
    let results: Vec<Vec<Outcome>> = shared_names
        .iter()
        .map(|n| shared(n, &training, &arrivals))
        .collect();
    let title = format!(
        "Shared budget ({} jobs arriving over {} s, {BUDGET_RATE} requests per second)",
        sizes.budget_jobs, sizes.window
    );
    let shared_table = Table {
        names: &shared_names,
        totals: report(&title, &shared_names, &jobs, &results),
    };

    println!("\n### Targets (issue 13)\n");
    if !full {
        println!("(smoke run: the sets are too small for the verdicts to mean anything)\n");
    }
    verdict("small history vs terraform", &small_table, SMALL, 1.0, 0.5);
    verdict("full history vs terraform", &full_table, WARM, 0.75, 0.4);
    verdict(
        "saturated budget vs terraform",
        &shared_table,
        WARM,
        1.0,
        1.0,
    );
    verdict("batches vs terraform", &batch_table, WARM, 1.0, 0.5);
    old_targets("each job alone", &full_table);
    old_targets("shared budget", &shared_table);

    for table in [&full_table, &small_table, &batch_table, &shared_table] {
        all.extend(
            table
                .names
                .iter()
                .zip(&table.totals)
                .map(|(n, s)| (n.name.clone(), *s)),
        );
    }
    if std::env::args().any(|a| a == "--sweep") {
        sweep(&training, &test);
        bound(&test);
    }
    eprintln!("cadence bench: {:.2?} of real time", started.elapsed());
    // A run that measured nothing must not pass for one that did.
    let idle: Vec<&String> = all
        .iter()
        .filter(|(_, s)| s.jobs == 0 || s.calls <= 0.0 || s.p50.is_nan())
        .map(|(name, _)| name)
        .collect();
    if !idle.is_empty() {
        eprintln!("cadence bench: rows that measured nothing: {idle:?}");
        std::process::exit(1);
    }
}
