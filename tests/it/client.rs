//! The real job API client and the `Fleet` against the real simulator on
//! loopback, and against a few hand-made servers for answers the simulator
//! never gives: every way a job query can end is produced for real and
//! must come back as the right `ErrorKind`, with the status, error code and
//! request id the answer carried, and without any secret in its text. A
//! job of every service is read through the fleet, each service's "no such
//! job" answers are `NotFound`, and two services' jobs with one id, or two
//! projects, are told apart.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use chrono::{TimeDelta, Utc};
use ecs_jobwatch::huaweicloud::client::{Client, ClientConfig, ClientError, HttpSettings};
use ecs_jobwatch::huaweicloud::credentials::{
    CredentialProvider, CredentialsConfig, Environment, Source,
};
use ecs_jobwatch::huaweicloud::error::{AnswerHeaders, ApiError, ErrorKind};
use ecs_jobwatch::huaweicloud::sign;
use ecs_jobwatch::job::{JobKey, ProjectName, Service, Status};
use ecs_jobwatch::services::fleet::{Fleet, Target};
use ecs_jobwatch::services::{self, Poller};
use ecs_jobwatch::sim::{self, FaultKind, FaultRule, Scenario, SimHandle};
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// The project id of the second project, `shanghai`.
const SHANGHAI: &str = "fedcba9876543210fedcba9876543210";
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
project_ids = ["{SHANGHAI}"]
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
{FAMILY}
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

/// A job of every other service: two share an id, one is in the second
/// project, and some stay invisible to show each "no such job" answer.
const FAMILY: &str = r#"
[[job]]
id = "shared-id"
service = "evs"
job_type = "createVolume"
resource_id = "vol-1"
timeline = [ { at = "0s", status = "WAITING_EXECUTE" } ]

[[job]]
id = "shared-id"
service = "cce"
job_type = "CreateCluster"
resource_id = "cluster-1"
timeline = [ { at = "0s", status = "Failed", fail_reason = "master failed" } ]
[[job.sub_job]]
id = "master"
job_type = "InstallMaster"
timeline = [ { at = "0s", status = "Failed", fail_reason = "disk" } ]
[[job.sub_job.sub_job]]
id = ""
job_type = "PrepareNode"
timeline = [ { at = "0s", status = "Success" } ]

[[job]]
id = "rds-job"
service = "rds"
project = "fedcba9876543210fedcba9876543210"
job_type = "CreateMysqlSingleHAInstance"
resource_id = "mysql-1"
timeline = [ { at = "0s", status = "Completed" } ]

[[job]]
id = "ims-job"
service = "ims"
job_type = "imsCreateImageByInstance"
resource_id = "img-1"
timeline = [ { at = "0s", status = "RUNNING", progress = 50.0 } ]

[[job]]
id = "bms-job"
service = "bms"
job_type = "baremetalBatchCreate"
timeline = [ { at = "0s", status = "SUCCESS" } ]
[[job.sub_job]]
id = "bms-sub"
job_type = "baremetalSingleCreate"
server_id = "bms-server-1"
timeline = [ { at = "0s", status = "SUCCESS" } ]

[[job]]
id = "eip-job"
service = "eip"
job_type = "createBatchPublicip"
resource_id = "ip-1"
timeline = [ { at = "0s", status = "SUCCESS" } ]

[[job]]
id = "hidden-rds-404"
service = "rds"
job_type = "CreateMysqlSingleHAInstance"
visible_after = "1h"
not_found = "404"
timeline = [ { at = "1h", status = "Running" } ]

[[job]]
id = "hidden-evs-404"
service = "evs"
job_type = "createVolume"
visible_after = "1h"
not_found = "404"
timeline = [ { at = "1h", status = "RUNNING" } ]
"#;

async fn simulator(extra: &str) -> SimHandle {
    sim::spawn(scenario(extra))
        .await
        .expect("the simulator starts on 127.0.0.1:0")
}

/// Environment credentials for `key`, resolved the way the daemon does.
fn credentials(key: Key) -> CredentialProvider {
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
    credentials
}

/// A client with one default ECS project at `base_url` (read through
/// `get_job`, the path the scheduler takes until it moves to the fleet).
fn client(base_url: &str, key: Key, request_timeout: Duration) -> Client {
    let config = ClientConfig {
        endpoint: Url::parse(base_url).expect("a valid endpoint"),
        project_id: PROJECT.to_string(),
        request_timeout,
    };
    Client::new(&config, credentials(key)).expect("the client builds")
}

/// Every service's endpoint under `base` (`{base}/{service}`), ECS's at
/// `ecs_base` as given.
fn endpoints(base: &str, ecs_base: &str) -> BTreeMap<Service, Url> {
    Service::ALL
        .into_iter()
        .map(|service| {
            let url = match service {
                Service::Ecs => ecs_base.to_string(),
                other => format!("{base}/{other}"),
            };
            (service, Url::parse(&url).expect("a valid endpoint"))
        })
        .collect()
}

fn shanghai() -> ProjectName {
    ProjectName::parse("shanghai").expect("a valid project name")
}

/// The fleet the daemon builds for `base_url`: the default project (ECS at
/// the simulator's root, as before the job family) and `shanghai` (every
/// service under its prefix, ECS too), one client, one credential.
fn fleet(base_url: &str, key: Key, request_timeout: Duration) -> Fleet {
    let settings = HttpSettings {
        request_timeout,
        ca_file: None,
        ..HttpSettings::default()
    };
    let client = Client::build(&settings, credentials(key)).expect("the client builds");
    let targets = vec![
        Target {
            project: ProjectName::default(),
            project_id: PROJECT.to_string(),
            region: Some("cn-north-4".into()),
            endpoints: endpoints(base_url, base_url),
        },
        Target {
            project: shanghai(),
            project_id: SHANGHAI.to_string(),
            region: Some("cn-east-3".into()),
            endpoints: endpoints(base_url, &format!("{base_url}/ecs")),
        },
    ];
    Fleet::new(client, targets).expect("the fleet builds")
}

/// `[PROJECT/][SERVICE:]JOB_ID` as a key.
fn key(text: &str) -> JobKey {
    JobKey::parse(text).expect("a valid job key")
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
fn check<T: Debug>(name: &str, result: Result<T, ApiError>, expected: &Expected) -> Option<String> {
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
        assert_eq!(job.status, Status::Running, "{name}");
        assert_eq!(job.job_id.as_deref(), Some(JOB), "{name}");
        assert_eq!(job.job_type.as_deref(), Some("createServer"), "{name}");
        assert_eq!(job.end_time, None, "{name}");
        assert_eq!(job.sub_jobs_total, Some(1), "{name}");
        assert_eq!(job.sub_jobs.len(), 1, "{name}");
        let sub_job = &job.sub_jobs[0];
        assert_eq!(sub_job.status, Status::Running, "{name}");
        assert_eq!(sub_job.job_id.as_deref(), Some(SUB_JOB), "{name}");
        assert_eq!(
            sub_job.job_type.as_deref(),
            Some("createSingleServer"),
            "{name}"
        );
        assert_eq!(job.server_ids, [SERVER_ID], "{name}");
    }
    for (name, key) in [
        ("plain key", PLAIN),
        ("temporary key with token", TEMPORARY),
    ] {
        let polled = fleet(&sim.base_url(), key, GENEROUS)
            .read(&JobKey::ecs(JOB.parse().expect("a valid id")))
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let view = polled.view;
        assert_eq!(view.status, Status::Running, "{name}");
        assert_eq!(view.job_id.as_deref(), Some(JOB), "{name}");
        assert_eq!(view.sub_jobs[0].key, SUB_JOB, "{name}");
        assert_eq!(view.server_ids, [SERVER_ID], "{name}");
        assert!(view.begin_ms.is_some(), "{name}");
        // The simulator's server sends `Date`.
        assert!(polled.server_now_ms.is_some(), "{name}");
    }
    let stats = sim.stats();
    assert_eq!(stats.rejected_auth, 0);
    assert_eq!(stats.jobs[JOB].requests, 4);
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
        let ecs = services::adapter(Service::Ecs);
        let result = services::read_answer(ecs, status, answer, &body, SystemTime::now());
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
    for (name, signer, job, expected) in &cases {
        let result = client(&sim.base_url(), *signer, GENEROUS)
            .get_job(job)
            .await;
        check(name, result, expected);
        let result = fleet(&sim.base_url(), *signer, GENEROUS)
            .read(&key(job))
            .await;
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
        let result = fleet(&sim.base_url(), PLAIN, timeout).read(&key(JOB)).await;
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
    let error = fleet(&sim.base_url(), PLAIN, GENEROUS)
        .read(&key("cce:shared-id"))
        .await
        .expect_err("the fault answers 429");
    assert_no_secrets(&error);
    // The date is resolved against the answer's own `Date`, which the
    // simulator sets from the same instant: exactly 30 s.
    assert_eq!(
        error.kind,
        ErrorKind::Throttled {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(error.http_status, Some(429));
    assert_eq!(error.error_code.as_deref(), Some("APIGW.0308"));
}

/// A 429 whose `Retry-After` is `retry_after`, with a fixed `Date`.
macro_rules! throttled_answer {
    ($retry_after:literal) => {
        concat!(
            "HTTP/1.1 429 Too Many Requests\r\n",
            "Date: Wed, 21 Oct 2015 07:28:00 GMT\r\n",
            "Retry-After: ",
            $retry_after,
            "\r\n",
            "X-Request-Id: raw-request-id-7\r\n",
            "Content-Type: application/json\r\n",
            "Content-Length: 56\r\n",
            "Connection: close\r\n\r\n",
            r#"{"error_code":"APIGW.0308","error_msg":"Throttled."}    "#,
        )
    };
}

/// `Retry-After` through the whole client, value by value: seconds as
/// given, a fraction kept, an HTTP date counted from the answer's `Date`
/// (not from this machine's clock), a date before it as no pause, and
/// anything over the cap cut to one hour.
#[tokio::test]
async fn retry_after_values_are_exact() {
    let cases: [(&str, &'static str, Option<Duration>); 7] = [
        (
            "seconds",
            throttled_answer!("7"),
            Some(Duration::from_secs(7)),
        ),
        ("zero", throttled_answer!("0"), Some(Duration::ZERO)),
        (
            "a fraction",
            throttled_answer!("1.5"),
            Some(Duration::from_millis(1_500)),
        ),
        (
            "an HTTP date 90 s after Date",
            throttled_answer!("Wed, 21 Oct 2015 07:29:30 GMT"),
            Some(Duration::from_secs(90)),
        ),
        (
            "an HTTP date before Date",
            throttled_answer!("Wed, 21 Oct 2015 07:27:00 GMT"),
            Some(Duration::ZERO),
        ),
        (
            "over the cap",
            throttled_answer!("86400"),
            Some(Duration::from_secs(3_600)),
        ),
        ("unreadable", throttled_answer!("soon"), None),
    ];
    for (name, answer, expected) in cases {
        let addr = raw_server(RawAnswer::Verbatim(answer)).await;
        let error = fleet(&format!("http://{addr}"), PLAIN, GENEROUS)
            .read(&key(JOB))
            .await
            .expect_err(name);
        assert_eq!(
            error.kind,
            ErrorKind::Throttled {
                retry_after: expected
            },
            "{name}"
        );
        assert_eq!(error.http_status, Some(429), "{name}");
        assert_eq!(error.request_id.as_deref(), Some(RAW_REQUEST_ID), "{name}");
    }
}

/// The simulator's own rate limit of one request per sliding second: of a
/// burst of requests at least one is refused, and the refusal is a
/// throttle with `Retry-After: 1`. No timing is assumed: the burst simply
/// goes on until a refusal arrives.
#[tokio::test]
async fn simulator_rate_limit_is_throttled() {
    let sim = simulator("[limits]\nrequests_per_second = 1\n").await;
    let fleet = fleet(&sim.base_url(), PLAIN, GENEROUS);
    let mut refusal = None;
    let keys = [key(JOB), key("evs:shared-id"), key("shanghai/rds:rds-job")];
    for key in keys.iter().cycle().take(100) {
        if let Err(error) = fleet.read(key).await {
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
    check::<()>("global rate limit", Err(error), &expected);
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
    let result = fleet(&format!("http://{addr}"), PLAIN, GENEROUS)
        .read(&key("shanghai/cce:x"))
        .await;
    check(
        "nothing listening, through the fleet",
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
    /// This whole answer, head and body, as given (it should say
    /// `Connection: close`).
    Verbatim(&'static str),
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
        RawAnswer::Verbatim(text) => {
            let _ = stream.write_all(text.as_bytes()).await;
        }
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
    for (index, (name, answer)) in cases.into_iter().enumerate() {
        let addr = raw_server(answer).await;
        // Every service's adapter refuses the same bytes alike.
        let service = Service::ALL[index % Service::ALL.len()];
        let error = fleet(&format!("http://{addr}"), PLAIN, GENEROUS)
            .read(&key(&format!("{service}:{JOB}")))
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

/// A job of every service, read from the simulator through one fleet.
#[tokio::test]
async fn a_job_of_every_service_through_the_fleet() {
    let sim = simulator("").await;
    let fleet = fleet(&sim.base_url(), PLAIN, GENEROUS);
    let read = |text: &'static str| {
        let fleet = fleet.clone();
        async move {
            match fleet.poll(&key(text)).await {
                Ok(polled) => polled,
                Err(error) => panic!("{text}: {error}"),
            }
        }
    };

    let ecs = read(JOB).await;
    assert_eq!(ecs.view.status, Status::Running);
    assert_eq!(ecs.view.server_ids, [SERVER_ID]);

    let bms = read("bms:bms-job").await;
    assert_eq!(bms.view.status, Status::Success);
    assert_eq!(bms.view.server_ids, ["bms-server-1"]);
    assert!(bms.view.end_ms.is_some());

    let evs = read("evs:shared-id").await;
    assert_eq!(evs.view.status.as_str(), "WAITING_EXECUTE");
    assert_eq!(evs.view.service_status, "WAITING_EXECUTE");
    assert!(!evs.view.status.is_final());
    assert_eq!(evs.view.resource_ids, ["vol-1"]);

    let ims = read("ims:ims-job").await;
    assert_eq!(ims.view.status, Status::Running);
    assert_eq!(ims.view.progress, Some(0.5));
    assert_eq!(ims.view.resource_ids, ["img-1"]);

    let cce = read("cce:shared-id").await;
    assert_eq!(cce.view.status, Status::Fail);
    assert_eq!(cce.view.service_status, "Failed");
    assert_eq!(cce.view.fail_reason.as_deref(), Some("master failed"));
    let keys: Vec<&str> = cce.view.sub_jobs.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["master", "#0.0"]);
    assert_eq!(cce.view.sub_jobs_failed(), 1);
    assert!(cce.view.begin_ms.is_some() && cce.view.end_ms.is_some());

    let rds = read("shanghai/rds:rds-job").await;
    assert_eq!(rds.view.status, Status::Success);
    assert_eq!(rds.view.service_status, "Completed");
    assert_eq!(rds.view.resource_ids, ["mysql-1"]);

    let eip = read("eip:eip-job").await;
    assert_eq!(eip.view.status, Status::Success);
    assert_eq!(eip.view.resource_ids, ["ip-1"]);

    // One alert rule, status="FAIL", and one "final" test cover them all.
    for polled in [&ecs, &bms, &evs, &ims, &cce, &rds, &eip] {
        assert!(polled.server_now_ms.is_some());
        assert!(polled.view.begin_ms.is_some(), "{:?}", polled.view);
    }
    let stats = sim.stats();
    for service in ["ecs", "bms", "evs", "ims", "cce", "rds", "eip"] {
        assert_eq!(stats.services[service].served, 1, "{service}");
    }
    assert_eq!(stats.rejected_auth, 0);
}

/// Each service's "no such job" answers, produced for real, are `NotFound`
/// with the status and code the simulator sent.
#[tokio::test]
async fn every_not_found_answer_is_not_found() {
    let sim = simulator("").await;
    let fleet = fleet(&sim.base_url(), PLAIN, GENEROUS);
    let cases = [
        ("missing", 404, "Ecs.0103"),
        ("shanghai/ecs:missing", 404, "Ecs.0103"),
        ("bms:missing", 404, "BMS.0103"),
        ("evs:missing", 400, "Common.0011"),
        ("evs:hidden-evs-404", 404, "EVS.0103"),
        ("ims:missing", 400, "IMG.0404"),
        ("cce:missing", 404, "CCE.01404001"),
        ("rds:missing", 400, "DBS.200543"),
        ("rds:hidden-rds-404", 404, "RDS.5041"),
        ("shanghai/rds:missing", 400, "DBS.200543"),
        ("eip:missing", 404, "VPC.0103"),
    ];
    for (text, status, code) in cases {
        let result = fleet.read(&key(text)).await;
        let expected = Expected::answered(ErrorKind::NotFound, status, code);
        check(text, result, &expected);
    }
    let stats = sim.stats();
    assert_eq!(stats.services["rds"].not_found, 3);
    assert_eq!(stats.services["evs"].not_found, 2);
}

/// Two services' jobs with one id, and one job id in two projects, are
/// different jobs.
#[tokio::test]
async fn equal_ids_in_two_services_and_projects_are_told_apart() {
    let sim = simulator("").await;
    let fleet = fleet(&sim.base_url(), PLAIN, GENEROUS);
    let evs = fleet
        .read(&key("evs:shared-id"))
        .await
        .expect("the EVS job");
    let cce = fleet
        .read(&key("cce:shared-id"))
        .await
        .expect("the CCE job");
    assert_eq!(evs.view.service_status, "WAITING_EXECUTE");
    assert_eq!(cce.view.service_status, "Failed");
    assert_ne!(evs.view.resource_ids, cce.view.resource_ids);
    // The RDS job lives in shanghai only.
    fleet
        .read(&key("shanghai/rds:rds-job"))
        .await
        .expect("the RDS job of shanghai");
    let error = fleet
        .read(&key("rds:rds-job"))
        .await
        .expect_err("no such RDS job in the default project");
    assert_eq!(error.kind, ErrorKind::NotFound);
    let stats = sim.stats();
    assert_eq!(stats.jobs["evs:shared-id"].requests, 1);
    assert_eq!(stats.jobs["cce:shared-id"].requests, 1);
    assert_eq!(stats.jobs[&format!("{SHANGHAI}/rds:rds-job")].requests, 1);
}

/// A key naming a project the fleet does not know, or a service without an
/// endpoint, is refused without a request, naming what is missing.
#[tokio::test]
async fn unknown_projects_and_services_are_client_errors() {
    let sim = simulator("").await;
    let error = fleet(&sim.base_url(), PLAIN, GENEROUS)
        .read(&key("beijing/evs:shared-id"))
        .await
        .expect_err("beijing is not configured");
    assert_eq!(error.kind, ErrorKind::Client);
    assert_eq!(error.http_status, None);
    assert!(error.message.contains("beijing"), "{error}");

    let settings = HttpSettings {
        request_timeout: GENEROUS,
        ca_file: None,
        ..HttpSettings::default()
    };
    let client = Client::build(&settings, credentials(PLAIN)).expect("the client builds");
    let only_ecs = Target {
        project: ProjectName::default(),
        project_id: PROJECT.to_string(),
        region: None,
        endpoints: [(
            Service::Ecs,
            Url::parse(&sim.base_url()).expect("a valid endpoint"),
        )]
        .into(),
    };
    let fleet = Fleet::new(client.clone(), vec![only_ecs.clone()]).expect("the fleet builds");
    fleet.read(&key(JOB)).await.expect("the ECS job");
    let error = fleet
        .read(&key("cce:x"))
        .await
        .expect_err("no CCE endpoint");
    assert_eq!(error.kind, ErrorKind::Client);
    assert!(error.message.contains("cce"), "{error}");
    assert_eq!(sim.stats().requests_total, 1);

    let twice = Fleet::new(client, vec![only_ecs.clone(), only_ecs]);
    assert!(twice.is_err());
    assert!(fleet.target(&ProjectName::default()).is_some());
    assert!(fleet.target(&shanghai()).is_none());
}

#[tokio::test]
async fn fleet_debug_shows_no_secrets() {
    for key in [PLAIN, TEMPORARY] {
        let text = format!("{:?}", fleet("http://127.0.0.1:9", key, GENEROUS));
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
        }
        assert!(text.contains(SHANGHAI), "{text}");
    }
}

/// A certificate a test authority issued itself, for `cloud.ca_file`.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBljCCATugAwIBAgIUBDffaDKrwzkPl5GXSNevvMaCMUEwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUZWNzLWpvYndhdGNoIHRlc3QgQ0EwIBcNMjYxMjAxMTUzMjA1
WhgPMjEyNjExMDcxNTMyMDVaMB8xHTAbBgNVBAMMFGVjcy1qb2J3YXRjaCB0ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3d+/4xw1jzhk2rUfLh6P1OyB
g/SyJFAtsqUXsezr0ZrwdGodOhdpcherWOxZuumGJlNkMdj/4eWHIJgYFT4/sqNT
MFEwHQYDVR0OBBYEFEgIIoJb0wU2UfhE9UOgavuqyaogMB8GA1UdIwQYMBaAFEgI
IoJb0wU2UfhE9UOgavuqyaogMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SQAwRgIhANQlPcuDaSON5R0EowR/QQ8zwMcLYfEqPrdy5YWfKIteAiEArWr+4yKo
l58cdPUarhprGvnFqrpnvG6SR0uAJW/Ci7Y=
-----END CERTIFICATE-----
";

/// `cloud.ca_file`: a PEM bundle is added to the trusted roots (and the
/// client still reads plain-HTTP loopback endpoints); a file that is not
/// one is refused, naming the file.
#[tokio::test]
async fn ca_file_adds_trusted_roots() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let good = directory.path().join("ca.pem");
    std::fs::write(&good, format!("{TEST_CA}{TEST_CA}")).expect("write");
    let settings = HttpSettings {
        request_timeout: GENEROUS,
        ca_file: Some(good),
        ..HttpSettings::default()
    };
    let client = Client::build(&settings, credentials(PLAIN)).expect("a PEM bundle is accepted");
    let sim = simulator("").await;
    let target = Target {
        project: ProjectName::default(),
        project_id: PROJECT.to_string(),
        region: None,
        endpoints: endpoints(&sim.base_url(), &sim.base_url()),
    };
    let fleet = Fleet::new(client, vec![target]).expect("the fleet builds");
    fleet.read(&key("ims:ims-job")).await.expect("the IMS job");

    for (name, contents) in [
        ("empty.pem", ""),
        ("garbage.pem", "not a certificate\n"),
        ("truncated.pem", &TEST_CA[..200]),
    ] {
        let path = directory.path().join(name);
        std::fs::write(&path, contents).expect("write");
        let settings = HttpSettings {
            request_timeout: GENEROUS,
            ca_file: Some(path),
            ..HttpSettings::default()
        };
        match Client::build(&settings, credentials(PLAIN)) {
            Err(error @ ClientError::CaFile { .. }) => {
                assert!(error.to_string().contains(name), "{error}")
            }
            Err(other) => panic!("{name}: {other}"),
            Ok(_) => panic!("{name}: a bad PEM bundle was accepted"),
        }
    }
    let missing = HttpSettings {
        request_timeout: GENEROUS,
        ca_file: Some(directory.path().join("missing.pem")),
        ..HttpSettings::default()
    };
    assert!(Client::build(&missing, credentials(PLAIN)).is_err());
}

/// A server that reads the request and closes without a word, as a
/// gateway does to an idle keep-alive connection at the moment it is
/// reused: a `Connect` error marked `closed_before_answer`, which the
/// scheduler sends again at once. A refused connection is not so marked.
#[tokio::test]
async fn a_connection_closed_before_the_answer_is_marked() {
    let addr = raw_server(RawAnswer::Verbatim("")).await;
    let error = fleet(&format!("http://{addr}"), PLAIN, GENEROUS)
        .read(&key(JOB))
        .await
        .expect_err("no answer");
    assert_eq!(error.kind, ErrorKind::Connect, "{error}");
    assert!(error.closed_before_answer, "{error}");

    let held = tokio::net::TcpSocket::new_v4().expect("a socket");
    held.bind((Ipv4Addr::LOCALHOST, 0).into())
        .expect("a free port");
    let refused = held.local_addr().expect("bound");
    let error = fleet(&format!("http://{refused}"), PLAIN, GENEROUS)
        .read(&key(JOB))
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind, ErrorKind::Connect, "{error}");
    assert!(!error.closed_before_answer, "{error}");
}
