//! Native journal entries for our events (`log.format = "journald"`).
//!
//! `tracing-journald` writes library lines, but it cannot express our
//! events: their field names are not known when the program is compiled
//! (labels become `LABEL_<KEY>`). So events are sent here, over the
//! journal's native protocol: one datagram per entry to
//! `/run/systemd/journal/socket`, each field `NAME=value\n`, or, for a
//! value holding a line break, `NAME\n`, its length as 64-bit little
//! endian, the value and `\n` (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>).
//! An entry too large for one datagram is sent again with its list and
//! object fields cut to a note (events are small; a batch of thousands of
//! servers is the only way to get there).

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The longest value kept when an entry must shrink to fit a datagram.
const SHRUNK_VALUE: usize = 4096;

/// A connection to the journal.
#[derive(Debug)]
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// Opens a datagram socket towards the system journal, and checks
    /// that the journal is there.
    pub fn connect() -> io::Result<Journal> {
        Journal::connect_to(Path::new(SOCKET))
    }

    /// The same towards another socket (tests).
    pub fn connect_to(path: &Path) -> io::Result<Journal> {
        if !path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ));
        }
        Ok(Journal {
            socket: UnixDatagram::unbound()?,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry.
    pub fn send(&self, fields: &[(String, String)]) -> io::Result<()> {
        let payload = encode(fields);
        match self.socket.send_to(&payload, &self.path) {
            Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => {
                let shrunk: Vec<(String, String)> = fields
                    .iter()
                    .map(|(name, value)| (name.clone(), shrink(value)))
                    .collect();
                self.socket
                    .send_to(&encode(&shrunk), &self.path)
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }
}

fn shrink(value: &str) -> String {
    if value.len() <= SHRUNK_VALUE {
        return value.to_string();
    }
    let mut end = SHRUNK_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &value[..end], value.len())
}

/// The native protocol's bytes for one entry.
pub fn encode(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_multi_line_values() {
        let fields = vec![
            ("MESSAGE".to_string(), "one".to_string()),
            ("FAIL_REASON".to_string(), "a\nb".to_string()),
        ];
        let mut expected = b"MESSAGE=one\nFAIL_REASON\n".to_vec();
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"a\nb\n");
        assert_eq!(encode(&fields), expected);
    }

    #[test]
    fn entries_reach_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let journal = Journal::connect_to(&path).unwrap();
        journal
            .send(&[("MESSAGE".to_string(), "hi".to_string())])
            .unwrap();
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"MESSAGE=hi\n");
        assert!(Journal::connect_to(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn shrinking_cuts_on_a_character_boundary() {
        let long = "é".repeat(5000);
        let cut = shrink(&long);
        assert!(cut.len() < long.len());
        assert!(cut.ends_with("(10000 bytes in all)"));
        assert_eq!(shrink("short"), "short");
    }
}
