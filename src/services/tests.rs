//! The classification of whole answers through an adapter (the table of
//! every case the ECS client has known), the adapter registry, and what
//! every adapter must survive; helpers for the adapters' own tests.

use std::time::{Duration, SystemTime};

use super::*;
use crate::huaweicloud::error::ErrorKind;

/// A refusal with a status and maybe a code, no message.
pub fn refusal(http_status: u16, code: Option<&'static str>) -> Refusal<'static> {
    Refusal {
        http_status,
        code,
        message: None,
    }
}

/// Reads an answer through `adapter`: the job's common status, or the
/// error kind.
pub fn classify_as(adapter: &dyn Adapter, status: u16, body: &str) -> Result<String, ErrorKind> {
    classify_with(adapter, status, body, None)
}

fn classify_with(
    adapter: &dyn Adapter,
    status: u16,
    body: &str,
    retry_after: Option<&str>,
) -> Result<String, ErrorKind> {
    let headers = AnswerHeaders {
        request_id: Some("rid"),
        retry_after,
    };
    read_answer(
        adapter,
        status,
        headers,
        body.as_bytes(),
        SystemTime::UNIX_EPOCH,
    )
    .map(|view| view.status.to_string())
    .map_err(|error| error.kind)
}

/// Status, body, `Retry-After`, and the expected status or error kind.
type Case = (
    u16,
    &'static str,
    Option<&'static str>,
    Result<String, ErrorKind>,
);

const GW_THROTTLE: &str = r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached","request_id":"d4e8"}"#;

/// Every case of the ECS client's classification table, through the ECS
/// adapter.
#[test]
fn classification_table() {
    let throttled = |s| ErrorKind::Throttled { retry_after: s };
    let cases: Vec<Case> = vec![
        (200, r#"{"status":"RUNNING"}"#, None, Ok("RUNNING".into())),
        (
            200,
            r#"{"status":"FAIL","error_code":"APIGW.0308"}"#,
            None,
            Ok("FAIL".into()),
        ),
        (
            429,
            GW_THROTTLE,
            Some("3"),
            Err(throttled(Some(Duration::from_secs(3)))),
        ),
        (429, "", None, Err(throttled(None))),
        (
            400,
            r#"{"error_code":"APIG.0308","error_msg":"x"}"#,
            None,
            Err(throttled(None)),
        ),
        (
            503,
            r#"{"error":{"code":"Common.1503","message":"busy"}}"#,
            None,
            Err(throttled(None)),
        ),
        (
            202,
            r#"{"error_code":"Common.0024","error_msg":"Flow limit exceeded"}"#,
            None,
            Err(throttled(None)),
        ),
        (
            401,
            r#"{"error_code":"APIGW.0301","error_msg":"bad sig"}"#,
            None,
            Err(ErrorKind::Auth),
        ),
        (
            400,
            r#"{"error_code":"APIG.0301"}"#,
            None,
            Err(ErrorKind::Auth),
        ),
        (
            401,
            r#"{"error_code":"APIGW.0303"}"#,
            None,
            Err(ErrorKind::Auth),
        ),
        (401, "not json", None, Err(ErrorKind::Auth)),
        (
            403,
            r#"{"error":{"code":"Ecs.0000","message":"no"}}"#,
            None,
            Err(ErrorKind::Forbidden),
        ),
        (
            404,
            r#"{"error":{"code":"Ecs.0103","message":"gone"}}"#,
            None,
            Err(ErrorKind::NotFound),
        ),
        (
            400,
            r#"{"error":{"code":"Common.0011","message":"Failed to query system tasks."}}"#,
            None,
            Err(ErrorKind::NotFound),
        ),
        (
            400,
            r#"{"error":{"code":"Ecs.0005","message":"request body is illegal."}}"#,
            None,
            Err(ErrorKind::Client),
        ),
        (500, "", None, Err(ErrorKind::Server)),
        (
            502,
            "<html>bad gateway</html>",
            None,
            Err(ErrorKind::Server),
        ),
        (
            504,
            r#"{"error":{"code":"Ecs.0500"}}"#,
            None,
            Err(ErrorKind::Server),
        ),
        (408, "", None, Err(ErrorKind::Timeout)),
        (200, r#"{"status":"RUN"#, None, Err(ErrorKind::Decode)),
        (200, "{}", None, Err(ErrorKind::Decode)),
        (200, "[]", None, Err(ErrorKind::Decode)),
        (200, "", None, Err(ErrorKind::Decode)),
        (
            200,
            r#"{"code":"Ecs.9999","message":"query failed"}"#,
            None,
            Err(ErrorKind::Server),
        ),
        (302, "", None, Err(ErrorKind::Client)),
    ];
    for (status, body, retry_after, expected) in cases {
        assert_eq!(
            classify_with(&ecs::Ecs, status, body, retry_after),
            expected,
            "{status} {body}"
        );
    }
}

#[test]
fn errors_keep_what_support_asks_for() {
    let headers = AnswerHeaders {
        request_id: Some("abc-123"),
        retry_after: None,
    };
    let error = read_answer(
        &ecs::Ecs,
        200,
        headers,
        br#"{"code":"Ecs.9999","message":"query failed"}"#,
        SystemTime::UNIX_EPOCH,
    )
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Server);
    assert_eq!(error.http_status, Some(200));
    assert_eq!(error.error_code.as_deref(), Some("Ecs.9999"));
    assert_eq!(error.request_id.as_deref(), Some("abc-123"));
    assert_eq!(error.message, "query failed");
    let error =
        read_answer(&ecs::Ecs, 200, headers, b"<html>", SystemTime::UNIX_EPOCH).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Decode);
    assert_eq!(error.request_id.as_deref(), Some("abc-123"));
    assert!(
        error.message.contains("not valid JSON"),
        "{}",
        error.message
    );
}

#[test]
fn every_service_has_its_adapter() {
    for service in Service::ALL {
        let adapter = adapter(service);
        assert_eq!(adapter.service(), service);
        let query = adapter.query("0123456789abcdef", "job-1");
        assert!(query.path.starts_with('/'), "{service}: {query:?}");
        assert!(
            query.path.ends_with("/job-1") || query.query == [("id", "job-1".to_string())],
            "{service}: {query:?}"
        );
        assert_eq!(adapter.max_body_bytes(), lenient::MAX_BODY_BYTES);
    }
}

/// Each service's final words, and that one rule `status="FAIL"` catches
/// every service's failure.
#[test]
fn final_words_map_to_success_and_fail() {
    let cases = [
        (Service::Ecs, "SUCCESS", "FAIL"),
        (Service::Bms, "SUCCESS", "FAIL"),
        (Service::Evs, "SUCCESS", "FAIL"),
        (Service::Ims, "SUCCESS", "FAIL"),
        (Service::Cce, "Success", "Failed"),
        (Service::Rds, "Completed", "Failed"),
        (Service::Eip, "SUCCESS", "FAIL"),
    ];
    for (service, success, fail) in cases {
        let adapter = adapter(service);
        assert_eq!(adapter.status(success), Status::Success, "{service}");
        assert_eq!(adapter.status(fail), Status::Fail, "{service}");
        assert!(!adapter.status("SOMETHING_NEW").is_final(), "{service}");
        assert_eq!(adapter.status("SOMETHING_NEW").as_str(), "SOMETHING_NEW");
    }
}

/// Bodies no adapter may panic on, and whose refusals must be the parse
/// errors of the lenient reader.
#[test]
fn hostile_bodies_never_panic() {
    let deep_array = "[".repeat(100_000);
    let deep_closed = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    let long_id = format!(
        r#"{{"status":"RUNNING","job_id":"{}"}}"#,
        "f".repeat(10_000)
    );
    let big = vec![b' '; lenient::MAX_BODY_BYTES + 1];
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"\xff\xfe",
        b"{\"status\":\"RUN\xff\xfeNING\"}",
        b"null",
        b"[]",
        b"{\"status\":1e999}",
        b"{\"status\":\"\\ud800\"}",
        b"{\"job\":[],\"status\":{},\"spec\":7,\"metadata\":\"x\",\"entities\":[1,{}]}",
        b"{\"entities\":{\"sub_jobs\":[null,1,\"x\",[],{\"status\":{}}]}}",
        deep_array.as_bytes(),
        deep_closed.as_bytes(),
        deep_object.as_bytes(),
        long_id.as_bytes(),
        &big,
    ];
    for service in Service::ALL {
        let adapter = adapter(service);
        for body in &bodies {
            let _ = adapter.parse(body);
            let _ = read_answer(
                adapter,
                200,
                AnswerHeaders::default(),
                body,
                SystemTime::UNIX_EPOCH,
            );
        }
        assert_eq!(
            adapter.parse(&big),
            Err(ParseError::TooLarge(lenient::MAX_BODY_BYTES))
        );
        assert_eq!(adapter.parse(b"[]"), Err(ParseError::NotAnObject));
        assert!(matches!(adapter.parse(b""), Err(ParseError::Json(_))));
    }
}
