//! The closed set of ways a job query can fail, and the classification of
//! an HTTP answer into a job or one of them.
//!
//! "HTTP status codes may not be accurate" (the ECS error-code page), so
//! the body's error code is read as well as the status: a gateway body
//! `{"error_code": ..., "error_msg": ...}` or an ECS body
//! `{"error": {"code": ..., "message": ...}}`. Classification is a pure
//! function of the status, the body bytes and two headers.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::services::ecs::{self as model, Job};

/// The longest `Retry-After` honoured; a larger value is clamped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Error codes that mean "slow down", whatever the HTTP status.
const THROTTLE_CODES: &[&str] = &["APIGW.0308", "APIG.0308", "Common.1503", "Common.0024"];
/// Error codes that mean the signature or key was refused.
const AUTH_CODES: &[&str] = &[
    "APIGW.0301",
    "APIG.0301",
    "APIGW.0303",
    "APIG.0303",
    "APIGW.0307",
    "APIG.0307",
];
/// Error codes that mean the job is unknown.
const NOT_FOUND_CODES: &[&str] = &["Common.0011"];

/// The class of a failed call: what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Slow the whole process down; wait `retry_after` when given.
    Throttled {
        /// The server's `Retry-After`, clamped to [`MAX_RETRY_AFTER`].
        retry_after: Option<Duration>,
    },
    /// The key or signature was refused: stop calling for minutes.
    Auth,
    /// The key is valid but may not read jobs.
    Forbidden,
    /// The job is unknown (never existed yet, or expired).
    NotFound,
    /// The server failed; retry with backoff.
    Server,
    /// Any other refusal of the request itself.
    Client,
    /// No answer within the request timeout.
    Timeout,
    /// No connection, or the connection broke before an answer.
    Connect,
    /// An answer that could not be read as a job.
    Decode,
}

impl ErrorKind {
    /// The contract's `error_type` of `api.error`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ErrorKind::Throttled { .. } => "throttled",
            ErrorKind::Auth => "auth",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Server => "server",
            ErrorKind::Client => "client",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Decode => "decode",
        }
    }
}

/// A failed job query with everything support asks for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The HTTP status, when an answer arrived.
    pub http_status: Option<u16>,
    /// The error code from either body shape.
    pub error_code: Option<String>,
    /// The `X-Request-Id` of the answer.
    pub request_id: Option<String>,
    /// A short human description (never containing secrets).
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.error_type())?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = &self.error_code {
                write!(f, ", {code}")?;
            }
            f.write_str(")")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// An error without an HTTP answer (timeout, connection, decode).
    pub fn transport(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            http_status: None,
            error_code: None,
            request_id: None,
            message: message.into(),
        }
    }
}

/// The headers classification reads, as raw strings.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerHeaders<'a> {
    /// `X-Request-Id`.
    pub request_id: Option<&'a str>,
    /// `Retry-After`.
    pub retry_after: Option<&'a str>,
}

/// Classifies a complete HTTP answer: the job, or why there is none.
/// `now` resolves a `Retry-After` given as an HTTP date.
pub fn classify(
    status: u16,
    headers: AnswerHeaders<'_>,
    body: &[u8],
    now: SystemTime,
) -> Result<Job, ApiError> {
    let request_id = headers.request_id.map(str::to_string);
    let object = model::parse_object(body);
    let (code, message) = match &object {
        Ok(object) => error_code_and_message(object),
        Err(_) => (None, None),
    };
    let fail = |kind: ErrorKind, message: String| ApiError {
        kind,
        http_status: Some(status),
        error_code: code.clone(),
        request_id: request_id.clone(),
        message,
    };
    let describe = |fallback: &str| {
        message
            .clone()
            .map(|m| truncate(&m, 200))
            .unwrap_or_else(|| fallback.to_string())
    };

    // The body's code wins over the status, in both directions.
    if let Some(code) = code.as_deref() {
        if THROTTLE_CODES.contains(&code) {
            let retry_after = headers.retry_after.and_then(|v| parse_retry_after(v, now));
            return Err(fail(
                ErrorKind::Throttled { retry_after },
                describe("throttled"),
            ));
        }
        if AUTH_CODES.contains(&code) {
            return Err(fail(ErrorKind::Auth, describe("authentication failed")));
        }
        if NOT_FOUND_CODES.contains(&code) {
            return Err(fail(ErrorKind::NotFound, describe("job not found")));
        }
    }

    match status {
        200..=299 => match object {
            Ok(object) => {
                let job = model::job_from_object(&object);
                if job.status.is_some() {
                    Ok(job)
                } else if code.is_some() {
                    Err(fail(ErrorKind::Server, describe("the job query failed")))
                } else {
                    Err(fail(
                        ErrorKind::Decode,
                        "the answer has no job status".into(),
                    ))
                }
            }
            Err(error) => Err(fail(ErrorKind::Decode, error.to_string())),
        },
        429 => {
            let retry_after = headers.retry_after.and_then(|v| parse_retry_after(v, now));
            Err(fail(
                ErrorKind::Throttled { retry_after },
                describe("throttled"),
            ))
        }
        401 => Err(fail(ErrorKind::Auth, describe("authentication failed"))),
        403 => Err(fail(ErrorKind::Forbidden, describe("forbidden"))),
        404 | 410 => Err(fail(ErrorKind::NotFound, describe("job not found"))),
        408 => Err(fail(ErrorKind::Timeout, describe("request timeout"))),
        500..=599 => Err(fail(ErrorKind::Server, describe("server error"))),
        _ => Err(fail(ErrorKind::Client, describe("request refused"))),
    }
}

/// The error code and message of either body shape, or of the job body's
/// own `code`/`message` (set when the query failed). A job's `error_code`
/// is not read here: on a FAIL job it describes the job, not the call, and
/// it is only taken when the body has no status.
fn error_code_and_message(object: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
    if let Some(Value::Object(inner)) = object.get("error") {
        return (text(inner.get("code")), text(inner.get("message")));
    }
    if object.get("status").and_then(Value::as_str).is_some() {
        return (None, None);
    }
    if let Some(code) = text(object.get("error_code")) {
        return (Some(code), text(object.get("error_msg")));
    }
    (text(object.get("code")), text(object.get("message")))
}

/// `Retry-After` as delta-seconds or an HTTP date, clamped to
/// [`MAX_RETRY_AFTER`]; a date in the past is zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some(Duration::from_secs_f64(
            seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
        ));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(status: u16, body: &str, retry_after: Option<&str>) -> Result<String, ErrorKind> {
        let headers = AnswerHeaders {
            request_id: Some("rid"),
            retry_after,
        };
        classify(status, headers, body.as_bytes(), SystemTime::UNIX_EPOCH)
            .map(|job| job.status.map(|s| s.to_string()).unwrap_or_default())
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
                kind_of(status, body, retry_after),
                expected,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn error_carries_code_status_and_request_id() {
        let headers = AnswerHeaders {
            request_id: Some("abc-123"),
            retry_after: None,
        };
        let error = classify(429, headers, GW_THROTTLE.as_bytes(), SystemTime::now()).unwrap_err();
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
}
