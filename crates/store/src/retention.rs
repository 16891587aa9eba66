//! Retention of job history: each workspace's settings, and the deletions that keep to them,
//! in small batches so that no deletion holds the database for long.

use chrono::{DateTime, Utc};
use sqlx::Row;
use std::time::Duration;

use crate::Store;
use crate::db::{Backend, Result, first_id_at, on_pool};
use crate::job_time::JobTime;

/// A workspace's rules for its job history; `None`: the server's default (for `keep`), no
/// cap (for `max_history_bytes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionSettings {
    pub keep: Option<Duration>,
    pub max_history_bytes: Option<i64>,
}

/// How much history a recipe has: its jobs, and when the oldest was made.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryHeld {
    pub recipe_id: String,
    pub recipe_name: String,
    pub jobs: i64,
    pub oldest: Option<DateTime<Utc>>,
}

/// The stored size of an ended job: its event, output, error and steps, as written.
macro_rules! job_bytes {
    () => {
        "CAST(LENGTH(CAST(trigger AS TEXT)) + COALESCE(LENGTH(CAST(output AS TEXT)), 0) + COALESCE(LENGTH(CAST(error AS TEXT)), 0) + COALESCE(LENGTH(CAST(steps AS TEXT)), 0) AS BIGINT)"
    };
}

/// Ended jobs, the only ones retention deletes: a queued, running or waiting job is never
/// cut short.
macro_rules! ended {
    () => {
        "status IN ('succeeded', 'failed')"
    };
}

impl Store {
    pub async fn retention_settings(&self, workspace_id: &str) -> Result<RetentionSettings> {
        let sql =
            "SELECT keep_secs, max_history_bytes FROM retention_settings WHERE workspace_id = $1";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(workspace_id).fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => settings_from(row.try_get(0)?, row.try_get(1)?),
                None => RetentionSettings::default(),
            })
        })
    }

    pub async fn set_retention_settings(
        &self,
        workspace_id: &str,
        settings: &RetentionSettings,
    ) -> Result<()> {
        let sql = "INSERT INTO retention_settings (workspace_id, keep_secs, max_history_bytes, updated_at) \
                   VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO UPDATE SET \
                   keep_secs = excluded.keep_secs, max_history_bytes = excluded.max_history_bytes, updated_at = excluded.updated_at";
        let keep = settings
            .keep
            .map(|keep| i64::try_from(keep.as_secs()).unwrap_or(i64::MAX));
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(keep).bind(settings.max_history_bytes)
            .bind(Utc::now()).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Every workspace's id with its retention settings.
    pub async fn workspaces_with_retention(&self) -> Result<Vec<(String, RetentionSettings)>> {
        let sql = "SELECT w.id, r.keep_secs, r.max_history_bytes FROM workspaces w \
                   LEFT JOIN retention_settings r ON r.workspace_id = w.id ORDER BY w.id";
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?.iter()
            .map(|row| Ok((row.try_get(0)?, settings_from(row.try_get(1)?, row.try_get(2)?))))
            .collect())
    }

    /// Deletes at most `batch` ended jobs of a recipe made before `before`, oldest first;
    /// how many it deleted. Their step records go with them.
    pub async fn delete_jobs_of_recipe_before(
        &self,
        recipe_id: &str,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64> {
        let sql = concat!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE recipe_id = $1 AND id < $2 AND created_at < $3 AND ",
            ended!(),
            " ORDER BY id LIMIT $4)"
        );
        let (bound, time) = time_bounds(before);
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(recipe_id).bind(&bound).bind(time).bind(batch)
            .execute(pool).await?.rows_affected()),
        )
    }

    /// Deletes at most `batch` ended jobs of a workspace's deleted recipes made before
    /// `before`; how many it deleted.
    pub async fn delete_orphan_jobs_before(
        &self,
        workspace_id: &str,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64> {
        let sql = concat!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE workspace_id = $1 AND id < $2 AND created_at < $3 AND ",
            ended!(),
            " AND recipe_id NOT IN (SELECT id FROM recipes) ORDER BY id LIMIT $4)"
        );
        let (bound, time) = time_bounds(before);
        Ok(
            on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(&bound).bind(time).bind(batch)
            .execute(pool).await?.rows_affected()),
        )
    }

    /// How many bytes a workspace's ended jobs take, as written.
    pub async fn history_bytes(&self, workspace_id: &str) -> Result<i64> {
        let sql = concat!(
            "SELECT CAST(COALESCE(SUM(",
            job_bytes!(),
            "), 0) AS BIGINT) FROM jobs WHERE workspace_id = $1 AND ",
            ended!()
        );
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(workspace_id).fetch_one(pool).await?.try_get(0)?))
    }

    /// Deletes a workspace's oldest ended jobs, at most `batch`, until about `bytes` are
    /// freed; the jobs deleted and the bytes they held.
    pub async fn delete_oldest_jobs(
        &self,
        workspace_id: &str,
        bytes: i64,
        batch: i64,
    ) -> Result<(u64, i64)> {
        let oldest = concat!(
            "SELECT id, ",
            job_bytes!(),
            " FROM jobs WHERE workspace_id = $1 AND ",
            ended!(),
            " ORDER BY id LIMIT $2"
        );
        let delete = "DELETE FROM jobs WHERE id = $1";
        on_pool!(self, pool => {
            let rows = sqlx::query(oldest).bind(workspace_id).bind(batch).fetch_all(pool).await?;
            let mut tx = pool.begin().await?;
            let (mut deleted, mut freed) = (0, 0_i64);
            for row in rows {
                if freed >= bytes {
                    break;
                }
                let id: String = row.try_get(0)?;
                let size: i64 = row.try_get(1)?;
                deleted += sqlx::query(delete).bind(&id).execute(&mut *tx).await?.rows_affected();
                freed += size;
            }
            tx.commit().await?;
            Ok((deleted, freed))
        })
    }

    /// How much history each of a workspace's recipes (deleted ones included) has.
    pub async fn history_held(&self, workspace_id: &str) -> Result<Vec<HistoryHeld>> {
        let sql = "SELECT recipe_id, MAX(recipe_name), COUNT(*), MIN(created_at) FROM jobs \
                   WHERE workspace_id = $1 GROUP BY recipe_id ORDER BY MAX(recipe_name)";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?.iter().map(|row| {
            let oldest: Option<JobTime> = row.try_get(3)?;
            Ok(HistoryHeld {
                recipe_id: row.try_get(0)?,
                recipe_name: row.try_get(1)?,
                jobs: row.try_get(2)?,
                oldest: oldest.map(|time| time.0),
            })
        }).collect())
    }

    /// Gives back the space that deletions freed, and leaves no copy of deleted rows in the
    /// write-ahead log: on SQLite the freed pages go back to the file system (incremental
    /// vacuum, when the database was made with it) and the WAL is emptied. PostgreSQL's
    /// autovacuum does its part by itself.
    pub async fn reclaim_space(&self) -> Result<()> {
        if let Backend::Sqlite(pool) = &*self.backend {
            sqlx::query("PRAGMA incremental_vacuum")
                .execute(pool)
                .await?;
            // A checkpoint that readers hold up says so (`busy`); it is tried again shortly.
            for _ in 0..50 {
                let busy: i64 = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(pool)
                    .await?
                    .try_get(0)?;
                if busy == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}

fn settings_from(keep_secs: Option<i64>, max_history_bytes: Option<i64>) -> RetentionSettings {
    RetentionSettings {
        keep: keep_secs.map(|secs| Duration::from_secs(u64::try_from(secs).unwrap_or(0))),
        max_history_bytes,
    }
}

/// A time bound as the job table's key and its `created_at`: ids begin with their creation
/// time, so the key's range finds the jobs (a second wider, for ids made a moment before
/// their `created_at`), and `created_at` then gives the exact bound.
fn time_bounds(before: DateTime<Utc>) -> (String, JobTime) {
    (
        first_id_at(before + chrono::Duration::seconds(1)),
        JobTime(before),
    )
}
