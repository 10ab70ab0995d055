//! A string that must never be printed: access keys, secret keys, security
//! tokens, webhook secrets.
//!
//! `Debug` and `Display` print `***`; the only way to the value is the
//! explicit [`Secret::expose`], which makes every use easy to audit.

use std::fmt;

/// A secret string whose formatting never reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for signing and sending; never for formatting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the wrapped string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn formatting_hides_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:#?}", Some(secret.clone())), "Some(\n    ***,\n)");
        assert_eq!(secret.expose(), "hunter2");
    }
}
