//! Visible skips: a test that needs something this machine may lack (a
//! tmpfs mount, the official Python SDK) calls [`require`] or
//! [`require_command`]. When the need is met the test runs; when it is not,
//! the test either fails (CI, or `REQUIRE_TOOLS=1`) or skips, and a skip is
//! never silent: it writes one line to the process's real standard error,
//! which the test runner does not capture, and appends the same line to
//! [`skip_log`], which `.ci/run` prints as its skip summary.
//!
//! `REQUIRE_TOOLS=1` makes every missing tool a failure; `REQUIRE_TOOLS=0`
//! allows skips even where `CI` is set; otherwise a non-empty `CI` (other
//! than `0` or `false`) requires every tool.

use std::fmt::Display;
use std::io::Write as _;
use std::path::PathBuf;

/// Whether a missing tool fails the test instead of skipping it.
pub fn tools_required() -> bool {
    let set = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    match set("REQUIRE_TOOLS").as_deref() {
        Some("0") => false,
        Some(_) => true,
        None => set("CI").is_some_and(|value| value != "0" && value != "false"),
    }
}

/// The file every skip of this build's tests is appended to, one line each.
pub fn skip_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.log")
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("an unnamed test")
        .to_string()
}

/// Fails the calling test when tools are required; otherwise records the
/// skip and returns, and the caller returns at once.
pub fn skip(needed: &str, why: impl Display) {
    let test = test_name();
    assert!(
        !tools_required(),
        "{test} needs {needed}, which is missing here ({why}); CI and REQUIRE_TOOLS=1 \
         make that a failure: install it (see .ci/run)"
    );
    let line = format!("SKIPPED {test}: needs {needed} ({why})\n");
    // The real stderr, not `eprintln!`, which the test runner captures.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log());
    if let Ok(mut log) = log {
        let _ = log.write_all(line.as_bytes());
    }
}

/// The value of `found`, or `None` after [`skip`] (the caller returns).
pub fn require<T, E: Display>(found: Result<T, E>, needed: &str) -> Option<T> {
    match found {
        Ok(value) => Some(value),
        Err(why) => {
            skip(needed, why);
            None
        }
    }
}

/// Whether `program args..` runs and exits 0; when it does not, the test
/// is skipped (or fails, see [`tools_required`]) and `false` comes back.
pub fn require_command(program: &str, args: &[&str], needed: &str) -> bool {
    let output = std::process::Command::new(program).args(args).output();
    let found = match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "`{program} {}` exited {:?}: {}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("{program}: {error}")),
    };
    require(found, needed).is_some()
}
