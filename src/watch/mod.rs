//! The watch list: which jobs the daemon tracks, and the labels of each.
//!
//! The list merges the ids of `watch.jobs` in the configuration with every
//! `*.jobs` file of `watch.dir`, read in name order. A file holds one job per
//! line, `JOB_ID [key=value ...]`, with `#` starting a comment. Reading never
//! fails as a whole: a bad line, an unreadable file or a missing directory is
//! a [`Problem`] naming the place, and everything else still counts. The
//! module also computes a cheap [`Fingerprint`] of the directory so that a
//! periodic scan notices edits without reading any file.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::job::id::JobId;

/// The largest watch file read, in bytes; a larger one is refused unread.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The longest line accepted, in bytes, without its line ending.
pub const MAX_LINE_BYTES: usize = 4096;

/// The most jobs a watch list holds; later ones are ignored with a problem.
pub const MAX_ENTRIES: usize = 1_000_000;

/// The most labels one line may carry.
pub const MAX_LABELS: usize = 32;

/// The longest label key, in characters.
pub const MAX_LABEL_KEY_LEN: usize = 64;

/// The longest label value, in characters.
pub const MAX_LABEL_VALUE_LEN: usize = 256;

/// The most problems listed for one file; the rest are counted in one last problem.
///
/// A file of garbage may hold millions of bad lines, and a problem per line would cost far more
/// memory than the file itself.
pub const MAX_PROBLEMS_PER_FILE: usize = 100;

/// The suffix that marks a file of `watch.dir` as a watch file.
pub const FILE_SUFFIX: &str = ".jobs";

/// Labels of one job, sorted by key.
pub type Labels = BTreeMap<String, String>;

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
    pub job_id: JobId,
    pub labels: Labels,
    pub origin: Origin,
}

/// A problem with one line or one file; Display is "path:line: message" or "path: message".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
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
    jobs: BTreeMap<JobId, Tracked>,
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
    pub fn get(&self, id: &JobId) -> Option<&Labels> {
        self.jobs.get(id).map(|tracked| &tracked.labels)
    }

    /// Whether a job is watched.
    pub fn contains(&self, id: &JobId) -> bool {
        self.jobs.contains_key(id)
    }

    /// Where a watched job was first listed.
    pub fn origin(&self, id: &JobId) -> Option<Origin> {
        self.jobs
            .get(id)
            .map(|tracked| self.origin_of(tracked.place))
    }

    /// Every job with its labels, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&JobId, &Labels)> {
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
    fn add(&mut self, job_id: JobId, labels: Labels, place: Place, limit: usize) -> Accept {
        if let Some(first) = self.jobs.get(&job_id) {
            if first.labels == labels {
                return Accept::Taken;
            }
            let first_place = match self.origin_of(first.place) {
                Origin::Config => "in watch.jobs of the configuration".to_string(),
                file => format!("at {file}"),
            };
            return Accept::Refused(format!(
                "job {job_id} is already listed {first_place} with other labels; this line is ignored"
            ));
        }
        if self.jobs.len() >= limit {
            return Accept::Full(limit);
        }
        self.jobs.insert(job_id, Tracked { labels, place });
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
///
/// At most [`MAX_ENTRIES`] entries are returned; past that, one problem and the rest is ignored.
pub fn parse_text(path: &Path, text: &[u8]) -> (Vec<Entry>, Vec<Problem>) {
    parse_text_limited(path, text, MAX_ENTRIES)
}

fn parse_text_limited(path: &Path, text: &[u8], limit: usize) -> (Vec<Entry>, Vec<Problem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let _ = parse_lines(path, text, &mut problems, |job_id, labels, line| {
        if entries.len() >= limit {
            return Accept::Full(limit);
        }
        entries.push(Entry {
            job_id,
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
    mut accept: impl FnMut(JobId, Labels, usize) -> Accept,
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
        let parsed = check_line_bytes(raw).and_then(parse_line);
        let (job_id, labels) = match parsed {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(message) => {
                report(number, message);
                continue;
            }
        };
        match accept(job_id, labels, number) {
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

/// Parses one line of a watch file: `None` for a blank or comment line.
///
/// The scanning is done on bytes with plain loops: a debug build runs generic iterator code
/// unoptimised, and a watch file may have a hundred thousand lines.
fn parse_line(line: &str) -> Result<Option<(JobId, Labels)>, String> {
    let content = match line.as_bytes().iter().position(|&byte| byte == b'#') {
        Some(hash) => &line[..hash],
        None => line,
    };
    let mut fields = Fields { rest: content };
    let Some(id) = fields.next() else {
        return Ok(None);
    };
    let job_id = JobId::parse(id).map_err(|error| error.to_string())?;
    let mut labels = Labels::new();
    for field in fields {
        let (key, value) = parse_label(field)?;
        if labels.len() == MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        if labels.contains_key(key) {
            return Err(format!("label key {key:?} is repeated"));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(Some((job_id, labels)))
}

/// The fields of a line, separated by runs of spaces and tabs.
struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        let mut start = 0;
        while start < bytes.len() && is_separator(bytes[start]) {
            start += 1;
        }
        if start == bytes.len() {
            self.rest = "";
            return None;
        }
        let mut end = start;
        while end < bytes.len() && !is_separator(bytes[end]) {
            end += 1;
        }
        // Both ends sit next to ASCII bytes, so they are character boundaries.
        let field = &self.rest[start..end];
        self.rest = &self.rest[end..];
        Some(field)
    }
}

fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.' || byte == b'-'
}

/// Splits and checks one `key=value` field.
fn parse_label(field: &str) -> Result<(&str, &str), String> {
    let bad = |why: String| format!("bad label {field:?}: {why}");
    let Some(equals) = field.as_bytes().iter().position(|&byte| byte == b'=') else {
        return Err(bad("expected key=value".to_string()));
    };
    let (key, value) = (&field[..equals], &field[equals + 1..]);
    let Some(&first) = key.as_bytes().first() else {
        return Err(bad("the key is empty".to_string()));
    };
    if !first.is_ascii_alphabetic() {
        let first = key.chars().next().unwrap_or_default();
        return Err(bad(format!("the key starts with {first:?}, not a letter")));
    }
    if let Some(index) = key.bytes().position(|byte| !is_key_byte(byte)) {
        let c = key[index..].chars().next().unwrap_or_default();
        return Err(bad(format!(
            "the key contains {c:?}, only A-Z a-z 0-9 _ . - are allowed"
        )));
    }
    // The key is ASCII by now, so its length in bytes is its length in characters.
    if key.len() > MAX_LABEL_KEY_LEN {
        return Err(bad(format!(
            "the key is {} characters long, at most {MAX_LABEL_KEY_LEN} are allowed",
            key.len()
        )));
    }
    if value.is_empty() {
        return Err(bad("the value is empty".to_string()));
    }
    // An ASCII value has no white space left: spaces and tabs split fields, and the line has no
    // control characters. Only other values need their characters looked at.
    if value.is_ascii() && value.len() <= MAX_LABEL_VALUE_LEN {
        return Ok((key, value));
    }
    let length = value.chars().count();
    if length > MAX_LABEL_VALUE_LEN {
        return Err(bad(format!(
            "the value is {length} characters long, at most {MAX_LABEL_VALUE_LEN} are allowed"
        )));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace()) {
        return Err(bad(format!(
            "the value contains the white space U+{:04X}",
            u32::from(c)
        )));
    }
    Ok((key, value))
}

/// Reads config ids plus the directory. Never fails: an unreadable directory or file is a Problem.
pub fn load(config_jobs: &[JobId], dir: Option<&Path>) -> (WatchList, Vec<Problem>) {
    load_limited(config_jobs, dir, MAX_ENTRIES)
}

fn load_limited(
    config_jobs: &[JobId],
    dir: Option<&Path>,
    limit: usize,
) -> (WatchList, Vec<Problem>) {
    let mut list = WatchList::default();
    let mut problems = Vec::new();
    for job_id in config_jobs {
        match list.add(job_id.clone(), Labels::new(), Place::Config, limit) {
            Accept::Taken => {}
            // Every config entry has no labels, so a config duplicate is always identical.
            Accept::Refused(message) => problems.push(config_problem(message)),
            Accept::Full(limit) => {
                problems.push(config_problem(format!(
                    "more than {limit} jobs, the most allowed; job {job_id} and the rest are ignored"
                )));
                return (list, problems);
            }
        }
    }
    let Some(dir) = dir else {
        return (list, problems);
    };
    for path in watch_files(dir, &mut problems) {
        let text = match read_watch_file(&path) {
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
        let flow = parse_lines(&path, &text, &mut problems, |job_id, labels, line| {
            list.add(job_id, labels, Place::File { file, line }, limit)
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

fn config_problem(message: String) -> Problem {
    Problem {
        path: PathBuf::from("watch.jobs"),
        line: None,
        message,
    }
}

/// Whether a directory entry's name makes it a watch file candidate.
fn is_watch_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    !name.starts_with(b".") && name.ends_with(FILE_SUFFIX.as_bytes())
}

/// The candidate paths of a directory in name order; directory errors become problems.
fn watch_files(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let dir_problem = |message: String| Problem {
        path: dir.to_path_buf(),
        line: None,
        message,
    };
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(error) => {
            problems.push(dir_problem(format!("cannot read the directory: {error}")));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for entry in reader {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                if is_watch_name(&name) {
                    names.push(name);
                }
            }
            Err(error) => {
                problems.push(dir_problem(format!("cannot read the directory: {error}")));
                break;
            }
        }
    }
    names.sort();
    names.into_iter().map(|name| dir.join(name)).collect()
}

/// `O_NONBLOCK` where its value is the generic Linux one; elsewhere no flag.
///
/// Opening a FIFO for reading blocks until a writer appears; the flag makes that open return at
/// once should a regular file be swapped for a FIFO between the type check and the open. Regular
/// files ignore it.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    )
))]
const OPEN_NONBLOCK: i32 = 0o4000;
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    )
)))]
const OPEN_NONBLOCK: i32 = 0;

/// Reads one watch file, refusing anything but a regular file of at most [`MAX_FILE_BYTES`].
///
/// A directory is `None`: it is ignored, not a problem.
fn read_watch_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    // `metadata` follows symbolic links, so a link to a regular file is read like the file.
    let metadata = fs::metadata(path).map_err(|error| format!("cannot read the file: {error}"))?;
    if metadata.is_dir() {
        return Ok(None);
    }
    check_file_metadata(&metadata)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_NONBLOCK)
        .open(path)
        .map_err(|error| format!("cannot open the file: {error}"))?;
    // The file may have been replaced since the check; the open one is what counts.
    let metadata = file
        .metadata()
        .map_err(|error| format!("cannot read the file: {error}"))?;
    check_file_metadata(&metadata)?;
    read_capped(file, MAX_FILE_BYTES, metadata.len()).map(Some)
}

fn check_file_metadata(metadata: &fs::Metadata) -> Result<(), String> {
    if !metadata.is_file() {
        return Err(format!(
            "not a regular file ({}), skipped",
            file_type_name(metadata.file_type())
        ));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_big(metadata.len()));
    }
    Ok(())
}

fn too_big(size: u64) -> String {
    format!("the file is {size} bytes, more than the limit of {MAX_FILE_BYTES}; not read")
}

/// Reads at most `limit + 1` bytes, so that a file that grew past the limit is caught.
fn read_capped(reader: impl Read, limit: u64, size_hint: u64) -> Result<Vec<u8>, String> {
    let capacity = usize::try_from(size_hint.min(limit)).unwrap_or(0);
    let mut text = Vec::with_capacity(capacity);
    reader
        .take(limit + 1)
        .read_to_end(&mut text)
        .map_err(|error| format!("cannot read the file: {error}"))?;
    if text.len() as u64 > limit {
        return Err(format!(
            "the file grew past the limit of {limit} bytes while being read; not used"
        ));
    }
    Ok(text)
}

fn file_type_name(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_dir() {
        "a directory"
    } else {
        "an unknown kind"
    }
}

/// A cheap fingerprint of the `.jobs` files in a directory (name, size, mtime with nanoseconds,
/// inode), for a periodic scan that notices changes within seconds without reading files.
///
/// Beyond those four it also keeps the device, the change time (which no one can set back, so a
/// rewrite that restores size and mtime still shows) and whether the file is regular. Two
/// fingerprints are equal when nothing a reload would see has changed, as far as metadata tells;
/// an unreadable directory or entry is part of the fingerprint too, so its recovery shows.
/// Directories named `*.jobs` and names starting with `.` are left out, as [`load`] ignores them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Fingerprint {
    dir_error: Option<io::ErrorKind>,
    files: Vec<Stamp>,
}

/// The metadata of one candidate file; `Err` holds why `metadata` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    name: OsString,
    state: Result<FileState, io::ErrorKind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileState {
    device: u64,
    inode: u64,
    size: u64,
    mtime: i64,
    mtime_nanos: i64,
    ctime: i64,
    ctime_nanos: i64,
    regular: bool,
}

/// Fingerprints the watch files of a directory; reads metadata only.
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(error) => {
            return Fingerprint {
                dir_error: Some(error.kind()),
                files: Vec::new(),
            };
        }
    };
    let mut files = Vec::new();
    let mut dir_error = None;
    for entry in reader {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                dir_error = Some(error.kind());
                break;
            }
        };
        let name = entry.file_name();
        if !is_watch_name(&name) {
            continue;
        }
        let state = match fs::metadata(entry.path()) {
            Ok(metadata) if metadata.is_dir() => continue,
            Ok(metadata) => Ok(FileState {
                device: metadata.dev(),
                inode: metadata.ino(),
                size: metadata.size(),
                mtime: metadata.mtime(),
                mtime_nanos: metadata.mtime_nsec(),
                ctime: metadata.ctime(),
                ctime_nanos: metadata.ctime_nsec(),
                regular: metadata.is_file(),
            }),
            Err(error) => Err(error.kind()),
        };
        files.push(Stamp { name, state });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Fingerprint { dir_error, files }
}

impl FromIterator<(JobId, Labels)> for WatchList {
    /// A list built in code (tests, the demo): every entry counts as listed
    /// in the configuration; the first occurrence of an id wins.
    fn from_iter<I: IntoIterator<Item = (JobId, Labels)>>(iter: I) -> WatchList {
        let mut list = WatchList::default();
        for (job_id, labels) in iter {
            list.jobs.entry(job_id).or_insert(Tracked {
                labels,
                place: Place::Config,
            });
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;
    use std::time::{Duration, SystemTime};

    fn id(value: &str) -> JobId {
        JobId::parse(value).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// The outcome of one line: no entry, an entry, or a problem message.
    type Line<'a> = Result<Option<(&'a str, &'a [(&'a str, &'a str)])>, &'a str>;

    /// Parses `input` as a whole file of one line and compares with `expected`.
    fn check(input: impl AsRef<[u8]>, expected: Line<'_>) {
        let input = input.as_ref();
        let (entries, problems) = parse_text(Path::new("t.jobs"), input);
        let actual = match (&entries[..], &problems[..]) {
            ([], []) => Ok(None),
            ([entry], []) => {
                assert_eq!(
                    entry.origin,
                    Origin::File {
                        path: PathBuf::from("t.jobs"),
                        line: 1
                    }
                );
                Ok(Some((entry.job_id.clone(), entry.labels.clone())))
            }
            ([], [problem]) => {
                assert_eq!(problem.line, Some(1), "{input:?}");
                Err(problem.message.clone())
            }
            _ => panic!("{input:?} gave {entries:?} and {problems:?}"),
        };
        let expected = expected
            .map(|entry| entry.map(|(job, pairs)| (id(job), labels(pairs))))
            .map_err(str::to_string);
        assert_eq!(actual, expected, "{input:?}");
    }

    #[test]
    fn line_parsing() {
        let id32 = "ff80808288d41e1b018990260955686a";
        check(id32, Ok(Some((id32, &[]))));
        check(
            "ff80 team=a env=prod # note",
            Ok(Some(("ff80", &[("team", "a"), ("env", "prod")]))),
        );
        check("\tff80\t team=a\t", Ok(Some(("ff80", &[("team", "a")]))));
        check("ff80 team=a#b", Ok(Some(("ff80", &[("team", "a")]))));
        check("ff80#team=a", Ok(Some(("ff80", &[]))));
        check("ff80 url=a=b", Ok(Some(("ff80", &[("url", "a=b")]))));
        check(
            "ff80 k.v-1_x=ünï/€",
            Ok(Some(("ff80", &[("k.v-1_x", "ünï/€")]))),
        );
        check("ff80 team=a\r", Ok(Some(("ff80", &[("team", "a")]))));
        check("\u{feff}ff80", Ok(Some(("ff80", &[]))));
        check("", Ok(None));
        check("   \t ", Ok(None));
        check("# just a comment", Ok(None));
        check("   # indented comment", Ok(None));
        check("\r", Ok(None));
        check("\u{feff}", Ok(None));
        let key64 = format!("k{}", "x".repeat(63));
        let value256 = "é".repeat(256);
        check(
            format!("a {key64}={value256}"),
            Ok(Some(("a", &[(key64.as_str(), value256.as_str())]))),
        );
        let many: String = (0..32).map(|n| format!(" k{n}=v")).collect();
        assert_eq!(
            parse_text(Path::new("t"), format!("a{many}").as_bytes()).0[0]
                .labels
                .len(),
            32
        );

        check(
            "a/b",
            Err("job id contains '/', only A-Z a-z 0-9 - _ are allowed"),
        );
        check(
            "é team=a",
            Err("job id contains 'é', only A-Z a-z 0-9 - _ are allowed"),
        );
        check(
            "x".repeat(65),
            Err("job id is 65 characters long, at most 64 are allowed"),
        );
        check("ff80 team", Err(r#"bad label "team": expected key=value"#));
        check("ff80 =a", Err(r#"bad label "=a": the key is empty"#));
        check(
            "ff80 team=",
            Err(r#"bad label "team=": the value is empty"#),
        );
        check(
            "ff80 1team=a",
            Err(r#"bad label "1team=a": the key starts with '1', not a letter"#),
        );
        check(
            "ff80 ékey=a",
            Err(r#"bad label "ékey=a": the key starts with 'é', not a letter"#),
        );
        check(
            "ff80 tëam=a",
            Err(r#"bad label "tëam=a": the key contains 'ë', only A-Z a-z 0-9 _ . - are allowed"#),
        );
        check(
            "ff80 te:am=a",
            Err(r#"bad label "te:am=a": the key contains ':', only A-Z a-z 0-9 _ . - are allowed"#),
        );
        check(
            format!("a k{}=v", "x".repeat(64)),
            Err(&format!(
                "bad label \"k{}=v\": the key is 65 characters long, at most 64 are allowed",
                "x".repeat(64)
            )),
        );
        check(
            format!("a k={}", "v".repeat(257)),
            Err(&format!(
                "bad label \"k={}\": the value is 257 characters long, at most 256 are allowed",
                "v".repeat(257)
            )),
        );
        check(
            "ff80 team=a\u{a0}b",
            Err("bad label \"team=a\\u{a0}b\": the value contains the white space U+00A0"),
        );
        check(
            "ff80 team=a env=b team=c",
            Err(r#"label key "team" is repeated"#),
        );
        check(format!("a{many} k32=v"), Err("more than 32 labels"));
    }

    #[test]
    fn line_bytes() {
        check(b"ff80 team=\xff", Err("line is not valid UTF-8"));
        check(b"\xc3", Err("line is not valid UTF-8"));
        check(b"ff80\0", Err("line contains the control character U+0000"));
        check(
            "ff80 # bell \u{7}",
            Err("line contains the control character U+0007"),
        );
        check(
            "ff80 a=\u{85}",
            Err("line contains the control character U+0085"),
        );
        check("a\rb", Err("line contains the control character U+000D"));
        check(
            format!("a #{}", "x".repeat(MAX_LINE_BYTES - 3)),
            Ok(Some(("a", &[]))),
        );
        check(
            format!("a #{}", "x".repeat(MAX_LINE_BYTES - 2)),
            Err("line is 4097 bytes long, at most 4096 are allowed"),
        );
        // A byte order mark counts only at the very start of the text.
        check(
            " \u{feff}",
            Err("job id contains '\\u{feff}', only A-Z a-z 0-9 - _ are allowed"),
        );
    }

    #[test]
    fn text_line_numbers() {
        let text = b"\xef\xbb\xbf# header\r\na team=x\r\n\r\nb/c\r\nd team=y # z\r\n\xff\r\ne";
        let path = Path::new("dir/a.jobs");
        let (entries, problems) = parse_text(path, text);
        let found: Vec<(String, usize)> = entries
            .iter()
            .map(|entry| match &entry.origin {
                Origin::File { line, .. } => (entry.job_id.to_string(), *line),
                Origin::Config => unreachable!(),
            })
            .collect();
        assert_eq!(found, [("a".into(), 2), ("d".into(), 5), ("e".into(), 7)]);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "dir/a.jobs:4: job id contains '/', only A-Z a-z 0-9 - _ are allowed",
                "dir/a.jobs:6: line is not valid UTF-8",
            ]
        );
    }

    #[test]
    fn text_entry_cap() {
        let (entries, problems) = parse_text_limited(Path::new("a.jobs"), b"a\nb\n#\nc\nd\n", 2);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["a.jobs:4: more than 2 jobs, the most allowed; this line and the rest are ignored"]
        );
    }

    #[test]
    fn text_problem_cap() {
        let mut text = "bad/id\n".repeat(MAX_PROBLEMS_PER_FILE + 50);
        text.push_str("good\n");
        let (entries, problems) = parse_text(Path::new("a.jobs"), text.as_bytes());
        assert_eq!(entries.len(), 1);
        assert_eq!(problems.len(), MAX_PROBLEMS_PER_FILE + 1);
        assert_eq!(
            problems[MAX_PROBLEMS_PER_FILE - 1].line,
            Some(MAX_PROBLEMS_PER_FILE)
        );
        assert_eq!(
            problems[MAX_PROBLEMS_PER_FILE].to_string(),
            "a.jobs: 50 more problems in this file are not listed"
        );
    }

    #[test]
    fn problem_display() {
        let check = |problem: Problem, expected: &str| assert_eq!(problem.to_string(), expected);
        let at = |line| Problem {
            path: PathBuf::from("/etc/j/a.jobs"),
            line,
            message: "oops".into(),
        };
        check(at(Some(3)), "/etc/j/a.jobs:3: oops");
        check(at(None), "/etc/j/a.jobs: oops");
    }

    #[test]
    fn large_text_parses() {
        let mut text = String::new();
        for n in 0..100_000 {
            text.push_str(&format!("job-{n:06} team=infra env=prod # line {n}\n"));
        }
        let (entries, problems) = parse_text(Path::new("big.jobs"), text.as_bytes());
        assert_eq!((entries.len(), problems.len()), (100_000, 0));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn parse_text_never_panics(text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let (entries, problems) = parse_text(Path::new("p.jobs"), &text);
            let lines = text.split(|&b| b == b'\n').count();
            proptest::prop_assert!(entries.len() + problems.len() <= lines);
        }

        #[test]
        fn parse_text_never_panics_on_near_misses(text in "[a-z0-9#= \t\r\n\u{0}\u{feff}\u{a0}é=_.-]{0,200}") {
            let _ = parse_text(Path::new("p.jobs"), text.as_bytes());
        }
    }

    // Directory tests.

    fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// Problems as strings, with the directory shown as `D`.
    fn shown(dir: &Path, problems: &[Problem]) -> Vec<String> {
        let prefix = dir.display().to_string();
        problems
            .iter()
            .map(|problem| problem.to_string().replace(&prefix, "D"))
            .collect()
    }

    fn ids(list: &WatchList) -> Vec<String> {
        list.iter().map(|(id, _)| id.to_string()).collect()
    }

    #[test]
    fn load_config_only() {
        let (list, problems) = load(&[id("b"), id("a"), id("b")], None);
        assert_eq!(problems, []);
        assert_eq!(ids(&list), ["a", "b"]);
        assert_eq!(list.get(&id("a")), Some(&Labels::new()));
        assert_eq!(list.origin(&id("b")), Some(Origin::Config));
        assert!(!list.contains(&id("c")));
        let (empty, problems) = load(&[], None);
        assert!(empty.is_empty() && problems.is_empty());
        assert_eq!(empty, WatchList::default());
    }

    #[test]
    fn load_files_in_name_order() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        write(dir, "b.jobs", "x team=b\ny\n");
        write(dir, "a.jobs", "x team=a\n");
        write(dir, "c.jobs", "z\n");
        write(dir, ".hidden.jobs", "hidden\n");
        write(dir, ".jobs", "dotonly\n");
        write(dir, "notes.txt", "txt\n");
        write(dir, "d.jobs.bak", "bak\n");
        write(dir, "a.JOBS", "upper\n");
        fs::create_dir(dir.join("sub.jobs")).unwrap();
        write(&dir.join("sub.jobs"), "inner.jobs", "inner\n");
        let (list, problems) = load(&[id("cfg")], Some(dir));
        assert_eq!(
            shown(dir, &problems),
            [
                "D/b.jobs:1: job x is already listed at D/a.jobs:1 with other labels; this line is ignored"
            ]
        );
        assert_eq!(ids(&list), ["cfg", "x", "y", "z"]);
        assert_eq!(list.get(&id("x")), Some(&labels(&[("team", "a")])));
        assert_eq!(
            list.origin(&id("y")),
            Some(Origin::File {
                path: dir.join("b.jobs"),
                line: 2
            })
        );
        assert_eq!(
            list.origin(&id("z")),
            Some(Origin::File {
                path: dir.join("c.jobs"),
                line: 1
            })
        );
    }

    #[test]
    fn load_duplicates() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        write(dir, "1.jobs", "same team=a\nplain\ncfg\nplain env=x\n");
        write(
            dir,
            "2.jobs",
            "# again\nsame team=a\nplain\nsame\ncfg team=x\n",
        );
        let (list, problems) = load(&[id("cfg")], Some(dir));
        assert_eq!(
            shown(dir, &problems),
            [
                "D/1.jobs:4: job plain is already listed at D/1.jobs:2 with other labels; this line is ignored",
                "D/2.jobs:4: job same is already listed at D/1.jobs:1 with other labels; this line is ignored",
                "D/2.jobs:5: job cfg is already listed in watch.jobs of the configuration with other labels; this line is ignored",
            ]
        );
        assert_eq!(ids(&list), ["cfg", "plain", "same"]);
        assert_eq!(list.origin(&id("cfg")), Some(Origin::Config));
        assert_eq!(list.get(&id("same")), Some(&labels(&[("team", "a")])));
    }

    #[test]
    fn load_bad_line_keeps_the_rest() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        write(dir, "a.jobs", "good1\nbad/id\ngood2 team\ngood3 env=x\n");
        let (list, problems) = load(&[], Some(dir));
        assert_eq!(
            shown(dir, &problems),
            [
                "D/a.jobs:2: job id contains '/', only A-Z a-z 0-9 - _ are allowed",
                r#"D/a.jobs:3: bad label "team": expected key=value"#,
            ]
        );
        assert_eq!(ids(&list), ["good1", "good3"]);
    }

    #[test]
    fn load_missing_dir() {
        let temp = tempfile::tempdir().unwrap();
        let missing = temp.path().join("nope");
        let (list, problems) = load(&[id("a")], Some(&missing));
        assert_eq!(ids(&list), ["a"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, missing);
        assert_eq!(problems[0].line, None);
        assert!(
            problems[0]
                .message
                .starts_with("cannot read the directory: "),
            "{problems:?}"
        );
        // A file where the directory should be is a problem too.
        let file = write(temp.path(), "file", "a\n");
        let (_, problems) = load(&[], Some(&file));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn load_symlinks() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        write(dir, "a.jobs", "a\n");
        write(dir, "target.txt", "linked team=x\n");
        std::os::unix::fs::symlink("loop.jobs", dir.join("loop.jobs")).unwrap();
        std::os::unix::fs::symlink("missing.txt", dir.join("dangling.jobs")).unwrap();
        std::os::unix::fs::symlink("target.txt", dir.join("link.jobs")).unwrap();
        write(dir, "z.jobs", "z\n");
        let (list, problems) = load(&[], Some(dir));
        assert_eq!(ids(&list), ["a", "linked", "z"]);
        let shown = shown(dir, &problems);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("D/dangling.jobs: cannot read the file: "),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("D/loop.jobs: cannot read the file: "),
            "{shown:?}"
        );
    }

    #[test]
    fn load_skips_fifo_without_blocking() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        write(dir, "a.jobs", "a\n");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.join("pipe.jobs"))
            .status();
        if !made.is_ok_and(|status| status.success()) {
            // Without mkfifo there is no FIFO to skip; the rest of the suite still runs.
            return;
        }
        let (list, problems) = load(&[], Some(dir));
        assert_eq!(ids(&list), ["a"]);
        assert_eq!(
            shown(dir, &problems),
            ["D/pipe.jobs: not a regular file (a FIFO), skipped"]
        );
    }

    #[test]
    fn load_binary_garbage() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        // A fixed pseudo-random sequence, so a failure can be reproduced.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let garbage: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        assert!(garbage.contains(&0) && std::str::from_utf8(&garbage).is_err());
        write(dir, "a.jobs", &garbage);
        write(dir, "b.jobs", "fine\n");
        let (list, problems) = load(&[], Some(dir));
        assert!(list.contains(&id("fine")));
        assert!(!problems.is_empty());
        assert!(problems.len() <= MAX_PROBLEMS_PER_FILE + 1);
        assert!(
            problems
                .iter()
                .all(|problem| problem.path == dir.join("a.jobs"))
        );
    }

    #[test]
    fn load_refuses_oversized_file_unread() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let big = File::create(dir.join("big.jobs")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        write(dir, "small.jobs", "small\n");
        let (list, problems) = load(&[], Some(dir));
        assert_eq!(ids(&list), ["small"]);
        assert_eq!(
            shown(dir, &problems),
            ["D/big.jobs: the file is 33554433 bytes, more than the limit of 33554432; not read"]
        );
    }

    #[test]
    fn read_capped_catches_growth() {
        let check = |text: &[u8], expected: Result<&[u8], &str>| {
            assert_eq!(
                read_capped(text, 4, 0).as_deref().map_err(String::as_str),
                expected
            )
        };
        check(b"", Ok(b""));
        check(b"abcd", Ok(b"abcd"));
        check(
            b"abcde",
            Err("the file grew past the limit of 4 bytes while being read; not used"),
        );
    }

    #[test]
    fn load_entry_cap() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        write(dir, "a.jobs", "a\nb\nc\n");
        write(dir, "b.jobs", "d\n");
        let (list, problems) = load_limited(&[id("a"), id("x")], Some(dir), 3);
        assert_eq!(ids(&list), ["a", "b", "x"]);
        assert_eq!(
            shown(dir, &problems),
            ["D/a.jobs:3: more than 3 jobs, the most allowed; this line and the rest are ignored"]
        );
        let (list, problems) = load_limited(&[id("a"), id("b"), id("c")], None, 2);
        assert_eq!(ids(&list), ["a", "b"]);
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["watch.jobs: more than 2 jobs, the most allowed; job c and the rest are ignored"]
        );
    }

    #[test]
    fn fingerprint_notices_changes() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let empty = fingerprint(dir);
        assert_eq!(empty, fingerprint(dir));

        let a = write(dir, "a.jobs", "aaaa\n");
        let one = fingerprint(dir);
        assert_ne!(one, empty);
        assert_eq!(one, fingerprint(dir));

        // Files load ignores do not count.
        write(dir, ".a.jobs", "x\n");
        write(dir, "a.txt", "x\n");
        fs::create_dir(dir.join("d.jobs")).unwrap();
        assert_eq!(fingerprint(dir), one);

        // Same size, another content, and an mtime set explicitly to differ.
        let mut file = File::create(&a).unwrap();
        file.write_all(b"bbbb\n").unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::new(1_000_000, 123))
            .unwrap();
        drop(file);
        let rewritten = fingerprint(dir);
        assert_ne!(rewritten, one);

        write(dir, "b.jobs", "b\n");
        let two = fingerprint(dir);
        assert_ne!(two, rewritten);

        fs::remove_file(dir.join("b.jobs")).unwrap();
        let removed = fingerprint(dir);
        assert_ne!(removed, two);
        assert_eq!(removed, rewritten);

        std::os::unix::fs::symlink("nowhere", dir.join("c.jobs")).unwrap();
        assert_ne!(fingerprint(dir), removed);
        fs::remove_file(dir.join("c.jobs")).unwrap();

        let missing = fingerprint(&dir.join("nope"));
        assert_ne!(missing, Fingerprint::default());
        assert_eq!(missing, fingerprint(&dir.join("nope")));
    }
}
