//! The closed set of ways a job query can fail, and the classification of
//! an HTTP answer into a body to read or one of them.
//!
//! "HTTP status codes may not be accurate" (the ECS error-code page), so
//! the body's error code is read as well as the status, in every error
//! shape the family uses: the gateway's and RDS's
//! `{"error_code": ..., "error_msg": ...}`, ECS's (and IMS's, EVS's)
//! `{"error": {"code": ..., "message": ...}}`, CCE's
//! `{"errorCode": ..., "errorMessage": ...}`, and a job body's own
//! `code`/`message`. Classification is a pure function of the status, the
//! body bytes, two headers and the service's not-found rule: [`classify`]
//! hands a 2xx body on to the service's adapter and turns every other
//! answer into an [`ApiError`]; [`refused`] does the same for a 2xx body the
//! adapter found no job status in. Nothing here knows a service's job body.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

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
    /// The error code from any of the body shapes.
    pub error_code: Option<String>,
    /// The `X-Request-Id` of the answer.
    pub request_id: Option<String>,
    /// A short human description (never containing secrets).
    pub message: String,
    /// The server closed the connection as the request went out, without
    /// an answer: what a gateway does to a keep-alive connection it closes
    /// as idle while the client reuses it. The request was not answered,
    /// so a query may be sent again at once.
    pub closed_before_answer: bool,
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
            closed_before_answer: false,
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

/// The essentials of a refusal, for a service's not-found rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    /// The HTTP status.
    pub http_status: u16,
    /// The error code from the body, when there is one.
    pub code: Option<&'a str>,
    /// The error message from the body, when there is one.
    pub message: Option<&'a str>,
}

impl Refusal<'_> {
    /// HTTP 404 or 410, the statuses that say "no such thing" in any
    /// service.
    pub fn is_http_not_found(&self) -> bool {
        matches!(self.http_status, 404 | 410)
    }

    /// Whether the body's error code is `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code == Some(code)
    }
}

/// A service's not-found rule: whether a refusal means "no such job".
pub type NotFoundRule<'r> = &'r dyn Fn(&Refusal<'_>) -> bool;

/// Classifies a complete HTTP answer: a 2xx body is handed back for the
/// service's adapter to read; any other answer is the error it means.
/// `now` resolves a `Retry-After` given as an HTTP date; `is_not_found`
/// is the service's not-found rule.
pub fn classify<'b>(
    status: u16,
    headers: AnswerHeaders<'_>,
    body: &'b [u8],
    now: SystemTime,
    is_not_found: NotFoundRule<'_>,
) -> Result<&'b [u8], ApiError> {
    if (200..=299).contains(&status) {
        return Ok(body);
    }
    let fields = error_fields(body);
    Err(refused(
        status,
        headers,
        fields.code.as_deref(),
        fields.message.as_deref(),
        now,
        is_not_found,
    ))
}

/// The error an answer means, from its status and the error code and
/// message of its body: used for every non-2xx answer, and for a 2xx body
/// that has no job status (a 2xx with an error code is a failed query,
/// `Server`; without one, `Decode`).
pub fn refused(
    status: u16,
    headers: AnswerHeaders<'_>,
    code: Option<&str>,
    message: Option<&str>,
    now: SystemTime,
    is_not_found: NotFoundRule<'_>,
) -> ApiError {
    let fail = |kind: ErrorKind, message: String| ApiError {
        kind,
        http_status: Some(status),
        error_code: code.map(str::to_string),
        request_id: headers.request_id.map(str::to_string),
        message,
        closed_before_answer: false,
    };
    let describe = |fallback: &str| {
        message
            .map(|m| truncate(m, 200))
            .unwrap_or_else(|| fallback.to_string())
    };
    let throttled = || {
        let retry_after = headers.retry_after.and_then(|v| parse_retry_after(v, now));
        fail(ErrorKind::Throttled { retry_after }, describe("throttled"))
    };

    // The body's code wins over the status, in both directions.
    if let Some(code) = code {
        if THROTTLE_CODES.contains(&code) {
            return throttled();
        }
        if AUTH_CODES.contains(&code) {
            return fail(ErrorKind::Auth, describe("authentication failed"));
        }
    }
    let refusal = Refusal {
        http_status: status,
        code,
        message,
    };
    if is_not_found(&refusal) {
        return fail(ErrorKind::NotFound, describe("job not found"));
    }
    match status {
        200..=299 if code.is_some() => fail(ErrorKind::Server, describe("the job query failed")),
        200..=299 => fail(ErrorKind::Decode, "the answer has no job status".into()),
        429 => throttled(),
        401 => fail(ErrorKind::Auth, describe("authentication failed")),
        403 => fail(ErrorKind::Forbidden, describe("forbidden")),
        408 => fail(ErrorKind::Timeout, describe("request timeout")),
        500..=599 => fail(ErrorKind::Server, describe("server error")),
        _ => fail(ErrorKind::Client, describe("request refused")),
    }
}

/// A 2xx answer whose body could not be read at all (not JSON, not an
/// object, too large).
pub fn undecodable(status: u16, headers: AnswerHeaders<'_>, message: String) -> ApiError {
    ApiError {
        kind: ErrorKind::Decode,
        http_status: Some(status),
        error_code: None,
        request_id: headers.request_id.map(str::to_string),
        message,
        closed_before_answer: false,
    }
}

/// The error code and message of a body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// The error code.
    pub code: Option<String>,
    /// Its message.
    pub message: Option<String>,
}

/// The error code and message of any of the error shapes, read in this
/// order: `error.code`/`error.message`; then, unless the body has a
/// string `status` (a job body, whose `error_code` describes the job, not
/// the call), `error_code`/`error_msg`, `errorCode`/`errorMessage`, and
/// `code`/`message`. Only strings count. A body that is not a JSON object
/// has neither.
pub fn error_fields(body: &[u8]) -> ErrorFields {
    let Ok(probe) = serde_json::from_slice::<Probe<'_>>(body) else {
        return ErrorFields::default();
    };
    let owned = |word: Option<Cow<'_, str>>| word.map(Cow::into_owned);
    if probe.inner_code.is_some() || probe.inner_message.is_some() {
        return ErrorFields {
            code: owned(probe.inner_code),
            message: owned(probe.inner_message),
        };
    }
    if probe.has_status {
        return ErrorFields::default();
    }
    let pairs = [
        (probe.error_code, probe.error_msg),
        (probe.camel_code, probe.camel_message),
    ];
    for (code, message) in pairs {
        if code.is_some() {
            return ErrorFields {
                code: owned(code),
                message: owned(message),
            };
        }
    }
    ErrorFields {
        code: owned(probe.code),
        message: owned(probe.message),
    }
}

/// What [`error_fields`] reads of a body, in one pass.
#[derive(Default)]
struct Probe<'a> {
    inner_code: Option<Cow<'a, str>>,
    inner_message: Option<Cow<'a, str>>,
    has_status: bool,
    error_code: Option<Cow<'a, str>>,
    error_msg: Option<Cow<'a, str>>,
    camel_code: Option<Cow<'a, str>>,
    camel_message: Option<Cow<'a, str>>,
    code: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
}

/// A string value, or `None` for a value of any other type (skipped).
struct Word<'a>(Option<Cow<'a, str>>);

struct WordVisitor;

impl<'de> Visitor<'de> for WordVisitor {
    type Value = Word<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Word<'de>, E> {
        Ok(Word(Some(Cow::Borrowed(value))))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Word<'de>, E> {
        Ok(Word(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Word<'de>, E> {
        Ok(Word(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Word<'de>, E> {
        Ok(Word(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Word<'de>, E> {
        Ok(Word(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Word<'de>, E> {
        Ok(Word(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Word<'de>, E> {
        Ok(Word(None))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Word<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Word(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Word<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Word(None))
    }
}

impl<'de> Deserialize<'de> for Word<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Word<'de>, D::Error> {
        deserializer.deserialize_any(WordVisitor)
    }
}

/// The `error` object: its `code` and `message`, or nothing when `error`
/// is not an object.
struct Inner<'a>(Option<Cow<'a, str>>, Option<Cow<'a, str>>);

struct InnerVisitor;

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = Inner<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inner<'de>, A::Error> {
        let mut inner = Inner(None, None);
        while let Some(Word(key)) = map.next_key::<Word<'de>>()? {
            match key.as_deref() {
                Some("code") => inner.0 = map.next_value::<Word<'de>>()?.0,
                Some("message") => inner.1 = map.next_value::<Word<'de>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(inner)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Inner<'de>, A::Error> {
        WordVisitor.visit_seq(seq).map(|_| Inner(None, None))
    }

    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Inner<'de>, E> {
        Ok(Inner(None, None))
    }
}

impl<'de> Deserialize<'de> for Inner<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Inner<'de>, D::Error> {
        deserializer.deserialize_any(InnerVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'de>, A::Error> {
        let mut probe = Probe::default();
        while let Some(Word(key)) = map.next_key::<Word<'de>>()? {
            let word = |map: &mut A| map.next_value::<Word<'de>>().map(|word| word.0);
            match key.as_deref() {
                Some("error") => {
                    let Inner(code, message) = map.next_value()?;
                    probe.inner_code = code;
                    probe.inner_message = message;
                }
                Some("status") => probe.has_status = word(&mut map)?.is_some(),
                Some("error_code") => probe.error_code = word(&mut map)?,
                Some("error_msg") => probe.error_msg = word(&mut map)?,
                Some("errorCode") => probe.camel_code = word(&mut map)?,
                Some("errorMessage") => probe.camel_message = word(&mut map)?,
                Some("code") => probe.code = word(&mut map)?,
                Some("message") => probe.message = word(&mut map)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(probe)
    }
}

impl<'de> Deserialize<'de> for Probe<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Probe<'de>, D::Error> {
        deserializer.deserialize_map(ProbeVisitor)
    }
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
mod tests;
