//! Printing back: `to_redacted_toml` parses to an equal configuration,
//! for chosen files and for generated ones.

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use super::*;

#[test]
fn redacted_toml_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, "PEM").unwrap();
    let full = CONTRACT_EXAMPLE.replace(
        "/etc/ecs-jobwatch/jobs.d",
        &dir.path().display().to_string(),
    ) + CONTRACT_SINKS;
    let with_files = full.replace(
        "source = \"auto\"",
        "source = \"files\"\naccess_key_file = \"/run/credentials/ak\"\nsecret_key_file = \"/run/credentials/sk\"\nsecurity_token_file = \"/run/credentials/token\"",
    );
    let texts = [
        MINIMAL.to_owned(),
        full,
        with_files,
        "[cloud]\nendpoint = \"http://127.0.0.1:9999/\"\n[limits]\nrequests_per_second = 0.25\nburst = 7\n[poll]\njob_timeout = \"1h 30m\"\n".to_owned(),
        format!(
            "[cloud]\nendpoint = \"http://127.0.0.1:9/{{service}}\"\nproject_id = \"p0\"\nca_file = {pem:?}\n\
             endpoints = {{ smn = \"https://smn.example\", \"eip\" = \"https://vpc.example\" }}\n\
             [projects.b]\nproject_id = \"p1\"\nregion = \"r-1\"\nendpoints.ims = \"https://{{service}}.{{region}}.example\"\n\
             [projects.A_1]\nendpoint = \"https://ecs.a.example\"\n\
             [watch]\njobs = [\"x\", \"b/evs:y z=\\\"q\\\" a=1\", \"A_1/ecs:w\"]\n\
             [[notify.webhook]]\nurl = \"https://h.example.com/a\"\n\
             [[notify.webhook]]\nurl = \"http://[::1]:1/b\"\nevents = [\"job.not_found\"]\n\
             statuses = [\"X\"]\nsecret_files = [\"/s\", \"/t\"]\nmax_age = \"1h 1s\"\nname = \"b\"\n\
             [[notify.smn]]\ntopic_urn = \"urn:smn:r-1:p1:t\"\nproject = \"b\"\n"
        ),
    ];
    for text in texts {
        let config = load(&text, &no_env()).unwrap_or_else(|error| panic!("{error}\n{text}"));
        let printed = config.to_redacted_toml();
        let again = Config::from_toml_str(&printed, "printed", &no_env())
            .unwrap_or_else(|error| panic!("{error}\n{printed}"));
        assert_eq!(again, config, "{printed}");
        for key in super::docs::leaf_names(&config) {
            assert!(
                printed.contains(&format!("{key} ")),
                "{key} is not printed:\n{printed}"
            );
        }
    }
}

/// One generated `[cloud]` or `[projects.NAME]` table.
#[derive(Clone, Debug)]
struct GenProject {
    region: Option<String>,
    project_id: Option<String>,
    endpoint: Option<&'static str>,
    endpoints: Vec<(&'static str, &'static str)>,
}

const TEMPLATES: [&str; 4] = [
    "https://{service}.example.com",
    "http://127.0.0.1:9000/{service}",
    "https://api.private.example/",
    "http://[::1]:8080/",
];

const APIS: [&str; 8] = ["ecs", "bms", "evs", "ims", "cce", "rds", "eip", "smn"];

fn gen_project(named: bool) -> impl Strategy<Value = GenProject> {
    (
        proptest::option::of("[a-z][a-z0-9-]{0,10}"),
        "[A-Za-z0-9]{1,32}",
        any::<bool>(),
        proptest::option::of(proptest::sample::select(TEMPLATES.to_vec())),
        proptest::collection::btree_map(
            proptest::sample::select(APIS.to_vec()),
            proptest::sample::select(TEMPLATES.to_vec()),
            0..3,
        ),
    )
        .prop_map(
            move |(region, project_id, has_id, endpoint, endpoints)| GenProject {
                region,
                project_id: (named || has_id).then_some(project_id),
                endpoint,
                endpoints: endpoints.into_iter().collect(),
            },
        )
}

fn write_project(text: &mut String, header: &str, project: &GenProject) {
    let _ = writeln!(text, "[{header}]");
    if let Some(region) = &project.region {
        let _ = writeln!(text, "region = {region:?}");
    }
    if let Some(id) = &project.project_id {
        let _ = writeln!(text, "project_id = {id:?}");
    }
    if let Some(endpoint) = project.endpoint {
        let _ = writeln!(text, "endpoint = {endpoint:?}");
    }
    for (api, url) in &project.endpoints {
        let _ = writeln!(text, "endpoints.{api} = {url:?}");
    }
}

/// Whether a project reaches ECS without a region.
fn has_ecs_endpoint(project: &GenProject) -> bool {
    project.endpoint.is_some() || project.endpoints.iter().any(|(api, _)| *api == "ecs")
}

prop_compose! {
    fn duration(min_secs: u64, max_secs: u64)(secs in min_secs..max_secs, millis in 0u64..1000) -> String {
        format!("{secs}s {millis}ms")
    }
}

/// A whole generated file: text that must load.
fn gen_config(dir: &'static Path) -> impl Strategy<Value = String> {
    let projects = (
        gen_project(false),
        proptest::collection::btree_map(
            "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("not default", |n| n != "default"),
            gen_project(true),
            0..3,
        ),
    );
    let sections = (
        proptest::sample::select(vec!["auto", "env", "Files", "profile", "metadata"]),
        proptest::option::of("/[a-z]{1,8}/[a-z]{1,8}"),
        (
            1u64..100,
            0u64..1000,
            duration(1, 1000),
            duration(1, 100_000),
        ),
        (
            1u32..10_000_000,
            1u32..1000,
            1usize..=1024,
            duration(1, 299),
        ),
        (any::<bool>(), any::<bool>(), 3600u64..10_000_000),
        (
            proptest::sample::select(vec!["json", "text", "journald"]),
            proptest::sample::select(vec!["trace", "debug", "INFO", "warn", "error"]),
            proptest::option::of(1u16..65535),
        ),
    );
    let jobs = proptest::collection::vec(
        (
            any::<proptest::sample::Index>(),
            proptest::sample::select(APIS[..7].to_vec()),
            proptest::collection::btree_map("[a-z][a-z0-9_.-]{0,6}", "[!-\"$-~]{1,10}", 0..3),
        ),
        0..5,
    );
    let sinks = (
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::option::of(proptest::sample::subsequence(
                    crate::config::SINK_EVENTS.to_vec(),
                    1..=4,
                )),
                proptest::option::of(proptest::collection::vec("[A-Za-z_]{1,12}", 1..3)),
                0u8..3,
                duration(1, 1_000_000),
            ),
            0..3,
        ),
        proptest::collection::vec((any::<proptest::sample::Index>(), any::<bool>()), 0..3),
    );
    (projects, sections, jobs, sinks).prop_map(move |((mut cloud, mut named), sections, jobs, sinks)| {
        if cloud.region.is_none() && !has_ecs_endpoint(&cloud) {
            cloud.region = Some("cn-north-4".into());
        }
        for project in named.values_mut() {
            let inherited = cloud.region.is_some() || has_ecs_endpoint(&cloud);
            if project.region.is_none() && !has_ecs_endpoint(project) && !inherited {
                project.region = Some("r".into());
            }
        }
        let mut text = String::new();
        write_project(&mut text, "cloud", &cloud);
        for (name, project) in &named {
            write_project(&mut text, &format!("projects.{name}"), project);
        }
        let (source, file, (initial, extra, pending, timeout), limits, flags, log) = sections;
        let _ = writeln!(text, "[credentials]\nsource = {source:?}");
        if let Some(file) = file {
            let _ = writeln!(text, "access_key_file = {file:?}");
        }
        let _ = writeln!(
            text,
            "[poll]\ninitial_interval = \"{initial}s\"\nmax_interval = \"{}s {extra}ms\"\n\
             pending_payment_interval = {pending:?}\njob_timeout = {timeout:?}\nadaptive = {}",
            initial + 1,
            flags.0
        );
        let (rate, burst, in_flight, request_timeout) = limits;
        let _ = writeln!(
            text,
            "[limits]\nrequests_per_second = {:?}\nburst = {burst}\nmax_in_flight = {in_flight}\nrequest_timeout = {request_timeout:?}",
            f64::from(rate) / 1000.0
        );
        // Every project with its effective region and project id.
        let mut all: Vec<(String, Option<String>, Option<String>)> =
            vec![("default".into(), cloud.region.clone(), cloud.project_id.clone())];
        for (name, project) in &named {
            all.push((
                name.clone(),
                project.region.clone().or_else(|| cloud.region.clone()),
                project.project_id.clone(),
            ));
        }
        let entries: Vec<String> = jobs
            .iter()
            .enumerate()
            .map(|(n, (index, service, labels))| {
                let (project, region, _) = index.get(&all);
                // Without a region, only ECS is certain to have an endpoint.
                let service = if region.is_some() { service } else { "ecs" };
                let mut entry = format!("{project}/{service}:job{n}");
                for (key, value) in labels {
                    let _ = write!(entry, " {key}={value}");
                }
                entry
            })
            .collect();
        let entries = toml::Value::Array(entries.into_iter().map(toml::Value::String).collect());
        let _ = writeln!(text, "[watch]\njobs = {entries}");
        if flags.1 {
            let _ = writeln!(text, "dir = {:?}", dir.display().to_string());
        }
        let (format, level, port) = log;
        let _ = writeln!(
            text,
            "[state]\ndir = \"/srv/state\"\nretention = \"{}s\"\n[log]\nformat = {format:?}\nlevel = {level:?}",
            flags.2
        );
        if let Some(port) = port {
            let _ = writeln!(text, "[metrics]\nlisten = \"127.0.0.1:{port}\"");
        }
        let (webhooks, smn) = sinks;
        for (n, (named, events, statuses, secrets, max_age)) in webhooks.iter().enumerate() {
            let _ = writeln!(text, "[[notify.webhook]]\nurl = \"https://h{n}.example.com/x\"\nmax_age = {max_age:?}");
            if *named {
                let _ = writeln!(text, "name = \"hook_{n}\"");
            }
            if let Some(events) = events {
                let _ = writeln!(text, "events = {events:?}");
            }
            if let Some(statuses) = statuses {
                let _ = writeln!(text, "statuses = {statuses:?}");
            }
            match secrets {
                1 => {
                    let _ = writeln!(text, "secret_file = \"/run/s{n}\"");
                }
                2 => {
                    let _ = writeln!(text, "secret_files = [\"/run/a{n}\", \"/run/b{n}\"]");
                }
                _ => {}
            }
        }
        let publishers: Vec<&(String, Option<String>, Option<String>)> = all
            .iter()
            .filter(|(_, region, id)| region.is_some() && id.is_some())
            .collect();
        if !publishers.is_empty() {
            for (n, (index, named)) in smn.iter().enumerate() {
                let (project, region, id) = index.get(&publishers);
                let (region, id) = (region.clone().unwrap_or_default(), id.clone().unwrap_or_default());
                let _ = writeln!(
                    text,
                    "[[notify.smn]]\ntopic_urn = \"urn:smn:{region}:{id}:topic{n}\"\nproject = {project:?}"
                );
                if *named {
                    let _ = writeln!(text, "name = \"pager{n}\"");
                }
            }
        }
        text
    })
}

#[test]
fn generated_configurations_round_trip() {
    // The directory outlives every case; it is leaked on purpose, once.
    let dir: &'static Path = Box::leak(tempfile::tempdir().unwrap().keep().into_boxed_path());
    let mut runner = TestRunner::new(RunnerConfig::with_cases(256));
    let result = runner.run(&gen_config(dir), |text| {
        let config = load(&text, &no_env())
            .map_err(|error| TestCaseError::fail(format!("{error}\n{text}")))?;
        let printed = config.to_redacted_toml();
        let again = Config::from_toml_str(&printed, "printed", &no_env())
            .map_err(|error| TestCaseError::fail(format!("{error}\n{printed}")))?;
        prop_assert_eq!(&again, &config, "{}", printed);
        Ok(())
    });
    let _ = std::fs::remove_dir(dir);
    if let Err(error) = result {
        panic!("{error}");
    }
}

proptest! {
    #[test]
    fn garbage_never_panics(text in "\\PC*", value in "\\PC*") {
        let _ = load(&text, &no_env());
        let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__LIMITS__BURST", &value)]));
        let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__POLL__JOB_TIMEOUT", &value)]));
        let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__WATCH__JOBS", &value)]));
        let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__PROJECTS__X__ENDPOINTS__EVS", &value)]));
    }

    #[test]
    fn garbage_in_known_keys_never_panics(
        key in proptest::sample::select(super::docs::dotted_keys()),
        value in prop_oneof![
            "\\PC*".prop_map(|text| format!("{text:?}")),
            proptest::num::i64::ANY.prop_map(|number| number.to_string()),
            proptest::num::f64::ANY.prop_map(|number| format!("{number:?}")),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
        ],
    ) {
        let key = key
            .replace("NAME", "p")
            .replace("SERVICE", "evs")
            .replace("[i]", "");
        let (table, name) = key.rsplit_once('.').unwrap_or(("cloud", key.as_str()));
        let text = match table {
            "cloud" => format!("[cloud]\nregion = \"r\"\n{name} = {value}\n"),
            notify if notify.starts_with("notify.") => format!("{MINIMAL}[[{notify}]]\n{name} = {value}\n"),
            other => format!("{MINIMAL}[{other}]\n{name} = {value}\n"),
        };
        let result = load(&text, &no_env());
        if let Err(error) = result {
            prop_assert!(!error.to_string().contains('\n'));
        }
    }
}
