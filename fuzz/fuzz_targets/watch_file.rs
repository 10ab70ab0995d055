//! Fuzzes the watch file parser with arbitrary bytes: `parse_text` must
//! never panic, every entry it returns has a valid id and labels within
//! the limits, and problems per file stay bounded.

#![no_main]

use std::path::Path;

use ecs_jobwatch::job::id::JobId;
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
            JobId::parse(entry.job_id.as_str()).as_ref(),
            Ok(&entry.job_id)
        );
        assert!(entry.labels.len() <= watch::MAX_LABELS);
        for (key, value) in &entry.labels {
            assert!(!key.is_empty() && key.len() <= watch::MAX_LABEL_KEY_LEN);
            assert!(!value.is_empty() && value.chars().count() <= watch::MAX_LABEL_VALUE_LEN);
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
