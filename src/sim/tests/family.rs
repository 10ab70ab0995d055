//! Every service of the job family over HTTP: each at its own path, its
//! own "no such job" answers, projects, fault filters by job key, and jobs
//! added with a service and a project.

use super::*;

/// Jobs of every service, two of them sharing an id, in two projects.
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
timeline = [ { at = "0s", status = "Failed", fail_reason = "quota" } ]
[[job.sub_job]]
id = "cce-sub"
job_type = "InstallMaster"
timeline = [ { at = "0s", status = "Failed" } ]
[[job.sub_job.sub_job]]
id = ""
job_type = "PrepareNode"
timeline = [ { at = "0s", status = "Success" } ]

[[job]]
id = "rds-job"
service = "rds"
project = "fedcba9876543210fedcba9876543210"
job_type = "CreateMysqlSingleHAInstance"
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

[[job]]
id = "eip-job"
service = "eip"
job_type = "createBatchPublicip"
timeline = [ { at = "0s", status = "SUCCESS" } ]
"#;

const OTHER_PROJECT: &str = "fedcba9876543210fedcba9876543210";

/// The scenario with the `FAMILY` jobs, serving a second project too.
fn family() -> Scenario {
    scenario_with(&format!("project_ids = [\"{OTHER_PROJECT}\"]"), FAMILY)
}

#[tokio::test]
async fn every_service_at_its_own_path() {
    let sim = spawn(family()).await.unwrap();
    let (status, _, body) = get(&sim, &format!("/evs/v1/{PROJECT}/jobs/shared-id")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "WAITING_EXECUTE");
    assert_eq!(body["entities"]["volume_id"], "vol-1");
    let (status, _, body) = get(
        &sim,
        &format!("/cce/api/v3/projects/{PROJECT}/jobs/shared-id"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"]["phase"], "Failed");
    assert_eq!(
        body["spec"]["subJobs"][0]["spec"]["subJobs"][0]["status"]["phase"],
        "Success"
    );
    let (status, _, body) = get(&sim, &format!("/rds/v3/{OTHER_PROJECT}/jobs?id=rds-job")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["job"]["status"], "Completed");
    let (status, _, body) = get(&sim, "/ims/v1/cloudimages/job/ims-job").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["entities"]["process_percent"], 50.0);
    for path in [
        format!("/bms/v1/{PROJECT}/jobs/bms-job"),
        format!("/eip/v1/{PROJECT}/jobs/eip-job"),
        format!("/ecs/v1/{PROJECT}/jobs/{JOB}"),
        format!("/v1/{PROJECT}/jobs/{JOB}"),
    ] {
        let (status, _, body) = get(&sim, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body["status"].is_string(), "{path}: {body}");
    }
    // The ECS job is not a BMS job, and the RDS job is not in the default
    // project.
    let (status, _, body) = get(&sim, &format!("/bms/v1/{PROJECT}/jobs/{JOB}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), "BMS.0103");
    let (status, _, body) = get(&sim, &format!("/rds/v3/{PROJECT}/jobs?id=rds-job")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(gateway_code(&body), "DBS.200543");

    let stats = sim.stats();
    assert_eq!(stats.jobs["evs:shared-id"].requests, 1);
    assert_eq!(stats.jobs["cce:shared-id"].requests, 1);
    assert!(
        stats.jobs["cce:shared-id"]
            .first_served
            .contains_key("Failed")
    );
    assert_eq!(
        stats.jobs[&format!("{OTHER_PROJECT}/rds:rds-job")].requests,
        1
    );
    assert_eq!(stats.jobs[JOB].requests, 2);
    assert_eq!(stats.services["ecs"].requests, 2);
    assert_eq!(stats.services["bms"].requests, 2);
    assert_eq!(stats.services["bms"].served, 1);
    assert_eq!(stats.services["bms"].not_found, 1);
    assert_eq!(stats.services["rds"].not_found, 1);
    assert_eq!(stats.requests_total, 10);
}

#[tokio::test]
async fn each_service_answers_no_such_job_its_own_way() {
    let sim = spawn(scenario("")).await.unwrap();
    let cases = [
        (
            format!("/v1/{PROJECT}/jobs/nope"),
            StatusCode::NOT_FOUND,
            "Ecs.0103",
        ),
        (
            format!("/evs/v1/{PROJECT}/jobs/nope"),
            StatusCode::BAD_REQUEST,
            "Common.0011",
        ),
        (
            "/ims/v1/cloudimages/job/nope".to_string(),
            StatusCode::BAD_REQUEST,
            "IMG.0404",
        ),
        (
            format!("/eip/v1/{PROJECT}/jobs/nope"),
            StatusCode::NOT_FOUND,
            "VPC.0103",
        ),
    ];
    for (path, expected, code) in cases {
        let (status, _, body) = get(&sim, &path).await;
        assert_eq!(status, expected, "{path}");
        assert_eq!(ecs_code(&body), code, "{path}");
    }
    let (status, _, body) = get(&sim, &format!("/cce/api/v3/projects/{PROJECT}/jobs/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], "CCE.01404001");
    // Paths a service does not serve are no API at all.
    let (status, _, body) = get(&sim, &format!("/cce/v1/{PROJECT}/jobs/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), NO_SUCH_API_CODE);
    let (status, _, body) = get(&sim, &format!("/rds/v3/{PROJECT}/jobs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ecs_code(&body), NO_SUCH_API_CODE);
    assert_eq!(sim.stats().services["evs"].not_found, 1);
}

#[tokio::test]
async fn projects_are_checked_for_every_service() {
    let sim = spawn(family()).await.unwrap();
    let stranger = "00000000000000000000000000000000";
    let (status, _, body) = get(&sim, &format!("/evs/v1/{stranger}/jobs/shared-id")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(ecs_code(&body), FORBIDDEN_CODE);
    // IMS names its project in X-Project-Id, or not at all.
    for (header, expected) in [
        (Some(stranger), StatusCode::FORBIDDEN),
        (Some(PROJECT), StatusCode::OK),
        (None, StatusCode::OK),
    ] {
        let signing = Signing {
            project_header: header,
            ..Signing::default()
        };
        let response = signed_get(&client(), &sim, "/ims/v1/cloudimages/job/ims-job", &signing)
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{header:?}");
    }
}

#[tokio::test]
async fn faults_name_jobs_by_id_or_key() {
    let sim = spawn(family()).await.unwrap();
    sim.set_faults(vec![FaultRule {
        jobs: vec!["cce:shared-id".into()],
        ..rule(FaultKind::ClientError)
    }]);
    let (status, _, _) = get(&sim, &format!("/evs/v1/{PROJECT}/jobs/shared-id")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(
        &sim,
        &format!("/cce/api/v3/projects/{PROJECT}/jobs/shared-id"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn added_jobs_name_their_service_and_project() {
    let sim = spawn(family()).await.unwrap();
    let jobs: Vec<JobSpec> = serde_json::from_value(serde_json::json!([
        {"id": "late", "service": "rds", "job_type": "x",
         "timeline": [{"at": "0s", "status": "Running", "progress": 10.0}]},
    ]))
    .unwrap();
    sim.try_add_jobs(jobs).unwrap();
    let (status, _, body) = get(&sim, &format!("/rds/v3/{PROJECT}/jobs?id=late")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["job"]["process"], "10%");
    let stranger: Vec<JobSpec> = serde_json::from_value(serde_json::json!([
        {"id": "x", "project": "elsewhere", "job_type": "x",
         "timeline": [{"at": "0s", "status": "INIT"}]},
    ]))
    .unwrap();
    let error = sim.try_add_jobs(stranger).unwrap_err().to_string();
    assert!(error.contains("job[0].project"), "{error}");
    let unknown = serde_json::from_value::<Vec<JobSpec>>(serde_json::json!([
        {"id": "x", "service": "vpc", "job_type": "x", "timeline": [{"at": "0s", "status": "INIT"}]},
    ]))
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("unknown service"), "{unknown}");
}
