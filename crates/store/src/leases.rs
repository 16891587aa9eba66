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
