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

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::huaweicloud::secret::Secret;

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

/// The lifetime asked for the metadata session token, in seconds.
const METADATA_TOKEN_TTL_SECONDS: &str = "21600";

/// The header that asks for a metadata session token.
const METADATA_TOKEN_TTL_HEADER: &str = "X-Metadata-Token-Ttl-Seconds";

/// The header that carries the metadata session token.
const METADATA_TOKEN_HEADER: &str = "X-Metadata-Token";

/// The phrase of the 401 answer given when the instance has no agency.
const NO_AGENCY_MARKER: &str = "Please configure Cloud Service Agency first";

/// The largest metadata answer or credential file that is read.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of an error answer's body is quoted in an error message.
const ERROR_EXCERPT_CHARS: usize = 200;

/// The environment variable that names the profile file.
const PROFILE_FILE_VARIABLE: &str = "HUAWEICLOUD_SDK_CREDENTIALS_FILE";

/// The environment variable systemd sets for `LoadCredential=`.
const CREDENTIALS_DIRECTORY_VARIABLE: &str = "CREDENTIALS_DIRECTORY";

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

/// A snapshot of the environment variables the chain reads; tests build one
/// from a map.
///
/// `Debug` prints the variable names only, never their values.
#[derive(Clone, Default)]
pub struct Environment {
    variables: BTreeMap<String, String>,
}

impl Environment {
    /// Takes a snapshot of the process environment; variables whose name or
    /// value is not valid UTF-8 are left out.
    pub fn from_process() -> Environment {
        let variables = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Environment { variables }
    }

    /// Builds a snapshot from name and value pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Environment
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let variables = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Environment { variables }
    }

    /// The value of a variable, as it was when the snapshot was taken.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// The value of a variable, treating an empty value as unset, the way
    /// the official SDKs do.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.is_empty())
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("names", &self.variables.keys().collect::<Vec<_>>())
            .finish()
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

/// One set of environment variable names.
#[derive(Debug)]
struct EnvNames {
    label: &'static str,
    access_key: &'static str,
    secret_key: &'static str,
    security_token: &'static str,
    project_id: &'static str,
}

/// The names of the official SDKs; they win over the terraform names.
const SDK_NAMES: EnvNames = EnvNames {
    label: "HUAWEICLOUD_SDK_*",
    access_key: "HUAWEICLOUD_SDK_AK",
    secret_key: "HUAWEICLOUD_SDK_SK",
    security_token: "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    project_id: "HUAWEICLOUD_SDK_PROJECT_ID",
};

/// The names of the terraform provider.
const HW_NAMES: EnvNames = EnvNames {
    label: "HW_*",
    access_key: "HW_ACCESS_KEY",
    secret_key: "HW_SECRET_KEY",
    security_token: "HW_SECURITY_TOKEN",
    project_id: "HW_PROJECT_ID",
};

/// Reads one set of variables: `None` when none of it is set, an error
/// naming the missing variable when it is set only in part.
fn read_env_set(
    env: &Environment,
    names: &'static EnvNames,
) -> Result<Option<Credentials>, CredentialError> {
    let access_key = env.non_empty(names.access_key);
    let secret_key = env.non_empty(names.secret_key);
    let security_token = env.non_empty(names.security_token);
    match (access_key, secret_key) {
        (Some(access_key), Some(secret_key)) => Ok(Some(Credentials {
            access_key: Secret::new(access_key),
            secret_key: Secret::new(secret_key),
            security_token: security_token.map(Secret::new),
            expires_at: None,
        })),
        (Some(_), None) => Err(CredentialError::MissingVariable {
            name: names.secret_key,
        }),
        (None, Some(_)) => Err(CredentialError::MissingVariable {
            name: names.access_key,
        }),
        (None, None) if security_token.is_some() => Err(CredentialError::MissingVariable {
            name: names.access_key,
        }),
        (None, None) => Ok(None),
    }
}

/// The environment step: the SDK names first, then the terraform names.
fn read_env(
    env: &Environment,
) -> Result<Option<(Credentials, &'static EnvNames)>, CredentialError> {
    for names in [&SDK_NAMES, &HW_NAMES] {
        if let Some(credentials) = read_env_set(env, names)? {
            return Ok(Some((credentials, names)));
        }
    }
    Ok(None)
}

/// The files of the files source, as decided when the provider was built.
#[derive(Clone, Debug)]
struct FilePaths {
    access_key: PathBuf,
    secret_key: PathBuf,
    /// The token file and whether it must exist (configured explicitly)
    /// rather than being used only when present (the systemd default).
    security_token: Option<(PathBuf, bool)>,
}

/// Works out the file paths from the configuration and
/// `$CREDENTIALS_DIRECTORY`; `None` when neither gives any path.
fn file_paths(
    config: &CredentialsConfig,
    env: &Environment,
) -> Result<Option<FilePaths>, CredentialError> {
    let directory = env
        .non_empty(CREDENTIALS_DIRECTORY_VARIABLE)
        .map(PathBuf::from);
    let explicit = config.access_key_file.is_some()
        || config.secret_key_file.is_some()
        || config.security_token_file.is_some();
    if directory.is_none() && !explicit {
        return Ok(None);
    }
    let pick = |configured: &Option<PathBuf>, name: &str, key: &str| {
        configured
            .clone()
            .or_else(|| directory.as_ref().map(|directory| directory.join(name)))
            .ok_or_else(|| CredentialError::Incomplete {
                what: format!(
                    "{key} is not configured and {CREDENTIALS_DIRECTORY_VARIABLE} is not set"
                ),
            })
    };
    let access_key = pick(&config.access_key_file, "access_key", "access_key_file")?;
    let secret_key = pick(&config.secret_key_file, "secret_key", "secret_key_file")?;
    let security_token = match (&config.security_token_file, &directory) {
        (Some(path), _) => Some((path.clone(), true)),
        (None, Some(directory)) => Some((directory.join("security_token"), false)),
        (None, None) => None,
    };
    Ok(Some(FilePaths {
        access_key,
        secret_key,
        security_token,
    }))
}

/// True when the files source has something to offer in the automatic
/// chain: an explicitly configured path, or a default file that exists.
fn files_present(config: &CredentialsConfig, paths: &FilePaths) -> bool {
    config.access_key_file.is_some()
        || config.secret_key_file.is_some()
        || paths.access_key.exists()
        || paths.secret_key.exists()
}

/// Reads at most [`MAX_BODY_BYTES`] of a UTF-8 file, warning when group or
/// others may read it.
fn read_private_file(path: &Path, warnings: &mut Vec<String>) -> Result<String, CredentialError> {
    let io_error = |source| CredentialError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{} is accessible to group or others (mode {:04o}); restrict it to its owner (chmod 600)",
                path.display(),
                mode & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (&metadata, &warnings);
    let mut contents = String::new();
    file.take(MAX_BODY_BYTES as u64 + 1)
        .read_to_string(&mut contents)
        .map_err(io_error)?;
    if contents.len() > MAX_BODY_BYTES {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 64 KiB",
        )));
    }
    Ok(contents)
}

/// Reads one credential file: trimmed, and an error when empty.
fn read_key_file(path: &Path, warnings: &mut Vec<String>) -> Result<Secret, CredentialError> {
    let contents = read_private_file(path, warnings)?;
    let value = contents.trim();
    if value.is_empty() {
        return Err(CredentialError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(value))
}

/// Reads the credentials of the files source.
fn read_files(
    paths: &FilePaths,
    warnings: &mut Vec<String>,
) -> Result<Credentials, CredentialError> {
    let access_key = read_key_file(&paths.access_key, warnings)?;
    let secret_key = read_key_file(&paths.secret_key, warnings)?;
    let security_token = match &paths.security_token {
        Some((path, true)) => Some(read_key_file(path, warnings)?),
        Some((path, false)) if path.exists() => Some(read_key_file(path, warnings)?),
        Some((_, false)) | None => None,
    };
    Ok(Credentials {
        access_key,
        secret_key,
        security_token,
        expires_at: None,
    })
}

/// The `[basic]` section of a profile file.
#[derive(Debug, Default)]
struct Profile {
    access_key: Option<String>,
    secret_key: Option<String>,
    security_token: Option<String>,
    project_id: Option<String>,
}

/// Parses the INI profile file of the official SDKs: `[section]` headers,
/// `key = value` (or `key: value`) lines, `#` and `;` comments, also inline
/// after whitespace. Keys and the section name are case-insensitive; only
/// `[basic]` is read. Messages never quote a line, which may hold a secret.
fn parse_profile(text: &str, path: &Path) -> Result<Profile, CredentialError> {
    let mut profile = Profile::default();
    let mut in_basic = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let error = |message: &str| CredentialError::Profile {
            path: path.to_path_buf(),
            line: Some(index + 1),
            message: message.to_string(),
        };
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(error("a section header lacks its closing `]`"));
            };
            in_basic = name.trim().eq_ignore_ascii_case("basic");
            continue;
        }
        let Some(separator) = line.find(['=', ':']) else {
            return Err(error("expected `key = value`"));
        };
        let key = line[..separator].trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(error("a line has a value but no key"));
        }
        if !in_basic {
            continue;
        }
        let value = strip_quotes(strip_inline_comment(line[separator + 1..].trim()));
        let value = (!value.is_empty()).then(|| value.to_string());
        match key.as_str() {
            "ak" => profile.access_key = value,
            "sk" => profile.secret_key = value,
            "security_token" => profile.security_token = value,
            "project_id" => profile.project_id = value,
            _ => {}
        }
    }
    Ok(profile)
}

/// Cuts a `#` or `;` comment that follows whitespace.
fn strip_inline_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if (*byte == b'#' || *byte == b';') && index > 0 && bytes[index - 1].is_ascii_whitespace() {
            return value[..index].trim_end();
        }
    }
    value
}

/// Removes one pair of matching surrounding quotes.
fn strip_quotes(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Reads and parses a profile file.
fn read_profile(path: &Path, warnings: &mut Vec<String>) -> Result<Profile, CredentialError> {
    let text = read_private_file(path, warnings)?;
    parse_profile(&text, path)
}

/// The credentials of a parsed profile; an error naming the path when `ak`
/// or `sk` is missing.
fn profile_credentials(profile: &Profile, path: &Path) -> Result<Credentials, CredentialError> {
    let missing = |message: &str| CredentialError::Profile {
        path: path.to_path_buf(),
        line: None,
        message: message.to_string(),
    };
    let Some(access_key) = &profile.access_key else {
        return Err(missing("section [basic] has no `ak`"));
    };
    let Some(secret_key) = &profile.secret_key else {
        return Err(missing("section [basic] has `ak` but no `sk`"));
    };
    Ok(Credentials {
        access_key: Secret::new(access_key.as_str()),
        secret_key: Secret::new(secret_key.as_str()),
        security_token: profile.security_token.as_deref().map(Secret::new),
        expires_at: None,
    })
}

/// Where the profile file is, and whether it was named explicitly by
/// `HUAWEICLOUD_SDK_CREDENTIALS_FILE` (rather than being the default under
/// `$HOME`); `None` when neither variable is set.
fn default_profile_path(env: &Environment) -> Option<(PathBuf, bool)> {
    if let Some(path) = env.non_empty(PROFILE_FILE_VARIABLE) {
        return Some((PathBuf::from(path), true));
    }
    env.non_empty("HOME").map(|home| {
        (
            Path::new(home).join(".huaweicloud").join("credentials"),
            false,
        )
    })
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

/// A metadata failure, and whether the service could not be reached at all
/// (which, at the end of the automatic chain, means "nothing found").
struct MetadataFailure {
    error: CredentialError,
    unreachable: bool,
}

impl From<CredentialError> for MetadataFailure {
    fn from(error: CredentialError) -> MetadataFailure {
        MetadataFailure {
            error,
            unreachable: false,
        }
    }
}

/// The HTTP side of the metadata service.
#[derive(Debug)]
struct MetadataClient {
    http: reqwest::Client,
    base: String,
}

impl MetadataClient {
    /// A dedicated client: no proxy, `timeout` on each call.
    fn new(config: &CredentialsConfig) -> Result<MetadataClient, CredentialError> {
        let base = config.metadata_url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.metadata_timeout)
            .connect_timeout(config.metadata_timeout)
            .build()
            .map_err(|error| CredentialError::Metadata {
                url: base.clone(),
                message: format!("cannot build the HTTP client: {}", error_chain(&error)),
            })?;
        Ok(MetadataClient { http, base })
    }

    /// An error about `path` of this service.
    fn error(&self, path: &str, message: String) -> CredentialError {
        CredentialError::Metadata {
            url: format!("{}{path}", self.base),
            message,
        }
    }

    /// Asks for a session token; `None` when the service does not use them.
    async fn token(&self) -> Result<Option<Secret>, MetadataFailure> {
        let path = "/meta-data/latest/api/token";
        let request = self
            .http
            .put(format!("{}{path}", self.base))
            .header(METADATA_TOKEN_TTL_HEADER, METADATA_TOKEN_TTL_SECONDS);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) if error.is_connect() || error.is_timeout() => {
                return Err(MetadataFailure {
                    error: self.error(path, error_chain(&error)),
                    unreachable: true,
                });
            }
            Err(error) => {
                tracing::debug!(error = %error_chain(&error), "metadata token request failed; going on without a token");
                return Ok(None);
            }
        };
        let status = response.status();
        if matches!(status.as_u16(), 404 | 405 | 503) {
            return Ok(None);
        }
        let body = read_capped(response, &self.base, path).await?;
        if !status.is_success() {
            return Err(self.error(path, answered(status, &body)).into());
        }
        let token = String::from_utf8_lossy(&body).trim().to_string();
        Ok((!token.is_empty()).then(|| Secret::new(token)))
    }

    /// GETs `path` with the session token when there is one.
    async fn get(
        &self,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), MetadataFailure> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(METADATA_TOKEN_HEADER, token.expose());
        }
        let response = request.send().await.map_err(|error| MetadataFailure {
            unreachable: error.is_connect() || error.is_timeout(),
            error: self.error(path, error_chain(&error)),
        })?;
        let status = response.status();
        let body = read_capped(response, &self.base, path).await?;
        Ok((status, body))
    }

    /// GETs a JSON document, with the token flow; a 401 about the agency
    /// becomes [`CredentialError::NoAgency`].
    async fn get_json(&self, path: &str) -> Result<serde_json::Value, MetadataFailure> {
        let token = self.token().await?;
        let (status, body) = self.get(path, token.as_ref()).await?;
        if status == reqwest::StatusCode::UNAUTHORIZED
            && String::from_utf8_lossy(&body).contains(NO_AGENCY_MARKER)
        {
            return Err(CredentialError::NoAgency.into());
        }
        if !status.is_success() {
            return Err(self.error(path, answered(status, &body)).into());
        }
        // The body of a successful answer may hold keys: the message gives
        // the position of a syntax error, never the text.
        serde_json::from_slice(&body).map_err(|error| {
            self.error(
                path,
                format!(
                    "the answer is not JSON (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            )
            .into()
        })
    }

    /// Fetches temporary keys from `/openstack/latest/securitykey`.
    async fn security_key(&self) -> Result<Credentials, MetadataFailure> {
        let path = "/openstack/latest/securitykey";
        let document = self.get_json(path).await?;
        parse_security_key(&document).map_err(|message| self.error(path, message).into())
    }

    /// Fetches the project id from `/openstack/latest/meta_data.json`.
    async fn project_id(&self) -> Result<String, MetadataFailure> {
        let path = "/openstack/latest/meta_data.json";
        let document = self.get_json(path).await?;
        document
            .get("project_id")
            .and_then(serde_json::Value::as_str)
            .filter(|project_id| !project_id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                self.error(path, "the answer has no `project_id`".to_string())
                    .into()
            })
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of an answer.
async fn read_capped(
    mut response: reqwest::Response,
    base: &str,
    path: &str,
) -> Result<Vec<u8>, CredentialError> {
    let error = |message: String| CredentialError::Metadata {
        url: format!("{base}{path}"),
        message,
    };
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|failure| {
        error(format!(
            "reading the answer failed: {}",
            error_chain(&failure)
        ))
    })? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(error("the answer is larger than 64 KiB".to_string()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// "answered HTTP 500: <start of the body>", for an error answer (which
/// holds no keys).
fn answered(status: reqwest::StatusCode, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(ERROR_EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        format!("answered HTTP {}", status.as_u16())
    } else {
        format!("answered HTTP {}: {text}", status.as_u16())
    }
}

/// An error and its causes, joined by ": ".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads `{"credential":{"access","secret","securitytoken","expires_at"}}`.
/// The message of an error names the field, never its value.
fn parse_security_key(document: &serde_json::Value) -> Result<Credentials, String> {
    let Some(credential) = document.get("credential") else {
        return Err("the answer has no `credential` object".to_string());
    };
    let field = |name: &str| {
        credential
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let access = field("access").ok_or("the answer has no `credential.access`")?;
    let secret = field("secret").ok_or("the answer has no `credential.secret`")?;
    let expires_at = field("expires_at").ok_or("the answer has no `credential.expires_at`")?;
    let expires_at = parse_timestamp(expires_at)
        .ok_or_else(|| format!("`credential.expires_at` is not a timestamp: {expires_at:?}"))?;
    Ok(Credentials {
        access_key: Secret::new(access),
        secret_key: Secret::new(secret),
        security_token: field("securitytoken").map(Secret::new),
        expires_at: Some(expires_at),
    })
}

/// Parses RFC 3339 (`2022-10-17T18:51:25.231000Z`, any fraction, any
/// offset), and the same without an offset, taken as UTC.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|time| time.and_utc())
}

/// The metadata source: a cache, and the lock that makes a refresh single.
#[derive(Debug)]
struct MetadataSource {
    client: MetadataClient,
    /// The steps the automatic chain tried before settling here.
    tried: Option<String>,
    current: RwLock<Option<Arc<Credentials>>>,
    /// How many refresh attempts have finished, so that callers that waited
    /// for an attempt share its outcome instead of starting another.
    attempts: AtomicU64,
    refresh: tokio::sync::Mutex<RefreshState>,
}

/// What the refresh lock guards.
#[derive(Debug, Default)]
struct RefreshState {
    /// No new attempt before this instant while the cached key is valid.
    retry_after: Option<tokio::time::Instant>,
    /// The failure of the last attempt, shared with those who waited for it.
    last_error: Option<CredentialError>,
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
                let client = MetadataClient::new(config)?;
                let resolved = Resolved::Metadata {
                    url: client.base.clone(),
                };
                let source = MetadataSource {
                    client,
                    tried,
                    current: RwLock::new(None),
                    attempts: AtomicU64::new(0),
                    refresh: tokio::sync::Mutex::new(RefreshState::default()),
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
            Kind::Metadata(source) => self.get_metadata(source).await,
        }
    }

    /// The metadata branch of [`CredentialProvider::get`].
    async fn get_metadata(
        &self,
        source: &MetadataSource,
    ) -> Result<Arc<Credentials>, CredentialError> {
        let now = Utc::now();
        let cached = read_lock(&source.current);
        if let Some(cached) = &cached
            && cached.is_fresh_at(now)
        {
            return Ok(cached.clone());
        }
        let attempts_seen = source.attempts.load(Ordering::Acquire);
        let mut state = match source.refresh.try_lock() {
            Ok(state) => state,
            Err(_) => match cached.filter(|cached| cached.is_valid_at(now)) {
                // Another caller is refreshing and the cached key still
                // works: use it rather than wait for the metadata service.
                Some(valid) => return Ok(valid),
                None => source.refresh.lock().await,
            },
        };
        let now = Utc::now();
        let cached = read_lock(&source.current);
        if let Some(cached) = &cached
            && cached.is_fresh_at(now)
        {
            return Ok(cached.clone());
        }
        let valid = cached.clone().filter(|cached| cached.is_valid_at(now));
        if source.attempts.load(Ordering::Acquire) != attempts_seen {
            // An attempt finished while this caller waited: share its outcome.
            if let Some(valid) = valid {
                return Ok(valid);
            }
            if let Some(error) = &state.last_error {
                return Err(error.duplicate());
            }
        }
        if let Some(valid) = &valid
            && state
                .retry_after
                .is_some_and(|retry_after| tokio::time::Instant::now() < retry_after)
        {
            return Ok(valid.clone());
        }

        let outcome = source.client.security_key().await;
        source.attempts.fetch_add(1, Ordering::AcqRel);
        let now = Utc::now();
        let outcome = match outcome {
            Ok(fresh) => match fresh.expires_at {
                Some(expires_at) if expires_at <= now => {
                    Err(CredentialError::Expired { expires_at })
                }
                _ => Ok(fresh),
            },
            Err(failure) => Err(match (&source.tried, failure.unreachable) {
                (Some(tried), true) => CredentialError::NotFound {
                    tried: format!("{tried}, {}", failure.error),
                },
                _ => failure.error,
            }),
        };
        match outcome {
            Ok(fresh) => {
                let unchanged = cached
                    .as_ref()
                    .is_some_and(|cached| cached.same_keys(&fresh));
                if !unchanged {
                    self.inner.generation.fetch_add(1, Ordering::AcqRel);
                }
                // The service has not rotated the key yet: ask again later,
                // not on every call.
                state.retry_after = (unchanged && !fresh.is_fresh_at(now))
                    .then(|| tokio::time::Instant::now() + REFRESH_RETRY_INTERVAL);
                state.last_error = None;
                let fresh = Arc::new(fresh);
                write_lock(&source.current, Some(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => match valid {
                Some(valid) => {
                    tracing::warn!(
                        error = %error,
                        expires_at = ?valid.expires_at,
                        "refreshing the temporary credentials failed; using the cached ones until they expire"
                    );
                    state.retry_after = Some(tokio::time::Instant::now() + REFRESH_RETRY_INTERVAL);
                    state.last_error = Some(error);
                    Ok(valid)
                }
                None => {
                    state.retry_after = None;
                    state.last_error = Some(error.duplicate());
                    Err(error)
                }
            },
        }
    }

    /// Re-reads the files, profile or environment snapshot the provider was
    /// built from (SIGHUP). Returns true when the keys changed. The source
    /// itself stays the one chosen by [`CredentialProvider::new`]; on error
    /// the keys in use stay as they were. Warnings are logged. Instance
    /// metadata has nothing to re-read and returns false.
    pub fn reload(&self, env: &Environment) -> Result<bool, CredentialError> {
        let Kind::Static { origin, current } = &self.inner.kind else {
            return Ok(false);
        };
        let mut warnings = Vec::new();
        let fresh = origin.read(env, &mut warnings)?;
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
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
    let text = std::fs::read_to_string(&path).ok()?;
    match parse_profile(&text, &path) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, put};

    const AK: &str = "AKSECRETVALUE0001";
    const SK: &str = "SKSECRETVALUE0001";
    const TOKEN: &str = "TOKENSECRETVALUE0001";

    /// Builds an environment snapshot from string pairs.
    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    /// Writes a file with the given mode.
    fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("test file is written");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .expect("test file mode is set");
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    /// A configuration with the given source and a metadata URL that is
    /// never contacted.
    fn config(source: Source) -> CredentialsConfig {
        CredentialsConfig {
            source,
            metadata_url: "http://127.0.0.1:9".to_string(),
            ..CredentialsConfig::default()
        }
    }

    /// Access key, secret key and security token as plain strings.
    type Keys = (String, String, Option<String>);

    /// The keys a provider hands out now, as plain strings.
    fn keys(credentials: &Credentials) -> Keys {
        (
            credentials.access_key.expose().to_string(),
            credentials.secret_key.expose().to_string(),
            credentials
                .security_token
                .as_ref()
                .map(|token| token.expose().to_string()),
        )
    }

    /// Builds a provider and reads its keys, for the static sources.
    fn load(
        config: &CredentialsConfig,
        environment: &Environment,
    ) -> Result<(Resolved, Keys, Vec<String>), CredentialError> {
        let (provider, warnings) = CredentialProvider::new(config, environment)?;
        let Kind::Static { current, .. } = &provider.inner.kind else {
            panic!("expected a static source, got {}", provider.resolved());
        };
        let credentials = read_lock(current);
        Ok((provider.resolved().clone(), keys(&credentials), warnings))
    }

    #[test]
    fn environment_sdk_names_win_over_hw_names() {
        let environment = env(&[
            ("HUAWEICLOUD_SDK_AK", "sdk-ak"),
            ("HUAWEICLOUD_SDK_SK", "sdk-sk"),
            ("HUAWEICLOUD_SDK_SECURITY_TOKEN", "sdk-token"),
            ("HW_ACCESS_KEY", "hw-ak"),
            ("HW_SECRET_KEY", "hw-sk"),
        ]);
        let (resolved, keys, warnings) =
            load(&config(Source::Auto), &environment).expect("env resolves");
        assert_eq!(
            resolved,
            Resolved::Env {
                names: "HUAWEICLOUD_SDK_*"
            }
        );
        assert_eq!(
            keys,
            ("sdk-ak".into(), "sdk-sk".into(), Some("sdk-token".into()))
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn environment_hw_names_are_used_when_sdk_names_are_unset() {
        let environment = env(&[
            ("HUAWEICLOUD_SDK_AK", ""),
            ("HW_ACCESS_KEY", "hw-ak"),
            ("HW_SECRET_KEY", "hw-sk"),
            ("HW_SECURITY_TOKEN", "hw-token"),
        ]);
        let (resolved, keys, _) = load(&config(Source::Env), &environment).expect("env resolves");
        assert_eq!(resolved, Resolved::Env { names: "HW_*" });
        assert_eq!(
            keys,
            ("hw-ak".into(), "hw-sk".into(), Some("hw-token".into()))
        );
        assert_eq!(resolved.to_string(), "environment variables HW_*");
    }

    #[test]
    fn environment_incomplete_set_names_the_missing_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("HUAWEICLOUD_SDK_AK", "a")], "HUAWEICLOUD_SDK_SK"),
            (&[("HUAWEICLOUD_SDK_SK", "s")], "HUAWEICLOUD_SDK_AK"),
            (
                &[("HUAWEICLOUD_SDK_SECURITY_TOKEN", "t")],
                "HUAWEICLOUD_SDK_AK",
            ),
            (&[("HW_ACCESS_KEY", "a")], "HW_SECRET_KEY"),
            // An incomplete SDK set is an error even when the HW set is whole.
            (
                &[
                    ("HUAWEICLOUD_SDK_AK", "a"),
                    ("HW_ACCESS_KEY", "a"),
                    ("HW_SECRET_KEY", "s"),
                ],
                "HUAWEICLOUD_SDK_SK",
            ),
        ];
        for (pairs, expected) in cases {
            for source in [Source::Auto, Source::Env] {
                match CredentialProvider::new(&config(source), &env(pairs)) {
                    Err(CredentialError::MissingVariable { name }) => {
                        assert_eq!(name, *expected, "{pairs:?}")
                    }
                    other => panic!(
                        "{pairs:?}: expected MissingVariable, got {:?}",
                        other.map(|p| p.0)
                    ),
                }
            }
        }
    }

    #[test]
    fn explicit_env_source_without_variables_is_an_error() {
        let result = CredentialProvider::new(&config(Source::Env), &env(&[]));
        match result {
            Err(error @ CredentialError::NotFound { .. }) => {
                assert!(error.to_string().contains("HUAWEICLOUD_SDK_AK"), "{error}");
            }
            other => panic!("expected NotFound, got {:?}", other.map(|p| p.0)),
        }
    }

    #[test]
    fn files_from_credentials_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "access_key", "file-ak\n", 0o600);
        write(dir.path(), "secret_key", "file-sk \n\n", 0o400);
        let environment = env(&[(
            "CREDENTIALS_DIRECTORY",
            dir.path().to_str().expect("utf-8 tempdir"),
        )]);
        for source in [Source::Auto, Source::Files] {
            let (resolved, keys, warnings) =
                load(&config(source), &environment).expect("files resolve");
            assert_eq!(
                resolved,
                Resolved::Files {
                    access_key: dir.path().join("access_key"),
                    secret_key: dir.path().join("secret_key"),
                }
            );
            assert_eq!(keys, ("file-ak".into(), "file-sk".into(), None));
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        write(dir.path(), "security_token", "file-token\n", 0o600);
        let (_, keys, _) = load(&config(Source::Files), &environment).expect("files resolve");
        assert_eq!(keys.2.as_deref(), Some("file-token"));
    }

    #[test]
    fn files_readable_by_others_warn_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "access_key", "file-ak", 0o600);
        let secret = write(dir.path(), "secret_key", "file-sk", 0o644);
        let environment = env(&[(
            "CREDENTIALS_DIRECTORY",
            dir.path().to_str().expect("utf-8 tempdir"),
        )]);
        let (_, _, warnings) = load(&config(Source::Files), &environment).expect("files resolve");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&secret.display().to_string()),
            "{warnings:?}"
        );
        assert!(!warnings[0].contains("file-sk"));
    }

    #[test]
    fn empty_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "access_key", "file-ak", 0o600);
        let secret = write(dir.path(), "secret_key", " \n", 0o600);
        let environment = env(&[(
            "CREDENTIALS_DIRECTORY",
            dir.path().to_str().expect("utf-8 tempdir"),
        )]);
        match CredentialProvider::new(&config(Source::Auto), &environment) {
            Err(CredentialError::Empty { path }) => assert_eq!(path, secret),
            other => panic!("expected Empty, got {:?}", other.map(|p| p.0)),
        }
    }

    #[test]
    fn explicit_file_paths_are_used_and_must_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let access = write(dir.path(), "ak.txt", "explicit-ak", 0o600);
        let secret = write(dir.path(), "sk.txt", "explicit-sk", 0o600);
        let mut explicit = config(Source::Auto);
        explicit.access_key_file = Some(access.clone());
        explicit.secret_key_file = Some(secret.clone());
        let (resolved, keys, _) = load(&explicit, &env(&[])).expect("files resolve");
        assert_eq!(
            resolved,
            Resolved::Files {
                access_key: access,
                secret_key: secret
            }
        );
        assert_eq!(keys, ("explicit-ak".into(), "explicit-sk".into(), None));

        explicit.security_token_file = Some(dir.path().join("missing-token"));
        match CredentialProvider::new(&explicit, &env(&[])) {
            Err(CredentialError::Io { path, .. }) => {
                assert_eq!(path, dir.path().join("missing-token"))
            }
            other => panic!("expected Io, got {:?}", other.map(|p| p.0)),
        }

        let mut half = config(Source::Files);
        half.access_key_file = Some(dir.path().join("ak.txt"));
        match CredentialProvider::new(&half, &env(&[])) {
            Err(error @ CredentialError::Incomplete { .. }) => {
                assert!(error.to_string().contains("secret_key_file"), "{error}");
            }
            other => panic!("expected Incomplete, got {:?}", other.map(|p| p.0)),
        }
    }

    #[test]
    fn profile_parse_reads_basic_section() {
        let text = "\
# a comment
; another comment
[other]
ak = not-this-one
sk = nor-this

[ basic ]
AK = profile-ak   # inline comment
sk: \"profile-sk\"
security_token =
project_id = 0123456789abcdef
unknown = ignored
";
        let profile = parse_profile(text, Path::new("/p")).expect("profile parses");
        assert_eq!(profile.access_key.as_deref(), Some("profile-ak"));
        assert_eq!(profile.secret_key.as_deref(), Some("profile-sk"));
        assert_eq!(profile.security_token, None);
        assert_eq!(profile.project_id.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn profile_errors_name_path_and_line_but_not_values() {
        let path = Path::new("/etc/profile-file");
        let check = |text: &str, line: Option<usize>, message: &str| {
            let result =
                parse_profile(text, path).and_then(|profile| profile_credentials(&profile, path));
            match result {
                Err(error @ CredentialError::Profile { .. }) => {
                    let CredentialError::Profile {
                        path: got,
                        line: got_line,
                        ..
                    } = &error
                    else {
                        unreachable!();
                    };
                    assert_eq!(got, path);
                    assert_eq!(*got_line, line, "{text:?}");
                    let shown = error.to_string();
                    assert!(shown.contains("/etc/profile-file"), "{shown}");
                    assert!(shown.contains(message), "{shown}");
                    assert!(!shown.contains("SECRETVALUE"), "{shown}");
                }
                Err(other) => panic!("{text:?}: expected Profile, got {other}"),
                Ok(_) => panic!("{text:?}: expected an error"),
            }
        };
        check("[basic]\nak = AKSECRETVALUE\n", None, "no `sk`");
        check("[basic]\nsk = SKSECRETVALUE\n", None, "no `ak`");
        check("[other]\nak = a\nsk = s\n", None, "no `ak`");
        check(
            "[basic]\nak = a\nSKSECRETVALUE\n",
            Some(3),
            "expected `key = value`",
        );
        check("[basic\n", Some(1), "closing");
    }

    #[test]
    fn profile_from_environment_variable_and_home() {
        let dir = tempfile::tempdir().expect("tempdir");
        let named = write(
            dir.path(),
            "named",
            "[basic]\nak = named-ak\nsk = named-sk\n",
            0o600,
        );
        let environment = env(&[(
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
            named.to_str().expect("utf-8"),
        )]);
        let (resolved, keys, warnings) =
            load(&config(Source::Profile), &environment).expect("profile resolves");
        assert_eq!(resolved, Resolved::Profile { path: named });
        assert_eq!(keys, ("named-ak".into(), "named-sk".into(), None));
        assert!(warnings.is_empty());

        std::fs::create_dir(dir.path().join(".huaweicloud")).expect("mkdir");
        let home_profile = write(
            &dir.path().join(".huaweicloud"),
            "credentials",
            "[basic]\nak = home-ak\nsk = home-sk\nsecurity_token = home-token\n",
            0o644,
        );
        let environment = env(&[("HOME", dir.path().to_str().expect("utf-8"))]);
        let (resolved, keys, warnings) =
            load(&config(Source::Auto), &environment).expect("profile resolves");
        assert_eq!(
            resolved,
            Resolved::Profile {
                path: home_profile.clone()
            }
        );
        assert_eq!(
            keys,
            (
                "home-ak".into(),
                "home-sk".into(),
                Some("home-token".into())
            )
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains(&home_profile.display().to_string()));
    }

    #[test]
    fn auto_order_is_env_files_profile_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().to_str().expect("utf-8").to_string();
        std::fs::create_dir(dir.path().join(".huaweicloud")).expect("mkdir");
        write(
            &dir.path().join(".huaweicloud"),
            "credentials",
            "[basic]\nak = p-ak\nsk = p-sk\n",
            0o600,
        );
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        write(&creds, "access_key", "f-ak", 0o600);
        write(&creds, "secret_key", "f-sk", 0o600);
        let creds = creds.to_str().expect("utf-8").to_string();
        let empty_dir = dir.path().join("empty");
        std::fs::create_dir(&empty_dir).expect("mkdir");
        let empty_dir = empty_dir.to_str().expect("utf-8").to_string();

        let everything = vec![
            ("HW_ACCESS_KEY", "e-ak"),
            ("HW_SECRET_KEY", "e-sk"),
            ("CREDENTIALS_DIRECTORY", creds.as_str()),
            ("HOME", home.as_str()),
        ];
        let check = |pairs: &[(&str, &str)], expected: &str| {
            let (provider, _) =
                CredentialProvider::new(&config(Source::Auto), &env(pairs)).expect("auto resolves");
            let shown = match provider.resolved() {
                Resolved::Env { .. } => "env",
                Resolved::Files { .. } => "files",
                Resolved::Profile { .. } => "profile",
                Resolved::Metadata { .. } => "metadata",
            };
            assert_eq!(shown, expected, "{pairs:?}");
        };
        check(&everything, "env");
        check(&everything[2..], "files");
        check(
            &[
                ("CREDENTIALS_DIRECTORY", empty_dir.as_str()),
                ("HOME", home.as_str()),
            ],
            "profile",
        );
        check(&everything[3..], "profile");
        check(
            &[
                ("HOME", empty_dir.as_str()),
                ("CREDENTIALS_DIRECTORY", empty_dir.as_str()),
            ],
            "metadata",
        );
        check(&[], "metadata");
    }

    #[test]
    fn explicit_sources_fail_when_unusable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().to_str().expect("utf-8");
        let environment = env(&[("HOME", empty), ("CREDENTIALS_DIRECTORY", empty)]);
        assert!(matches!(
            CredentialProvider::new(&config(Source::Files), &environment),
            Err(CredentialError::Io { .. })
        ));
        assert!(matches!(
            CredentialProvider::new(&config(Source::Files), &env(&[])),
            Err(CredentialError::Incomplete { .. })
        ));
        assert!(matches!(
            CredentialProvider::new(&config(Source::Profile), &environment),
            Err(CredentialError::Io { .. })
        ));
        assert!(matches!(
            CredentialProvider::new(&config(Source::Profile), &env(&[])),
            Err(CredentialError::Incomplete { .. })
        ));
        let (provider, warnings) = CredentialProvider::new(
            &config(Source::Metadata),
            &env(&[("HW_ACCESS_KEY", "a"), ("HW_SECRET_KEY", "s")]),
        )
        .expect("metadata is chosen without I/O");
        assert_eq!(
            provider.resolved(),
            &Resolved::Metadata {
                url: "http://127.0.0.1:9".into()
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn reload_rereads_files_and_bumps_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "access_key", "ak-1", 0o600);
        write(dir.path(), "secret_key", "sk-1", 0o600);
        let environment = env(&[("CREDENTIALS_DIRECTORY", dir.path().to_str().expect("utf-8"))]);
        let (provider, _) =
            CredentialProvider::new(&config(Source::Auto), &environment).expect("files resolve");
        assert_eq!(provider.generation(), 0);
        assert!(!provider.reload(&environment).expect("reload works"));
        assert_eq!(provider.generation(), 0);

        write(dir.path(), "secret_key", "sk-2", 0o600);
        assert!(provider.reload(&environment).expect("reload works"));
        assert_eq!(provider.generation(), 1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let credentials = runtime.block_on(provider.get()).expect("static get");
        assert_eq!(credentials.secret_key.expose(), "sk-2");

        // A failed reload keeps the keys in use.
        write(dir.path(), "secret_key", "", 0o600);
        assert!(matches!(
            provider.reload(&environment),
            Err(CredentialError::Empty { .. })
        ));
        let credentials = runtime.block_on(provider.get()).expect("static get");
        assert_eq!(credentials.secret_key.expose(), "sk-2");
        assert_eq!(provider.generation(), 1);
    }

    #[test]
    fn reload_rereads_the_environment_snapshot() {
        let first = env(&[("HUAWEICLOUD_SDK_AK", "a"), ("HUAWEICLOUD_SDK_SK", "s1")]);
        let (provider, _) =
            CredentialProvider::new(&config(Source::Env), &first).expect("env resolves");
        assert!(!provider.reload(&first).expect("reload works"));
        let second = env(&[("HUAWEICLOUD_SDK_AK", "a"), ("HUAWEICLOUD_SDK_SK", "s2")]);
        assert!(provider.reload(&second).expect("reload works"));
        assert_eq!(provider.generation(), 1);
        assert!(matches!(
            provider.reload(&env(&[])),
            Err(CredentialError::MissingVariable { .. })
        ));
    }

    /// Environment pairs, profile path and the expected project id.
    type ProjectIdCase<'a> = (&'a [(&'a str, &'a str)], Option<&'a Path>, Option<&'a str>);

    #[test]
    fn project_id_from_environment_and_profile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = write(
            dir.path(),
            "p",
            "[basic]\nak=a\nsk=s\nproject_id = from-profile\n",
            0o600,
        );
        let cases: &[ProjectIdCase] = &[
            (
                &[
                    ("HUAWEICLOUD_SDK_PROJECT_ID", "sdk"),
                    ("HW_PROJECT_ID", "hw"),
                ],
                Some(&profile),
                Some("sdk"),
            ),
            (&[("HW_PROJECT_ID", "hw")], Some(&profile), Some("hw")),
            (&[], Some(&profile), Some("from-profile")),
            (&[], None, None),
            (&[], Some(Path::new("/nonexistent/profile")), None),
        ];
        for (pairs, path, expected) in cases {
            assert_eq!(
                project_id_from_environment(&env(pairs), *path).as_deref(),
                *expected,
                "{pairs:?} {path:?}"
            );
        }
        let via_variable = env(&[(
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
            profile.to_str().expect("utf-8"),
        )]);
        assert_eq!(
            project_id_from_environment(&via_variable, None).as_deref(),
            Some("from-profile")
        );
    }

    #[test]
    fn timestamps_in_several_forms() {
        let expected = DateTime::parse_from_rfc3339("2022-10-17T18:51:25.231Z")
            .expect("valid")
            .with_timezone(&Utc);
        for text in [
            "2022-10-17T18:51:25.231000Z",
            "2022-10-17T18:51:25.231Z",
            "2022-10-17T20:51:25.231+02:00",
            "2022-10-17T18:51:25.231000",
            "2022-10-17 18:51:25.231",
        ] {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    /// What the fake metadata service answers and what it saw.
    struct Fake {
        /// The token to hand out; `None` answers the PUT with 404.
        token: Option<String>,
        /// The next securitykey answer: status and body.
        answer: Mutex<(u16, String)>,
        token_puts: AtomicUsize,
        key_gets: AtomicUsize,
        /// The `X-Metadata-Token` of each securitykey GET.
        seen_tokens: Mutex<Vec<Option<String>>>,
        /// The TTL header of each token PUT.
        seen_ttls: Mutex<Vec<Option<String>>>,
        /// When set, each securitykey GET announces itself and waits.
        gate: Option<(tokio::sync::Notify, tokio::sync::Semaphore)>,
    }

    impl Fake {
        fn new(token: Option<&str>) -> Fake {
            Fake {
                token: token.map(str::to_string),
                answer: Mutex::new((500, String::new())),
                token_puts: AtomicUsize::new(0),
                key_gets: AtomicUsize::new(0),
                seen_tokens: Mutex::new(Vec::new()),
                seen_ttls: Mutex::new(Vec::new()),
                gate: None,
            }
        }

        fn serve_key(&self, access: &str, expires_at: DateTime<Utc>) {
            let body = serde_json::json!({
                "credential": {
                    "access": access,
                    "secret": format!("{access}-{SK}"),
                    "securitytoken": TOKEN,
                    "expires_at": expires_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                }
            });
            self.answer_with(200, &body.to_string());
        }

        fn answer_with(&self, status: u16, body: &str) {
            *self.answer.lock().expect("fake lock") = (status, body.to_string());
        }

        fn gets(&self) -> usize {
            self.key_gets.load(Ordering::SeqCst)
        }
    }

    fn header(headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    async fn token_handler(
        State(fake): State<Arc<Fake>>,
        headers: HeaderMap,
    ) -> (StatusCode, String) {
        fake.token_puts.fetch_add(1, Ordering::SeqCst);
        fake.seen_ttls
            .lock()
            .expect("fake lock")
            .push(header(&headers, METADATA_TOKEN_TTL_HEADER));
        match &fake.token {
            Some(token) => (StatusCode::OK, token.clone()),
            None => (StatusCode::NOT_FOUND, "not found".to_string()),
        }
    }

    async fn key_handler(
        State(fake): State<Arc<Fake>>,
        headers: HeaderMap,
    ) -> (StatusCode, String) {
        fake.key_gets.fetch_add(1, Ordering::SeqCst);
        fake.seen_tokens
            .lock()
            .expect("fake lock")
            .push(header(&headers, METADATA_TOKEN_HEADER));
        if let Some((entered, release)) = &fake.gate {
            entered.notify_one();
            let permit = release.acquire().await.expect("gate is open");
            permit.forget();
        }
        let (status, body) = fake.answer.lock().expect("fake lock").clone();
        (StatusCode::from_u16(status).expect("valid status"), body)
    }

    async fn meta_data_handler() -> (StatusCode, String) {
        (
            StatusCode::OK,
            r#"{"project_id":"c0ffee","availability_zone":"az1"}"#.to_string(),
        )
    }

    /// Starts the fake on 127.0.0.1 and returns a metadata configuration
    /// pointing at it.
    async fn start(fake: Arc<Fake>) -> CredentialsConfig {
        let app = axum::Router::new()
            .route("/meta-data/latest/api/token", put(token_handler))
            .route("/openstack/latest/securitykey", get(key_handler))
            .route("/openstack/latest/meta_data.json", get(meta_data_handler))
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        CredentialsConfig {
            source: Source::Metadata,
            metadata_url: format!("http://{address}/"),
            metadata_timeout: Duration::from_secs(30),
            ..CredentialsConfig::default()
        }
    }

    async fn metadata_provider(fake: &Arc<Fake>) -> CredentialProvider {
        let config = start(fake.clone()).await;
        let (provider, warnings) =
            CredentialProvider::new(&config, &env(&[])).expect("metadata chosen");
        assert!(warnings.is_empty());
        assert_eq!(fake.gets(), 0, "new() does no network I/O");
        provider
    }

    #[tokio::test]
    async fn metadata_token_flow() {
        let fake = Arc::new(Fake::new(Some("session-token")));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
        let provider = metadata_provider(&fake).await;
        let credentials = provider.get().await.expect("metadata keys");
        assert_eq!(credentials.access_key.expose(), "ak-1");
        assert_eq!(credentials.secret_key.expose(), format!("ak-1-{SK}"));
        assert_eq!(
            credentials.security_token.as_ref().map(Secret::expose),
            Some(TOKEN)
        );
        assert!(credentials.expires_at.is_some());
        assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
        assert_eq!(
            *fake.seen_ttls.lock().expect("lock"),
            vec![Some("21600".to_string())]
        );
        assert_eq!(
            *fake.seen_tokens.lock().expect("lock"),
            vec![Some("session-token".to_string())]
        );
        assert_eq!(provider.generation(), 1);
    }

    #[tokio::test]
    async fn metadata_without_token_support() {
        let fake = Arc::new(Fake::new(None));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
        let provider = metadata_provider(&fake).await;
        let credentials = provider.get().await.expect("metadata keys");
        assert_eq!(credentials.access_key.expose(), "ak-1");
        assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
        assert_eq!(*fake.seen_tokens.lock().expect("lock"), vec![None]);
    }

    #[tokio::test]
    async fn metadata_refreshes_only_inside_the_margin() {
        let fake = Arc::new(Fake::new(None));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
        let provider = metadata_provider(&fake).await;
        provider.get().await.expect("first get");
        provider.get().await.expect("second get");
        assert_eq!(
            fake.gets(),
            1,
            "a key with an hour left is not fetched again"
        );

        let fake = Arc::new(Fake::new(None));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
        let provider = metadata_provider(&fake).await;
        provider.get().await.expect("first get");
        provider.get().await.expect("second get");
        assert_eq!(fake.gets(), 2, "a key with 5 minutes left is fetched again");
    }

    #[tokio::test]
    async fn metadata_unrotated_key_is_not_fetched_on_every_call() {
        let fake = Arc::new(Fake::new(None));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
        let provider = metadata_provider(&fake).await;
        for _ in 0..5 {
            let credentials = provider.get().await.expect("get");
            assert_eq!(credentials.access_key.expose(), "ak-1");
        }
        // The first fetch, then one that brought back the same key; the
        // rest wait for the retry interval.
        assert_eq!(fake.gets(), 2);
        assert_eq!(provider.generation(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_concurrent_callers_share_one_fetch() {
        let mut fake = Fake::new(Some("t"));
        fake.gate = Some((tokio::sync::Notify::new(), tokio::sync::Semaphore::new(0)));
        let fake = Arc::new(fake);
        fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
        let provider = metadata_provider(&fake).await;
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let provider = provider.clone();
                tokio::spawn(async move { provider.get().await })
            })
            .collect();
        let Some((entered, release)) = &fake.gate else {
            unreachable!();
        };
        // The first fetch is in flight; the other callers pile up behind it.
        entered.notified().await;
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        release.add_permits(1000);
        for task in tasks {
            let credentials = task.await.expect("task").expect("get");
            assert_eq!(credentials.access_key.expose(), "ak-1");
        }
        assert_eq!(fake.gets(), 1);
        assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_valid_key_is_served_while_a_refresh_is_in_flight() {
        let mut fake = Fake::new(None);
        fake.gate = Some((tokio::sync::Notify::new(), tokio::sync::Semaphore::new(0)));
        let fake = Arc::new(fake);
        fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
        let provider = metadata_provider(&fake).await;
        let Some((entered, release)) = &fake.gate else {
            unreachable!();
        };
        let first = tokio::spawn({
            let provider = provider.clone();
            async move { provider.get().await }
        });
        entered.notified().await;
        release.add_permits(1);
        let first = first.await.expect("task").expect("first get");
        assert_eq!(first.access_key.expose(), "ak-1");

        fake.serve_key("ak-2", Utc::now() + TimeDelta::hours(1));
        let refreshing = tokio::spawn({
            let provider = provider.clone();
            async move { provider.get().await }
        });
        entered.notified().await;
        // The refresh holds the lock inside the fake; this caller does not wait.
        let meanwhile = provider.get().await.expect("cached key");
        assert_eq!(meanwhile.access_key.expose(), "ak-1");
        release.add_permits(1);
        let refreshed = refreshing.await.expect("task").expect("refreshed");
        assert_eq!(refreshed.access_key.expose(), "ak-2");
        assert_eq!(fake.gets(), 2);
        assert_eq!(provider.generation(), 2);
    }

    #[tokio::test]
    async fn metadata_without_agency_is_no_agency() {
        let fake = Arc::new(Fake::new(None));
        fake.answer_with(
            401,
            r#"{"error":"Please configure Cloud Service Agency first"}"#,
        );
        let provider = metadata_provider(&fake).await;
        assert!(matches!(
            provider.get().await,
            Err(CredentialError::NoAgency)
        ));

        fake.answer_with(401, "unauthorized");
        match provider.get().await {
            Err(error @ CredentialError::Metadata { .. }) => {
                assert!(error.to_string().contains("401"), "{error}");
            }
            other => panic!("expected Metadata, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn metadata_refresh_failure_keeps_the_valid_cached_key() {
        let fake = Arc::new(Fake::new(None));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
        let provider = metadata_provider(&fake).await;
        provider.get().await.expect("first get");
        fake.answer_with(500, "internal error");
        let credentials = provider.get().await.expect("cached key while still valid");
        assert_eq!(credentials.access_key.expose(), "ak-1");
        assert_eq!(fake.gets(), 2, "the refresh was attempted");
        assert_eq!(provider.generation(), 1);
    }

    #[tokio::test]
    async fn metadata_never_hands_out_an_expired_key() {
        let fake = Arc::new(Fake::new(None));
        fake.serve_key("ak-old", Utc::now() - TimeDelta::minutes(1));
        let provider = metadata_provider(&fake).await;
        assert!(matches!(
            provider.get().await,
            Err(CredentialError::Expired { .. })
        ));
        fake.answer_with(500, "");
        assert!(matches!(
            provider.get().await,
            Err(CredentialError::Metadata { .. })
        ));
        assert_eq!(provider.generation(), 0);
    }

    #[tokio::test]
    async fn metadata_rotation_bumps_generation() {
        let fake = Arc::new(Fake::new(Some("t")));
        fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
        let provider = metadata_provider(&fake).await;
        assert_eq!(provider.generation(), 0);
        provider.get().await.expect("first get");
        assert_eq!(provider.generation(), 1);
        fake.serve_key("ak-2", Utc::now() + TimeDelta::hours(1));
        let credentials = provider.get().await.expect("rotated");
        assert_eq!(credentials.access_key.expose(), "ak-2");
        assert_eq!(provider.generation(), 2);
        provider.get().await.expect("cached");
        assert_eq!(provider.generation(), 2);
        assert!(
            !provider
                .reload(&env(&[]))
                .expect("metadata reload is a no-op")
        );
    }

    #[tokio::test]
    async fn metadata_bad_answers_name_the_url_not_the_body() {
        let fake = Arc::new(Fake::new(None));
        let provider = metadata_provider(&fake).await;
        let secret_body =
            format!(r#"{{"credential":{{"access":"{AK}","secret":"{SK}","expires_at":"soon"}}"#);
        for body in [
            format!("{secret_body}}}"),
            secret_body.clone(),
            format!("{{\"x\":\"{SK}\"}}"),
        ] {
            fake.answer_with(200, &body);
            match provider.get().await {
                Err(error @ CredentialError::Metadata { .. }) => {
                    let shown = error.to_string();
                    assert!(shown.contains("/openstack/latest/securitykey"), "{shown}");
                    assert!(!shown.contains(AK) && !shown.contains(SK), "{shown}");
                }
                other => panic!("expected Metadata, got {other:?}"),
            }
        }
        fake.answer_with(200, &"x".repeat(MAX_BODY_BYTES + 1));
        match provider.get().await {
            Err(error) => assert!(error.to_string().contains("64 KiB"), "{error}"),
            Ok(_) => panic!("an oversized answer must fail"),
        }
    }

    #[tokio::test]
    async fn auto_chain_without_metadata_service_is_not_found() {
        // Port 9 (discard) on 127.0.0.1 refuses connections.
        let (provider, _) =
            CredentialProvider::new(&config(Source::Auto), &env(&[])).expect("auto resolves");
        match provider.get().await {
            Err(error @ CredentialError::NotFound { .. }) => {
                let shown = error.to_string();
                assert!(shown.contains("HUAWEICLOUD_SDK_AK"), "{shown}");
                assert!(shown.contains("CREDENTIALS_DIRECTORY"), "{shown}");
                assert!(shown.contains("127.0.0.1:9"), "{shown}");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn project_id_from_the_metadata_service() {
        let fake = Arc::new(Fake::new(Some("t")));
        let config = start(fake.clone()).await;
        assert_eq!(
            project_id_from_metadata(&config).await.expect("project id"),
            "c0ffee"
        );
        assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn nothing_formatted_shows_a_secret() {
        let secrets = [AK, SK, TOKEN];
        let credentials = Credentials {
            access_key: Secret::new(AK),
            secret_key: Secret::new(SK),
            security_token: Some(Secret::new(TOKEN)),
            expires_at: Some(Utc::now()),
        };
        let environment = env(&[
            ("HUAWEICLOUD_SDK_AK", AK),
            ("HUAWEICLOUD_SDK_SK", SK),
            ("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN),
            ("HW_ACCESS_KEY", AK),
            ("HW_SECRET_KEY", SK),
            ("HW_SECURITY_TOKEN", TOKEN),
        ]);
        let (provider, _) =
            CredentialProvider::new(&config(Source::Auto), &environment).expect("env resolves");
        let errors = [
            CredentialError::NotFound {
                tried: "environment".into(),
            },
            CredentialError::MissingVariable {
                name: "HUAWEICLOUD_SDK_SK",
            },
            CredentialError::Incomplete {
                what: "secret_key_file".into(),
            },
            CredentialError::Io {
                path: "/run/credentials/x/secret_key".into(),
                source: std::io::Error::other("denied"),
            },
            CredentialError::Empty {
                path: "/run/credentials/x/secret_key".into(),
            },
            parse_profile("[basic]\nak = x\nSKSECRETVALUE0001\n", Path::new("/p"))
                .expect_err("a malformed line is an error"),
            CredentialError::NoAgency,
            CredentialError::Metadata {
                url: "http://169.254.169.254".into(),
                message: "answered HTTP 500".into(),
            },
            CredentialError::Expired {
                expires_at: Utc::now(),
            },
        ];
        let mut shown = vec![
            format!("{credentials:?}"),
            format!("{:?}", config(Source::Files)),
            format!("{environment:?}"),
            format!("{environment:#?}"),
            format!("{provider:?}"),
            format!("{:?}", provider.resolved()),
            provider.resolved().to_string(),
        ];
        for error in &errors {
            shown.push(format!("{error:?}"));
            shown.push(error.to_string());
            shown.push(format!("{:?}", error.duplicate()));
        }
        for text in &shown {
            for secret in secrets {
                assert!(!text.contains(secret), "{text} shows a secret");
            }
        }
        assert!(format!("{environment:?}").contains("HUAWEICLOUD_SDK_SK"));
    }
}
