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
/// Webhook deliveries, by result (counter).
pub const WEBHOOK_DELIVERIES: &str = "ecs_jobwatch_webhook_deliveries_total";
/// Webhook retries (counter).
pub const WEBHOOK_RETRIES: &str = "ecs_jobwatch_webhook_retries_total";
/// Undelivered webhook events (gauge).
pub const WEBHOOK_QUEUE_DEPTH: &str = "ecs_jobwatch_webhook_queue_depth";
/// Age of the oldest undelivered webhook event (gauge, seconds).
pub const WEBHOOK_OLDEST_AGE: &str = "ecs_jobwatch_webhook_oldest_undelivered_seconds";
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
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook deliveries, by result.");
    describe_counter!(WEBHOOK_RETRIES, "Webhook delivery retries.");
    describe_gauge!(WEBHOOK_QUEUE_DEPTH, "Undelivered webhook events.");
    describe_gauge!(
        WEBHOOK_OLDEST_AGE,
        ::metrics::Unit::Seconds,
        "Age of the oldest undelivered webhook event."
    );
    describe_gauge!(BUILD_INFO, "Build information.");
}

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
