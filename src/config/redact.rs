//! [`Config::to_redacted_toml`]: the effective configuration as TOML that
//! parses back to an equal [`Config`], every key named (keys without a
//! value as comments), and what was resolved (endpoints, inherited
//! values) as comments. No secret is in a configuration, only paths to
//! files holding them, which are printed; their contents never are.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::Config;
use super::projects::{Api, ProjectSettings, key_prefix};

impl Config {
    /// The effective configuration as TOML, every key, secrets redacted
    /// (only the paths of credential and secret files are printed, never
    /// what they hold).
    pub fn to_redacted_toml(&self) -> String {
        let mut out = TomlWriter::default();
        for project in &self.projects {
            project_section(&mut out, project, self);
        }
        if self.projects.len() == 1 {
            out.comment("[projects.NAME]: none");
        }

        let credentials = &self.credentials;
        out.section("credentials");
        out.str("source", credentials.source.as_str());
        out.optional_path("access_key_file", credentials.access_key_file.as_deref());
        out.optional_path("secret_key_file", credentials.secret_key_file.as_deref());
        out.optional_path(
            "security_token_file",
            credentials.security_token_file.as_deref(),
        );
        out.str("metadata_url", credentials.metadata_url.as_str());

        let poll = &self.poll;
        out.section("poll");
        out.duration("initial_interval", poll.initial_interval);
        out.duration("max_interval", poll.max_interval);
        out.duration("pending_payment_interval", poll.pending_payment_interval);
        out.duration("job_timeout", poll.job_timeout);
        out.duration("not_found_grace", poll.not_found_grace);
        out.value("adaptive", toml::Value::Boolean(poll.adaptive));

        let limits = &self.limits;
        out.section("limits");
        out.value(
            "requests_per_second",
            toml::Value::Float(limits.requests_per_second),
        );
        out.value("burst", toml::Value::Integer(i64::from(limits.burst)));
        out.value(
            "max_in_flight",
            toml::Value::Integer(i64::try_from(limits.max_in_flight).unwrap_or(i64::MAX)),
        );
        out.duration("request_timeout", limits.request_timeout);

        out.section("watch");
        let jobs = self.watch.jobs.iter().map(|(job, labels)| {
            let mut entry = job.to_string();
            for (key, value) in labels {
                let _ = write!(entry, " {key}={value}");
            }
            entry
        });
        out.value("jobs", strings(jobs));
        out.optional_path("dir", self.watch.dir.as_deref());

        out.section("state");
        out.optional_path("dir", Some(&self.state.dir));
        out.duration("retention", self.state.retention);

        out.section("log");
        out.str("format", self.log.format.as_str());
        out.str("level", &self.log.level);

        out.section("metrics");
        let listen = self.metrics.listen.map(|addr| addr.to_string());
        out.optional_str("listen", listen.as_deref());

        out.section("notify");
        out.comment(&format!(
            "webhook: {} [[notify.webhook]] tables; smn: {} [[notify.smn]] tables",
            self.webhooks.len(),
            self.smn.len()
        ));
        for webhook in &self.webhooks {
            out.array_section("notify.webhook");
            out.str("name", &webhook.name);
            out.str("url", webhook.url.as_str());
            out.value("events", strings(webhook.events.iter().cloned()));
            out.value("statuses", strings(webhook.statuses.iter().cloned()));
            out.comment("secret_file is written as secret_files");
            out.value(
                "secret_files",
                strings(
                    webhook
                        .secret_files
                        .iter()
                        .map(|path| path.to_string_lossy().into_owned()),
                ),
            );
            out.duration("max_age", webhook.max_age);
        }
        for sink in &self.smn {
            out.array_section("notify.smn");
            out.str("name", &sink.name);
            out.str("topic_urn", sink.topic_urn.as_str());
            out.value("events", strings(sink.events.iter().cloned()));
            out.value("statuses", strings(sink.statuses.iter().cloned()));
            out.duration("max_age", sink.max_age);
            out.str("project", sink.project.as_str());
        }
        out.text
    }
}

/// `[cloud]` or `[projects.NAME]`: the keys as written, then what was
/// resolved.
fn project_section(out: &mut TomlWriter, project: &ProjectSettings, config: &Config) {
    let written = &project.written;
    let inherited = |own: &Option<String>, effective: &Option<String>| match (own, effective) {
        (None, Some(value)) => Some(format!("from [cloud]: {value}")),
        _ => None,
    };
    if project.name.is_default() {
        out.section("cloud");
    } else {
        out.section(&key_prefix(&project.name));
    }
    match inherited(&written.region, &project.region) {
        Some(note) => out.comment(&format!("region is not set, {note}")),
        None => out.optional_str("region", written.region.as_deref()),
    }
    match inherited(&written.project_id, &project.project_id) {
        Some(note) => out.comment(&format!("project_id is not set, {note}")),
        None => out.optional_str("project_id", written.project_id.as_deref()),
    }
    out.optional_str("endpoint", written.endpoint.as_deref());
    if written.endpoints.is_empty() {
        out.comment("endpoints is not set");
    } else {
        let pairs: Vec<String> = written
            .endpoints
            .iter()
            .map(|(api, url)| format!("{api} = {}", toml::Value::String(url.clone())))
            .collect();
        let _ = writeln!(out.text, "endpoints = {{ {} }}", pairs.join(", "));
    }
    if project.name.is_default() {
        out.optional_path("ca_file", config.ca_file.as_deref());
    }
    out.comment(&format!("endpoints of project {}:", project.name));
    for api in Api::ALL {
        match (project.endpoint(api), project.endpoint_origin(api)) {
            (Ok(url), Some(origin)) => out.comment(&format!("  {api} {url} ({origin})")),
            _ => out.comment(&format!("  {api} none (no region, no endpoint)")),
        }
    }
}

fn strings(items: impl Iterator<Item = String>) -> toml::Value {
    toml::Value::Array(items.map(toml::Value::String).collect())
}

/// Builds the TOML text of [`Config::to_redacted_toml`].
#[derive(Default)]
struct TomlWriter {
    text: String,
}

impl TomlWriter {
    fn section(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "[{name}]");
    }

    fn array_section(&mut self, name: &str) {
        let _ = writeln!(self.text, "\n[[{name}]]");
    }

    fn value(&mut self, key: &str, value: toml::Value) {
        let _ = writeln!(self.text, "{key} = {value}");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.value(key, toml::Value::String(value.to_owned()));
    }

    fn optional_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.comment(&format!("{key} is not set")),
        }
    }

    fn optional_path(&mut self, key: &str, value: Option<&Path>) {
        let text = value.map(|path| path.to_string_lossy());
        self.optional_str(key, text.as_deref());
    }

    fn duration(&mut self, key: &str, value: Duration) {
        self.str(key, &humantime::format_duration(value).to_string());
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.text, "# {text}");
    }
}
