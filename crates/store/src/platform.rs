//! What the processes of one platform tell each other through PostgreSQL: that jobs were
//! queued (so that idle workers look at once instead of at their next poll), that a job's
//! answer was left for the process whose caller waits for it, and that a poll trigger was
//! saved or reset (so that the leader polls it at once). Both are `NOTIFY`s on channels
//! named after the store's schema, so that installations sharing a database in schemas of
//! their own do not wake each other. On SQLite (one process) there is nothing to tell.
//!
//! Notifications are a hint, never the only way: a listener that lost its connection misses
//! what was sent meanwhile, so every listener also looks on a timer.

use serde_json::Value;
use sha2::Digest;
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// How long a listener waits before listening again after its connection failed.
const LISTEN_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// The PostgreSQL side of a store shared by several processes.
pub(crate) struct Platform {
    /// The schema the store's tables are in, which names the platform's locks and channels.
    pub(crate) schema: String,
    jobs_channel: String,
    answers_channel: String,
    polls_channel: String,
    /// Asks the announcer to tell the other processes that jobs were queued.
    announce: Arc<Notify>,
    announcer: OnceLock<()>,
}

impl Platform {
    pub(crate) fn new(schema: String) -> Platform {
        // Channel names are identifiers of at most 63 bytes; a schema name may be as long.
        let tag = hex::encode(&sha2::Sha256::digest(schema.as_bytes())[..8]);
        Platform {
            jobs_channel: format!("weft_jobs_{tag}"),
            answers_channel: format!("weft_answers_{tag}"),
            polls_channel: format!("weft_polls_{tag}"),
            schema,
            announce: Arc::new(Notify::new()),
            announcer: OnceLock::new(),
        }
    }
}

/// Something another process of the platform said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformEvent {
    /// Jobs were queued.
    JobsQueued,
    /// The answer of this job was left for the process waiting for it.
    Answered(String),
    /// This recipe's poll trigger is to be polled at once.
    PollDue(String),
    /// The listener was cut off and listens again: whatever was said meanwhile is lost, so
    /// look now.
    Resumed,
}

/// What this process listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// Queued jobs: for processes that run jobs.
    pub jobs: bool,
    /// Answers of jobs run elsewhere: for processes whose callers wait for jobs.
    pub answers: bool,
    /// Polls to make at once: for processes that may lead.
    pub polls: bool,
}

/// A listener on the platform's channels, with a connection of its own.
pub struct PlatformEvents {
    /// A pool of one connection: the listener opens it again when it is lost.
    pool: PgPool,
    channels: Vec<String>,
    jobs_channel: String,
    polls_channel: String,
    listener: Option<PgListener>,
}

impl Store {
    /// True when several processes may share this store (PostgreSQL): what one accepts,
    /// another may run.
    pub fn is_shared(&self) -> bool {
        self.platform.is_some()
    }

    /// Tells the other processes that jobs were queued. The telling happens beside the
    /// caller, after its commit; calls made while one is being sent are sent as one, so that
    /// a burst of jobs costs a few notifications. Nothing to do on SQLite.
    pub fn announce_jobs(&self) {
        let (Backend::Postgres(pool), Some(platform)) = (&*self.backend, &self.platform) else {
            return;
        };
        platform.announcer.get_or_init(|| {
            let (pool, announce) = (pool.clone(), Arc::clone(&platform.announce));
            let channel = platform.jobs_channel.clone();
            tokio::spawn(async move {
                loop {
                    announce.notified().await;
                    let sent = sqlx::query("SELECT pg_notify($1, '')")
                        .bind(&channel)
                        .execute(&pool)
                        .await;
                    if let Err(error) = sent {
                        // The others find the jobs at their next look all the same.
                        tracing::debug!(%error, "cannot announce queued jobs");
                    }
                }
            });
        });
        platform.announce.notify_one();
    }

    /// Tells the process that leads to poll a recipe's poll trigger at once (it was saved,
    /// enabled or reset elsewhere). Nothing to tell on SQLite.
    pub async fn announce_poll_due(&self, recipe_id: &str) -> Result<()> {
        let (Backend::Postgres(pool), Some(platform)) = (&*self.backend, &self.platform) else {
            return Ok(());
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&platform.polls_channel)
            .bind(recipe_id)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Listens to what the other processes say; `None` on SQLite, where there are none, and
    /// when nothing is to be listened for.
    pub fn platform_events(&self, listening: Listening) -> Option<PlatformEvents> {
        let (Backend::Postgres(pool), Some(platform)) = (&*self.backend, &self.platform) else {
            return None;
        };
        let mut channels = Vec::new();
        if listening.jobs {
            channels.push(platform.jobs_channel.clone());
        }
        if listening.answers {
            channels.push(platform.answers_channel.clone());
        }
        if listening.polls {
            channels.push(platform.polls_channel.clone());
        }
        if channels.is_empty() {
            return None;
        }
        let options = pool.connect_options().as_ref().clone();
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Some(PlatformEvents {
            pool: own,
            channels,
            jobs_channel: platform.jobs_channel.clone(),
            polls_channel: platform.polls_channel.clone(),
            listener: None,
        })
    }

    /// Leaves the answer of `job_id` for the process whose caller waits for it, and tells that
    /// process. The first answer left stands (a job's first `respond` step, before its end).
    pub async fn post_answer(&self, job_id: &str, answer: &Value) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let insert = "INSERT INTO job_answers (job_id, answer, posted_ms) VALUES ($1, $2, $3) \
                      ON CONFLICT (job_id) DO NOTHING";
        match (&*self.backend, &self.platform) {
            (Backend::Postgres(pool), Some(platform)) => {
                // The notification goes out with the commit that makes the answer readable.
                let post_and_tell = "WITH posted AS (INSERT INTO job_answers (job_id, answer, posted_ms) \
                     VALUES ($1, $2, $3) ON CONFLICT (job_id) DO NOTHING RETURNING job_id) \
                     SELECT pg_notify($4, job_id) FROM posted";
                sqlx::query(post_and_tell)
                    .bind(job_id)
                    .bind(Json(answer))
                    .bind(now)
                    .bind(&platform.answers_channel)
                    .execute(pool)
                    .await?;
            }
            _ => {
                on_pool!(self, pool => sqlx::query(insert).bind(job_id).bind(Json(answer)).bind(now)
                    .execute(pool).await.map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// Takes (and deletes) the answer left for `job_id`, if there is one.
    pub async fn take_answer(&self, job_id: &str) -> Result<Option<Value>> {
        let take = "DELETE FROM job_answers WHERE job_id = $1 RETURNING answer";
        on_pool!(self, pool => {
            let row = sqlx::query(take).bind(job_id).fetch_optional(pool).await?;
            match row {
                Some(row) => {
                    let Json(answer): Json<Value> = row.try_get(0)?;
                    Ok(Some(answer))
                }
                None => Ok(None),
            }
        })
    }

    /// Takes (and deletes) the answers left for any of `job_ids`, in one statement: what a
    /// process whose callers wait looks for on a timer, in case a notification was missed.
    pub async fn take_answers(&self, job_ids: &[String]) -> Result<Vec<(String, Value)>> {
        let Backend::Postgres(pool) = &*self.backend else {
            // Only a shared store has answers left by other processes.
            return Ok(Vec::new());
        };
        let take = "DELETE FROM job_answers WHERE job_id = ANY($1) RETURNING job_id, answer";
        let rows = sqlx::query(take).bind(job_ids).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                let Json(answer): Json<Value> = row.try_get(1)?;
                Ok((row.try_get(0)?, answer))
            })
            .collect()
    }

    /// Deletes the answers left longer ago than `age`: nobody waits for them any more.
    pub async fn forget_answers_older_than(&self, age: Duration) -> Result<u64> {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let before = chrono::Utc::now().timestamp_millis().saturating_sub(age);
        let forget = "DELETE FROM job_answers WHERE posted_ms <= $1";
        let deleted = on_pool!(self, pool => sqlx::query(forget).bind(before).execute(pool).await
            .map(|done| done.rows_affected()))?;
        Ok(deleted)
    }
}

impl PlatformEvents {
    /// The next thing said. When the connection is lost it listens again, and says
    /// [`PlatformEvent::Resumed`] once it does.
    pub async fn next(&mut self) -> PlatformEvent {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                match self.listen().await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        return PlatformEvent::Resumed;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "cannot listen for the other processes; trying again");
                        tokio::time::sleep(LISTEN_AGAIN_AFTER).await;
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == self.jobs_channel => {
                    return PlatformEvent::JobsQueued;
                }
                Ok(Some(notification)) if notification.channel() == self.polls_channel => {
                    return PlatformEvent::PollDue(notification.payload().to_owned());
                }
                Ok(Some(notification)) => {
                    return PlatformEvent::Answered(notification.payload().to_owned());
                }
                // Cut off and connected again: what was said meanwhile is lost.
                Ok(None) => return PlatformEvent::Resumed,
                Err(error) => {
                    tracing::debug!(%error, "the listener's connection failed; listening again");
                    self.listener = None;
                    tokio::time::sleep(LISTEN_AGAIN_AFTER).await;
                }
            }
        }
    }

    async fn listen(&self) -> Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        let channels: Vec<&str> = self.channels.iter().map(String::as_str).collect();
        listener.listen_all(channels).await?;
        Ok(listener)
    }
}
