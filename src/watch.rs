//! Placeholder until the watch module lands.
use std::collections::BTreeMap;

use crate::ids::JobId;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchList {
    jobs: BTreeMap<JobId, Labels>,
}

impl WatchList {
    pub fn len(&self) -> usize {
        self.jobs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
    pub fn get(&self, id: &JobId) -> Option<&Labels> {
        self.jobs.get(id)
    }
    pub fn contains(&self, id: &JobId) -> bool {
        self.jobs.contains_key(id)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&JobId, &Labels)> {
        self.jobs.iter()
    }
}

impl FromIterator<(JobId, Labels)> for WatchList {
    fn from_iter<I: IntoIterator<Item = (JobId, Labels)>>(iter: I) -> WatchList {
        WatchList {
            jobs: iter.into_iter().collect(),
        }
    }
}
