//! The sections and their values: defaults, accepted values, and the
//! error of each bad value, named by its key and line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{CredentialSourceName, LimitSettings, LogFormat, PollSettings};
use crate::job::{JobKey, Labels};

#[test]
fn defaults_applied() {
    let config = load(MINIMAL, &no_env()).unwrap();
    assert_eq!(config.region(), Some("cn-north-4"));
    assert_eq!(config.project_id(), None);
    assert_eq!(config.endpoint(), None);
    assert_eq!(
        config.effective_endpoint().as_str(),
        "https://ecs.cn-north-4.myhuaweicloud.com/"
    );
    assert_eq!(config.ca_file(), None);
    let credentials = config.credentials();
    assert_eq!(credentials.source, CredentialSourceName::Auto);
    assert_eq!(credentials.access_key_file, None);
    assert_eq!(credentials.secret_key_file, None);
    assert_eq!(credentials.security_token_file, None);
    assert_eq!(credentials.metadata_url.as_str(), "http://169.254.169.254/");
    assert_eq!(
        config.poll(),
        &PollSettings {
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            pending_payment_interval: Duration::from_secs(300),
            job_timeout: Duration::from_secs(7200),
            not_found_grace: Duration::from_secs(60),
            adaptive: true,
        }
    );
    assert_eq!(
        config.limits(),
        &LimitSettings {
            requests_per_second: 10.0,
            burst: 1,
            max_in_flight: 16,
            request_timeout: Duration::from_secs(10),
        }
    );
    assert!(config.watch().jobs.is_empty());
    assert_eq!(config.watch().dir, None);
    assert_eq!(config.state().dir, PathBuf::from("/var/lib/ecs-jobwatch"));
    assert_eq!(config.state().retention, Duration::from_secs(30 * 86400));
    assert_eq!(config.log().format, LogFormat::Json);
    assert_eq!(config.log().level, "info");
    assert_eq!(config.metrics().listen, None);
    assert_eq!(config.webhooks(), &[]);
    assert_eq!(config.smn(), &[]);
    assert_eq!(config.projects().len(), 1);
}

#[test]
fn contract_examples_accepted() {
    // The example names /etc/ecs-jobwatch/jobs.d, which must exist; point it at a real directory.
    let dir = tempfile::tempdir().unwrap();
    let text = CONTRACT_EXAMPLE.replace(
        "/etc/ecs-jobwatch/jobs.d",
        &dir.path().display().to_string(),
    ) + CONTRACT_SINKS;
    let config = load(&text, &no_env()).unwrap();
    assert_eq!(
        config.project_id(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        config.watch().jobs,
        vec![(
            JobKey::parse("ff80808288d41e1b018990260955686a").unwrap(),
            Labels::new()
        )]
    );
    assert_eq!(config.watch().dir.as_deref(), Some(dir.path()));
    assert_eq!(config.projects().len(), 2);
    assert_eq!(config.webhooks()[0].name, "ops-hook");
    assert_eq!(config.smn()[0].name, "smn-1");
    assert_eq!(
        config.metrics().listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );

    // Unchanged, the example fails only on the directory it names, and says so.
    if !Path::new("/etc/ecs-jobwatch/jobs.d").is_dir() {
        let error = load(CONTRACT_EXAMPLE, &no_env()).unwrap_err();
        assert_eq!(error.key(), Some("watch.dir"));
        assert_eq!(error.location(), Some("test.toml:33"));
    }
}

#[test]
fn cloud_values() {
    check_all(&[
        (
            "",
            "cloud.region: is required unless cloud.endpoint or cloud.endpoints.ecs is set",
        ),
        (
            "[cloud]\nproject_id = \"abc\"",
            "test.toml:1: cloud.region: is required unless cloud.endpoint or cloud.endpoints.ecs is set",
        ),
        (
            "[cloud]\nregion = \"CN_North\"",
            "test.toml:2: cloud.region: must be 1 to 64 of a-z 0-9 -, like \"cn-north-4\", got \"CN_North\"",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\nproject_id = \"abc-def\"",
            "test.toml:3: cloud.project_id: must be 1 to 64 of A-Z a-z 0-9, got \"abc-def\"",
        ),
        ("[cloud]\nendpoint = \"https://ecs.example.com\"", "ok"),
        ("[cloud]\nendpoint = \"http://127.0.0.1:8080\"", "ok"),
        ("[cloud]\nendpoint = \"http://127.8.9.10\"", "ok"),
        ("[cloud]\nendpoint = \"http://[::1]:8080\"", "ok"),
        ("[cloud]\nendpoint = \"http://LOCALHOST:8080\"", "ok"),
        (
            "[cloud]\nendpoint = \"http://ecs.example.com\"",
            "test.toml:2: cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://ecs.example.com\"",
        ),
        (
            "[cloud]\nendpoint = \"http://localhost.example.com\"",
            "test.toml:2: cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://localhost.example.com\"",
        ),
        (
            "[cloud]\nendpoint = \"http://10.0.0.1\"",
            "test.toml:2: cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://10.0.0.1\"",
        ),
        (
            "[cloud]\nendpoint = \"ftp://ecs.example.com\"",
            "test.toml:2: cloud.endpoint: must be an https:// URL, got scheme \"ftp\"",
        ),
        (
            "[cloud]\nendpoint = \"https://ecs.example.com/?a=b\"",
            "test.toml:2: cloud.endpoint: must not have a query or fragment: \"https://ecs.example.com/?a=b\"",
        ),
        (
            "[cloud]\nendpoint = \"https://ecs.example.com/#x\"",
            "test.toml:2: cloud.endpoint: must not have a query or fragment: \"https://ecs.example.com/#x\"",
        ),
        (
            "[cloud]\nendpoint = \"https://user:pw@ecs.example.com/\"",
            "test.toml:2: cloud.endpoint: must not contain a user name or password",
        ),
        (
            "[cloud]\nendpoint = \"not a url\"",
            "test.toml:2: cloud.endpoint: is not a URL (relative URL without a base): \"not a url\"",
        ),
    ]);
}

#[test]
fn section_values() {
    let cases: Vec<(String, &str)> = [
        // credentials
        (
            "[credentials]\nsource = \"files\"\naccess_key_file = \"/run/ak\"",
            "ok",
        ),
        ("[credentials]\nsource = \"Metadata\"", "ok"),
        (
            "[credentials]\nsource = \"vault\"",
            "test.toml:4: credentials.source: must be one of auto, env, profile, files, metadata, got \"vault\"",
        ),
        (
            "[credentials]\nsecret_key_file = \"\"",
            "test.toml:4: credentials.secret_key_file: must not be empty",
        ),
        (
            "[credentials]\nmetadata_url = \"https://169.254.169.254\"",
            "ok",
        ),
        (
            "[credentials]\nmetadata_url = \"file:///etc/passwd\"",
            "test.toml:4: credentials.metadata_url: has no host: \"file:///etc/passwd\"",
        ),
        // poll
        (
            "[poll]\ninitial_interval = \"500ms\"",
            "test.toml:4: poll.initial_interval: must be at least 1s (got 500ms)",
        ),
        (
            "[poll]\ninitial_interval = 5",
            "test.toml:4: poll.initial_interval: invalid type: integer `5`, expected a duration",
        ),
        (
            "[poll]\ninitial_interval = \"5\"",
            "test.toml:4: poll.initial_interval: invalid value: string \"5\", expected a duration",
        ),
        (
            "[poll]\ninitial_interval = \"soon\"",
            "test.toml:4: poll.initial_interval: invalid value: string \"soon\", expected a duration",
        ),
        (
            "[poll]\nmax_interval = \"0s\"",
            "test.toml:4: poll.max_interval: must be at least 1s (got 0s)",
        ),
        (
            "[poll]\ninitial_interval = \"1m\"\nmax_interval = \"30s\"",
            "test.toml:5: poll.max_interval: must be at least poll.initial_interval (1m), got 30s",
        ),
        (
            "[poll]\ninitial_interval = \"1m\"",
            "test.toml:3: poll.max_interval: must be at least poll.initial_interval (1m), got 30s",
        ),
        (
            "[poll]\ninitial_interval = \"30s\"\nmax_interval = \"30s\"",
            "ok",
        ),
        (
            "[poll]\npending_payment_interval = \"1ms\"",
            "test.toml:4: poll.pending_payment_interval: must be at least 1s (got 1ms)",
        ),
        (
            "[poll]\njob_timeout = \"0s\"",
            "test.toml:4: poll.job_timeout: must be at least 1s (got 0s)",
        ),
        (
            "[poll]\nadaptive = \"yes\"",
            "test.toml:4: poll.adaptive: invalid type: string \"yes\", expected a boolean",
        ),
        ("[poll]\nadaptive = false", "ok"),
        // limits
        ("[limits]\nrequests_per_second = 0.5", "ok"),
        ("[limits]\nrequests_per_second = 10000", "ok"),
        (
            "[limits]\nrequests_per_second = 0",
            "test.toml:4: limits.requests_per_second: must be greater than 0 and at most 10000, got 0",
        ),
        (
            "[limits]\nrequests_per_second = -1.5",
            "test.toml:4: limits.requests_per_second: must be greater than 0 and at most 10000, got -1.5",
        ),
        (
            "[limits]\nrequests_per_second = 10001",
            "test.toml:4: limits.requests_per_second: must be greater than 0 and at most 10000, got 10001",
        ),
        (
            "[limits]\nrequests_per_second = nan",
            "test.toml:4: limits.requests_per_second: must be greater than 0 and at most 10000, got NaN",
        ),
        (
            "[limits]\nrequests_per_second = \"5\"",
            "test.toml:4: limits.requests_per_second: invalid type: string \"5\", expected f64",
        ),
        (
            "[limits]\nburst = 0",
            "test.toml:4: limits.burst: must be at least 1, got 0",
        ),
        (
            "[limits]\nburst = 2.5",
            "test.toml:4: limits.burst: invalid type: floating point `2.5`, expected u32",
        ),
        (
            "[limits]\nburst = 5000000000",
            "test.toml:4: limits.burst: invalid value: integer `5000000000`, expected u32",
        ),
        ("[limits]\nmax_in_flight = 1024", "ok"),
        (
            "[limits]\nmax_in_flight = 1025",
            "test.toml:4: limits.max_in_flight: must be from 1 to 1024, got 1025",
        ),
        (
            "[limits]\nmax_in_flight = 0",
            "test.toml:4: limits.max_in_flight: must be from 1 to 1024, got 0",
        ),
        ("[limits]\nrequest_timeout = \"5m\"", "ok"),
        (
            "[limits]\nrequest_timeout = \"301s\"",
            "test.toml:4: limits.request_timeout: must be at most 5m (got 5m 1s)",
        ),
        (
            "[limits]\nrequest_timeout = \"999ms\"",
            "test.toml:4: limits.request_timeout: must be at least 1s (got 999ms)",
        ),
        // watch
        (
            "[watch]\ndir = \"/nonexistent/ecs-jobwatch-test\"",
            "test.toml:4: watch.dir: cannot use /nonexistent/ecs-jobwatch-test: No such file or directory (os error 2)",
        ),
        // state
        ("[state]\ndir = \"/tmp/does-not-need-to-exist\"", "ok"),
        ("[state]\ndir = \"\"", "test.toml:4: state.dir: must not be empty"),
        (
            "[state]\nretention = \"59m\"",
            "test.toml:4: state.retention: must be at least 1h (got 59m)",
        ),
        ("[state]\nretention = \"14d\"", "ok"),
        // log
        ("[log]\nformat = \"journald\"\nlevel = \"DEBUG\"", "ok"),
        (
            "[log]\nformat = \"xml\"",
            "test.toml:4: log.format: must be one of json, text, journald, got \"xml\"",
        ),
        (
            "[log]\nlevel = \"verbose\"",
            "test.toml:4: log.level: must be one of trace, debug, info, warn, error, got \"verbose\"",
        ),
        // metrics
        ("[metrics]\nlisten = \"[::1]:9464\"", "ok"),
        (
            "[metrics]\nlisten = \"localhost\"",
            "test.toml:4: metrics.listen: invalid socket address syntax",
        ),
    ]
    .into_iter()
    .map(|(rest, expected)| (format!("{MINIMAL}{rest}"), expected))
    .collect();
    check_all(&cases);
    let config = load(&format!("{MINIMAL}[log]\nlevel = \"DEBUG\""), &no_env()).unwrap();
    assert_eq!(config.log().level, "debug");
}

#[test]
fn watch_jobs_take_the_watch_syntax() {
    let text = format!(
        "{MINIMAL}[projects.sh]\nregion = \"cn-east-3\"\nproject_id = \"p1\"\n\
         [watch]\njobs = [\"a\", \"evs:b team=db env=prod\", \"sh/ims:c\", \"a\", \"default/ecs:d # note\"]\n"
    );
    let config = load(&text, &no_env()).unwrap();
    let jobs: Vec<String> = config
        .watch()
        .jobs
        .iter()
        .map(|(key, labels)| format!("{key} {labels:?}"))
        .collect();
    assert_eq!(
        jobs,
        [
            "a {}",
            "evs:b {\"env\": \"prod\", \"team\": \"db\"}",
            "sh/ims:c {}",
            "d {}"
        ]
    );

    let with = |jobs: &str| {
        format!("{MINIMAL}[projects.sh]\nproject_id = \"p1\"\n[watch]\njobs = {jobs}\n")
    };
    check_all(&[
        (with("[\"a\", \"B-_9\"]"), "ok"),
        (
            with("[\"a\", \"b\", \"c\", \"not/valid/id\"]"),
            "test.toml:6: watch.jobs[3]: job id contains '/', only A-Z a-z 0-9 - _ are allowed: \"not/valid/id\"",
        ),
        (
            with("[\"\"]"),
            "test.toml:6: watch.jobs[0]: names no job: \"\"",
        ),
        (
            with("[\"a\",\n  \"nope/x\"]"),
            "test.toml:7: watch.jobs[1]: project \"nope\" is not configured (known: default, sh): \"nope/x\"",
        ),
        (
            with("[\"vpc:x\"]"),
            "test.toml:6: watch.jobs[0]: unknown service \"vpc\", expected one of ecs, bms, evs, ims, cce, rds, eip: \"vpc:x\"",
        ),
        (
            with("[\"x team\"]"),
            "test.toml:6: watch.jobs[0]: bad label \"team\": expected key=value: \"x team\"",
        ),
        (
            with("[\"x team=a\", \"x team=b\"]"),
            "test.toml:6: watch.jobs[1]: job x is listed at watch.jobs[0] too, with other labels",
        ),
        (with("[\"x team=a\", \"x team=a\"]"), "ok"),
    ]);
    // An endpoint-only project reaches ECS alone.
    check(
        "[cloud]\nendpoint = \"http://127.0.0.1:1\"\n[watch]\njobs = [\"a\", \"evs:b\"]\n",
        &[],
        "test.toml:4: watch.jobs[1]: project default has no endpoint for evs: set cloud.region, cloud.endpoints.evs, or an endpoint with {service}: \"evs:b\"",
    );
}

#[test]
fn watch_dir_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    check(
        &format!("{MINIMAL}[watch]\ndir = {:?}", dir.path()),
        &[],
        "ok",
    );
    check(
        &format!("{MINIMAL}[watch]\ndir = {:?}", file),
        &[],
        &format!(
            "test.toml:4: watch.dir: {} is not a directory",
            file.display()
        ),
    );
}

#[test]
fn ca_file_must_be_readable() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let config = load(&format!("{MINIMAL}ca_file = {pem:?}\n"), &no_env()).unwrap();
    assert_eq!(config.ca_file(), Some(pem.as_path()));
    let missing = dir.path().join("missing.pem");
    check_all(&[
        (
            format!("{MINIMAL}ca_file = {missing:?}\n"),
            format!(
                "test.toml:3: cloud.ca_file: cannot read {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            format!("{MINIMAL}ca_file = {:?}\n", dir.path()),
            format!(
                "test.toml:3: cloud.ca_file: {} is not a file",
                dir.path().display()
            ),
        ),
        (
            format!("{MINIMAL}ca_file = \"\"\n"),
            "test.toml:3: cloud.ca_file: must not be empty".to_string(),
        ),
    ]);
}

#[test]
fn missing_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let error = Config::load(&path, &no_env()).unwrap_err();
    assert_eq!(error.place(), path.display().to_string());
    assert_eq!(
        error.message(),
        "cannot read the file: No such file or directory (os error 2)"
    );
}

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ecs-jobwatch.toml");
    std::fs::write(
        &path,
        format!("{MINIMAL}\n[poll]\ninitial_interval = \"500ms\"\n"),
    )
    .unwrap();
    let error = Config::load(&path, &no_env()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:5: poll.initial_interval: must be at least 1s (got 500ms)",
            path.display()
        )
    );
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(
        Config::load(&path, &no_env()).unwrap().region(),
        Some("cn-north-4")
    );
}

#[test]
fn error_display_is_one_line() {
    let error = ConfigError::new(
        Some("x.toml:3".into()),
        Some("poll.max_interval".into()),
        "first\nsecond  third",
    );
    assert_eq!(
        error.to_string(),
        "x.toml:3: poll.max_interval: first second third"
    );
    assert_eq!(error.place(), "x.toml:3: poll.max_interval");
    assert_eq!(error.location(), Some("x.toml:3"));
    assert_eq!(error.key(), Some("poll.max_interval"));
    let error = ConfigError::new(None, Some("cloud.region".into()), "is required");
    assert_eq!(error.to_string(), "cloud.region: is required");
}
