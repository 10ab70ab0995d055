//! Fuzzes the watch file parser with arbitrary bytes: `parse_text` must
//! never panic, every entry it returns has a job key that reads back to
//! itself and labels within the limits, and problems per file stay
//! bounded.

#![no_main]

use std::path::Path;

use ecs_jobwatch::job::JobKey;
use ecs_jobwatch::job::spec;
use ecs_jobwatch::watch::{self, Origin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    let path = Path::new("fuzz.jobs");
    let (entries, problems) = watch::parse_text(path, text);
    // One listed problem per line at most, plus one summary line.
    assert!(problems.len() <= watch::MAX_PROBLEMS_PER_FILE + 1);
    let lines = text.split(|&byte| byte == b'\n').count();
    assert!(entries.len() <= lines);
    for entry in &entries {
        assert_eq!(
            JobKey::parse(&entry.key.to_string()).as_ref(),
            Ok(&entry.key)
        );
        assert!(entry.labels.len() <= spec::MAX_LABELS);
        for (key, value) in &entry.labels {
            assert!(!key.is_empty() && key.len() <= spec::MAX_LABEL_KEY_LEN);
            assert!(!value.is_empty() && value.chars().count() <= spec::MAX_LABEL_VALUE_LEN);
        }
        match &entry.origin {
            Origin::File { path: p, line } => {
                assert_eq!(p, path);
                assert!(*line >= 1 && *line <= lines);
            }
            Origin::Config => panic!("a file entry with the config origin"),
        }
    }
    for problem in &problems {
        assert_eq!(problem.path, path);
        let _ = problem.to_string();
    }
});
