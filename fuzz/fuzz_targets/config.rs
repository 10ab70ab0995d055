//! Fuzzes the configuration loader with arbitrary text: `from_toml_str`
//! must never panic, every refusal names a place (a location, a dotted key,
//! or both) on one line, and every accepted configuration prints back to
//! itself. The text is loaded with an empty environment so that only the
//! file counts.

#![no_main]

use std::collections::BTreeMap;

use ecs_jobwatch::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = BTreeMap::new();
    match Config::from_toml_str(text, "fuzz.toml", &env) {
        Ok(config) => {
            // A loaded configuration prints and parses back to itself.
            let printed = config.to_redacted_toml();
            match Config::from_toml_str(&printed, "printed.toml", &env) {
                Ok(again) => assert_eq!(again, config, "read back from:\n{printed}"),
                Err(error) => panic!("the printed configuration is refused: {error}\n{printed}"),
            }
        }
        Err(error) => {
            assert!(
                error.location().is_some() || error.key().is_some(),
                "no place in {error:?}"
            );
            // The contract wants one line on stderr.
            assert!(!error.to_string().contains('\n'), "{error:?}");
        }
    }
});
