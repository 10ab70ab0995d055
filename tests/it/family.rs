//! The job family end to end: for every service, a job of each status
//! path (success, failure with a reason, a word of the service's own that
//! is not final, not found before and after being seen) watched through
//! the real binary against the simulator, with the contract's fields and
//! levels; one alert rule, `status="FAIL"`, catches the failures of every
//! service. And two projects and three services in one process share one
//! budget: it is never exceeded, and a 429 in one project pauses all.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::daemon::check_common_fields;
use crate::harness::{Match, PROJECT, PROJECT_2, Setup, Sim, dump, faults, sim, sim_two_projects};

/// A service's own words: at work, done, failed, and one of its own that
/// is not final (with the common word it must be announced as).
struct Words {
    service: &'static str,
    running: &'static str,
    success: &'static str,
    fail: &'static str,
    other: &'static str,
    other_common: &'static str,
}

const SERVICES: [Words; 7] = [
    Words {
        service: "ecs",
        running: "RUNNING",
        success: "SUCCESS",
        fail: "FAIL",
        other: "ROLLING_BACK",
        other_common: "ROLLING_BACK",
    },
    Words {
        service: "bms",
        running: "RUNNING",
        success: "SUCCESS",
        fail: "FAIL",
        other: "ROLLING_BACK",
        other_common: "ROLLING_BACK",
    },
    Words {
        service: "evs",
        running: "RUNNING",
        success: "SUCCESS",
        fail: "FAIL",
        other: "WAITING_EXECUTE",
        other_common: "WAITING_EXECUTE",
    },
    Words {
        service: "ims",
        running: "RUNNING",
        success: "SUCCESS",
        fail: "FAIL",
        other: "QUEUED",
        other_common: "QUEUED",
    },
    Words {
        service: "cce",
        running: "Running",
        success: "Success",
        fail: "Failed",
        other: "Paused",
        other_common: "PAUSED",
    },
    Words {
        service: "rds",
        running: "Running",
        success: "Completed",
        fail: "Failed",
        other: "Pending",
        other_common: "PENDING",
    },
    Words {
        service: "eip",
        running: "RUNNING",
        success: "SUCCESS",
        fail: "FAIL",
        other: "ROLLING_BACK",
        other_common: "ROLLING_BACK",
    },
];

/// The five jobs of one service: `{svc}-ok`, `{svc}-fail`, `{svc}-other`,
/// `{svc}-never` (never visible), `{svc}-gone` (vanishes while running).
fn tables(words: &Words) -> String {
    let Words {
        service,
        running,
        success,
        fail,
        other,
        ..
    } = words;
    // What the job makes: a server for ECS and BMS, else its resource.
    let made = match *service {
        "ecs" | "bms" => "server_id",
        _ => "resource_id",
    };
    format!(
        r#"
[[job]]
id = "{service}-ok"
service = "{service}"
job_type = "create-{service}"
{made} = "res-{service}"
timeline = [ {{ at = "0s", status = "{running}" }}, {{ at = "3s", status = "{success}" }} ]

[[job]]
id = "{service}-fail"
service = "{service}"
job_type = "create-{service}"
timeline = [ {{ at = "0s", status = "{running}" }}, {{ at = "3s", status = "{fail}", error_code = "X.0001", fail_reason = "quota exceeded in {service}" }} ]

[[job]]
id = "{service}-other"
service = "{service}"
job_type = "create-{service}"
timeline = [ {{ at = "0s", status = "{other}" }}, {{ at = "4s", status = "{success}" }} ]

[[job]]
id = "{service}-never"
service = "{service}"
job_type = "create-{service}"
visible_after = "1h"
timeline = [ {{ at = "1h", status = "{running}" }} ]

[[job]]
id = "{service}-gone"
service = "{service}"
job_type = "create-{service}"
vanish_after = "3s"
timeline = [ {{ at = "0s", status = "{running}" }} ]
"#
    )
}

fn family_setup(sim: &Sim) -> Setup {
    let keys: Vec<String> = SERVICES
        .iter()
        .flat_map(|w| {
            ["ok", "fail", "other", "never", "gone"]
                .map(|path| format!("{svc}:{svc}-{path} path={path}", svc = w.service))
        })
        .collect();
    Setup::new(sim)
        .set("cloud.endpoint", format!("{}/{{service}}", sim.base_url()))
        .set("cloud.region", "cn-north-4")
        .set("poll.not_found_grace", "8s")
        .set("limits.requests_per_second", 100)
        .watch_file("family.jobs", &(keys.join("\n") + "\n"))
}

fn one<'a>(events: &'a [Value], wanted: &Match) -> &'a Value {
    let found = wanted.all(events);
    assert_eq!(found.len(), 1, "{wanted:?}: {}", dump(events));
    found[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_every_status_path() {
    let sim = sim(&SERVICES.iter().map(tables).collect::<String>()).await;
    let setup = family_setup(&sim);
    let mut daemon = setup.start().await;
    for words in &SERVICES {
        let svc = words.service;
        for (job, status) in [("ok", "SUCCESS"), ("fail", "FAIL"), ("other", "SUCCESS")] {
            daemon
                .await_event(
                    &Match::transition(&format!("{svc}-{job}"), status).with("service", svc),
                )
                .await;
        }
        for job in ["never", "gone"] {
            daemon
                .await_event(
                    &Match::event("job.not_found")
                        .with("job_id", format!("{svc}-{job}"))
                        .with("service", svc),
                )
                .await;
        }
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    let events = &run.events;

    for words in &SERVICES {
        let svc = words.service;
        let ok = one(
            events,
            &Match::transition(&format!("{svc}-ok"), "SUCCESS").with("service", svc),
        );
        assert_eq!(ok["level"], "INFO", "{ok}");
        assert_eq!(ok["service_status"], words.success, "{ok}");
        // Its first poll may come after its end on a loaded machine; then
        // the first sighting is the final one.
        let saw_running = !Match::transition(&format!("{svc}-ok"), "RUNNING")
            .with("service", svc)
            .all(events)
            .is_empty();
        let previous = if saw_running {
            Value::from("RUNNING")
        } else {
            Value::Null
        };
        assert_eq!(ok["previous_status"], previous, "{ok}");
        assert_eq!(ok["region"], "cn-north-4", "{ok}");
        assert_eq!(ok["project"], "default", "{ok}");
        assert_eq!(ok["project_id"], PROJECT, "{ok}");
        assert_eq!(ok["job_type"], format!("create-{svc}"), "{ok}");
        assert_eq!(ok["labels"]["path"], "ok", "{ok}");
        assert!(
            ok["resource_ids"]
                .as_array()
                .is_some_and(|ids| ids.contains(&Value::from(format!("res-{svc}")))),
            "{ok}"
        );
        let servers = ok["server_ids"].as_array().map_or(0, Vec::len);
        assert_eq!(servers, usize::from(matches!(svc, "ecs" | "bms")), "{ok}");

        let failed = one(
            events,
            &Match::transition(&format!("{svc}-fail"), "FAIL").with("service", svc),
        );
        assert_eq!(failed["level"], "ERROR", "{failed}");
        assert_eq!(failed["service_status"], words.fail, "{failed}");
        assert!(
            failed["fail_reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("quota exceeded")),
            "{failed}"
        );

        let other = one(
            events,
            &Match::transition(&format!("{svc}-other"), words.other_common).with("service", svc),
        );
        assert_eq!(other["level"], "INFO", "{other}");
        assert_eq!(other["service_status"], words.other, "{other}");
        assert_eq!(other["previous_status"], Value::Null, "{other}");

        let never = one(
            events,
            &Match::event("job.not_found").with("job_id", format!("{svc}-never")),
        );
        assert_eq!(never["level"], "ERROR", "{never}");
        assert_eq!(never["last_status"], Value::Null, "{never}");
        assert_eq!(never["service"], svc, "{never}");
        let gone = one(
            events,
            &Match::event("job.not_found").with("job_id", format!("{svc}-gone")),
        );
        assert_eq!(gone["last_status"], "RUNNING", "{gone}");
    }

    // One alert rule for every service.
    let failing: BTreeSet<&str> = Match::transition_into("FAIL")
        .all(events)
        .iter()
        .filter_map(|event| event["service"].as_str())
        .collect();
    let all: BTreeSet<&str> = SERVICES.iter().map(|w| w.service).collect();
    assert_eq!(failing, all);
    // Equal job ids of two services never share an event id.
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|event| event["event_id"].as_str())
        .collect();
    let unique: BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{}", dump(events));
}

/// `n` jobs of `service` in `project` (a project id) that run for an hour.
fn running(service: &str, project: &str, prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[job]]\nid = \"{prefix}-{i}\"\nservice = \"{service}\"\nproject = \"{project}\"\n\
                 job_type = \"t\"\ntimeline = [ {{ at = \"0s\", status = \"RUNNING\" }} ]\n\n"
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_projects_and_three_services_share_one_budget() {
    const RATE: u64 = 8;
    const MAX_IN_FLIGHT: u64 = 2;
    let mut tables = String::new();
    let mut lines = Vec::new();
    for service in ["ecs", "evs", "cce"] {
        for (project, name, prefix) in [(PROJECT, "default", "a"), (PROJECT_2, "sh", "b")] {
            let prefix = format!("{prefix}-{service}");
            tables.push_str(&running(service, project, &prefix, 5));
            for i in 0..5 {
                lines.push(format!("{name}/{service}:{prefix}-{i}"));
            }
        }
    }
    let sim = sim_two_projects(&tables).await;
    let setup = Setup::new(&sim)
        .set("cloud.endpoint", format!("{}/{{service}}", sim.base_url()))
        .set("cloud.region", "cn-north-4")
        .set("poll.initial_interval", "1s")
        .set("poll.max_interval", "1s")
        .set("limits.requests_per_second", RATE as i64)
        .set("limits.max_in_flight", MAX_IN_FLIGHT as i64)
        .set("projects.sh", {
            let mut sh = toml::Table::new();
            sh.insert("project_id".into(), PROJECT_2.into());
            sh.insert("region".into(), "cn-east-3".into());
            toml::Value::Table(sh)
        })
        .watch_file("two.jobs", &(lines.join("\n") + "\n"));
    let mut daemon = setup.start().await;
    // 30 jobs asking for a poll a second: four times the budget.
    daemon
        .await_events(&Match::transition_into("RUNNING"), lines.len())
        .await;
    let steady = sim
        .await_stats("a few seconds of saturated polling", |stats| {
            stats.requests_total >= 60
        })
        .await;

    // Throttle one project only; every call of both must pause.
    // Long enough for the throttled jobs' next polls to fall inside it
    // under the saturated budget (each job is polled about every 4 s).
    let from = sim.elapsed() + Duration::from_millis(300);
    let until = from + Duration::from_secs(10);
    let throttled_jobs: Vec<String> = (0..5)
        .map(|i| format!("\"{PROJECT_2}/ecs:b-ecs-{i}\""))
        .collect();
    sim.set_faults(faults(&format!(
        "[[fault]]\nkind = \"throttle\"\nfrom = \"{}ms\"\nuntil = \"{}ms\"\nretry_after = \"3s\"\njobs = [{}]\n",
        from.as_millis(),
        until.as_millis(),
        throttled_jobs.join(", ")
    )));
    let at_first_429 = sim
        .await_stats("the first throttled answer", |stats| {
            stats.faults_injected.get("throttle").copied().unwrap_or(0) >= 1
        })
        .await;
    // Watch 2.5 s of the 3 s pause from the simulator's side.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let paused = sim.stats();
    sim.await_stats("polling resumed", |stats| {
        stats.requests_total >= paused.requests_total + 5
    })
    .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);

    let during = paused.requests_total - at_first_429.requests_total;
    assert!(
        during <= MAX_IN_FLIGHT,
        "{during} requests of either project in the 2.5 s after one project's 429"
    );
    // The simulator stamps arrivals, not dispatches: a request granted at
    // the end of one budget second may arrive in the next, so one more
    // than the budget can meet in a sliding second.
    let max = sim.stats().max_requests_in_any_1s_window;
    assert!(
        max <= RATE + 1,
        "{max} requests in one second, budget {RATE}/s"
    );
    assert!(steady.services.len() >= 3, "{:?}", steady.services);
    for (service, stats) in &steady.services {
        assert!(stats.requests > 0, "{service}: {stats:?}");
    }
    let regions: BTreeSet<&str> = Match::event("job.transition")
        .all(&run.events)
        .iter()
        .filter_map(|event| event["region"].as_str())
        .collect();
    assert_eq!(regions, BTreeSet::from(["cn-east-3", "cn-north-4"]));
}
