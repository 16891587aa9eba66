//! The state of poll triggers: each one's cursor and the keys of the items that made jobs.
//! A poll's jobs, its seen keys and its new cursor are committed together, so that an item
//! makes one job once, whatever crashes or restarts happen around it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;

use crate::db::{Backend, Result, StoreError, on_pool, sql};
use crate::job_time::JobTime;
use crate::{Store, StoredRecipe, new_id};

/// Most item keys kept per poll trigger; older ones are forgotten. The cursor keeps a source
/// from sending those items again; the keys catch the overlap at its edge.
pub const SEEN_KEYS_KEPT: i64 = 10_000;

/// What a poll trigger has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PollState {
    pub cursor: Option<Value>,
    /// Polls committed; the next commit must name this number.
    pub polls: i64,
    pub polled_at: DateTime<Utc>,
}

impl Store {
    pub async fn poll_state(&self, recipe_id: &str) -> Result<Option<PollState>> {
        let query = "SELECT cursor, polls, polled_at FROM poll_state WHERE recipe_id = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(query).bind(recipe_id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let cursor: Option<String> = row.try_get(0)?;
            let cursor = cursor
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|error| StoreError::Corrupt(format!("poll cursor: {error}")))?;
            Ok(Some(PollState { cursor, polls: row.try_get(1)?, polled_at: row.try_get(2)? }))
        })
    }

    /// Commits one poll: a job for each item whose key was not seen before, the keys, and the
    /// new cursor, all or nothing. `after` is the number of polls the caller read (`None`
    /// for a trigger that never polled); when another process committed a poll since, nothing
    /// is written and `None` comes back. Otherwise the ids of the jobs queued.
    pub async fn commit_poll(
        &self,
        recipe: &StoredRecipe,
        after: Option<i64>,
        cursor: &Value,
        items: &[(String, Value)],
    ) -> Result<Option<Vec<String>>> {
        let polls = after.map_or(1, |count| count + 1);
        let cursor_text = (!cursor.is_null()).then(|| cursor.to_string());
        let first = "INSERT INTO poll_state (recipe_id, cursor, polls, polled_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (recipe_id) DO NOTHING";
        let next = "UPDATE poll_state SET cursor = $2, polls = $3, polled_at = $4 WHERE recipe_id = $1 AND polls = $5";
        let see = "INSERT INTO poll_seen (recipe_id, item_key, seen) VALUES ($1, $2, $3) \
                   ON CONFLICT (recipe_id, item_key) DO NOTHING";
        // The poll of the SEEN_KEYS_KEPT-th newest key, when there are more keys than that.
        let oldest_kept =
            "SELECT seen FROM poll_seen WHERE recipe_id = $1 ORDER BY seen DESC LIMIT 1 OFFSET $2";
        let forget = "DELETE FROM poll_seen WHERE recipe_id = $1 AND seen < $2";
        let now = JobTime::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = match after {
                None => sqlx::query(first).bind(&recipe.id).bind(&cursor_text).bind(polls).bind(Utc::now())
                    .execute(&mut *tx).await?.rows_affected(),
                Some(count) => sqlx::query(next).bind(&recipe.id).bind(&cursor_text).bind(polls).bind(Utc::now()).bind(count)
                    .execute(&mut *tx).await?.rows_affected(),
            };
            if moved == 0 {
                return Ok(None);
            }
            let mut jobs = Vec::new();
            for (key, item) in items {
                let new = sqlx::query(see).bind(&recipe.id).bind(key).bind(polls)
                    .execute(&mut *tx).await?.rows_affected();
                if new == 0 {
                    continue;
                }
                let id = new_id();
                sqlx::query(sql::QUEUE_JOB)
                    .bind(&id).bind(&recipe.id).bind(&recipe.name).bind(recipe.version).bind(Json(item)).bind(now)
                    .bind(&recipe.workspace_id)
                    .execute(&mut *tx).await?;
                jobs.push(id);
            }
            // Keys are forgotten by age, a poll at a time: those of polls long past go.
            if polls % 100 == 0 {
                let oldest_kept: Option<i64> = sqlx::query(oldest_kept).bind(&recipe.id).bind(SEEN_KEYS_KEPT)
                    .fetch_optional(&mut *tx).await?.map(|row| row.try_get(0)).transpose()?;
                if let Some(oldest) = oldest_kept {
                    sqlx::query(forget).bind(&recipe.id).bind(oldest).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(Some(jobs))
        })
    }

    /// Forgets a poll trigger's cursor and seen keys: its next poll starts from the recipe's
    /// initial cursor, and items seen before make jobs again. True when there was state.
    pub async fn reset_poll(&self, recipe_id: &str) -> Result<bool> {
        let state = "DELETE FROM poll_state WHERE recipe_id = $1";
        let seen = "DELETE FROM poll_seen WHERE recipe_id = $1";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let had = sqlx::query(state).bind(recipe_id).execute(&mut *tx).await?.rows_affected();
            sqlx::query(seen).bind(recipe_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(had > 0)
        })
    }

    /// How many item keys a poll trigger remembers.
    pub async fn poll_seen_count(&self, recipe_id: &str) -> Result<i64> {
        let query = "SELECT COUNT(*) FROM poll_seen WHERE recipe_id = $1";
        on_pool!(self, pool => Ok(sqlx::query(query).bind(recipe_id).fetch_one(pool).await?.try_get(0)?))
    }
}
