//! The account a process works for: one credential provider, the project
//! id and region of every configured project, and the [`Fleet`] that reads
//! every service's jobs in every project through one HTTP client. `run`,
//! a reload and `wait` without a daemon build it the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::Config;
use crate::huaweicloud::client::{Client, HttpSettings};
use crate::huaweicloud::credentials::{
    self, CredentialProvider, CredentialsConfig, Environment, Source,
};
use crate::job::{ProjectName, Service};
use crate::output::event;
use crate::output::log;
use crate::scheduler::observe::ProjectInfo;
use crate::services::fleet::{Fleet, Target};

use super::DaemonError;

/// Everything that talks to the API on the account's behalf.
#[derive(Clone, Debug)]
pub struct Account {
    /// The credentials every call is signed with.
    pub provider: CredentialProvider,
    /// What events say about each project.
    pub projects: HashMap<ProjectName, ProjectInfo>,
    /// Reads any job of any configured project and service.
    pub fleet: Fleet,
}

impl Account {
    /// The id of a configured project.
    pub fn project_id(&self, project: &ProjectName) -> Option<String> {
        self.projects
            .get(project)
            .map(|info| info.project_id.to_string())
    }

    /// What SMN sinks publish through: this account's signed client and
    /// the scheduler's permits.
    pub fn notify(
        &self,
        permits: crate::policy::permit::Permits,
    ) -> crate::output::notify::Account {
        crate::output::notify::Account {
            client: self.fleet.client().clone(),
            permits,
        }
    }
}

/// The credential settings of a configuration.
pub fn credentials_config(config: &Config) -> CredentialsConfig {
    let settings = config.credentials();
    CredentialsConfig {
        source: settings.source,
        access_key_file: settings.access_key_file.clone(),
        secret_key_file: settings.secret_key_file.clone(),
        security_token_file: settings.security_token_file.clone(),
        metadata_url: settings
            .metadata_url
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        ..CredentialsConfig::default()
    }
}

/// The credential provider of a configuration, with its warnings
/// announced.
pub fn credential_provider(
    config: &Config,
    env: &Environment,
) -> Result<CredentialProvider, DaemonError> {
    let (provider, warnings) = CredentialProvider::new(&credentials_config(config), env)
        .map_err(|error| DaemonError::Config(format!("credentials: {error}")))?;
    for warning in warnings {
        log::announce(&event::credentials_warning(&warning));
    }
    Ok(provider)
}

/// The default project's id when the configuration does not give it: the
/// environment or profile, then instance metadata.
pub async fn default_project_id(config: &Config, env: &Environment) -> Result<String, DaemonError> {
    if let Some(project_id) = credentials::project_id_from_environment(env, None) {
        return Ok(project_id);
    }
    let credentials = credentials_config(config);
    if matches!(credentials.source, Source::Auto | Source::Metadata) {
        return credentials::project_id_from_metadata(&credentials).await.map_err(|error| {
            DaemonError::Config(format!(
                "cloud.project_id: not set, not in HUAWEICLOUD_SDK_PROJECT_ID, HW_PROJECT_ID or the profile, \
                 and instance metadata did not answer: {error}"
            ))
        });
    }
    Err(DaemonError::Config(
        "cloud.project_id: not set, and not in HUAWEICLOUD_SDK_PROJECT_ID, HW_PROJECT_ID or the profile".into(),
    ))
}

/// Builds the account of a configuration: credentials, every project's
/// id (the default one looked up when the file does not say it), one
/// client and the fleet. No job API is called.
pub async fn connect(config: &Config, env: &Environment) -> Result<Account, DaemonError> {
    let provider = credential_provider(config, env)?;
    let settings = HttpSettings {
        request_timeout: config.limits().request_timeout,
        ca_file: config.ca_file().map(Into::into),
        clock: None,
    };
    let client = Client::build(&settings, provider.clone())
        .map_err(|error| DaemonError::Config(format!("cloud: {error}")))?;
    let mut targets = Vec::new();
    let mut projects = HashMap::new();
    for project in config.projects() {
        let project_id = match &project.project_id {
            Some(project_id) => project_id.clone(),
            None => default_project_id(config, env).await?,
        };
        let endpoints: BTreeMap<Service, _> = Service::ALL
            .into_iter()
            .filter_map(|service| {
                project
                    .endpoint(service)
                    .ok()
                    .map(|url| (service, url.clone()))
            })
            .collect();
        projects.insert(
            project.name.clone(),
            ProjectInfo {
                project_id: Arc::from(project_id.as_str()),
                region: project.region.as_deref().map(Arc::from),
            },
        );
        targets.push(Target {
            project: project.name.clone(),
            project_id,
            region: project.region.clone(),
            endpoints,
        });
    }
    let fleet = Fleet::new(client, targets)
        .map_err(|error| DaemonError::Config(format!("cloud: {error}")))?;
    Ok(Account {
        provider,
        projects,
        fleet,
    })
}

/// Whether two configurations need different accounts (projects,
/// endpoints, credentials, the client's settings).
pub fn differs(old: &Config, new: &Config) -> bool {
    old.projects() != new.projects()
        || old.credentials() != new.credentials()
        || old.limits().request_timeout != new.limits().request_timeout
        || old.ca_file() != new.ca_file()
}
