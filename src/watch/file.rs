//! Reading the files of `watch.dir` without trusting them: regular files
//! only (a FIFO is never opened for a blocking read), at most
//! [`MAX_FILE_BYTES`], in name order.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{FILE_SUFFIX, Problem};

/// The largest watch file read, in bytes; a larger one is refused unread.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Whether a directory entry's name makes it a watch file candidate.
pub fn is_watch_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    !name.starts_with(b".") && name.ends_with(FILE_SUFFIX.as_bytes())
}

/// The candidate paths of a directory in name order; directory errors become problems.
pub fn watch_files(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
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

/// Opening a FIFO for reading blocks until a writer appears; `O_NONBLOCK`
/// makes that open return at once should a regular file be swapped for a
/// FIFO between the type check and the open. Regular files ignore it.
const OPEN_NONBLOCK: i32 = libc::O_NONBLOCK;

/// Reads one watch file, refusing anything but a regular file of at most [`MAX_FILE_BYTES`].
///
/// A directory is `None`: it is ignored, not a problem.
pub fn read_watch_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
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
pub fn read_capped(reader: impl Read, limit: u64, size_hint: u64) -> Result<Vec<u8>, String> {
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
