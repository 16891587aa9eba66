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

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    answer: oneshot::Sender<Result<usize, StoreError>>,
}

/// The handle through which writes reach the writer thread; the thread ends when the last
/// handle is dropped.
pub(crate) struct Writer {
    requests: mpsc::Sender<Request>,
    /// Dropped with the writer: the checkpoint thread ends.
    _stop_checkpoints: mpsc::Sender<()>,
}

/// How the WAL is kept short: how often it is copied into the database file, how long it may
/// grow before it is rewound, and what a rewound file is cut back to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalUpkeep {
    pub checkpoint_every: Duration,
    pub rewind_after_frames: i64,
    pub size_limit_bytes: i64,
}

impl Default for WalUpkeep {
    fn default() -> WalUpkeep {
        WalUpkeep {
            checkpoint_every: Duration::from_millis(250),
            rewind_after_frames: 1_000,
            size_limit_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Writer {
    /// Opens the database file and starts the writer thread.
    pub(crate) fn start(file: &Path, synchronous: &str) -> Result<Writer, StoreError> {
        Writer::start_with(file, synchronous, WalUpkeep::default())
    }

    pub(crate) fn start_with(
        file: &Path,
        synchronous: &str,
        upkeep: WalUpkeep,
    ) -> Result<Writer, StoreError> {
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
        // What a write replaces (a job's raw event, once its masked record is written) is
        // overwritten in the file, not left in free space.
        connection
            .pragma_update(None, "secure_delete", "ON")
            .map_err(write_error)?;
        connection.set_prepared_statement_cache_capacity(32);
        // Checkpoints run on a thread of their own (below), not in whichever commit crosses
        // the WAL's size: that commit, and every caller waiting on it, would wait for the
        // checkpoint's copy and sync.
        connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(write_error)?;
        // A WAL that grew under a burst is cut back to this size when it is next rewound.
        connection
            .pragma_update(None, "journal_size_limit", upkeep.size_limit_bytes)
            .map_err(write_error)?;
        let checkpoints = open(file, OpenFlags::empty())?;
        let (requests, incoming) = mpsc::channel();
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let rewind_wanted = Arc::new(AtomicBool::new(false));
        let rewind_asked = rewind_wanted.clone();
        spawn("weft-sqlite-writer", move || {
            write_batches(connection, incoming, &rewind_wanted)
        })?;
        spawn("weft-sqlite-checkpoints", move || {
            checkpoint_now_and_then(checkpoints, stopped, upkeep, &rewind_asked)
        })?;
        Ok(Writer {
            requests,
            _stop_checkpoints: stop_checkpoints,
        })
    }

    /// Sends a write and waits until it is committed. `Ok(false)`: a guarded write whose
    /// first statement changed nothing (a job no longer the owner's), so nothing was written.
    pub(crate) async fn write(&self, write: Write) -> Result<bool, StoreError> {
        Ok(self.write_counted(write).await? > 0)
    }

    /// Sends a write, waits until it is committed, and returns the rows its first statement
    /// changed.
    pub(crate) async fn write_counted(&self, write: Write) -> Result<usize, StoreError> {
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

/// Copies the WAL into the database file every little while, without stopping the writer
/// (a passive checkpoint), until the writer is dropped.
///
/// Under steady writes a passive checkpoint never catches up with the writer, and SQLite
/// rewinds the WAL only when every frame in it has been copied: the file would grow without
/// end (gigabytes within a minute of load, every new frame landing on a fresh page of the
/// page cache). So when a checkpoint has copied a long log, it asks the writer to copy the
/// few frames written since, between two batches; the writer's next transaction then starts
/// the WAL from the beginning again.
fn checkpoint_now_and_then(
    connection: Connection,
    stopped: mpsc::Receiver<()>,
    upkeep: WalUpkeep,
    rewind_wanted: &AtomicBool,
) {
    let_callers_run_first();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(upkeep.checkpoint_every) {
        match checkpoint(&connection) {
            Ok(frames) if frames > upkeep.rewind_after_frames => {
                rewind_wanted.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot checkpoint the SQLite WAL; trying again");
            }
        }
    }
}

/// A passive checkpoint: copies what it can without waiting, and returns the frames the WAL
/// held.
fn checkpoint(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

fn write_error(error: rusqlite::Error) -> StoreError {
    StoreError::Write(error.to_string())
}

/// The writer thread: waits for a write, takes every other one already waiting, commits them
/// together, answers each; and between batches, finishes a checkpoint when asked to.
fn write_batches(
    connection: Connection,
    incoming: mpsc::Receiver<Request>,
    rewind_wanted: &AtomicBool,
) {
    let_callers_run_first();
    while let Ok(first) = incoming.recv() {
        if rewind_wanted.swap(false, Ordering::AcqRel)
            && let Err(error) = checkpoint(&connection)
        {
            tracing::warn!(%error, "cannot checkpoint the SQLite WAL before rewinding it");
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let results = commit_batch(&connection, &batch);
        for (request, result) in batch.into_iter().zip(results) {
            let _ = request.answer.send(result);
        }
    }
}

/// Asks Linux not to switch to this thread the moment it wakes (`SCHED_BATCH`).
///
/// Where the writer shares a core with the threads that serve requests, it would otherwise
/// take the core at every write, and commit one job at a time while the next requests wait.
/// Run after them instead, it finds every write they made meanwhile: at 16 connections on one
/// core, 14 jobs a commit instead of 2, and half as much time a job. The checkpoint thread
/// waits its turn the same way instead of cutting into requests (p99 at 64 connections 12 to
/// 9 ms). On a free core either runs at once all the same.
fn let_callers_run_first() {
    #[cfg(target_os = "linux")]
    {
        let normal_priority = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads the struct we pass and changes only the policy of
        // the calling thread (pid 0).
        let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &normal_priority) };
        if failed != 0 {
            tracing::debug!("a SQLite thread keeps the normal scheduling policy");
        }
    }
}

/// One transaction for a batch. When a write fails, the batch is rolled back and each write
/// is committed on its own, so that one bad write fails alone.
fn commit_batch(connection: &Connection, batch: &[Request]) -> Vec<Result<usize, StoreError>> {
    let together = in_transaction(connection, |connection| {
        batch
            .iter()
            .map(|request| apply(connection, &request.write))
            .collect::<rusqlite::Result<Vec<usize>>>()
    });
    if let Ok(results) = together {
        return results.into_iter().map(Ok).collect();
    }
    let alone = batch.iter().map(|request| {
        in_transaction(connection, |connection| apply(connection, &request.write))
            .map_err(write_error)
    });
    alone.collect()
}

/// Runs `work` in a write transaction, committed when it succeeds and rolled back when it
/// fails. `BEGIN` and `COMMIT` are prepared once, not parsed again for every batch.
fn in_transaction<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let done = work(connection).and_then(|value| {
        connection.prepare_cached("COMMIT")?.execute([])?;
        Ok(value)
    });
    if done.is_err() && !connection.is_autocommit() {
        connection.prepare_cached("ROLLBACK")?.execute([])?;
    }
    done
}

/// Runs a write's statements; returns the rows the first changed.
fn apply(connection: &Connection, write: &Write) -> rusqlite::Result<usize> {
    let mut first_changed = 0;
    for (index, (statement, values)) in write.statements.iter().enumerate() {
        let changed = run(connection, statement, values)?;
        if index == 0 {
            if write.guarded && changed == 0 {
                return Ok(0);
            }
            first_changed = changed;
        }
    }
    Ok(first_changed)
}

/// Runs one statement of the shared SQL, whose parameters are `$1`, `$2`, ... in any order,
/// and returns the rows it changed.
fn run(connection: &Connection, statement: &str, values: &[SqlValue]) -> rusqlite::Result<usize> {
    const NAMES: [&str; 16] = [
        "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14",
        "$15", "$16",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a new WAL database in `folder`, made with `schema`.
    fn writer_on(folder: &Path, schema: &str, upkeep: WalUpkeep) -> Arc<Writer> {
        writer_with(folder, schema, upkeep, "NORMAL")
    }

    fn writer_with(
        folder: &Path,
        schema: &str,
        upkeep: WalUpkeep,
        synchronous: &str,
    ) -> Arc<Writer> {
        let file = folder.join("writes.db");
        let setup = Connection::open(&file).expect("the database");
        setup
            .execute_batch(&format!("PRAGMA journal_mode = WAL; {schema}"))
            .expect("the schema");
        Arc::new(Writer::start_with(&file, synchronous, upkeep).expect("the writer"))
    }

    fn insert(x: i64) -> Write {
        Write::one("INSERT INTO t (x) VALUES ($1)", vec![SqlValue::Integer(x)])
    }

    fn rows(folder: &Path) -> i64 {
        let connection = Connection::open(folder.join("writes.db")).expect("the database");
        connection
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .expect("a count")
    }

    /// Many callers on several threads at once, under both durabilities: every write is
    /// committed once, whether a caller, another caller or the writer thread committed it.
    #[test]
    fn writes_from_many_threads_are_each_committed_once() {
        for synchronous in ["NORMAL", "FULL"] {
            let folder = tempfile::tempdir().expect("a temporary folder");
            let schema = "CREATE TABLE t (x INTEGER UNIQUE)";
            let writer = writer_with(folder.path(), schema, WalUpkeep::default(), synchronous);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let writes = (0..2_000).map(|x| {
                    let writer = writer.clone();
                    tokio::spawn(async move { writer.write(insert(x)).await })
                });
                for write in writes.collect::<Vec<_>>() {
                    let written = write.await.expect("the task");
                    assert!(matches!(written, Ok(true)), "{synchronous}: {written:?}");
                }
            });
            assert_eq!(rows(folder.path()), 2_000, "{synchronous}");
        }
    }

    /// Another connection holds the write lock: a caller must not fail or block its thread;
    /// its write waits for the writer thread, which commits it once the lock is free.
    #[tokio::test]
    async fn a_write_that_finds_the_database_locked_waits_for_the_lock() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let writer = writer_on(
            folder.path(),
            "CREATE TABLE t (x INTEGER)",
            WalUpkeep::default(),
        );
        let other = Connection::open(folder.path().join("writes.db")).expect("the database");
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (0)")
            .expect("the lock");
        let write = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.write(insert(1)).await })
        };
        // The caller's thread is free meanwhile: this task runs on the same one.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !write.is_finished(),
            "the write was answered while the lock was held"
        );
        other.execute_batch("COMMIT").expect("the lock is released");
        let written = write.await.expect("the task");
        assert!(matches!(written, Ok(true)), "{written:?}");
        assert_eq!(rows(folder.path()), 2);
    }

    /// Writes that share a commit do not share a failure: a bad one fails alone, the others
    /// are committed; a guarded write whose first statement changes nothing writes nothing.
    #[tokio::test]
    async fn a_bad_write_fails_alone_and_a_guard_stops_the_rest() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let schema = "CREATE TABLE t (x INTEGER UNIQUE); INSERT INTO t VALUES (1)";
        let writer = writer_on(folder.path(), schema, WalUpkeep::default());
        // 1 is there already: that insert breaks the unique rule.
        let writes = (1..=50).map(|x| {
            let writer = writer.clone();
            tokio::spawn(async move { (x, writer.write(insert(x)).await) })
        });
        for write in writes.collect::<Vec<_>>() {
            let (x, result) = write.await.expect("the task");
            match x {
                1 => assert!(result.is_err(), "a duplicate was written"),
                _ => assert!(matches!(result, Ok(true)), "{x}: {result:?}"),
            }
        }
        let guarded = Write {
            statements: vec![
                ("UPDATE t SET x = x WHERE x = 999", vec![]),
                ("INSERT INTO t (x) VALUES (1000)", vec![]),
            ],
            guarded: true,
        };
        assert!(!writer.write(guarded).await.expect("the write"));
        let count = Write::one("UPDATE t SET x = x", vec![]);
        assert_eq!(writer.write_counted(count).await.expect("the count"), 50);
    }

    /// A steady stream of writes, with no pause in which a passive checkpoint could catch up:
    /// the WAL must still be rewound, not grow by everything written.
    #[tokio::test]
    async fn the_wal_is_rewound_under_steady_writes() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let upkeep = WalUpkeep {
            checkpoint_every: Duration::from_millis(10),
            rewind_after_frames: 64,
            size_limit_bytes: 1024 * 1024,
        };
        let writer = writer_on(folder.path(), "CREATE TABLE t (x BLOB)", upkeep);
        const IN_FLIGHT: usize = 1_000;
        const BYTES: usize = 4_000;
        let row = || {
            let writer = writer.clone();
            async move {
                let row = Write::one(
                    "INSERT INTO t (x) VALUES ($1)",
                    vec![SqlValue::Blob(vec![7; BYTES])],
                );
                writer.write(row).await
            }
        };
        // A thousand writes always queued, so that the writer never waits for the next one;
        // for long enough that the checkpoint thread has had its turns, however busy the
        // machine is.
        let mut writes = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            writes.spawn(row());
        }
        let began = std::time::Instant::now();
        let mut written_rows = 0;
        while let Some(write) = writes.join_next().await {
            assert!(write.expect("the task").expect("the write"));
            written_rows += 1;
            if written_rows < 8_000 || began.elapsed() < Duration::from_millis(500) {
                writes.spawn(row());
            }
        }
        let wal_bytes = std::fs::metadata(folder.path().join("writes.db-wal"))
            .expect("the WAL")
            .len();
        let written = (written_rows * BYTES) as u64;
        assert!(
            wal_bytes < written / 4,
            "the WAL holds {wal_bytes} bytes after {written} bytes were written"
        );
    }
}
