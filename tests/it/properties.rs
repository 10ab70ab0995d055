//! Property tests: the parsers that read what the network sends never
//! panic, whatever the bytes, status codes and header strings.
//!
//! Each property runs proptest's default 256 cases, which keeps CI fast;
//! issue 5 will raise the case count for a longer nightly run.

use std::time::{Duration, SystemTime};

use ecs_jobwatch::huaweicloud::error::{self, AnswerHeaders};
use ecs_jobwatch::huaweicloud::sign;
use ecs_jobwatch::services::ecs as model;
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
    fn parse_job_never_panics(body in body()) {
        let _ = model::parse_job(&body);
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
        let _ = error::classify_legacy(status, headers, &body, now);
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
