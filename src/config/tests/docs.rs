//! The key table of the module documentation (the README's source) against
//! the raw structs, and the example file `config/ecs-jobwatch.toml`
//! against the table: every key documented, every key in the example.

use std::collections::BTreeSet;

use super::*;

/// The module documentation, with the key table.
const SOURCE: &str = include_str!("../mod.rs");

/// The example configuration shipped in the package.
const EXAMPLE: &str = include_str!("../../../config/ecs-jobwatch.toml");

/// The keys of the table as written: `cloud.region`,
/// `cloud.endpoints.SERVICE`, `projects.NAME.region`,
/// `notify.webhook[i].url`, ...
pub(super) fn dotted_keys() -> Vec<String> {
    SOURCE
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|key| key.contains('.'))
        .map(str::to_string)
        .collect()
}

/// The last part of every key of the table that holds a value in a
/// table `config` has (keys of `projects.NAME`, `notify.webhook[i]` and
/// `notify.smn[i]` only when there is one).
pub(super) fn leaf_names(config: &Config) -> BTreeSet<String> {
    dotted_keys()
        .iter()
        .filter(|key| !is_table(key))
        .filter(|key| {
            if key.starts_with("projects.") {
                config.projects().len() > 1
            } else if key.starts_with("notify.webhook") {
                !config.webhooks().is_empty()
            } else if key.starts_with("notify.smn") {
                !config.smn().is_empty()
            } else {
                true
            }
        })
        .map(|key| {
            let key = key.trim_end_matches(".SERVICE");
            key.rsplit('.').next().unwrap_or(key).to_string()
        })
        .collect()
}

fn is_table(key: &str) -> bool {
    matches!(key, "projects.NAME" | "notify.webhook" | "notify.smn")
}

/// The fields serde expects where `text` puts an unknown key `__x`.
fn fields(text: &str) -> Vec<String> {
    let error = load(text, &no_env()).unwrap_err();
    let message = error.message();
    assert!(message.starts_with("unknown field `__x`"), "{message}");
    let listed = message.split(';').next().unwrap_or(message);
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Every key the raw structs accept, written as in the table.
fn real_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for section in fields("__x = 1\n") {
        match section.as_str() {
            "projects" => {
                for key in fields("[cloud]\nregion = \"r\"\n[projects.p]\n__x = 1\n") {
                    keys.insert(format!("projects.NAME.{key}"));
                }
            }
            "notify" => {
                for table in fields("[notify]\n__x = 1\n") {
                    for key in fields(&format!("[[notify.{table}]]\n__x = 1\n")) {
                        keys.insert(format!("notify.{table}[i].{key}"));
                    }
                }
            }
            _ => {
                for key in fields(&format!("[{section}]\n__x = 1\n")) {
                    keys.insert(format!("{section}.{key}"));
                }
            }
        }
    }
    keys
}

#[test]
fn the_key_table_lists_every_key_and_no_other() {
    let documented: BTreeSet<String> = dotted_keys()
        .iter()
        .filter(|key| !is_table(key))
        .map(|key| key.trim_end_matches(".SERVICE").to_string())
        .collect();
    let real = real_keys();
    assert!(real.len() >= 40, "{real:?}");
    let missing: Vec<&String> = real.difference(&documented).collect();
    let extra: Vec<&String> = documented.difference(&real).collect();
    assert!(missing.is_empty(), "not in the key table: {missing:?}");
    assert!(
        extra.is_empty(),
        "in the key table but not accepted: {extra:?}"
    );
}

#[test]
fn the_example_configuration_lists_every_key() {
    // The example in chunks, one per table header (commented out or not).
    let mut chunks: Vec<(String, Vec<&str>)> = Vec::new();
    for line in EXAMPLE.lines() {
        let bare = line.trim_start_matches(['#', ' ']);
        if bare.starts_with('[') {
            let header = bare.split_whitespace().next().unwrap_or(bare).to_string();
            chunks.push((header, Vec::new()));
        } else if let Some((_, lines)) = chunks.last_mut() {
            lines.push(bare);
        }
    }
    for key in dotted_keys() {
        let key = key.trim_end_matches(".SERVICE");
        let (table, name) = if is_table(key) {
            (key, "")
        } else {
            key.rsplit_once('.').unwrap_or(("", key))
        };
        let header = match table {
            "projects.NAME" => "[projects.".to_string(),
            "notify.webhook[i]" | "notify.webhook" => "[[notify.webhook]]".to_string(),
            "notify.smn[i]" | "notify.smn" => "[[notify.smn]]".to_string(),
            section => format!("[{section}]"),
        };
        let listed = chunks.iter().any(|(found, lines)| {
            found.starts_with(&header)
                && (name.is_empty()
                    || lines.iter().any(|line| {
                        line.starts_with(&format!("{name} ="))
                            || line.starts_with(&format!("{name}."))
                    }))
        });
        assert!(listed, "{key} is not in config/ecs-jobwatch.toml");
    }
}

#[test]
fn the_example_configuration_loads() {
    // Its watch.dir is the package's; point it at a directory that exists.
    let dir = tempfile::tempdir().unwrap();
    let text = EXAMPLE.replace(
        "/etc/ecs-jobwatch/jobs.d",
        &dir.path().display().to_string(),
    );
    let config = load(&text, &no_env()).unwrap_or_else(|error| panic!("{error}"));
    let printed = config.to_redacted_toml();
    assert_eq!(load(&printed, &no_env()).unwrap(), config, "{printed}");
}
