//! Lenient reading of job bodies, shared by every adapter.
//!
//! Bodies are read with serde into typed structs that borrow from the
//! body's bytes, never into a `serde_json::Value` tree. The field types here
//! never fail on a wrong type: [`Text`] reads a string (or a number or
//! boolean as its text) and takes anything else as absent, [`Count`] and
//! [`Number`] read numbers or numeric strings, [`Obj`] reads an object and
//! takes anything else as absent, [`Objects`] and [`Texts`] read arrays and
//! drop the elements of the wrong type. A struct declared with
//! `lenient_object!` skips unknown keys and lets the last of repeated keys
//! win, the way a JSON object read into a map would. Only bytes that are not
//! JSON, a body that is not an object, or a body larger than its cap fail a
//! whole body; nothing here panics, whatever the bytes.
//!
//! The rest of the file reads what several services spell alike: times
//! ([`timestamp_ms`]), percentages ([`fraction`]), the fallback of status
//! words to the common vocabulary ([`common_status`]) and the keys of
//! sub-jobs without an id ([`position_key`]).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ParseError;
use crate::huaweicloud::error;
use crate::job::Status;

/// The largest body an adapter reads; larger ones are refused unread.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A struct whose fields are read from a JSON object one key at a time.
/// Declare it with `lenient_object!`.
pub trait FromMap<'de>: Default {
    /// Reads the value of `key` into its field, or skips it.
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// Declares a struct read by [`FromMap`]: each field is named with the
/// JSON key it is read from. Unknown keys are skipped; every field type
/// must itself be lenient ([`Text`], [`Count`], [`Obj`], ...).
macro_rules! lenient_object {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident<$lt:lifetime> {
            $( $(#[$field_meta:meta])* $key:literal => $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name<$lt> {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl<'de: $lt, $lt> $crate::services::lenient::FromMap<'de> for $name<$lt> {
            fn field<A: ::serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<(), A::Error> {
                match key {
                    $( $key => self.$field = map.next_value()?, )*
                    _ => {
                        map.next_value::<::serde::de::IgnoredAny>()?;
                    }
                }
                Ok(())
            }
        }
    };
}

pub(crate) use lenient_object;

/// Reads a whole body as the object `T`: refused when larger than `cap`,
/// when not JSON, or when not an object.
pub fn parse_body<'a, T: FromMap<'a>>(body: &'a [u8], cap: usize) -> Result<T, ParseError> {
    if body.len() > cap {
        return Err(ParseError::TooLarge(cap));
    }
    // serde_json refuses nesting deeper than 128 levels where values are
    // read, and skips ignored values without recursion, so hostile input
    // cannot exhaust the stack.
    match serde_json::from_slice::<Obj<T>>(body) {
        Ok(Obj(Some(value))) => Ok(value),
        Ok(Obj(None)) => Err(ParseError::NotAnObject),
        Err(error) => Err(ParseError::Json(error.to_string())),
    }
}

/// The refusal for a body that is an object but has no job status: with
/// the error code and message the body carries in any of the error shapes
/// (see [`error::error_fields`]).
pub fn no_status(body: &[u8]) -> ParseError {
    let fields = error::error_fields(body);
    ParseError::NoStatus {
        code: fields.code,
        message: fields.message,
    }
}

/// Consumes whatever value a visitor was handed instead of the one it
/// wanted.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visits of every JSON type a lenient visitor does not
/// want: each reads as `$absent`, arrays and objects are skipped.
macro_rules! absent_otherwise {
    ($absent:expr; $($skip:ident),*) => {
        $( absent_otherwise!(@one $skip, $absent); )*
    };
    (@one bool, $absent:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($absent) }
    };
    (@one i64, $absent:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($absent) }
    };
    (@one u64, $absent:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($absent) }
    };
    (@one f64, $absent:expr) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($absent) }
    };
    (@one str, $absent:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($absent) }
    };
    (@one unit, $absent:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($absent) }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> { Ok($absent) }
    };
    (@one seq, $absent:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok($absent)
        }
    };
    (@one map, $absent:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok($absent)
        }
    };
}

/// A text field. A non-empty string is kept (borrowed from the body when
/// it has no escapes); a number or boolean becomes its text; `""`, `null`,
/// arrays and objects are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The text, when present.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text as an owned string, when present.
    pub fn owned(&self) -> Option<String> {
        self.0.as_deref().map(str::to_string)
    }
}

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Text<'a>, E> {
        Ok(Text((!value.is_empty()).then_some(Cow::Borrowed(value))))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Text<'a>, E> {
        Ok(Text(
            (!value.is_empty()).then(|| Cow::Owned(value.to_string())),
        ))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Text<'a>, E> {
        Ok(Text((!value.is_empty()).then_some(Cow::Owned(value))))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Borrowed(if value {
            "true"
        } else {
            "false"
        }))))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Text<'a>, D::Error> {
        deserializer.deserialize_any(self)
    }

    absent_otherwise!(Text(None); unit, seq, map);
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        deserializer.deserialize_any(TextVisitor(PhantomData))
    }
}

/// A count: a non-negative integer, or a string holding one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Count, E> {
        Ok(Count(Some(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Count, E> {
        Ok(Count(u64::try_from(value).ok()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Count, E> {
        Ok(Count(value.trim().parse().ok()))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Count, D::Error> {
        deserializer.deserialize_any(self)
    }

    absent_otherwise!(Count(None); bool, f64, unit, seq, map);
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Count, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

/// A finite number, or a string holding one, optionally followed by `%`
/// (`60`, `60.5`, `"60"`, `"60%"`); the `%` is dropped, not applied.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Number(pub Option<f64>);

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Number, E> {
        Ok(Number(Some(value as f64)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Number, E> {
        Ok(Number(Some(value as f64)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Number, E> {
        Ok(Number(value.is_finite().then_some(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Number, E> {
        let value = value.trim();
        let value = value.strip_suffix('%').unwrap_or(value).trim_end();
        Ok(Number(
            value
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite()),
        ))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Number, D::Error> {
        deserializer.deserialize_any(self)
    }

    absent_otherwise!(Number(None); bool, unit, seq, map);
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Number, D::Error> {
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// An object read as `T`; any other JSON type is absent.
#[derive(Debug)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Obj<T> {
        Obj(None)
    }
}

impl<T> Obj<T> {
    /// The object, when it was one.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

struct ObjVisitor<T>(PhantomData<T>);

/// Reads the keys of an object into `T`.
fn read_map<'de, T: FromMap<'de>, A: MapAccess<'de>>(mut map: A) -> Result<T, A::Error> {
    let mut value = T::default();
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        value.field(&key, &mut map)?;
    }
    Ok(value)
}

impl<'de, T: FromMap<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
        read_map(map).map(|value| Obj(Some(value)))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Obj<T>, D::Error> {
        deserializer.deserialize_any(self)
    }

    absent_otherwise!(Obj(None); bool, i64, u64, f64, str, unit, seq);
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Obj<T>, D::Error> {
        deserializer.deserialize_any(ObjVisitor(PhantomData))
    }
}

/// An array of objects read as `T`; elements of another type are dropped,
/// and anything but an array is empty.
#[derive(Debug)]
pub struct Objects<T>(pub Vec<T>);

impl<T> Default for Objects<T> {
    fn default() -> Objects<T> {
        Objects(Vec::new())
    }
}

struct ObjectsVisitor<T>(PhantomData<T>);

impl<'de, T: FromMap<'de>> Visitor<'de> for ObjectsVisitor<T> {
    type Value = Objects<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Objects<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(Obj(item)) = seq.next_element::<Obj<T>>()? {
            items.extend(item);
        }
        Ok(Objects(items))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Objects<T>, D::Error> {
        deserializer.deserialize_any(self)
    }

    absent_otherwise!(Objects(Vec::new()); bool, i64, u64, f64, str, unit, map);
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Objects<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Objects<T>, D::Error> {
        deserializer.deserialize_any(ObjectsVisitor(PhantomData))
    }
}

/// An array of texts (as [`Text`] reads them); absent elements are
/// dropped, and anything but an array is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Texts<'a>(pub Vec<Cow<'a, str>>);

struct TextsVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextsVisitor<'a> {
    type Value = Texts<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts<'a>, A::Error> {
        let mut items = Vec::new();
        while let Some(Text(item)) = seq.next_element::<Text<'a>>()? {
            items.extend(item);
        }
        Ok(Texts(items))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Texts<'a>, D::Error> {
        deserializer.deserialize_any(self)
    }

    absent_otherwise!(Texts(Vec::new()); bool, i64, u64, f64, str, unit, map);
}

impl<'de: 'a, 'a> Deserialize<'de> for Texts<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Texts<'a>, D::Error> {
        deserializer.deserialize_any(TextsVisitor(PhantomData))
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(value.to_string())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(value)))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A service's status word in the common vocabulary: the service's own
/// `words` (matched without regard to case), else [`common_status`].
pub fn mapped_status(word: &str, words: &[(&str, Status)]) -> Status {
    words
        .iter()
        .find(|(known, _)| word.eq_ignore_ascii_case(known))
        .map_or_else(|| common_status(word), |(_, status)| status.clone())
}

/// A status word no adapter mapping knew, in the common vocabulary: the
/// word upper-cased, which is one of the common statuses when it spells
/// one (`Success` is SUCCESS, so one alert rule still catches it).
pub fn common_status(word: &str) -> Status {
    if word.bytes().any(|byte| byte.is_ascii_lowercase()) {
        Status::parse(&word.to_ascii_uppercase())
    } else {
        Status::parse(word)
    }
}

/// The key of a sub-job: its id, else its position in the tree (`#0`,
/// `#1.0` for the first child of the second sub-job).
pub fn position_key(job_id: Option<&str>, path: &[usize]) -> String {
    if let Some(id) = job_id {
        return id.to_string();
    }
    let mut key = String::from("#");
    for (index, position) in path.iter().enumerate() {
        if index > 0 {
            key.push('.');
        }
        key.push_str(&position.to_string());
    }
    key
}

/// A percentage (0 to 100) as a fraction from 0 to 1, clamped.
pub fn fraction(percent: Option<f64>) -> Option<f64> {
    percent
        .filter(|value| value.is_finite())
        .map(|value| (value / 100.0).clamp(0.0, 1.0))
}

/// Reads a time as Unix milliseconds, in any of the forms the job APIs
/// write: `2016-04-25T20:04:34.604Z` (ECS, BMS, EVS, IMS, EIP),
/// `2018-08-02 08:12:40.672772389 +0000 UTC` (CCE) and
/// `2018-08-06T10:41:14+0000` (RDS). The date and time may be separated by
/// `T` or a space; the fraction has any number of digits; the zone is `Z`,
/// `±HH:MM`, `±HHMM` or `±HH`, optionally followed by ` UTC`, or only
/// `UTC`; a time without any zone is read as UTC (every job API writes
/// UTC). Anything else, or an impossible date, is `None`.
pub fn timestamp_ms(text: &str) -> Option<i64> {
    let mut scan = Scan {
        bytes: text.trim().as_bytes(),
        at: 0,
    };
    let year = scan.digits(4)?;
    scan.require(b'-')?;
    let month = scan.digits(2)?;
    scan.require(b'-')?;
    let day = scan.digits(2)?;
    if !(scan.eat(b'T') || scan.eat(b't') || scan.eat(b' ')) {
        return None;
    }
    let hour = scan.digits(2)?;
    scan.require(b':')?;
    let minute = scan.digits(2)?;
    scan.require(b':')?;
    let second = scan.digits(2)?;
    let mut millis = 0;
    if scan.eat(b'.') || scan.eat(b',') {
        let mut count = 0;
        while let Some(digit) = scan.peek().filter(u8::is_ascii_digit) {
            if count < 3 {
                millis = millis * 10 + i64::from(digit - b'0');
            }
            count += 1;
            scan.at += 1;
        }
        if count == 0 {
            return None;
        }
        for _ in count..3 {
            millis *= 10;
        }
    }
    while scan.eat(b' ') {}
    let offset_minutes = scan.zone()?;
    while scan.eat(b' ') {}
    let rest = scan.rest();
    if !(rest.is_empty() || rest.eq_ignore_ascii_case(b"UTC")) {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // A leap second is read as the last second of its minute.
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// A cursor over the bytes of a time.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn require(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn digits(&mut self, count: usize) -> Option<i64> {
        let digits = self.bytes.get(self.at..self.at + count)?;
        let mut value = 0;
        for &digit in digits {
            if !digit.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(digit - b'0');
        }
        self.at += count;
        Some(value)
    }

    fn rest(&self) -> &[u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    /// The zone's offset east of UTC in minutes; zero when there is no
    /// numeric zone (`Z`, `UTC`, or nothing).
    fn zone(&mut self) -> Option<i64> {
        if self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        if self.rest().eq_ignore_ascii_case(b"UTC") {
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Some(0);
        };
        let hours = self.digits(2)?;
        let colon = self.eat(b':');
        let minutes = match self.digits(2) {
            Some(minutes) => minutes,
            None if colon => return None,
            None => 0,
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * (hours * 60 + minutes))
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests;
