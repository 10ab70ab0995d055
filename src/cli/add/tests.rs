//! Tests of `add`'s pure parts: the rewrite of `added.jobs` and the labels a
//! watch line can hold.

use super::*;

fn key(text: &str) -> JobKey {
    JobKey::parse(text).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(before: &str, job: &str, pairs: &[(&str, &str)], expected: Option<&str>) {
    let (key, labels) = (key(job), labels(pairs));
    let line = line_of(&key, &labels);
    let result = rewrite(before.as_bytes(), &key, &labels, &line);
    let text = match &result {
        Rewrite::Unchanged => None,
        Rewrite::Appended(text) | Rewrite::Replaced { text, .. } => {
            Some(String::from_utf8(text.clone()).unwrap())
        }
    };
    assert_eq!(text.as_deref(), expected, "{before:?} + {job}");
}

#[test]
fn rewrite_appends_replaces_and_keeps_the_rest() {
    check("", "a", &[], Some("a\n"));
    check(
        "# mine\nb x=1",
        "a",
        &[("t", "1")],
        Some("# mine\nb x=1\na t=1\n"),
    );
    check("a t=1\n", "a", &[("t", "1")], None);
    check(
        "# c\na t=1\nbad line here\nb\n",
        "a",
        &[("t", "2")],
        Some("# c\na t=2\nbad line here\nb\n"),
    );
    // A later line of the same job is dropped; the key is the job, so
    // `ecs:a` is `a`.
    check("a t=1\nb\necs:a t=3\n", "a", &[], Some("a\nb\n"));
    // Another service's or project's job of the same id is another job.
    check("evs:a\n", "a", &[], Some("evs:a\na\n"));
    check("a\r\n", "a", &[], None);
}

#[test]
fn labels_that_a_line_cannot_hold_are_refused() {
    let bad = |fields: &[&str]| {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        parse_labels(&key("a"), &fields).unwrap_err()
    };
    assert!(bad(&["note=hello world"]).contains("U+0020"));
    assert!(bad(&["note=a#b"]).contains("'#'"));
    assert!(bad(&["note=a\nb"]).contains("U+000A"));
    assert!(bad(&["team"]).contains("expected key=value"));
    assert!(bad(&["1team=x"]).contains("not a letter"));
    assert!(bad(&["t=1", "t=2"]).contains("given twice"));
    assert!(bad(&["t="]).contains("empty"));
    let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("k{i}=v")).collect();
    assert!(
        parse_labels(&key("a"), &many)
            .unwrap_err()
            .contains("more than")
    );
    let good = parse_labels(&key("sh/evs:a"), &["team=db".into(), "run=42".into()]).unwrap();
    assert_eq!(line_of(&key("sh/evs:a"), &good), "sh/evs:a run=42 team=db");
}
