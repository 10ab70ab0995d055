//! The service manager's end of `sd_notify`: a Unix datagram socket in the
//! setup's temporary directory that a daemon finds in `NOTIFY_SOCKET`, and
//! the [`Notice`] a test awaits among its datagrams.
//!
//! A task reads the socket all the time, as systemd does: the daemon's
//! sends block once the socket's queue is full, so a socket that is only
//! read while a test awaits a datagram could stall the daemon. When the
//! daemon has exited, [`Listener::rest`] stops that task and reads what is
//! still queued, so a finished run holds every datagram the daemon sent.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UnixDatagram;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The assignment lines a datagram must hold.
#[derive(Clone, Debug)]
pub struct Notice(Vec<Line>);

#[derive(Clone, Debug)]
enum Line {
    /// Exactly this line, such as `READY=1`.
    Is(String),
    /// Any value of this variable, such as `STATUS`.
    Sets(String),
}

impl Notice {
    /// Datagrams holding the line `assignment` (`READY=1`).
    pub fn has(assignment: &str) -> Notice {
        Notice(vec![Line::Is(assignment.to_string())])
    }

    /// Datagrams assigning any value to `variable` (`STATUS`).
    pub fn sets(variable: &str) -> Notice {
        Notice(vec![Line::Sets(variable.to_string())])
    }

    /// And an assignment to `variable`.
    pub fn and_sets(mut self, variable: &str) -> Notice {
        self.0.push(Line::Sets(variable.to_string()));
        self
    }

    /// Whether `datagram` holds every line.
    pub fn matches(&self, datagram: &str) -> bool {
        self.0.iter().all(|wanted| {
            datagram.lines().any(|line| match wanted {
                Line::Is(assignment) => line == assignment,
                Line::Sets(variable) => line
                    .split_once('=')
                    .is_some_and(|(name, _)| name == variable),
            })
        })
    }

    /// The datagrams among `datagrams` that match.
    pub fn all<'a>(&self, datagrams: &'a [String]) -> Vec<&'a str> {
        datagrams
            .iter()
            .map(String::as_str)
            .filter(|datagram| self.matches(datagram))
            .collect()
    }
}

/// The lifecycle notices among `datagrams`, in order: every datagram but
/// a lone `STATUS=` line and `WATCHDOG=1`, so `READY=1`, `RELOADING=1`
/// (with `MONOTONIC_USEC=`), `STOPPING=1` and anything unexpected.
pub fn lifecycle(datagrams: &[String]) -> Vec<&str> {
    datagrams
        .iter()
        .map(String::as_str)
        .filter(|datagram| {
            let status = datagram.starts_with("STATUS=") && !datagram.contains('\n');
            !status && *datagram != "WATCHDOG=1"
        })
        .collect()
}

/// The largest datagram read; `sd_notify` messages are far smaller.
const MAX_DATAGRAM: usize = 64 * 1024;

/// One bound notify socket and the task reading it.
pub(super) struct Listener {
    path: PathBuf,
    received: mpsc::UnboundedReceiver<String>,
    stop: Option<oneshot::Sender<()>>,
    reader: Option<JoinHandle<UnixDatagram>>,
}

impl Listener {
    /// Binds a socket of a fresh name in `dir` (a setup may start several
    /// daemons) and starts reading it.
    pub(super) fn bind(dir: &Path) -> Listener {
        static SOCKETS: AtomicU64 = AtomicU64::new(0);
        let name = format!("notify-{}.sock", SOCKETS.fetch_add(1, Ordering::Relaxed));
        let path = dir.join(name);
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|error| panic!("the notify socket {} binds: {error}", path.display()));
        let (sender, received) = mpsc::unbounded_channel();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    // `recv` is cancel safe: a datagram is either returned
                    // here or left in the socket for `rest`.
                    received = socket.recv(&mut buffer) => match received {
                        Ok(length) => {
                            if sender.send(decode(&buffer[..length])).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                }
            }
            socket
        });
        Listener {
            path,
            received,
            stop: Some(stop),
            reader: Some(reader),
        }
    }

    /// The socket's path, for `NOTIFY_SOCKET`.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram, or `None` at `deadline` (or when the reader
    /// ended, which only `rest` makes it do).
    pub(super) async fn next(&mut self, deadline: Instant) -> Option<String> {
        tokio::time::timeout_at(deadline, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every datagram not returned yet, in order; call it once the daemon
    /// has exited, when nothing more can arrive.
    pub(super) async fn rest(&mut self, deadline: Instant) -> Vec<String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let socket = match self.reader.take() {
            Some(reader) => tokio::time::timeout_at(deadline, reader)
                .await
                .expect("the notify socket's reader stops in time")
                .expect("the notify socket's reader ends without a panic"),
            None => return Vec::new(),
        };
        let mut rest = Vec::new();
        while let Ok(datagram) = self.received.try_recv() {
            rest.push(datagram);
        }
        // Read what is queued with a plain nonblocking read: tokio's
        // `try_recv` trusts a readiness the reactor may not have updated.
        let socket = socket.into_std().expect("the notify socket leaves tokio");
        socket
            .set_nonblocking(true)
            .expect("the notify socket is nonblocking");
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        loop {
            match socket.recv(&mut buffer) {
                Ok(length) => rest.push(decode(&buffer[..length])),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    assert_eq!(
                        error.kind(),
                        ErrorKind::WouldBlock,
                        "reading the notify socket: {error}"
                    );
                    break;
                }
            }
        }
        rest
    }
}

/// A datagram's text: `sd_notify` ends every assignment with a newline;
/// the lines stay, the last newline goes.
fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\n')
        .to_string()
}
