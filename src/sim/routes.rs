//! Which service and which job a request path names.
//!
//! One simulator is every service's endpoint: a path may start with a
//! service's name (`/cce/api/v3/...`, `/eip/v1/...`), and a path without
//! one is ECS's (`/v1/{project_id}/jobs/{job_id}`, as the official SDK's
//! test and the first releases use it). Below the prefix, each service's
//! job API has its own shape:
//!
//! | service | path |
//! |---|---|
//! | ecs, bms, evs, eip | `/v1/{project_id}/jobs/{job_id}` |
//! | ims | `/v1/cloudimages/job/{job_id}` (project from `X-Project-Id`) |
//! | cce | `/api/v3/projects/{project_id}/jobs/{job_id}` |
//! | rds | `/v3/{project_id}/jobs?id={job_id}` |

use crate::huaweicloud::sign::percent_decode;
use crate::job::Service;

use super::auth::query_pairs;

/// A request path split into its service and the path below the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    /// The service the path is for.
    pub service: Service,
    /// The path below the service's prefix, starting with `/`.
    pub api_path: &'a str,
}

/// The route of `path`, when it is a job API path (below the prefix it
/// starts with `/v1/`, `/v3/` or `/api/`); `None` for anything else.
pub fn route(path: &str) -> Option<Route<'_>> {
    let (service, api_path) = Service::ALL
        .into_iter()
        .find_map(|service| {
            let rest = path.strip_prefix('/')?.strip_prefix(service.as_str())?;
            rest.starts_with('/').then_some((service, rest))
        })
        .unwrap_or((Service::Ecs, path));
    ["/v1/", "/v3/", "/api/"]
        .iter()
        .any(|start| api_path.starts_with(start))
        .then_some(Route { service, api_path })
}

/// The job a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTarget {
    /// The project in the path (or IMS's `X-Project-Id`), decoded.
    pub project_id: Option<String>,
    /// The job id, decoded.
    pub job_id: String,
}

/// The path's segments after `prefix`, each decoded; `None` when the
/// path does not start with it or a segment is empty.
fn segments(path: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(prefix)?;
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    segments
        .iter()
        .all(|segment| !segment.is_empty())
        .then_some(segments)
}

/// The job `route` asks for, from its path, the raw query and the
/// `X-Project-Id` header; `None` when the path is not the service's job
/// API.
pub fn job_target(
    route: &Route<'_>,
    query: Option<&str>,
    project_header: Option<&str>,
) -> Option<JobTarget> {
    let target = |project_id: &str, job_id: &str| JobTarget {
        project_id: Some(project_id.to_string()),
        job_id: job_id.to_string(),
    };
    match route.service {
        Service::Ecs | Service::Bms | Service::Evs | Service::Eip => {
            match segments(route.api_path, "/v1/")?.as_slice() {
                [project_id, jobs, job_id] if jobs == "jobs" => Some(target(project_id, job_id)),
                _ => None,
            }
        }
        Service::Ims => match segments(route.api_path, "/v1/cloudimages/job/")?.as_slice() {
            [job_id] => Some(JobTarget {
                project_id: project_header
                    .map(str::trim)
                    .filter(|project| !project.is_empty())
                    .map(str::to_string),
                job_id: job_id.clone(),
            }),
            _ => None,
        },
        Service::Cce => match segments(route.api_path, "/api/v3/projects/")?.as_slice() {
            [project_id, jobs, job_id] if jobs == "jobs" => Some(target(project_id, job_id)),
            _ => None,
        },
        Service::Rds => match segments(route.api_path, "/v3/")?.as_slice() {
            [project_id, jobs] if jobs == "jobs" => {
                let pairs = query_pairs(query);
                let ids: Vec<&str> = pairs
                    .iter()
                    .filter(|(key, _)| key == "id")
                    .map(|(_, value)| value.as_str())
                    .collect();
                match ids.as_slice() {
                    [job_id] if !job_id.is_empty() => Some(target(project_id, job_id)),
                    _ => None,
                }
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let check = |path: &str, expected: Option<(Service, &str)>| {
            let found = route(path).map(|route| (route.service, route.api_path));
            assert_eq!(found, expected, "{path}");
        };
        check("/v1/p/jobs/j", Some((Service::Ecs, "/v1/p/jobs/j")));
        check("/ecs/v1/p/jobs/j", Some((Service::Ecs, "/v1/p/jobs/j")));
        check("/evs/v1/p/jobs/j", Some((Service::Evs, "/v1/p/jobs/j")));
        check(
            "/cce/api/v3/projects/p/jobs/j",
            Some((Service::Cce, "/api/v3/projects/p/jobs/j")),
        );
        check("/rds/v3/p/jobs", Some((Service::Rds, "/v3/p/jobs")));
        check("/eip/v1/p/jobs/j", Some((Service::Eip, "/v1/p/jobs/j")));
        check("/v2/p/jobs/j", None);
        check("/", None);
        check("/evs", None);
        check("/evsx/v1/p/jobs/j", None);
        check("/vpc/v1/p/jobs/j", None);
        check("/_sim/stats", None);
    }

    #[test]
    fn job_targets() {
        let check = |path: &str, query: Option<&str>, expected: Option<(Option<&str>, &str)>| {
            let route = route(path).unwrap_or_else(|| panic!("{path} is not routed"));
            let found = job_target(&route, query, Some("hp"));
            let found = found
                .as_ref()
                .map(|target| (target.project_id.as_deref(), target.job_id.as_str()));
            assert_eq!(found, expected, "{path} {query:?}");
        };
        check("/v1/p/jobs/j", None, Some((Some("p"), "j")));
        check("/v1/p/jobs/j%2Dk", None, Some((Some("p"), "j-k")));
        check("/v1/p/jobs/j%2Fk", None, Some((Some("p"), "j/k")));
        check("/v1/p/jobs/", None, None);
        check("/v1/p/jobs/j/", None, None);
        check("/v1/p/cloudservers/j", None, None);
        check("/v1//jobs/j", None, None);
        check("/ims/v1/cloudimages/job/j", None, Some((Some("hp"), "j")));
        check("/ims/v1/p/jobs/j", None, None);
        check(
            "/cce/api/v3/projects/p/jobs/u-1",
            None,
            Some((Some("p"), "u-1")),
        );
        check("/cce/v1/p/jobs/j", None, None);
        check("/rds/v3/p/jobs", Some("id=j%201"), Some((Some("p"), "j 1")));
        check("/rds/v3/p/jobs", Some("id=a&id=b"), None);
        check("/rds/v3/p/jobs", Some("name=a"), None);
        check("/rds/v3/p/jobs", None, None);
        check("/rds/v3/p/jobs/j", Some("id=j"), None);
        let ims = route("/ims/v1/cloudimages/job/j").unwrap();
        assert_eq!(job_target(&ims, None, None).unwrap().project_id, None);
    }
}
