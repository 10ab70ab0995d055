//! Project names: `[projects.NAME]` tables, and `default` for `[cloud]`.

use std::fmt;
use std::sync::Arc;

/// The longest project name accepted.
pub const MAX_PROJECT_NAME_LEN: usize = 64;

/// The name of the project `[cloud]` describes.
pub const DEFAULT_PROJECT: &str = "default";

/// A valid project name (1 to 64 of `A-Za-z0-9-_`); cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectName(Arc<str>);

/// Why a string is not a project name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProjectNameError {
    /// The empty string.
    #[error("project name is empty")]
    Empty,
    /// Too long.
    #[error("project name is {0} characters long, at most {MAX_PROJECT_NAME_LEN} are allowed")]
    TooLong(usize),
    /// A character outside `A-Za-z0-9-_`.
    #[error("project name contains {0:?}, only A-Z a-z 0-9 - _ are allowed")]
    BadCharacter(char),
}

impl ProjectName {
    /// Checks and wraps a project name.
    pub fn parse(value: &str) -> Result<ProjectName, ProjectNameError> {
        if value.is_empty() {
            return Err(ProjectNameError::Empty);
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(ProjectNameError::BadCharacter(bad));
        }
        if value.len() > MAX_PROJECT_NAME_LEN {
            return Err(ProjectNameError::TooLong(value.len()));
        }
        Ok(ProjectName(Arc::from(value)))
    }

    /// `default`: the project of `[cloud]`.
    pub fn default_project() -> ProjectName {
        thread_local! {
            static DEFAULT: ProjectName = ProjectName(Arc::from(DEFAULT_PROJECT));
        }
        DEFAULT.with(Clone::clone)
    }

    /// Whether this is the project of `[cloud]`.
    pub fn is_default(&self) -> bool {
        &*self.0 == DEFAULT_PROJECT
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ProjectName {
    fn default() -> ProjectName {
        ProjectName::default_project()
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(ProjectName::parse("shanghai").is_ok());
        assert!(ProjectName::parse("eu-de_2").is_ok());
        assert_eq!(ProjectName::parse(""), Err(ProjectNameError::Empty));
        assert_eq!(
            ProjectName::parse("a.b"),
            Err(ProjectNameError::BadCharacter('.'))
        );
        assert_eq!(
            ProjectName::parse(&"p".repeat(65)),
            Err(ProjectNameError::TooLong(65))
        );
        assert!(ProjectName::default().is_default());
        assert!(!ProjectName::parse("x").unwrap().is_default());
    }
}
