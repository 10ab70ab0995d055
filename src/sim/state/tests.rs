//! Tests of `state`.

use super::*;

#[test]
fn sliding_window_counts_exactly() {
    let mut state = State::default();
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    for millis in [0, 100, 900, 999] {
        state.record_arrival(at(millis), Service::Ecs, None);
    }
    assert_eq!(state.stats.max_requests_in_any_1s_window, 4);
    // At 1000 ms the arrival at 0 ms has left the window.
    state.record_arrival(at(1_000), Service::Ecs, None);
    assert_eq!(state.stats.max_requests_in_any_1s_window, 4);
    state.record_arrival(at(1_050), Service::Ecs, None);
    assert_eq!(state.stats.max_requests_in_any_1s_window, 5);
    assert_eq!(state.stats.requests_total, 6);
    assert_eq!(state.stats.services["ecs"].requests, 6);
}

#[test]
fn stats_keys() {
    let key = |service, project: Option<&str>| LiveKey {
        service,
        project: project.map(str::to_string),
        id: "j".into(),
    };
    let default = Some("p0");
    assert_eq!(key(Service::Ecs, Some("p0")).stats_key(default), "j");
    assert_eq!(key(Service::Ecs, None).stats_key(default), "j");
    assert_eq!(key(Service::Cce, Some("p0")).stats_key(default), "cce:j");
    assert_eq!(key(Service::Ecs, Some("p1")).stats_key(default), "p1/ecs:j");
    assert_eq!(key(Service::Rds, Some("p1")).stats_key(None), "p1/rds:j");
}

#[test]
fn rate_limit_admits_n_per_sliding_second() {
    let mut state = State::default();
    let start = Instant::now();
    let at = |millis: u64| start + Duration::from_millis(millis);
    assert!(state.admit(at(0), 2));
    assert!(state.admit(at(500), 2));
    assert!(!state.admit(at(600), 2));
    assert!(state.admit(at(1_000), 2));
    assert!(!state.admit(at(1_200), 2));
    assert!(state.admit(at(1_500), 2));
    assert_eq!(state.stats.rejected_rate_limit, 2);
    assert!(state.admit(at(1_500), 0));
}
