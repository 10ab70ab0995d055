//! Fuzzes the classification of a whole HTTP answer: the status, the two
//! headers it reads and the body. The first bytes of the input choose the
//! status and the header strings, the rest is the body. Classification
//! with every service's adapter must never panic, a `Retry-After` is never
//! above the cap, and an error always carries the status it was given.

#![no_main]

use std::time::{Duration, SystemTime};

use ecs_jobwatch::huaweicloud::error::{self, AnswerHeaders, ErrorKind, MAX_RETRY_AFTER};
use ecs_jobwatch::job::Service;
use ecs_jobwatch::services;
use libfuzzer_sys::fuzz_target;

/// Splits off a length-prefixed string (one length byte) from `data`.
fn take_text(data: &mut &[u8]) -> Option<String> {
    let (&length, rest) = data.split_first()?;
    let length = usize::from(length).min(rest.len());
    let (text, rest) = rest.split_at(length);
    *data = rest;
    Some(String::from_utf8_lossy(text).into_owned())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Statuses spread over 100..=599 plus every other u16 now and then.
    let raw = u16::from_be_bytes([data[0], data[1]]);
    let status = if data[2] & 1 == 0 {
        100 + raw % 500
    } else {
        raw
    };
    let mut rest = &data[3..];
    let request_id = take_text(&mut rest);
    let retry_after = take_text(&mut rest);
    let body = rest;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    if let Some(value) = retry_after.as_deref()
        && let Some(wait) = error::parse_retry_after(value, now)
    {
        assert!(wait <= MAX_RETRY_AFTER, "{value:?} gave {wait:?}");
    }

    let headers = AnswerHeaders {
        request_id: request_id.as_deref(),
        retry_after: retry_after.as_deref(),
    };
    for service in Service::ALL {
        match services::read_answer(services::adapter(service), status, headers, body, now) {
            Ok(view) => assert!(!view.service_status.is_empty()),
            Err(error) => {
                assert_eq!(error.http_status, Some(status));
                assert_eq!(error.request_id, request_id);
                if let ErrorKind::Throttled {
                    retry_after: Some(wait),
                } = error.kind
                {
                    assert!(wait <= MAX_RETRY_AFTER);
                }
                // Display is what the log line shows; it must not panic
                // either.
                let _ = error.to_string();
                let _ = error.kind.error_type();
            }
        }
    }
});
