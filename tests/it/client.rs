//! The real job API client against the real simulator on loopback, and
//! against a few hand-made servers for answers the simulator never gives:
//! every way a job query can end is produced for real and must come back
//! as the right `ErrorKind`, with the status, error code and request id
//! the answer carried, and without any secret in its text.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use chrono::{TimeDelta, Utc};
use ecs_jobwatch::huaweicloud::client::{Client, ClientConfig};
use ecs_jobwatch::huaweicloud::credentials::{
    CredentialProvider, CredentialsConfig, Environment, Source,
};
use ecs_jobwatch::huaweicloud::error::{self, AnswerHeaders, ApiError, ErrorKind};
use ecs_jobwatch::huaweicloud::sign;
use ecs_jobwatch::services::ecs::{Job, JobStatus};
use ecs_jobwatch::sim::{self, FaultKind, FaultRule, Scenario, SimHandle};
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const JOB: &str = "ff80808288d41e1b018990260955686a";
const SUB_JOB: &str = "ff80808288d41e1b018990260955686b";
const SERVER_ID: &str = "1c74e090-c569-4b52-9eaa-fd34776cec28";
/// A job that only becomes visible in an hour, with 404 `Ecs.0103` until then.
const HIDDEN_JOB: &str = "hidden-404";
/// A job that only becomes visible in an hour, with 400 `Common.0011` until then.
const HIDDEN_JOB_0011: &str = "hidden-common-0011";

/// One key pair the client can sign with.
#[derive(Clone, Copy, Debug)]
struct Key {
    access_key: &'static str,
    secret_key: &'static str,
    security_token: Option<&'static str>,
}

const PLAIN: Key = Key {
    access_key: "SIMAK0000000000000001",
    secret_key: "sim-secret-key-0000000000000000000000001",
    security_token: None,
};
const TEMPORARY: Key = Key {
    access_key: "SIMAK0000000000000002",
    secret_key: "sim-secret-key-0000000000000000000000002",
    security_token: Some("sim-security-token-2"),
};
const FORBIDDEN: Key = Key {
    access_key: "SIMAK0000000000000003",
    secret_key: "sim-secret-key-0000000000000000000000003",
    security_token: None,
};
/// The plain access key with a secret key the simulator does not know.
const WRONG_SECRET: Key = Key {
    access_key: "SIMAK0000000000000001",
    secret_key: "wrong-secret-key-99999999999999999999999",
    security_token: None,
};

/// Strings that must never appear in the text of a client or an error.
const SECRETS: &[&str] = &[
    "SIMAK0000000000000001",
    "SIMAK0000000000000002",
    "SIMAK0000000000000003",
    "sim-secret-key-0000000000000000000000001",
    "sim-secret-key-0000000000000000000000002",
    "sim-secret-key-0000000000000000000000003",
    "wrong-secret-key-99999999999999999999999",
    "sim-security-token-2",
    "Signature=",
];

/// A generous timeout for requests that are expected to get an answer.
const GENEROUS: Duration = Duration::from_secs(30);

/// The simulator with the three credentials, one running job with a
/// sub-job, and two jobs that stay invisible for the whole test.
fn scenario(extra: &str) -> Scenario {
    let text = format!(
        r#"
project_id = "{PROJECT}"
[[credential]]
access_key = "{plain_ak}"
secret_key = "{plain_sk}"
[[credential]]
access_key = "{temp_ak}"
secret_key = "{temp_sk}"
security_token = "{temp_token}"
[[credential]]
access_key = "{forbidden_ak}"
secret_key = "{forbidden_sk}"
forbidden = true

[[job]]
id = "{JOB}"
job_type = "createServer"
timeline = [ {{ at = "0s", status = "RUNNING" }} ]
[[job.sub_job]]
id = "{SUB_JOB}"
job_type = "createSingleServer"
server_id = "{SERVER_ID}"
timeline = [ {{ at = "0s", status = "RUNNING" }} ]

[[job]]
id = "{HIDDEN_JOB}"
job_type = "deleteVMs"
visible_after = "1h"
timeline = [ {{ at = "1h", status = "RUNNING" }} ]

[[job]]
id = "{HIDDEN_JOB_0011}"
job_type = "deleteVMs"
visible_after = "1h"
not_found = "Common.0011"
timeline = [ {{ at = "1h", status = "RUNNING" }} ]
{extra}
"#,
        plain_ak = PLAIN.access_key,
        plain_sk = PLAIN.secret_key,
        temp_ak = TEMPORARY.access_key,
        temp_sk = TEMPORARY.secret_key,
        temp_token = TEMPORARY.security_token.unwrap_or_default(),
        forbidden_ak = FORBIDDEN.access_key,
        forbidden_sk = FORBIDDEN.secret_key,
    );
    match Scenario::from_toml_str(&text) {
        Ok(scenario) => scenario,
        Err(error) => panic!("test scenario: {error}"),
    }
}

async fn simulator(extra: &str) -> SimHandle {
    sim::spawn(scenario(extra))
        .await
        .expect("the simulator starts on 127.0.0.1:0")
}

/// A client for `base_url` that signs with `key`, built the way the daemon
/// builds it (environment credentials).
fn client(base_url: &str, key: Key, request_timeout: Duration) -> Client {
    let mut pairs = vec![
        ("HUAWEICLOUD_SDK_AK", key.access_key),
        ("HUAWEICLOUD_SDK_SK", key.secret_key),
    ];
    if let Some(token) = key.security_token {
        pairs.push(("HUAWEICLOUD_SDK_SECURITY_TOKEN", token));
    }
    let config = CredentialsConfig {
        source: Source::Env,
        ..Default::default()
    };
    let (credentials, _warnings) =
        CredentialProvider::new(&config, &Environment::from_pairs(pairs))
            .expect("environment credentials resolve");
    let config = ClientConfig {
        endpoint: Url::parse(base_url).expect("a valid endpoint"),
        project_id: PROJECT.to_string(),
        request_timeout,
    };
    Client::new(&config, credentials).expect("the client builds")
}

/// Fails when the `Debug` or `Display` text of `error` contains a secret.
fn assert_no_secrets(error: &ApiError) {
    for text in [format!("{error}"), format!("{error:?}")] {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
        }
    }
}

/// What a failed query must look like.
#[derive(Debug)]
struct Expected {
    kind: ErrorKind,
    http_status: Option<u16>,
    error_code: Option<&'static str>,
    /// Whether the answer carried the simulator's `X-Request-Id`.
    request_id: bool,
}

impl Expected {
    fn answered(kind: ErrorKind, status: u16, code: &'static str) -> Expected {
        Expected {
            kind,
            http_status: Some(status),
            error_code: Some(code),
            request_id: true,
        }
    }

    fn unanswered(kind: ErrorKind) -> Expected {
        Expected {
            kind,
            http_status: None,
            error_code: None,
            request_id: false,
        }
    }
}

/// The simulator's request ids are 32 hex digits.
fn is_simulator_request_id(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// Checks a result against `expected`, and that no secret leaked into it.
/// Returns the request id so that callers can compare ids.
fn check(name: &str, result: Result<Job, ApiError>, expected: &Expected) -> Option<String> {
    let error = match result {
        Ok(job) => panic!("{name}: expected {expected:?}, got the job {job:?}"),
        Err(error) => error,
    };
    assert_no_secrets(&error);
    assert_eq!(error.kind, expected.kind, "{name}: {error}");
    assert_eq!(error.http_status, expected.http_status, "{name}: {error}");
    assert_eq!(
        error.error_code.as_deref(),
        expected.error_code,
        "{name}: {error}"
    );
    match (&error.request_id, expected.request_id) {
        (Some(id), true) => assert!(is_simulator_request_id(id), "{name}: request id {id:?}"),
        (None, false) => {}
        (other, _) => panic!("{name}: request id {other:?}, expected one: {expected:?}"),
    }
    error.request_id
}

#[tokio::test]
async fn signed_requests_are_accepted() {
    let sim = simulator("").await;
    for (name, key) in [
        ("plain key", PLAIN),
        ("temporary key with token", TEMPORARY),
    ] {
        let job = client(&sim.base_url(), key, GENEROUS)
            .get_job(JOB)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(job.status, Some(JobStatus::Running), "{name}");
        assert_eq!(job.job_id.as_deref(), Some(JOB), "{name}");
        assert_eq!(job.job_type.as_deref(), Some("createServer"), "{name}");
        assert_eq!(job.end_time, None, "{name}");
        assert_eq!(job.sub_jobs_total, Some(1), "{name}");
        assert_eq!(job.sub_jobs.len(), 1, "{name}");
        let sub_job = &job.sub_jobs[0];
        assert_eq!(sub_job.status, Some(JobStatus::Running), "{name}");
        assert_eq!(sub_job.job_id.as_deref(), Some(SUB_JOB), "{name}");
        assert_eq!(
            sub_job.job_type.as_deref(),
            Some("createSingleServer"),
            "{name}"
        );
        assert_eq!(job.server_ids(), vec![SERVER_ID.to_string()], "{name}");
    }
    let stats = sim.stats();
    assert_eq!(stats.rejected_auth, 0);
    assert_eq!(stats.jobs[JOB].requests, 2);
}

#[tokio::test]
async fn wrong_secret_key_is_auth_401_apigw_0301() {
    let sim = simulator("").await;
    let result = client(&sim.base_url(), WRONG_SECRET, GENEROUS)
        .get_job(JOB)
        .await;
    let expected = Expected::answered(ErrorKind::Auth, 401, "APIGW.0301");
    check("wrong secret key", result, &expected);
    assert_eq!(sim.stats().rejected_auth, 1);
}

/// The client always signs with the current time, so a skewed date is
/// produced by hand: the same headers the client sends, signed with the
/// real key but dated 20 minutes off, sent with a plain reqwest client,
/// and the answer fed to `classify` as the client would.
#[tokio::test]
async fn skewed_date_is_auth_apigw_0303() {
    let sim = simulator("").await;
    let http = reqwest::Client::new();
    let path = format!("/v1/{PROJECT}/jobs/{JOB}");
    for minutes in [20, -20] {
        let headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Host".into(), sim.addr().to_string()),
            ("X-Project-Id".into(), PROJECT.into()),
            (
                "X-Sdk-Date".into(),
                sign::format_sdk_date(Utc::now() + TimeDelta::minutes(minutes)),
            ),
        ];
        let request = sign::Request {
            method: "GET",
            path: &path,
            query: &[],
            headers: &headers,
            body: b"",
        };
        let authorization = sign::authorization(&request, PLAIN.access_key, PLAIN.secret_key)
            .expect("Host and X-Sdk-Date are present");
        let mut builder = http.get(format!("{}{path}", sim.base_url()));
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .header("Authorization", authorization)
            .send()
            .await
            .expect("the simulator answers");
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let (request_id, retry_after) = (header("x-request-id"), header("retry-after"));
        let body = response.bytes().await.expect("the body arrives");
        let answer = AnswerHeaders {
            request_id: request_id.as_deref(),
            retry_after: retry_after.as_deref(),
        };
        let result = error::classify(status, answer, &body, SystemTime::now());
        let expected = Expected::answered(ErrorKind::Auth, 401, "APIGW.0303");
        let id = check(&format!("skew {minutes} min"), result, &expected);
        assert_eq!(id, request_id, "skew {minutes} min");
    }
    assert_eq!(sim.stats().rejected_auth, 2);
}

/// Answers of the simulator without any fault rule: refused keys and
/// unknown or not yet visible jobs.
#[tokio::test]
async fn simulator_refusals_are_classified() {
    let sim = simulator("").await;
    let cases = [
        (
            "forbidden key",
            FORBIDDEN,
            JOB,
            Expected::answered(ErrorKind::Forbidden, 403, "Ecs.0000"),
        ),
        (
            "unknown job",
            PLAIN,
            "no-such-job",
            Expected::answered(ErrorKind::NotFound, 404, "Ecs.0103"),
        ),
        (
            "job before visible_after, 404 style",
            PLAIN,
            HIDDEN_JOB,
            Expected::answered(ErrorKind::NotFound, 404, "Ecs.0103"),
        ),
        (
            "job before visible_after, Common.0011 style",
            PLAIN,
            HIDDEN_JOB_0011,
            Expected::answered(ErrorKind::NotFound, 400, "Common.0011"),
        ),
    ];
    for (name, key, job, expected) in &cases {
        let result = client(&sim.base_url(), *key, GENEROUS).get_job(job).await;
        check(name, result, expected);
    }
}

fn rule(kind: FaultKind) -> FaultRule {
    FaultRule::always(kind)
}

/// The fault rules in force, the client's request timeout, and what the
/// query must end in.
type FaultCase = (Vec<FaultRule>, Duration, Expected);

/// Every fault kind of the simulator, injected for real, with the class
/// the client must give it.
#[tokio::test]
async fn simulator_faults_are_classified() {
    let sim = simulator("").await;
    let throttled = |seconds: Option<u64>| ErrorKind::Throttled {
        retry_after: seconds.map(Duration::from_secs),
    };
    let server_error = |status: u16| {
        (
            vec![FaultRule {
                status: Some(status),
                ..rule(FaultKind::ServerError)
            }],
            GENEROUS,
            Expected::answered(ErrorKind::Server, status, "Ecs.0500"),
        )
    };
    let cases: Vec<(&str, FaultCase)> = vec![
        (
            "throttle with Retry-After in seconds",
            (
                vec![FaultRule {
                    retry_after: Some(Duration::from_secs(2)),
                    ..rule(FaultKind::Throttle)
                }],
                GENEROUS,
                Expected::answered(throttled(Some(2)), 429, "APIGW.0308"),
            ),
        ),
        (
            "throttle without Retry-After",
            (
                vec![rule(FaultKind::Throttle)],
                GENEROUS,
                Expected::answered(throttled(None), 429, "APIGW.0308"),
            ),
        ),
        (
            "throttle_202",
            (
                vec![rule(FaultKind::Throttle202)],
                GENEROUS,
                Expected::answered(throttled(None), 202, "Common.0024"),
            ),
        ),
        ("server_error 500", server_error(500)),
        ("server_error 502", server_error(502)),
        ("server_error 503", server_error(503)),
        ("server_error 504", server_error(504)),
        (
            "client_error",
            (
                vec![rule(FaultKind::ClientError)],
                GENEROUS,
                Expected::answered(ErrorKind::Client, 400, "Ecs.0005"),
            ),
        ),
        (
            // A 2 s delay against a 300 ms request timeout; only the class
            // is checked, never how long it took.
            "latency past the request timeout",
            (
                vec![FaultRule {
                    latency: Some((Duration::from_secs(2), Duration::from_secs(2))),
                    ..rule(FaultKind::Latency)
                }],
                Duration::from_millis(300),
                Expected::unanswered(ErrorKind::Timeout),
            ),
        ),
        (
            "drop",
            (
                vec![rule(FaultKind::Drop)],
                GENEROUS,
                Expected::unanswered(ErrorKind::Connect),
            ),
        ),
        (
            // The status line and headers arrived, the body did not.
            "truncate",
            (
                vec![rule(FaultKind::Truncate)],
                GENEROUS,
                Expected {
                    kind: ErrorKind::Decode,
                    http_status: Some(200),
                    error_code: None,
                    request_id: true,
                },
            ),
        ),
    ];
    for (name, (faults, timeout, expected)) in cases {
        sim.try_set_faults(faults)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let result = client(&sim.base_url(), PLAIN, timeout).get_job(JOB).await;
        check(name, result, &expected);
    }
    let injected = sim.stats().faults_injected;
    for (kind, count) in [
        ("throttle", 2),
        ("throttle_202", 1),
        ("server_error", 4),
        ("client_error", 1),
        ("latency", 1),
        ("drop", 1),
        ("truncate", 1),
    ] {
        assert_eq!(injected.get(kind).copied(), Some(count), "{kind}");
    }
}

#[tokio::test]
async fn throttle_with_retry_after_as_http_date() {
    let sim = simulator("").await;
    sim.try_set_faults(vec![FaultRule {
        retry_after: Some(Duration::from_secs(30)),
        retry_after_http_date: true,
        ..rule(FaultKind::Throttle)
    }])
    .expect("a valid rule");
    let error = client(&sim.base_url(), PLAIN, GENEROUS)
        .get_job(JOB)
        .await
        .expect_err("the fault answers 429");
    assert_no_secrets(&error);
    // The date is resolved against the wall clock, so only its presence and
    // its bound are checked.
    match error.kind {
        ErrorKind::Throttled {
            retry_after: Some(delay),
        } => assert!(delay <= Duration::from_secs(30), "{delay:?}"),
        other => panic!("expected Throttled with a Retry-After, got {other:?}"),
    }
    assert_eq!(error.http_status, Some(429));
    assert_eq!(error.error_code.as_deref(), Some("APIGW.0308"));
}

/// The simulator's own rate limit of one request per sliding second: of a
/// burst of requests at least one is refused, and the refusal is a
/// throttle with `Retry-After: 1`. No timing is assumed: the burst simply
/// goes on until a refusal arrives.
#[tokio::test]
async fn simulator_rate_limit_is_throttled() {
    let sim = simulator("[limits]\nrequests_per_second = 1\n").await;
    let client = client(&sim.base_url(), PLAIN, GENEROUS);
    let mut refusal = None;
    for _ in 0..100 {
        if let Err(error) = client.get_job(JOB).await {
            refusal = Some(error);
            break;
        }
    }
    let error = refusal.expect("a burst of 100 requests passes a limit of 1 per second");
    let expected = Expected::answered(
        ErrorKind::Throttled {
            retry_after: Some(Duration::from_secs(1)),
        },
        429,
        "APIGW.0308",
    );
    check("global rate limit", Err(error), &expected);
    assert!(sim.stats().rejected_rate_limit >= 1);
}

#[tokio::test]
async fn request_ids_differ_between_answers() {
    let sim = simulator("").await;
    sim.try_set_faults(vec![rule(FaultKind::ClientError)])
        .expect("a valid rule");
    let client = client(&sim.base_url(), PLAIN, GENEROUS);
    let expected = Expected::answered(ErrorKind::Client, 400, "Ecs.0005");
    let first = check("first", client.get_job(JOB).await, &expected);
    let second = check("second", client.get_job(JOB).await, &expected);
    assert_ne!(first, second);
}

/// An address nothing listens on: bound, read, and released again.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a local address");
    drop(listener);
    addr
}

#[tokio::test]
async fn nothing_listening_is_connect() {
    let addr = closed_port().await;
    let result = client(&format!("http://{addr}"), PLAIN, GENEROUS)
        .get_job(JOB)
        .await;
    check(
        "nothing listening",
        result,
        &Expected::unanswered(ErrorKind::Connect),
    );
}

/// How a hand-made server answers every request.
#[derive(Clone, Copy, Debug)]
enum RawAnswer {
    /// 200 with this body and a matching `Content-Length`.
    Body(&'static [u8]),
    /// 200 announcing this many body bytes, then nothing until the client
    /// hangs up: a client that tried to read the body would time out.
    AnnounceOnly(usize),
    /// 200 with chunked encoding, streaming zeros in 64 KiB chunks until
    /// this many bytes are sent or the client hangs up.
    Chunked(usize),
}

/// The `X-Request-Id` of every answer of the hand-made servers.
const RAW_REQUEST_ID: &str = "raw-request-id-7";

/// A minimal HTTP/1.1 server on 127.0.0.1:0 that gives `answer` to every
/// request, for answers the simulator cannot give.
async fn raw_server(answer: RawAnswer) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a local address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_raw(stream, answer));
        }
    });
    addr
}

async fn serve_raw(mut stream: TcpStream, answer: RawAnswer) {
    // Read up to the end of the request head; job queries have no body.
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let status_line = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
    match answer {
        RawAnswer::Body(body) => {
            let head = format!(
                "{status_line}X-Request-Id: {RAW_REQUEST_ID}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body).await;
        }
        RawAnswer::AnnounceOnly(length) => {
            let head = format!(
                "{status_line}X-Request-Id: {RAW_REQUEST_ID}\r\nContent-Length: {length}\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            // Wait for the client to hang up; it must not wait for the body.
            while let Ok(read) = stream.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
            }
        }
        RawAnswer::Chunked(total) => {
            let head = format!(
                "{status_line}X-Request-Id: {RAW_REQUEST_ID}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'0'; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                let framed =
                    [format!("{:X}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
                sent += chunk.len();
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    }
    let _ = stream.shutdown().await;
}

/// Answers the simulator never gives: a 200 that is not JSON, and bodies
/// past the 1 MiB cap, announced or streamed. All are `Decode`, and all
/// keep the status and request id of the answer.
#[tokio::test]
async fn unreadable_answers_are_decode() {
    let cases = [
        (
            "200 with a body that is not JSON",
            RawAnswer::Body(b"<html>ok</html>"),
        ),
        ("200 with an empty body", RawAnswer::Body(b"")),
        ("200 announcing 2 MiB", RawAnswer::AnnounceOnly(2 << 20)),
        ("200 streaming 4 MiB chunked", RawAnswer::Chunked(4 << 20)),
    ];
    for (name, answer) in cases {
        let addr = raw_server(answer).await;
        let error = client(&format!("http://{addr}"), PLAIN, GENEROUS)
            .get_job(JOB)
            .await
            .expect_err(name);
        assert_no_secrets(&error);
        assert_eq!(error.kind, ErrorKind::Decode, "{name}: {error}");
        assert_eq!(error.http_status, Some(200), "{name}: {error}");
        assert_eq!(error.error_code, None, "{name}: {error}");
        assert_eq!(
            error.request_id.as_deref(),
            Some(RAW_REQUEST_ID),
            "{name}: {error}"
        );
    }
}

#[tokio::test]
async fn client_debug_shows_no_secrets() {
    for key in [PLAIN, TEMPORARY, WRONG_SECRET] {
        let text = format!("{:?}", client("http://127.0.0.1:9", key, GENEROUS));
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
        }
        assert!(text.contains(PROJECT), "{text}");
    }
}
