//! The adaptive cadence: where to poll a running job next, learned from how
//! long finished jobs of the same service and `job_type` took.
//!
//! A pure policy beside [`crate::policy::cadence`]. [`History`] keeps, per
//! service and `job_type` (a CCE `CreateCluster` is not an ECS
//! `createServer`), the newest [`SAMPLE_SIZE`] durations, ideally the
//! exact `end_time - begin_time` of [`crate::policy::server_time`].
//! [`place`] turns them into the gap before the next poll of a job whose
//! age is known ([`Observation`]), or answers `None` when the type has no
//! history at all, and the caller falls back to the plain
//! [`crate::policy::cadence::next_gap`].
//!
//! The estimator ([`Model`]) helps from the first finished job of a type
//! and trusts the type more as its samples grow. It is the posterior mean
//! of a Dirichlet process: with `n` durations of the type, the
//! distribution of the next one is
//!
//! ```text
//! F(x) = n / (n + PRIOR_WEIGHT) * K_n(x) + PRIOR_WEIGHT / (n + PRIOR_WEIGHT) * P(x)
//! ```
//!
//! where `K_n` is the type's own durations, each smoothed into a box of
//! half-width `h_n` in log time (`d * e^-h` to `d * e^h`), and `P` is the
//! prior: a log-normal fitted to every duration of the same service
//! (pooled over its types, its spread at least [`PRIOR_MIN_SIGMA`]), or,
//! for a service with no history, [`DEFAULT_PRIOR_MEDIAN`] and
//! [`DEFAULT_PRIOR_SIGMA`]. The bandwidth is Silverman's rule on the log
//! durations, `h_n = BANDWIDTH_SCALE * sigma_n * n^(-1/5)` within
//! [`MIN_BANDWIDTH`, `MAX_BANDWIDTH`], where `sigma_n` is the type's own
//! spread shrunk toward [`SMALL_SAMPLE_SIGMA`] by one pseudo-sample: one
//! duration gives a wide box and a wide prior share, two hundred give the
//! type's own narrow shape. With no duration of the type the answer is
//! `None`: the plain cadence, exactly as before any history.
//!
//! The placement rule: from age `t`, the next gap `g` is the smallest for
//! which `g * P(done by t + g | not done at t) >= spacing` ([`SPACING`] by
//! default, larger under load: see [`crate::policy::triage`]). Polls are
//! therefore sparse while completion is unlikely and dense where most jobs
//! of the type finish; for small gaps the rule reads `g = sqrt(spacing /
//! hazard)`, the spacing that minimises `calls + delay / (spacing / 2)`.
//! At the default spacing a single job is placed by its type's plan
//! instead: the schedule that minimises the same cost over every later
//! poll, not just the next one (dynamic programming on a grid, rebuilt as
//! the type's history grows by a quarter; see `plan.rs`). The one-step
//! rule remains for other spacings (a loaded budget), batches, and types
//! too wide to plan.
//! Past the point where fewer than [`OVERRUN_SURVIVAL`] of the type's jobs
//! are still running, the job has overrun what history knows, and the gap
//! grows with the age ([`OVERRUN_FRACTION`]). Every gap is at least 1 s and
//! at most `max_interval`, and is jittered by ±[`JITTER`] so that jobs
//! started together do not poll together.
//!
//! Batches ([`Batch`]): a job whose sub-jobs run side by side ends with the
//! last of them. With `m` of its sub-jobs still running at age `t`, each is
//! a job of the sub-job type (or of the parent's type when the sub-job type
//! has no history) known to run past `t`, so the parent is done by `t + g`
//! with probability `q(g)^m`, `q` the conditional completion of one. When
//! every sub-job has finished, the parent is in its tail (the bookkeeping
//! after the last sub-job), placed from the tail durations learned under
//! [`Phase::Tail`] (or [`DEFAULT_TAIL_MEDIAN`]).
//!
//! Only INIT, RUNNING and unknown statuses are for this module: the caller
//! keeps PENDING_PAYMENT, final statuses, 404s and the job timeout with the
//! plain cadence.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::job::Service;
use crate::policy::cadence::Cadence;

mod model;
mod plan;

pub use model::{Conditioned, LogNormal, Model};

/// Durations kept per service, `job_type` and phase: the newest this many.
pub const SAMPLE_SIZE: usize = 200;
/// Pseudo-samples of the prior: how many of its own durations a type needs
/// before it outweighs the prior.
pub const PRIOR_WEIGHT: f64 = 1.0;
/// Scale of the bandwidth rule (Silverman's constant is 1.06 for a normal
/// kernel; the box kernel here is narrower per unit).
pub const BANDWIDTH_SCALE: f64 = 0.9;
/// The narrowest box, in log time (±5 %).
pub const MIN_BANDWIDTH: f64 = 0.05;
/// The widest box, in log time (a factor of 2 either way).
pub const MAX_BANDWIDTH: f64 = 0.7;
/// The spread (standard deviation of log durations) a type is assumed to
/// have before its own durations say otherwise; one pseudo-sample.
pub const SMALL_SAMPLE_SIGMA: f64 = 0.3;
/// The least spread of a service's pooled prior: a prior must stay weakly
/// informative.
pub const PRIOR_MIN_SIGMA: f64 = 0.6;
/// The prior's median for a service with no history.
pub const DEFAULT_PRIOR_MEDIAN: Duration = Duration::from_secs(60);
/// The prior's spread for a service with no history (95 % between 8 s and
/// 7 minutes).
pub const DEFAULT_PRIOR_SIGMA: f64 = 1.0;
/// The median of a batch's tail (last sub-job to the parent's end) before
/// any tail is learned.
pub const DEFAULT_TAIL_MEDIAN: Duration = Duration::from_secs(5);
/// The spread of that default tail.
pub const DEFAULT_TAIL_SIGMA: f64 = 0.8;
/// The product of the gap and the conditional probability of completion
/// within it that the next poll aims at; also the shortest gap the rule
/// chooses before the 1 s floor and jitter.
pub const SPACING: Duration = Duration::from_secs(1);
/// Past the overrun point the gap is this share of the age.
pub const OVERRUN_FRACTION: f64 = 0.25;
/// The survival probability below which a job counts as overrunning.
pub const OVERRUN_SURVIVAL: f64 = 0.01;
/// Relative jitter of an adaptive gap.
pub const JITTER: f64 = 0.1;

/// Which part of a job a duration measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The whole job: `begin_time` to `end_time` (or sightings).
    Whole,
    /// A batch's tail: from the end of its last sub-job to its own end.
    Tail,
}

impl Phase {
    /// The word stored beside a duration: `whole` or `tail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Whole => "whole",
            Phase::Tail => "tail",
        }
    }

    /// The phase of a stored word; unknown words are `whole`.
    pub fn parse(word: &str) -> Phase {
        match word {
            "tail" => Phase::Tail,
            _ => Phase::Whole,
        }
    }
}

/// One stored duration, as [`History::from_records`] reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The job's service.
    pub service: Service,
    /// The job's `job_type`.
    pub job_type: String,
    /// Which part of the job.
    pub phase: Phase,
    /// The duration in milliseconds; negative ones are skipped.
    pub duration_ms: i64,
}

/// Recent durations of finished jobs, per service, `job_type` and phase.
#[derive(Clone, Debug, Default)]
pub struct History {
    services: HashMap<Service, ServiceHistory>,
}

/// One service's types and the moments of all their whole durations (the
/// pooled prior).
#[derive(Clone, Debug, Default)]
struct ServiceHistory {
    types: HashMap<Box<str>, TypeHistory>,
    pooled: Moments,
}

#[derive(Clone, Debug, Default)]
struct TypeHistory {
    whole: Sample,
    tail: Sample,
    /// Whole durations ever recorded (the plan's staleness).
    recorded: u64,
    /// The plan at [`SPACING`], built when first needed.
    plan: RefCell<Option<plan::Slot>>,
}

/// The newest durations of one type and phase: in milliseconds in arrival
/// order for eviction, and as sorted log seconds for the estimator.
#[derive(Clone, Debug, Default)]
struct Sample {
    recent: VecDeque<u32>,
    sorted: Vec<f64>,
    moments: Moments,
}

/// Count, sum and sum of squares of log durations.
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    count: usize,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    fn add(&mut self, x: f64, sign: f64) {
        if sign > 0.0 {
            self.count += 1;
        } else {
            self.count = self.count.saturating_sub(1);
        }
        self.sum += sign * x;
        self.sum_sq += sign * x * x;
        if self.count == 0 {
            self.sum = 0.0;
            self.sum_sq = 0.0;
        }
    }

    fn mean(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    /// The sample variance (zero below two values).
    fn variance(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        let n = self.count as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// Log seconds of a duration in milliseconds (1 ms at least).
fn ln_seconds(ms: u32) -> f64 {
    (f64::from(ms.max(1)) / 1000.0).ln()
}

impl History {
    /// An empty history: every type falls back to the plain cadence.
    pub fn new() -> History {
        History::default()
    }

    /// A history from stored records, oldest first within a type (newer
    /// ones evict older ones past [`SAMPLE_SIZE`]).
    pub fn from_records<I>(records: I) -> History
    where
        I: IntoIterator<Item = Record>,
    {
        let mut history = History::new();
        for record in records {
            let Ok(ms) = u64::try_from(record.duration_ms) else {
                continue;
            };
            let duration = Duration::from_millis(ms);
            history.record_for(record.service, &record.job_type, record.phase, duration);
        }
        history
    }

    /// A history from stored rows `(job_type, duration_ms)` of ECS jobs,
    /// oldest first within a type (the order of `Store::durations`).
    /// Negative durations are skipped. Kept for the scheduler's current
    /// call; [`History::from_records`] is the keyed form.
    pub fn from_rows<I>(rows: I) -> History
    where
        I: IntoIterator<Item = (String, i64)>,
    {
        History::from_records(rows.into_iter().map(|(job_type, duration_ms)| Record {
            service: Service::Ecs,
            job_type,
            phase: Phase::Whole,
            duration_ms,
        }))
    }

    /// Adds the whole duration of a finished ECS job. Kept for the
    /// scheduler's current call; [`History::record_for`] is the keyed form.
    pub fn record(&mut self, job_type: &str, duration: Duration) {
        self.record_for(Service::Ecs, job_type, Phase::Whole, duration);
    }

    /// Adds a duration of a finished job (or of a batch's tail); the
    /// oldest of its key goes when the key already holds [`SAMPLE_SIZE`].
    pub fn record_for(
        &mut self,
        service: Service,
        job_type: &str,
        phase: Phase,
        duration: Duration,
    ) {
        let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        let service_history = self.services.entry(service).or_default();
        let type_history = match service_history.types.get_mut(job_type) {
            Some(found) => found,
            None => service_history
                .types
                .entry(Box::from(job_type))
                .or_default(),
        };
        if phase == Phase::Whole {
            type_history.recorded += 1;
        }
        let sample = match phase {
            Phase::Whole => &mut type_history.whole,
            Phase::Tail => &mut type_history.tail,
        };
        if sample.recent.len() >= SAMPLE_SIZE
            && let Some(oldest) = sample.recent.pop_front()
        {
            let ln = ln_seconds(oldest);
            let index = sample.sorted.partition_point(|&x| x < ln);
            if sample.sorted.get(index) == Some(&ln) {
                sample.sorted.remove(index);
            }
            sample.moments.add(ln, -1.0);
            if phase == Phase::Whole {
                service_history.pooled.add(ln, -1.0);
            }
        }
        let ln = ln_seconds(ms);
        sample.recent.push_back(ms);
        let index = sample.sorted.partition_point(|&x| x <= ln);
        sample.sorted.insert(index, ln);
        sample.moments.add(ln, 1.0);
        if phase == Phase::Whole {
            service_history.pooled.add(ln, 1.0);
        }
    }

    /// How many whole durations are kept for the ECS `job_type`.
    pub fn len(&self, job_type: &str) -> usize {
        self.count(Service::Ecs, job_type, Phase::Whole)
    }

    /// How many durations are kept for a key.
    pub fn count(&self, service: Service, job_type: &str, phase: Phase) -> usize {
        self.sample(service, job_type, phase)
            .map_or(0, |s| s.sorted.len())
    }

    /// Whether no duration is kept at all.
    pub fn is_empty(&self) -> bool {
        self.services.values().all(|s| s.pooled.count == 0)
            && self
                .services
                .values()
                .flat_map(|s| s.types.values())
                .all(|t| t.tail.sorted.is_empty())
    }

    fn sample(&self, service: Service, job_type: &str, phase: Phase) -> Option<&Sample> {
        let type_history = self.services.get(&service)?.types.get(job_type)?;
        Some(match phase {
            Phase::Whole => &type_history.whole,
            Phase::Tail => &type_history.tail,
        })
    }

    /// The prior of a service: its pooled log-normal, or the default.
    pub fn prior(&self, service: Service) -> LogNormal {
        match self.services.get(&service) {
            Some(s) if s.pooled.count > 0 => LogNormal {
                mu: s.pooled.mean(),
                sigma: s.pooled.variance().sqrt().max(PRIOR_MIN_SIGMA),
            },
            _ => LogNormal::with_median(DEFAULT_PRIOR_MEDIAN, DEFAULT_PRIOR_SIGMA),
        }
    }

    /// The estimated distribution of a whole job of this type, or `None`
    /// when the type has no duration yet.
    pub fn model(&self, service: Service, job_type: &str) -> Option<Model<'_>> {
        let sample = self.sample(service, job_type, Phase::Whole)?;
        if sample.sorted.is_empty() {
            return None;
        }
        Some(Model::new(
            &sample.sorted,
            sample.moments.variance(),
            self.prior(service),
        ))
    }

    /// The estimated distribution of a batch's tail for this type: its
    /// learned tails shrunk toward the default tail.
    pub fn tail_model(&self, service: Service, job_type: &str) -> Model<'_> {
        let prior = LogNormal::with_median(DEFAULT_TAIL_MEDIAN, DEFAULT_TAIL_SIGMA);
        match self.sample(service, job_type, Phase::Tail) {
            Some(sample) => Model::new(&sample.sorted, sample.moments.variance(), prior),
            None => Model::new(&[], 0.0, prior),
        }
    }
}

/// What the scheduler knows of a job at work when it places its next poll.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation<'a> {
    /// The job's service.
    pub service: Service,
    /// The job's `job_type`.
    pub job_type: &'a str,
    /// Its age: [`crate::policy::server_time::running_age`].
    pub age: Duration,
    /// Its sub-jobs' progress, when it has at least two.
    pub batch: Option<Batch<'a>>,
}

/// The progress of a job's sub-jobs, from the same answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batch<'a> {
    /// How many sub-jobs the job has: `sub_jobs_total`, else the count of
    /// `sub_jobs` listed.
    pub total: u32,
    /// How many of them are final (SUCCESS or FAIL).
    pub finished: u32,
    /// The job's age when its newest finished sub-job ended: that
    /// sub-job's `end_time` minus the job's `begin_time` when both are
    /// sane, else the job's age at the first answer that showed the
    /// current `finished` count. Only used once every sub-job finished;
    /// `None` is read as "just now".
    pub last_finished_age: Option<Duration>,
    /// The sub-jobs' own `job_type` (`createSingleServer`), when they
    /// state one; its history models one sub-job, else the parent's does.
    pub sub_job_type: Option<&'a str>,
}

/// What is still to come for a job, as a distribution of its remaining
/// time.
#[derive(Clone, Copy, Debug)]
enum Outlook<'h> {
    /// A single job of this model, past its age.
    Single(Conditioned<'h>),
    /// `left` sub-jobs of this model still running past the age.
    Remaining(Conditioned<'h>, u32),
    /// Every sub-job finished; the tail of this model remains, past the
    /// time since the last one ended.
    Tail(Conditioned<'h>),
}

impl Outlook<'_> {
    /// The probability that the job is done within `g` seconds, given it
    /// is not done now.
    fn within(&self, g: f64) -> f64 {
        match *self {
            Outlook::Single(c) | Outlook::Tail(c) => c.within(g),
            Outlook::Remaining(c, left) => c.within(g).powi(left.min(1000) as i32),
        }
    }

    /// The age that the overrun rule scales, when the job has overrun
    /// what history knows; `None` while it has not.
    fn overrun(&self) -> Option<f64> {
        let (Outlook::Single(c) | Outlook::Remaining(c, _) | Outlook::Tail(c)) = *self;
        (c.survival() <= OVERRUN_SURVIVAL).then_some(c.age())
    }
}

impl History {
    /// What is to come for the observed job, or `None` when history knows
    /// nothing of its type (nor, for a batch, of its sub-jobs' type).
    fn outlook(&self, observation: &Observation<'_>) -> Option<Outlook<'_>> {
        let age = observation.age.as_secs_f64();
        let parent = self.model(observation.service, observation.job_type);
        let Some(batch) = observation.batch.filter(|b| b.total >= 2) else {
            return parent.map(|model| Outlook::Single(Conditioned::new(model, age)));
        };
        let sub = batch
            .sub_job_type
            .and_then(|t| self.model(observation.service, t))
            .or(parent)?;
        if batch.finished >= batch.total {
            let ended = batch.last_finished_age.map_or(age, |a| a.as_secs_f64());
            let tail = self.tail_model(observation.service, observation.job_type);
            return Some(Outlook::Tail(Conditioned::new(
                tail,
                (age - ended).max(0.0),
            )));
        }
        Some(Outlook::Remaining(
            Conditioned::new(sub, age),
            batch.total - batch.finished,
        ))
    }
}

/// The gap before the next poll of the observed job, or `None` when
/// history knows nothing of its type (the caller then uses the plain
/// cadence). `spacing` is [`SPACING`], or more under load
/// ([`crate::policy::triage::loaded_spacing`]); `random` is a draw in
/// `[0, 1)` for the jitter.
pub fn place(
    history: &History,
    cadence: &Cadence,
    observation: &Observation<'_>,
    spacing: Duration,
    random: f64,
) -> Option<Duration> {
    let outlook = history.outlook(observation)?;
    let floor = Duration::from_secs(1);
    let ceiling = cadence.max_interval.max(floor);
    let gap = match outlook.overrun() {
        Some(age) => (OVERRUN_FRACTION * age).max(spacing.as_secs_f64()),
        None => {
            let planned = match outlook {
                Outlook::Single(c) if spacing == SPACING => {
                    history.planned_gap(observation, ceiling.as_secs_f64(), c.age())
                }
                _ => None,
            };
            planned.unwrap_or_else(|| {
                placement(&outlook, ceiling.as_secs_f64(), spacing.as_secs_f64())
            })
        }
    };
    let jitter = 1.0 + JITTER * (2.0 * unit(random) - 1.0);
    let gap = Duration::try_from_secs_f64(gap * jitter).unwrap_or(ceiling);
    Some(gap.clamp(floor, ceiling))
}

impl History {
    /// The gap after a poll at `age` from the type's plan at [`SPACING`]
    /// with gaps of at most `cap` seconds, rebuilding the plan when it was
    /// built for another cap or the type's history has grown by a quarter
    /// (at least one duration) since; `None` when the type cannot be
    /// planned or the age is past its plan.
    fn planned_gap(&self, observation: &Observation<'_>, cap: f64, age: f64) -> Option<f64> {
        let type_history = self
            .services
            .get(&observation.service)?
            .types
            .get(observation.job_type)?;
        let count = type_history.whole.sorted.len() as u64;
        let recorded = type_history.recorded;
        let mut slot = type_history.plan.borrow_mut();
        let fresh = slot.as_ref().is_some_and(|s| {
            s.cap == cap && recorded.saturating_sub(s.built_at) < (count / 4).max(1)
        });
        if !fresh {
            let model = self.model(observation.service, observation.job_type)?;
            *slot = Some(plan::Slot {
                cap,
                built_at: recorded,
                plan: plan::Plan::build(model, SPACING.as_secs_f64(), cap),
            });
        }
        slot.as_ref()?.plan.as_ref()?.gap(age)
    }
}

/// The delay before the first poll of a job of `service` whose type and
/// age are not known yet, placed by the same rule from the service's
/// pooled prior as if the job had just begun; `None` when the service has
/// no history (the caller then uses
/// [`crate::policy::cadence::first_delay`]). Meant for a loaded budget
/// (`spacing` above [`SPACING`]): without load the plain first delay
/// (a moment within `initial_interval`) learns a job's type and age
/// sooner, which is worth its call.
pub fn first_gap(
    history: &History,
    cadence: &Cadence,
    service: Service,
    spacing: Duration,
    random: f64,
) -> Option<Duration> {
    if history.services.get(&service)?.pooled.count == 0 {
        return None;
    }
    let model = Model::new(&[], 0.0, history.prior(service));
    let outlook = Outlook::Single(Conditioned::new(model, 0.0));
    let floor = Duration::from_secs(1);
    let ceiling = cadence.max_interval.max(floor);
    let gap = placement(&outlook, ceiling.as_secs_f64(), spacing.as_secs_f64());
    let jitter = 1.0 + JITTER * (2.0 * unit(random) - 1.0);
    let gap = Duration::try_from_secs_f64(gap * jitter).unwrap_or(ceiling);
    Some(gap.clamp(floor, ceiling))
}

/// The probability that a poll `gap` after the observation finds the job
/// done (or, for a batch, a step further), or `None` when history knows
/// nothing of its type: the score [`crate::policy::triage`] ranks by.
pub fn chance(history: &History, observation: &Observation<'_>, gap: Duration) -> Option<f64> {
    let outlook = history.outlook(observation)?;
    Some(outlook.within(gap.as_secs_f64()).clamp(0.0, 1.0))
}

/// The gap before the next poll of an ECS job of `job_type` that is still
/// INIT/RUNNING `elapsed` after its first sighting, or `None` when history
/// of that type is empty. Kept for the scheduler's current call; [`place`]
/// is the keyed form with the job's age and sub-jobs.
pub fn next_gap(
    history: &History,
    cadence: &Cadence,
    job_type: Option<&str>,
    elapsed: Duration,
    random: f64,
) -> Option<Duration> {
    next_gap_with_spacing(history, cadence, job_type, elapsed, random, SPACING)
}

/// [`next_gap`] with another target than [`SPACING`].
pub fn next_gap_with_spacing(
    history: &History,
    cadence: &Cadence,
    job_type: Option<&str>,
    elapsed: Duration,
    random: f64,
    spacing: Duration,
) -> Option<Duration> {
    let observation = Observation {
        service: Service::Ecs,
        job_type: job_type?,
        age: elapsed,
        batch: None,
    };
    place(history, cadence, &observation, spacing, random)
}

/// The smallest gap `g` in `[0, ceiling]` with `g * within(g) >= spacing`;
/// `ceiling` when none is. `g * within(g)` grows with `g`, so a bisection
/// finds it.
fn placement(outlook: &Outlook<'_>, ceiling: f64, spacing: f64) -> f64 {
    let score = |g: f64| g * outlook.within(g);
    if score(ceiling) < spacing {
        return ceiling;
    }
    let (mut low, mut high) = (0.0, ceiling);
    for _ in 0..30 {
        let middle = 0.5 * (low + high);
        if score(middle) >= spacing {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// Clamps a random draw into `[0, 1]`, turning NaN into the middle (no
/// jitter).
fn unit(random: f64) -> f64 {
    if random.is_nan() {
        0.5
    } else {
        random.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests;
