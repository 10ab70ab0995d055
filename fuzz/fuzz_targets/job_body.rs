//! Fuzzes the job body parsers with arbitrary bytes: every service's
//! adapter must never panic, and what it accepts must hold together
//! (sub-job counts, keys, progress in 0..=1).

#![no_main]

use ecs_jobwatch::job::Service;
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
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = lenient::timestamp_ms(text);
    }
});
