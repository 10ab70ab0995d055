//! The credential chain: where the access key, secret key and security token
//! come from, and how temporary keys from instance metadata stay fresh.
//!
//! The chain follows the official SDKs (environment, profile file, instance
//! metadata) and adds systemd credential files between the environment and
//! the profile, because that is how a hardened service should receive
//! secrets. [`CredentialProvider::new`] settles on one source without any
//! network I/O; [`CredentialProvider::get`] hands out the keys in use, and
//! for instance metadata fetches and refreshes them with a single request
//! shared by every concurrent caller. No secret value ever reaches a
//! formatted string: keys are [`Secret`]s, errors name places (a variable,
//! a path, a URL), and the environment snapshot prints names only.
//!
//! This file holds the public types, the provider and the order of the
//! chain (`settle`); each source lives in a file of its own: `env.rs`
//! (environment variables), `files.rs` (systemd credential files and the
//! private-file reader), `profile.rs` (the SDK profile file) and
//! `metadata.rs` (the instance metadata client and its refresh).

mod env;
mod files;
mod metadata;
mod profile;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::zeroize::Zeroize;

use crate::huaweicloud::secret::Secret;
use env::{EnvNames, HW_NAMES, SDK_NAMES, read_env, read_env_set};
use files::{CREDENTIALS_DIRECTORY_VARIABLE, FilePaths, file_paths, files_present, read_files};
use metadata::{MetadataClient, MetadataSource};
use profile::{
    PROFILE_FILE_VARIABLE, default_profile_path, parse_profile, profile_credentials, read_profile,
};

pub use env::Environment;

/// The instance metadata service of Huawei Cloud ECS.
pub const DEFAULT_METADATA_URL: &str = "http://169.254.169.254";

/// The timeout of each call to the metadata service.
pub const DEFAULT_METADATA_TIMEOUT: Duration = Duration::from_secs(3);

/// Temporary keys are refreshed once less than this much time remains
/// before they expire; the terraform provider uses the same 600 s.
pub const REFRESH_MARGIN: TimeDelta = TimeDelta::minutes(10);

/// After a failed refresh, or a refresh that brought back the same
/// not-yet-rotated key, the cached key is used for this long before the
/// metadata service is asked again.
pub const REFRESH_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// The largest metadata answer or credential file that is read.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Temporary or permanent keys, ready for signing.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The access key (AK).
    pub access_key: Secret,
    /// The secret key (SK).
    pub secret_key: Secret,
    /// The security token that accompanies temporary keys.
    pub security_token: Option<Secret>,
    /// When temporary keys stop working; `None` for permanent keys.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Credentials {
    /// True when both hold the same keys and token, whatever their expiry.
    fn same_keys(&self, other: &Credentials) -> bool {
        self.access_key == other.access_key
            && self.secret_key == other.secret_key
            && self.security_token == other.security_token
    }

    /// True while the keys still work at `now`.
    fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expires_at| now < expires_at)
    }

    /// True while the keys need no refresh at `now`.
    fn is_fresh_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .is_none_or(|expires_at| now + REFRESH_MARGIN < expires_at)
    }
}

/// Where credentials are taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Environment, then systemd credential files, then the profile file,
    /// then instance metadata.
    Auto,
    /// `HUAWEICLOUD_SDK_*` or `HW_*` environment variables.
    Env,
    /// Files, by default those of systemd's `$CREDENTIALS_DIRECTORY`.
    Files,
    /// The INI profile file of the official SDKs.
    Profile,
    /// Temporary keys from the instance metadata service.
    Metadata,
}

impl Source {
    /// Every source, in the order of the documentation.
    pub const ALL: [Source; 5] = [
        Source::Auto,
        Source::Env,
        Source::Profile,
        Source::Files,
        Source::Metadata,
    ];

    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Auto => "auto",
            Source::Env => "env",
            Source::Profile => "profile",
            Source::Files => "files",
            Source::Metadata => "metadata",
        }
    }
}

/// How to find credentials.
#[derive(Clone, Debug)]
pub struct CredentialsConfig {
    /// Which source to use.
    pub source: Source,
    /// The access key file; by default `$CREDENTIALS_DIRECTORY/access_key`.
    pub access_key_file: Option<PathBuf>,
    /// The secret key file; by default `$CREDENTIALS_DIRECTORY/secret_key`.
    pub secret_key_file: Option<PathBuf>,
    /// The security token file; by default
    /// `$CREDENTIALS_DIRECTORY/security_token` when that file exists.
    pub security_token_file: Option<PathBuf>,
    /// The base URL of the instance metadata service.
    pub metadata_url: String,
    /// The timeout of each call to the metadata service.
    pub metadata_timeout: Duration,
}

impl Default for CredentialsConfig {
    fn default() -> CredentialsConfig {
        CredentialsConfig {
            source: Source::Auto,
            access_key_file: None,
            secret_key_file: None,
            security_token_file: None,
            metadata_url: DEFAULT_METADATA_URL.to_string(),
            metadata_timeout: DEFAULT_METADATA_TIMEOUT,
        }
    }
}

/// Which source the chain settled on (for check-config and logs; no
/// secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Environment variables; `names` is `"HUAWEICLOUD_SDK_*"` or `"HW_*"`.
    Env { names: &'static str },
    /// Credential files.
    Files {
        access_key: PathBuf,
        secret_key: PathBuf,
    },
    /// The INI profile file.
    Profile { path: PathBuf },
    /// The instance metadata service.
    Metadata { url: String },
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::Env { names } => write!(f, "environment variables {names}"),
            Resolved::Files {
                access_key,
                secret_key,
            } => write!(
                f,
                "credential files {} and {}",
                access_key.display(),
                secret_key.display()
            ),
            Resolved::Profile { path } => write!(f, "profile file {}", path.display()),
            Resolved::Metadata { url } => write!(f, "instance metadata at {url}"),
        }
    }
}

/// Why no credentials could be had. Messages name the place (a variable, a
/// path, a URL), never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The automatic chain found nothing; `tried` lists every step.
    #[error("no credentials found; tried {tried}")]
    NotFound { tried: String },
    /// A set of environment variables is incomplete.
    #[error("environment variable {name} is not set, but the rest of its set is")]
    MissingVariable { name: &'static str },
    /// A source lacks a part it needs.
    #[error("incomplete credentials: {what}")]
    Incomplete { what: String },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A credential file is empty.
    #[error("credential file {} is empty", path.display())]
    Empty { path: PathBuf },
    /// The profile file is malformed or lacks a key.
    #[error("profile file {}{}: {message}", path.display(), line_suffix(*line))]
    Profile {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// The metadata service says the instance has no agency attached.
    #[error(
        "instance metadata has no credentials: no agency is attached to this instance \
         (\"Please configure Cloud Service Agency first\")"
    )]
    NoAgency,
    /// The metadata service could not be reached or gave a bad answer.
    #[error("instance metadata at {url}: {message}")]
    Metadata { url: String, message: String },
    /// The only keys at hand have expired.
    #[error("the temporary credentials expired at {expires_at}")]
    Expired { expires_at: DateTime<Utc> },
}

/// The `:LINE` part of a profile error, when there is a line.
fn line_suffix(line: Option<usize>) -> String {
    line.map(|line| format!(":{line}")).unwrap_or_default()
}

impl CredentialError {
    /// A copy for the callers that shared a failed refresh; `std::io::Error`
    /// is not `Clone`, so it is rebuilt from its kind and message.
    fn duplicate(&self) -> CredentialError {
        match self {
            CredentialError::NotFound { tried } => CredentialError::NotFound {
                tried: tried.clone(),
            },
            CredentialError::MissingVariable { name } => CredentialError::MissingVariable { name },
            CredentialError::Incomplete { what } => {
                CredentialError::Incomplete { what: what.clone() }
            }
            CredentialError::Io { path, source } => CredentialError::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            CredentialError::Empty { path } => CredentialError::Empty { path: path.clone() },
            CredentialError::Profile {
                path,
                line,
                message,
            } => CredentialError::Profile {
                path: path.clone(),
                line: *line,
                message: message.clone(),
            },
            CredentialError::NoAgency => CredentialError::NoAgency,
            CredentialError::Metadata { url, message } => CredentialError::Metadata {
                url: url.clone(),
                message: message.clone(),
            },
            CredentialError::Expired { expires_at } => CredentialError::Expired {
                expires_at: *expires_at,
            },
        }
    }
}

/// A source that was read once and is re-read on reload.
#[derive(Debug)]
enum StaticOrigin {
    Env(&'static EnvNames),
    Files(FilePaths),
    Profile(PathBuf),
}

impl StaticOrigin {
    /// Reads the credentials of this source again.
    fn read(
        &self,
        env: &Environment,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, CredentialError> {
        match self {
            StaticOrigin::Env(names) => match read_env_set(env, names)? {
                Some(credentials) => Ok(credentials),
                None => Err(CredentialError::MissingVariable {
                    name: names.access_key,
                }),
            },
            StaticOrigin::Files(paths) => read_files(paths, warnings),
            StaticOrigin::Profile(path) => {
                profile_credentials(&read_profile(path, warnings)?, path)
            }
        }
    }
}

/// The outcome of resolving a source without network I/O.
enum Settled {
    Static(StaticOrigin, Credentials, Resolved),
    Metadata { tried: Option<String> },
}

/// Tries the sources in the order of the automatic chain.
fn settle_auto(
    config: &CredentialsConfig,
    env: &Environment,
    warnings: &mut Vec<String>,
) -> Result<Settled, CredentialError> {
    let mut tried = Vec::new();
    if let Some((credentials, names)) = read_env(env)? {
        return Ok(settle_env(credentials, names));
    }
    tried.push(format!(
        "environment ({} and {} unset)",
        SDK_NAMES.access_key, HW_NAMES.access_key
    ));
    match file_paths(config, env)? {
        Some(paths) if files_present(config, &paths) => return settle_files(paths, warnings),
        Some(paths) => tried.push(format!(
            "credential files ({} absent)",
            paths.access_key.display()
        )),
        None => tried.push(format!(
            "credential files ({CREDENTIALS_DIRECTORY_VARIABLE} unset)"
        )),
    }
    match default_profile_path(env) {
        Some((path, explicit)) if explicit || path.exists() => {
            return settle_profile(path, warnings);
        }
        Some((path, _)) => tried.push(format!("profile file ({} absent)", path.display())),
        None => tried.push(format!(
            "profile file ({PROFILE_FILE_VARIABLE} and HOME unset)"
        )),
    }
    Ok(Settled::Metadata {
        tried: Some(tried.join(", ")),
    })
}

/// The environment step, settled.
fn settle_env(credentials: Credentials, names: &'static EnvNames) -> Settled {
    let resolved = Resolved::Env { names: names.label };
    Settled::Static(StaticOrigin::Env(names), credentials, resolved)
}

/// The files step, settled.
fn settle_files(paths: FilePaths, warnings: &mut Vec<String>) -> Result<Settled, CredentialError> {
    let credentials = read_files(&paths, warnings)?;
    let resolved = Resolved::Files {
        access_key: paths.access_key.clone(),
        secret_key: paths.secret_key.clone(),
    };
    Ok(Settled::Static(
        StaticOrigin::Files(paths),
        credentials,
        resolved,
    ))
}

/// The profile step, settled.
fn settle_profile(path: PathBuf, warnings: &mut Vec<String>) -> Result<Settled, CredentialError> {
    let credentials = profile_credentials(&read_profile(&path, warnings)?, &path)?;
    let resolved = Resolved::Profile { path: path.clone() };
    Ok(Settled::Static(
        StaticOrigin::Profile(path),
        credentials,
        resolved,
    ))
}

/// Resolves the configured source without network I/O.
fn settle(
    config: &CredentialsConfig,
    env: &Environment,
    warnings: &mut Vec<String>,
) -> Result<Settled, CredentialError> {
    match config.source {
        Source::Auto => settle_auto(config, env, warnings),
        Source::Env => match read_env(env)? {
            Some((credentials, names)) => Ok(settle_env(credentials, names)),
            None => Err(CredentialError::NotFound {
                tried: format!(
                    "environment ({} and {} unset)",
                    SDK_NAMES.access_key, HW_NAMES.access_key
                ),
            }),
        },
        Source::Files => match file_paths(config, env)? {
            Some(paths) => settle_files(paths, warnings),
            None => Err(CredentialError::Incomplete {
                what: format!(
                    "the files source needs access_key_file and secret_key_file, or {CREDENTIALS_DIRECTORY_VARIABLE}"
                ),
            }),
        },
        Source::Profile => match default_profile_path(env) {
            Some((path, _)) => settle_profile(path, warnings),
            None => Err(CredentialError::Incomplete {
                what: format!("the profile source needs {PROFILE_FILE_VARIABLE} or HOME"),
            }),
        },
        Source::Metadata => Ok(Settled::Metadata { tried: None }),
    }
}

/// Where the keys come from.
#[derive(Debug)]
enum Kind {
    Static {
        origin: StaticOrigin,
        current: RwLock<Arc<Credentials>>,
    },
    Metadata(MetadataSource),
}

/// The shared state of a provider.
#[derive(Debug)]
struct Inner {
    resolved: Resolved,
    generation: AtomicU64,
    kind: Kind,
}

/// Hands out the credentials in use; cheap to clone, shared by all pollers.
#[derive(Clone)]
pub struct CredentialProvider {
    inner: Arc<Inner>,
}

impl fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProvider")
            .field("resolved", &self.inner.resolved)
            .field("generation", &self.generation())
            .finish()
    }
}

/// Reads a lock even if a panicking holder poisoned it; the value is a
/// whole `Arc` swapped in one assignment, so it cannot be half-written.
fn read_lock<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// Replaces the value behind a lock, poisoned or not.
fn write_lock<T>(lock: &RwLock<T>, value: T) {
    *lock
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = value;
}

impl CredentialProvider {
    /// Resolves the source without any network I/O (env, files, profile are
    /// read now; metadata is only chosen). Returns warnings too (e.g. a
    /// credential file readable by group or others) so the caller can log
    /// them.
    pub fn new(
        config: &CredentialsConfig,
        env: &Environment,
    ) -> Result<(CredentialProvider, Vec<String>), CredentialError> {
        let mut warnings = Vec::new();
        let (kind, resolved) = match settle(config, env, &mut warnings)? {
            Settled::Static(origin, credentials, resolved) => (
                Kind::Static {
                    origin,
                    current: RwLock::new(Arc::new(credentials)),
                },
                resolved,
            ),
            Settled::Metadata { tried } => {
                let source = MetadataSource::new(config, tried)?;
                let resolved = Resolved::Metadata {
                    url: source.url().to_string(),
                };
                (Kind::Metadata(source), resolved)
            }
        };
        let inner = Inner {
            resolved,
            generation: AtomicU64::new(0),
            kind,
        };
        Ok((
            CredentialProvider {
                inner: Arc::new(inner),
            },
            warnings,
        ))
    }

    /// The source the chain settled on.
    pub fn resolved(&self) -> &Resolved {
        &self.inner.resolved
    }

    /// The current credentials. Static sources: the loaded value. Metadata:
    /// cached, fetched when missing or when less than [`REFRESH_MARGIN`]
    /// remains; concurrent callers share one fetch, and an expired key is
    /// never handed out. A failed refresh while the cached key is still
    /// valid is logged and the cached key returned.
    pub async fn get(&self) -> Result<Arc<Credentials>, CredentialError> {
        match &self.inner.kind {
            Kind::Static { current, .. } => Ok(read_lock(current)),
            Kind::Metadata(source) => source.get(&self.inner.generation).await,
        }
    }

    /// Re-reads the files, profile or environment snapshot the provider was
    /// built from (SIGHUP). Returns true when the keys changed. The source
    /// itself stays the one chosen by [`CredentialProvider::new`]; on error
    /// the keys in use stay as they were. Warnings (a file others may read)
    /// are added to `warnings`, for the caller to announce. Instance
    /// metadata has nothing to re-read and returns false.
    pub fn reload(
        &self,
        env: &Environment,
        warnings: &mut Vec<String>,
    ) -> Result<bool, CredentialError> {
        let Kind::Static { origin, current } = &self.inner.kind else {
            return Ok(false);
        };
        let fresh = origin.read(env, warnings)?;
        if read_lock(current).same_keys(&fresh) {
            return Ok(false);
        }
        write_lock(current, Arc::new(fresh));
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Increments each time the credentials in use change (reload with new
    /// keys, metadata fetch or rotation), so the scheduler can end an
    /// authentication pause early.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
}

/// Project id discovery without the config file: `HUAWEICLOUD_SDK_PROJECT_ID`,
/// `HW_PROJECT_ID`, then `project_id` of the profile file (`profile_path`,
/// or the one the environment points at). An unreadable profile gives
/// `None`.
pub fn project_id_from_environment(
    env: &Environment,
    profile_path: Option<&Path>,
) -> Option<String> {
    for names in [&SDK_NAMES, &HW_NAMES] {
        if let Some(project_id) = env.non_empty(names.project_id) {
            return Some(project_id.to_string());
        }
    }
    let path = match profile_path {
        Some(path) => path.to_path_buf(),
        None => default_profile_path(env)?.0,
    };
    let mut text = std::fs::read_to_string(&path).ok()?;
    let profile = parse_profile(&text, &path);
    text.zeroize();
    match profile {
        Ok(profile) => profile.project_id,
        Err(error) => {
            tracing::debug!(error = %error, "no project id from the profile file");
            None
        }
    }
}

/// The project id from instance metadata,
/// `GET {metadata_url}/openstack/latest/meta_data.json` → `project_id`, with
/// the same token flow and timeout as the keys.
pub async fn project_id_from_metadata(
    config: &CredentialsConfig,
) -> Result<String, CredentialError> {
    let client = MetadataClient::new(config)?;
    client.project_id().await.map_err(|failure| failure.error)
}
