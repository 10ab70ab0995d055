//! What the simulator answers for a job, in each service's own shape: the
//! 200 body with the service's time format, and the service's "no such
//! job" answers. `docs/simulator.md` shows every shape.
//!
//! ECS, BMS, EVS and EIP share the v1 job body (`status`, `entities`,
//! `job_id`, `job_type`, `begin_time`, `end_time`, `error_code`,
//! `fail_reason`); IMS adds its image entities and `sub_jobs_result`; CCE
//! is a Kubernetes-style object with `status.phase`; RDS wraps its job in
//! `job`. Status words are served as the timeline gives them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::scenario::{JobSpec, NotFoundStyle, SubJobSpec};
use super::timeline::{Evaluated, evaluate};
use crate::job::Service;

/// A 200 answer: the status word it carries and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The job's status word.
    pub status: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// `2016-04-25T20:04:34.604Z`: ECS, BMS, EVS, IMS, EIP.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `2018-08-02 08:12:40.672772389 +0000 UTC`: CCE.
pub fn format_cce_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.9f +0000 UTC").to_string()
}

/// `2018-08-06T10:41:14+0000`: RDS.
pub fn format_rds_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing plain structs and maps with string keys cannot fail; an
    // empty object is a safe answer if it ever did.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// The body served for `job` at `elapsed` after its base, whose wall time
/// is `base`. Visibility is the caller's business.
pub fn render(job: &JobSpec, elapsed: Duration, base: DateTime<Utc>) -> Served {
    let own = evaluate(&job.timeline, elapsed, base, job.service);
    let status = own.status.clone();
    let body = match job.service {
        Service::Ecs | Service::Bms | Service::Evs | Service::Eip => {
            to_json(&v1_body(job, &own, elapsed, base))
        }
        Service::Ims => to_json(&ims_body(job, &own, elapsed, base)),
        Service::Cce => to_json(&cce_body(
            &job.id,
            &job.job_type,
            job.resource_id.as_deref(),
            job.server_id.as_deref(),
            &own,
            &cce_sub_jobs(&job.sub_jobs, job.service, elapsed, base),
        )),
        Service::Rds => to_json(&rds_body(job, &own)),
    };
    Served { status, body }
}

/// The v1 job body of ECS, BMS, EVS and EIP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct V1Body {
    /// The current status.
    pub status: String,
    /// Sub-jobs and the job's own entities.
    pub entities: V1Entities,
    /// The job id.
    pub job_id: Option<String>,
    /// The job type.
    pub job_type: String,
    /// The wall time of the first timeline entry.
    pub begin_time: String,
    /// `""` until the status is final, then the wall time of that entry.
    pub end_time: String,
    /// Set only while the current entry sets it.
    pub error_code: Option<String>,
    /// Set only while the current entry sets it.
    pub fail_reason: Option<String>,
}

/// `entities` of a v1 job or sub-job; absent fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct V1Entities {
    /// The number of sub-jobs (ECS, BMS, EVS, when there are some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_jobs_total: Option<usize>,
    /// The sub-jobs (always for EIP, else when there are some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_jobs: Option<Vec<V1Body>>,
    /// ECS, BMS: the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// ECS, BMS: the NIC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// ECS, BMS sub-jobs: why it failed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errorcode_message: Option<String>,
    /// EVS: the volume (of the job only when it has no sub-jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// EIP: the public IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publicip_id: Option<String>,
}

fn text(time: Option<DateTime<Utc>>) -> String {
    time.map(format_time).unwrap_or_default()
}

fn non_empty(id: &str) -> Option<String> {
    (!id.is_empty()).then(|| id.to_string())
}

fn v1_body(job: &JobSpec, own: &Evaluated, elapsed: Duration, base: DateTime<Utc>) -> V1Body {
    let sub_jobs: Vec<V1Body> = job
        .sub_jobs
        .iter()
        .map(|sub_job| v1_sub_job(sub_job, job.service, elapsed, base))
        .collect();
    let mut entities = v1_entities(
        job.service,
        job.server_id.as_deref(),
        job.nic_id.as_deref(),
        None,
        job.resource_id.as_deref(),
        sub_jobs.is_empty(),
    );
    if job.service == Service::Eip || !sub_jobs.is_empty() {
        if job.service != Service::Eip {
            entities.sub_jobs_total = Some(sub_jobs.len());
        }
        entities.sub_jobs = Some(sub_jobs);
    }
    V1Body {
        status: own.status.clone(),
        entities,
        job_id: non_empty(&job.id),
        job_type: job.job_type.clone(),
        begin_time: text(own.begin),
        end_time: text(own.end),
        error_code: own.error_code.clone(),
        fail_reason: own.fail_reason.clone(),
    }
}

fn v1_entities(
    service: Service,
    server_id: Option<&str>,
    nic_id: Option<&str>,
    errorcode_message: Option<&str>,
    resource_id: Option<&str>,
    without_sub_jobs: bool,
) -> V1Entities {
    let owned = |value: Option<&str>| value.map(str::to_string);
    V1Entities {
        server_id: owned(server_id),
        nic_id: owned(nic_id),
        errorcode_message: owned(errorcode_message),
        volume_id: owned(resource_id.filter(|_| service == Service::Evs && without_sub_jobs)),
        publicip_id: owned(resource_id.filter(|_| service == Service::Eip)),
        ..V1Entities::default()
    }
}

fn v1_sub_job(
    sub_job: &SubJobSpec,
    service: Service,
    elapsed: Duration,
    base: DateTime<Utc>,
) -> V1Body {
    let own = evaluate(&sub_job.timeline, elapsed, base, service);
    let mut entities = v1_entities(
        service,
        sub_job.server_id.as_deref(),
        sub_job.nic_id.as_deref(),
        sub_job.errorcode_message.as_deref(),
        sub_job.resource_id.as_deref(),
        true,
    );
    if !sub_job.sub_jobs.is_empty() {
        entities.sub_jobs = Some(
            sub_job
                .sub_jobs
                .iter()
                .map(|child| v1_sub_job(child, service, elapsed, base))
                .collect(),
        );
    }
    V1Body {
        status: own.status,
        entities,
        job_id: non_empty(&sub_job.id),
        job_type: sub_job.job_type.clone(),
        begin_time: text(own.begin),
        end_time: text(own.end),
        error_code: own.error_code,
        fail_reason: own.fail_reason,
    }
}

fn ims_body(job: &JobSpec, own: &Evaluated, elapsed: Duration, base: DateTime<Utc>) -> Value {
    let mut entities = Map::new();
    if let Some(id) = &job.resource_id {
        entities.insert("image_id".into(), json!(id));
    }
    if let Some(progress) = own.progress {
        entities.insert("process_percent".into(), json!(progress));
    }
    if !job.sub_jobs.is_empty() {
        let results: Vec<Value> = job
            .sub_jobs
            .iter()
            .map(|sub_job| {
                let sub = evaluate(&sub_job.timeline, elapsed, base, job.service);
                let mut sub_entities = Map::new();
                if let Some(id) = &sub_job.resource_id {
                    sub_entities.insert("image_id".into(), json!(id));
                }
                json!({
                    "status": sub.status,
                    "job_id": sub_job.id,
                    "job_type": sub_job.job_type,
                    "begin_time": text(sub.begin),
                    "end_time": text(sub.end),
                    "error_code": sub.error_code,
                    "fail_reason": sub.fail_reason,
                    "entities": sub_entities,
                })
            })
            .collect();
        entities.insert("sub_jobs_result".into(), Value::Array(results));
    }
    json!({
        "job_id": job.id,
        "job_type": job.job_type,
        "begin_time": text(own.begin),
        "end_time": text(own.end),
        "status": own.status,
        "error_code": own.error_code,
        "fail_reason": own.fail_reason,
        "entities": entities,
    })
}

fn cce_sub_jobs(
    sub_jobs: &[SubJobSpec],
    service: Service,
    elapsed: Duration,
    base: DateTime<Utc>,
) -> Vec<Value> {
    sub_jobs
        .iter()
        .map(|sub_job| {
            let own = evaluate(&sub_job.timeline, elapsed, base, service);
            cce_body(
                &sub_job.id,
                &sub_job.job_type,
                sub_job.resource_id.as_deref(),
                sub_job.server_id.as_deref(),
                &own,
                &cce_sub_jobs(&sub_job.sub_jobs, service, elapsed, base),
            )
        })
        .collect()
}

fn cce_body(
    id: &str,
    job_type: &str,
    resource_id: Option<&str>,
    server_id: Option<&str>,
    own: &Evaluated,
    sub_jobs: &[Value],
) -> Value {
    let mut metadata = Map::new();
    if !id.is_empty() {
        metadata.insert("uid".into(), json!(id));
    }
    if let Some(begin) = own.begin {
        metadata.insert("creationTimestamp".into(), json!(format_cce_time(begin)));
    }
    if let Some(updated) = own.updated {
        metadata.insert("updateTimestamp".into(), json!(format_cce_time(updated)));
    }
    let mut spec = Map::new();
    spec.insert("type".into(), json!(job_type));
    if let Some(id) = resource_id {
        spec.insert("resourceID".into(), json!(id));
    }
    if let Some(id) = server_id {
        spec.insert("extendParam".into(), json!({ "serverID": id }));
    }
    if !sub_jobs.is_empty() {
        spec.insert("subJobs".into(), Value::Array(sub_jobs.to_vec()));
    }
    json!({
        "kind": "Job",
        "apiVersion": "v3",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "phase": own.status,
            "reason": own.fail_reason.clone().unwrap_or_default(),
        },
    })
}

fn rds_body(job: &JobSpec, own: &Evaluated) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(job.id));
    body.insert("name".into(), json!(job.job_type));
    body.insert("status".into(), json!(own.status));
    if let Some(begin) = own.begin {
        body.insert("created".into(), json!(format_rds_time(begin)));
    }
    if let Some(end) = own.end {
        body.insert("ended".into(), json!(format_rds_time(end)));
    }
    let process = own
        .progress
        .map(|percent| format!("{percent}%"))
        .unwrap_or_default();
    body.insert("process".into(), json!(process));
    if let Some(id) = &job.resource_id {
        body.insert("instance".into(), json!({ "id": id }));
        body.insert("entities".into(), json!({ "resource_ids": [id] }));
    }
    body.insert("fail_reason".into(), json!(own.fail_reason));
    json!({ "job": body })
}

/// ECS's own error shape: `{"error":{"code","message"}}` (also BMS, EVS,
/// IMS, EIP in the simulator).
pub fn ecs_error_body(code: &str, message: &str) -> Vec<u8> {
    to_json(&json!({"error": {"code": code, "message": message}}))
}

/// A service's "no such job" answer in `style`: the HTTP status and body.
/// A CCE job has only the 404 answer.
pub fn not_found(service: Service, style: NotFoundStyle) -> (u16, Vec<u8>) {
    let gone = "The job does not exist.";
    match (service, style) {
        (Service::Ecs, NotFoundStyle::Http404) => (404, ecs_error_body("Ecs.0103", gone)),
        (Service::Bms, NotFoundStyle::Http404) => (404, ecs_error_body("BMS.0103", gone)),
        (Service::Evs, NotFoundStyle::Http404) => (404, ecs_error_body("EVS.0103", gone)),
        (Service::Eip, NotFoundStyle::Http404) => (404, ecs_error_body("VPC.0103", gone)),
        (Service::Ecs | Service::Bms | Service::Eip, NotFoundStyle::Http400) => (
            400,
            ecs_error_body("Common.0011", "Failed to query system tasks."),
        ),
        (Service::Evs, NotFoundStyle::Http400) => {
            (400, ecs_error_body("Common.0011", "No jobs found."))
        }
        (Service::Ims, NotFoundStyle::Http404) => (404, ecs_error_body("IMG.0404", gone)),
        (Service::Ims, NotFoundStyle::Http400) => (400, ecs_error_body("IMG.0404", gone)),
        (Service::Cce, _) => (
            404,
            to_json(&json!({"errorCode": "CCE.01404001", "errorMessage": "Resource not found."})),
        ),
        (Service::Rds, NotFoundStyle::Http404) => (
            404,
            to_json(&json!({"error_code": "RDS.5041", "error_msg": gone})),
        ),
        (Service::Rds, NotFoundStyle::Http400) => (
            400,
            to_json(&json!({"error_code": "DBS.200543", "error_msg": gone})),
        ),
    }
}

#[cfg(test)]
mod tests;
