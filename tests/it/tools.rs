//! Tests that need a tool from outside the crate (a Python package, a
//! Debian package): whether it is there, and what to do when it is not.
//! Where `CI` or `REQUIRE_TOOLS=1` is set a missing tool fails the test;
//! elsewhere the test prints one `SKIPPED` line and passes.

use std::io::Write as _;

/// True when `CI` or `REQUIRE_TOOLS=1` asks for a failure instead of a skip.
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty())
        || std::env::var("REQUIRE_TOOLS").is_ok_and(|value| value == "1")
}

/// Whether `problem` (a missing tool) lets `test` run: `None` means it
/// does. Otherwise fails under `CI` / `REQUIRE_TOOLS=1`, and elsewhere
/// prints one line straight to stderr (the harness captures `eprintln!`)
/// and returns false.
pub fn available(test: &str, problem: Option<String>) -> bool {
    let Some(problem) = problem else {
        return true;
    };
    assert!(
        !required(),
        "{test} cannot run: {problem} (CI or REQUIRE_TOOLS=1 is set, so this fails instead of skipping)"
    );
    let line =
        format!("SKIPPED {test}: {problem} (CI=true or REQUIRE_TOOLS=1 makes this a failure)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// Whether `python3` can import `module`; `None` when it can.
pub fn python_module(module: &str, install: &str) -> Option<String> {
    let status = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => None,
        Ok(_) => Some(format!(
            "the Python package {module} is missing ({install})"
        )),
        Err(error) => Some(format!("python3 cannot run ({error})")),
    }
}

/// Whether `program` is on the PATH; `None` when it is.
pub fn program(program: &str, install: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    (!found).then(|| format!("{program} is not installed ({install})"))
}
