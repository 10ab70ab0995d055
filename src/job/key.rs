//! The identity of a watched job: project, service and job id, written
//! `[PROJECT/][SERVICE:]JOB_ID` (a bare id is an ECS job of the default
//! project).

use std::fmt;

use super::id::{JobId, JobIdError};
use super::project::{ProjectName, ProjectNameError};
use super::service::Service;

/// One job of one service in one project. Two services may hand out the
/// same job id; the key tells them apart.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    /// The project (`default` for `[cloud]`).
    pub project: ProjectName,
    /// The service whose job API answers for the job.
    pub service: Service,
    /// The job id the service handed out.
    pub id: JobId,
}

/// Why a string is not a job key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The part before `/`.
    #[error("{0}")]
    Project(ProjectNameError),
    /// The part before `:` names no service.
    #[error("unknown service {0:?}, expected one of {names}", names = Service::names())]
    Service(String),
    /// The job id.
    #[error("{0}")]
    Id(JobIdError),
}

impl JobKey {
    /// An ECS job of the default project.
    pub fn ecs(id: JobId) -> JobKey {
        JobKey {
            project: ProjectName::default(),
            service: Service::Ecs,
            id,
        }
    }

    /// Parses `[PROJECT/][SERVICE:]JOB_ID`. Whether the project is
    /// configured is the caller's question.
    pub fn parse(text: &str) -> Result<JobKey, KeyError> {
        let (project, rest) = match text.split_once('/') {
            Some((project, rest)) => (
                ProjectName::parse(project).map_err(KeyError::Project)?,
                rest,
            ),
            None => (ProjectName::default(), text),
        };
        let (service, id) = match rest.split_once(':') {
            Some((service, id)) => (
                Service::parse(service).ok_or_else(|| KeyError::Service(service.to_string()))?,
                id,
            ),
            None => (Service::Ecs, rest),
        };
        let id = JobId::parse(id).map_err(KeyError::Id)?;
        Ok(JobKey {
            project,
            service,
            id,
        })
    }

    /// The shortest text that parses back to this key: the bare id for an
    /// ECS job of the default project.
    pub fn short(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.project.is_default() {
            write!(f, "{}/", self.project)?;
        }
        if self.service != Service::Ecs || !self.project.is_default() {
            write!(f, "{}:", self.service)?;
        }
        f.write_str(self.id.as_str())
    }
}

impl fmt::Debug for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl std::str::FromStr for JobKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<JobKey, KeyError> {
        JobKey::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let check = |input: &str, project: &str, service: Service, id: &str, printed: &str| {
            let key = JobKey::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(key.project.as_str(), project, "{input}");
            assert_eq!(key.service, service, "{input}");
            assert_eq!(key.id.as_str(), id, "{input}");
            assert_eq!(key.to_string(), printed, "{input}");
            assert_eq!(JobKey::parse(printed).as_ref(), Ok(&key));
        };
        check("abc", "default", Service::Ecs, "abc", "abc");
        check("ecs:abc", "default", Service::Ecs, "abc", "abc");
        check("evs:abc", "default", Service::Evs, "abc", "evs:abc");
        check("sh/abc", "sh", Service::Ecs, "abc", "sh/ecs:abc");
        check("sh/cce:a-b_c", "sh", Service::Cce, "a-b_c", "sh/cce:a-b_c");
        check("default/rds:x", "default", Service::Rds, "x", "rds:x");
    }

    #[test]
    fn errors_name_the_part() {
        let error = |input: &str| JobKey::parse(input).unwrap_err().to_string();
        assert_eq!(
            error("foo:abc"),
            "unknown service \"foo\", expected one of ecs, bms, evs, ims, cce, rds, eip"
        );
        assert!(error("EVS:abc").contains("unknown service \"EVS\""));
        assert!(error("a.b/abc").starts_with("project name contains '.'"));
        assert!(error("/abc").starts_with("project name is empty"));
        assert!(error("evs:").starts_with("job id is empty"));
        assert!(error("a/b/c").starts_with("job id contains '/'"));
        assert!(error("ecs:evs:x").starts_with("job id contains ':'"));
    }
}
