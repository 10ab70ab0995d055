//! A cheap fingerprint of the watch files of a directory, so that a
//! periodic scan notices changes within seconds without reading a file.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::file::is_watch_name;

/// A cheap fingerprint of the `.jobs` files in a directory (name, size, mtime with nanoseconds,
/// inode), for a periodic scan that notices changes within seconds without reading files.
///
/// Beyond those four it also keeps the device, the change time (which no one can set back, so a
/// rewrite that restores size and mtime still shows) and whether the file is regular. Two
/// fingerprints are equal when nothing a reload would see has changed, as far as metadata tells;
/// an unreadable directory or entry is part of the fingerprint too, so its recovery shows.
/// Directories named `*.jobs` and names starting with `.` are left out, as `watch::load` ignores them.
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
