//! Leases on work that one process of the platform does at a time. A lease is taken for a
//! while and renewed by its holder; a process that dies stops renewing, and another takes the
//! work over once the lease has run out. Both backends keep them in one table, so that the
//! same rule holds on SQLite and PostgreSQL.

use chrono::Utc;
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
}
