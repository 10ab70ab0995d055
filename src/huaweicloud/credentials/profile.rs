//! The profile step of the chain: the INI file of the official SDKs
//! (`$HUAWEICLOUD_SDK_CREDENTIALS_FILE`, else `~/.huaweicloud/credentials`),
//! of which only the `[basic]` section is read (`ak`, `sk`,
//! `security_token`, `project_id`).
//!
//! The parser is lenient in the ways the SDKs are (`key: value`, quotes,
//! inline comments after whitespace, case-insensitive keys) and strict
//! where a silent mistake would hide a key (a line without `=`). Errors name
//! the path and the line, never the line's text, which may hold a secret.

use std::path::{Path, PathBuf};

use secrecy::zeroize::Zeroize;

use super::env::Environment;
use super::files::read_private_file;
use super::{CredentialError, Credentials};
use crate::huaweicloud::secret::Secret;

/// The environment variable that names the profile file.
pub(super) const PROFILE_FILE_VARIABLE: &str = "HUAWEICLOUD_SDK_CREDENTIALS_FILE";

/// The `[basic]` section of a profile file.
#[derive(Debug, Default)]
pub(super) struct Profile {
    pub(super) access_key: Option<Secret>,
    pub(super) secret_key: Option<Secret>,
    pub(super) security_token: Option<Secret>,
    pub(super) project_id: Option<String>,
}

/// Parses the INI profile file of the official SDKs: `[section]` headers,
/// `key = value` (or `key: value`) lines, `#` and `;` comments, also inline
/// after whitespace. Keys and the section name are case-insensitive; only
/// `[basic]` is read. Messages never quote a line, which may hold a secret.
pub(super) fn parse_profile(text: &str, path: &Path) -> Result<Profile, CredentialError> {
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
        let value = (!value.is_empty()).then_some(value);
        match key.as_str() {
            "ak" => profile.access_key = value.map(Secret::new),
            "sk" => profile.secret_key = value.map(Secret::new),
            "security_token" => profile.security_token = value.map(Secret::new),
            "project_id" => profile.project_id = value.map(str::to_string),
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
pub(super) fn read_profile(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Profile, CredentialError> {
    let mut text = read_private_file(path, Some(warnings))?;
    let profile = parse_profile(&text, path);
    text.zeroize();
    profile
}

/// The credentials of a parsed profile; an error naming the path when `ak`
/// or `sk` is missing.
pub(super) fn profile_credentials(
    profile: &Profile,
    path: &Path,
) -> Result<Credentials, CredentialError> {
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
        access_key: access_key.clone(),
        secret_key: secret_key.clone(),
        security_token: profile.security_token.clone(),
        expires_at: None,
    })
}

/// Where the profile file is, and whether it was named explicitly by
/// `HUAWEICLOUD_SDK_CREDENTIALS_FILE` (rather than being the default under
/// `$HOME`); `None` when neither variable is set.
pub(super) fn default_profile_path(env: &Environment) -> Option<(PathBuf, bool)> {
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
