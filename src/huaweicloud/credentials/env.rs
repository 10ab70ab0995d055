//! The environment step of the chain: the snapshot of the process
//! environment every source reads from, and the two sets of variable names
//! that carry keys (the official SDKs' `HUAWEICLOUD_SDK_*`, which win, then
//! terraform's `HW_*`).
//!
//! A set is taken whole or not at all: a set given only in part is an error
//! naming the missing variable rather than a silent step to the next
//! source. An empty value counts as unset, as in the official SDKs.

use std::collections::BTreeMap;
use std::fmt;

use super::{CredentialError, Credentials};
use crate::huaweicloud::secret::Secret;

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
    pub(super) fn non_empty(&self, name: &str) -> Option<&str> {
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

/// One set of environment variable names.
#[derive(Debug)]
pub(super) struct EnvNames {
    pub(super) label: &'static str,
    pub(super) access_key: &'static str,
    pub(super) secret_key: &'static str,
    pub(super) security_token: &'static str,
    pub(super) project_id: &'static str,
}

/// The names of the official SDKs; they win over the terraform names.
pub(super) const SDK_NAMES: EnvNames = EnvNames {
    label: "HUAWEICLOUD_SDK_*",
    access_key: "HUAWEICLOUD_SDK_AK",
    secret_key: "HUAWEICLOUD_SDK_SK",
    security_token: "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    project_id: "HUAWEICLOUD_SDK_PROJECT_ID",
};

/// The names of the terraform provider.
pub(super) const HW_NAMES: EnvNames = EnvNames {
    label: "HW_*",
    access_key: "HW_ACCESS_KEY",
    secret_key: "HW_SECRET_KEY",
    security_token: "HW_SECURITY_TOKEN",
    project_id: "HW_PROJECT_ID",
};

/// Reads one set of variables: `None` when none of it is set, an error
/// naming the missing variable when it is set only in part.
pub(super) fn read_env_set(
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
pub(super) fn read_env(
    env: &Environment,
) -> Result<Option<(Credentials, &'static EnvNames)>, CredentialError> {
    for names in [&SDK_NAMES, &HW_NAMES] {
        if let Some(credentials) = read_env_set(env, names)? {
            return Ok(Some((credentials, names)));
        }
    }
    Ok(None)
}
