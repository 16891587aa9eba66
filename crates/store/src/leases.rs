//! Leases on work that one process of the platform does at a time. A lease is taken for a
//! while and renewed by its holder; a process that dies stops renewing, and another takes the
//! work over once the lease has run out. Both backends keep them in one table, so that the
//! same rule holds on SQLite and PostgreSQL.

use chrono::Utc;
use sqlx::Row;
use std::time::Duration;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

impl Store {
    /// Takes or renews the lease `name` for `holder`, for `period` from now. True when
    /// `holder` has it now; false while another holder's lease runs.
    pub async fn take_lease(&self, name: &str, holder: &str, period: Duration) -> Result<bool> {
        let now = Utc::now().timestamp_millis();
        let until = now.saturating_add(i64::try_from(period.as_millis()).unwrap_or(i64::MAX));
        let take = "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
                    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
                    WHERE leases.holder = excluded.holder OR leases.until_ms < $4";
        on_pool!(self, pool => {
            let taken = sqlx::query(take).bind(name).bind(holder).bind(until).bind(now)
                .execute(pool).await?.rows_affected();
            Ok(taken == 1)
        })
    }

    /// Gives up the lease `name` if `holder` has it, so that another process may take the
    /// work at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let release = "DELETE FROM leases WHERE name = $1 AND holder = $2";
        on_pool!(self, pool => {
            sqlx::query(release).bind(name).bind(holder).execute(pool).await?;
            Ok(())
        })
    }

    /// Renews `holder`'s lease as a live process of the platform, for `period`, and counts
    /// the live processes (this one included). Processes dead for over an hour are forgotten.
    pub async fn processes_alive(&self, holder: &str, period: Duration) -> Result<usize> {
        let name = format!("{PROCESS_PREFIX}{holder}");
        self.take_lease(&name, holder, period).await?;
        let now = Utc::now().timestamp_millis();
        let forget = "DELETE FROM leases WHERE name LIKE $1 AND until_ms < $2";
        let count = "SELECT COUNT(*) FROM leases WHERE name LIKE $1 AND until_ms >= $2";
        let pattern = format!("{PROCESS_PREFIX}%");
        on_pool!(self, pool => {
            sqlx::query(forget).bind(&pattern).bind(now - 3_600_000).execute(pool).await?;
            let live: i64 = sqlx::query(count).bind(&pattern).bind(now)
                .fetch_one(pool).await?.try_get(0)?;
            Ok(usize::try_from(live).unwrap_or(1).max(1))
        })
    }

    /// Takes `holder` off the live processes, as it stops.
    pub async fn process_stopped(&self, holder: &str) -> Result<()> {
        self.release_lease(&format!("{PROCESS_PREFIX}{holder}"), holder)
            .await
    }
}

/// The names of the leases that say a process is alive.
const PROCESS_PREFIX: &str = "process ";

/// A process's bid to be the one that does some work of the platform (`scheduler`): on
/// PostgreSQL a session advisory lock, held by a connection of its own, which PostgreSQL lets
/// go the moment that connection ends (the process died or was cut off); on SQLite the lease
/// of that name.
pub struct Leadership {
    store: Store,
    name: String,
    holder: String,
    period: Duration,
    /// PostgreSQL: the connection that holds, or tries for, the lock.
    connection: Option<sqlx::postgres::PgConnection>,
    leading: bool,
}

/// Settings of the lock's session. PostgreSQL ends it, and lets the lock go, when its
/// machine vanishes without closing the connection (keepalives unanswered for about 11 s) or
/// when the process hangs and stops asking (30 s idle).
const LOCK_SESSION: [&str; 4] = [
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET idle_session_timeout = '30s'",
];
/// How long a look at the lock may take: one that takes longer (a connection half open) is
/// taken as the lead lost, and its connection is dropped.
const LOCK_LOOK_WAIT: Duration = Duration::from_secs(3);

impl Store {
    /// This process's bid for the work `name`, as `holder`; `period` is how long a lease
    /// lasts without renewal on SQLite. Nothing is taken until [`Leadership::hold`].
    pub fn leadership(&self, name: &str, holder: &str, period: Duration) -> Leadership {
        Leadership {
            store: self.clone(),
            name: name.to_owned(),
            holder: holder.to_owned(),
            period,
            connection: None,
            leading: false,
        }
    }
}

impl Leadership {
    /// Takes the lead when nobody has it, or keeps it: true while this process leads. Call
    /// it before each round of the work: a lead lost (the lock's connection broke) is seen
    /// here, and the work stops until it is taken again.
    pub async fn hold(&mut self) -> Result<bool> {
        let held = match &*self.store.backend {
            Backend::Sqlite(_) => {
                self.store
                    .take_lease(&self.name, &self.holder, self.period)
                    .await
            }
            Backend::Postgres(_) => {
                match tokio::time::timeout(LOCK_LOOK_WAIT, self.hold_lock()).await {
                    Ok(held) => held,
                    Err(_) => {
                        self.connection = None;
                        Err(crate::StoreError::Unreachable(
                            "PostgreSQL did not answer the look at the leader's lock in time"
                                .to_owned(),
                        ))
                    }
                }
            }
        };
        self.leading = matches!(held, Ok(true));
        held
    }

    async fn hold_lock(&mut self) -> Result<bool> {
        use sqlx::Connection;
        if self.leading {
            let alive = match self.connection.as_mut() {
                Some(connection) => connection.ping().await.is_ok(),
                None => false,
            };
            if alive {
                return Ok(true);
            }
            // The session that held the lock is gone, and the lock with it.
            self.connection = None;
        }
        let key = self.lock_key();
        let connection = match self.connection.as_mut() {
            Some(connection) => connection,
            None => self.connection.insert(self.lock_session().await?),
        };
        let taken = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(&key)
            .fetch_one(&mut *connection)
            .await;
        match taken {
            Ok(taken) => Ok(taken),
            Err(error) => {
                self.connection = None;
                Err(error.into())
            }
        }
    }

    /// A connection of its own for the lock, set to end soon when its process is gone.
    async fn lock_session(&self) -> Result<sqlx::postgres::PgConnection> {
        use sqlx::Connection;
        let Backend::Postgres(pool) = &*self.store.backend else {
            unreachable!("locks are PostgreSQL's")
        };
        let options = pool.connect_options();
        let mut connection = sqlx::postgres::PgConnection::connect_with(&options).await?;
        for setting in LOCK_SESSION {
            // `idle_session_timeout` is PostgreSQL 14's; older servers keep the keepalives.
            if let Err(error) = sqlx::query(setting).execute(&mut connection).await {
                tracing::debug!(%error, setting, "a setting of the lock's session is not taken");
            }
        }
        Ok(connection)
    }

    /// The lock's name within the database: the schema is part of it, so that installations
    /// sharing a database in schemas of their own each have their own.
    fn lock_key(&self) -> String {
        let schema = self
            .store
            .platform
            .as_ref()
            .map_or("public", |platform| platform.schema.as_str());
        format!("weft {schema} {}", self.name)
    }

    /// Whether this process led at the last [`Leadership::hold`].
    pub fn leading(&self) -> bool {
        self.leading
    }

    /// Gives the lead up, so that another process takes it at once.
    pub async fn give_up(&mut self) {
        self.leading = false;
        match self.connection.take() {
            Some(connection) => {
                use sqlx::Connection;
                // Ending the session lets the lock go.
                let _ = connection.close().await;
            }
            None => {
                if let Err(error) = self.store.release_lease(&self.name, &self.holder).await {
                    tracing::debug!(%error, "cannot give a lease up; it runs out by itself");
                }
            }
        }
    }
}
