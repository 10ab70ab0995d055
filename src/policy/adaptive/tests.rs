//! Tests of the adaptive cadence: the keyed history, the estimator from 0,
//! 1, 5 and 200 samples, the placement, batches, the chance the triage
//! ranks by, and the shims the scheduler still calls.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// A history of one ECS type whose durations are `seconds`.
fn history(job_type: &str, seconds: &[f64]) -> History {
    let mut history = History::new();
    for &s in seconds {
        history.record(job_type, Duration::from_secs_f64(s));
    }
    history
}

/// `count` durations evenly spread over `[low, high]`.
fn spread(low: f64, high: f64, count: usize) -> Vec<f64> {
    if count == 1 {
        return vec![0.5 * (low + high)];
    }
    (0..count)
        .map(|i| low + (high - low) * i as f64 / (count - 1) as f64)
        .collect()
}

fn observe(job_type: &str, age: f64) -> Observation<'_> {
    Observation {
        service: Service::Ecs,
        job_type,
        age: Duration::from_secs_f64(age),
        batch: None,
    }
}

/// The gap in seconds with the middle draw (no jitter).
fn gap(history: &History, observation: &Observation<'_>) -> Option<f64> {
    place(history, &Cadence::default(), observation, SPACING, 0.5).map(|g| g.as_secs_f64())
}

/// A small deterministic generator for the simulations.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Waits on a job that ends at `end` seconds (first poll at 1 s) and
/// returns (calls, detection delay): adaptive when `history` is given
/// and knows the type, else the plain cadence.
fn wait(history: Option<&History>, job_type: &str, end: f64) -> (u32, f64) {
    let cadence = Cadence::default();
    let running = crate::job::Status::Running;
    let (mut now, mut calls, mut streak) = (1.0, 0, 0);
    loop {
        calls += 1;
        if now >= end {
            return (calls, now - end);
        }
        streak += 1;
        let adaptive = history.and_then(|h| gap(h, &observe(job_type, now)));
        let gap = adaptive.unwrap_or_else(|| {
            let situation = crate::policy::cadence::Situation::Status(&running);
            crate::policy::cadence::next_gap(&cadence, situation, streak, S(0), 0.5).as_secs_f64()
        });
        now += gap;
    }
}

#[test]
fn no_samples_means_the_plain_cadence() {
    let empty = History::new();
    assert_eq!(gap(&empty, &observe("createServer", 10.0)), None);
    // Another type of the same service, or the same type of another
    // service, knows nothing of this one.
    let known = history("createServer", &[60.0; 5]);
    assert_eq!(gap(&known, &observe("deleteVMs", 10.0)), None);
    let cce = Observation {
        service: Service::Cce,
        ..observe("createServer", 10.0)
    };
    assert_eq!(gap(&known, &cce), None);
    assert!(gap(&known, &observe("createServer", 10.0)).is_some());
    assert_eq!(
        next_gap(&known, &Cadence::default(), None, S(10), 0.5),
        None
    );
}

#[test]
fn the_type_earns_weight_and_sharpness_with_samples() {
    // (samples, type's weight, bandwidth range)
    let cases = [
        (1, 0.5, (0.15, 0.25)),
        (5, 5.0 / 6.0, (0.15, 0.25)),
        (200, 200.0 / 201.0, (MIN_BANDWIDTH, 0.1)),
    ];
    // One duration gets the assumed spread; many get their own, narrowed
    // by their count.
    let mut previous = 0.0;
    for (n, weight, (low, high)) in cases {
        let history = history("t", &spread(15.0, 35.0, n));
        let Some(model) = history.model(Service::Ecs, "t") else {
            panic!("no model with {n} samples");
        };
        assert_eq!(model.samples(), n);
        assert!((model.weight() - weight).abs() < 1e-9, "{n}");
        let h = model.bandwidth();
        assert!(low <= h && h <= high, "{n}: bandwidth {h}");
        previous = h;
    }
    assert!(previous < 0.1);
}

#[test]
fn estimator_with_0_1_5_and_200_samples() {
    // Durations of the type: 15 to 35 s. The service's other type takes
    // about 5 minutes, so the pooled prior is far from this type.
    let truth = |n: usize| spread(15.0, 35.0, n);
    let mut base = history("slow", &spread(250.0, 350.0, 50));
    let at = |n: usize| {
        let mut h = base.clone();
        for s in truth(n) {
            h.record("fast", Duration::from_secs_f64(s));
        }
        h
    };
    let probe = |h: &History| {
        let model = h.model(Service::Ecs, "fast");
        model.map(|m| (m.cdf(10.0), m.cdf(25.0), m.cdf(40.0), m.cdf(200.0)))
    };
    assert_eq!(probe(&at(0)), None);
    // One sample: half its own box around 25 s, half the prior.
    let Some((c10, c25, c40, c200)) = probe(&at(1)) else {
        panic!("no model with 1 sample");
    };
    assert!(c10 < 0.05 && (0.25..0.35).contains(&c25) && (0.5..0.6).contains(&c40));
    assert!(c200 < 0.75, "the prior keeps a slow job possible: {c200}");
    // Five: most of the mass between 15 and 35 s.
    let Some((c10, c25, c40, _)) = probe(&at(5)) else {
        panic!("no model with 5 samples");
    };
    assert!(c10 < 0.05 && (0.35..0.55).contains(&c25) && c40 > 0.8);
    // Two hundred: the type's own shape.
    let Some((c10, c25, c40, c200)) = probe(&at(200)) else {
        panic!("no model with 200 samples");
    };
    assert!(c10 < 0.01 && (0.45..0.55).contains(&c25) && c40 > 0.99 && c200 > 0.99);
    base.record("slow", S(300));
}

#[test]
fn few_samples_never_hurt() {
    // Jobs of 15 to 35 s, watched with 0, 1, 5 and 200 finished jobs of
    // their type known, against the plain cadence on the same jobs. The
    // placement minimises calls + 2 * delay / SPACING (one second of
    // delay is worth two calls at the default spacing): on that cost the
    // adaptive cadence is never worse, and it never detects later.
    let mut rng = Lcg(7);
    let jobs: Vec<f64> = (0..400).map(|_| 15.0 + 20.0 * rng.next()).collect();
    let run = |history: Option<&History>| {
        let (mut calls, mut delay) = (0u32, 0.0);
        for &end in &jobs {
            let (c, d) = wait(history, "fast", end);
            calls += c;
            delay += d;
        }
        (
            f64::from(calls) / jobs.len() as f64,
            delay / jobs.len() as f64,
        )
    };
    let cost = |(calls, delay): (f64, f64)| calls + 2.0 * delay / SPACING.as_secs_f64();
    let plain = run(None);
    let mut seen = Vec::new();
    for n in [0usize, 1, 5, 200] {
        let samples: Vec<f64> = (0..n).map(|_| 15.0 + 20.0 * rng.next()).collect();
        let known = history("fast", &samples);
        seen.push((n, run(Some(&known))));
    }
    let report = format!("plain {plain:.2?}, adaptive {seen:.2?}");
    for &(n, (calls, delay)) in &seen {
        assert!(cost((calls, delay)) <= cost(plain), "{n}: {report}");
        assert!(delay <= plain.1, "{n}: {report}");
        if n == 0 {
            assert_eq!((calls, delay), plain, "{report}");
        } else {
            assert!(delay < 0.5 * plain.1, "{n}: {report}");
        }
        if n >= 5 {
            assert!(calls <= plain.0, "{n}: {report}");
        }
    }
}

#[test]
fn sparse_early_dense_near_the_end_growing_past_it() {
    // Power actions: 15 to 35 s, full history.
    let history = history("batchStopServers", &spread(15.0, 35.0, 200));
    let cases = [
        // (age, lowest gap, highest gap)
        (0.0, 14.0, 20.0),
        (16.0, 3.0, 5.5),
        (28.0, 2.0, 3.5),
        (33.0, 1.0, 2.5),
        (40.0, 9.0, 11.0),
        (100.0, 25.0, 25.0),
        (1000.0, 30.0, 30.0),
    ];
    for (age, low, high) in cases {
        let Some(got) = gap(&history, &observe("batchStopServers", age)) else {
            panic!("no gap at {age}");
        };
        assert!(low <= got && got <= high, "at {age}: {got}");
    }
}

#[test]
fn long_quiet_stretches_are_capped() {
    // Resizes take 90 to 240 s: the first gaps are as long as allowed
    // (within the plan's grid step).
    let history = history("resizeServer", &spread(90.0, 240.0, 100));
    for age in [0.0, 1.0] {
        let got = gap(&history, &observe("resizeServer", age)).unwrap_or(0.0);
        assert!((29.5..=30.0).contains(&got), "at {age}: {got}");
    }
}

#[test]
fn the_plan_sees_every_later_poll() {
    // Uniform 15 to 35 s: the optimal schedule polls sparsely at first and
    // more densely toward the end, with fewer polls in all than the
    // one-step rule (which a spacing other than the default still uses).
    let history = history("p", &spread(15.0, 35.0, 200));
    let schedule = |spacing: Duration| {
        let (mut age, mut polls) = (1.0, Vec::new());
        while age < 35.0 && polls.len() < 100 {
            let observation = observe("p", age);
            let Some(g) = place(&history, &Cadence::default(), &observation, spacing, 0.5) else {
                panic!("no gap at {age}");
            };
            age += g.as_secs_f64();
            polls.push(age);
        }
        polls
    };
    let planned = schedule(SPACING);
    // The one-step rule at a spacing a hair off the default.
    let one_step = schedule(SPACING + Duration::from_nanos(1));
    // Calls and delay over jobs ending evenly between 15 and 35 s.
    let cost = |polls: &[f64]| {
        let ends: Vec<f64> = (0..=200).map(|i| 15.0 + 0.1 * f64::from(i)).collect();
        let (mut calls, mut delay) = (0.0, 0.0);
        for &end in &ends {
            let index = polls.partition_point(|&p| p < end).min(polls.len() - 1);
            // The first poll at 1 s, then the schedule.
            calls += (index + 2) as f64;
            delay += polls[index] - end;
        }
        (calls + 2.0 * delay) / ends.len() as f64
    };
    assert!(
        cost(&planned) < cost(&one_step),
        "{planned:?}: {} vs {one_step:?}: {}",
        cost(&planned),
        cost(&one_step)
    );
    let gaps: Vec<f64> = planned.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.first() > gaps.last(), "{planned:?}");
    assert!((15.0..=21.0).contains(&planned[0]), "{planned:?}");
    // A plan is rebuilt for another cap.
    let short = Cadence {
        max_interval: S(5),
        ..Cadence::default()
    };
    let capped = place(&history, &short, &observe("p", 1.0), SPACING, 0.5);
    assert!(capped.is_some_and(|g| g <= S(5)), "{capped:?}");
}

#[test]
fn gaps_stay_within_one_second_and_max_interval() {
    let tight = history("t", &[1.0; 50]);
    let wide = history("w", &spread(1.0, 100_000.0, 200));
    let one = history("o", &[0.0]);
    let cadence = Cadence {
        max_interval: S(10),
        ..Cadence::default()
    };
    for (history, job_type) in [(&tight, "t"), (&wide, "w"), (&one, "o")] {
        for age in [0.0, 0.5, 1.0, 2.0, 50.0, 1e4, 1e6, 1e12] {
            for random in [0.0, 0.5, 1.0, f64::NAN, f64::INFINITY] {
                for spacing in [Duration::ZERO, SPACING, S(1000), Duration::MAX] {
                    let observation = observe(job_type, age);
                    let got = place(history, &cadence, &observation, spacing, random);
                    let Some(got) = got else {
                        panic!("no gap for {job_type} at {age}");
                    };
                    assert!(S(1) <= got && got <= S(10), "{job_type} {age}: {got:?}");
                }
            }
        }
    }
}

#[test]
fn jitter_is_bounded() {
    let history = history("c", &spread(40.0, 300.0, 100));
    let at = |random| {
        let gap = place(
            &history,
            &Cadence::default(),
            &observe("c", 60.0),
            SPACING,
            random,
        );
        gap.map_or(0.0, |g| g.as_secs_f64())
    };
    let middle = at(0.5);
    assert!((at(0.0) - middle * (1.0 - JITTER)).abs() < 1e-6);
    assert!((at(1.0) - middle * (1.0 + JITTER)).abs() < 1e-6);
}

#[test]
fn a_wider_spacing_asks_for_fewer_polls() {
    let history = history("p", &spread(15.0, 35.0, 200));
    let at = |spacing| {
        place(
            &history,
            &Cadence::default(),
            &observe("p", 20.0),
            spacing,
            0.5,
        )
        .map_or(0.0, |g| g.as_secs_f64())
    };
    assert!(at(SPACING) < at(S(3)) && at(S(3)) < at(S(10)));
}

#[test]
fn history_is_keyed_by_service_type_and_phase() {
    let mut history = History::new();
    for s in 0..(SAMPLE_SIZE as u64 + 50) {
        history.record_for(Service::Ecs, "createServer", Phase::Whole, S(s + 1));
    }
    history.record_for(Service::Cce, "CreateCluster", Phase::Whole, S(600));
    history.record_for(Service::Ecs, "createServer", Phase::Tail, S(5));
    assert_eq!(
        history.count(Service::Ecs, "createServer", Phase::Whole),
        SAMPLE_SIZE
    );
    assert_eq!(history.count(Service::Ecs, "createServer", Phase::Tail), 1);
    assert_eq!(
        history.count(Service::Cce, "CreateCluster", Phase::Whole),
        1
    );
    assert_eq!(history.count(Service::Cce, "createServer", Phase::Whole), 0);
    assert_eq!(history.len("createServer"), SAMPLE_SIZE);
    // The newest 200 are kept: 51 s to 250 s.
    let Some(model) = history.model(Service::Ecs, "createServer") else {
        panic!("no model");
    };
    assert!(model.cdf(45.0) < 1e-3 && model.cdf(300.0) > 0.99);
    // Each service pools its own prior; a service without history has the
    // default one.
    let ecs = history.prior(Service::Ecs);
    let cce = history.prior(Service::Cce);
    let evs = history.prior(Service::Evs);
    assert!((ecs.mu.exp() - 130.0).abs() < 20.0, "{ecs:?}");
    assert!((cce.mu.exp() - 600.0).abs() < 1.0 && cce.sigma == PRIOR_MIN_SIGMA);
    assert_eq!(
        evs,
        LogNormal::with_median(DEFAULT_PRIOR_MEDIAN, DEFAULT_PRIOR_SIGMA)
    );
}

#[test]
fn records_and_rows_from_the_store() {
    let rows = vec![
        ("a".to_string(), 1000),
        ("a".to_string(), -5),
        ("b".to_string(), i64::MAX),
    ];
    let history = History::from_rows(rows);
    assert_eq!(history.len("a"), 1);
    assert_eq!(history.len("b"), 1);
    assert!(!history.is_empty());
    assert!(History::new().is_empty());
    let records = vec![
        Record {
            service: Service::Rds,
            job_type: "CreateMysqlSingleHAInstance".into(),
            phase: Phase::Whole,
            duration_ms: 600_000,
        },
        Record {
            service: Service::Ecs,
            job_type: "createServer".into(),
            phase: Phase::Tail,
            duration_ms: 4_000,
        },
    ];
    let history = History::from_records(records);
    assert_eq!(
        history.count(Service::Rds, "CreateMysqlSingleHAInstance", Phase::Whole),
        1
    );
    assert_eq!(history.count(Service::Ecs, "createServer", Phase::Tail), 1);
    assert!(!history.is_empty());
    for phase in [Phase::Whole, Phase::Tail] {
        assert_eq!(Phase::parse(phase.as_str()), phase);
    }
    assert_eq!(Phase::parse("other"), Phase::Whole);
}

/// A batch of `total` sub-jobs with `finished` done, the last at `last`.
fn batch_at(age: f64, total: u32, finished: u32, last: Option<f64>) -> Observation<'static> {
    Observation {
        service: Service::Ecs,
        job_type: "createServer",
        age: Duration::from_secs_f64(age),
        batch: Some(Batch {
            total,
            finished,
            last_finished_age: last.map(Duration::from_secs_f64),
            sub_job_type: Some("createSingleServer"),
        }),
    }
}

#[test]
fn batches_follow_their_sub_jobs() {
    // One server takes 50 to 90 s.
    let mut history = history("createSingleServer", &spread(50.0, 90.0, 200));
    history.record("createServer", S(70));
    let gap_of = |o: &Observation<'_>| gap(&history, o).unwrap_or(f64::NAN);
    // At 60 s, with 20 servers still building, the batch cannot end soon;
    // with one left, it may end any moment.
    let many = gap_of(&batch_at(60.0, 20, 0, None));
    let one = gap_of(&batch_at(60.0, 20, 19, Some(58.0)));
    assert!(many > 2.0 * one, "{many} vs {one}");
    // A single job of the same type at the same age is placed as before.
    let single = gap_of(&observe("createServer", 60.0));
    let not_a_batch = gap_of(&batch_at(60.0, 1, 0, None));
    assert_eq!(single, not_a_batch);
    // Every sub-job done 1 s ago: the tail (5 s by default) is close.
    let tail = gap_of(&batch_at(80.0, 20, 20, Some(79.0)));
    assert!((1.0..=4.0).contains(&tail), "{tail}");
    // Without any history of the sub-job type, the parent's stands in;
    // with neither, the plain cadence.
    let other = History::new();
    assert_eq!(gap(&other, &batch_at(60.0, 20, 3, None)), None);
    let parent_only = history_with_parent_only();
    assert!(gap(&parent_only, &batch_at(60.0, 20, 3, None)).is_some());
}

fn history_with_parent_only() -> History {
    history("createServer", &spread(50.0, 90.0, 20))
}

#[test]
fn batch_tails_are_learned() {
    let mut history = history("createSingleServer", &spread(50.0, 90.0, 50));
    let before = gap(&history, &batch_at(80.0, 5, 5, Some(80.0)));
    for _ in 0..50 {
        history.record_for(Service::Ecs, "createServer", Phase::Tail, S(30));
    }
    let after = gap(&history, &batch_at(80.0, 5, 5, Some(80.0)));
    let (Some(before), Some(after)) = (before, after) else {
        panic!("no tail gap");
    };
    assert!(after > 3.0 * before, "{before} then {after}");
}

#[test]
fn chance_is_a_probability_that_grows_with_the_gap() {
    let history = history("p", &spread(15.0, 35.0, 200));
    let observation = observe("p", 20.0);
    let mut previous = 0.0;
    for g in [0, 1, 2, 5, 10, 15, 100] {
        let Some(c) = chance(&history, &observation, S(g)) else {
            panic!("no chance");
        };
        assert!((0.0..=1.0).contains(&c) && c >= previous, "{g}: {c}");
        previous = c;
    }
    assert!(previous > 0.99);
    assert_eq!(chance(&History::new(), &observation, S(5)), None);
}

#[test]
fn first_polls_from_the_service_history() {
    let cadence = Cadence::default();
    assert_eq!(
        first_gap(&History::new(), &cadence, Service::Ecs, S(5), 0.5),
        None
    );
    let history = history("p", &spread(15.0, 35.0, 200));
    assert_eq!(first_gap(&history, &cadence, Service::Cce, S(5), 0.5), None);
    let near = first_gap(&history, &cadence, Service::Ecs, SPACING, 0.5);
    let far = first_gap(&history, &cadence, Service::Ecs, S(10), 0.5);
    let (Some(near), Some(far)) = (near, far) else {
        panic!("no first gap");
    };
    assert!(S(1) <= near && near < far && far <= cadence.max_interval);
}

#[test]
fn log_normal_cdf() {
    let standard = LogNormal {
        mu: 0.0,
        sigma: 1.0,
    };
    let cases = [
        (1.0, 0.5),
        (1.0_f64.exp(), 0.841_344_7),
        ((-1.0_f64).exp(), 0.158_655_3),
        (1.96_f64.exp(), 0.975_002_1),
        (0.0, 0.0),
        (-1.0, 0.0),
        (f64::NAN, 0.0),
        (f64::INFINITY, 1.0),
    ];
    for (x, want) in cases {
        let got = standard.cdf(x);
        assert!((got - want).abs() < 1e-6, "at {x}: {got}");
    }
    let point = LogNormal {
        mu: 0.0,
        sigma: 0.0,
    };
    assert_eq!((point.cdf(0.5), point.cdf(1.0)), (0.0, 1.0));
    let median = LogNormal::with_median(S(60), 1.0);
    assert!((median.cdf(60.0) - 0.5).abs() < 1e-6);
}
