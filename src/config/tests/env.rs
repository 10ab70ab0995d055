//! Environment overrides, and the paths that come from the environment.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{DEFAULT_STATE_DIR, LogFormat, config_path, default_config_path};
use crate::job::Service;

#[test]
fn overrides_win_over_the_file() {
    let base =
        format!("{MINIMAL}[limits]\nmax_in_flight = 8\n[projects.ShangHai]\nproject_id = \"p1\"\n");
    let config = load(
        &base,
        &env(&[
            ("ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT", "32"),
            ("ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND", "0.5"),
            ("ECS_JOBWATCH__POLL__INITIAL_INTERVAL", "5s"),
            ("ECS_JOBWATCH__POLL__ADAPTIVE", "false"),
            (
                "ECS_JOBWATCH__WATCH__JOBS",
                "job-a, job-b\tjob-c,,job_d team=x env=y evs:e\nShangHai/f",
            ),
            ("ECS_JOBWATCH__CLOUD__REGION", "eu-west-101"),
            (
                "ECS_JOBWATCH__CLOUD__ENDPOINTS__EVS",
                "https://evs.example.com/",
            ),
            ("ECS_JOBWATCH__PROJECTS__SHANGHAI__REGION", "cn-east-3"),
            ("ECS_JOBWATCH__PROJECTS__NEW__PROJECT_ID", "p2"),
            ("ECS_JOBWATCH__LOG__FORMAT", "text"),
            ("ECS_JOBWATCH__STATE__DIR", "/srv/state"),
            // Empty means unset.
            ("ECS_JOBWATCH__CLOUD__PROJECT_ID", ""),
            // Unrelated variables are left alone.
            ("PATH", "/usr/bin"),
            ("ECS_JOBWATCHER", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.limits().max_in_flight, 32);
    assert_eq!(config.limits().requests_per_second, 0.5);
    assert_eq!(config.poll().initial_interval, Duration::from_secs(5));
    assert!(!config.poll().adaptive);
    let jobs: Vec<String> = config
        .watch()
        .jobs
        .iter()
        .map(|(key, labels)| format!("{key}{labels:?}"))
        .collect();
    assert_eq!(
        jobs,
        [
            "job-a{}",
            "job-b{}",
            "job-c{}",
            "job_d{\"env\": \"y\", \"team\": \"x\"}",
            "evs:e{}",
            "ShangHai/ecs:f{}"
        ]
    );
    assert_eq!(config.region(), Some("eu-west-101"));
    let names: Vec<&str> = config.projects().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["default", "ShangHai", "new"]);
    assert_eq!(config.projects()[1].region.as_deref(), Some("cn-east-3"));
    assert_eq!(
        config.projects()[2]
            .endpoint(Service::Evs)
            .unwrap()
            .as_str(),
        "https://evs.example.com/"
    );
    assert_eq!(config.log().format, LogFormat::Text);
    assert_eq!(config.state().dir, PathBuf::from("/srv/state"));
    assert_eq!(config.project_id(), None);
}

#[test]
fn bad_overrides_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT",
            "many",
            "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT: limits.max_in_flight: invalid type: string \"many\", expected an integer",
        ),
        (
            "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT",
            "2000",
            "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT: limits.max_in_flight: must be from 1 to 1024, got 2000",
        ),
        (
            "ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND",
            "fast",
            "ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND: limits.requests_per_second: invalid type: string \"fast\", expected a floating point",
        ),
        (
            "ECS_JOBWATCH__POLL__INITIAL_INTERVAL",
            "5",
            "ECS_JOBWATCH__POLL__INITIAL_INTERVAL: poll.initial_interval: invalid value: string \"5\", expected a duration",
        ),
        (
            "ECS_JOBWATCH__POLL__INTIAL_INTERVAL",
            "5s",
            "ECS_JOBWATCH__POLL__INTIAL_INTERVAL: poll.intial_interval: unknown field `intial_interval`, expected one of `initial_interval`, `max_interval`, `pending_payment_interval`, `job_timeout`, `not_found_grace`, `adaptive`; did you mean `initial_interval`?",
        ),
        (
            "ECS_JOBWATCH__POLLING__INITIAL_INTERVAL",
            "5s",
            "ECS_JOBWATCH__POLLING__INITIAL_INTERVAL: polling.initial_interval: unknown field `polling`, expected one of `cloud`, `projects`, `credentials`, `poll`, `limits`, `watch`, `state`, `log`, `metrics`, `notify`",
        ),
        (
            "ECS_JOBWATCH__POLL",
            "5s",
            "ECS_JOBWATCH__POLL: not a configuration key; overrides are named ECS_JOBWATCH__SECTION__KEY",
        ),
        (
            "ECS_JOBWATCH__POLL____X",
            "5s",
            "ECS_JOBWATCH__POLL____X: not a configuration key; overrides are named ECS_JOBWATCH__SECTION__KEY",
        ),
        (
            "ECS_JOBWATCH__POLL__INITIAL_INTERVAL__X",
            "5s",
            "ECS_JOBWATCH__POLL__INITIAL_INTERVAL__X: poll.initial_interval.x: invalid type: map, expected a string",
        ),
        (
            "ECS_JOBWATCH__WATCH__JOBS",
            "good, bad/one/x",
            "ECS_JOBWATCH__WATCH__JOBS: watch.jobs[1]: job id contains '/', only A-Z a-z 0-9 - _ are allowed: \"bad/one/x\"",
        ),
        (
            "ECS_JOBWATCH__CLOUD__ENDPOINT",
            "http://example.com",
            "ECS_JOBWATCH__CLOUD__ENDPOINT: cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://example.com\"",
        ),
        (
            "ECS_JOBWATCH__CLOUD__ENDPOINTS__VPC",
            "https://vpc.example.com",
            "ECS_JOBWATCH__CLOUD__ENDPOINTS__VPC: cloud.endpoints.vpc: unknown service \"vpc\", expected one of ecs, bms, evs, ims, cce, rds, eip, smn",
        ),
        (
            "ECS_JOBWATCH__PROJECTS__DEFAULT__REGION",
            "cn-east-3",
            "ECS_JOBWATCH__PROJECTS__DEFAULT__REGION: projects.default.region: [projects.default] is not allowed: the default project is [cloud], set its keys there",
        ),
        (
            "ECS_JOBWATCH__NOTIFY__WEBHOOK",
            "https://h.example.com/",
            "ECS_JOBWATCH__NOTIFY__WEBHOOK: [[notify.webhook]] is a list of tables and cannot be set from the environment; use the configuration file",
        ),
        (
            "ECS_JOBWATCH__NOTIFY__SMN__TOPIC_URN",
            "urn:smn:a:b:c",
            "ECS_JOBWATCH__NOTIFY__SMN__TOPIC_URN: [[notify.smn]] is a list of tables and cannot be set from the environment; use the configuration file",
        ),
        ("ecs_jobwatch__limits__burst", "4", "ok"),
    ];
    for (name, value, expected) in cases {
        check(MINIMAL, &[(name, value)], expected);
    }

    // Two spellings of one key are ambiguous.
    check(
        MINIMAL,
        &[
            ("ECS_JOBWATCH__LIMITS__BURST", "2"),
            ("ecs_jobwatch__limits__burst", "3"),
        ],
        "ecs_jobwatch__limits__burst: sets limits.burst, which ECS_JOBWATCH__LIMITS__BURST sets too",
    );
    // An override may supply what the file lacks.
    check(
        "",
        &[("ECS_JOBWATCH__CLOUD__REGION", "ap-southeast-1")],
        "ok",
    );
}

#[test]
fn systemd_directories() {
    let config = load(MINIMAL, &env(&[("STATE_DIRECTORY", "/var/lib/custom")])).unwrap();
    assert_eq!(config.state().dir, PathBuf::from("/var/lib/custom"));
    let config = load(
        MINIMAL,
        &env(&[("STATE_DIRECTORY", "/var/lib/a:/var/lib/b")]),
    )
    .unwrap();
    assert_eq!(config.state().dir, PathBuf::from("/var/lib/a"));
    let config = load(MINIMAL, &env(&[("STATE_DIRECTORY", "")])).unwrap();
    assert_eq!(config.state().dir, PathBuf::from(DEFAULT_STATE_DIR));
    // The file wins over the systemd default.
    let text = format!("{MINIMAL}[state]\ndir = \"/srv/jobwatch\"\n");
    let config = load(&text, &env(&[("STATE_DIRECTORY", "/var/lib/custom")])).unwrap();
    assert_eq!(config.state().dir, PathBuf::from("/srv/jobwatch"));

    let check_path = |env: &[(&str, &str)], expected: &str| {
        assert_eq!(
            default_config_path(&self::env(env)),
            PathBuf::from(expected),
            "{env:?}"
        )
    };
    check_path(&[], "/etc/ecs-jobwatch/ecs-jobwatch.toml");
    check_path(
        &[("CONFIGURATION_DIRECTORY", "/etc/custom")],
        "/etc/custom/ecs-jobwatch.toml",
    );
    check_path(
        &[("CONFIGURATION_DIRECTORY", "/etc/a:/etc/b")],
        "/etc/a/ecs-jobwatch.toml",
    );
    check_path(
        &[("CONFIGURATION_DIRECTORY", "")],
        "/etc/ecs-jobwatch/ecs-jobwatch.toml",
    );
}

#[test]
fn config_path_precedence() {
    // The flag, then $ECS_JOBWATCH_CONFIG, then $CONFIGURATION_DIRECTORY, then /etc.
    let both = [
        ("ECS_JOBWATCH_CONFIG", "/from/variable.toml"),
        ("CONFIGURATION_DIRECTORY", "/from/systemd"),
    ];
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (Some("/from/flag.toml"), &both, "/from/flag.toml"),
        (None, &both, "/from/variable.toml"),
        (
            None,
            &[("CONFIGURATION_DIRECTORY", "/from/systemd")],
            "/from/systemd/ecs-jobwatch.toml",
        ),
        (
            None,
            &[
                ("ECS_JOBWATCH_CONFIG", ""),
                ("CONFIGURATION_DIRECTORY", "/from/systemd"),
            ],
            "/from/systemd/ecs-jobwatch.toml",
        ),
        (None, &[], "/etc/ecs-jobwatch/ecs-jobwatch.toml"),
        (Some("rel.toml"), &[], "rel.toml"),
    ];
    for (flag, variables, expected) in cases {
        assert_eq!(
            config_path(flag.map(PathBuf::from), &env(variables)),
            PathBuf::from(expected),
            "{flag:?} {variables:?}"
        );
    }
}
