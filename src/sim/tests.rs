//! The simulator end to end over HTTP: signatures, faults, every
//! service's answers, the control API, and the official SDK.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use super::*;
use crate::huaweicloud::sign;
use crate::job::Service;

const AK: &str = "SIMAK0000000000000001";
const SK: &str = "sim-secret-key-0000000000000000000000001";
const TOKEN_AK: &str = "SIMAK0000000000000002";
const TOKEN_SK: &str = "sim-secret-key-0000000000000000000000002";
const TOKEN: &str = "sim-security-token-2";
const FORBIDDEN_AK: &str = "SIMAK0000000000000003";
const FORBIDDEN_SK: &str = "sim-secret-key-0000000000000000000000003";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const JOB: &str = "ff80808288d41e1b018990260955686a";
const SUB_JOB: &str = "ff80808288d41e1b018990260955686b";

/// A scenario with the three kinds of credential and one running job;
/// `extra` is appended and may add tables (`[[job]]`, `[[fault]]`,
/// `[limits]`).
fn scenario(extra: &str) -> Scenario {
    scenario_with("", extra)
}

/// `scenario`, with `top` (top-level keys) before the tables.
fn scenario_with(top: &str, extra: &str) -> Scenario {
    let text = format!(
        r#"
project_id = "{PROJECT}"
{top}
[[credential]]
access_key = "{AK}"
secret_key = "{SK}"
[[credential]]
access_key = "{TOKEN_AK}"
secret_key = "{TOKEN_SK}"
security_token = "{TOKEN}"
[[credential]]
access_key = "{FORBIDDEN_AK}"
secret_key = "{FORBIDDEN_SK}"
forbidden = true

[[job]]
id = "{JOB}"
job_type = "createServer"
timeline = [ {{ at = "0s", status = "RUNNING" }} ]
[[job.sub_job]]
id = "{SUB_JOB}"
job_type = "createSingleServer"
server_id = "1c74e090-c569-4b52-9eaa-fd34776cec28"
timeline = [ {{ at = "0s", status = "RUNNING" }} ]
{extra}
"#
    );
    match Scenario::from_toml_str(&text) {
        Ok(scenario) => scenario,
        Err(error) => panic!("test scenario: {error}"),
    }
}

/// A client without pool timers, so paused-time tests see no timer
/// but the simulator's own.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap()
}

fn job_path(job_id: &str) -> String {
    format!("/v1/{PROJECT}/jobs/{job_id}")
}

/// How a test request is signed.
struct Signing<'a> {
    access_key: &'a str,
    secret_key: &'a str,
    skew: TimeDelta,
    extra_headers: Vec<(&'a str, &'a str)>,
    /// The `X-Project-Id` sent, if any.
    project_header: Option<&'a str>,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Signing {
            access_key: AK,
            secret_key: SK,
            skew: TimeDelta::zero(),
            extra_headers: Vec::new(),
            project_header: Some(PROJECT),
        }
    }
}

/// Sends a GET signed the way the official SDKs sign it.
async fn signed_get(
    client: &reqwest::Client,
    sim: &SimHandle,
    path_and_query: &str,
    signing: &Signing<'_>,
) -> reqwest::Result<reqwest::Response> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let query = auth::query_pairs(query);
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        ("Host".into(), sim.addr().to_string()),
        (
            "X-Sdk-Date".into(),
            sign::format_sdk_date(Utc::now() + signing.skew),
        ),
    ];
    if let Some(project) = signing.project_header {
        headers.push(("X-Project-Id".into(), project.into()));
    }
    for (name, value) in &signing.extra_headers {
        headers.push((name.to_string(), value.to_string()));
    }
    let request = sign::Request {
        method: "GET",
        path,
        query: &query,
        headers: &headers,
        body: b"",
    };
    let authorization =
        sign::authorization(&request, signing.access_key, signing.secret_key).unwrap();
    let mut builder = client.get(format!("{}{path_and_query}", sim.base_url()));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.header("Authorization", authorization).send().await
}

/// A signed GET with the default credential, expected to get an answer.
async fn get(sim: &SimHandle, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = signed_get(&client(), sim, path, &Signing::default())
        .await
        .unwrap();
    read(response).await
}

async fn read(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, body)
}

fn ecs_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn gateway_code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or("")
}

fn rule(kind: FaultKind) -> FaultRule {
    FaultRule::always(kind)
}

#[tokio::test]
async fn signed_request_gets_the_job_body() {
    let sim = spawn(scenario("")).await.unwrap();
    let (status, headers, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::OK);
    let request_id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(request_id.len(), 32);
    assert!(request_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["status"], "RUNNING");
    assert_eq!(body["job_id"], JOB);
    assert_eq!(body["job_type"], "createServer");
    assert_eq!(body["end_time"], "");
    assert_eq!(body["error_code"], Value::Null);
    assert_eq!(body["fail_reason"], Value::Null);
    assert_eq!(body["entities"]["sub_jobs_total"], 1);
    let sub_job = &body["entities"]["sub_jobs"][0];
    assert_eq!(sub_job["job_id"], SUB_JOB);
    assert_eq!(
        sub_job["entities"]["server_id"],
        "1c74e090-c569-4b52-9eaa-fd34776cec28"
    );
    let begin = body["begin_time"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(begin, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok(),
        "{begin}"
    );
    // A query string is part of the signature too.
    let (status, _, _) = get(&sim, &format!("{}?a=1%202&b=x", job_path(JOB))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stats().jobs[JOB].requests, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_signatures_get_401_apigw_0301() {
    let sim = spawn(scenario("")).await.unwrap();
    let client = client();
    for signing in [
        Signing {
            secret_key: "wrong",
            ..Signing::default()
        },
        Signing {
            access_key: "UNKNOWNAK",
            ..Signing::default()
        },
    ] {
        let response = signed_get(&client, &sim, &job_path(JOB), &signing)
            .await
            .unwrap();
        let (status, headers, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(gateway_code(&body), "APIGW.0301");
        assert_eq!(
            body["error_msg"],
            "Incorrect IAM authentication information: verify aksk signature fail"
        );
        assert_eq!(
            body["request_id"],
            headers["x-request-id"].to_str().unwrap()
        );
    }
    let unsigned = client
        .get(format!("{}{}", sim.base_url(), job_path(JOB)))
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(gateway_code(&body), "APIGW.0301");
    let stats = sim.stats();
    assert_eq!(stats.rejected_auth, 3);
    assert_eq!(stats.requests_total, 3);
    assert_eq!(stats.jobs[JOB].first_served.len(), 0);
}

#[tokio::test]
async fn skewed_date_gets_401_apigw_0303() {
    let sim = spawn(scenario("")).await.unwrap();
    for minutes in [20, -20] {
        let signing = Signing {
            skew: TimeDelta::minutes(minutes),
            ..Signing::default()
        };
        let response = signed_get(&client(), &sim, &job_path(JOB), &signing)
            .await
            .unwrap();
        let (status, _, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{minutes}");
        assert_eq!(gateway_code(&body), "APIGW.0303", "{minutes}");
    }
}

#[tokio::test]
async fn security_token_is_required_and_signed() {
    let sim = spawn(scenario("")).await.unwrap();
    let check = |token: Option<&'static str>, expected: StatusCode| {
        let sim = &sim;
        async move {
            let signing = Signing {
                access_key: TOKEN_AK,
                secret_key: TOKEN_SK,
                extra_headers: token
                    .map(|token| vec![("X-Security-Token", token)])
                    .unwrap_or_default(),
                ..Signing::default()
            };
            let response = signed_get(&client(), sim, &job_path(JOB), &signing)
                .await
                .unwrap();
            let (status, _, body) = read(response).await;
            assert_eq!(status, expected, "{token:?}");
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(gateway_code(&body), "APIGW.0301");
            }
        }
    };
    check(Some(TOKEN), StatusCode::OK).await;
    check(None, StatusCode::UNAUTHORIZED).await;
    check(Some("another-token"), StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn forbidden_key_and_other_project_get_403() {
    let sim = spawn(scenario("")).await.unwrap();
    let signing = Signing {
        access_key: FORBIDDEN_AK,
        secret_key: FORBIDDEN_SK,
        ..Signing::default()
    };
    let response = signed_get(&client(), &sim, &job_path(JOB), &signing)
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(ecs_code(&body), FORBIDDEN_CODE);
    let (status, _, body) = get(&sim, &format!("/v1/another-project/jobs/{JOB}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(ecs_code(&body), FORBIDDEN_CODE);
    assert_eq!(sim.stats().rejected_auth, 0);
}

#[tokio::test]
async fn unknown_jobs_and_paths_get_404() {
    let sim = spawn(scenario(
        r#"
[[job]]
id = "later"
job_type = "deleteVMs"
visible_after = "1h"
not_found = "Common.0011"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#,
    ))
    .await
    .unwrap();
    let (status, headers, body) = get(&sim, &job_path("nonexistent")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), "Ecs.0103");
    assert!(headers.contains_key("x-request-id"));
    let (status, _, body) = get(&sim, &job_path("later")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ecs_code(&body), "Common.0011");
    assert_eq!(body["error"]["message"], "Failed to query system tasks.");
    let (status, _, body) = get(&sim, &format!("/v1/{PROJECT}/cloudservers")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), NO_SUCH_API_CODE);
    let response = client()
        .get(format!("{}/elsewhere", sim.base_url()))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), NO_SUCH_API_CODE);
    assert!(headers.contains_key("x-request-id"));
    // Only the three /v1 requests count.
    assert_eq!(sim.stats().requests_total, 3);
}

#[tokio::test(start_paused = true)]
async fn jobs_appear_and_vanish_on_schedule() {
    let sim = spawn(scenario(
        r#"
[[job]]
id = "window"
job_type = "attachVolume"
visible_after = "10s"
vanish_after = "20s"
timeline = [ { at = "10s", status = "RUNNING" }, { at = "15s", status = "SUCCESS" } ]
"#,
    ))
    .await
    .unwrap();
    let (status, _, body) = get(&sim, &job_path("window")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), "Ecs.0103");
    tokio::time::advance(Duration::from_secs(10)).await;
    let (status, _, body) = get(&sim, &job_path("window")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "RUNNING");
    tokio::time::advance(Duration::from_secs(5)).await;
    let (status, _, body) = get(&sim, &job_path("window")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "SUCCESS");
    assert_ne!(body["end_time"], "");
    tokio::time::advance(Duration::from_secs(5)).await;
    let (status, _, _) = get(&sim, &job_path("window")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let served = &sim.stats().jobs["window"].first_served;
    assert!(served["SUCCESS"] >= served["RUNNING"] + 5_000, "{served:?}");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_429_past_the_limit() {
    let sim = spawn(scenario("[limits]\nrequests_per_second = 2\n"))
        .await
        .unwrap();
    for _ in 0..2 {
        let (status, _, _) = get(&sim, &job_path(JOB)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(gateway_code(&body), "APIGW.0308");
    assert_eq!(
        body["error_msg"],
        "The throttling threshold has been reached: policy user over ratelimit,limit:2,time:1 second"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let (status, _, _) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!(stats.rejected_rate_limit, 1);
    assert_eq!(stats.requests_total, 4);
    assert_eq!(stats.max_requests_in_any_1s_window, 3);
}

#[tokio::test]
async fn server_error_fault_answers_5xx() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![FaultRule {
        status: Some(503),
        ..rule(FaultKind::ServerError)
    }]);
    let (status, _, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ecs_code(&body), "Ecs.0500");
    sim.set_faults(vec![rule(FaultKind::ServerError)]);
    let (status, _, _) = get(&sim, &job_path(JOB)).await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(sim.stats().faults_injected["server_error"], 2);
}

#[tokio::test]
async fn throttle_faults_answer_429_or_202() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![FaultRule {
        retry_after: Some(Duration::from_millis(1_500)),
        ..rule(FaultKind::Throttle)
    }]);
    let (status, headers, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(gateway_code(&body), "APIGW.0308");

    sim.set_faults(vec![FaultRule {
        retry_after: Some(Duration::from_secs(30)),
        retry_after_http_date: true,
        ..rule(FaultKind::Throttle)
    }]);
    let (status, headers, _) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let date = headers["retry-after"].to_str().unwrap();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");

    sim.set_faults(vec![rule(FaultKind::Throttle)]);
    let (status, headers, _) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!headers.contains_key("retry-after"));

    sim.set_faults(vec![rule(FaultKind::Throttle202)]);
    let (status, _, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(gateway_code(&body), "Common.0024");
    assert_eq!(body["error_msg"], "Flow limit exceeded");
    let injected = sim.stats().faults_injected;
    assert_eq!(injected["throttle"], 3);
    assert_eq!(injected["throttle_202"], 1);
    // Fault throttling is not the rate limit.
    assert_eq!(sim.stats().rejected_rate_limit, 0);
}

#[tokio::test]
async fn client_error_fault_answers_400() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![rule(FaultKind::ClientError)]);
    let (status, _, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ecs_code(&body), "Ecs.0005");
    assert_eq!(body["error"]["message"], "request body is illegal.");
}

#[tokio::test]
async fn truncate_fault_cuts_the_body() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![rule(FaultKind::Truncate)]);
    let response = signed_get(&client(), &sim, &job_path(JOB), &Signing::default())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let announced = response.content_length().unwrap();
    assert!(announced > 0);
    let error = response.bytes().await.unwrap_err();
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    assert_eq!(sim.stats().faults_injected["truncate"], 1);
    // A truncated answer is not counted as served.
    assert!(sim.stats().jobs[JOB].first_served.is_empty());
}

#[tokio::test]
async fn drop_fault_closes_the_connection_unanswered() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![rule(FaultKind::Drop)]);
    let error = signed_get(&client(), &sim, &job_path(JOB), &Signing::default())
        .await
        .unwrap_err();
    assert!(error.status().is_none(), "{error:?}");
    assert!(error.is_request(), "{error:?}");
    assert_eq!(sim.stats().faults_injected["drop"], 1);
    // The server goes on serving other connections.
    sim.set_faults(Vec::new());
    let (status, _, _) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn latency_fault_delays_then_answers() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![FaultRule {
        latency: Some((Duration::from_millis(1), Duration::from_millis(5))),
        ..rule(FaultKind::Latency)
    }]);
    let (status, _, body) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "RUNNING");
    assert_eq!(sim.stats().faults_injected["latency"], 1);
}

#[tokio::test]
async fn fault_job_filter_and_window_apply() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.set_faults(vec![
        FaultRule {
            jobs: vec!["another-job".into()],
            ..rule(FaultKind::ClientError)
        },
        FaultRule {
            from: Some(Duration::from_secs(3_600)),
            ..rule(FaultKind::ClientError)
        },
    ]);
    let (status, _, _) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sim.stats().faults_injected.is_empty());
}

#[tokio::test]
async fn invalid_rules_from_the_handle_are_refused() {
    let sim = spawn(scenario("")).await.unwrap();
    let error = sim
        .try_set_faults(vec![FaultRule {
            probability: 2.0,
            ..rule(FaultKind::Drop)
        }])
        .unwrap_err();
    assert!(
        error.to_string().contains("fault[0].probability"),
        "{error}"
    );
    sim.set_faults(vec![rule(FaultKind::Latency)]);
    let (status, _, _) = get(&sim, &job_path(JOB)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn control_api_adds_jobs_replaces_faults_and_reports_stats() {
    let sim = spawn(scenario("")).await.unwrap();
    let client = client();
    let url = |path: &str| format!("{}{path}", sim.base_url());
    let jobs = serde_json::json!([{
        "id": "added",
        "job_type": "resizeServer",
        "timeline": [
            {"at": "0s", "status": "INIT"},
            {"at": "5s", "status": "SUCCESS"}
        ]
    }]);
    let response = client
        .post(url("/_sim/jobs"))
        .body(serde_json::to_vec(&jobs).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    for (body, key) in [
        ("not json", "expected"),
        (
            r#"[{"id":"x","job_type":"t","timeline":[]}]"#,
            "job[0].timeline",
        ),
        (
            r#"[{"id":"x","job_type":"t","colour":1,"timeline":[]}]"#,
            "colour",
        ),
    ] {
        let response = client
            .post(url("/_sim/jobs"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let message: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let message = message["error"].as_str().unwrap();
        assert!(message.contains(key), "{body}: {message}");
    }

    let (status, _, body) = get(&sim, &job_path("added")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "INIT");
    tokio::time::advance(Duration::from_secs(5)).await;
    let (_, _, body) = get(&sim, &job_path("added")).await;
    assert_eq!(body["status"], "SUCCESS");

    let faults = serde_json::json!([{"kind": "client_error"}]);
    let response = client
        .put(url("/_sim/faults"))
        .body(serde_json::to_vec(&faults).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _, _) = get(&sim, &job_path("added")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bad = serde_json::json!([{"kind": "latency"}]);
    let response = client
        .put(url("/_sim/faults"))
        .body(serde_json::to_vec(&bad).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = client
        .put(url("/_sim/faults"))
        .body(serde_json::to_vec(&serde_json::json!([])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _, _) = get(&sim, &job_path("added")).await;
    assert_eq!(status, StatusCode::OK);

    let response = client.post(url("/_sim/stats")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().contains_key("x-request-id"));
    let response = client.get(url("/_sim/stats")).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let stats: Stats = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(stats, sim.stats());
    assert_eq!(stats.requests_total, 4);
    assert_eq!(stats.faults_injected["client_error"], 1);
    let added = &stats.jobs["added"];
    assert_eq!(added.requests, 4);
    assert_eq!(added.first_served.len(), 2);
    assert!(added.first_served["SUCCESS"] >= added.first_served["INIT"] + 5_000);
    assert_eq!(stats.jobs[JOB], JobStats::default());
}

#[tokio::test]
async fn handle_adds_jobs_relative_to_now() {
    let sim = spawn(scenario("")).await.unwrap();
    sim.add_jobs(vec![JobSpec {
        id: "in-process".into(),
        service: Service::Ecs,
        project: None,
        job_type: "changeOS".into(),
        visible_after: Duration::ZERO,
        vanish_after: None,
        not_found: Some(NotFoundStyle::Http404),
        server_id: Some("server".into()),
        nic_id: None,
        resource_id: None,
        timeline: vec![TimelineEntry {
            at: Duration::ZERO,
            status: "PENDING_PAYMENT".into(),
            error_code: None,
            fail_reason: None,
            progress: None,
        }],
        sub_jobs: Vec::new(),
    }]);
    let (status, _, body) = get(&sim, &job_path("in-process")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "PENDING_PAYMENT");
    assert_eq!(body["entities"], serde_json::json!({"server_id": "server"}));
    assert!(sim.try_add_jobs(vec![]).is_ok());
}

#[tokio::test]
async fn serve_stops_when_shutdown_completes() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, scenario(""), async move {
        let _ = stopped.await;
    }));
    let client = client();
    let response = client
        .get(format!("http://{addr}/_sim/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/_sim/stats"))
            .send()
            .await
            .is_err()
    );

    let sim = spawn(scenario("")).await.unwrap();
    let url = format!("{}/_sim/stats", sim.base_url());
    sim.shutdown().await;
    assert!(reqwest::Client::new().get(url).send().await.is_err());
}

#[tokio::test]
async fn invalid_scenarios_are_refused_by_spawn_and_serve() {
    let mut bad = scenario("");
    bad.credentials.clear();
    let error = spawn(bad.clone()).await.unwrap_err();
    assert!(format!("{error:#}").contains("credential"), "{error:#}");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    assert!(serve(listener, bad, async {}).await.is_err());
}

mod family;
