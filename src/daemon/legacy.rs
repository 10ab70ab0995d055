//! A stop-gap poller over the ECS-only client, until the fleet of service
//! adapters is wired in.

use crate::huaweicloud::client::Client;
use crate::job::{JobKey, JobView, Status, SubJobView};
use crate::services::ecs::Job;
use crate::services::{PollFuture, Polled, Poller};

/// The ECS client as a [`Poller`].
pub struct EcsPoller(pub Client);

fn view(job: Job) -> JobView {
    let word = job
        .status
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let server_ids = job.server_ids();
    let sub_jobs = job
        .sub_jobs
        .iter()
        .enumerate()
        .map(|(index, sub)| {
            let word = sub
                .status
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            SubJobView {
                key: sub.job_id.clone().unwrap_or_else(|| format!("#{index}")),
                job_id: sub.job_id.clone(),
                status: Status::parse(&word),
                service_status: word,
                job_type: sub.job_type.clone(),
                begin_time: sub.begin_time.clone(),
                end_time: sub.end_time.clone(),
                error_code: sub.error_code.clone(),
                fail_reason: sub.reason().map(str::to_string),
                server_id: sub.server_id.clone(),
                nic_id: sub.nic_id.clone(),
                resource_ids: sub.server_id.iter().cloned().collect(),
            }
        })
        .collect();
    JobView {
        status: Status::parse(&word),
        service_status: word,
        job_id: job.job_id,
        job_type: job.job_type,
        begin_time: job.begin_time,
        end_time: job.end_time,
        begin_ms: None,
        end_ms: None,
        error_code: job.error_code,
        fail_reason: job.fail_reason,
        resource_ids: server_ids.clone(),
        server_ids,
        sub_jobs_total: job.sub_jobs_total,
        sub_jobs,
        progress: None,
    }
}

impl Poller for EcsPoller {
    fn poll(&self, key: &JobKey) -> PollFuture {
        let client = self.0.clone();
        let id = key.id.clone();
        Box::pin(async move {
            let job = client.get_job(id.as_str()).await?;
            Ok(Polled {
                view: view(job),
                server_now_ms: None,
            })
        })
    }

    fn credentials_generation(&self) -> u64 {
        self.0.credentials().generation()
    }
}
