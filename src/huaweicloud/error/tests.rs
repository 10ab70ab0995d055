//! Classification of answers: the table of every status and body shape,
//! the error-body probe, and `Retry-After`.

use super::*;

/// The not-found rule of ECS, spelled out here so that these tests need
/// no adapter: 404, 410, or `Common.0011`.
fn ecs_like(refusal: &Refusal<'_>) -> bool {
    refusal.is_http_not_found() || refusal.has_code("Common.0011")
}

/// Classifies an answer; a 2xx body the adapter would read is `Ok` with
/// the body as text.
fn kind_of(status: u16, body: &str, retry_after: Option<&str>) -> Result<String, ErrorKind> {
    let headers = AnswerHeaders {
        request_id: Some("rid"),
        retry_after,
    };
    classify(
        status,
        headers,
        body.as_bytes(),
        SystemTime::UNIX_EPOCH,
        &ecs_like,
    )
    .map(|body| String::from_utf8_lossy(body).into_owned())
    .map_err(|error| error.kind)
}

/// Status, body, `Retry-After`, and the expected body or error kind.
type Case = (
    u16,
    &'static str,
    Option<&'static str>,
    Result<String, ErrorKind>,
);

const GW_THROTTLE: &str = r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached","request_id":"d4e8"}"#;

/// Every answer that is not a 2xx. (The 2xx cases need an adapter to read
/// the body; `services::tests` runs them through ECS's.)
#[test]
fn classification_table() {
    let throttled = |s| ErrorKind::Throttled { retry_after: s };
    let cases: Vec<Case> = vec![
        (
            200,
            r#"{"status":"RUNNING"}"#,
            None,
            Ok(r#"{"status":"RUNNING"}"#.into()),
        ),
        (202, "anything", None, Ok("anything".into())),
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
        (410, "", None, Err(ErrorKind::NotFound)),
        (
            400,
            r#"{"error":{"code":"Common.0011","message":"Failed to query system tasks."}}"#,
            None,
            Err(ErrorKind::NotFound),
        ),
        (
            500,
            r#"{"error":{"code":"Common.0011"}}"#,
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
        (302, "", None, Err(ErrorKind::Client)),
        (
            404,
            r#"{"errorCode":"CCE.01404001","errorMessage":"Resource not found."}"#,
            None,
            Err(ErrorKind::NotFound),
        ),
    ];
    for (status, body, retry_after, expected) in cases {
        assert_eq!(
            kind_of(status, body, retry_after),
            expected,
            "{status} {body}"
        );
    }
}

/// The rule is the service's: the same answer is `NotFound` for one
/// service and a client error for another.
#[test]
fn the_not_found_rule_decides() {
    let body = br#"{"error_code":"DBS.200543","error_msg":"The job does not exist."}"#;
    let rds_like = |refusal: &Refusal<'_>| refusal.has_code("DBS.200543");
    let now = SystemTime::UNIX_EPOCH;
    let headers = AnswerHeaders::default();
    let error = classify(400, headers, body, now, &rds_like).unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert_eq!(error.error_code.as_deref(), Some("DBS.200543"));
    assert_eq!(error.message, "The job does not exist.");
    let error = classify(400, headers, body, now, &ecs_like).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Client);
    // A refusal the rule does not claim falls back to its status: a 404
    // that is not "no such job" is a client error.
    let never = |_: &Refusal<'_>| false;
    let error = classify(404, headers, b"", now, &never).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Client);
    // Throttle and authentication codes win over any rule.
    let always = |_: &Refusal<'_>| true;
    let error = classify(404, headers, GW_THROTTLE.as_bytes(), now, &always).unwrap_err();
    assert_eq!(error.kind.error_type(), "throttled");
}

/// A 2xx body without a job status: a code makes it a failed query, a
/// throttle code a throttle, none at all an unreadable answer.
#[test]
fn refusals_in_a_2xx_body() {
    let now = SystemTime::UNIX_EPOCH;
    let headers = AnswerHeaders::default();
    let kind =
        |status: u16, code: Option<&str>| refused(status, headers, code, None, now, &ecs_like).kind;
    assert_eq!(kind(200, Some("Ecs.9999")), ErrorKind::Server);
    assert_eq!(kind(200, None), ErrorKind::Decode);
    assert_eq!(
        kind(202, Some("Common.0024")),
        ErrorKind::Throttled { retry_after: None }
    );
    assert_eq!(kind(200, Some("Common.0011")), ErrorKind::NotFound);
    assert_eq!(kind(200, Some("APIGW.0307")), ErrorKind::Auth);
    let error = undecodable(200, headers, "not JSON".into());
    assert_eq!(
        (error.kind, error.http_status),
        (ErrorKind::Decode, Some(200))
    );
}

#[test]
fn error_carries_code_status_and_request_id() {
    let headers = AnswerHeaders {
        request_id: Some("abc-123"),
        retry_after: None,
    };
    let error = classify(
        429,
        headers,
        GW_THROTTLE.as_bytes(),
        SystemTime::now(),
        &ecs_like,
    )
    .unwrap_err();
    assert_eq!(error.http_status, Some(429));
    assert_eq!(error.error_code.as_deref(), Some("APIGW.0308"));
    assert_eq!(error.request_id.as_deref(), Some("abc-123"));
    assert_eq!(error.kind.error_type(), "throttled");
    let text = error.to_string();
    assert!(
        text.contains("APIGW.0308") && text.contains("abc-123"),
        "{text}"
    );
}

#[test]
fn error_fields_of_every_shape() {
    let check = |body: &str, code: Option<&str>, message: Option<&str>| {
        let fields = error_fields(body.as_bytes());
        assert_eq!(fields.code.as_deref(), code, "{body}");
        assert_eq!(fields.message.as_deref(), message, "{body}");
    };
    check(
        r#"{"error_code":"A","error_msg":"a"}"#,
        Some("A"),
        Some("a"),
    );
    check(
        r#"{"error":{"code":"B","message":"b","details":[1]}}"#,
        Some("B"),
        Some("b"),
    );
    check(
        r#"{"errorCode":"CCE.01404001","errorMessage":"Resource not found."}"#,
        Some("CCE.01404001"),
        Some("Resource not found."),
    );
    check(r#"{"code":"D","message":"d"}"#, Some("D"), Some("d"));
    // A job body's own error_code describes the job, not the call.
    check(r#"{"status":"FAIL","error_code":"Ecs.0013"}"#, None, None);
    // ... but an `error` object is a refusal even beside a status.
    check(r#"{"status":"FAIL","error":{"code":"E"}}"#, Some("E"), None);
    // Only strings count, wrong types are skipped, the last repeat wins.
    check(r#"{"error_code":5,"code":"F"}"#, Some("F"), None);
    check(r#"{"error":"text","error_code":"G"}"#, Some("G"), None);
    check(r#"{"code":"H1","code":"H2"}"#, Some("H2"), None);
    check(r#"{"error_code":"\u0041"}"#, Some("A"), None);
    for nothing in ["", "null", "[]", "\"x\"", "{", "{\"code\":", "\u{ff}"] {
        check(nothing, None, None);
    }
    let deep = "[".repeat(100_000);
    check(&deep, None, None);
}

#[test]
fn retry_after_forms() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    let check = |value: &str, expected: Option<Duration>| {
        assert_eq!(parse_retry_after(value, now), expected, "{value}")
    };
    check("0", Some(Duration::ZERO));
    check(" 5 ", Some(Duration::from_secs(5)));
    check("1.5", Some(Duration::from_millis(1500)));
    check("99999999", Some(MAX_RETRY_AFTER));
    check(
        "Wed, 21 Oct 2015 07:28:10 GMT",
        Some(Duration::from_secs(10)),
    );
    check("Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO));
    check("-1", None);
    check("NaN", None);
    check("soon", None);
}
