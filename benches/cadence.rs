//! The cadence benchmark: the same ECS-shaped jobs waited on by each peer's
//! polling policy and by ecs-jobwatch's plain and adaptive cadence, in
//! virtual time. Prints markdown tables of API calls per job and detection
//! delay (first poll at or after completion minus completion).
//!
//! `cargo bench --bench cadence` runs it; `-- --sweep` adds a sweep of the
//! plain cadence's intervals and of the adaptive spacing. Everything is
//! seeded, so two runs print the same tables.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use ecs_jobwatch::job::Status as JobStatus;
use ecs_jobwatch::policy::adaptive::{self, History};
use ecs_jobwatch::policy::cadence::{self, Cadence, Situation};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Peers give up after terraform's default timeout.
const PEER_DEADLINE: f64 = 1800.0;
/// How long a PENDING_PAYMENT job is followed.
const HORIZON: f64 = 6.0 * 3600.0;
/// Jobs in the training set that warms the adaptive history.
const TRAINING: usize = 500;
/// Jobs in the measured set of the isolated scenario.
const TEST: usize = 4000;
/// Jobs in the shared-budget scenario, arriving over `ARRIVAL_WINDOW`.
const BUDGET_JOBS: usize = 1000;
const ARRIVAL_WINDOW: f64 = 600.0;
/// Shared budget: requests per second.
const BUDGET_RATE: f64 = 5.0;

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
/// running for `run` seconds.
#[derive(Clone, Copy, Debug)]
struct Job {
    kind: Kind,
    pending: Option<Option<f64>>,
    run: f64,
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
    let run = match kind {
        Kind::Power => rng.random_range(15.0..35.0),
        Kind::Create | Kind::PendingPayment => creation(rng),
        Kind::Batch => {
            let n = rng.random_range(2..=20);
            let slowest = (0..n).map(|_| creation(rng)).fold(0.0, f64::max);
            slowest + rng.random_range(3.0..10.0)
        }
        Kind::Delete => 10.0 + 15.0 * (0.5 * normal(rng)).exp(),
        Kind::Resize => rng.random_range(90.0..240.0),
        Kind::ChangeOs => 90.0 + 75.0 * (rng.random::<f64>() + rng.random::<f64>()),
    };
    let pending = (kind == Kind::PendingPayment)
        .then(|| (rng.random::<f64>() < 0.7).then(|| rng.random_range(900.0..5.0 * 3600.0)));
    Job { kind, pending, run }
}

/// A policy: how to wait on one job.
#[derive(Clone, Copy, Debug)]
enum Policy {
    GolangSdk,
    Terraform,
    StateChangeConf,
    Smithy,
    /// ecs-jobwatch with this cadence; adaptive with this spacing or plain.
    Jobwatch(Cadence, Option<Duration>),
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
            running_since: None,
            next_wait: 0.1,
        }
    }
}

/// The state of one policy waiting on one job.
struct Waiter {
    policy: Policy,
    polls: u32,
    status: Option<Seen>,
    streak: u32,
    status_since: f64,
    running_since: Option<f64>,
    next_wait: f64,
}

impl Waiter {
    /// Delay from submission to the first poll.
    fn first(&mut self, rng: &mut SmallRng) -> f64 {
        match self.policy {
            Policy::GolangSdk | Policy::Terraform => 5.0,
            Policy::StateChangeConf | Policy::Smithy => 0.0,
            Policy::Jobwatch(c, _) | Policy::Growth(c, _) => {
                cadence::first_delay(&c, rng.random()).as_secs_f64()
            }
        }
    }

    /// After a poll at `now` that saw `seen` (not done): when to poll
    /// next, or `None` when the policy gives up.
    fn next(
        &mut self,
        job: &Job,
        now: f64,
        seen: Seen,
        history: &History,
        rng: &mut SmallRng,
    ) -> Option<f64> {
        self.polls += 1;
        if self.status != Some(seen) {
            self.status = Some(seen);
            self.streak = 0;
            self.status_since = now;
            if seen == Seen::Running {
                self.running_since = Some(now);
            }
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
            Policy::Jobwatch(c, spacing) => {
                let status = match seen {
                    Seen::Pending => JobStatus::PendingPayment,
                    _ => JobStatus::Running,
                };
                let random = rng.random();
                let adaptive_gap = match (spacing, seen, self.running_since) {
                    (Some(spacing), Seen::Running, Some(since)) => adaptive::next_gap_with_spacing(
                        history,
                        &c,
                        Some(job.kind.job_type()),
                        Duration::from_secs_f64(now - since),
                        random,
                        spacing,
                    ),
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
                Some(now + gap.as_secs_f64())
            }
        }
    }

    /// What ecs-jobwatch records when it sees the job done at `now`: the
    /// time from its first sighting in INIT/RUNNING.
    fn learned(&self, now: f64) -> Option<Duration> {
        match self.policy {
            Policy::Jobwatch(_, Some(_)) => {
                let since = self.running_since.unwrap_or(now);
                Some(Duration::from_secs_f64(now - since))
            }
            _ => None,
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

/// Waits on one job alone; learns from it when the policy does.
fn run_alone(policy: Policy, job: &Job, history: &mut History, rng: &mut SmallRng) -> Outcome {
    let mut waiter = policy.waiter();
    let mut outcome = Outcome::default();
    let mut now = waiter.first(rng);
    while now <= HORIZON {
        let seen = job.seen(now);
        outcome.observe(job, now, seen);
        if seen == Seen::Done {
            if let Some(d) = waiter.learned(now) {
                history.record(job.kind.job_type(), d);
            }
            break;
        }
        match waiter.next(job, now, seen, history, rng) {
            Some(next) => now = next,
            None => break,
        }
    }
    outcome
}

/// All jobs share one budget of `BUDGET_RATE` calls per second; due polls
/// are served earliest first.
fn run_shared(
    policy: Policy,
    jobs: &[(f64, Job)],
    history: &mut History,
    rng: &mut SmallRng,
) -> Vec<Outcome> {
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
            if let Some(d) = waiters[i].learned(now) {
                history.record(job.kind.job_type(), d);
            }
            continue;
        }
        if let Some(next) = waiters[i].next(job, now, seen, history, rng) {
            let due = arrival + next;
            queue.push(Reverse((key(due), i, due.to_bits())));
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

struct Named {
    name: String,
    policy: Policy,
    /// Warm the history with the training set first.
    warm: bool,
}

fn jobwatch(cadence: Cadence, spacing: Option<Duration>) -> Policy {
    Policy::Jobwatch(cadence, spacing)
}

fn policies(cadence: Cadence) -> Vec<Named> {
    let named = |name: &str, policy, warm| Named {
        name: name.to_string(),
        policy,
        warm,
    };
    vec![
        named(
            "golangsdk WaitForJobSuccess (5 s, then 10 s)",
            Policy::GolangSdk,
            false,
        ),
        named(
            "terraform-provider-huaweicloud (Delay 5 s, PollInterval 10 s)",
            Policy::Terraform,
            false,
        ),
        named(
            "hashicorp StateChangeConf defaults (0.1 s doubling to 10 s)",
            Policy::StateChangeConf,
            false,
        ),
        named(
            "Smithy waiter defaults (2 s / 120 s, full jitter)",
            Policy::Smithy,
            false,
        ),
        named(
            "ecs-jobwatch plain (= adaptive without history)",
            jobwatch(cadence, None),
            false,
        ),
        named(
            "ecs-jobwatch adaptive, cold start (learns during the run)",
            jobwatch(cadence, Some(adaptive::SPACING)),
            false,
        ),
        named(
            "ecs-jobwatch adaptive, warm history (default)",
            jobwatch(cadence, Some(adaptive::SPACING)),
            true,
        ),
    ]
}

/// The history ecs-jobwatch would have after the training set.
fn warm_history(policy: Policy, training: &[Job], seed: u64) -> History {
    let mut history = History::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    for job in training {
        run_alone(policy, job, &mut history, &mut rng);
    }
    history
}

fn isolated(named: &Named, training: &[Job], test: &[Job]) -> Vec<Outcome> {
    let mut history = if named.warm {
        warm_history(named.policy, training, 11)
    } else {
        History::new()
    };
    let mut rng = SmallRng::seed_from_u64(12);
    test.iter()
        .map(|job| run_alone(named.policy, job, &mut history, &mut rng))
        .collect()
}

fn shared(named: &Named, training: &[Job], jobs: &[(f64, Job)]) -> Vec<Outcome> {
    let mut history = if named.warm {
        warm_history(named.policy, training, 11)
    } else {
        History::new()
    };
    let mut rng = SmallRng::seed_from_u64(13);
    run_shared(named.policy, jobs, &mut history, &mut rng)
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

fn verdict(label: &str, holds: bool, detail: String) {
    let mark = if holds { "holds" } else { "FAILS" };
    println!("- {label}: **{mark}** ({detail})");
}

fn targets(title: &str, totals: &[Summary]) {
    let (terraform, plain, adaptive) = (totals[1], totals[4], totals[6]);
    println!("\n### Targets, {title}\n");
    verdict(
        "plain vs terraform: no more calls per job and no longer median delay",
        plain.calls <= terraform.calls && plain.p50 <= terraform.p50,
        format!(
            "calls {:.2} vs {:.2}, p50 {:.1} s vs {:.1} s",
            plain.calls, terraform.calls, plain.p50, terraform.p50
        ),
    );
    verdict(
        "adaptive vs terraform: no more calls per job and at most half the median delay",
        adaptive.calls <= terraform.calls && adaptive.p50 <= terraform.p50 / 2.0,
        format!(
            "calls {:.2} vs {:.2}, p50 {:.1} s vs {:.1} s",
            adaptive.calls, terraform.calls, adaptive.p50, terraform.p50
        ),
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
        {
            let named = Named {
                name: format!("initial {initial} s, max {max} s, growth {growth}"),
                policy: Policy::Growth(cadence, growth),
                warm: false,
            };
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
    println!("\n### Sweep: adaptive spacing (isolated, warm history, default intervals)\n");
    header();
    for ms in [800, 1000, 1200, 1500, 2000, 3000, 5000] {
        let named = Named {
            name: format!("spacing {:.1} s", ms as f64 / 1000.0),
            policy: jobwatch(Cadence::default(), Some(Duration::from_millis(ms))),
            warm: true,
        };
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

fn main() {
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(2024);
    let training: Vec<Job> = (0..TRAINING).map(|_| draw_job(&mut rng, false)).collect();
    let test: Vec<Job> = (0..TEST).map(|_| draw_job(&mut rng, true)).collect();
    let mut arrivals: Vec<(f64, Job)> = (0..BUDGET_JOBS)
        .map(|_| {
            (
                rng.random_range(0.0..ARRIVAL_WINDOW),
                draw_job(&mut rng, true),
            )
        })
        .collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));

    let names = policies(Cadence::default());
    println!("## Cadence benchmark\n");
    println!(
        "Seeded, virtual time. Training set {TRAINING} jobs (PENDING_PAYMENT excluded), measured set {TEST} jobs; peers give up after {PEER_DEADLINE} s."
    );
    let results: Vec<Vec<Outcome>> = names
        .iter()
        .map(|n| isolated(n, &training, &test))
        .collect();
    let isolated_totals = report("Each job alone", &names, &test, &results);

    let jobs: Vec<Job> = arrivals.iter().map(|(_, j)| *j).collect();
    let results: Vec<Vec<Outcome>> = names
        .iter()
        .map(|n| shared(n, &training, &arrivals))
        .collect();
    let title = format!(
        "Shared budget ({BUDGET_JOBS} jobs arriving over {ARRIVAL_WINDOW} s, {BUDGET_RATE} requests per second)"
    );
    let shared_totals = report(&title, &names, &jobs, &results);

    targets("each job alone", &isolated_totals);
    targets("shared budget", &shared_totals);

    if std::env::args().any(|a| a == "--sweep") {
        sweep(&training, &test);
    }
    eprintln!("cadence bench: {:.2?} of real time", started.elapsed());
}
