//! Fuzzes the job body parsers with arbitrary bytes: every service's
//! adapter, and the legacy ECS model, must never panic, and what they
//! accept must hold together (sub-job counts, keys, progress in 0..=1).

#![no_main]

use ecs_jobwatch::job::Service;
use ecs_jobwatch::services::ecs::{self as model, DecodeError};
use ecs_jobwatch::services::{self, ParseError, lenient};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for service in Service::ALL {
        let adapter = services::adapter(service);
        match adapter.parse(body) {
            Ok(view) => {
                assert!(!view.service_status.is_empty());
                assert!(!view.status.as_str().is_empty());
                assert!(view.sub_jobs_failed() <= view.sub_jobs.len());
                assert!(view.sub_jobs_finished() <= view.sub_jobs.len());
                for sub in &view.sub_jobs {
                    assert!(!sub.key.is_empty());
                }
                if let Some(progress) = view.progress {
                    assert!((0.0..=1.0).contains(&progress), "{progress}");
                }
                if !matches!(service, Service::Ecs | Service::Bms) {
                    assert!(view.server_ids.is_empty());
                }
            }
            Err(ParseError::TooLarge(cap)) => assert!(body.len() > cap),
            Err(ParseError::Json(_) | ParseError::NotAnObject | ParseError::NoStatus { .. }) => {}
        }
    }
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
        Err(DecodeError::TooLarge) => assert!(body.len() > lenient::MAX_BODY_BYTES),
        Err(DecodeError::Json(_) | DecodeError::NotAnObject) => {}
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = lenient::timestamp_ms(text);
    }
});
