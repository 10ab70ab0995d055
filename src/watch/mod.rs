//! The watch list: which jobs the daemon tracks, and the labels of each.
//!
//! The list merges the jobs of `watch.jobs` in the configuration with every
//! `*.jobs` file of `watch.dir`, read in name order. A file holds one job per
//! line in the watch syntax of [`crate::job::spec`], `[PROJECT/][SERVICE:]JOB_ID
//! [key=value ...]`, with `#` starting a comment. Reading never fails as a
//! whole: a bad line (a bad id, an unknown service or project), an
//! unreadable file or a missing directory is a [`Problem`] naming the place,
//! and everything else still counts. [`fingerprint()`] notices edits with a
//! cheap periodic scan that reads no file.

pub mod file;
pub mod fingerprint;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

pub use crate::job::Labels;
use crate::job::spec;
use crate::job::{JobKey, ProjectName};

pub use fingerprint::{Fingerprint, fingerprint};

/// The longest line accepted, in bytes, without its line ending.
pub const MAX_LINE_BYTES: usize = 4096;

/// The most jobs a watch list holds; later ones are ignored with a problem.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The most problems listed for one file; the rest are counted in one last problem.
///
/// A file of garbage may hold millions of bad lines, and a problem per line would cost far more
/// memory than the file itself.
pub const MAX_PROBLEMS_PER_FILE: usize = 100;

/// The suffix that marks a file of `watch.dir` as a watch file.
pub const FILE_SUFFIX: &str = ".jobs";

/// Where an entry came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The `watch.jobs` list of the configuration file.
    Config,
    /// A line of a watch file; `line` counts from 1.
    File { path: PathBuf, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Config => f.write_str("watch.jobs"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// One job of a watch file, or of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The job.
    pub key: JobKey,
    /// Its labels.
    pub labels: Labels,
    /// Where it was listed.
    pub origin: Origin,
}

/// A problem with one line or one file; Display is "path:line: message" or "path: message".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (or `watch.jobs`).
    pub path: PathBuf,
    /// The line, counting from 1.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// The merged list of tracked jobs.
///
/// First occurrence of an id wins (config first, then files in name order); a later duplicate with
/// different labels is a Problem naming both places; an identical duplicate is silently fine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchList {
    jobs: BTreeMap<JobKey, Tracked>,
    /// The files that contributed entries, so that each entry stores an index, not a path.
    files: Vec<PathBuf>,
}

/// What the list keeps about one job.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tracked {
    labels: Labels,
    place: Place,
}

/// A compact [`Origin`]: the path is an index into [`WatchList::files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Config,
    File { file: usize, line: usize },
}

impl WatchList {
    /// The number of jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is watched.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The labels of a watched job.
    pub fn get(&self, id: &JobKey) -> Option<&Labels> {
        self.jobs.get(id).map(|tracked| &tracked.labels)
    }

    /// Whether a job is watched.
    pub fn contains(&self, id: &JobKey) -> bool {
        self.jobs.contains_key(id)
    }

    /// Where a watched job was first listed.
    pub fn origin(&self, id: &JobKey) -> Option<Origin> {
        self.jobs
            .get(id)
            .map(|tracked| self.origin_of(tracked.place))
    }

    /// Every job with its labels, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&JobKey, &Labels)> {
        self.jobs.iter().map(|(id, tracked)| (id, &tracked.labels))
    }

    fn origin_of(&self, place: Place) -> Origin {
        match place {
            Place::Config => Origin::Config,
            Place::File { file, line } => Origin::File {
                path: self.files[file].clone(),
                line,
            },
        }
    }

    /// Adds a job unless it is present; a present one with other labels is a conflict.
    fn add(&mut self, key: JobKey, labels: Labels, place: Place, limit: usize) -> Accept {
        if let Some(first) = self.jobs.get(&key) {
            if first.labels == labels {
                return Accept::Taken;
            }
            let first_place = match self.origin_of(first.place) {
                Origin::Config => "in watch.jobs of the configuration".to_string(),
                file => format!("at {file}"),
            };
            return Accept::Refused(format!(
                "job {key} is already listed {first_place} with other labels; this line is ignored"
            ));
        }
        if self.jobs.len() >= limit {
            return Accept::Full(limit);
        }
        self.jobs.insert(key, Tracked { labels, place });
        Accept::Taken
    }
}

/// The answer of a consumer of parsed lines.
enum Accept {
    /// The entry was taken, or was an identical duplicate.
    Taken,
    /// The entry was not taken, for the reason given; parsing goes on.
    Refused(String),
    /// The list holds its maximum of entries; parsing stops here.
    Full(usize),
}

/// Parses one file's text (already read). `path` only names the place in problems.
/// Parses one file's text (already read). `path` only names the place in problems.
///
/// At most [`MAX_ENTRIES`] entries are returned; past that, one problem and the rest is ignored.
pub fn parse_text(path: &Path, text: &[u8]) -> (Vec<Entry>, Vec<Problem>) {
    parse_text_limited(path, text, MAX_ENTRIES)
}

fn parse_text_limited(path: &Path, text: &[u8], limit: usize) -> (Vec<Entry>, Vec<Problem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let _ = parse_lines(path, text, &mut problems, |key, labels, line| {
        if entries.len() >= limit {
            return Accept::Full(limit);
        }
        entries.push(Entry {
            key,
            labels,
            origin: Origin::File {
                path: path.to_path_buf(),
                line,
            },
        });
        Accept::Taken
    });
    (entries, problems)
}

/// Splits a text into lines and hands every good one to `accept`, with its line number.
///
/// Returns `Break` when `accept` answered [`Accept::Full`]; that problem is already recorded.
fn parse_lines(
    path: &Path,
    text: &[u8],
    problems: &mut Vec<Problem>,
    mut accept: impl FnMut(JobKey, Labels, usize) -> Accept,
) -> ControlFlow<()> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut listed = 0;
    let mut unlisted = 0;
    let mut report = |line: usize, message: String| {
        if listed < MAX_PROBLEMS_PER_FILE {
            listed += 1;
            problems.push(Problem {
                path: path.to_path_buf(),
                line: Some(line),
                message,
            });
        } else {
            unlisted += 1;
        }
    };
    let mut flow = ControlFlow::Continue(());
    for (index, raw) in text.split(|&byte| byte == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let parsed = check_line_bytes(raw).and_then(spec::parse_line);
        let (key, labels) = match parsed {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(message) => {
                report(number, message);
                continue;
            }
        };
        match accept(key, labels, number) {
            Accept::Taken => {}
            Accept::Refused(message) => report(number, message),
            Accept::Full(limit) => {
                report(
                    number,
                    format!(
                        "more than {limit} jobs, the most allowed; this line and the rest are ignored"
                    ),
                );
                flow = ControlFlow::Break(());
                break;
            }
        }
    }
    if unlisted > 0 {
        problems.push(Problem {
            path: path.to_path_buf(),
            line: None,
            message: format!("{unlisted} more problems in this file are not listed"),
        });
    }
    flow
}

/// Checks the length, the encoding and the characters of one line without its line ending.
fn check_line_bytes(raw: &[u8]) -> Result<&str, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(format!(
            "line is {} bytes long, at most {MAX_LINE_BYTES} are allowed",
            raw.len()
        ));
    }
    let line = std::str::from_utf8(raw).map_err(|_| "line is not valid UTF-8".to_string())?;
    // Most lines are printable ASCII; a byte loop settles them without decoding characters.
    if line.is_ascii()
        && !raw
            .iter()
            .any(|&byte| byte.is_ascii_control() && byte != b'\t')
    {
        return Ok(line);
    }
    if let Some(bad) = line.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(format!(
            "line contains the control character U+{:04X}",
            u32::from(bad)
        ));
    }
    Ok(line)
}
/// Whether a job can be watched (its project is configured, its service
/// reachable in that project); `Err` says why not.
pub type Check<'a> = &'a dyn Fn(&JobKey) -> Result<(), String>;

/// A check that knows only which projects exist.
pub fn projects_check(projects: &[ProjectName]) -> impl Fn(&JobKey) -> Result<(), String> + '_ {
    move |key: &JobKey| {
        if projects.contains(&key.project) {
            Ok(())
        } else {
            Err(unknown_project(&key.project, projects))
        }
    }
}

/// Reads the jobs of `watch.jobs` plus the directory. Never fails: an
/// unreadable directory or file is a [`Problem`], and so is a line that
/// `check` refuses (an unknown project, a service without an endpoint).
/// The jobs of `watch.jobs` were checked with the configuration.
pub fn load(
    config_jobs: &[(JobKey, Labels)],
    dir: Option<&Path>,
    check: Check<'_>,
) -> (WatchList, Vec<Problem>) {
    load_limited(config_jobs, dir, check, MAX_ENTRIES)
}

fn load_limited(
    config_jobs: &[(JobKey, Labels)],
    dir: Option<&Path>,
    check: Check<'_>,
    limit: usize,
) -> (WatchList, Vec<Problem>) {
    let mut list = WatchList::default();
    let mut problems = Vec::new();
    for (key, labels) in config_jobs {
        match list.add(key.clone(), labels.clone(), Place::Config, limit) {
            Accept::Taken => {}
            Accept::Refused(message) => problems.push(config_problem(message)),
            Accept::Full(limit) => {
                problems.push(config_problem(format!(
                    "more than {limit} jobs, the most allowed; job {key} and the rest are ignored"
                )));
                return (list, problems);
            }
        }
    }
    let Some(dir) = dir else {
        return (list, problems);
    };
    for path in file::watch_files(dir, &mut problems) {
        let text = match file::read_watch_file(&path) {
            Ok(Some(text)) => text,
            // A directory whose name ends in `.jobs` is not a watch file.
            Ok(None) => continue,
            Err(message) => {
                problems.push(Problem {
                    path,
                    line: None,
                    message,
                });
                continue;
            }
        };
        // The path is in place before parsing, since a conflict within the same file names it.
        let file = list.files.len();
        list.files.push(path.clone());
        let before = list.len();
        let flow = parse_lines(&path, &text, &mut problems, |key, labels, line| {
            if let Err(why) = check(&key) {
                return Accept::Refused(why);
            }
            list.add(key, labels, Place::File { file, line }, limit)
        });
        // Only a file that added a job is referred to by an index, so only such a file is kept.
        if list.len() == before {
            list.files.pop();
        }
        if flow.is_break() {
            break;
        }
    }
    (list, problems)
}

/// The message for a line naming a project the configuration lacks.
pub fn unknown_project(project: &ProjectName, projects: &[ProjectName]) -> String {
    let known: Vec<&str> = projects.iter().map(ProjectName::as_str).collect();
    format!(
        "unknown project {:?}: the configuration has {} (a [projects.NAME] table names one)",
        project.as_str(),
        known.join(", ")
    )
}

fn config_problem(message: String) -> Problem {
    Problem {
        path: PathBuf::from("watch.jobs"),
        line: None,
        message,
    }
}

impl FromIterator<(JobKey, Labels)> for WatchList {
    /// A list built in code (tests, the demo): every entry counts as listed
    /// in the configuration; the first occurrence of an id wins.
    fn from_iter<I: IntoIterator<Item = (JobKey, Labels)>>(iter: I) -> WatchList {
        let mut list = WatchList::default();
        for (key, labels) in iter {
            list.jobs.entry(key).or_insert(Tracked {
                labels,
                place: Place::Config,
            });
        }
        list
    }
}

#[cfg(test)]
mod tests;
