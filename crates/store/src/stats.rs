//! Figures of a workspace's job history for its dashboard: jobs per hour by outcome, the
//! recipes that fail most, and each recipe's last job. Counted in the database, so that a
//! week of a busy workspace is a few hundred rows to read, not millions.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{Backend, Result, on_pool, status_from};
use crate::job_time::JobTime;
use crate::{JobStatus, Store};

/// The jobs created in one hour, by outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HourOfJobs {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    /// Not ended yet: queued, running or waiting.
    pub unfinished: i64,
}

/// A recipe with failed jobs in a period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailingRecipe {
    pub recipe_id: String,
    pub recipe_name: String,
    pub failed: i64,
    pub total: i64,
}

/// The newest job of a recipe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastJob {
    pub recipe_id: String,
    pub job_id: String,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// A workspace's jobs created since `since`, counted by hour and outcome, oldest hour
    /// first; hours without jobs are left out.
    pub async fn jobs_per_hour(
        &self,
        workspace_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<HourOfJobs>> {
        macro_rules! per_hour {
            ($hour:literal) => {
                concat!(
                    "SELECT ",
                    $hour,
                    " AS hour, status, COUNT(*) FROM jobs \
                     WHERE created_at >= $1 AND workspace_id = $2 GROUP BY hour, status ORDER BY hour"
                )
            };
        }
        // SQLite keeps job times as microseconds, PostgreSQL as timestamptz.
        let sql = match &*self.backend {
            Backend::Sqlite(_) => per_hour!("created_at / 3600000000"),
            Backend::Postgres(_) => {
                per_hour!("CAST(floor(extract(epoch FROM created_at) / 3600) AS BIGINT)")
            }
        };
        let rows: Vec<(i64, String, i64)> = on_pool!(self, pool => {
            let mut rows = Vec::new();
            for row in sqlx::query(sql).bind(JobTime(since)).bind(workspace_id).fetch_all(pool).await? {
                rows.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
            }
            rows
        });
        let mut hours: Vec<HourOfJobs> = Vec::new();
        for (hour, status, count) in rows {
            let start = DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default();
            if hours.last().is_none_or(|last| last.hour != start) {
                hours.push(HourOfJobs {
                    hour: start,
                    succeeded: 0,
                    failed: 0,
                    unfinished: 0,
                });
            }
            if let Some(last) = hours.last_mut() {
                match status_from(&status)? {
                    JobStatus::Succeeded => last.succeeded += count,
                    JobStatus::Failed => last.failed += count,
                    _ => last.unfinished += count,
                }
            }
        }
        Ok(hours)
    }

    /// The recipes of a workspace with the most failed jobs created since `since`, most
    /// first, at most `limit`.
    pub async fn failing_recipes(
        &self,
        workspace_id: &str,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<FailingRecipe>> {
        let sql = "SELECT recipe_id, MAX(recipe_name), \
                   SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed, COUNT(*) \
                   FROM jobs WHERE created_at >= $1 AND workspace_id = $2 \
                   GROUP BY recipe_id HAVING SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) > 0 \
                   ORDER BY failed DESC, recipe_id LIMIT $3";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(JobTime(since))
            .bind(workspace_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok(FailingRecipe {
                recipe_id: row.try_get(0)?,
                recipe_name: row.try_get(1)?,
                failed: row.try_get(2)?,
                total: row.try_get(3)?,
            }))
            .collect())
    }

    /// The newest job of each recipe of a workspace that has run.
    pub async fn last_jobs(&self, workspace_id: &str) -> Result<Vec<LastJob>> {
        let sql = "SELECT j.recipe_id, j.id, j.status, j.created_at FROM recipes r \
                   JOIN jobs j ON j.id = (SELECT id FROM jobs WHERE recipe_id = r.id \
                   AND workspace_id = r.workspace_id ORDER BY created_at DESC, id DESC LIMIT 1) \
                   WHERE r.workspace_id = $1";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(workspace_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok(LastJob {
                recipe_id: row.try_get(0)?,
                job_id: row.try_get(1)?,
                status: status_from(&row.try_get::<String, _>(2)?)?,
                created_at: row.try_get::<JobTime, _>(3)?.0,
            }))
            .collect())
    }
}
