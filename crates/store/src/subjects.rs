//! A data subject's values in job history: which jobs hold them, and those jobs' stored
//! payloads, read and written back whole once the values are erased.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;

use crate::Store;
use crate::db::{Backend, Result, on_pool};
use crate::job_time::JobTime;

/// A job whose stored data holds what was searched for.
#[derive(Debug, Clone, PartialEq)]
pub struct JobHolding {
    pub id: String,
    pub recipe_name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// What a job stores of what flowed through it, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPayloads {
    pub id: String,
    pub trigger: Value,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub steps: Option<Value>,
}

/// `text` as a `LIKE` pattern that finds it anywhere, with `\` as the escape.
fn anywhere(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// A workspace's jobs whose stored event, output, error or steps hold `text` as it is
    /// written in JSON (escapes included), whatever its case; by id, after `after`, at most
    /// `limit`. The database narrows the jobs down; the caller checks each one.
    pub async fn jobs_holding(
        &self,
        workspace_id: &str,
        text: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<JobHolding>> {
        let sql = "SELECT id, recipe_name, status, created_at FROM jobs \
                   WHERE workspace_id = $1 AND id > $2 AND ( \
                   lower(CAST(trigger AS TEXT)) LIKE lower($3) ESCAPE '\\' \
                   OR lower(CAST(output AS TEXT)) LIKE lower($3) ESCAPE '\\' \
                   OR lower(CAST(error AS TEXT)) LIKE lower($3) ESCAPE '\\' \
                   OR lower(CAST(steps AS TEXT)) LIKE lower($3) ESCAPE '\\' \
                   OR EXISTS (SELECT 1 FROM job_progress p WHERE p.job_id = jobs.id \
                              AND lower(CAST(p.record AS TEXT)) LIKE lower($3) ESCAPE '\\')) \
                   ORDER BY id LIMIT $4";
        let pattern = anywhere(text);
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(after).bind(&pattern).bind(limit)
            .fetch_all(pool).await?.iter().map(|row| {
                let created_at: JobTime = row.try_get(3)?;
                Ok(JobHolding {
                    id: row.try_get(0)?,
                    recipe_name: row.try_get(1)?,
                    status: row.try_get(2)?,
                    created_at: created_at.0,
                })
            }).collect())
    }

    /// A job's stored payloads (for a job that has not ended: its raw event, and no steps
    /// yet); `None` when there is no such job.
    pub async fn job_payloads(&self, id: &str) -> Result<Option<JobPayloads>> {
        let sql = "SELECT id, trigger, output, error, steps FROM jobs WHERE id = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let Json(trigger): Json<Value> = row.try_get(1)?;
            let output: Option<Json<Value>> = row.try_get(2)?;
            let error: Option<Json<Value>> = row.try_get(3)?;
            let steps: Option<Json<Value>> = row.try_get(4)?;
            Ok(Some(JobPayloads {
                id: row.try_get(0)?,
                trigger,
                output: output.map(|Json(value)| value),
                error: error.map(|Json(value)| value),
                steps: steps.map(|Json(value)| value),
            }))
        })
    }

    /// Writes an ended job's payloads back, in one transaction for all of `jobs`; how many
    /// were written (a job deleted or taken up again meanwhile is left alone).
    pub async fn rewrite_ended_jobs(&self, jobs: &[JobPayloads]) -> Result<u64> {
        let sql = "UPDATE jobs SET trigger = $2, output = $3, error = $4, steps = $5 \
                   WHERE id = $1 AND status IN ('succeeded', 'failed')";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut written = 0;
            for job in jobs {
                written += sqlx::query(sql)
                    .bind(&job.id)
                    .bind(Json(&job.trigger))
                    .bind(job.output.as_ref().map(Json))
                    .bind(job.error.as_ref().map(Json))
                    .bind(job.steps.as_ref().map(Json))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(written)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::anywhere;

    #[test]
    fn like_patterns_take_text_literally() {
        assert_eq!(anywhere("a_b%c\\d"), "%a\\_b\\%c\\\\d%");
    }
}
