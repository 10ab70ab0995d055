//! The lenient field types and the time reader.

use super::*;

lenient_object! {
    struct Sample<'a> {
        "text" => text: Text<'a>,
        "count" => count: Count,
        "number" => number: Number,
        "inner" => inner: Obj<Inner<'a>>,
        "list" => list: Objects<Inner<'a>>,
        "texts" => texts: Texts<'a>,
    }
}

lenient_object! {
    struct Inner<'a> {
        "id" => id: Text<'a>,
    }
}

fn sample(body: &str) -> Sample<'_> {
    match parse_body(body.as_bytes(), MAX_BODY_BYTES) {
        Ok(sample) => sample,
        Err(error) => panic!("{body}: {error}"),
    }
}

#[test]
fn text_takes_strings_numbers_and_booleans() {
    let text = |value: &str| sample(&format!(r#"{{"text":{value}}}"#)).text.owned();
    assert_eq!(text(r#""abc""#).as_deref(), Some("abc"));
    assert_eq!(text(r#""a\"c""#).as_deref(), Some("a\"c"));
    assert_eq!(text("7").as_deref(), Some("7"));
    assert_eq!(text("-7").as_deref(), Some("-7"));
    assert_eq!(text("1.5").as_deref(), Some("1.5"));
    assert_eq!(text("true").as_deref(), Some("true"));
    for absent in [r#""""#, "null", "[]", "[1,[2]]", r#"{"a":{"b":[]}}"#] {
        assert_eq!(text(absent), None, "{absent}");
    }
    // Unescaped text is borrowed from the body.
    let body = r#"{"text":"plain"}"#;
    assert!(matches!(sample(body).text.0, Some(Cow::Borrowed("plain"))));
}

#[test]
fn counts_and_numbers() {
    let count = |value: &str| sample(&format!(r#"{{"count":{value}}}"#)).count.0;
    assert_eq!(count("3"), Some(3));
    assert_eq!(count(r#"" 3 ""#), Some(3));
    assert_eq!(count("-3"), None);
    assert_eq!(count("3.5"), None);
    assert_eq!(count(r#""x""#), None);
    assert_eq!(count("{}"), None);
    let number = |value: &str| sample(&format!(r#"{{"number":{value}}}"#)).number.0;
    assert_eq!(number("60"), Some(60.0));
    assert_eq!(number("-2"), Some(-2.0));
    assert_eq!(number("60.5"), Some(60.5));
    assert_eq!(number(r#""60%""#), Some(60.0));
    assert_eq!(number(r#"" 60 % ""#), Some(60.0));
    assert_eq!(number(r#""""#), None);
    assert_eq!(number(r#""NaN""#), None);
    assert_eq!(number(r#""inf""#), None);
    assert_eq!(number("true"), None);
}

#[test]
fn objects_and_lists() {
    let value = sample(
        r#"{"inner":{"id":"a","extra":[1]},"list":[{"id":"b"},1,null,"x",[],{"id":"c"}],"texts":["d",2,null,"",{"e":1}]}"#,
    );
    assert_eq!(value.inner.get().and_then(|i| i.id.get()), Some("a"));
    let ids: Vec<_> = value.list.0.iter().filter_map(|i| i.id.get()).collect();
    assert_eq!(ids, ["b", "c"]);
    assert_eq!(value.texts.0, ["d", "2"]);
    let value = sample(r#"{"inner":[{"id":"a"}],"list":{"id":"b"},"texts":"d"}"#);
    assert!(value.inner.get().is_none());
    assert!(value.list.0.is_empty());
    assert!(value.texts.0.is_empty());
}

#[test]
fn whole_body_refusals() {
    let parse = |body: &[u8]| parse_body::<Sample<'_>>(body, 64).map(|_| ());
    assert_eq!(parse(b"[]"), Err(ParseError::NotAnObject));
    assert_eq!(parse(b"7"), Err(ParseError::NotAnObject));
    assert_eq!(parse(b"null"), Err(ParseError::NotAnObject));
    assert!(matches!(parse(b"{} x"), Err(ParseError::Json(_))));
    assert!(matches!(parse(b"{\"text\":"), Err(ParseError::Json(_))));
    assert_eq!(parse(&[b' '; 65]), Err(ParseError::TooLarge(64)));
    assert_eq!(parse(b"{}"), Ok(()));
}

#[test]
fn timestamps_of_every_service() {
    let check = |text: &str, expected: Option<i64>| {
        assert_eq!(timestamp_ms(text), expected, "{text}");
    };
    // ECS, BMS, EVS, IMS, EIP.
    check("2016-04-25T20:04:34.604Z", Some(1_461_614_674_604));
    check("1970-01-01T00:00:00Z", Some(0));
    check("1969-12-31T23:59:59.999Z", Some(-1));
    // CCE: nanoseconds, a numeric zone and UTC.
    check(
        "2018-08-02 08:12:40.672772389 +0000 UTC",
        Some(1_533_197_560_672),
    );
    // RDS: no fraction, a zone without a colon.
    check("2018-08-06T10:41:14+0000", Some(1_533_552_074_000));
    check("2018-08-06T18:41:14+08:00", Some(1_533_552_074_000));
    check("2018-08-06T10:41:14-0130", Some(1_533_557_474_000));
    check("2018-08-06T10:41:14+08", Some(1_533_523_274_000));
    check("2018-08-06T10:41:14.5Z", Some(1_533_552_074_500));
    check("2018-08-06 10:41:14 UTC", Some(1_533_552_074_000));
    check("2018-08-06T10:41:14", Some(1_533_552_074_000));
    check(" 2024-02-29T00:00:00Z ", Some(1_709_164_800_000));
    check("2016-12-31T23:59:60Z", Some(1_483_228_799_000));
    for bad in [
        "",
        "yesterday",
        "2016-04-25",
        "2016-04-25T20:04",
        "2016-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2016-04-31T00:00:00Z",
        "2016-04-25T24:00:00Z",
        "2016-04-25T20:60:00Z",
        "2016-04-25T20:04:34.Z",
        "2016-04-25T20:04:34Zjunk",
        "2016-04-25T20:04:34+25:00",
        "2016-04-25T20:04:34+05:",
        "2016-04-25X20:04:34Z",
        "２０16-04-25T20:04:34Z",
        "2016-04-25T20:04:34 PST",
    ] {
        check(bad, None);
    }
}

#[test]
fn status_fallback_and_keys() {
    assert_eq!(common_status("Success"), Status::Success);
    assert_eq!(common_status("fail"), Status::Fail);
    assert_eq!(common_status("Waiting_Execute").as_str(), "WAITING_EXECUTE");
    assert_eq!(common_status(""), Status::other(""));
    assert_eq!(position_key(Some("id"), &[1, 2]), "id");
    assert_eq!(position_key(None, &[0]), "#0");
    assert_eq!(position_key(None, &[1, 0, 12]), "#1.0.12");
    assert_eq!(fraction(Some(45.0)), Some(0.45));
    assert_eq!(fraction(Some(f64::NAN)), None);
    assert_eq!(fraction(None), None);
}
