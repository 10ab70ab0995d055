//! Projects and their endpoints: `[cloud]` is the project `default`,
//! `[projects.NAME]` adds more, each taking from `[cloud]` what it does not
//! set; the endpoint of every (project, service) is resolved and checked
//! once, at load.
//!
//! The endpoint of an API for project `P`, first found wins:
//! `projects.P.endpoints.API`, `cloud.endpoints.API`, `projects.P.endpoint`,
//! `cloud.endpoint` (these two serve ECS, or every API when they hold the
//! `{service}` placeholder), else `https://{host}.{region}.myhuaweicloud.com`.
//! An endpoint may hold `{service}` (the API's name: `ecs`, ..., `eip`,
//! `smn`) and `{region}` (the project's region).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

use super::check::Checker;
use super::error::ConfigError;
use super::raw::{ProjectKey, RawCloud, RawProject};
use crate::job::{ProjectName, Service};

/// What an endpoint serves: the job API of a service, or SMN (a sink).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Api {
    /// The job API of a service.
    Job(Service),
    /// Simple Message Notification, where `[[notify.smn]]` publishes.
    Smn,
}

impl Api {
    /// Every API, in the order of the documentation.
    pub const ALL: [Api; 8] = [
        Api::Job(Service::Ecs),
        Api::Job(Service::Bms),
        Api::Job(Service::Evs),
        Api::Job(Service::Ims),
        Api::Job(Service::Cce),
        Api::Job(Service::Rds),
        Api::Job(Service::Eip),
        Api::Smn,
    ];

    /// The name in `endpoints.NAME` and the `{service}` placeholder.
    pub fn name(self) -> &'static str {
        match self {
            Api::Job(service) => service.as_str(),
            Api::Smn => "smn",
        }
    }

    /// The first label of the default host (`vpc` for EIP).
    pub fn host_label(self) -> &'static str {
        match self {
            Api::Job(service) => service.host_label(),
            Api::Smn => "smn",
        }
    }

    /// The API of a name (exact, lower case).
    pub fn parse(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|api| api.name() == name)
    }

    /// The names, for messages: `ecs, bms, evs, ims, cce, rds, eip, smn`.
    pub fn names() -> String {
        Api::ALL.map(Api::name).join(", ")
    }
}

impl From<Service> for Api {
    fn from(service: Service) -> Api {
        Api::Job(service)
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One project: `default` (`[cloud]`) or a `[projects.NAME]` table, with
/// what it takes from `[cloud]` filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectSettings {
    /// The name (`default` for `[cloud]`).
    pub name: ProjectName,
    /// The region: the project's own, else `cloud.region`.
    pub region: Option<String>,
    /// The project id: the project's own, else `cloud.project_id`. Only
    /// the default project may lack one (the daemon then looks in the
    /// environment, the profile and instance metadata).
    pub project_id: Option<String>,
    /// The keys as written in its table, for printing.
    pub(super) written: Written,
    /// The resolved endpoints and the key each came from; an API is
    /// missing when neither an endpoint nor a region says where it is.
    endpoints: BTreeMap<Api, (Url, String)>,
}

/// The keys of a project's own table (`[cloud]` for `default`), as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Written {
    pub region: Option<String>,
    pub project_id: Option<String>,
    pub endpoint: Option<String>,
    pub endpoints: BTreeMap<Api, String>,
}

/// An API a project cannot reach: no endpoint and no region.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "project {project} has no endpoint for {api}: set {region_key}, {endpoints_key}, or an endpoint with {{service}}"
)]
pub struct MissingEndpoint {
    /// The project.
    pub project: ProjectName,
    /// The API.
    pub api: Api,
    region_key: String,
    endpoints_key: String,
}

impl ProjectSettings {
    /// The endpoint of an API (a [`Service`] or [`Api::Smn`]), resolved as
    /// the module documentation says.
    pub fn endpoint(&self, api: impl Into<Api>) -> Result<&Url, MissingEndpoint> {
        let api = api.into();
        self.endpoints.get(&api).map(|(url, _)| url).ok_or_else(|| {
            let prefix = key_prefix(&self.name);
            MissingEndpoint {
                project: self.name.clone(),
                api,
                region_key: format!("{prefix}.region"),
                endpoints_key: format!("{prefix}.endpoints.{api}"),
            }
        })
    }

    /// The key an API's endpoint came from (`cloud.endpoints.evs`,
    /// `cloud.region`, ...), when it has one.
    pub fn endpoint_origin(&self, api: impl Into<Api>) -> Option<&str> {
        self.endpoints
            .get(&api.into())
            .map(|(_, origin)| origin.as_str())
    }
}

/// `cloud` for the default project, else `projects.NAME`.
pub(super) fn key_prefix(name: &ProjectName) -> String {
    if name.is_default() {
        "cloud".to_string()
    } else {
        format!("projects.{name}")
    }
}

/// The projects, `default` first, then the others by name.
pub(super) fn resolve(
    check: &Checker<'_>,
    cloud: &RawCloud,
    projects: &BTreeMap<ProjectKey, RawProject>,
) -> Result<Vec<ProjectSettings>, ConfigError> {
    let shared = Written {
        region: cloud.region.clone(),
        project_id: cloud.project_id.clone(),
        endpoint: cloud.endpoint.clone(),
        endpoints: cloud.endpoints.clone(),
    };
    let shared = checked(check, "cloud", shared)?;
    let mut all = vec![project(
        check,
        ProjectName::default(),
        shared.clone(),
        None,
    )?];
    for (ProjectKey(name), raw) in projects {
        let own = Written {
            region: raw.region.clone(),
            project_id: raw.project_id.clone(),
            endpoint: raw.endpoint.clone(),
            endpoints: raw.endpoints.clone(),
        };
        let own = checked(check, &key_prefix(name), own)?;
        all.push(project(check, name.clone(), own, Some(&shared))?);
    }
    Ok(all)
}

/// Checks the region and project id written at `prefix`.
fn checked(check: &Checker<'_>, prefix: &str, written: Written) -> Result<Written, ConfigError> {
    Ok(Written {
        region: written
            .region
            .map(|region| check.region(&format!("{prefix}.region"), region))
            .transpose()?,
        project_id: written
            .project_id
            .map(|id| check.project_id(&format!("{prefix}.project_id"), id))
            .transpose()?,
        ..written
    })
}

fn project(
    check: &Checker<'_>,
    name: ProjectName,
    own: Written,
    cloud: Option<&Written>,
) -> Result<ProjectSettings, ConfigError> {
    let prefix = key_prefix(&name);
    let region = own
        .region
        .clone()
        .or_else(|| cloud.and_then(|cloud| cloud.region.clone()));
    let project_id = own
        .project_id
        .clone()
        .or_else(|| cloud.and_then(|cloud| cloud.project_id.clone()));
    if project_id.is_none() && !name.is_default() {
        return Err(check.fail(
            &format!("{prefix}.project_id"),
            "is required: only [cloud]'s project id is looked up in the environment or metadata \
             (set it here, or cloud.project_id to share it)",
        ));
    }
    // The tables to look in, the project's own first.
    let layers: Vec<(&str, &Written)> = match cloud {
        Some(cloud) => vec![(prefix.as_str(), &own), ("cloud", cloud)],
        None => vec![(prefix.as_str(), &own)],
    };
    let mut endpoints = BTreeMap::new();
    for api in Api::ALL {
        let explicit = layers
            .iter()
            .find_map(|(at, layer)| {
                let template = layer.endpoints.get(&api)?;
                Some((template, format!("{at}.endpoints.{api}")))
            })
            .or_else(|| {
                layers.iter().find_map(|(at, layer)| {
                    let template = layer.endpoint.as_ref()?;
                    let serves = api == Api::Job(Service::Ecs) || template.contains("{service}");
                    serves.then(|| (template, format!("{at}.endpoint")))
                })
            });
        let resolved = match (explicit, &region) {
            (Some((template, key)), _) => {
                let url = expand(check, &key, template, api, &name, region.as_deref())?;
                Some((url, key))
            }
            (None, Some(region)) => {
                let key = match own.region {
                    Some(_) => format!("{prefix}.region"),
                    None => "cloud.region".to_string(),
                };
                let text = format!("https://{}.{region}.myhuaweicloud.com", api.host_label());
                let url = check.https_url(&key, &text)?;
                Some((url, key))
            }
            (None, None) => None,
        };
        if let Some(resolved) = resolved {
            endpoints.insert(api, resolved);
        }
    }
    if !endpoints.contains_key(&Api::Job(Service::Ecs)) {
        let message = if name.is_default() {
            "is required unless cloud.endpoint or cloud.endpoints.ecs is set".to_string()
        } else {
            format!(
                "is required: neither {prefix} nor [cloud] sets a region, or an endpoint for ecs"
            )
        };
        return Err(check.fail(&format!("{prefix}.region"), message));
    }
    Ok(ProjectSettings {
        name,
        region,
        project_id,
        written: own,
        endpoints,
    })
}

/// Replaces the placeholders of an endpoint and checks the URL.
fn expand(
    check: &Checker<'_>,
    key: &str,
    template: &str,
    api: Api,
    project: &ProjectName,
    region: Option<&str>,
) -> Result<Url, ConfigError> {
    let mut text = template.replace("{service}", api.name());
    if text.contains("{region}") {
        let Some(region) = region else {
            return Err(check.fail(
                key,
                format!("uses {{region}}, but project {project} has no region"),
            ));
        };
        text = text.replace("{region}", region);
    }
    if text.contains(['{', '}']) {
        return Err(check.fail(
            key,
            format!("has an unknown placeholder, only {{service}} and {{region}} are replaced: {template:?}"),
        ));
    }
    check.https_url(key, &text)
}

/// Whether a URL's host is a loopback address or `localhost`.
pub(super) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed, as in `http://[::1]:8080`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}
