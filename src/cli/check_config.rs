//! `ecs-jobwatch check-config`: loads and validates everything `run`
//! would (the configuration, the watch files, the credentials source
//! without the network, the webhook secrets) and prints the effective
//! configuration with secrets redacted.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::daemon::{self, exit};
use crate::huaweicloud::credentials::{CredentialProvider, Environment};

use super::{environment, fail, load_config};

/// Exit 0 for a valid configuration, 78 naming the first problem.
pub fn main(config_path: Option<PathBuf>) -> ExitCode {
    let env = environment();
    let (path, config) = match load_config(config_path, &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let (list, problems) = daemon::read_watch_list(&config);
    if let Some(problem) = problems.first() {
        for other in &problems[1..] {
            eprintln!("ecs-jobwatch: {other}");
        }
        return fail(exit::CONFIG, problem);
    }
    let credentials = daemon::account::credentials_config(&config);
    let provider =
        match CredentialProvider::new(&credentials, &Environment::from_pairs(env.clone())) {
            Ok((provider, warnings)) => {
                for warning in warnings {
                    eprintln!("ecs-jobwatch: warning: {warning}");
                }
                provider
            }
            Err(error) => return fail(exit::CONFIG, format!("credentials: {error}")),
        };
    if let Err(error) = crate::output::webhook::load_sinks(&config) {
        return fail(exit::CONFIG, error);
    }
    println!("# ecs-jobwatch check-config: {} is valid", path.display());
    println!("# credentials: {}", provider.resolved());
    println!("# watch list: {} jobs", list.len());
    print!("{}", config.to_redacted_toml());
    ExitCode::from(exit::OK)
}
