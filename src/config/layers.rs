//! The layers of a configuration and where each value came from: the
//! file's text (read with spans, so that an error names `file:line` and the
//! dotted key), the `ECS_JOBWATCH__...` overrides of the environment (so
//! that an error names the variable), and their merge by the `config`
//! crate into one [`RawConfig`].

use std::collections::BTreeMap;
use std::ops::Range;

use super::ENV_PREFIX;
use super::error::ConfigError;
use super::raw::RawConfig;

/// The file's text, parsed with spans: every key, table and array element
/// by its dotted path (`notify.webhook[0].url`).
pub(super) struct FileMap<'a> {
    origin: &'a str,
    text: &'a str,
    /// Each path with the span of its key (or, for an array element, of
    /// the element), then the span of its value.
    spans: Vec<(String, Range<usize>)>,
}

impl<'a> FileMap<'a> {
    /// Reads the text and checks it against the raw structs: TOML syntax,
    /// unknown keys, and the type of every value, each error with
    /// `file:line` and the dotted key.
    pub fn check(text: &'a str, origin: &'a str) -> Result<FileMap<'a>, ConfigError> {
        let at = |offset: usize| format!("{origin}:{}", line_of(text, offset));
        let document = toml::de::DeTable::parse(text).map_err(|error| match error.span() {
            Some(span) => ConfigError::at(at(span.start), error.message()),
            None => ConfigError::at(origin, error.message()),
        })?;
        let mut spans = Vec::new();
        collect_spans(document.get_ref(), "", &mut spans);
        let map = FileMap {
            origin,
            text,
            spans,
        };
        if let Err(error) = toml::from_str::<RawConfig>(text) {
            let message = with_suggestion(error.message());
            return Err(match error.span() {
                Some(span) => ConfigError::new(
                    Some(at(span.start)),
                    map.key_at(&span).map(str::to_string),
                    message,
                ),
                None => ConfigError::at(origin, message),
            });
        }
        Ok(map)
    }

    /// The innermost path whose span holds `span`.
    fn key_at(&self, span: &Range<usize>) -> Option<&str> {
        self.spans
            .iter()
            .filter(|(_, range)| {
                range.start <= span.start && span.start < range.end.max(range.start + 1)
            })
            .min_by_key(|(_, range)| range.len())
            .map(|(path, _)| path.as_str())
    }

    /// `file:line` of `key`, or of the nearest table above it that the
    /// file has, when there is one.
    pub fn locate(&self, key: &str) -> Option<String> {
        self.spans
            .iter()
            .filter(|(path, _)| is_within(key, path))
            .max_by_key(|(path, _)| path.len())
            .map(|(_, span)| format!("{}:{}", self.origin, line_of(self.text, span.start)))
    }

    /// The names of the `[projects.NAME]` tables, as written.
    pub fn project_names(&self) -> Vec<&str> {
        self.spans
            .iter()
            .filter_map(|(path, _)| {
                let name = path.strip_prefix("projects.")?;
                (!name.contains(['.', '['])).then_some(name)
            })
            .collect()
    }
}

/// Whether `key` is `path` or lies under it.
fn is_within(key: &str, path: &str) -> bool {
    key.strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn collect_spans(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    spans: &mut Vec<(String, Range<usize>)>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        spans.push((path.clone(), key.span()));
        collect_value(value, path, spans);
    }
}

fn collect_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: String,
    spans: &mut Vec<(String, Range<usize>)>,
) {
    match value.get_ref() {
        toml::de::DeValue::Table(table) => collect_spans(table, &path, spans),
        toml::de::DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                let item = format!("{path}[{index}]");
                spans.push((item.clone(), element.span()));
                collect_value(element, item, spans);
            }
        }
        _ => {}
    }
    spans.push((path, value.span()));
}

/// The 1-based line of a byte offset in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// serde's "unknown field `x`, expected one of `a`, `b`", with ", did you
/// mean `a`?" when a known name is one or two edits away.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let mut quoted = rest.split('`').step_by(2);
    let Some(unknown) = quoted.next() else {
        return message.to_string();
    };
    let best = quoted
        .filter(|candidate| !candidate.is_empty())
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match best {
        Some((_, candidate)) => format!("{message}; did you mean `{candidate}`?"),
        None => message.to_string(),
    }
}

/// The Levenshtein distance, for suggestions on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// One override's value.
#[derive(Clone, Debug)]
enum Value {
    Text(String),
    /// `watch.jobs`: entries of the watch syntax.
    List(Vec<String>),
}

/// The overrides found in the environment.
#[derive(Debug, Default)]
pub(super) struct Overrides {
    /// Dotted key, the variable that sets it, and the value.
    entries: Vec<(String, String, Value)>,
}

impl Overrides {
    /// Finds the `ECS_JOBWATCH__*` variables in `env` and checks each one
    /// alone against the raw structs, so that an unknown key or a value of
    /// the wrong type is reported with the variable's name. A variable
    /// with an empty value is ignored. Names are not case-sensitive; a
    /// project name is matched to a `[projects.NAME]` of the file in any
    /// case (variables cannot keep case).
    pub fn collect(
        env: &BTreeMap<String, String>,
        file: &FileMap<'_>,
    ) -> Result<Overrides, ConfigError> {
        let projects = file.project_names();
        let mut overrides = Overrides::default();
        for (name, value) in env {
            let Some(rest) = strip_prefix_ignore_case(name, ENV_PREFIX) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let fail = |message: String| ConfigError::at(name, message);
            let mut segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            let valid = segments.len() >= 2
                && segments.iter().all(|segment| {
                    !segment.is_empty()
                        && segment
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            if !valid {
                return Err(fail(
                    "not a configuration key; overrides are named ECS_JOBWATCH__SECTION__KEY"
                        .into(),
                ));
            }
            if segments[0] == "projects"
                && let Some(written) = projects
                    .iter()
                    .find(|project| project.eq_ignore_ascii_case(&segments[1]))
            {
                segments[1] = written.to_string();
            }
            if segments[0] == "notify" && matches!(segments[1].as_str(), "webhook" | "smn") {
                return Err(fail(format!(
                    "[[notify.{}]] is a list of tables and cannot be set from the environment; \
                     use the configuration file",
                    segments[1]
                )));
            }
            let key = segments.join(".");
            if let Some((_, previous, _)) = overrides.entries.iter().find(|(k, _, _)| *k == key) {
                return Err(fail(format!("sets {key}, which {previous} sets too")));
            }
            let value = if key == "watch.jobs" {
                Value::List(split_jobs(value))
            } else {
                Value::Text(value.clone())
            };
            let alone = Overrides {
                entries: vec![(key.clone(), name.clone(), value.clone())],
            };
            alone
                .apply(::config::Config::builder())
                .and_then(|builder| builder.build())
                .and_then(|merged| merged.try_deserialize::<RawConfig>())
                .map_err(|error| {
                    ConfigError::new(
                        Some(name.clone()),
                        Some(key.clone()),
                        with_suggestion(&innermost(&error)),
                    )
                })?;
            overrides.entries.push((key, name.clone(), value));
        }
        Ok(overrides)
    }

    fn apply<St: ::config::builder::BuilderState>(
        &self,
        mut builder: ::config::builder::ConfigBuilder<St>,
    ) -> Result<::config::builder::ConfigBuilder<St>, ::config::ConfigError> {
        for (key, _, value) in &self.entries {
            builder = match value {
                Value::Text(text) => builder.set_override(key.as_str(), text.as_str())?,
                Value::List(items) => builder.set_override(key.as_str(), items.clone())?,
            };
        }
        Ok(builder)
    }

    /// The variable that sets `key` (or a key above it), if one does.
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(path, _, _)| is_within(key, path))
            .map(|(_, name, _)| name.as_str())
    }
}

/// `ECS_JOBWATCH__WATCH__JOBS`: entries separated by commas or newlines;
/// within one, a word holding `=` is a label of the job before it, and any
/// other word starts a new job, so `a b` is two jobs and `a team=x, b` is
/// `a` with a label and `b`.
fn split_jobs(value: &str) -> Vec<String> {
    let mut entries = Vec::new();
    for piece in value.split([',', '\n']) {
        let mut current: Option<String> = None;
        for word in piece.split_whitespace() {
            match current.as_mut() {
                Some(entry) if word.contains('=') => {
                    entry.push(' ');
                    entry.push_str(word);
                }
                _ => {
                    entries.extend(current.take());
                    current = Some(word.to_string());
                }
            }
        }
        entries.extend(current);
    }
    entries
}

/// The message of a `config` crate error without its own key and origin
/// (the caller names the variable and the key).
fn innermost(error: &::config::ConfigError) -> String {
    use ::config::ConfigError as E;
    match error {
        E::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        E::At { error, .. } => innermost(error),
        E::Message(message) => message.clone(),
        other => other.to_string(),
    }
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        name.get(prefix.len()..)
    } else {
        None
    }
}

/// Merges the file and the overrides with the `config` crate; missing keys
/// take the defaults of the raw structs.
pub(super) fn merge(
    text: &str,
    origin: &str,
    overrides: &Overrides,
) -> Result<RawConfig, ConfigError> {
    let builder = ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml));
    overrides
        .apply(builder)
        .and_then(|builder| builder.build())
        .and_then(|merged| merged.try_deserialize::<RawConfig>())
        .map_err(|error| ConfigError::at(origin, innermost(&error)))
}
