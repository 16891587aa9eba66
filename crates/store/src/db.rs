//! The store: SQLite in the data folder by default, or PostgreSQL. One interface; the SQL is
//! shared where the two agree, and each backend has its own migrations folder.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::job_time::{self, JobTime};
use crate::record::{JobRecord, JobStatus, RecordError, StepRecord, StoredSteps};
use crate::writer::{SqlValue, Write, Writer};

/// The update that writes a finished job's record; see `sql::FINISH_JOB`.
macro_rules! finish_job {
    () => {
        "UPDATE jobs SET status = $2, output = $3, error = $4, finished_at = $5, lease_owner = NULL, \
         lease_until = NULL, trigger = $7, steps = $8, tasks = $9 - tasks_reused WHERE id = $1 AND lease_owner = $6 AND status = 'running'"
    };
}

/// The insert of a job written whole; see `sql::RECORD_JOB`.
macro_rules! record_job {
    () => {
        "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after, \
         started_at, finished_at, output, error, steps, called_by, workspace_id, tasks) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, $7, $8, $9, $10, $11, $12, $13, $14)"
    };
}

/// Statements that both the sqlx pools and the SQLite writer thread run.
pub(crate) mod sql {
    /// A job waiting in the queue; held instead when its workspace is over its task limit.
    pub const QUEUE_JOB: &str = "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after, workspace_id) \
         VALUES ($1, $2, $3, $4, CASE WHEN EXISTS (SELECT 1 FROM quota_holds WHERE workspace_id = $7) THEN 'held' ELSE 'queued' END, \
         $5, 0, $6, $6, $7)";
    /// A job that its accepting process runs at once: claimed by `$7` until `$8`.
    pub const START_JOB: &str = "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after, \
         started_at, workspace_id, lease_owner, lease_until) VALUES ($1, $2, $3, $4, 'running', $5, 1, $6, $6, $6, $7, $8, $9)";
    pub const LOG_STEP: &str = "INSERT INTO job_progress (job_id, path, record) VALUES ($1, $2, $3) \
         ON CONFLICT (job_id, path) DO UPDATE SET record = excluded.record";
    /// A step of a running job, noted only while `$4` holds the job's lease.
    pub const LOG_OWNED_STEP: &str = "INSERT INTO job_progress (job_id, path, record) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $4 AND status = 'running') \
         ON CONFLICT (job_id, path) DO UPDATE SET record = excluded.record";
    /// The trigger is replaced by the record's, masked: the raw event was kept only to run it.
    /// `$9` is the action steps in the record (see [`METER_JOB`]).
    pub const FINISH_JOB: &str = finish_job!();
    /// [`FINISH_JOB`] and [`METER_JOB`] (with the month as `$10`) in one statement, one round
    /// trip to PostgreSQL: the insert reads `tasks` as it was before the update, since both see
    /// the statement's snapshot.
    pub const METER_AND_FINISH_JOB: &str = concat!(
        "WITH meter AS (INSERT INTO usage_entries (workspace_id, period, tasks, jobs) \
         SELECT workspace_id, $10, $9 - tasks_reused - COALESCE(tasks, 0), CASE WHEN tasks IS NULL THEN 1 ELSE 0 END \
         FROM jobs WHERE id = $1 AND lease_owner = $6 AND status = 'running') ",
        finish_job!()
    );
    /// What a write of job `$1`'s steps adds to its workspace's month `$3`, while `$4` holds
    /// the job: the tasks among the record's `$2` action steps not yet charged (none that a
    /// rerun took over), and the job itself the first time. Run before the write that sets
    /// `tasks`, in its transaction: the job's row says what was charged, so a task is counted
    /// once whatever crashes, retries or resumes come between.
    ///
    /// PostgreSQL appends the addition to `usage_entries` (jobs committing at once must not
    /// queue on one counter row; the leader folds the entries).
    pub const METER_JOB: &str = "INSERT INTO usage_entries (workspace_id, period, tasks, jobs) \
         SELECT workspace_id, $3, $2 - tasks_reused - COALESCE(tasks, 0), CASE WHEN tasks IS NULL THEN 1 ELSE 0 END \
         FROM jobs WHERE id = $1 AND lease_owner = $4 AND status = 'running'";
    /// [`METER_JOB`] on SQLite, whose one writer commits one transaction at a time anyway: the
    /// addition goes straight into the month's counters, with nothing to fold.
    pub const METER_JOB_IN_PLACE: &str = "INSERT INTO usage_months (workspace_id, period, tasks, jobs) \
         SELECT workspace_id, $3, $2 - tasks_reused - COALESCE(tasks, 0), CASE WHEN tasks IS NULL THEN 1 ELSE 0 END \
         FROM jobs WHERE id = $1 AND lease_owner = $4 AND status = 'running' \
         ON CONFLICT (workspace_id, period) DO UPDATE SET tasks = usage_months.tasks + excluded.tasks, jobs = usage_months.jobs + excluded.jobs";
    /// What a job written whole adds to its workspace's month `$3`: `$2` tasks and itself (on
    /// SQLite; see [`METER_JOB_IN_PLACE`]).
    pub const METER_RECORDED_JOB_IN_PLACE: &str = "INSERT INTO usage_months (workspace_id, period, tasks, jobs) VALUES ($1, $3, $2, 1) \
         ON CONFLICT (workspace_id, period) DO UPDATE SET tasks = usage_months.tasks + excluded.tasks, jobs = usage_months.jobs + 1";
    pub const CLEAR_PROGRESS: &str = "DELETE FROM job_progress WHERE job_id = $1";
    /// A job that ended failed gets a notice to mail, in the same transaction as its record.
    pub const NOTE_FAILURE: &str = "INSERT INTO failure_notices (job_id, workspace_id, recipe_id, recipe_name, failed_at) \
         SELECT id, workspace_id, recipe_id, recipe_name, finished_at FROM jobs WHERE id = $1 AND status = 'failed' \
         ON CONFLICT (job_id) DO NOTHING";
    /// A job that ended before it had to be written: its one write is its record.
    pub const RECORD_JOB: &str = record_job!();
    /// [`RECORD_JOB`] and what it adds to its workspace's month `$15` (`$14` tasks and the job)
    /// appended to `usage_entries`, in one statement: PostgreSQL's (see [`METER_JOB`]).
    pub const RECORD_AND_METER_JOB: &str = concat!(
        "WITH job AS (",
        record_job!(),
        " RETURNING workspace_id, tasks) \
         INSERT INTO usage_entries (workspace_id, period, tasks, jobs) SELECT workspace_id, $15, tasks, 1 FROM job"
    );
}

/// Runs the same statement on whichever pool the store has. The statement is written once and
/// compiled for both backends.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &*$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A recipe with the source of its current version; queries add their own `WHERE`.
macro_rules! recipe_select {
    ($rest:literal) => {
        concat!(
            "SELECT r.id, r.name, r.enabled, r.current_version, v.source, r.webhook_path, r.created_at, r.updated_at, r.workspace_id \
             FROM recipes r JOIN recipe_versions v ON v.recipe_id = r.id AND v.version = r.current_version ",
            $rest
        )
    };
}

/// The condition of the queue's partial indexes, `jobs_ready` (migration 7) and `jobs_due`
/// (migration 29), written out in every query meant to use them: SQLite uses a partial index
/// only when the query repeats its condition.
macro_rules! unfinished {
    () => {
        "status IN ('queued', 'waiting', 'running')"
    };
}

/// The jobs a worker may claim at time `$now`: queued or woken ones that are due, and running
/// ones whose worker's lease ran out; not those of a recipe already running its `concurrency`.
macro_rules! ready_jobs {
    ($now:literal) => {
        concat!(
            "FROM jobs j LEFT JOIN recipes r ON r.id = j.recipe_id \
                          WHERE j.", unfinished!(), " \
             AND ((j.status IN ('queued', 'waiting') AND j.run_after <= ", $now, ") \
                 OR (j.status = 'running' AND j.lease_until < ", $now, ")) \
             AND (r.max_running IS NULL OR (SELECT COUNT(*) FROM jobs k WHERE k.recipe_id = j.recipe_id \
                 AND k.", unfinished!(), " AND k.status = 'running' AND k.lease_until >= ", $now, ") < r.max_running)"
        )
    };
}

// Statements about unfinished jobs. Each names the condition of the queue's partial index, so
// that it reads the few unfinished jobs and not the whole history (a test checks the plans).

/// The oldest job that is ready to be claimed at `$1`.
pub(crate) const PICK_READY_JOB: &str = concat!(
    "SELECT j.id ",
    ready_jobs!("$1"),
    " ORDER BY j.run_after LIMIT 1"
);
/// PostgreSQL's pick, in a claim of many processes: it skips the rows another worker is
/// claiming, and locks the one it picks until the claim commits.
pub(crate) const PICK_READY_JOB_TO_LOCK: &str = concat!(
    "SELECT j.id, j.recipe_id, r.max_running ",
    ready_jobs!("$1"),
    " ORDER BY j.run_after LIMIT 1 FOR UPDATE OF j SKIP LOCKED"
);
/// Extends to `$2` the leases of the jobs `$1` runs.
pub(crate) const RENEW_LEASES: &str = concat!(
    "UPDATE jobs SET lease_until = $2 WHERE lease_owner = $1 AND status = 'running' AND ",
    unfinished!()
);
/// The jobs `$1` runs that were asked to stop.
pub(crate) const CANCEL_REQUESTS: &str = concat!(
    "SELECT id, cancel_reason FROM jobs WHERE lease_owner = $1 AND status = 'running' \
     AND cancel_reason IS NOT NULL AND ",
    unfinished!()
);
/// How many jobs are queued, running, waiting and held, with the oldest one's creation time of
/// each.
pub(crate) const UNFINISHED_JOBS: &str = concat!(
    "SELECT status, COUNT(*), MIN(created_at) FROM jobs WHERE ",
    unfinished!(),
    " GROUP BY status UNION ALL SELECT status, COUNT(*), MIN(created_at) FROM jobs WHERE status = 'held' GROUP BY status"
);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database could not be reached or answered with an error: {0}")]
    Database(#[from] sqlx::Error),
    /// PostgreSQL did not answer at start; the message says what happened.
    #[error("{0}")]
    Unreachable(String),
    #[error("the database schema could not be brought up to date: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A unique name or path is taken; the message says which.
    #[error("{0}")]
    Conflict(String),
    #[error("the stored data is not valid: {0}")]
    Corrupt(String),
    /// The SQLite writer thread could not commit.
    #[error("the database could not commit a write: {0}")]
    Write(String),
    #[error("cannot use the data folder {path}: {source}")]
    DataFolder {
        path: String,
        source: std::io::Error,
    },
}

impl StoreError {
    /// True for a failure that passes once the database is back: it could not be reached,
    /// was restarting or shutting down, or had no connection free. What failed so may be
    /// tried again; any other failure would fail the same way.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            StoreError::Database(error) => match error {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
                sqlx::Error::Database(database) => database.code().is_some_and(|code| {
                    // Connection exceptions (not a protocol violation, which would repeat),
                    // the server shutting down, crashed or starting, too many connections.
                    (code.starts_with("08") && code != "08P01")
                        || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// Turns a unique-constraint violation into a conflict naming what is taken.
    pub(crate) fn or_conflict(error: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
        match &error {
            sqlx::Error::Database(database) if database.is_unique_violation() => {
                StoreError::Conflict(what())
            }
            _ => StoreError::Database(error),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The pool of a store opened by [`Store::connect`].
const DEFAULT_POOL: u32 = 10;
/// How long a first connection to PostgreSQL may take before Weft gives up with the reason.
pub const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Opens one connection to PostgreSQL to learn at once whether it answers, and which schema
/// the store is in (which names the platform's locks and channels).
async fn first_contact(options: &sqlx::postgres::PgConnectOptions) -> Result<String> {
    use sqlx::Connection;
    let connecting = sqlx::postgres::PgConnection::connect_with(options);
    let mut connection = match tokio::time::timeout(CONNECT_WAIT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return Err(StoreError::Unreachable(unreachable_reason(&error))),
        Err(_) => {
            return Err(StoreError::Unreachable(format!(
                "PostgreSQL did not answer within {} seconds (is the address right, and does a firewall let the connection through?)",
                CONNECT_WAIT.as_secs()
            )));
        }
    };
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(schema.unwrap_or_else(|| "public".to_owned()))
}

/// Why a first connection failed, in words an operator acts on.
fn unreachable_reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "PostgreSQL refused the connection ({io}): is it running, and listening on that address and port?"
        ),
        sqlx::Error::Io(io) => format!("PostgreSQL cannot be reached: {io}"),
        sqlx::Error::Database(database) => {
            format!("PostgreSQL refused this login: {}", database.message())
        }
        other => format!("cannot talk to PostgreSQL: {other}"),
    }
}

/// A migrator that accepts a schema brought further by a newer release.
fn older_schema_allowed(mut migrator: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// The page size of a new SQLite database. A finished job's row is about a kilobyte: 4 KiB
/// pages (SQLite's default) hold three and leave a fifth of the file empty; 16 KiB pages
/// hold fifteen. An existing database keeps the page size it was made with.
const SQLITE_PAGE_BYTES: u32 = 16 * 1024;

/// How far a SQLite commit is on disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives the process being killed; a power
    /// loss may take the last commits back.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is synced to disk before it is acknowledged, and
    /// survives a power loss.
    Full,
}

pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: std::sync::Arc<Backend>,
    /// SQLite's group-commit writer for the writes on a job's hot path.
    writer: Option<std::sync::Arc<Writer>>,
    /// On PostgreSQL, how the processes sharing the store tell each other things.
    pub(crate) platform: Option<std::sync::Arc<crate::platform::Platform>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecipe {
    pub id: String,
    /// The workspace the recipe belongs to: its names, connections and tables are that
    /// workspace's.
    pub workspace_id: String,
    pub name: String,
    pub enabled: bool,
    pub version: i64,
    pub source: String,
    pub webhook_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecipeVersion {
    pub workspace_id: String,
    pub version: i64,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// The jobs that have not ended, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnfinishedJobs {
    pub queued: i64,
    pub running: i64,
    /// Asleep in a durable `wait`.
    pub waiting: i64,
    /// Held over a plan's limit.
    pub held: i64,
    /// When the job that has waited longest in the queue was queued.
    pub oldest_queued: Option<DateTime<Utc>>,
}

/// A job claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: String,
    pub recipe_id: String,
    pub recipe_version: i64,
    pub trigger: Value,
    pub attempt: i64,
}

/// What a list of jobs is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// The workspace whose jobs are listed; `None` lists every workspace's.
    pub workspace_id: Option<String>,
    pub recipe_id: Option<String>,
    pub status: Option<JobStatus>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Jobs created before this job id (ids sort by time): the next page.
    pub before: Option<String>,
    pub limit: i64,
}

/// One line of a job list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobSummary {
    pub id: String,
    pub recipe_id: String,
    pub recipe: String,
    pub recipe_version: i64,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The job this one reruns, if it is a rerun.
    pub rerun_of: Option<String>,
    /// The job whose `call` step ran this one, if one did.
    pub called_by: Option<String>,
}

/// Which recipe version a job ran.
#[derive(Debug, Clone, Copy)]
pub struct RecipeRef<'a> {
    pub workspace_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub version: i64,
}

impl<'a> From<&'a StoredRecipe> for RecipeRef<'a> {
    fn from(recipe: &'a StoredRecipe) -> RecipeRef<'a> {
        RecipeRef {
            workspace_id: &recipe.workspace_id,
            id: &recipe.id,
            name: &recipe.name,
            version: recipe.version,
        }
    }
}

impl Store {
    /// Opens SQLite in a data folder, creating both on first start.
    pub async fn open_data_folder(folder: &Path) -> Result<Store> {
        Store::open_data_folder_with(folder, Durability::Normal).await
    }

    /// Opens SQLite in a data folder with a chosen durability.
    pub async fn open_data_folder_with(folder: &Path, durability: Durability) -> Result<Store> {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::DataFolder {
            path: folder.display().to_string(),
            source,
        })?;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(folder.join("weft.db"));
        Store::open_sqlite(options, durability).await
    }

    /// Opens a SQLite file: a small pool for reads and rare writes, and the writer thread for
    /// the writes of running jobs.
    async fn open_sqlite(
        options: sqlx::sqlite::SqliteConnectOptions,
        durability: Durability,
    ) -> Result<Store> {
        let (synchronous, pragma) = match durability {
            Durability::Normal => (sqlx::sqlite::SqliteSynchronous::Normal, "NORMAL"),
            Durability::Full => (sqlx::sqlite::SqliteSynchronous::Full, "FULL"),
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .page_size(SQLITE_PAGE_BYTES)
            // Deleted history is gone from the file: freed content is overwritten with zeros,
            // and a new database gives freed pages back when asked (`reclaim_space`).
            .pragma("secure_delete", "ON")
            .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental)
            // The writer's checkpoint thread keeps the WAL short; a commit here must not stop
            // to do it instead.
            .pragma("wal_autocheckpoint", "0");
        let file = options.get_filename().to_owned();
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let writer = Writer::start(&file, pragma)?;
        Ok(Store {
            backend: std::sync::Arc::new(Backend::Sqlite(pool)),
            writer: Some(std::sync::Arc::new(writer)),
            platform: None,
        })
    }

    /// Connects to a database URL: `postgres://…`, or `sqlite://PATH`, with a small pool:
    /// for commands and tests. `weft serve` sizes its pool with [`Store::connect_with_pool`].
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with_pool(url, DEFAULT_POOL).await
    }

    /// Connects to a database URL with a pool of at most `pool` connections (PostgreSQL; a
    /// SQLite store has its own small pool and writer). PostgreSQL must answer now: when it
    /// does not within [`CONNECT_WAIT`], or refuses, the error says why at once instead of
    /// after a pool's retries. Later outages are ridden out: the pool opens connections again
    /// when the server is back.
    pub async fn connect_with_pool(url: &str, pool: u32) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
            let schema = first_contact(&options).await?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(pool.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options);
            return Ok(Store {
                backend: std::sync::Arc::new(Backend::Postgres(pool)),
                writer: None,
                platform: Some(std::sync::Arc::new(crate::platform::Platform::new(schema))),
            });
        }
        Store::open_sqlite(
            sqlx::sqlite::SqliteConnectOptions::from_str(url)?,
            Durability::Normal,
        )
        .await
    }

    /// Which backend this is, for messages and health checks.
    pub fn backend_name(&self) -> &'static str {
        match *self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The statement that meters a job write on this backend (see [`sql::METER_JOB`]).
    fn meter_job_sql(&self) -> &'static str {
        match *self.backend {
            Backend::Sqlite(_) => sql::METER_JOB_IN_PLACE,
            Backend::Postgres(_) => sql::METER_JOB,
        }
    }

    /// Brings the schema up to date. Safe to run at every start, also by several processes at
    /// once (PostgreSQL: the migrator takes a lock), and by an older release on a schema a
    /// newer one brought further: migrations only add, so the older release runs on it (a
    /// rolling upgrade, or a rollback).
    pub async fn migrate(&self) -> Result<()> {
        match &*self.backend {
            Backend::Sqlite(pool) => {
                older_schema_allowed(sqlx::migrate!("migrations/sqlite"))
                    .run(pool)
                    .await?
            }
            Backend::Postgres(pool) => {
                older_schema_allowed(sqlx::migrate!("migrations/postgres"))
                    .run(pool)
                    .await?
            }
        }
        Ok(())
    }

    /// Creates a PostgreSQL schema, for installations (and tests) that share one database:
    /// point a store at it with `?options=-csearch_path%3DNAME` in its URL.
    pub async fn create_schema(&self, name: &str) -> Result<()> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "`{name}` is not a schema name"
            )));
        }
        self.execute_raw(&format!("CREATE SCHEMA IF NOT EXISTS {name}"))
            .await
    }

    /// Runs a statement of our own making (no outside input reaches it).
    async fn execute_raw(&self, sql: &str) -> Result<()> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        on_pool!(self, pool => sqlx::query(sql).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        let ping = on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()));
        ping.is_ok()
    }

    pub async fn create_user(&self, email: &str, name: &str, password_hash: &str) -> Result<User> {
        let user = User {
            id: new_id(),
            email: email.to_owned(),
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            created_at: Utc::now(),
        };
        let sql = "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&user.id).bind(&user.email).bind(&user.name).bind(&user.password_hash).bind(user.created_at)
            .execute(pool).await.map(|_| ()))
        .map_err(|error| StoreError::or_conflict(error, || format!("a user with email {email} already exists")))?;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let sql = "SELECT id, email, name, password_hash, created_at FROM users WHERE email = $1";
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(email).fetch_optional(pool).await?
            .map(|row| user_from(&row)).transpose()?),
        )
    }

    /// Saves a new recipe as version 1.
    pub async fn create_recipe(
        &self,
        workspace_id: &str,
        name: &str,
        source: &str,
        webhook_path: Option<&str>,
    ) -> Result<StoredRecipe> {
        let now = Utc::now();
        let recipe = StoredRecipe {
            id: new_id(),
            workspace_id: workspace_id.to_owned(),
            name: name.to_owned(),
            enabled: true,
            version: 1,
            source: source.to_owned(),
            webhook_path: webhook_path.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        let insert = "INSERT INTO recipes (id, name, enabled, current_version, webhook_path, created_at, updated_at, workspace_id) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let version = "INSERT INTO recipe_versions (recipe_id, version, source, created_at) VALUES ($1, $2, $3, $4)";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(insert)
                .bind(&recipe.id).bind(&recipe.name).bind(true).bind(1_i64).bind(webhook_path).bind(now).bind(now).bind(workspace_id)
                .execute(&mut *tx).await
                .map_err(|error| conflict_for(error, name, webhook_path))?;
            sqlx::query(version).bind(&recipe.id).bind(1_i64).bind(source).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(recipe)
    }

    /// Saves a new version of a recipe; `None` when there is no such recipe.
    pub async fn update_recipe(
        &self,
        id: &str,
        name: &str,
        source: &str,
        webhook_path: Option<&str>,
    ) -> Result<Option<StoredRecipe>> {
        let now = Utc::now();
        let bump = "UPDATE recipes SET name = $2, webhook_path = $3, current_version = current_version + 1, updated_at = $4 \
                    WHERE id = $1 RETURNING current_version";
        let version = "INSERT INTO recipe_versions (recipe_id, version, source, created_at) VALUES ($1, $2, $3, $4)";
        let saved: Option<i64> = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(bump).bind(id).bind(name).bind(webhook_path).bind(now)
                .fetch_optional(&mut *tx).await
                .map_err(|error| conflict_for(error, name, webhook_path))?;
            match row {
                Some(row) => {
                    let number: i64 = row.try_get(0)?;
                    sqlx::query(version).bind(id).bind(number).bind(source).bind(now).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Some(number)
                }
                None => None,
            }
        });
        match saved {
            Some(_) => self.recipe(id).await,
            None => Ok(None),
        }
    }

    pub async fn recipe(&self, id: &str) -> Result<Option<StoredRecipe>> {
        let sql = recipe_select!("WHERE r.id = $1");
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await?
            .map(|row| recipe_from(&row)).transpose()?),
        )
    }

    /// The recipe of a workspace with this name.
    pub async fn recipe_by_name(
        &self,
        workspace_id: &str,
        name: &str,
    ) -> Result<Option<StoredRecipe>> {
        let sql = recipe_select!("WHERE r.workspace_id = $1 AND r.name = $2");
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(name).fetch_optional(pool).await?
            .map(|row| recipe_from(&row)).transpose()?),
        )
    }

    /// The enabled recipe of a workspace that listens on a webhook path.
    pub async fn recipe_for_webhook(
        &self,
        workspace_id: &str,
        path: &str,
    ) -> Result<Option<StoredRecipe>> {
        let sql =
            recipe_select!("WHERE r.workspace_id = $1 AND r.webhook_path = $2 AND r.enabled = $3");
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(path).bind(true).fetch_optional(pool).await?
            .map(|row| recipe_from(&row)).transpose()?),
        )
    }

    /// Every workspace's recipes: for the schedules, polls and subscriptions of the platform.
    pub async fn recipes(&self) -> Result<Vec<StoredRecipe>> {
        let sql = recipe_select!("ORDER BY r.workspace_id, r.name");
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?
            .iter().map(recipe_from).collect())
    }

    /// The recipes of one workspace, by name.
    pub async fn recipes_in(&self, workspace_id: &str) -> Result<Vec<StoredRecipe>> {
        let sql = recipe_select!("WHERE r.workspace_id = $1 ORDER BY r.name");
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?
            .iter().map(recipe_from).collect())
    }

    pub async fn recipe_version(&self, id: &str, version: i64) -> Result<Option<RecipeVersion>> {
        let sql = "SELECT v.version, v.source, v.created_at, r.workspace_id FROM recipe_versions v \
                   JOIN recipes r ON r.id = v.recipe_id WHERE v.recipe_id = $1 AND v.version = $2";
        on_pool!(self, pool => sqlx::query(sql).bind(id).bind(version).fetch_optional(pool).await?
            .map(|row| version_from(&row)).transpose())
    }

    pub async fn recipe_versions(&self, id: &str) -> Result<Vec<RecipeVersion>> {
        let sql = "SELECT v.version, v.source, v.created_at, r.workspace_id FROM recipe_versions v \
                   JOIN recipes r ON r.id = v.recipe_id WHERE v.recipe_id = $1 ORDER BY v.version";
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_all(pool).await?
            .iter().map(version_from).collect())
    }

    /// Sets how many jobs of a recipe may run at once (`None`: no bound).
    pub async fn set_recipe_concurrency(&self, id: &str, max_running: Option<i64>) -> Result<()> {
        let sql = "UPDATE recipes SET max_running = $2 WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(id).bind(max_running).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Puts a failed job back in the queue for another attempt at `run_after`, keeping the
    /// steps it finished; false when `owner` no longer holds its lease.
    pub async fn retry_job(
        &self,
        job_id: &str,
        owner: &str,
        run_after: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = "UPDATE jobs SET status = 'queued', run_after = $3, lease_owner = NULL, lease_until = NULL \
                   WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
        let done = on_pool!(self, pool => sqlx::query(sql).bind(job_id).bind(owner).bind(JobTime(run_after))
            .execute(pool).await?.rows_affected());
        Ok(done > 0)
    }

    /// Turns a recipe on or off; false when there is no such recipe.
    pub async fn set_recipe_enabled(&self, id: &str, enabled: bool) -> Result<bool> {
        let sql = "UPDATE recipes SET enabled = $2, updated_at = $3 WHERE id = $1";
        let done = on_pool!(self, pool => sqlx::query(sql).bind(id).bind(enabled).bind(Utc::now())
            .execute(pool).await?.rows_affected());
        Ok(done > 0)
    }

    /// Deletes a recipe and its versions; its jobs stay in the history. False when absent.
    pub async fn delete_recipe(&self, id: &str) -> Result<bool> {
        let sql = "DELETE FROM recipes WHERE id = $1";
        let done =
            on_pool!(self, pool => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected());
        Ok(done > 0)
    }

    /// Queues a job. When this returns, the event is committed and may be acknowledged.
    pub async fn enqueue_job(&self, recipe: &StoredRecipe, trigger: &Value) -> Result<String> {
        let id = new_id();
        self.enqueue_job_as(&id, recipe, trigger).await?;
        Ok(id)
    }

    /// Queues a job under an id chosen beforehand (a caller waits for it by that id).
    pub async fn enqueue_job_as(
        &self,
        id: &str,
        recipe: &StoredRecipe,
        trigger: &Value,
    ) -> Result<()> {
        self.insert_job(id, recipe, trigger, None).await
    }

    /// Writes a new job that `owner` runs at once, holding it for `lease`: the event is
    /// committed when this returns, and no other worker needs to claim it.
    pub async fn start_job(
        &self,
        id: &str,
        recipe: &StoredRecipe,
        trigger: &Value,
        owner: &str,
        lease: Duration,
    ) -> Result<()> {
        self.insert_job(id, recipe, trigger, Some((owner, lease_end(lease))))
            .await
    }

    async fn insert_job(
        &self,
        id: &str,
        recipe: &StoredRecipe,
        trigger: &Value,
        claimed_by: Option<(&str, JobTime)>,
    ) -> Result<()> {
        let now = JobTime::now();
        if let Some(writer) = &self.writer {
            let mut values = vec![
                text(id),
                text(&recipe.id),
                text(&recipe.name),
                SqlValue::Integer(recipe.version),
                SqlValue::Text(json_text(trigger)?),
                now.sql_value(),
                text(&recipe.workspace_id),
            ];
            let statement = match claimed_by {
                None => sql::QUEUE_JOB,
                Some((owner, until)) => {
                    values.extend([text(owner), until.sql_value()]);
                    sql::START_JOB
                }
            };
            return writer
                .write(Write::one(statement, values))
                .await
                .map(|_| ());
        }
        macro_rules! insert {
            ($statement:expr) => {
                sqlx::query($statement)
                    .bind(id)
                    .bind(&recipe.id)
                    .bind(&recipe.name)
                    .bind(recipe.version)
                    .bind(Json(trigger))
                    .bind(now)
                    .bind(&recipe.workspace_id)
            };
        }
        on_pool!(self, pool => match claimed_by {
            None => insert!(sql::QUEUE_JOB).execute(pool).await.map(|_| ()),
            Some((owner, until)) => insert!(sql::START_JOB).bind(owner).bind(until).execute(pool).await.map(|_| ()),
        })?;
        Ok(())
    }

    /// Extends the lease of every job `owner` is running, in one statement: a process renews
    /// all its jobs at once instead of one timer per job.
    pub async fn renew_leases(&self, owner: &str, lease: Duration) -> Result<u64> {
        let until = lease_end(lease);
        if let Some(writer) = &self.writer {
            // Through the writer, not beside it: a second writer would wait for the lock, and
            // the writer's callers with it.
            let values = vec![text(owner), until.sql_value()];
            let renewed = writer
                .write_counted(Write::one(RENEW_LEASES, values))
                .await?;
            return Ok(renewed as u64);
        }
        Ok(
            on_pool!(self, pool => sqlx::query(RENEW_LEASES).bind(owner).bind(until)
            .execute(pool).await?.rows_affected()),
        )
    }

    /// Ends the leases of every job `owner` is running, so that another worker (or this
    /// process, started again) takes them over at once instead of after their leases: for a
    /// process that stops before its jobs are done. Each resumes after its last noted step.
    pub async fn release_leases(&self, owner: &str) -> Result<u64> {
        self.renew_leases(owner, Duration::ZERO).await
    }

    /// Claims the oldest job that is ready, or whose worker's lease ran out, for `lease`.
    pub async fn claim_job(&self, owner: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let now = JobTime::now();
        let until = lease_end(lease);
        let claim = "UPDATE jobs SET status = 'running', lease_owner = $2, lease_until = $3, attempt = attempt + CASE WHEN status = 'waiting' THEN 0 ELSE 1 END, \
                     started_at = COALESCE(started_at, $4) WHERE id = $1 \
                     RETURNING id, recipe_id, recipe_version, trigger, attempt";
        let row = match &*self.backend {
            Backend::Sqlite(pool) => {
                // One writer: BEGIN IMMEDIATE takes the write lock before the pick.
                let mut connection = pool.acquire().await?;
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *connection)
                    .await?;
                let picked = sqlx::query(PICK_READY_JOB)
                    .bind(now)
                    .fetch_optional(&mut *connection)
                    .await;
                let claimed = match picked {
                    Ok(Some(row)) => {
                        let id: String = row.try_get(0)?;
                        sqlx::query(claim)
                            .bind(id)
                            .bind(owner)
                            .bind(until)
                            .bind(now)
                            .fetch_optional(&mut *connection)
                            .await
                    }
                    Ok(None) => Ok(None),
                    Err(error) => Err(error),
                };
                let end = if claimed.is_ok() {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                sqlx::query(end).execute(&mut *connection).await?;
                claimed?.map(|row| claimed_from_sqlite(&row)).transpose()?
            }
            Backend::Postgres(pool) => {
                let pick = PICK_READY_JOB_TO_LOCK;
                // Two processes could each count a recipe's running jobs below its
                // `concurrency` and both claim: claims of such a recipe take turns on a lock
                // held until their commit, and count again under it.
                let take_turn = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
                let running = concat!(
                    "SELECT COUNT(*) FROM jobs WHERE recipe_id = $1 AND status = 'running' AND ",
                    unfinished!(),
                    " AND lease_until >= $2"
                );
                let claim = "UPDATE jobs SET status = 'running', lease_owner = $2, lease_until = $3, \
                             attempt = attempt + CASE WHEN status = 'waiting' THEN 0 ELSE 1 END, \
                             started_at = COALESCE(started_at, $4) WHERE id = $1 \
                             RETURNING id, recipe_id, recipe_version, trigger, attempt";
                let mut tx = pool.begin().await?;
                let Some(picked) = sqlx::query(pick).bind(now).fetch_optional(&mut *tx).await?
                else {
                    return Ok(None);
                };
                let id: String = picked.try_get(0)?;
                let recipe_id: String = picked.try_get(1)?;
                let max_running: Option<i64> = picked.try_get(2)?;
                if let Some(max_running) = max_running {
                    sqlx::query(take_turn)
                        .bind(&recipe_id)
                        .execute(&mut *tx)
                        .await?;
                    let (count,): (i64,) = sqlx::query_as(running)
                        .bind(&recipe_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    if count >= max_running {
                        return Ok(None);
                    }
                }
                let claimed = sqlx::query(claim)
                    .bind(id)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Some(claimed_from_postgres(&claimed)?)
            }
        };
        Ok(row)
    }

    /// Writes a finished job's record, if `owner` still holds the job's lease: a worker that
    /// lost its lease (it stalled, and another took the job over) gets `false` and nothing
    /// is written. `actions`: the action steps in the record, of which the job is charged
    /// for those not charged yet, in the same transaction.
    pub async fn finish_job(&self, record: &JobRecord, owner: &str, actions: i64) -> Result<bool> {
        let period = crate::usage::period_of(Utc::now());
        if let Some(writer) = &self.writer {
            let meter = vec![
                text(&record.id),
                SqlValue::Integer(actions),
                text(&period),
                text(owner),
            ];
            let finish = vec![
                text(&record.id),
                text(status_text(record.status)),
                stored_output(&record.output)?,
                optional(record.error.as_ref().map(json_text).transpose()?),
                JobTime(record.finished_at.unwrap_or_else(Utc::now)).sql_value(),
                text(owner),
                SqlValue::Text(json_text(&record.trigger)?),
                SqlValue::Text(json_text(&StoredSteps(&record.steps))?),
                SqlValue::Integer(actions),
            ];
            let mut statements = vec![
                (sql::METER_JOB_IN_PLACE, meter),
                (sql::FINISH_JOB, finish),
                (sql::CLEAR_PROGRESS, vec![text(&record.id)]),
            ];
            if record.status == JobStatus::Failed {
                statements.push((sql::NOTE_FAILURE, vec![text(&record.id)]));
            }
            let write = Write {
                statements,
                guarded: true,
            };
            return writer.write(write).await;
        }
        // Without a writer: PostgreSQL.
        let error = record.error.as_ref().map(Json);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let owned = sqlx::query(sql::METER_AND_FINISH_JOB)
                .bind(&record.id).bind(status_text(record.status)).bind(output_or_none(&record.output)).bind(error)
                .bind(record.finished_at.map(JobTime)).bind(owner).bind(Json(&record.trigger)).bind(Json(StoredSteps(&record.steps)))
                .bind(actions).bind(&period).execute(&mut *tx).await?.rows_affected();
            if owned == 0 {
                return Ok(false);
            }
            sqlx::query(sql::CLEAR_PROGRESS).bind(&record.id).execute(&mut *tx).await?;
            if record.status == JobStatus::Failed {
                sqlx::query(sql::NOTE_FAILURE).bind(&record.id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Writes the record of a job that ran to its end before anything had to be written
    /// (a sync webhook's job of steps that only compute, a called recipe's job): one insert,
    /// the job and its record, and its `tasks` (action steps run) metered.
    pub async fn record_job(
        &self,
        recipe: RecipeRef<'_>,
        record: &JobRecord,
        tasks: i64,
    ) -> Result<()> {
        let finished_at = record.finished_at.unwrap_or_else(Utc::now);
        let period = crate::usage::period_of(Utc::now());
        if let Some(writer) = &self.writer {
            let values = vec![
                text(&record.id),
                text(recipe.id),
                text(recipe.name),
                SqlValue::Integer(recipe.version),
                text(status_text(record.status)),
                SqlValue::Text(json_text(&record.trigger)?),
                JobTime(record.started_at).sql_value(),
                JobTime(finished_at).sql_value(),
                stored_output(&record.output)?,
                optional(record.error.as_ref().map(json_text).transpose()?),
                SqlValue::Text(json_text(&StoredSteps(&record.steps))?),
                optional(record.called_by.clone()),
                text(recipe.workspace_id),
                SqlValue::Integer(tasks),
            ];
            let meter = vec![
                text(recipe.workspace_id),
                SqlValue::Integer(tasks),
                text(&period),
            ];
            let mut statements = vec![
                (sql::RECORD_JOB, values),
                (sql::METER_RECORDED_JOB_IN_PLACE, meter),
            ];
            if record.status == JobStatus::Failed {
                statements.push((sql::NOTE_FAILURE, vec![text(&record.id)]));
            }
            return writer
                .write(Write {
                    statements,
                    guarded: false,
                })
                .await
                .map(|_| ());
        }
        // Without a writer: PostgreSQL. One statement, in a transaction only when a failure
        // notice goes with it.
        let error = record.error.as_ref().map(Json);
        on_pool!(self, pool => {
            let insert = sqlx::query(sql::RECORD_AND_METER_JOB)
                .bind(&record.id).bind(recipe.id).bind(recipe.name).bind(recipe.version)
                .bind(status_text(record.status)).bind(Json(&record.trigger)).bind(JobTime(record.started_at))
                .bind(JobTime(finished_at)).bind(output_or_none(&record.output)).bind(error).bind(Json(StoredSteps(&record.steps)))
                .bind(&record.called_by).bind(recipe.workspace_id).bind(tasks).bind(&period);
            if record.status == JobStatus::Failed {
                let mut tx = pool.begin().await?;
                insert.execute(&mut *tx).await?;
                sqlx::query(sql::NOTE_FAILURE).bind(&record.id).execute(&mut *tx).await?;
                tx.commit().await?;
            } else {
                insert.execute(pool).await?;
            }
        });
        Ok(())
    }

    /// When a schedule last fired, if it has.
    pub async fn schedule_fired_at(&self, recipe_id: &str) -> Result<Option<DateTime<Utc>>> {
        let sql = "SELECT last_fired_at FROM schedule_state WHERE recipe_id = $1";
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(recipe_id).fetch_optional(pool).await?
            .map(|row| row.try_get(0)).transpose()?),
        )
    }

    /// Starts a schedule's clock at `at` (no job), unless it has one; forgets it with `None`.
    pub async fn reset_schedule(&self, recipe_id: &str, at: Option<DateTime<Utc>>) -> Result<()> {
        match at {
            Some(at) => {
                let sql = "INSERT INTO schedule_state (recipe_id, last_fired_at) VALUES ($1, $2) ON CONFLICT (recipe_id) DO NOTHING";
                on_pool!(self, pool => sqlx::query(sql).bind(recipe_id).bind(at).execute(pool).await.map(|_| ()))?;
            }
            None => {
                let sql = "DELETE FROM schedule_state WHERE recipe_id = $1";
                on_pool!(self, pool => sqlx::query(sql).bind(recipe_id).execute(pool).await.map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// Fires one tick of a schedule: queues its job and moves the schedule's clock from
    /// `previous` to `tick`, in one transaction. False (and no job) when another scheduler
    /// moved the clock first.
    pub async fn fire_schedule(
        &self,
        recipe: &StoredRecipe,
        previous: DateTime<Utc>,
        tick: DateTime<Utc>,
        trigger: &Value,
    ) -> Result<bool> {
        let advance = "UPDATE schedule_state SET last_fired_at = $3 WHERE recipe_id = $1 AND last_fired_at = $2";
        let now = JobTime::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(advance).bind(&recipe.id).bind(previous).bind(tick).execute(&mut *tx).await?.rows_affected();
            if moved == 0 {
                return Ok(false);
            }
            sqlx::query(sql::QUEUE_JOB)
                .bind(new_id()).bind(&recipe.id).bind(&recipe.name).bind(recipe.version).bind(Json(trigger)).bind(now)
                .bind(&recipe.workspace_id)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The workspace a job belongs to; `None` when there is no such job.
    pub async fn job_workspace(&self, job_id: &str) -> Result<Option<String>> {
        let sql = "SELECT workspace_id FROM jobs WHERE id = $1";
        Ok(
            on_pool!(self, pool => match sqlx::query(sql).bind(job_id).fetch_optional(pool).await? {
                Some(row) => Some(row.try_get(0)?),
                None => None,
            }),
        )
    }

    /// The recipe and version a job ran.
    pub async fn job_origin(&self, job_id: &str) -> Result<Option<(String, i64)>> {
        let sql = "SELECT recipe_id, recipe_version FROM jobs WHERE id = $1";
        Ok(
            on_pool!(self, pool => match sqlx::query(sql).bind(job_id).fetch_optional(pool).await? {
                Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
                None => None,
            }),
        )
    }

    /// Queues a rerun of a job: the same trigger, on `recipe` (the version that ran or the
    /// current one), with `reused` steps taken as already done; `reused_actions` of them are
    /// action steps, which the rerun is not charged for. Held, like any new job, when its
    /// workspace is over its task limit.
    pub async fn rerun_job(
        &self,
        original: &JobRecord,
        recipe: &StoredRecipe,
        reused: &[StepRecord],
        reused_actions: i64,
    ) -> Result<String> {
        let id = new_id();
        let now = JobTime::now();
        let insert = "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after, rerun_of, workspace_id, tasks_reused) \
                      VALUES ($1, $2, $3, $4, CASE WHEN EXISTS (SELECT 1 FROM quota_holds WHERE workspace_id = $8) THEN 'held' ELSE 'queued' END, \
                      $5, 0, $6, $6, $7, $8, $9)";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(insert)
                .bind(&id).bind(&recipe.id).bind(&recipe.name).bind(recipe.version).bind(Json(&original.trigger))
                .bind(now).bind(&original.id).bind(&recipe.workspace_id).bind(reused_actions)
                .execute(&mut *tx).await?;
            for step in reused {
                sqlx::query(sql::LOG_STEP).bind(&id).bind(step.place()).bind(Json(step)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Ends a job that has not started or is waiting, as failed with kind `stopped`. False
    /// when the job is running or over.
    pub async fn cancel_job(&self, job_id: &str, reason: &str) -> Result<bool> {
        let error = RecordError {
            step: None,
            message: reason.to_owned(),
            kind: crate::ErrorKind::Stopped,
        };
        let sql = "UPDATE jobs SET status = 'failed', error = $2, finished_at = $3, lease_owner = NULL, lease_until = NULL \
                   WHERE id = $1 AND status IN ('queued', 'waiting', 'held')";
        let progress = "SELECT record FROM job_progress WHERE job_id = $1";
        let steps = "UPDATE jobs SET steps = $2 WHERE id = $1";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(sql).bind(job_id).bind(Json(&error)).bind(JobTime::now())
                .execute(&mut *tx).await?.rows_affected();
            if done == 0 {
                return Ok(false);
            }
            // The steps a waiting job had finished become its record, in the order they ran.
            let mut finished = Vec::new();
            for row in sqlx::query(progress).bind(job_id).fetch_all(&mut *tx).await? {
                let Json(record): Json<StepRecord> = row.try_get(0)?;
                finished.push(record);
            }
            finished.sort_by_key(|record| record.started_at);
            sqlx::query(steps).bind(job_id).bind(Json(StoredSteps(&finished))).execute(&mut *tx).await?;
            sqlx::query(sql::CLEAR_PROGRESS).bind(job_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Asks a running job to stop: its process stops it before its next step. False when the
    /// job is not running.
    pub async fn request_cancel(&self, job_id: &str, reason: &str) -> Result<bool> {
        let sql = "UPDATE jobs SET cancel_reason = $2 WHERE id = $1 AND status = 'running'";
        let done = on_pool!(self, pool => sqlx::query(sql).bind(job_id).bind(reason)
            .execute(pool).await?.rows_affected());
        Ok(done > 0)
    }

    /// Why a job `owner` runs was asked to stop, if it was.
    pub async fn cancel_reason(&self, job_id: &str, owner: &str) -> Result<Option<String>> {
        let sql = "SELECT cancel_reason FROM jobs WHERE id = $1 AND lease_owner = $2 AND status = 'running'";
        let reason: Option<Option<String>> = on_pool!(self, pool => sqlx::query_scalar(sql)
            .bind(job_id).bind(owner).fetch_optional(pool).await?);
        Ok(reason.flatten())
    }

    /// The jobs `owner` runs that were asked to stop, with the reason.
    pub async fn cancel_requests(&self, owner: &str) -> Result<Vec<(String, String)>> {
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in sqlx::query(CANCEL_REQUESTS).bind(owner).fetch_all(pool).await? {
                found.push((row.try_get(0)?, row.try_get(1)?));
            }
            Ok(found)
        })
    }

    /// Notes a step that a running job finished (masked), replacing an earlier note of it,
    /// if `owner` still holds the job's lease; false (and nothing noted) when another worker
    /// took the job over.
    pub async fn log_step(
        &self,
        job_id: &str,
        path: &str,
        record: &StepRecord,
        owner: &str,
    ) -> Result<bool> {
        if let Some(writer) = &self.writer {
            let values = vec![
                text(job_id),
                text(path),
                SqlValue::Text(json_text(record)?),
                text(owner),
            ];
            let write = Write {
                statements: vec![(sql::LOG_OWNED_STEP, values)],
                guarded: true,
            };
            return writer.write(write).await;
        }
        let noted = on_pool!(self, pool => sqlx::query(sql::LOG_OWNED_STEP).bind(job_id).bind(path).bind(Json(record)).bind(owner)
            .execute(pool).await?.rows_affected());
        Ok(noted > 0)
    }

    /// The steps a job finished in earlier runs, by path.
    pub async fn job_progress(
        &self,
        job_id: &str,
    ) -> Result<std::collections::HashMap<String, StepRecord>> {
        let sql = "SELECT path, record FROM job_progress WHERE job_id = $1";
        on_pool!(self, pool => {
            let mut finished = std::collections::HashMap::new();
            for row in sqlx::query(sql).bind(job_id).fetch_all(pool).await? {
                let path: String = row.try_get(0)?;
                let Json(record): Json<StepRecord> = row.try_get(1)?;
                finished.insert(path, record);
            }
            Ok(finished)
        })
    }

    /// Puts a job to sleep until `until` (a durable `wait`), if `owner` still holds it, with
    /// the steps it finished so far (masked) as its progress. False, and nothing written,
    /// when another worker took the job over or the job was asked to stop.
    pub async fn suspend_job(
        &self,
        job_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        finished: &[StepRecord],
        actions: i64,
    ) -> Result<bool> {
        let sql = "UPDATE jobs SET status = 'waiting', run_after = $2, lease_owner = NULL, lease_until = NULL, tasks = $4 - tasks_reused \
                   WHERE id = $1 AND lease_owner = $3 AND status = 'running' AND cancel_reason IS NULL";
        let period = crate::usage::period_of(Utc::now());
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let owned = sqlx::query(self.meter_job_sql()).bind(job_id).bind(actions).bind(&period).bind(owner)
                .execute(&mut *tx).await?.rows_affected();
            // Dropping the transaction undoes the metering: a job asked to stop is not put to
            // sleep, and is metered when it ends.
            if owned == 0 || sqlx::query(sql).bind(job_id).bind(JobTime(until)).bind(owner).bind(actions)
                .execute(&mut *tx).await?.rows_affected() == 0 {
                return Ok(false);
            }
            for step in finished {
                sqlx::query(sql::LOG_STEP).bind(job_id).bind(step.place()).bind(Json(step)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// A job's record as the API shows it.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let sql = "SELECT id, recipe_name, status, output, trigger, error, created_at, started_at, finished_at, rerun_of, steps, called_by, recipe_version, tasks \
                   FROM jobs WHERE id = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(id).fetch_optional(pool).await? else {
                return Ok(None);
            };
                        Ok(Some(job_from(&row)?))
        })
    }

    /// Jobs, newest first, narrowed by a filter.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>> {
        let mut sql = String::from(
            "SELECT id, recipe_id, recipe_name, recipe_version, status, created_at, finished_at, rerun_of, called_by FROM jobs WHERE 1 = 1",
        );
        let mut binds: Vec<Bind> = Vec::new();
        let mut add = |clause: &str, value: Bind| {
            binds.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(workspace) = &filter.workspace_id {
            add(" AND workspace_id = ?", Bind::Text(workspace.clone()));
        }
        if let Some(recipe) = &filter.recipe_id {
            add(" AND recipe_id = ?", Bind::Text(recipe.clone()));
        }
        if let Some(status) = filter.status {
            add(
                " AND status = ?",
                Bind::Text(status_text(status).to_owned()),
            );
        }
        // Ids begin with their creation time: a range of them finds the jobs of a time range
        // on the primary key. The bounds are a second wider than asked, for ids made a moment
        // before their job's `created_at`; `created_at` itself then gives the exact range.
        if let Some(since) = filter.since {
            add(
                " AND id >= ?",
                Bind::Text(first_id_at(since - chrono::Duration::seconds(1))),
            );
            add(" AND created_at >= ?", Bind::Time(JobTime(since)));
        }
        if let Some(until) = filter.until {
            add(
                " AND id < ?",
                Bind::Text(first_id_at(until + chrono::Duration::seconds(1))),
            );
            add(" AND created_at < ?", Bind::Time(JobTime(until)));
        }
        if let Some(before) = &filter.before {
            add(" AND id < ?", Bind::Text(before.clone()));
        }
        let limit = filter.limit.clamp(1, 1000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        on_pool!(self, pool => {
            // Only fixed fragments and a number are joined here; every value is a bind.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for bind in &binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.as_str()),
                    Bind::Time(time) => query.bind(*time),
                };
            }
            query.fetch_all(pool).await?.iter().map(summary_from).collect()
        })
    }

    /// How many jobs have not ended, by status, and since when the oldest queued one has
    /// waited: for metrics.
    pub async fn unfinished_jobs(&self) -> Result<UnfinishedJobs> {
        on_pool!(self, pool => unfinished_from(sqlx::query(UNFINISHED_JOBS).fetch_all(pool).await?))
    }

    /// The jobs of one workspace that have not ended, by status.
    pub async fn unfinished_jobs_in(&self, workspace_id: &str) -> Result<UnfinishedJobs> {
        const SQL: &str = concat!(
            "SELECT status, COUNT(*), MIN(created_at) FROM jobs WHERE workspace_id = $1 AND ",
            unfinished!(),
            " GROUP BY status UNION ALL SELECT status, COUNT(*), MIN(created_at) FROM jobs \
             WHERE workspace_id = $1 AND status = 'held' GROUP BY status"
        );
        on_pool!(self, pool => unfinished_from(sqlx::query(SQL).bind(workspace_id).fetch_all(pool).await?))
    }
}

enum Bind {
    Text(String),
    Time(JobTime),
}

fn conflict_for(error: sqlx::Error, name: &str, webhook_path: Option<&str>) -> StoreError {
    let message = error
        .as_database_error()
        .map(|database| database.message().to_owned())
        .unwrap_or_default();
    StoreError::or_conflict(error, || {
        if message.contains("webhook_path") {
            format!(
                "the webhook path `{}` is taken by another recipe",
                webhook_path.unwrap_or_default()
            )
        } else {
            format!("a recipe named `{name}` already exists")
        }
    })
}

/// When a lease taken now for `lease` runs out.
fn lease_end(lease: Duration) -> JobTime {
    JobTime(Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60)))
}

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}

fn optional(value: Option<String>) -> SqlValue {
    value.map_or(SqlValue::Null, SqlValue::Text)
}

/// A job's output as the SQLite writer binds it: none (SQL `NULL`) when it has none.
fn stored_output(output: &Value) -> Result<SqlValue> {
    match output {
        Value::Null => Ok(SqlValue::Null),
        output => Ok(SqlValue::Text(json_text(output)?)),
    }
}

/// A job's output as sqlx binds it: none (SQL `NULL`) when it has none.
fn output_or_none(output: &Value) -> Option<Json<&Value>> {
    (!output.is_null()).then_some(Json(output))
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// The smallest id made at `time`: ids are UUIDv7, whose first 48 bits are the Unix time in
/// milliseconds, written as the first 12 hex digits.
pub(crate) fn first_id_at(time: DateTime<Utc>) -> String {
    let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let hex = format!("{millis:012x}");
    format!("{}-{}-0000-0000-000000000000", &hex[..8], &hex[8..])
}

/// Ids that sort by creation time, so that paging by id is paging by time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "queued",
        JobStatus::Held => "held",
        JobStatus::Running => "running",
        JobStatus::Waiting => "waiting",
        JobStatus::Succeeded => "succeeded",
        JobStatus::Failed => "failed",
    }
}

pub fn parse_status(text: &str) -> Option<JobStatus> {
    Some(match text {
        "queued" => JobStatus::Queued,
        "held" => JobStatus::Held,
        "running" => JobStatus::Running,
        "waiting" => JobStatus::Waiting,
        "succeeded" => JobStatus::Succeeded,
        "failed" => JobStatus::Failed,
        _ => return None,
    })
}

/// Counts by status, from rows of status, count and oldest creation time.
fn unfinished_from<R: Row>(rows: Vec<R>) -> Result<UnfinishedJobs>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> JobTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let mut unfinished = UnfinishedJobs::default();
    for row in rows {
        let status: String = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        let oldest: JobTime = row.try_get(2)?;
        match status_from(&status)? {
            JobStatus::Queued => {
                unfinished.queued = count;
                unfinished.oldest_queued = Some(oldest.into());
            }
            JobStatus::Running => unfinished.running = count,
            JobStatus::Waiting => unfinished.waiting = count,
            JobStatus::Held => unfinished.held = count,
            JobStatus::Succeeded | JobStatus::Failed => {}
        }
    }
    Ok(unfinished)
}

pub(crate) fn status_from(text: &str) -> Result<JobStatus> {
    parse_status(text).ok_or_else(|| StoreError::Corrupt(format!("unknown job status `{text}`")))
}

pub(crate) fn user_from<R: Row>(row: &R) -> Result<User>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(User {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        name: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
}

fn recipe_from<R: Row>(row: &R) -> Result<StoredRecipe>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(StoredRecipe {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        enabled: row.try_get(2)?,
        version: row.try_get(3)?,
        source: row.try_get(4)?,
        webhook_path: row.try_get(5)?,
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        workspace_id: row.try_get(8)?,
    })
}

fn version_from<R: Row>(row: &R) -> Result<RecipeVersion>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(RecipeVersion {
        version: row.try_get(0)?,
        source: row.try_get(1)?,
        created_at: row.try_get(2)?,
        workspace_id: row.try_get(3)?,
    })
}

fn claimed_from_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<ClaimedJob> {
    let Json(trigger): Json<Value> = row.try_get(3)?;
    Ok(ClaimedJob {
        id: row.try_get(0)?,
        recipe_id: row.try_get(1)?,
        recipe_version: row.try_get(2)?,
        trigger,
        attempt: row.try_get(4)?,
    })
}

fn claimed_from_postgres(row: &sqlx::postgres::PgRow) -> Result<ClaimedJob> {
    let Json(trigger): Json<Value> = row.try_get(3)?;
    Ok(ClaimedJob {
        id: row.try_get(0)?,
        recipe_id: row.try_get(1)?,
        recipe_version: row.try_get(2)?,
        trigger,
        attempt: row.try_get(4)?,
    })
}

fn job_from<R: Row>(row: &R) -> Result<JobRecord>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Json<Value>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Json<Value>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Json<RecordError>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> JobTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<JobTime>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Json<Vec<StepRecord>>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let status: String = row.try_get(2)?;
    let output: Option<Json<Value>> = row.try_get(3)?;
    let steps: Option<Json<Vec<StepRecord>>> = row.try_get(10)?;
    let Json(trigger): Json<Value> = row.try_get(4)?;
    let error: Option<Json<RecordError>> = row.try_get(5)?;
    let created_at: JobTime = row.try_get(6)?;
    let started_at: Option<JobTime> = row.try_get(7)?;
    let finished_at: Option<JobTime> = row.try_get(8)?;
    let status = status_from(&status)?;
    Ok(JobRecord {
        id: row.try_get(0)?,
        recipe: row.try_get(1)?,
        recipe_version: Some(row.try_get(12)?),
        status,
        output: output.map(|Json(value)| value).unwrap_or(Value::Null),
        trigger,
        error: error.map(|Json(error)| error),
        started_at: started_at.unwrap_or(created_at).into(),
        finished_at: job_time::optional(finished_at),
        steps: steps.map(|Json(steps)| steps).unwrap_or_default(),
        rerun_of: row.try_get(9)?,
        called_by: row.try_get(11)?,
        held: (status == JobStatus::Held).then(|| "quota".to_owned()),
        tasks: row.try_get(13)?,
    })
}

fn summary_from<R: Row>(row: &R) -> Result<JobSummary>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> JobTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<JobTime>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let status: String = row.try_get(4)?;
    let created_at: JobTime = row.try_get(5)?;
    let finished_at: Option<JobTime> = row.try_get(6)?;
    Ok(JobSummary {
        id: row.try_get(0)?,
        recipe_id: row.try_get(1)?,
        recipe: row.try_get(2)?,
        recipe_version: row.try_get(3)?,
        status: status_from(&status)?,
        created_at: created_at.into(),
        finished_at: job_time::optional(finished_at),
        rerun_of: row.try_get(7)?,
        called_by: row.try_get(8)?,
    })
}
