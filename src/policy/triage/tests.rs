//! Tests of the triage: the order of the lanes, the score with its aging,
//! cancelling, the bound on waiting (a property test), and the load.

use proptest::prelude::*;

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn due(item: u32, lane: Lane, due: u64, chance: Option<f64>) -> Due<u32> {
    Due {
        item,
        lane,
        due: S(due),
        chance,
    }
}

/// Pops everything at `now`, in order.
fn drain(triage: &mut Triage<u32>, now: Duration) -> Vec<u32> {
    std::iter::from_fn(|| triage.pop(now).map(|p| p.item)).collect()
}

#[test]
fn lanes_are_served_in_their_order() {
    let mut triage = Triage::new(Settings::default());
    triage.push(due(1, Lane::PendingPayment, 10, None));
    triage.push(due(2, Lane::Working, 10, Some(0.9)));
    triage.push(due(3, Lane::FirstSight, 11, None));
    triage.push(due(4, Lane::Working, 9, Some(0.1)));
    triage.push(due(5, Lane::FirstSight, 10, None));
    assert_eq!(triage.len(), 5);
    // First sight (earliest due first), working (likeliest first), then
    // the slow lane.
    assert_eq!(drain(&mut triage, S(12)), [5, 3, 2, 4, 1]);
    assert!(triage.is_empty());
    assert_eq!(triage.pop(S(12)), None);
}

#[test]
fn working_polls_rank_by_chance_then_by_waiting() {
    let settings = Settings {
        aging: S(10),
        ..Settings::default()
    };
    let mut triage = Triage::new(settings);
    // Due at 100 with 0.2, at 103 with 0.5: 0.3 of chance is worth 3 s of
    // waiting, so the likelier goes first; a 0.1 poll due 5 s earlier than
    // a 0.5 one (worth 0.5) is still behind it; one of unknown type scores
    // the default 0.2.
    triage.push(due(1, Lane::Working, 100, Some(0.2)));
    triage.push(due(2, Lane::Working, 103, Some(0.5)));
    triage.push(due(3, Lane::Working, 98, Some(0.1)));
    triage.push(due(4, Lane::Working, 101, None));
    triage.push(due(5, Lane::Working, 90, Some(0.05)));
    // Scores: 1: 0.2 - 10.0 = -9.8; 2: 0.5 - 10.3 = -9.8 (pushed later);
    // 3: 0.1 - 9.8 = -9.7; 4: 0.2 - 10.1 = -9.9; 5: 0.05 - 9.0 = -8.95.
    assert_eq!(drain(&mut triage, S(104)), [5, 3, 1, 2, 4]);
}

#[test]
fn overdue_polls_go_first_whatever_their_lane() {
    let settings = Settings {
        max_wait: S(30),
        ..Settings::default()
    };
    let mut triage = Triage::new(settings);
    triage.push(due(1, Lane::PendingPayment, 0, None));
    triage.push(due(2, Lane::Working, 5, Some(0.0)));
    triage.push(due(3, Lane::FirstSight, 40, None));
    triage.push(due(4, Lane::Working, 40, Some(1.0)));
    // At 40, the pending poll (due at 0) has waited 40 s and the working
    // poll due at 5 has waited 35 s: both before the fresh ones.
    assert_eq!(drain(&mut triage, S(40)), [1, 2, 3, 4]);
    // Not yet overdue: lanes as usual.
    triage.push(due(5, Lane::PendingPayment, 20, None));
    triage.push(due(6, Lane::Working, 40, Some(0.5)));
    assert_eq!(drain(&mut triage, S(40)), [6, 5]);
}

#[test]
fn cancelled_polls_are_never_served() {
    let mut triage = Triage::new(Settings::default());
    let tickets: Vec<Ticket> = (0..100)
        .map(|i| triage.push(due(i, Lane::Working, u64::from(i), Some(0.5))))
        .collect();
    for ticket in tickets.iter().step_by(2) {
        assert!(triage.cancel(*ticket).is_some());
        assert!(triage.cancel(*ticket).is_none());
    }
    assert_eq!(triage.len(), 50);
    let served = drain(&mut triage, S(1000));
    assert_eq!(served.len(), 50);
    assert!(served.iter().all(|i| i % 2 == 1));
}

#[test]
fn memory_stays_bounded_by_what_waits() {
    let mut triage = Triage::new(Settings::default());
    for i in 0..100_000u32 {
        triage.push(due(i, Lane::Working, u64::from(i), Some(0.5)));
        let _ = triage.pop(S(u64::from(i)));
    }
    assert!(triage.is_empty());
    let held = triage.by_due.len() + triage.working.len();
    assert!(held <= 200, "{held}");
}

#[test]
fn load_factor_and_spacing() {
    let cases = [
        (f64::NAN, 1.0),
        (-1.0, 1.0),
        (0.0, 1.0),
        (LOAD_THRESHOLD, 1.0),
        (0.6, 4.0),
        (0.8, 16.0),
        (0.95, MAX_LOAD_FACTOR),
        (1.0, MAX_LOAD_FACTOR),
        (5.0, MAX_LOAD_FACTOR),
    ];
    for (utilisation, want) in cases {
        let got = load_factor(utilisation);
        assert!((got - want).abs() < 1e-9, "{utilisation}: {got}");
    }
    assert_eq!(loaded_spacing(S(1), 0.0), S(1));
    assert_eq!(loaded_spacing(S(1), 0.8), S(16));
}

#[test]
fn the_load_meter_counts_the_last_window() {
    let mut meter = LoadMeter::new();
    assert_eq!(meter.utilisation(S(0), 5.0), 0.0);
    // 5 calls per second for 10 s: half of a 5/s budget over 20 s.
    for call in 0..50u64 {
        meter.record(Duration::from_millis(call * 200));
    }
    assert!((meter.utilisation(S(9), 5.0) - 0.5).abs() < 1e-9);
    // 30 s later the window holds nothing of it.
    assert_eq!(meter.utilisation(S(40), 5.0), 0.0);
    // Overfull and odd rates stay within [0, 1].
    for _ in 0..10_000 {
        meter.record(S(41));
    }
    assert_eq!(meter.utilisation(S(41), 5.0), 1.0);
    assert_eq!(meter.utilisation(S(41), 0.0), 0.0);
    assert_eq!(meter.utilisation(S(41), f64::NAN), 0.0);
    assert_eq!(LoadMeter::default().utilisation(S(1), 1.0), 0.0);
}

/// One poll of the property test: lane, due time in tenths of a second,
/// chance.
fn poll_strategy() -> impl Strategy<Value = (u8, u32, Option<f64>)> {
    (0u8..3, 0u32..3000, proptest::option::of(0.0f64..=1.0))
}

proptest! {
    /// No starvation: a budget serving one poll per slot, polls falling
    /// due at random moments in random lanes with random scores. Once a
    /// poll has waited `max_wait`, only polls that fell due before it are
    /// served ahead of it, so it waits at most `max_wait` plus one slot
    /// per poll that fell due before it and was still waiting.
    #[test]
    fn every_poll_waits_a_bounded_time(
        polls in proptest::collection::vec(poll_strategy(), 1..300),
        slot_ms in 50u64..2000,
        max_wait_s in 1u64..60,
        aging_s in 1u64..120,
    ) {
        let settings = Settings {
            max_wait: S(max_wait_s),
            aging: S(aging_s),
            unknown_chance: 0.2,
        };
        let mut triage = Triage::new(settings);
        let mut pending: Vec<Due<usize>> = polls
            .iter()
            .enumerate()
            .map(|(i, &(lane, tenths, chance))| Due {
                item: i,
                lane: [Lane::FirstSight, Lane::Working, Lane::PendingPayment][usize::from(lane)],
                due: Duration::from_millis(u64::from(tenths) * 100),
                chance,
            })
            .collect();
        pending.sort_by_key(|p| std::cmp::Reverse(p.due));
        let dues: Vec<Duration> = {
            let mut d = vec![Duration::ZERO; polls.len()];
            for p in &pending {
                d[p.item] = p.due;
            }
            d
        };
        let slot = Duration::from_millis(slot_ms);
        let mut now = Duration::ZERO;
        let mut served: Vec<(usize, Duration)> = Vec::new();
        while served.len() < polls.len() {
            while pending.last().is_some_and(|p| p.due <= now) {
                if let Some(p) = pending.pop() {
                    triage.push(p);
                }
            }
            match triage.pop(now) {
                Some(p) => {
                    served.push((p.item, now));
                    now += slot;
                }
                None => {
                    now = pending.last().map_or(now + slot, |p| p.due.max(now));
                }
            }
        }
        for (position, &(item, at)) in served.iter().enumerate() {
            let due = dues[item];
            let overdue_at = due + settings.max_wait;
            // Served after it was overdue: everything served between the
            // moment it became overdue and its own service fell due no
            // later than it did.
            if at > overdue_at {
                for &(other, other_at) in &served[..position] {
                    if other_at > overdue_at {
                        prop_assert!(dues[other] <= due, "{other} served before {item}");
                    }
                }
            }
            // The bound itself.
            let earlier = dues.iter().filter(|&&d| d <= due).count() as u32;
            prop_assert!(at <= overdue_at + slot * earlier, "{item} waited {:?}", at - due);
        }
    }
}
