//! The identity of a watched job and the vocabulary shared by every
//! service: [`JobKey`] (`[PROJECT/][SERVICE:]JOB_ID`), [`Status`], and the
//! [`JobView`] every service adapter produces.

pub mod id;
pub mod key;
pub mod project;
pub mod service;
pub mod spec;
pub mod status;
pub mod view;

use std::collections::BTreeMap;

pub use id::JobId;
pub use key::JobKey;
pub use project::ProjectName;
pub use service::Service;
pub use status::Status;
pub use view::{JobView, SubJobView};

/// Labels of one job, sorted by key.
pub type Labels = BTreeMap<String, String>;
