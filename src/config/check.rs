//! Validation: the meaning of values (ranges, URLs, paths, job entries,
//! projects, sinks), each error naming the dotted key and where the value
//! came from: the variable that set it, else its line in the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::error::ConfigError;
use super::layers::{FileMap, Overrides};
use super::notify::{self, is_project_id, is_region};
use super::paths::default_state_dir;
use super::projects::{self, ProjectSettings, is_loopback};
use super::raw::RawConfig;
use super::{
    Config, CredentialsSettings, LimitSettings, LogSettings, MetricsSettings, PollSettings,
    StateSettings, WatchSettings,
};
use crate::job::spec::parse_line;
use crate::job::{JobKey, Labels};

/// Checks values and names the key, and its variable or line, when one is
/// wrong.
pub(super) struct Checker<'a> {
    pub file: &'a FileMap<'a>,
    pub overrides: &'a Overrides,
}

impl Checker<'_> {
    /// An error about `key`, located at its variable or its line.
    pub fn fail(&self, key: &str, message: impl AsRef<str>) -> ConfigError {
        let location = match self.overrides.variable(key) {
            Some(variable) => Some(variable.to_string()),
            None => self.file.locate(key),
        };
        ConfigError::new(location, Some(key.to_string()), message)
    }

    /// A duration of at least `min`.
    pub fn at_least(
        &self,
        key: &str,
        value: Duration,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        if value < min {
            return Err(self.fail(
                key,
                format!(
                    "must be at least {} (got {})",
                    humantime::format_duration(min),
                    humantime::format_duration(value)
                ),
            ));
        }
        Ok(value)
    }

    /// A path that is not empty.
    pub fn path(&self, key: &str, path: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
        match path {
            Some(path) if path.as_os_str().is_empty() => Err(self.fail(key, "must not be empty")),
            other => Ok(other),
        }
    }

    /// 1 to 64 of `a-z0-9-`.
    pub fn region(&self, key: &str, region: String) -> Result<String, ConfigError> {
        if is_region(&region) {
            Ok(region)
        } else {
            Err(self.fail(
                key,
                format!("must be 1 to 64 of a-z 0-9 -, like \"cn-north-4\", got {region:?}"),
            ))
        }
    }

    /// 1 to 64 of `A-Za-z0-9`.
    pub fn project_id(&self, key: &str, id: String) -> Result<String, ConfigError> {
        if is_project_id(&id) {
            Ok(id)
        } else {
            Err(self.fail(key, format!("must be 1 to 64 of A-Z a-z 0-9, got {id:?}")))
        }
    }

    /// A URL with a host, and no user, password, query or fragment.
    pub fn url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text)
            .map_err(|error| self.fail(key, format!("is not a URL ({error}): {text:?}")))?;
        if url.host().is_none() {
            return Err(self.fail(key, format!("has no host: {text:?}")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.fail(key, "must not contain a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.fail(key, format!("must not have a query or fragment: {text:?}")));
        }
        Ok(url)
    }

    /// An `https://` URL, or `http://` for a loopback host.
    pub fn https_url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = self.url(key, text)?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if is_loopback(&url) => Ok(url),
            "http" => Err(self.fail(
                key,
                format!(
                    "must be https:// (plain http:// only for loopback addresses), got {text:?}"
                ),
            )),
            other => Err(self.fail(
                key,
                format!("must be an https:// URL, got scheme {other:?}"),
            )),
        }
    }
}

/// Turns the merged raw configuration into a [`Config`].
pub(super) fn validate(
    raw: RawConfig,
    check: &Checker<'_>,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let projects = projects::resolve(check, &raw.cloud, &raw.projects)?;
    let ca_file = ca_file(check, raw.cloud.ca_file)?;

    let credentials = CredentialsSettings {
        source: raw.credentials.source,
        access_key_file: check.path(
            "credentials.access_key_file",
            raw.credentials.access_key_file,
        )?,
        secret_key_file: check.path(
            "credentials.secret_key_file",
            raw.credentials.secret_key_file,
        )?,
        security_token_file: check.path(
            "credentials.security_token_file",
            raw.credentials.security_token_file,
        )?,
        metadata_url: metadata_url(check, &raw.credentials.metadata_url)?,
    };

    let second = Duration::from_secs(1);
    let poll = PollSettings {
        initial_interval: check.at_least(
            "poll.initial_interval",
            raw.poll.initial_interval,
            second,
        )?,
        max_interval: check.at_least("poll.max_interval", raw.poll.max_interval, second)?,
        pending_payment_interval: check.at_least(
            "poll.pending_payment_interval",
            raw.poll.pending_payment_interval,
            second,
        )?,
        job_timeout: check.at_least("poll.job_timeout", raw.poll.job_timeout, second)?,
        not_found_grace: check.at_least(
            "poll.not_found_grace",
            raw.poll.not_found_grace,
            second,
        )?,
        adaptive: raw.poll.adaptive,
    };
    if poll.max_interval < poll.initial_interval {
        return Err(check.fail(
            "poll.max_interval",
            format!(
                "must be at least poll.initial_interval ({}), got {}",
                humantime::format_duration(poll.initial_interval),
                humantime::format_duration(poll.max_interval)
            ),
        ));
    }

    let limits = limits(check, raw.limits)?;
    let watch = WatchSettings {
        jobs: jobs(check, &raw.watch.jobs, &projects)?,
        dir: watch_dir(check, raw.watch.dir)?,
    };
    let state = StateSettings {
        dir: check
            .path("state.dir", raw.state.dir)?
            .unwrap_or_else(|| default_state_dir(env)),
        retention: check.at_least(
            "state.retention",
            raw.state.retention,
            Duration::from_secs(3600),
        )?,
    };
    let log = LogSettings {
        format: raw.log.format,
        level: raw.log.level,
    };
    let metrics = MetricsSettings {
        listen: raw.metrics.listen,
    };
    let webhooks = notify::webhooks(check, raw.notify.webhook)?;
    let smn = notify::smn(check, raw.notify.smn, &projects)?;
    notify::unique_names(check, &webhooks, &smn)?;

    Ok(Config {
        projects,
        ca_file,
        credentials,
        poll,
        limits,
        watch,
        state,
        log,
        metrics,
        webhooks,
        smn,
    })
}

fn limits(check: &Checker<'_>, raw: super::raw::RawLimits) -> Result<LimitSettings, ConfigError> {
    let rate = raw.requests_per_second;
    // Written so that NaN fails too.
    if !(rate > 0.0 && rate <= 10_000.0) {
        return Err(check.fail(
            "limits.requests_per_second",
            format!("must be greater than 0 and at most 10000, got {rate}"),
        ));
    }
    if raw.burst == 0 {
        return Err(check.fail("limits.burst", "must be at least 1, got 0"));
    }
    if !(1..=1024).contains(&raw.max_in_flight) {
        return Err(check.fail(
            "limits.max_in_flight",
            format!("must be from 1 to 1024, got {}", raw.max_in_flight),
        ));
    }
    let timeout = check.at_least(
        "limits.request_timeout",
        raw.request_timeout,
        Duration::from_secs(1),
    )?;
    let max = Duration::from_secs(5 * 60);
    if timeout > max {
        return Err(check.fail(
            "limits.request_timeout",
            format!(
                "must be at most {} (got {})",
                humantime::format_duration(max),
                humantime::format_duration(timeout)
            ),
        ));
    }
    Ok(LimitSettings {
        requests_per_second: rate,
        burst: raw.burst,
        max_in_flight: raw.max_in_flight,
        request_timeout: timeout,
    })
}

fn metadata_url(check: &Checker<'_>, text: &str) -> Result<Url, ConfigError> {
    let key = "credentials.metadata_url";
    let url = check.url(key, text)?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(check.fail(
            key,
            format!("must be an http:// or https:// URL, got scheme {other:?}"),
        )),
    }
}

/// `cloud.ca_file`: a file that can be read (its PEM is read by the client).
fn ca_file(check: &Checker<'_>, path: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    let key = "cloud.ca_file";
    let Some(path) = check.path(key, path)? else {
        return Ok(None);
    };
    let opened = std::fs::File::open(&path).and_then(|file| file.metadata());
    match opened {
        Ok(metadata) if metadata.is_file() => Ok(Some(path)),
        Ok(_) => Err(check.fail(key, format!("{} is not a file", path.display()))),
        Err(error) => Err(check.fail(key, format!("cannot read {}: {error}", path.display()))),
    }
}

/// The entries of `watch.jobs`, in the watch syntax, each naming a
/// configured project and a service that project can reach. An entry
/// listed twice with the same labels is kept once.
fn jobs(
    check: &Checker<'_>,
    entries: &[String],
    projects: &[ProjectSettings],
) -> Result<Vec<(JobKey, Labels)>, ConfigError> {
    let mut jobs: Vec<(JobKey, Labels)> = Vec::with_capacity(entries.len());
    // Each job's place in `jobs` and the index of its entry.
    let mut seen: BTreeMap<JobKey, (usize, usize)> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let key = format!("watch.jobs[{index}]");
        let (job, labels) = match parse_line(entry) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(check.fail(&key, format!("names no job: {entry:?}"))),
            Err(error) => return Err(check.fail(&key, format!("{error}: {entry:?}"))),
        };
        let Some(project) = projects.iter().find(|p| p.name == job.project) else {
            let known: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
            return Err(check.fail(
                &key,
                format!(
                    "project {:?} is not configured (known: {}): {entry:?}",
                    job.project.as_str(),
                    known.join(", ")
                ),
            ));
        };
        if let Err(error) = project.endpoint(job.service) {
            return Err(check.fail(&key, format!("{error}: {entry:?}")));
        }
        match seen.get(&job) {
            Some(&(position, _)) if jobs[position].1 == labels => {}
            Some(&(_, first)) => {
                return Err(check.fail(
                    &key,
                    format!("job {job} is listed at watch.jobs[{first}] too, with other labels"),
                ));
            }
            None => {
                seen.insert(job.clone(), (jobs.len(), index));
                jobs.push((job, labels));
            }
        }
    }
    Ok(jobs)
}

fn watch_dir(check: &Checker<'_>, dir: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(dir) = check.path("watch.dir", dir)? else {
        return Ok(None);
    };
    match std::fs::metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => Ok(Some(dir)),
        Ok(_) => Err(check.fail("watch.dir", format!("{} is not a directory", dir.display()))),
        Err(error) => Err(check.fail(
            "watch.dir",
            format!("cannot use {}: {error}", dir.display()),
        )),
    }
}
