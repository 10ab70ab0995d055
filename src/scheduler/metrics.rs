//! The scheduler's metrics (beside the outcome of each call, counted in
//! [`super::outcome`]): the events it announces (transitions by status and service, finished jobs by service
//! and job type), and the gauges recomputed once per tick by walking every
//! job (jobs by status, the oldest unpaid job by service and job type).
//!
//! `job_type` is a label only where an alert needs it (which kind of job
//! failed, which kind waits for payment); it comes from the job API's own
//! closed set of operations per service, never from a job id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Scheduler;
use crate::job::{Service, Status};
use crate::output::event::{Event, Kind};
use crate::telemetry;

/// Counts an announced event: by name, and a transition by its new status
/// and service; a transition into a final status also by job type.
pub(super) fn count_event(event: &Event) {
    ::metrics::counter!(telemetry::EVENTS, "event" => event.name()).increment(1);
    let Kind::Transition(transition) = &event.kind else {
        return;
    };
    let service = transition.job.key.service.as_str();
    let label = telemetry::status_label(transition.status.as_str());
    ::metrics::counter!(telemetry::TRANSITIONS, "status" => label, "service" => service)
        .increment(1);
    // Both outcomes of a job type exist from its first sighting, so that
    // the first failure is an increase from 0. A job whose service sent no
    // type counts as `unknown`.
    let job_type = transition.job_type.as_deref().unwrap_or("unknown");
    telemetry::export_job_type(service, job_type);
    if transition.status.is_final() {
        telemetry::count_job_finished(service, job_type, label);
    }
}

/// Exports the outcome series of every job type the store has durations
/// of (the job types of this account), at 0.
pub(super) fn export_known_job_types<'a>(known: impl Iterator<Item = (Service, &'a str)>) {
    for (service, job_type) in known {
        telemetry::export_job_type(service.as_str(), job_type);
    }
}

impl Scheduler {
    /// Counting by status walks every job, so it is done once per tick
    /// rather than per poll. The same walk finds, per service and job type,
    /// since when the oldest unpaid job has waited.
    pub(super) fn count_by_status(&mut self) {
        const LABELS: [&str; 5] = ["UNSEEN", "INIT", "RUNNING", "PENDING_PAYMENT", "OTHER"];
        let mut counts = [0u64; 5];
        let mut unpaid: HashMap<(Service, Option<Arc<str>>), i64> = HashMap::new();
        for (key, tracked) in &self.jobs {
            let index = match &tracked.status {
                None => 0,
                Some(Status::Init) => 1,
                Some(Status::Running) => 2,
                Some(Status::PendingPayment) => 3,
                Some(_) => 4,
            };
            counts[index] += 1;
            if index == 3 {
                let since = tracked
                    .record
                    .last_change_ms
                    .unwrap_or(tracked.record.tracked_since_ms);
                let oldest = unpaid
                    .entry((key.service, tracked.job_type.clone()))
                    .or_insert(since);
                *oldest = (*oldest).min(since);
            }
        }
        self.stats
            .pending_payment
            .store(counts[3], Ordering::Relaxed);
        for (label, count) in LABELS.iter().zip(counts) {
            ::metrics::gauge!(telemetry::JOBS_TRACKED, "status" => *label).set(count as f64);
        }
        // A series whose last unpaid job went is set to 0, not left at its
        // old time.
        for (service, job_type) in self.unpaid_series.drain() {
            if !unpaid.contains_key(&(service, job_type.clone())) {
                telemetry::set_pending_payment_since(service.as_str(), job_type.as_deref(), None);
            }
        }
        for ((service, job_type), since) in unpaid {
            telemetry::set_pending_payment_since(
                service.as_str(),
                job_type.as_deref(),
                Some(since),
            );
            self.unpaid_series.insert((service, job_type));
        }
    }
}
