//! A string that must never be printed: access keys, secret keys, security
//! tokens, webhook secrets.
//!
//! The value is held in a [`secrecy::SecretString`], so its memory is
//! zeroized when the last copy is dropped. [`Secret`] is a thin wrapper that
//! adds the three things the project needs and `secrecy` leaves out on
//! purpose: equality (compared in constant time), which tells a rotated key
//! or a re-read webhook secret from the one in use; `***` as both `Debug` and
//! `Display`, so every type that holds a secret can derive `Debug` and still
//! print nothing of it; and a constructor that also wipes the buffer the
//! value came from. The only way to the value is the explicit
//! [`Secret::expose`], which makes every use easy to audit (`grep expose`).

use std::fmt;

use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};

use crate::huaweicloud::sign::constant_time_eq;

/// A secret string whose formatting never reveals it; zeroized on drop.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value; the `String` it arrives in is zeroized once copied.
    pub fn new(value: impl Into<String>) -> Secret {
        let mut value = value.into();
        let secret = Secret(SecretString::from(value.as_str()));
        value.zeroize();
        secret
    }

    /// Wraps `text` without its surrounding whitespace (a file read whole
    /// ends with a newline), zeroizing the whole of `text`.
    pub fn trimmed(mut text: String) -> Secret {
        let secret = Secret(SecretString::from(text.trim()));
        text.zeroize();
        secret
    }

    /// The value itself, for signing and sending; never for formatting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// True when the wrapped string is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(self.expose(), other.expose())
    }
}

impl Eq for Secret {}

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
        Secret::new(value)
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

    #[test]
    fn equality_compares_the_values() {
        assert_eq!(Secret::new("a"), Secret::from("a".to_string()));
        assert_ne!(Secret::new("a"), Secret::new("b"));
        assert_ne!(Secret::new("a"), Secret::new("ab"));
        assert!(Secret::new("").is_empty());
    }

    #[test]
    fn trimmed_drops_surrounding_whitespace() {
        let secret = Secret::trimmed(" s3cret \n".to_string());
        assert_eq!(secret.expose(), "s3cret");
        assert!(Secret::trimmed(" \n".to_string()).is_empty());
    }
}
