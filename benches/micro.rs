//! Micro-benchmarks of the pure steps every poll goes through: signing one
//! job request, parsing a job body, classifying a throttled answer, and one
//! cadence decision. Run them with `cargo bench --bench micro`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use ecs_jobwatch::huaweicloud::error::{self, AnswerHeaders};
use ecs_jobwatch::huaweicloud::sign;
use ecs_jobwatch::policy::cadence::{self, Cadence, Situation};
use ecs_jobwatch::services::ecs as model;

/// The real RUNNING body of the model's unit tests.
const RUNNING: &str = r#"{"begin_time":"2022-02-17T05:41:55.441Z","end_time":"",
 "entities":{"sub_jobs":[{"begin_time":"2022-02-17T05:41:55.554Z","end_time":"",
   "entities":{"server_id":"1c74e090-c569-4b52-9eaa-fd34776cec28"},
   "job_id":"ff8080827e7810fb017f06338ae3132c","job_type":"createSingleServer","status":"RUNNING"}],
   "sub_jobs_total":1},
 "job_id":"ff8080827e7810fb017f06338a731328","job_type":"createServer","status":"RUNNING"}"#;

/// A failed batch creation whose two sub-jobs failed, in the shape the
/// simulator and the API send.
const FAIL_TWO_SUB_JOBS: &str = r#"{"status":"FAIL",
 "entities":{"sub_jobs_total":2,"sub_jobs":[
  {"status":"FAIL","entities":{"server_id":"1c74e090-c569-4b52-9eaa-fd34776cec28","errorcode_message":"EIP quota exceeded"},
   "job_id":"ff80808288d41e1b018990260955686b","job_type":"createSingleServer",
   "begin_time":"2024-05-01T10:00:00.000Z","end_time":"2024-05-01T10:00:18.000Z",
   "error_code":null,"fail_reason":"insufficient EIP quota"},
  {"status":"FAIL","entities":{"server_id":"5e4c8a42-7a3d-4f51-9a5a-3b8f2c1d0e9f","errorcode_message":"EIP quota exceeded"},
   "job_id":"ff80808288d41e1b018990260955686c","job_type":"createSingleServer",
   "begin_time":"2024-05-01T10:00:00.000Z","end_time":"2024-05-01T10:00:19.000Z",
   "error_code":"Ecs.0013","fail_reason":"insufficient EIP quota"}]},
 "job_id":"ff80808288d41e1b018990260955686a","job_type":"createServer",
 "begin_time":"2024-05-01T10:00:00.000Z","end_time":"2024-05-01T10:00:20.000Z",
 "error_code":"Ecs.0013","fail_reason":"insufficient EIP quota"}"#;

/// The gateway's answer to a throttled call.
const THROTTLED: &str = r#"{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached: policy user over ratelimit,limit:200,time:1 second","request_id":"d4e8c3a1f0b24f6e9a7d5c3b1e0f2a4c"}"#;

fn signing(c: &mut Criterion) {
    // The five headers the client sends with a temporary key.
    let headers: Vec<(String, String)> = [
        ("Content-Type", "application/json"),
        ("Host", "ecs.cn-north-4.myhuaweicloud.com"),
        ("X-Project-Id", "0123456789abcdef0123456789abcdef"),
        ("X-Sdk-Date", "20240501T100000Z"),
        ("X-Security-Token", "sim-security-token-2"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    let path = "/v1/0123456789abcdef0123456789abcdef/jobs/ff80808288d41e1b018990260955686a";
    c.bench_function("sign_job_request", |b| {
        b.iter(|| {
            let request = sign::Request {
                method: "GET",
                path: black_box(path),
                query: &[],
                headers: black_box(&headers),
                body: b"",
            };
            sign::authorization(
                &request,
                "SIMAK0000000000000002",
                "sim-secret-key-0000000000000000000000002",
            )
        })
    });
}

fn parsing(c: &mut Criterion) {
    c.bench_function("parse_running_body", |b| {
        b.iter(|| model::parse_job(black_box(RUNNING.as_bytes())))
    });
    c.bench_function("parse_fail_body_two_sub_jobs", |b| {
        b.iter(|| model::parse_job(black_box(FAIL_TWO_SUB_JOBS.as_bytes())))
    });
}

fn classifying(c: &mut Criterion) {
    let now = SystemTime::now();
    c.bench_function("classify_429_gateway_body", |b| {
        b.iter(|| {
            let headers = AnswerHeaders {
                request_id: Some("d4e8c3a1f0b24f6e9a7d5c3b1e0f2a4c"),
                retry_after: Some("2"),
            };
            error::classify(429, headers, black_box(THROTTLED.as_bytes()), now)
        })
    });
}

fn cadence_decision(c: &mut Criterion) {
    let cadence = Cadence::default();
    let running = ecs_jobwatch::job::Status::Running;
    c.bench_function("cadence_next_gap", |b| {
        b.iter(|| {
            cadence::next_gap(
                &cadence,
                Situation::Status(black_box(&running)),
                black_box(5),
                Duration::from_secs(60),
                black_box(0.37),
            )
        })
    });
}

criterion_group!(micro, signing, parsing, classifying, cadence_decision);
criterion_main!(micro);
