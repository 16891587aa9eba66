//! The SQLite job writer: one thread, one connection, group commit.
//!
//! Every write on a job's hot path (accepting its event, noting a step that reached outside,
//! writing its record) goes to this thread, which takes whatever writes are waiting and commits
//! them in one transaction. Under load a commit carries many jobs; alone, a write is committed
//! as soon as it arrives. Callers get their answer once their write is committed, so "accepted"
//! still means "on disk" (as far as the `synchronous` setting promises).
//!
//! It uses rusqlite on a thread of its own rather than the sqlx pool: through sqlx each
//! statement is a round trip to a connection's thread, and those hand-offs, not SQLite, were
//! most of the time a job took.

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

use crate::db::StoreError;

/// Most writes one transaction carries: bounds how long the last of them waits.
const MAX_BATCH: usize = 512;

/// A value to bind, owned: the writer thread outlives the caller's borrows.
pub(crate) type SqlValue = rusqlite::types::Value;

/// One write: statements run in order, in the batch's transaction. When `guarded`, the first
/// statement must change a row (a job this owner still holds) or the rest are skipped and the
/// write answers `false`.
pub(crate) struct Write {
    pub statements: Vec<(&'static str, Vec<SqlValue>)>,
    pub guarded: bool,
}

impl Write {
    /// A write of one statement.
    pub fn one(statement: &'static str, values: Vec<SqlValue>) -> Write {
        Write {
            statements: vec![(statement, values)],
            guarded: false,
        }
    }
}

struct Request {
    write: Write,
    answer: oneshot::Sender<Result<bool, StoreError>>,
}

/// The handle through which writes reach the writer thread; the thread ends when the last
/// handle is dropped.
pub(crate) struct Writer {
    requests: mpsc::Sender<Request>,
    /// Dropped with the writer: the checkpoint thread ends.
    _stop_checkpoints: mpsc::Sender<()>,
}

impl Writer {
    /// Opens the database file and starts the writer thread.
    pub(crate) fn start(file: &Path, synchronous: &str) -> Result<Writer, StoreError> {
        let connection = open(file, OpenFlags::SQLITE_OPEN_CREATE)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(write_error)?;
        connection
            .pragma_update(None, "synchronous", synchronous)
            .map_err(write_error)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(write_error)?;
        connection.set_prepared_statement_cache_capacity(32);
        // Checkpoints run on a thread of their own (below), not in whichever commit crosses
        // the WAL's size: that commit, and every caller waiting on it, would wait for the
        // checkpoint's copy and sync.
        connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(write_error)?;
        let checkpoints = open(file, OpenFlags::empty())?;
        let (requests, incoming) = mpsc::channel();
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        spawn("weft-sqlite-writer", move || {
            write_batches(connection, incoming)
        })?;
        spawn("weft-sqlite-checkpoints", move || {
            checkpoint_now_and_then(checkpoints, stopped)
        })?;
        Ok(Writer {
            requests,
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// Sends a write and waits until it is committed. `Ok(false)`: a guarded write whose
    /// first statement changed nothing (a job no longer the owner's), so nothing was written.
    pub(crate) async fn write(&self, write: Write) -> Result<bool, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(Request { write, answer })
            .map_err(|_| StoreError::Write("the writer thread has stopped".to_owned()))?;
        answered
            .await
            .map_err(|_| StoreError::Write("the writer thread stopped mid-write".to_owned()))?
    }
}

/// Opens the database file for reading and writing (and `extra`), waiting up to 10 s for a
/// lock another connection holds.
fn open(file: &Path, extra: OpenFlags) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra;
    let connection = Connection::open_with_flags(file, flags).map_err(write_error)?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .map_err(write_error)?;
    Ok(connection)
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(|_| ())
        .map_err(|error| StoreError::Write(format!("cannot start the thread {name}: {error}")))
}

/// How often the WAL's new pages are copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies the WAL into the database file every little while, without stopping the writer
/// (a passive checkpoint), until the writer is dropped.
fn checkpoint_now_and_then(connection: Connection, stopped: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        let done = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Err(error) = done {
            tracing::warn!(%error, "cannot checkpoint the SQLite WAL; trying again");
        }
    }
}

fn write_error(error: rusqlite::Error) -> StoreError {
    StoreError::Write(error.to_string())
}

/// The writer thread: waits for a write, takes every other one already waiting, commits them
/// together, answers each.
fn write_batches(mut connection: Connection, incoming: mpsc::Receiver<Request>) {
    while let Ok(first) = incoming.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut connection, &batch);
        match results {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.answer.send(result);
                }
            }
            Err(error) => {
                let message = error.to_string();
                for request in batch {
                    let _ = request.answer.send(Err(StoreError::Write(message.clone())));
                }
            }
        }
    }
}

/// One transaction for a batch. When a write fails, the batch is rolled back and each write
/// is committed on its own, so that one bad write fails alone.
fn commit_batch(
    connection: &mut Connection,
    batch: &[Request],
) -> rusqlite::Result<Vec<Result<bool, StoreError>>> {
    let together = (|| {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let results = batch
            .iter()
            .map(|request| apply(&transaction, &request.write))
            .collect::<rusqlite::Result<Vec<bool>>>()?;
        transaction.commit()?;
        Ok::<_, rusqlite::Error>(results)
    })();
    if let Ok(results) = together {
        return Ok(results.into_iter().map(Ok).collect());
    }
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let result = apply(&transaction, &request.write);
        if result.is_ok() {
            transaction.commit()?;
        }
        results.push(result.map_err(write_error));
    }
    Ok(results)
}

fn apply(connection: &Connection, write: &Write) -> rusqlite::Result<bool> {
    for (index, (statement, values)) in write.statements.iter().enumerate() {
        let changed = run(connection, statement, values)?;
        if index == 0 && write.guarded && changed == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs one statement of the shared SQL, whose parameters are `$1`, `$2`, ... in any order,
/// and returns the rows it changed.
fn run(connection: &Connection, statement: &str, values: &[SqlValue]) -> rusqlite::Result<usize> {
    const NAMES: [&str; 12] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12",
    ];
    if values.len() > NAMES.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            values.len(),
            NAMES.len(),
        ));
    }
    let mut statement = connection.prepare_cached(statement)?;
    for (name, value) in NAMES.iter().zip(values) {
        if let Some(index) = statement.parameter_index(name)? {
            statement.raw_bind_parameter(index, value)?;
        }
    }
    statement.raw_execute()
}
