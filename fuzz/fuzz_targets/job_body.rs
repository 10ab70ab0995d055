//! Fuzzes the job body parser with arbitrary bytes: `parse_job` must never
//! panic, and what it accepts must be an object whose fields it read.

#![no_main]

use ecs_jobwatch::services::ecs::{self as model, DecodeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match model::parse_job(body) {
        Ok(job) => {
            // The helpers the notifier calls on every job must hold up too.
            let ids = job.server_ids();
            assert!(ids.len() <= job.sub_jobs.len() + 1);
            assert!(job.sub_jobs_failed() <= job.sub_jobs.len());
            for sub in &job.sub_jobs {
                let _ = sub.reason();
            }
            if let Some(status) = &job.status {
                assert!(!status.as_str().is_empty());
            }
        }
        Err(DecodeError::TooLarge) => assert!(body.len() > model::MAX_BODY_BYTES),
        Err(DecodeError::Json(_) | DecodeError::NotAnObject) => {}
    }
});
