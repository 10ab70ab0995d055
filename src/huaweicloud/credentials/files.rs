//! The files step of the chain: systemd credential files (the
//! `LoadCredential=` directory in `$CREDENTIALS_DIRECTORY`, or paths named
//! in the configuration), and the private-file reader the profile step
//! shares.
//!
//! A file is read whole up to 64 KiB and trimmed; an empty file is an
//! error naming its path. A file that group or others may read still works,
//! but yields a warning naming the path and its mode, for the caller to log.
//! The text read is zeroized once its value is wrapped in a [`Secret`].

use std::io::Read;
use std::path::{Path, PathBuf};

use secrecy::zeroize::Zeroize;

use super::env::Environment;
use super::{CredentialError, Credentials, CredentialsConfig, MAX_BODY_BYTES};
use crate::huaweicloud::secret::Secret;

/// The environment variable systemd sets for `LoadCredential=`.
pub(super) const CREDENTIALS_DIRECTORY_VARIABLE: &str = "CREDENTIALS_DIRECTORY";

/// The files of the files source, as decided when the provider was built.
#[derive(Clone, Debug)]
pub(super) struct FilePaths {
    pub(super) access_key: PathBuf,
    pub(super) secret_key: PathBuf,
    /// The token file and whether it must exist (configured explicitly)
    /// rather than being used only when present (the systemd default).
    pub(super) security_token: Option<(PathBuf, bool)>,
    /// `$CREDENTIALS_DIRECTORY`: files in it are systemd's, which keeps
    /// them readable by the unit's user alone (on systemd 254, mode 0440
    /// with an ACL), so their mode is not worth a warning.
    pub(super) managed: Option<PathBuf>,
}

/// Works out the file paths from the configuration and
/// `$CREDENTIALS_DIRECTORY`; `None` when neither gives any path.
pub(super) fn file_paths(
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
        managed: directory,
    }))
}

/// True when the files source has something to offer in the automatic
/// chain: an explicitly configured path, or a default file that exists.
pub(super) fn files_present(config: &CredentialsConfig, paths: &FilePaths) -> bool {
    config.access_key_file.is_some()
        || config.secret_key_file.is_some()
        || paths.access_key.exists()
        || paths.secret_key.exists()
}

/// Reads at most [`MAX_BODY_BYTES`] of a UTF-8 file, warning when group or
/// others may read it (unless `warnings` is `None`: a file systemd manages).
pub(super) fn read_private_file(
    path: &Path,
    warnings: Option<&mut Vec<String>>,
) -> Result<String, CredentialError> {
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
        if mode & 0o077 != 0
            && let Some(warnings) = warnings
        {
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
        contents.zeroize();
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 64 KiB",
        )));
    }
    Ok(contents)
}

/// Reads one credential file: trimmed, and an error when empty.
fn read_key_file(
    path: &Path,
    managed: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<Secret, CredentialError> {
    let managed = managed.is_some_and(|dir| path.starts_with(dir));
    let warnings = if managed { None } else { Some(warnings) };
    let value = Secret::trimmed(read_private_file(path, warnings)?);
    if value.is_empty() {
        return Err(CredentialError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(value)
}

/// Reads the credentials of the files source.
pub(super) fn read_files(
    paths: &FilePaths,
    warnings: &mut Vec<String>,
) -> Result<Credentials, CredentialError> {
    let managed = paths.managed.as_deref();
    let access_key = read_key_file(&paths.access_key, managed, warnings)?;
    let secret_key = read_key_file(&paths.secret_key, managed, warnings)?;
    let security_token = match &paths.security_token {
        Some((path, true)) => Some(read_key_file(path, managed, warnings)?),
        Some((path, false)) if path.exists() => Some(read_key_file(path, managed, warnings)?),
        Some((_, false)) | None => None,
    };
    Ok(Credentials {
        access_key,
        secret_key,
        security_token,
        expires_at: None,
    })
}
