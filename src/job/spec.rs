//! The watch syntax: one job and its labels, `JOB [key=value ...]`, where
//! `JOB` is `[PROJECT/][SERVICE:]JOB_ID` (see [`JobKey`]). The same syntax
//! is read from watch files, `watch.jobs`, and the `add` and `wait`
//! commands; `#` starts a comment.

use super::Labels;
use super::key::JobKey;

/// The most labels one line may carry.
pub const MAX_LABELS: usize = 32;

/// The longest label key, in characters.
pub const MAX_LABEL_KEY_LEN: usize = 64;

/// The longest label value, in characters.
pub const MAX_LABEL_VALUE_LEN: usize = 256;

/// Parses one line: `None` for a blank or comment line. The message of an
/// error names what is wrong, without the place (the caller knows it).
///
/// The scanning is done on bytes with plain loops: a debug build runs generic iterator code
/// unoptimised, and a watch file may have a hundred thousand lines.
pub fn parse_line(line: &str) -> Result<Option<(JobKey, Labels)>, String> {
    let content = match line.as_bytes().iter().position(|&byte| byte == b'#') {
        Some(hash) => &line[..hash],
        None => line,
    };
    let mut fields = Fields { rest: content };
    let Some(id) = fields.next() else {
        return Ok(None);
    };
    let key = JobKey::parse(id).map_err(|error| error.to_string())?;
    let mut labels = Labels::new();
    for field in fields {
        let (key, value) = parse_label(field)?;
        if labels.len() == MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        if labels.contains_key(key) {
            return Err(format!("label key {key:?} is repeated"));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(Some((key, labels)))
}

/// The fields of a line, separated by runs of spaces and tabs.
pub struct Fields<'a> {
    /// What is left of the line.
    pub rest: &'a str,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        let mut start = 0;
        while start < bytes.len() && is_separator(bytes[start]) {
            start += 1;
        }
        if start == bytes.len() {
            self.rest = "";
            return None;
        }
        let mut end = start;
        while end < bytes.len() && !is_separator(bytes[end]) {
            end += 1;
        }
        // Both ends sit next to ASCII bytes, so they are character boundaries.
        let field = &self.rest[start..end];
        self.rest = &self.rest[end..];
        Some(field)
    }
}

fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.' || byte == b'-'
}

/// Splits and checks one `key=value` field.
pub fn parse_label(field: &str) -> Result<(&str, &str), String> {
    let bad = |why: String| format!("bad label {field:?}: {why}");
    let Some(equals) = field.as_bytes().iter().position(|&byte| byte == b'=') else {
        return Err(bad("expected key=value".to_string()));
    };
    let (key, value) = (&field[..equals], &field[equals + 1..]);
    let Some(&first) = key.as_bytes().first() else {
        return Err(bad("the key is empty".to_string()));
    };
    if !first.is_ascii_alphabetic() {
        let first = key.chars().next().unwrap_or_default();
        return Err(bad(format!("the key starts with {first:?}, not a letter")));
    }
    if let Some(index) = key.bytes().position(|byte| !is_key_byte(byte)) {
        let c = key[index..].chars().next().unwrap_or_default();
        return Err(bad(format!(
            "the key contains {c:?}, only A-Z a-z 0-9 _ . - are allowed"
        )));
    }
    // The key is ASCII by now, so its length in bytes is its length in characters.
    if key.len() > MAX_LABEL_KEY_LEN {
        return Err(bad(format!(
            "the key is {} characters long, at most {MAX_LABEL_KEY_LEN} are allowed",
            key.len()
        )));
    }
    if value.is_empty() {
        return Err(bad("the value is empty".to_string()));
    }
    // An ASCII value has no white space left: spaces and tabs split fields, and the line has no
    // control characters. Only other values need their characters looked at.
    if value.is_ascii() && value.len() <= MAX_LABEL_VALUE_LEN {
        return Ok((key, value));
    }
    let length = value.chars().count();
    if length > MAX_LABEL_VALUE_LEN {
        return Err(bad(format!(
            "the value is {length} characters long, at most {MAX_LABEL_VALUE_LEN} are allowed"
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace()) {
        return Err(bad(format!(
            "the value contains the white space U+{:04X}",
            u32::from(c)
        )));
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Service;

    #[test]
    fn lines() {
        let (key, labels) = parse_line("shanghai/evs:abc team=db env=prod # c")
            .unwrap()
            .unwrap();
        assert_eq!(key.to_string(), "shanghai/evs:abc");
        assert_eq!(key.service, Service::Evs);
        assert_eq!(labels.len(), 2);
        assert_eq!(parse_line("  # only a comment"), Ok(None));
        assert_eq!(parse_line(""), Ok(None));
        assert!(
            parse_line("nope:abc")
                .unwrap_err()
                .contains("unknown service")
        );
        assert!(
            parse_line("abc team")
                .unwrap_err()
                .contains("expected key=value")
        );
    }
}
