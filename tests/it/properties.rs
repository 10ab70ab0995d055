//! Property tests: the parsers that read what the network sends never
//! panic, whatever the bytes, status codes and header strings, and the
//! classification of an answer keeps the invariants the
//! `error_classification` fuzz target checks (the configuration's
//! round-trip is `config::tests::round_trip`).
//!
//! Each property runs proptest's default 256 cases, which keeps CI fast;
//! issue 5 will raise the case count for a longer nightly run.

use std::time::{Duration, SystemTime};

use ecs_jobwatch::huaweicloud::error::{self, AnswerHeaders, ErrorKind};
use ecs_jobwatch::huaweicloud::sign;
use ecs_jobwatch::job::Service;
use ecs_jobwatch::services;
use proptest::prelude::*;

/// Bodies: arbitrary bytes, and JSON-looking text that reaches the field
/// extraction instead of failing at the first byte.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        json_text().prop_map(String::into_bytes),
    ]
}

/// Small JSON objects with the keys the parsers look for and values of
/// every type.
fn json_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("status".to_string()),
        Just("error_code".to_string()),
        Just("error_msg".to_string()),
        Just("error".to_string()),
        Just("code".to_string()),
        Just("message".to_string()),
        Just("entities".to_string()),
        Just("sub_jobs".to_string()),
        Just("sub_jobs_total".to_string()),
        ".*",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".*".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("APIGW.0308")),
        Just(serde_json::Value::from("Common.0011")),
        Just(serde_json::Value::from("RUNNING")),
    ];
    let value = leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    });
    value.prop_map(|value| value.to_string())
}

/// Header strings: any Unicode (so non-ASCII too), or close to the forms
/// `Retry-After` takes.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9 .+-]{0,24}",
        "(Mon|Wed|Sun), [0-9]{1,2} (Jan|Oct|Dec) [0-9]{1,5} [0-9:]{0,9} GMT",
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("1e309".to_string()),
        Just("18446744073709551616".to_string()),
    ]
}

/// Any moment a clock may report, from the epoch to far in the future.
fn moment() -> impl Strategy<Value = SystemTime> {
    (0u64..=u64::from(u32::MAX) * 16)
        .prop_map(|seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((any::<String>(), any::<String>()), 0..6)
}

proptest! {
    #[test]
    fn every_adapter_parses_any_body_without_panicking(body in body()) {
        for service in Service::ALL {
            let _ = services::adapter(service).parse(&body);
        }
    }

    #[test]
    fn classify_never_panics(
        status in 0u16..=999,
        request_id in proptest::option::of(header_text()),
        retry_after in proptest::option::of(header_text()),
        body in body(),
        now in moment(),
    ) {
        let headers = AnswerHeaders {
            request_id: request_id.as_deref(),
            retry_after: retry_after.as_deref(),
        };
        for service in Service::ALL {
            let read = services::read_answer(services::adapter(service), status, headers, &body, now);
            // An answer is a job or an error that keeps the answer's status.
            if let Err(error) = read {
                prop_assert_eq!(error.http_status, Some(status));
            }
        }
    }

    #[test]
    fn parse_retry_after_never_panics(value in header_text(), now in moment()) {
        if let Some(delay) = error::parse_retry_after(&value, now) {
            prop_assert!(delay <= error::MAX_RETRY_AFTER);
        }
    }

    #[test]
    fn canonical_uri_never_panics(path in any::<String>()) {
        prop_assert!(sign::canonical_uri(&path).ends_with('/'));
    }

    #[test]
    fn canonical_query_never_panics(query in pairs()) {
        let _ = sign::canonical_query(&query);
    }

    #[test]
    fn percent_decode_never_panics(value in any::<String>(), escapes in "(%[0-9a-fA-FzZ]{0,2}|[^%]{0,3}){0,12}") {
        let _ = sign::percent_decode(&value);
        let _ = sign::percent_decode(&escapes);
    }

    #[test]
    fn parse_authorization_never_panics(
        value in any::<String>(),
        shaped in "SDK-HMAC-SHA256 ((Access|SignedHeaders|Signature|X)=[^,]{0,8}(, )?){0,4}",
    ) {
        let _ = sign::parse_authorization(&value);
        let _ = sign::parse_authorization(&shaped);
    }
}

/// A service's not-found rule for the properties: HTTP 404 or 410, or the
/// ECS code `Ecs.0103`.
fn not_found(refusal: &error::Refusal<'_>) -> bool {
    refusal.is_http_not_found() || refusal.has_code("Ecs.0103")
}

proptest! {
    /// The invariants the `error_classification` fuzz target checks, as a
    /// property test that runs with every `cargo test`: a 2xx body is handed
    /// back untouched; any other answer is an error that keeps the status
    /// and the request id it was given, whose `Retry-After` is within the
    /// cap, whose message is at most 200 characters and an ellipsis, and
    /// whose `Display` and `error_type` work.
    #[test]
    fn classify_keeps_status_request_id_and_caps(
        status in prop_oneof![100u16..=599, any::<u16>()],
        request_id in proptest::option::of(header_text()),
        retry_after in proptest::option::of(header_text()),
        body in body(),
        now in moment(),
    ) {
        let headers = AnswerHeaders {
            request_id: request_id.as_deref(),
            retry_after: retry_after.as_deref(),
        };
        match error::classify(status, headers, &body, now, &not_found) {
            Ok(kept) => {
                prop_assert!((200..=299).contains(&status));
                prop_assert_eq!(kept, body.as_slice());
            }
            Err(error) => {
                prop_assert!(!(200..=299).contains(&status));
                prop_assert_eq!(error.http_status, Some(status));
                prop_assert_eq!(error.request_id.as_deref(), request_id.as_deref());
                if let ErrorKind::Throttled { retry_after: Some(wait) } = error.kind {
                    prop_assert!(wait <= error::MAX_RETRY_AFTER);
                }
                let message = error.message.chars().count();
                prop_assert!(
                    message <= 200 || (message == 201 && error.message.ends_with('…')),
                    "{} characters", message
                );
                prop_assert!(!error.kind.error_type().is_empty());
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }

    /// The same for an answer whose body is a 2xx without a job status
    /// (`refused`), the path a service's adapter takes.
    #[test]
    fn refused_keeps_status_and_request_id(
        status in any::<u16>(),
        request_id in proptest::option::of(header_text()),
        code in proptest::option::of(".{0,16}"),
        message in proptest::option::of(".{0,400}"),
        now in moment(),
    ) {
        let headers = AnswerHeaders { request_id: request_id.as_deref(), retry_after: None };
        let error = error::refused(status, headers, code.as_deref(), message.as_deref(), now, &not_found);
        prop_assert_eq!(error.http_status, Some(status));
        prop_assert_eq!(error.request_id.as_deref(), request_id.as_deref());
        prop_assert_eq!(error.error_code.as_deref(), code.as_deref());
        // The body's message is the error's, cut at 200 characters (a 2xx
        // without a code says instead that the answer has no job status).
        if let Some(message) = &message
            && !((200..=299).contains(&status) && code.is_none())
        {
            let kept: String = message.chars().take(200).collect();
            prop_assert!(error.message.starts_with(&kept));
            prop_assert!(error.message.chars().count() <= 201);
        }
    }
}
