//! The simulator's mutable state behind one lock: live jobs (by service,
//! project and id), fault rules, the rate limiter's window and the counters
//! that `Stats` reports.
//!
//! The lock is a `std::sync::Mutex` that is never held across an `.await`;
//! a poisoned lock is taken over as it is, since every update leaves the
//! state consistent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::scenario::{
    Credential, FaultKind, FaultRule, JobSpec, Scenario, ScenarioError, validate_faults,
    validate_jobs, validate_projects,
};
use super::smn::SmnMessage;
use super::timeline::wall_time;
use crate::job::Service;

/// The length of the rate limiter's and the statistics' sliding window.
const WINDOW: Duration = Duration::from_secs(1);

/// What the simulator has seen, as `GET /_sim/stats` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every request to a job API path or an SMN publish, whatever the
    /// outcome.
    pub requests_total: u64,
    /// Requests answered 401 (signature, date or token).
    pub rejected_auth: u64,
    /// Requests answered 429 by the global rate limit (not by faults).
    pub rejected_rate_limit: u64,
    /// Injected faults by kind (`server_error`, `latency`, ...).
    pub faults_injected: BTreeMap<String, u64>,
    /// The most requests (job queries and SMN publishes) that arrived
    /// within any one second.
    pub max_requests_in_any_1s_window: u64,
    /// Per known job, by its key: the bare id for an ECS job of the
    /// scenario's `project_id`, `SERVICE:ID` for another service's,
    /// `PROJECT_ID/SERVICE:ID` for a job of another project.
    pub jobs: BTreeMap<String, JobStats>,
    /// Per service that was asked (`ecs`, `evs`, ...).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceStats>,
    /// Connections accepted (before any TLS handshake).
    #[serde(default)]
    pub connections: u64,
    /// Connections closed after `idle_timeout` without a request in flight.
    #[serde(default)]
    pub connections_closed_idle: u64,
    /// TLS handshakes that failed or timed out (a client that does not
    /// trust the certificate, for one).
    #[serde(default)]
    pub tls_handshake_failures: u64,
}

/// What the simulator has seen for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStats {
    /// Requests to the service's paths, whatever the outcome.
    pub requests: u64,
    /// Answers with a job body (200), truncated ones not counted.
    pub served: u64,
    /// "No such job" answers.
    pub not_found: u64,
}

/// The identity of a live job: its service, its project (`None`: any
/// project) and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LiveKey {
    /// The service.
    pub service: Service,
    /// The project id, when the job has one.
    pub project: Option<String>,
    /// The job id.
    pub id: String,
}

impl LiveKey {
    /// The key `Stats::jobs` reports the job under, given the scenario's
    /// default project.
    pub fn stats_key(&self, default_project: Option<&str>) -> String {
        let mut key = String::new();
        let other_project = self
            .project
            .as_deref()
            .filter(|project| Some(*project) != default_project);
        if let Some(project) = other_project {
            key.push_str(project);
            key.push('/');
        }
        if other_project.is_some() || self.service != Service::Ecs {
            key.push_str(self.service.as_str());
            key.push(':');
        }
        key.push_str(&self.id);
        key
    }
}

/// What the simulator has seen for one job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStats {
    /// Requests naming this job, whatever the outcome.
    pub requests: u64,
    /// For each status, milliseconds since the simulator's start when a
    /// 200 first carried it.
    pub first_served: BTreeMap<String, u64>,
}

/// A job the simulator serves and the offset its timeline counts from.
#[derive(Debug, Clone)]
pub struct LiveJob {
    /// The job as specified.
    pub spec: JobSpec,
    /// The offset from the simulator's start at which it was added.
    pub base: Duration,
}

/// The simulator's clock: a `tokio::time::Instant` origin, so paused-time
/// tests move it, and the wall time that origin stands for.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall: DateTime<Utc>,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
            start_wall: Utc::now(),
        }
    }

    /// The time since the start.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// The wall time at `offset` after the start.
    pub fn wall(&self, offset: Duration) -> DateTime<Utc> {
        wall_time(self.start_wall, offset)
    }
}

/// Everything the request handlers share.
#[derive(Debug)]
pub struct Shared {
    /// The simulator's clock.
    pub clock: Clock,
    /// The scenario's default project.
    pub project_id: Option<String>,
    /// Every project served; empty: any.
    pub projects: Vec<String>,
    /// Accepted credentials by access key.
    pub credentials: HashMap<String, Credential>,
    /// Requests admitted per sliding second; 0 means no limit.
    pub requests_per_second: u32,
    state: Mutex<State>,
}

/// The part that changes.
#[derive(Debug, Default)]
pub struct State {
    /// Live jobs.
    pub jobs: HashMap<LiveKey, LiveJob>,
    /// The fault rules, in order.
    pub faults: Vec<FaultRule>,
    /// The counters.
    pub stats: Stats,
    /// Every message SMN topics received, in arrival order.
    pub smn_messages: Vec<SmnMessage>,
    arrivals: VecDeque<Instant>,
    admitted: VecDeque<Instant>,
}

impl Shared {
    /// Validates `scenario` and builds the state, with the clock starting now.
    pub fn new(scenario: Scenario) -> Result<Arc<Shared>, ScenarioError> {
        scenario.validate()?;
        let clock = Clock::start();
        let projects = scenario.served_projects();
        let mut state = State {
            faults: scenario.faults,
            ..State::default()
        };
        for spec in scenario.jobs {
            let key = live_key(&spec, scenario.project_id.as_deref());
            let stats_key = key.stats_key(scenario.project_id.as_deref());
            state.stats.jobs.entry(stats_key).or_default();
            state.jobs.insert(
                key,
                LiveJob {
                    spec,
                    base: Duration::ZERO,
                },
            );
        }
        let credentials = scenario
            .credentials
            .into_iter()
            .map(|credential| (credential.access_key.clone(), credential))
            .collect();
        Ok(Arc::new(Shared {
            clock,
            project_id: scenario.project_id,
            projects,
            credentials,
            requests_per_second: scenario.limits.requests_per_second,
            state: Mutex::new(state),
        }))
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Validates `jobs` and adds them with timelines starting now; a job
    /// whose id already exists is replaced (its counters are kept).
    pub fn add_jobs(&self, jobs: Vec<JobSpec>) -> Result<usize, ScenarioError> {
        validate_jobs(&jobs)?;
        validate_projects(&jobs, &self.projects)?;
        let base = self.clock.elapsed();
        let count = jobs.len();
        let mut state = self.lock();
        for spec in jobs {
            let key = live_key(&spec, self.project_id.as_deref());
            let stats_key = self.stats_key(&key);
            state.stats.jobs.entry(stats_key).or_default();
            state.jobs.insert(key, LiveJob { spec, base });
        }
        Ok(count)
    }

    /// The key `Stats::jobs` reports a job under.
    pub fn stats_key(&self, key: &LiveKey) -> String {
        key.stats_key(self.project_id.as_deref())
    }

    /// Whether requests for `project_id` are served.
    pub fn serves_project(&self, project_id: &str) -> bool {
        self.projects.is_empty() || self.projects.iter().any(|known| known == project_id)
    }

    /// Validates `faults` and replaces the rule list with them.
    pub fn set_faults(&self, faults: Vec<FaultRule>) -> Result<usize, ScenarioError> {
        validate_faults(&faults)?;
        let count = faults.len();
        self.lock().faults = faults;
        Ok(count)
    }
}

/// The live key of a job, given the scenario's default project.
fn live_key(spec: &JobSpec, default_project: Option<&str>) -> LiveKey {
    LiveKey {
        service: spec.service,
        project: spec.project.clone().or(default_project.map(str::to_string)),
        id: spec.id.clone(),
    }
}

impl State {
    /// The live job of `service` with `id` in `project`: the job of that
    /// project, else a job of any project.
    pub fn find(
        &self,
        service: Service,
        project: Option<&str>,
        id: &str,
    ) -> Option<(&LiveKey, &LiveJob)> {
        let exact = LiveKey {
            service,
            project: project.map(str::to_string),
            id: id.to_string(),
        };
        if let Some(found) = self.jobs.get_key_value(&exact) {
            return Some(found);
        }
        let any = LiveKey {
            project: None,
            ..exact
        };
        self.jobs.get_key_value(&any)
    }

    /// Counts a request to `service` arriving at `now` for the job
    /// reported as `job_key`, and updates the busiest-second statistic.
    pub fn record_arrival(&mut self, now: Instant, service: Service, job_key: Option<&str>) {
        self.stats.requests_total += 1;
        self.service_stats(service).requests += 1;
        prune(&mut self.arrivals, now);
        self.arrivals.push_back(now);
        let in_window = self.arrivals.len() as u64;
        if in_window > self.stats.max_requests_in_any_1s_window {
            self.stats.max_requests_in_any_1s_window = in_window;
        }
        if let Some(job_key) = job_key
            && let Some(job_stats) = self.stats.jobs.get_mut(job_key)
        {
            job_stats.requests += 1;
        }
    }

    /// Counts an SMN publish at `now`: in `requests_total`, the busiest
    /// second and `services["smn"]`, like a job query.
    pub fn record_smn_arrival(&mut self, now: Instant) {
        self.stats.requests_total += 1;
        self.stats
            .services
            .entry("smn".to_string())
            .or_default()
            .requests += 1;
        prune(&mut self.arrivals, now);
        self.arrivals.push_back(now);
        let in_window = self.arrivals.len() as u64;
        if in_window > self.stats.max_requests_in_any_1s_window {
            self.stats.max_requests_in_any_1s_window = in_window;
        }
    }

    /// Records a message a topic accepted.
    pub fn record_smn_message(&mut self, message: SmnMessage) {
        self.stats
            .services
            .entry("smn".to_string())
            .or_default()
            .served += 1;
        self.smn_messages.push(message);
    }

    /// The counters of `service`.
    pub fn service_stats(&mut self, service: Service) -> &mut ServiceStats {
        self.stats
            .services
            .entry(service.as_str().to_string())
            .or_default()
    }

    /// Admits a request at `now` under a limit of `limit` per sliding
    /// second, or counts it as rejected and returns false.
    pub fn admit(&mut self, now: Instant, limit: u32) -> bool {
        if limit == 0 {
            return true;
        }
        prune(&mut self.admitted, now);
        if self.admitted.len() >= limit as usize {
            self.stats.rejected_rate_limit += 1;
            return false;
        }
        self.admitted.push_back(now);
        true
    }

    /// Counts one injected fault.
    pub fn record_fault(&mut self, kind: FaultKind) {
        *self
            .stats
            .faults_injected
            .entry(kind.as_str().to_string())
            .or_default() += 1;
    }

    /// Notes that a 200 for the job reported as `job_key` carried `status`
    /// at `elapsed` after the simulator's start.
    pub fn record_served(
        &mut self,
        service: Service,
        job_key: &str,
        status: &str,
        elapsed: Duration,
    ) {
        self.service_stats(service).served += 1;
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.stats
            .jobs
            .entry(job_key.to_string())
            .or_default()
            .first_served
            .entry(status.to_string())
            .or_insert(millis);
    }
}

/// Drops the instants that are a full window or more before `now`, so the
/// deque holds exactly the arrivals in `(now - 1 s, now]`.
fn prune(window: &mut VecDeque<Instant>, now: Instant) {
    while let Some(&front) = window.front() {
        if now.saturating_duration_since(front) >= WINDOW {
            window.pop_front();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
