//! The names of every metric, their descriptions, and the label values
//! they take. Labels come from closed sets only (statuses, outcomes,
//! error types, event names, services, sink names): never a job id or a
//! URL, which would explode the number of series.

/// Jobs being tracked, by status (gauge).
pub const JOBS_TRACKED: &str = "ecs_jobwatch_jobs_tracked";
/// Calls to the job API, by outcome (counter).
pub const POLLS: &str = "ecs_jobwatch_polls_total";
/// Failed calls, by `error_type` (counter).
pub const API_ERRORS: &str = "ecs_jobwatch_api_errors_total";
/// Duration of one call (histogram, seconds).
pub const API_REQUEST_DURATION: &str = "ecs_jobwatch_api_request_duration_seconds";
/// Transitions announced, by new status (counter).
pub const TRANSITIONS: &str = "ecs_jobwatch_transitions_total";
/// Events emitted, by event name (counter).
pub const EVENTS: &str = "ecs_jobwatch_events_total";
/// Each stretch of time the scheduler waited for the request budget
/// (histogram, seconds).
pub const BUDGET_WAIT: &str = "ecs_jobwatch_budget_wait_seconds";
/// How late polls started versus when they were due (histogram, seconds).
pub const SCHEDULER_LAG: &str = "ecs_jobwatch_scheduler_lag_seconds";
/// Latency of one state store transaction (histogram, seconds).
pub const STATE_WRITE: &str = "ecs_jobwatch_state_write_seconds";
/// How long finished jobs worked, by `service` and `job_type`
/// (histogram, seconds). `job_type` comes from the job API's own closed
/// set of operations per service (`createServers`, `createVolume`, ...),
/// so its cardinality is bounded by the API, not by the number of jobs.
pub const JOB_DURATION: &str = "ecs_jobwatch_job_duration_seconds";
/// Jobs that reached a final status, by `service`, `job_type` and
/// `status` (`SUCCESS`, `FAIL`) (counter). Both statuses of a job type are
/// exported at 0 from the first sighting of a job of that type (and at
/// start for every job type the store has durations of).
pub const JOBS_FINISHED: &str = "ecs_jobwatch_jobs_finished_total";
/// Since when the oldest job in PENDING_PAYMENT has waited, as Unix
/// seconds, by `service` and `job_type` (gauge; 0 once none waits).
pub const PENDING_PAYMENT_SINCE: &str = "ecs_jobwatch_pending_payment_oldest_timestamp_seconds";
/// Whether `/readyz` would answer 200 (gauge, 1 or 0), refreshed at each
/// scrape.
pub const READY: &str = "ecs_jobwatch_ready";
/// Deliveries to a notification sink (webhook or SMN topic), by `sink`
/// (its stable name), `kind` (`webhook`, `smn`) and `result`
/// (`delivered`, `failed`, `dropped`) (counter).
pub const NOTIFY_DELIVERIES: &str = "ecs_jobwatch_notify_deliveries_total";
/// Delivery attempts that were retries, by `sink` and `kind` (counter).
pub const NOTIFY_RETRIES: &str = "ecs_jobwatch_notify_retries_total";
/// Undelivered events, by `sink` and `kind` (gauge).
pub const NOTIFY_QUEUE_DEPTH: &str = "ecs_jobwatch_notify_queue_depth";
/// When the oldest undelivered event was queued, as Unix seconds, by
/// `sink` and `kind` (gauge; 0 while nothing waits). An alert compares it
/// with `time()`.
pub const NOTIFY_OLDEST_UNDELIVERED: &str =
    "ecs_jobwatch_notify_oldest_undelivered_timestamp_seconds";
/// Whether a sink is paused because its service refused the credentials
/// (an SMN topic answering 403), by `sink` and `kind` (gauge, 0 or 1).
pub const NOTIFY_PAUSED: &str = "ecs_jobwatch_notify_paused";
/// Build information (gauge, always 1).
pub const BUILD_INFO: &str = "ecs_jobwatch_build_info";

pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(JOBS_TRACKED, "Jobs being tracked, by status.");
    describe_counter!(POLLS, "Calls to the job API, by outcome.");
    describe_counter!(API_ERRORS, "Failed calls to the job API, by error_type.");
    describe_histogram!(
        API_REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "Duration of one job API call."
    );
    describe_counter!(TRANSITIONS, "Status transitions announced, by new status.");
    describe_counter!(EVENTS, "Events emitted, by event.");
    describe_histogram!(
        BUDGET_WAIT,
        ::metrics::Unit::Seconds,
        "Each stretch of time the scheduler waited for the request budget."
    );
    describe_histogram!(
        SCHEDULER_LAG,
        ::metrics::Unit::Seconds,
        "How late polls started versus when they were due."
    );
    describe_histogram!(
        STATE_WRITE,
        ::metrics::Unit::Seconds,
        "Latency of one state store transaction."
    );
    describe_histogram!(
        JOB_DURATION,
        ::metrics::Unit::Seconds,
        "How long finished jobs worked, by service and job_type."
    );
    describe_counter!(
        JOBS_FINISHED,
        "Jobs that reached a final status, by service, job_type and status."
    );
    describe_gauge!(
        PENDING_PAYMENT_SINCE,
        ::metrics::Unit::Seconds,
        "Since when the oldest job in PENDING_PAYMENT has waited (Unix seconds; 0 once none waits), by service and job_type."
    );
    describe_gauge!(READY, "Whether /readyz answers 200 (1) or not (0).");
    describe_counter!(
        NOTIFY_DELIVERIES,
        "Deliveries to a notification sink, by sink, kind and result."
    );
    describe_counter!(
        NOTIFY_RETRIES,
        "Delivery attempts that were retries, by sink and kind."
    );
    describe_gauge!(NOTIFY_QUEUE_DEPTH, "Undelivered events, by sink and kind.");
    describe_gauge!(
        NOTIFY_OLDEST_UNDELIVERED,
        ::metrics::Unit::Seconds,
        "When the oldest undelivered event was queued (Unix seconds; 0 while nothing waits)."
    );
    describe_gauge!(
        NOTIFY_PAUSED,
        "Whether a sink is paused because its service refused the credentials."
    );
    describe_gauge!(BUILD_INFO, "Build information.");
}

/// The `status` label values of [`TRANSITIONS`] and [`JOBS_TRACKED`]'s
/// statuses of the common vocabulary (anything else is `OTHER`).
pub const STATUS_LABELS: [&str; 6] = [
    "INIT",
    "RUNNING",
    "SUCCESS",
    "FAIL",
    "PENDING_PAYMENT",
    "OTHER",
];

/// The `result` label values of [`NOTIFY_DELIVERIES`].
pub const DELIVERY_RESULTS: [&str; 3] = ["delivered", "failed", "dropped"];

/// A status as a metric label: the known ones, else `OTHER`.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "INIT" => "INIT",
        "RUNNING" => "RUNNING",
        "SUCCESS" => "SUCCESS",
        "FAIL" => "FAIL",
        "PENDING_PAYMENT" => "PENDING_PAYMENT",
        _ => "OTHER",
    }
}

/// The `outcome` label values of [`POLLS`]: `ok`, or the call's
/// `error_type` (including `not_found`, an answer about the job).
pub fn poll_outcomes() -> impl Iterator<Item = &'static str> {
    std::iter::once("ok").chain(super::stats::ERROR_TYPES)
}

/// Exports every known label combination of the counters at 0, so that a
/// series exists from the first scrape and `increase(...)` sees its first
/// step (a series that appears at 1 shows no increase): transitions by
/// status and service, polls by outcome and service, API errors by
/// `error_type` (`not_found` is not an API error), and events by name.
/// The histograms without labels are registered empty. `event_names`
/// comes from the caller (`output::event::NAMES`), which sits
/// above this module. The sinks' series are exported by their delivery
/// tasks when they start.
pub fn export_known(event_names: &[&'static str]) {
    use crate::job::Service;
    for service in Service::ALL {
        let service = service.as_str();
        for status in STATUS_LABELS {
            ::metrics::counter!(TRANSITIONS, "status" => status, "service" => service).increment(0);
        }
        for outcome in poll_outcomes() {
            ::metrics::counter!(POLLS, "outcome" => outcome, "service" => service).increment(0);
        }
    }
    for error_type in super::stats::ERROR_TYPES {
        if error_type != "not_found" {
            ::metrics::counter!(API_ERRORS, "error_type" => error_type).increment(0);
        }
    }
    for name in event_names {
        ::metrics::counter!(EVENTS, "event" => *name).increment(0);
    }
    // The histograms without labels exist from the start too, empty.
    for histogram in [
        API_REQUEST_DURATION,
        SCHEDULER_LAG,
        BUDGET_WAIT,
        STATE_WRITE,
    ] {
        let _ = ::metrics::histogram!(histogram);
    }
}

/// Exports the series of one notification sink at their start values:
/// its delivery counters by result and its retries at 0, an empty queue,
/// and not paused. The delivery task then keeps them current.
pub fn export_sink(sink: &str, kind: &'static str) {
    for result in DELIVERY_RESULTS {
        ::metrics::counter!(NOTIFY_DELIVERIES, "sink" => sink.to_string(), "kind" => kind, "result" => result)
            .increment(0);
    }
    ::metrics::counter!(NOTIFY_RETRIES, "sink" => sink.to_string(), "kind" => kind).increment(0);
    ::metrics::gauge!(NOTIFY_QUEUE_DEPTH, "sink" => sink.to_string(), "kind" => kind).set(0.0);
    ::metrics::gauge!(NOTIFY_OLDEST_UNDELIVERED, "sink" => sink.to_string(), "kind" => kind)
        .set(0.0);
    ::metrics::gauge!(NOTIFY_PAUSED, "sink" => sink.to_string(), "kind" => kind).set(0.0);
}

/// Records how long a finished job worked. `job_type` is cut to 64
/// characters, a guard against a service that put ids in it.
pub fn record_job_duration(service: &'static str, job_type: &str, duration_ms: i64) {
    let job_type = job_type_label(job_type);
    let seconds = duration_ms.max(0) as f64 / 1000.0;
    ::metrics::histogram!(JOB_DURATION, "service" => service, "job_type" => job_type)
        .record(seconds);
}

/// A job type as a label: cut to 64 characters, a guard against a service
/// that put ids in it.
fn job_type_label(job_type: &str) -> String {
    job_type.chars().take(64).collect()
}

/// Exports both outcomes of a job type at 0 (a no-op when they exist).
pub fn export_job_type(service: &'static str, job_type: &str) {
    for status in ["SUCCESS", "FAIL"] {
        ::metrics::counter!(JOBS_FINISHED, "service" => service, "job_type" => job_type_label(job_type), "status" => status)
            .increment(0);
    }
}

/// Counts a job that reached a final status.
pub fn count_job_finished(service: &'static str, job_type: &str, status: &'static str) {
    ::metrics::counter!(JOBS_FINISHED, "service" => service, "job_type" => job_type_label(job_type), "status" => status)
        .increment(1);
}

/// Sets since when (Unix ms) the oldest unpaid job of a service and job
/// type has waited; `None` once none waits (the series stays, at 0).
pub fn set_pending_payment_since(
    service: &'static str,
    job_type: Option<&str>,
    since_ms: Option<i64>,
) {
    let job_type = job_type.map_or_else(|| "unknown".to_string(), job_type_label);
    let value = since_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
    ::metrics::gauge!(PENDING_PAYMENT_SINCE, "service" => service, "job_type" => job_type)
        .set(value);
}
