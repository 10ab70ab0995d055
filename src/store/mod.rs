//! The state store: one SQLite database, `state.dir/state.db`, in WAL mode.
//!
//! It remembers every tracked job (status, labels, counters, whether it is
//! finished), the ids of announced sub-job events, the durations of
//! finished jobs and the outbox of the notification sinks, so that a
//! restart resumes where the daemon stopped and announces nothing twice
//! except a fact whose recording a crash interrupted (then with the same
//! `event_id`). Writes come in batches from the scheduler through
//! [`Writer`], a thread of its own, so the scheduler never waits for the
//! disk. A second daemon on the same directory is refused by an exclusive
//! lock on `state.dir/state.lock`. `state.dir` is created (mode 0700) when
//! it is missing and its parent exists.

pub mod jobs;
pub mod outbox;
pub mod schema;
pub mod writer;

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use jobs::{DurationRow, JobRecord, Write};
pub use writer::{ErrorHook, OutboxHook, Writer};

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory is missing and cannot be created (its parent is
    /// missing), or is not a directory.
    #[error("state directory {0} does not exist (nor does its parent) or is not a directory")]
    MissingDir(PathBuf),
    /// Another process holds the lock.
    #[error("state directory {0} is in use by another ecs-jobwatch (lock {0}/state.lock is held)")]
    Locked(PathBuf),
    /// A file system error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer version.
    #[error(
        "state database {path} has schema version {found}, this build knows up to {max}",
        max = schema::SCHEMA_VERSION
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
}

/// The opened store: the connection and the lock that guards it.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    _lock: Option<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How many times (100 ms apart) a held lock is tried again before the
/// store is refused as in use.
const LOCK_ATTEMPTS: u32 = 10;

/// How much the start-up probe writes: enough to notice a full disk,
/// which an empty SQLite transaction would not.
const PROBE_BYTES: usize = 64 * 1024;

/// Creates `dir` (mode 0700, not its parents) when it is missing; a
/// missing parent is [`StateError::MissingDir`], anything else that stops
/// the creation (a read-only place, no permission) names the path.
fn create_dir(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent_exists = dir
        .parent()
        .map(|parent| parent.as_os_str().is_empty() || parent.is_dir())
        .unwrap_or(false);
    if dir.exists() || !parent_exists {
        return Err(StateError::MissingDir(dir.to_path_buf()));
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        // Another process made it meanwhile.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(source) => Err(StateError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Writes, syncs and removes a small file, so that a read-only or full
/// file system is refused at start with a clear error instead of at the
/// first transition.
fn probe_writable(dir: &Path) -> Result<(), StateError> {
    use std::io::Write as _;
    let path = dir.join(".write-probe");
    let result = File::create(&path).and_then(|mut file| {
        file.write_all(&[0u8; PROBE_BYTES])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result.map_err(|source| StateError::Io { path, source })
}

/// The path of the database in a state directory.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("state.db")
}

impl Store {
    /// Opens (creating if needed) the store in `dir` for the daemon: takes
    /// the lock, switches to WAL, migrates.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        create_dir(dir)?;
        let lock_path = dir.join("state.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateError::Io {
                path: lock_path.clone(),
                source,
            })?;
        // A lock held for a moment longer (a previous daemon still exiting,
        // a forked child that has not reached exec yet) is waited for
        // briefly; a lock held by a running daemon is refused.
        let mut attempts = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if attempts < LOCK_ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StateError::Locked(dir.to_path_buf()));
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(StateError::Io {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
        probe_writable(dir)?;
        let path = db_path(dir);
        let sqlite = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        let mut store = Store {
            conn,
            path: path.clone(),
            _lock: Some(lock),
        };
        store.migrate()?;
        // Prove now, not at the first transition, that the disk takes writes.
        store
            .conn
            .execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(sqlite)?;
        Ok(store)
    }

    /// Opens the store read-only (for `status`), without the lock, while
    /// the daemon may be running.
    pub fn open_read_only(dir: &Path) -> Result<Store, StateError> {
        let path = db_path(dir);
        if !path.is_file() {
            return Err(StateError::MissingDir(dir.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(Duration::from_secs(5));
        Ok(Store {
            conn,
            path,
            _lock: None,
        })
    }

    /// Opens a store that lives in memory only, migrated like a real one:
    /// for `wait` without a daemon, whose scheduler records nothing that
    /// outlives the command. No file is created and no lock is taken.
    pub fn open_in_memory() -> Result<Store, StateError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let mut store = Store {
            conn,
            path,
            _lock: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Whether a daemon holds the store of `dir`: a shared, non-blocking
    /// `flock` on `dir/state.lock`, opened read-only (so a user who may
    /// only read the state directory can ask), fails while a daemon holds
    /// its exclusive lock. The shared lock is released at once, so a
    /// daemon starting meanwhile is not kept out. No lock file: no daemon.
    pub fn daemon_running(dir: &Path) -> Result<bool, StateError> {
        let lock_path = dir.join("state.lock");
        let lock = match File::open(&lock_path) {
            Ok(lock) => lock,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(StateError::Io {
                    path: lock_path,
                    source,
                });
            }
        };
        match lock.try_lock_shared() {
            Ok(()) => {
                let _ = lock.unlock();
                Ok(false)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io {
                path: lock_path,
                source,
            }),
        }
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.sqlite(e))?;
        if version > schema::SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (index, migration) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let next = index as i64 + 1;
            let tx = self.conn.transaction().map_err(|e| StateError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            tx.execute_batch(migration)
                .and_then(|()| tx.pragma_update(None, "user_version", next))
                .and_then(|()| tx.commit())
                .map_err(|source| StateError::Sqlite {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// `PRAGMA integrity_check`: `ok` when the database is sound.
    pub fn integrity_check(&self) -> Result<String, StateError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(|e| self.sqlite(e))
    }
}

pub use crate::telemetry::stats::now_ms;

#[cfg(test)]
mod tests;
