//! The outbox: events waiting to be delivered to a notification sink
//! (webhooks, SMN topics). Every SQL statement about the `outbox` table is
//! here: the state writer queues rows in the same transaction that records
//! the fact ([`queue`]), and each sink's delivery task reads, reschedules
//! and deletes its own rows through its own connection ([`Outbox`]; WAL
//! lets it work while the writer writes).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// A row to queue: one event for one sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The sink's key in the outbox.
    pub sink: String,
    /// Where the sink delivers: a webhook's URL, an SMN topic's URN.
    pub target: String,
    /// The event's `event_id`; a sink gets each fact once.
    pub event_id: String,
    /// The request body: the event's JSON line.
    pub body: String,
    /// When it was announced (Unix ms).
    pub created_at: i64,
}

/// Queues a row unless the sink already has this fact.
pub fn queue(tx: &Transaction<'_>, queued: &Queued) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (sink, event_id, body, created_at, next_attempt_at, target)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
    )?
    .execute(params![
        queued.sink,
        queued.event_id,
        queued.body,
        queued.created_at,
        queued.target
    ])?;
    Ok(())
}

/// One queued delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The row's id.
    pub id: i64,
    /// The event's `event_id`.
    pub event_id: String,
    /// The body to send.
    pub body: String,
    /// When it was queued (Unix ms).
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: u64,
    /// Not before this (Unix ms).
    pub next_attempt_at: i64,
    /// What the last attempt said.
    pub last_error: Option<String>,
    /// Where its sink delivers, when the row says (rows queued before
    /// this was kept say nothing; their key was a webhook's URL).
    pub target: Option<String>,
}

/// One sink's connection to the outbox. Calls run on the blocking pool.
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
    sink: String,
}

/// A connection of its own to the (already migrated) database `db`, for a
/// delivery task or the start-up check of the sinks.
pub fn connect(db: &Path) -> Result<Connection, String> {
    Connection::open(db)
        .and_then(|conn| {
            conn.busy_timeout(Duration::from_secs(5))?;
            Ok(conn)
        })
        .map_err(|error| format!("state database {}: {error}", db.display()))
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: row.get(0)?,
        event_id: row.get(1)?,
        body: row.get(2)?,
        created_at: row.get(3)?,
        attempts: row.get::<_, i64>(4)?.max(0) as u64,
        next_attempt_at: row.get(5)?,
        last_error: row.get(6)?,
        target: row.get(7)?,
    })
}

impl Outbox {
    /// Opens the outbox of `sink` in the (already migrated) database `db`.
    pub fn open(db: &Path, sink: String) -> Result<Outbox, String> {
        let conn = connect(db)?;
        Ok(Outbox {
            conn: Arc::new(Mutex::new(conn)),
            sink,
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.clone();
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| "outbox connection poisoned".to_string())?;
            f(&conn, &sink).map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// How many rows this sink has queued, and when the oldest was queued.
    pub async fn depth(&self) -> Result<(i64, Option<i64>), String> {
        self.call(|conn, sink| {
            conn.prepare_cached("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sink = ?1")?
                .query_row([sink], |row| Ok((row.get(0)?, row.get(1)?)))
        })
        .await
    }

    /// The oldest row of this sink.
    pub async fn head(&self) -> Result<Option<Row>, String> {
        self.call(|conn, sink| {
            conn.prepare_cached(
                "SELECT id, event_id, body, created_at, attempts, next_attempt_at, last_error, target
                 FROM outbox WHERE sink = ?1 ORDER BY id LIMIT 1",
            )?
            .query_row([sink], read_row)
            .optional()
        })
        .await
    }

    /// Deletes a delivered (or given up) row.
    pub async fn delete(&self, id: i64) -> Result<(), String> {
        self.call(move |conn, _| {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([id])
                .map(drop)
        })
        .await
    }

    /// Records a failed attempt and when to try again.
    pub async fn failed(
        &self,
        id: i64,
        attempts: u64,
        error: String,
        next_attempt_at: i64,
    ) -> Result<(), String> {
        self.call(move |conn, _| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = ?2, last_error = ?3, next_attempt_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, attempts as i64, error, next_attempt_at])
            .map(drop)
        })
        .await
    }
}

/// The sinks that have rows queued, with their counts (for the start-up
/// check of sinks removed from the configuration).
pub fn sinks(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut statement =
        conn.prepare("SELECT sink, COUNT(*) FROM outbox GROUP BY sink ORDER BY sink")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Moves a sink's rows to a new key (a sink that gained a name keeps its
/// queue).
pub fn rename_sink(conn: &Connection, from: &str, to: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE OR IGNORE outbox SET sink = ?2 WHERE sink = ?1",
        params![from, to],
    )
}

/// Removes every row of `sink` and returns them, oldest first (a sink no
/// longer configured: each is announced as given up).
pub fn take_sink(conn: &mut Connection, sink: &str) -> rusqlite::Result<Vec<Row>> {
    let tx = conn.transaction()?;
    let rows = {
        let mut statement = tx.prepare(
            "SELECT id, event_id, body, created_at, attempts, next_attempt_at, last_error, target
             FROM outbox WHERE sink = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([sink], read_row)?;
        rows.collect::<rusqlite::Result<Vec<Row>>>()?
    };
    tx.execute("DELETE FROM outbox WHERE sink = ?1", [sink])?;
    tx.commit()?;
    Ok(rows)
}

/// Deletes the rows of `sink` whose fact `other` has queued too (what
/// [`rename_sink`] left behind because the new key had them already).
pub fn delete_duplicates(conn: &Connection, sink: &str, other: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM outbox WHERE sink = ?1
         AND event_id IN (SELECT event_id FROM outbox WHERE sink = ?2)",
        params![sink, other],
    )
}
