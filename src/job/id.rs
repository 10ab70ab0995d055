//! Validated identifiers.
//!
//! A job id is 1 to 64 characters of `A-Za-z0-9-_` (the contract). It is
//! checked once, where it enters the process, and shared cheaply after.

use std::fmt;
use std::sync::Arc;

/// The longest job id accepted.
pub const MAX_JOB_ID_LEN: usize = 64;

/// A valid job id; cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(Arc<str>);

/// Why a string is not a job id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobIdError {
    /// The empty string.
    #[error("job id is empty")]
    Empty,
    /// Longer than [`MAX_JOB_ID_LEN`].
    #[error("job id is {0} characters long, at most {MAX_JOB_ID_LEN} are allowed")]
    TooLong(usize),
    /// A character outside `A-Za-z0-9-_`.
    #[error("job id contains {0:?}, only A-Z a-z 0-9 - _ are allowed")]
    BadCharacter(char),
}

impl JobId {
    /// Checks and wraps a job id.
    pub fn parse(value: &str) -> Result<JobId, JobIdError> {
        if value.is_empty() {
            return Err(JobIdError::Empty);
        }
        let length = value.chars().count();
        if length > MAX_JOB_ID_LEN {
            return Err(JobIdError::TooLong(length));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(JobIdError::BadCharacter(bad));
        }
        Ok(JobId(Arc::from(value)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::str::FromStr for JobId {
    type Err = JobIdError;

    fn from_str(value: &str) -> Result<JobId, JobIdError> {
        JobId::parse(value)
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let check = |input: &str, expected: Result<(), JobIdError>| {
            assert_eq!(JobId::parse(input).map(|_| ()), expected, "{input:?}")
        };
        check("ff80808288d41e1b018990260955686a", Ok(()));
        check("a", Ok(()));
        check("A-z_0", Ok(()));
        check(&"x".repeat(64), Ok(()));
        check("", Err(JobIdError::Empty));
        check(&"x".repeat(65), Err(JobIdError::TooLong(65)));
        check(&"x".repeat(10_000), Err(JobIdError::TooLong(10_000)));
        check("a b", Err(JobIdError::BadCharacter(' ')));
        check("a/b", Err(JobIdError::BadCharacter('/')));
        check("é", Err(JobIdError::BadCharacter('é')));
    }
}
