//! `ecs-jobwatch add JOB [key=value ...]`: one line into
//! `watch.dir/added.jobs`, which a running daemon picks up within 5 s.
//!
//! Hundreds of adds may run at once, from CI jobs of several users in one
//! group. Each takes an exclusive `flock` on `watch.dir/.add.lock` (the
//! watch reader skips names that start with a dot), reads `added.jobs`,
//! writes the new text to a temporary file beside it, syncs it and renames
//! it over the old one, then syncs the directory: a reader sees the old
//! file or the new one, never a torn one, and no add overwrites another's
//! line. Files are created group-writable (mode 0664 for `added.jobs`,
//! whose mode is kept afterwards, 0660 for the lock) whatever the umask;
//! with `chmod g+s` on `watch.dir` they belong to its group.
//!
//! A job is listed once. In `added.jobs`, a new line for a listed job
//! replaces that line (the new labels win); a job listed in `watch.jobs`
//! or another watch file is left as the operator wrote it, and `add` says
//! where it is listed.

use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::daemon::exit;
use crate::job::spec::{self, MAX_LABELS};
use crate::job::{JobKey, Labels};
use crate::watch::{self, MAX_LINE_BYTES, Origin};

use super::{environment, fail, load_config, parse_job};

/// The file of `watch.dir` that `add` (and `wait`) write.
pub const ADD_FILE: &str = "added.jobs";

/// The lock file of `watch.dir` that serialises adds.
pub const LOCK_FILE: &str = ".add.lock";

/// The prefix of the temporary files (dot-prefixed: never read as watch
/// files).
const TEMP_PREFIX: &str = ".added.jobs.";

/// The suffix of the temporary files.
const TEMP_SUFFIX: &str = ".tmp";

/// The mode of a new `added.jobs`: the daemon (maybe another user) reads
/// it, the group writes it.
const ADD_FILE_MODE: u32 = 0o664;

/// The mode of the lock file: every member of the group takes the lock.
const LOCK_FILE_MODE: u32 = 0o660;

/// Why a job could not be added; each maps to an exit code.
#[derive(Debug)]
pub enum AddError {
    /// No `watch.dir` (exit 78).
    NoWatchDir,
    /// A file could not be created, written or renamed (exit 73 when
    /// permission or a read-only place refuses it, else 74).
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// `added.jobs` is not a file `add` can read (exit 74).
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

impl AddError {
    /// The exit code of the error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AddError::NoWatchDir => exit::CONFIG,
            AddError::Io { source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                exit::CANT_CREATE
            }
            AddError::Io { .. } | AddError::Unreadable { .. } => exit::IO,
        }
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::NoWatchDir => f.write_str(
                "watch.dir: not set; add writes its lines into a file of watch.dir \
                 (set [watch] dir in the configuration)",
            ),
            AddError::Io {
                path,
                doing,
                source,
            } => write!(f, "{}: cannot {doing}: {source}", path.display()),
            AddError::Unreadable { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

/// What `add` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Added {
    /// The line was appended.
    Appended {
        /// The line.
        line: String,
        /// The file.
        file: PathBuf,
    },
    /// The job's line was replaced: the new labels win.
    Replaced {
        /// The new line.
        line: String,
        /// The line it replaced.
        old: String,
        /// The file.
        file: PathBuf,
    },
    /// The same line was there already; nothing was written.
    Unchanged {
        /// The job.
        key: JobKey,
        /// The file.
        file: PathBuf,
    },
    /// The job is listed in the configuration or another watch file,
    /// which `add` leaves as written.
    ListedElsewhere {
        /// The job.
        key: JobKey,
        /// Where.
        origin: Origin,
        /// Its labels there, when they differ from the ones given.
        other_labels: Option<Labels>,
    },
}

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Added::Appended { line, file } => write!(f, "added \"{line}\" to {}", file.display()),
            Added::Replaced { line, old, file } => write!(
                f,
                "replaced \"{old}\" with \"{line}\" in {}",
                file.display()
            ),
            Added::Unchanged { key, file } => write!(
                f,
                "job {key} is already in {} with these labels; nothing changed",
                file.display()
            ),
            Added::ListedElsewhere {
                key,
                origin,
                other_labels,
            } => {
                write!(
                    f,
                    "job {key} is already listed at {origin}; left as written there"
                )?;
                if let Some(labels) = other_labels {
                    write!(
                        f,
                        " (with labels {:?}; the labels given here are not applied)",
                        labels_text(labels)
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Adds one job; prints what it did.
pub fn main(config_path: Option<PathBuf>, job: &str, labels: &[String]) -> ExitCode {
    let env = environment();
    let (_, config) = match load_config(config_path, &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let key = match parse_job(&config, job) {
        Ok(key) => key,
        Err(message) => return fail(exit::DATA, message),
    };
    let labels = match parse_labels(&key, labels) {
        Ok(labels) => labels,
        Err(message) => return fail(exit::DATA, message),
    };
    match add(&config, &key, &labels) {
        Ok(added) => {
            println!("{added}");
            ExitCode::from(exit::OK)
        }
        Err(error) => fail(error.exit_code(), error),
    }
}

/// Checks the labels given on the command line: each `key=value` as in a
/// watch line, and nothing a line cannot hold (white space, `#`, control
/// characters), so the line written reads back as the same job and labels.
pub fn parse_labels(key: &JobKey, fields: &[String]) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for field in fields {
        if let Some(c) = field.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "bad label {field:?}: it contains U+{:04X}; a watch line cannot hold white space or control characters",
                u32::from(c)
            ));
        }
        if field.contains('#') {
            return Err(format!(
                "bad label {field:?}: '#' starts a comment in a watch line"
            ));
        }
        let (name, value) = spec::parse_label(field)?;
        if labels.contains_key(name) {
            return Err(format!("label key {name:?} is given twice"));
        }
        if labels.len() == MAX_LABELS {
            return Err(format!("more than {MAX_LABELS} labels"));
        }
        labels.insert(name.to_string(), value.to_string());
    }
    let line = line_of(key, &labels);
    if line.len() > MAX_LINE_BYTES {
        return Err(format!(
            "the watch line would be {} bytes long, at most {MAX_LINE_BYTES} are allowed",
            line.len()
        ));
    }
    // The line must read back as what was given.
    match spec::parse_line(&line) {
        Ok(Some((read_key, read_labels))) if &read_key == key && read_labels == labels => {
            Ok(labels)
        }
        Ok(_) => Err(format!(
            "the watch line {line:?} would not read back as given"
        )),
        Err(message) => Err(message),
    }
}

/// The watch line of a job and its labels.
pub fn line_of(key: &JobKey, labels: &Labels) -> String {
    let mut line = key.to_string();
    for (name, value) in labels {
        line.push(' ');
        line.push_str(name);
        line.push('=');
        line.push_str(value);
    }
    line
}

fn labels_text(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

/// Adds `key` with `labels` to `watch.dir/added.jobs` (see the module
/// documentation for the rule about a job already listed).
pub fn add(config: &Config, key: &JobKey, labels: &Labels) -> Result<Added, AddError> {
    let dir = config.watch().dir.as_deref().ok_or(AddError::NoWatchDir)?;
    let file = dir.join(ADD_FILE);
    if let Some((origin, listed)) = listed_elsewhere(config, dir, &file, key) {
        return Ok(Added::ListedElsewhere {
            key: key.clone(),
            origin,
            other_labels: (&listed != labels).then_some(listed),
        });
    }
    let _lock = lock(dir)?;
    remove_stale_temporaries(dir);
    let (text, mode) = read_add_file(&file)?;
    let line = line_of(key, labels);
    let (new_text, added) = match rewrite(&text, key, labels, &line) {
        Rewrite::Unchanged => {
            return Ok(Added::Unchanged {
                key: key.clone(),
                file,
            });
        }
        Rewrite::Appended(new_text) => (
            new_text,
            Added::Appended {
                line,
                file: file.clone(),
            },
        ),
        Rewrite::Replaced { text, old } => (
            text,
            Added::Replaced {
                line,
                old,
                file: file.clone(),
            },
        ),
    };
    write_atomically(dir, &file, &new_text, mode.unwrap_or(ADD_FILE_MODE))?;
    Ok(added)
}

/// Where `key` is listed besides `added.jobs`: `watch.jobs` of the
/// configuration first, then the other watch files in name order (the
/// order in which the watch reader takes the first listing). Files that
/// cannot be read are skipped: judging them is not `add`'s business.
fn listed_elsewhere(
    config: &Config,
    dir: &Path,
    own: &Path,
    key: &JobKey,
) -> Option<(Origin, Labels)> {
    if let Some((_, labels)) = config.watch().jobs.iter().find(|(job, _)| job == key) {
        return Some((Origin::Config, labels.clone()));
    }
    let mut problems = Vec::new();
    for path in watch::file::watch_files(dir, &mut problems) {
        if path == own {
            continue;
        }
        let Ok(Some(text)) = watch::file::read_watch_file(&path) else {
            continue;
        };
        let (entries, _) = watch::parse_text(&path, &text);
        if let Some(entry) = entries.into_iter().find(|entry| &entry.key == key) {
            return Some((entry.origin, entry.labels));
        }
    }
    None
}

/// Takes the exclusive lock of `watch.dir` (blocking until the add before
/// it is done); released when the file is dropped.
fn lock(dir: &Path) -> Result<File, AddError> {
    let path = dir.join(LOCK_FILE);
    let io = |doing, source| AddError::Io {
        path: path.clone(),
        doing,
        source,
    };
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(LOCK_FILE_MODE)
        .open(&path);
    let file = match opened {
        Ok(file) => {
            // The umask may have taken the group's write bit; only the
            // owner can give it back, so a refusal is no error.
            let _ = file.set_permissions(Permissions::from_mode(LOCK_FILE_MODE));
            file
        }
        // A lock file another user made without group write access still
        // locks: flock needs no write permission.
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(&path).map_err(|source| io("open the lock file", source))?
        }
        Err(source) => return Err(io("create the lock file", source)),
    };
    file.lock().map_err(|source| io("lock", source))?;
    Ok(file)
}

/// Removes temporary files that an add killed before its rename left
/// behind. Only called under the lock, when no add is writing one.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The text of `added.jobs` (empty when missing) and its mode.
fn read_add_file(path: &Path) -> Result<(Vec<u8>, Option<u32>), AddError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), None));
        }
        Err(source) => {
            return Err(AddError::Io {
                path: path.to_path_buf(),
                doing: "read",
                source,
            });
        }
    };
    match watch::file::read_watch_file(path) {
        Ok(Some(text)) => Ok((text, Some(metadata.permissions().mode() & 0o7777))),
        Ok(None) => Err(AddError::Unreadable {
            path: path.to_path_buf(),
            why: "is a directory, not a watch file".into(),
        }),
        Err(why) => Err(AddError::Unreadable {
            path: path.to_path_buf(),
            why,
        }),
    }
}

/// What [`rewrite`] made of the file.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// The job is listed with these labels already.
    Unchanged,
    /// The new text, with the line appended.
    Appended(Vec<u8>),
    /// The new text, with the job's line replaced (and any later line of
    /// the same job removed).
    Replaced {
        /// The new text.
        text: Vec<u8>,
        /// The first line of the job that was there.
        old: String,
    },
}

/// The text of `added.jobs` with `line` (the watch line of `key` and
/// `labels`) in it. Every other line (comments, lines of other jobs, even
/// lines that do not parse) is kept byte for byte.
pub fn rewrite(text: &[u8], key: &JobKey, labels: &Labels, line: &str) -> Rewrite {
    let mut out: Vec<u8> = Vec::with_capacity(text.len() + line.len() + 1);
    let mut old = None;
    let lines: Vec<&[u8]> = if text.is_empty() {
        Vec::new()
    } else {
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        body.split(|&byte| byte == b'\n').collect()
    };
    for raw in lines {
        let parsed = std::str::from_utf8(raw)
            .ok()
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .and_then(|line| spec::parse_line(line).ok().flatten());
        match parsed {
            Some((listed, listed_labels)) if &listed == key => {
                if old.is_none() {
                    if &listed_labels == labels {
                        return Rewrite::Unchanged;
                    }
                    old = Some(String::from_utf8_lossy(raw).trim_end().to_string());
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                // A later line of the same job goes: one job, one line.
            }
            _ => {
                out.extend_from_slice(raw);
                out.push(b'\n');
            }
        }
    }
    match old {
        Some(old) => Rewrite::Replaced { text: out, old },
        None => {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
            Rewrite::Appended(out)
        }
    }
}

/// Replaces `path` by a file holding `text`: a temporary file beside it,
/// synced, renamed over it, and the directory synced, so a reader or a
/// crash sees the old text or the new one.
fn write_atomically(dir: &Path, path: &Path, text: &[u8], mode: u32) -> Result<(), AddError> {
    let io = |at: &Path, doing, source| AddError::Io {
        path: at.to_path_buf(),
        doing,
        source,
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(|source| io(dir, "create a temporary file in", source))?;
    let temporary_path = temporary.path().to_path_buf();
    temporary
        .as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(|source| io(&temporary_path, "set the mode of", source))?;
    temporary
        .write_all(text)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(|source| io(&temporary_path, "write", source))?;
    temporary
        .persist(path)
        .map_err(|error| io(path, "rename the new file to", error.error))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| io(dir, "sync", source))
}

#[cfg(test)]
mod tests;
