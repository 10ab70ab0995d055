//! Tests of the configuration, by concern: the sections and their values
//! (`sections.rs`), errors in the file's text (`file.rs`), environment
//! overrides and paths (`env.rs`), projects and endpoints (`projects.rs`),
//! sinks (`notify.rs`), printing back (`round_trip.rs`), and the key table
//! against the raw structs and the example file (`docs.rs`).

mod docs;
mod env;
mod file;
mod notify;
mod projects;
mod round_trip;
mod sections;

use std::collections::BTreeMap;

use super::{Config, ConfigError};

/// The example of the contract, section "Configuration file (TOML)".
const CONTRACT_EXAMPLE: &str = r#"
[cloud]
region = "cn-north-4"          # endpoint defaults to https://ecs.{region}.myhuaweicloud.com
project_id = "0123456789abcdef0123456789abcdef"   # or HUAWEICLOUD_SDK_PROJECT_ID, or instance metadata
# endpoint = "https://ecs.eu-de.otc.t-systems.com"  # override; plain http only for loopback addresses

# endpoints.evs = "https://evs.eu-de.otc.t-systems.com"  # per service; default https://{service}.{region}.myhuaweicloud.com
# ca_file = "/etc/ssl/private-cloud-ca.pem"   # PEM bundle trusted beside the system roots; HTTPS_PROXY / NO_PROXY are honoured

[projects.shanghai]            # more projects, any number; each takes from [cloud] what it does not set
region = "cn-east-3"
project_id = "fedcba9876543210fedcba9876543210"

[credentials]                  # one account per process: every project and service shares one request budget
source = "auto"                # auto | env | profile | files | metadata
# files: access_key_file / secret_key_file / security_token_file,
# default $CREDENTIALS_DIRECTORY/access_key and .../secret_key (systemd LoadCredential=)

[poll]
initial_interval = "2s"        # first gap after a job is first seen
max_interval = "30s"           # cap of the per-job cadence while INIT/RUNNING
pending_payment_interval = "5m"
job_timeout = "2h"             # INIT/RUNNING longer than this: job.timeout, polling goes on at max_interval
not_found_grace = "60s"        # 404 for a never-seen job this long: job.not_found

[limits]
requests_per_second = 10       # one budget for every API call the process makes
max_in_flight = 16
request_timeout = "10s"

[watch]
jobs = ["ff80808288d41e1b018990260955686a"]
dir = "/etc/ecs-jobwatch/jobs.d"   # optional; see below

[state]
dir = "/var/lib/ecs-jobwatch"  # default $STATE_DIRECTORY, else this
retention = "30d"              # how long finished jobs are remembered

[log]
format = "json"                # json | text | journald
level = "info"
"#;

/// The contract's example of the sinks, section "Metrics and webhooks".
const CONTRACT_SINKS: &str = r#"
[metrics]
listen = "127.0.0.1:9464"      # off when absent: GET /metrics (Prometheus text), /healthz, /readyz

[[notify.webhook]]             # any number of these; none by default
url = "https://hooks.example.com/ecs-jobs"
events = ["job.transition", "job.subjob_failed", "job.timeout", "job.not_found"]   # default: these four
statuses = ["SUCCESS", "FAIL", "PENDING_PAYMENT"]   # job.transition only into these; this is the default
secret_file = "/run/credentials/ecs-jobwatch.service/webhook_secret"   # optional
max_age = "24h"                # undelivered this long: give up with a notify.dropped ERROR event
name = "ops-hook"              # optional; the `sink` label of its metrics (default: its position)

[[notify.smn]]                 # any number: publish to a Huawei Cloud SMN topic (SMS, email, HTTP subscribers)
topic_urn = "urn:smn:cn-north-4:0123456789abcdef0123456789abcdef:ecs-jobs"
events = ["job.transition", "job.subjob_failed", "job.timeout", "job.not_found"]   # defaults as for webhooks
statuses = ["FAIL", "PENDING_PAYMENT"]
max_age = "24h"
# project = "shanghai"         # whose SMN endpoint and project id (default: [cloud]); endpoint override cloud.endpoints.smn
"#;

/// The smallest valid file.
const MINIMAL: &str = "[cloud]\nregion = \"cn-north-4\"\n";

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn load(text: &str, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, "test.toml", env)
}

/// Loads `text` with `env` and compares the error line (or "ok").
fn check(text: &str, env: &[(&str, &str)], expected: &str) {
    let got = match load(text, &self::env(env)) {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.to_string(),
    };
    assert_eq!(got, expected, "input:\n{text}\nenv: {env:?}");
}

/// Checks each `(text, expected)` with no environment, and reports every
/// mismatch at once.
fn check_all<T: AsRef<str>, E: AsRef<str>>(cases: &[(T, E)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, expected)| {
            let expected = expected.as_ref();
            let got = match load(text.as_ref(), &no_env()) {
                Ok(_) => "ok".to_owned(),
                Err(error) => error.to_string(),
            };
            (got != expected).then(|| {
                format!(
                    "input:\n{}\n  expected: {expected}\n  got:      {got}",
                    text.as_ref()
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
