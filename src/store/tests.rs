use std::sync::mpsc;

use super::outbox::Queued;
use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::*;
use crate::job::{JobKey, Labels, Service};

fn key(text: &str) -> JobKey {
    JobKey::parse(text).unwrap()
}

fn record(id: &str) -> JobRecord {
    JobRecord {
        key: key(id),
        labels: Labels::from([("team".to_string(), "x".to_string())]),
        status: Some("RUNNING".into()),
        job_type: Some("createServer".into()),
        tracked_since: 1,
        first_seen: Some(2),
        last_change: Some(3),
        last_poll: Some(4),
        next_poll: Some(5),
        polls: 6,
        transitions: 1,
        finished: false,
        finished_at: None,
        timeout_announced: false,
    }
}

fn duration(service: Service, job_type: &str, ms: i64) -> Write {
    Write::Duration {
        row: DurationRow {
            service,
            job_type: job_type.into(),
            phase: crate::policy::adaptive::Phase::Whole,
            source: crate::policy::server_time::Source::Server,
            duration_ms: ms,
        },
        finished_at: 100,
    }
}

#[test]
fn round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = record("a");
    let mut b = record("b");
    b.finished = true;
    b.finished_at = Some(100);
    b.status = Some("SUCCESS".into());
    store
        .apply(&[
            Write::Job(a.clone()),
            Write::Job(b.clone()),
            Write::Polled {
                key: a.key.clone(),
                polls: 9,
                last_poll: 10,
                next_poll: None,
            },
            Write::Announced {
                key: a.key.clone(),
                event_id: "e1".into(),
                event: "job.subjob_failed",
                at: 7,
            },
            Write::Announced {
                key: a.key.clone(),
                event_id: "e1".into(),
                event: "job.subjob_failed",
                at: 8,
            },
            duration(Service::Ecs, "createServer", 60_000),
            duration(Service::Cce, "createServer", 600_000),
        ])
        .unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let jobs = store.load_jobs().unwrap();
    let mut expected_a = a.clone();
    expected_a.polls = 9;
    expected_a.last_poll = Some(10);
    expected_a.next_poll = None;
    assert_eq!(jobs, vec![expected_a, b.clone()]);
    assert_eq!(store.announced(&a.key).unwrap(), vec!["e1".to_string()]);
    assert_eq!(store.announced_for_unfinished().unwrap().len(), 1);
    let durations = store.durations(10).unwrap();
    assert_eq!(durations.len(), 2);
    assert_eq!(durations[0].service, Service::Cce);
    assert_eq!(durations[1].duration_ms, 60_000);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_eq!(store.job(&b.key).unwrap(), Some(b.clone()));
    drop(store);

    // The last event survives a later record of the same job.
    let mut store = Store::open(dir.path()).unwrap();
    store
        .apply(&[
            Write::LastEvent {
                key: b.key.clone(),
                json: "{\"event\":\"job.transition\"}".into(),
            },
            Write::Job(b.clone()),
        ])
        .unwrap();
    assert_eq!(
        store.last_event(&b.key).unwrap().as_deref(),
        Some("{\"event\":\"job.transition\"}")
    );
    assert_eq!(store.last_event(&key("nope")).unwrap(), None);
}

#[test]
fn equal_job_ids_of_two_services_and_projects_are_two_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let keys = ["j", "evs:j", "sh/ecs:j", "sh/evs:j"];
    let mut writes = Vec::new();
    for (n, text) in keys.iter().enumerate() {
        let mut r = record(text);
        r.polls = n as u64;
        writes.push(Write::Job(r));
        writes.push(Write::Announced {
            key: key(text),
            event_id: format!("e{n}"),
            event: "job.subjob_failed",
            at: 1,
        });
    }
    store.apply(&writes).unwrap();
    assert_eq!(store.load_jobs().unwrap().len(), 4);
    for (n, text) in keys.iter().enumerate() {
        assert_eq!(store.job(&key(text)).unwrap().unwrap().polls, n as u64);
        assert_eq!(store.announced(&key(text)).unwrap(), vec![format!("e{n}")]);
    }
}

#[test]
fn retention_forgets_old_finished_jobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut old = record("old");
    old.finished = true;
    old.finished_at = Some(10);
    let mut recent = record("recent");
    recent.finished = true;
    recent.finished_at = Some(1000);
    let running = record("running");
    store
        .apply(&[Write::Job(old), Write::Job(recent), Write::Job(running)])
        .unwrap();
    assert_eq!(store.forget_finished_before(500).unwrap(), 1);
    let ids: Vec<String> = store
        .load_jobs()
        .unwrap()
        .iter()
        .map(|j| j.key.to_string())
        .collect();
    assert_eq!(ids, vec!["recent", "running"]);
}

#[test]
fn second_opener_is_refused_and_missing_parent_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StateError::Locked(_))
    ));
    // Readers do not need the lock.
    assert!(Store::open_read_only(dir.path()).is_ok());
    let missing = dir.path().join("nope").join("state");
    let error = Store::open(&missing).unwrap_err();
    assert!(matches!(error, StateError::MissingDir(_)), "{error}");
    assert!(error.to_string().contains("nope"), "{error}");
}

#[test]
fn a_running_daemon_is_seen_through_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    // No lock file yet: no daemon.
    assert!(!Store::daemon_running(dir.path()).unwrap());
    let daemon = Store::open(dir.path()).unwrap();
    assert!(Store::daemon_running(dir.path()).unwrap());
    // Asking twice takes nothing away, and the daemon is not disturbed.
    assert!(Store::daemon_running(dir.path()).unwrap());
    drop(daemon);
    assert!(!Store::daemon_running(dir.path()).unwrap());
    // The question released its shared lock: a daemon can start.
    let _again = Store::open(dir.path()).unwrap();
}

#[test]
fn an_in_memory_store_is_migrated_and_takes_writes() {
    let mut store = Store::open_in_memory().unwrap();
    assert_eq!(version(&store), SCHEMA_VERSION);
    store.apply(&[Write::Job(record("a"))]).unwrap();
    assert_eq!(store.job(&key("a")).unwrap(), Some(record("a")));
}

#[test]
fn a_missing_state_dir_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = Store::open(&state).unwrap();
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    drop(store);
    // A relative path in the current directory has the empty parent.
    assert!(create_dir(Path::new("")).is_err());
}

#[test]
fn writer_applies_in_order_and_returns_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let writer = Writer::start(store, Box::new(|_| {}));
    let mut a = record("a");
    writer.send(vec![Write::Job(a.clone())]);
    a.status = Some("SUCCESS".into());
    writer.send(vec![Write::Job(a.clone())]);
    assert!(writer.healthy());
    let store = writer.finish().unwrap().unwrap();
    assert_eq!(
        store.load_jobs().unwrap()[0].status.as_deref(),
        Some("SUCCESS")
    );
}

fn outbox(store: &Store) -> Vec<(String, String, String, i64, i64)> {
    let mut statement = store
        .conn
        .prepare("SELECT sink, event_id, body, created_at, next_attempt_at FROM outbox ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn queue(sink: &str, event_id: &str, body: &str, at: i64) -> Write {
    Write::Outbox(Queued {
        sink: sink.into(),
        target: format!("https://{sink}.example.com/"),
        event_id: event_id.into(),
        body: body.into(),
        created_at: at,
    })
}

#[test]
fn outbox_queues_a_fact_once_per_sink() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store
        .apply(&[
            Write::Job(record("a")),
            queue("s1", "e1", "{}", 10),
            queue("s2", "e1", "{}", 10),
            queue("s1", "e2", "{\"n\":2}", 11),
        ])
        .unwrap();
    // A re-announcement after a crash: same fact, later time.
    store
        .apply(&[queue("s1", "e1", "{\"again\":1}", 20)])
        .unwrap();
    assert_eq!(
        outbox(&store),
        vec![
            ("s1".into(), "e1".into(), "{}".into(), 10, 10),
            ("s2".into(), "e1".into(), "{}".into(), 10, 10),
            ("s1".into(), "e2".into(), "{\"n\":2}".into(), 11, 11),
        ]
    );
    assert_eq!(
        super::outbox::sinks(&store.conn).unwrap(),
        vec![("s1".to_string(), 2), ("s2".to_string(), 1)]
    );
    assert_eq!(
        super::outbox::rename_sink(&store.conn, "s2", "named").unwrap(),
        1
    );
    assert_eq!(outbox(&store)[1].0, "named");
}

#[test]
fn writer_calls_the_outbox_hook_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let db = db_path(dir.path());
    let (tell, told) = mpsc::channel();
    let writer = Writer::start_with_outbox_hook(
        store,
        Box::new(|_| {}),
        Box::new(move || {
            // Committed: another connection sees the row.
            let conn = Connection::open(&db).unwrap();
            let rows: i64 = conn
                .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
                .unwrap();
            tell.send(rows).unwrap();
        }),
    );
    writer.send(vec![Write::Job(record("a"))]);
    writer.send(vec![queue("s", "e", "{}", 1)]);
    writer.finish().unwrap();
    assert_eq!(told.try_iter().collect::<Vec<_>>(), vec![1]);
}

fn version(store: &Store) -> i64 {
    store
        .conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[test]
fn version_1_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(db_path(dir.path())).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO jobs (job_id, status, tracked_since) VALUES ('old', 'RUNNING', 1)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(version(&store), SCHEMA_VERSION);
    store.apply(&[queue("s", "e", "{}", 1)]).unwrap();
    assert_eq!(outbox(&store).len(), 1);
    let jobs = store.load_jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].key, key("old"));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(db_path(dir.path())).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()),
        Err(StateError::TooNew { found: 99, .. })
    ));
}
