//! [`ConfigError`]: a configuration that cannot be used, and where the
//! problem is.

use std::fmt;

/// A configuration that cannot be used, and where the problem is.
///
/// An error has a location (`file:line`, the file, or the name of the
/// environment variable that set the value), a dotted key
/// (`poll.initial_interval`, `notify.webhook[0].url`), or both, and a
/// message. `Display` is one line: `{location}: {key}: {message}`, leaving
/// out what is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    location: Option<String>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    /// An error at `location` (a file, `file:line` or a variable) about
    /// `key`; either may be absent, not both.
    pub(super) fn new(
        location: Option<String>,
        key: Option<String>,
        message: impl AsRef<str>,
    ) -> ConfigError {
        // Messages from other crates sometimes span lines; the contract wants one.
        let message = message
            .as_ref()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        ConfigError {
            location,
            key,
            message,
        }
    }

    /// An error about the file as a whole, or a place in it.
    pub(super) fn at(location: impl Into<String>, message: impl AsRef<str>) -> ConfigError {
        ConfigError::new(Some(location.into()), None, message)
    }

    /// Where the problem is: `file:line`, the file, or a variable name,
    /// when known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The dotted key of the value at fault, when one is.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The place as printed before the message: the location and the key,
    /// separated by `": "` (never empty).
    pub fn place(&self) -> String {
        match (&self.location, &self.key) {
            (Some(location), Some(key)) => format!("{location}: {key}"),
            (Some(location), None) => location.clone(),
            (None, Some(key)) => key.clone(),
            (None, None) => "configuration".to_string(),
        }
    }

    /// What is wrong, without the place.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place(), self.message)
    }
}

impl std::error::Error for ConfigError {}
