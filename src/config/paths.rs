//! Where the configuration file and the state directory are when nothing
//! says otherwise: the `--config` precedence, and systemd's
//! `$CONFIGURATION_DIRECTORY` and `$STATE_DIRECTORY`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The configuration file read when neither `--config`,
/// `$ECS_JOBWATCH_CONFIG` nor `$CONFIGURATION_DIRECTORY` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ecs-jobwatch/ecs-jobwatch.toml";

/// The file name looked up in `$CONFIGURATION_DIRECTORY`.
pub const CONFIG_FILE_NAME: &str = "ecs-jobwatch.toml";

/// The environment form of `--config`.
pub const CONFIG_VARIABLE: &str = "ECS_JOBWATCH_CONFIG";

/// The state directory used when `$STATE_DIRECTORY` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ecs-jobwatch";

/// The configuration file to read: the `--config` (`-c`) flag, else
/// `$ECS_JOBWATCH_CONFIG` when set and not empty, else
/// [`default_config_path`].
pub fn config_path(flag: Option<PathBuf>, env: &BTreeMap<String, String>) -> PathBuf {
    if let Some(path) = flag {
        return path;
    }
    match env.get(CONFIG_VARIABLE) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default_config_path(env),
    }
}

/// `$CONFIGURATION_DIRECTORY/ecs-jobwatch.toml` when that variable is set
/// in `env`, else `/etc/ecs-jobwatch/ecs-jobwatch.toml`.
pub fn default_config_path(env: &BTreeMap<String, String>) -> PathBuf {
    match systemd_directory(env, "CONFIGURATION_DIRECTORY") {
        Some(dir) => dir.join(CONFIG_FILE_NAME),
        None => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// The default `state.dir`: `$STATE_DIRECTORY`, else `/var/lib/ecs-jobwatch`.
pub(super) fn default_state_dir(env: &BTreeMap<String, String>) -> PathBuf {
    systemd_directory(env, "STATE_DIRECTORY").unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The first directory of a systemd `*_DIRECTORY` variable (systemd
/// separates several with colons), if it names one.
fn systemd_directory(env: &BTreeMap<String, String>, name: &str) -> Option<PathBuf> {
    let value = env.get(name)?;
    let first = value.split(':').next().unwrap_or("");
    if first.is_empty() {
        None
    } else {
        Some(PathBuf::from(first))
    }
}
