//! Tests of `wait`'s pure parts: the human lines and the exit code of a set
//! of outcomes.

use super::*;

fn key(text: &str) -> JobKey {
    JobKey::parse(text).unwrap()
}

#[test]
fn human_lines_say_what_a_person_needs() {
    let check = |outcome, json: Option<&str>, expected: &str| {
        assert_eq!(human_line(&key("j"), outcome, json), expected);
    };
    check(
        Outcome::Success,
        Some(r#"{"job_type":"createServer","resource_ids":["i-1","i-2"],"labels":{"run":"42"}}"#),
        "j: SUCCESS (createServer; resources i-1, i-2; labels run=42)",
    );
    check(
        Outcome::Failed,
        Some(
            r#"{"job_type":"createServer","error_code":"Ecs.0001","fail_reason":"quota","labels":{}}"#,
        ),
        "j: FAIL (createServer; Ecs.0001: quota)",
    );
    check(
        Outcome::NotFound,
        Some(r#"{"last_status":null}"#),
        "j: NOT FOUND (never found)",
    );
    check(
        Outcome::NotFound,
        Some(r#"{"last_status":"RUNNING"}"#),
        "j: NOT FOUND (vanished while RUNNING)",
    );
    check(
        Outcome::PendingPayment,
        None,
        "j: PENDING_PAYMENT (a person must pay the order)",
    );
    check(Outcome::Success, Some("not json"), "j: SUCCESS");
}

#[test]
fn the_worst_outcome_decides_the_exit_code() {
    let code = |outcomes: &[Outcome]| {
        let keys: Vec<JobKey> = (0..outcomes.len()).map(|i| key(&format!("j{i}"))).collect();
        let mut waiter = Waiter::new(keys.clone(), true);
        for (key, outcome) in keys.iter().zip(outcomes) {
            waiter.settle(key, *outcome, None);
        }
        assert!(waiter.all_settled());
        waiter.finish()
    };
    assert_eq!(code(&[Outcome::Success, Outcome::Success]), exit::OK);
    assert_eq!(
        code(&[Outcome::Success, Outcome::PendingPayment]),
        exit::PENDING_PAYMENT
    );
    assert_eq!(
        code(&[Outcome::PendingPayment, Outcome::Failed]),
        exit::FAILED
    );
    assert_eq!(code(&[Outcome::NotFound, Outcome::Success]), exit::FAILED);
}
