//! The real [`Poller`]: reads any job of any configured project through
//! the one shared [`Client`] (one connection pool, one credential
//! provider).
//!
//! A [`Fleet`] is built from one [`Target`] per project: its name, project
//! id, region and an endpoint per service. The endpoints are parsed once
//! ([`Endpoint`]); a poll looks up the key's project and service, asks the
//! service's adapter for the path and query, sends the signed GET, and
//! reads the answer with [`read_answer`]. A key naming a project the fleet
//! does not know, or a service the project has no endpoint for, is an
//! [`ApiError`] of kind `Client` that names it, without any request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Url;

use super::{Adapter, PollFuture, Polled, Poller, adapter, read_answer};
use crate::huaweicloud::client::{Client, ClientError, Endpoint, Request};
use crate::huaweicloud::error::{ApiError, ErrorKind};
use crate::job::{JobKey, ProjectName, Service};

/// One project the fleet reads jobs of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The project's name (`default` for `[cloud]`).
    pub project: ProjectName,
    /// Its project id, in request paths and `X-Project-Id`.
    pub project_id: String,
    /// Its region, for events.
    pub region: Option<String>,
    /// The endpoint of each service (the daemon fills every service).
    pub endpoints: BTreeMap<Service, Url>,
}

/// Why a fleet could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Two targets name the same project.
    #[error("project {0} is listed twice")]
    DuplicateProject(ProjectName),
    /// An endpoint is not usable.
    #[error("project {project}, service {service}: {source}")]
    Endpoint {
        /// The project.
        project: ProjectName,
        /// The service.
        service: Service,
        /// What is wrong with its endpoint.
        source: ClientError,
    },
}

/// Reads jobs of every service of every project through one client.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fleet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    projects: HashMap<ProjectName, Prepared>,
}

/// A target with its endpoints parsed, by service.
#[derive(Debug)]
struct Prepared {
    target: Target,
    endpoints: [Option<Endpoint>; Service::ALL.len()],
}

/// The position of a service in [`Service::ALL`].
fn slot(service: Service) -> usize {
    Service::ALL
        .iter()
        .position(|known| *known == service)
        .unwrap_or_default()
}

impl Fleet {
    /// Builds the fleet; no I/O happens here.
    pub fn new(client: Client, targets: Vec<Target>) -> Result<Fleet, FleetError> {
        let mut projects = HashMap::with_capacity(targets.len());
        for target in targets {
            let mut endpoints: [Option<Endpoint>; Service::ALL.len()] = Default::default();
            for (&service, url) in &target.endpoints {
                let endpoint = Endpoint::new(url).map_err(|source| FleetError::Endpoint {
                    project: target.project.clone(),
                    service,
                    source,
                })?;
                endpoints[slot(service)] = Some(endpoint);
            }
            let name = target.project.clone();
            if projects
                .insert(name.clone(), Prepared { target, endpoints })
                .is_some()
            {
                return Err(FleetError::DuplicateProject(name));
            }
        }
        Ok(Fleet {
            inner: Arc::new(Inner { client, projects }),
        })
    }

    /// The shared client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The target of a project, when the fleet has it.
    pub fn target(&self, project: &ProjectName) -> Option<&Target> {
        self.inner
            .projects
            .get(project)
            .map(|prepared| &prepared.target)
    }

    /// Reads one job: its project's endpoint for its service, the
    /// service's adapter, one signed GET.
    pub async fn read(&self, key: &JobKey) -> Result<Polled, ApiError> {
        let Some(prepared) = self.inner.projects.get(&key.project) else {
            return Err(ApiError::transport(
                ErrorKind::Client,
                format!("job {key}: unknown project {:?}", key.project.as_str()),
            ));
        };
        let Some(endpoint) = &prepared.endpoints[slot(key.service)] else {
            return Err(ApiError::transport(
                ErrorKind::Client,
                format!(
                    "job {key}: project {:?} has no endpoint for service {}",
                    key.project.as_str(),
                    key.service
                ),
            ));
        };
        let project_id = prepared.target.project_id.as_str();
        read_job(
            &self.inner.client,
            endpoint,
            project_id,
            adapter(key.service),
            key.id.as_str(),
        )
        .await
    }
}

/// One signed GET of a job on `endpoint`: the adapter's path and query,
/// the answer read with [`read_answer`].
pub async fn read_job(
    client: &Client,
    endpoint: &Endpoint,
    project_id: &str,
    adapter: &dyn Adapter,
    job_id: &str,
) -> Result<Polled, ApiError> {
    let query = adapter.query(project_id, job_id);
    let request = Request {
        query: &query.query,
        ..Request::get(
            endpoint,
            &query.path,
            Some(project_id),
            adapter.max_body_bytes(),
        )
    };
    let answer = client.send(&request).await?;
    // A `Retry-After` date is resolved against the server's own clock (its
    // `Date`) when it sent one, so a skewed local clock neither stretches
    // nor cuts the pause.
    let now = answer
        .server_now_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or_else(SystemTime::now, |ms| {
            SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
        });
    let view = read_answer(adapter, answer.status, answer.headers(), &answer.body, now)?;
    Ok(Polled {
        view,
        server_now_ms: answer.server_now_ms,
    })
}

impl Poller for Fleet {
    fn poll(&self, key: &JobKey) -> PollFuture {
        let fleet = self.clone();
        let key = key.clone();
        Box::pin(async move { fleet.read(&key).await })
    }

    fn credentials_generation(&self) -> u64 {
        self.inner.client.credentials().generation()
    }
}
