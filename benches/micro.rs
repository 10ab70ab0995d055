//! Micro-benchmarks of the pure steps every poll goes through: signing one
//! job request, parsing a job body (of every service, through its
//! adapter), classifying a throttled answer, and one cadence decision. Run
//! them with `cargo bench --bench micro`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use ecs_jobwatch::huaweicloud::error::AnswerHeaders;
use ecs_jobwatch::huaweicloud::sign;
use ecs_jobwatch::job::Service;
use ecs_jobwatch::policy::cadence::{self, Cadence, Situation};
use ecs_jobwatch::services;

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

/// One body of each other service, from the reference's examples.
const OTHER_SERVICES: [(Service, &str); 6] = [
    (
        Service::Bms,
        r#"{"status":"RUNNING","job_id":"j","job_type":"baremetalBatchCreate","begin_time":"2019-03-01T08:00:00.000Z","end_time":"","entities":{"sub_jobs_total":1,"sub_jobs":[{"status":"RUNNING","job_id":"s1","job_type":"baremetalSingleCreate","entities":{"server_id":"bms-1"}}]}}"#,
    ),
    (
        Service::Evs,
        r#"{"status":"SUCCESS","entities":{"sub_jobs":[{"status":"SUCCESS","entities":{"volume_id":"0b549095-4937-4849-8e4c-52aa027d64f7"},"job_id":"21917a8d52a19b040152a9f2f2e50041","job_type":"createVolume","begin_time":"2016-02-04T01:43:37.445Z","end_time":"2016-02-04T01:44:02.239Z","error_code":null,"fail_reason":null}]},"job_id":"21917a8d52a19b040152a9f2f1eb003e","job_type":"batchCreateVolume","begin_time":"2016-02-04T01:43:37.193Z","end_time":"2016-02-04T01:44:08.283Z","error_code":null,"fail_reason":null}"#,
    ),
    (
        Service::Ims,
        r#"{"job_id":"9a175ac792fa12d20193002100dd2762","job_type":"imsCreateImageByInstance","begin_time":"2024-11-06T06:19:43.195Z","end_time":"2024-11-06T06:23:25.158Z","status":"SUCCESS","error_code":null,"fail_reason":null,"entities":{"image_name":"test","image_id":"3f7185de-b59a-4bb8-aa1d-7a513528b0e9"}}"#,
    ),
    (
        Service::Cce,
        r#"{"kind":"Job","apiVersion":"v3","metadata":{"uid":"354331b2c-229a-11e8-9c75-0255ac100ceb","creationTimestamp":"2018-08-02 08:12:40.672772389 +0000 UTC","updateTimestamp":"2018-08-02 08:21:50.478108569 +0000 UTC"},"spec":{"type":"CreateCluster","clusterUID":"4d1ecb2c-229a-11e8-9c75-0255ac100ceb","resourceID":"6f4dcb2c-229a-11e8-9c75-0255ac100ceb","resourceName":"cluster-name","extendParam":{"serverID":"bc467e3a-2338-11e8-825b-0255ac100c13"},"subJobs":[{"kind":"Job","apiVersion":"v3","metadata":{"uid":"fd474fab-9606-11e8-baa9-0255ac10215d"},"spec":{"type":"InstallMaster","resourceID":"fd3b4ac0-0000-0000-0000-000000000000"},"status":{"phase":"Success"}}]},"status":{"phase":"Running","reason":""}}"#,
    ),
    (
        Service::Rds,
        r#"{"job":{"id":"31b8ae23-c687-4d80-b7b4-42a66c9bb886","name":"CreateMysqlSingleHAInstance","status":"Completed","created":"2018-08-06T10:41:14+0000","ended":"2018-08-06T16:41:14+0000","process":"","instance":{"id":"a48e43ff268f4c0e879652d65e63d0fbin01","name":"mysql-single"},"entities":{"resource_ids":["a48e43ff268f4c0e879652d65e63d0fbin01.vm","a48e43ff268f4c0e879652d65e63d0fbin01.volume"]},"fail_reason":null}}"#,
    ),
    (
        Service::Eip,
        r#"{"job_id":"ff808082843684110184e155fdb36461","job_type":"createBatchPublicip","begin_time":"2022-12-05T08:10:19.951Z","end_time":"2022-12-05T08:10:21.864Z","status":"SUCCESS","error_code":null,"fail_reason":null,"entities":{"sub_jobs":[]}}"#,
    ),
];

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
    // The client's path: the same request from sorted, borrowed headers,
    // the canonical request streamed into the hash.
    let sorted: Vec<(&str, &str)> = [
        ("content-type", "application/json"),
        ("host", "ecs.cn-north-4.myhuaweicloud.com"),
        ("x-project-id", "0123456789abcdef0123456789abcdef"),
        ("x-sdk-date", "20240501T100000Z"),
        ("x-security-token", "sim-security-token-2"),
    ]
    .to_vec();
    c.bench_function("sign_job_request_streamed", |b| {
        b.iter(|| {
            let request = sign::Sorted {
                method: "GET",
                path: black_box(path),
                query: &[],
                headers: black_box(&sorted),
                body: b"",
            };
            sign::authorization_sorted(
                &request,
                "20240501T100000Z",
                "SIMAK0000000000000002",
                "sim-secret-key-0000000000000000000000002",
            )
        })
    });
    c.bench_function("sdk_date", |b| {
        b.iter(|| sign::sdk_date(black_box(1_714_557_600)))
    });
}

fn parsing(c: &mut Criterion) {
    let ecs = services::adapter(Service::Ecs);
    c.bench_function("parse_running_body", |b| {
        b.iter(|| ecs.parse(black_box(RUNNING.as_bytes())))
    });
    c.bench_function("parse_fail_body_two_sub_jobs", |b| {
        b.iter(|| ecs.parse(black_box(FAIL_TWO_SUB_JOBS.as_bytes())))
    });
    // The first step of the parser before the adapters: the whole body into
    // a `serde_json::Value` tree, before any field was picked out of it.
    c.bench_function("parse_running_body_value_tree_only", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(RUNNING.as_bytes())))
    });
    for (service, body) in OTHER_SERVICES {
        let adapter = services::adapter(service);
        c.bench_function(&format!("parse_{service}_body"), |b| {
            b.iter(|| adapter.parse(black_box(body.as_bytes())))
        });
    }
}

fn classifying(c: &mut Criterion) {
    let now = SystemTime::now();
    c.bench_function("classify_429_gateway_body", |b| {
        b.iter(|| {
            let headers = AnswerHeaders {
                request_id: Some("d4e8c3a1f0b24f6e9a7d5c3b1e0f2a4c"),
                retry_after: Some("2"),
            };
            services::read_answer(
                services::adapter(Service::Ecs),
                429,
                headers,
                black_box(THROTTLED.as_bytes()),
                now,
            )
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
