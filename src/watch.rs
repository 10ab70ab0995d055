//! Placeholder until the watch module lands.
pub type Labels = std::collections::BTreeMap<String, String>;
