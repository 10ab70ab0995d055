//! `ecs-jobwatch status [--json] [JOB]`: what the state store says (never
//! the API). Without JOB, every recorded job as a table or a JSON array;
//! with JOB, that job's record and last event, and an exit code a script
//! can branch on: 0 SUCCESS, 1 FAIL or not found, 3 PENDING_PAYMENT (as
//! `wait`), 4 still working, 5 not tracked. A missing or unreadable store
//! has `run`'s codes (73, 74, 75, 78).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::config::Config;
use crate::daemon::{self, exit};
use crate::job::JobKey;
use crate::store::{JobRecord, Store};

use super::{environment, fail, load_config, parse_job, time};

/// What a job's record says to a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// SUCCESS.
    Success,
    /// FAIL.
    Failed,
    /// Announced by `job.not_found`: never found, or vanished.
    NotFound,
    /// PENDING_PAYMENT: a person must pay; nothing failed.
    PendingPayment,
}

impl Outcome {
    /// The word printed for the outcome.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Failed => "FAIL",
            Outcome::NotFound => "NOT FOUND",
            Outcome::PendingPayment => "PENDING_PAYMENT",
        }
    }

    /// The exit code of one job with this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => exit::OK,
            Outcome::Failed | Outcome::NotFound => exit::FAILED,
            Outcome::PendingPayment => exit::PENDING_PAYMENT,
        }
    }
}

/// The outcome a record shows, `None` while the job is still working. A
/// finished job is SUCCESS, FAIL, or else was announced as not found; an
/// unfinished one in PENDING_PAYMENT counts as settled (a person must
/// act), but only while a daemon keeps the record current
/// (`pending_is_current`).
pub fn outcome_of(record: &JobRecord, pending_is_current: bool) -> Option<Outcome> {
    match (record.finished, record.status.as_deref()) {
        (true, Some("SUCCESS")) => Some(Outcome::Success),
        (true, Some("FAIL")) => Some(Outcome::Failed),
        (true, _) => Some(Outcome::NotFound),
        (false, Some("PENDING_PAYMENT")) if pending_is_current => Some(Outcome::PendingPayment),
        (false, _) => None,
    }
}

/// Lists every job, or shows one.
pub fn main(config_path: Option<PathBuf>, json: bool, job: Option<String>) -> ExitCode {
    let env = environment();
    let (_, config) = match load_config(config_path, &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let key = match job.as_deref().map(|text| parse_job(&config, text)) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(message)) => return fail(exit::DATA, message),
    };
    let store = match Store::open_read_only(&config.state().dir) {
        Ok(store) => store,
        Err(error) => return fail(exit::state_exit_code(&error), error),
    };
    match key {
        Some(key) => one(&config, &store, &key, json),
        None => all(&store, json),
    }
}

fn row(job: &JobRecord) -> Value {
    json!({
        "job": job.key.to_string(),
        "job_id": job.key.id.as_str(),
        "service": job.key.service.as_str(),
        "project": job.key.project.as_str(),
        "status": job.status,
        "job_type": job.job_type,
        "since": time(job.last_change.or(Some(job.tracked_since))),
        "polls": job.polls,
        "next_poll": if job.finished { None } else { time(job.next_poll) },
        "finished": job.finished,
        "labels": job.labels,
    })
}

fn labels_text(job: &JobRecord) -> String {
    let labels: Vec<String> = job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.join(" ")
}

fn all(store: &Store, json: bool) -> ExitCode {
    let jobs = match store.load_jobs() {
        Ok(jobs) => jobs,
        Err(error) => return fail(exit::SOFTWARE, error),
    };
    if json {
        let rows: Vec<Value> = jobs.iter().map(row).collect();
        println!("{}", Value::Array(rows));
        return ExitCode::from(exit::OK);
    }
    println!(
        "{:<34} {:<8} {:<12} {:<16} {:<21} {:>6} {:<21} LABELS",
        "JOB", "SERVICE", "PROJECT", "STATUS", "SINCE", "POLLS", "NEXT POLL"
    );
    for job in &jobs {
        println!(
            "{:<34} {:<8} {:<12} {:<16} {:<21} {:>6} {:<21} {}",
            job.key.id.as_str(),
            job.key.service.as_str(),
            job.key.project.as_str(),
            job.status.as_deref().unwrap_or("-"),
            time(job.last_change.or(Some(job.tracked_since))).unwrap_or_default(),
            job.polls,
            if job.finished {
                "-".to_string()
            } else {
                time(job.next_poll).unwrap_or_else(|| "-".into())
            },
            labels_text(job)
        );
    }
    ExitCode::from(exit::OK)
}

fn one(config: &Config, store: &Store, key: &JobKey, json: bool) -> ExitCode {
    let record = match store.job(key) {
        Ok(Some(record)) => record,
        Ok(None) => {
            // Say whether a daemon will pick it up, so a script that just
            // added it knows to ask again.
            let (list, _) = daemon::read_watch_list(config);
            let listed = match list.origin(key) {
                Some(origin) => {
                    format!("; it is listed at {origin}, the daemon tracks it once it reads that")
                }
                None => String::new(),
            };
            return fail(
                exit::NOT_TRACKED,
                format!("job {key} is not tracked in the state store{listed}"),
            );
        }
        Err(error) => return fail(exit::SOFTWARE, error),
    };
    let last_event = match store.last_event(key) {
        Ok(text) => text,
        Err(error) => return fail(exit::SOFTWARE, error),
    };
    // The record is the store's last word; a PENDING_PAYMENT in it counts
    // (without a daemon it may be stale, which `wait` checks by polling).
    let outcome = outcome_of(&record, true);
    if json {
        let mut object = row(&record);
        // The stored line is our own JSON; a damaged one is shown as text.
        let event = last_event
            .as_deref()
            .map(|text| serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::from(text)));
        object["last_event"] = event.unwrap_or(Value::Null);
        println!("{object}");
    } else {
        let since = time(record.last_change.or(Some(record.tracked_since)));
        let next = if record.finished {
            None
        } else {
            time(record.next_poll)
        };
        println!("job:        {}", record.key);
        println!("service:    {}", record.key.service.as_str());
        println!("project:    {}", record.key.project.as_str());
        println!("status:     {}", record.status.as_deref().unwrap_or("-"));
        println!("job type:   {}", record.job_type.as_deref().unwrap_or("-"));
        println!("since:      {}", since.unwrap_or_default());
        println!("polls:      {}", record.polls);
        println!("next poll:  {}", next.as_deref().unwrap_or("-"));
        println!("labels:     {}", labels_text(&record));
        println!("last event: {}", last_event.as_deref().unwrap_or("-"));
    }
    ExitCode::from(match outcome {
        Some(outcome) => outcome.exit_code(),
        None => exit::WORKING,
    })
}
