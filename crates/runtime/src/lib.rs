//! Weft's runtime: the workers that claim queued jobs from the store, run them with the engine
//! and write their records back; compiled recipes cached per version; and the hand-back of a
//! finished job to a caller waiting for it (sync webhooks).

mod recipes;
mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot, watch};
use weft_engine::{Engine, JobOutcome, StepLog};
use weft_store::{ClaimedJob, ErrorKind, JobRecord, JobStatus, RecordError, StepRecord, Store};

pub use recipes::{RecipeCache, StoreLibrary};

/// How long a claimed job is a worker's before another may take it over, by default; renewed
/// while the job runs, so it only runs out when the worker is gone.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often an idle worker looks at the queue when nothing woke it.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// The runtime of one process: its store, engine, and the callers waiting for jobs.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Arc<Engine>,
    recipes: RecipeCache,
    owner: String,
    lease: Duration,
    wake: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
}

impl Runtime {
    pub fn new(store: Store, engine: Arc<Engine>, recipes: RecipeCache) -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                store,
                engine,
                recipes,
                owner: format!("worker-{}", weft_store::new_id()),
                lease: DEFAULT_LEASE,
                wake: Notify::new(),
                waiting: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sets how long a claimed job stays this process's without a renewal. Call before
    /// `spawn_workers`.
    pub fn with_lease(mut self, lease: Duration) -> Runtime {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.lease = lease;
        }
        self
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn recipes(&self) -> &RecipeCache {
        &self.inner.recipes
    }

    /// Tells an idle worker that a job was queued.
    pub fn job_queued(&self) {
        self.inner.wake.notify_one();
    }

    /// Registers interest in a job before it is queued: the receiver gets the outcome when a
    /// worker of this process finishes it.
    pub fn wait_for(&self, job_id: &str) -> oneshot::Receiver<Answer> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiting) = self.inner.waiting.lock() {
            waiting.insert(job_id.to_owned(), sender);
        }
        receiver
    }

    /// Drops interest in a job, when the caller stopped waiting.
    pub fn stop_waiting(&self, job_id: &str) {
        if let Ok(mut waiting) = self.inner.waiting.lock() {
            waiting.remove(job_id);
        }
    }

    /// Starts `count` workers; they stop taking jobs when `shutdown` turns true and end after
    /// the job in hand.
    pub fn spawn_workers(
        &self,
        count: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..count)
            .map(|_| {
                let runtime = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { runtime.work(shutdown).await })
            })
            .collect()
    }

    /// Starts the scheduler: it fires schedule triggers until `shutdown` turns true.
    pub fn spawn_scheduler(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            while !*shutdown.borrow() {
                if let Err(error) = schedule::fire_due(&runtime).await {
                    tracing::warn!(%error, "the scheduler could not look at the schedules; trying again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(schedule::LOOK_EVERY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }

    async fn work(&self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self
                .inner
                .store
                .claim_job(&self.inner.owner, self.inner.lease)
                .await
            {
                Ok(Some(job)) => self.run(job).await,
                Ok(None) => {
                    tokio::select! {
                        _ = self.inner.wake.notified() => {}
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot claim a job; trying again shortly");
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        }
    }

    async fn run(&self, job: ClaimedJob) {
        let renewing = self.keep_lease(&job.id);
        let store = &self.inner.store;
        let outcome = match self.prepare(&job).await {
            Ok((recipe, finished)) => {
                let log = Arc::new(StoreStepLog {
                    runtime: self.clone(),
                });
                self.inner
                    .engine
                    .run_stored_job(
                        recipe,
                        job.trigger.clone(),
                        &job.id,
                        job.attempt as u32,
                        log,
                        finished,
                    )
                    .await
            }
            Err(message) => JobOutcome {
                record: unrunnable(&job, message),
                response: None,
                resume_at: None,
            },
        };
        renewing.abort();
        if let Some(until) = outcome.resume_at {
            if let Err(error) = store.suspend_job(&job.id, until).await {
                tracing::error!(%error, job = %job.id, "cannot put a waiting job to sleep; it will be resumed early");
            }
            return;
        }
        if let Some(run_after) = self.retry_at(&job, &outcome).await {
            match store.retry_job(&job.id, &self.inner.owner, run_after).await {
                Ok(_) => return,
                Err(error) => {
                    tracing::error!(%error, job = %job.id, "cannot queue a job's next attempt; recording its failure")
                }
            }
        }
        match store.finish_job(&outcome.record, &self.inner.owner).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %job.id, "another worker took this job over; its record is the one kept");
                return;
            }
            Err(error) => {
                // The lease runs out and another worker takes the job over.
                tracing::error!(%error, job = %job.id, "cannot write a finished job; it will be run again");
                return;
            }
        }
        record_metrics(&outcome.record);
        let waiter = self
            .inner
            .waiting
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(&job.id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(Answer::Finished(Box::new(outcome)));
        }
    }

    /// When a failed job should be tried again under its recipe's `retry`, if it should: only
    /// for failures another try may cure, and not after its last attempt.
    async fn retry_at(
        &self,
        job: &ClaimedJob,
        outcome: &JobOutcome,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        if outcome.record.status != JobStatus::Failed {
            return None;
        }
        // Only failures that another try may cure: the other system, a time limit, Weft
        // itself. A validation or expression failure would fail the same way again.
        let curable = outcome.record.error.as_ref().is_some_and(|error| {
            matches!(
                error.kind,
                ErrorKind::Connector | ErrorKind::Timeout | ErrorKind::Internal
            )
        });
        if !curable {
            return None;
        }
        let recipe = self
            .inner
            .recipes
            .version(&job.recipe_id, job.recipe_version)
            .await
            .ok()?;
        let retry = recipe.retry.as_ref()?;
        let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
        if attempt >= retry.attempts {
            return None;
        }
        let delay = weft_engine::retry_delay(retry, attempt + 1);
        Some(
            chrono::Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1)),
        )
    }

    /// The compiled recipe of a job, and the steps its earlier runs finished.
    async fn prepare(
        &self,
        job: &ClaimedJob,
    ) -> Result<(Arc<weft_recipe::Recipe>, HashMap<String, StepRecord>), String> {
        let recipe = self
            .inner
            .recipes
            .version(&job.recipe_id, job.recipe_version)
            .await?;
        let finished = self
            .inner
            .store
            .job_progress(&job.id)
            .await
            .map_err(|error| error.to_string())?;
        Ok((recipe, finished))
    }

    /// Renews a job's lease while it runs.
    fn keep_lease(&self, job_id: &str) -> tokio::task::JoinHandle<()> {
        let store = self.inner.store.clone();
        let owner = self.inner.owner.clone();
        let lease = self.inner.lease;
        let job_id = job_id.to_owned();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(error) = store.renew_lease(&job_id, &owner, lease).await {
                    tracing::warn!(%error, job = %job_id, "cannot renew a job's lease");
                }
            }
        })
    }
}

/// Counts a finished job and times its steps. Labels are bounded: recipe names and statuses,
/// never job ids.
fn record_metrics(record: &JobRecord) {
    let status = weft_store::status_text(record.status);
    metrics::counter!("weft_jobs_finished_total", "recipe" => record.recipe.clone(), "status" => status).increment(1);
    for step in &record.steps {
        let seconds = (step.finished_at - step.started_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1e6;
        metrics::histogram!("weft_step_duration_seconds", "recipe" => record.recipe.clone())
            .record(seconds.max(0.0));
    }
}

/// Counts an accepted event, by the kind of trigger that brought it.
pub fn event_accepted(trigger: &'static str) {
    metrics::counter!("weft_events_accepted_total", "trigger" => trigger).increment(1);
}

/// What a caller waiting for a job gets.
#[derive(Debug)]
pub enum Answer {
    /// The job's first `respond` step; the job goes on.
    Responded(serde_json::Value),
    /// The job ended without responding.
    Finished(Box<JobOutcome>),
}

/// Writes finished steps to the store and hands responses to waiting callers.
struct StoreStepLog {
    runtime: Runtime,
}

#[async_trait::async_trait]
impl StepLog for StoreStepLog {
    async fn step_finished(
        &self,
        job_id: &str,
        path: &str,
        record: &StepRecord,
    ) -> Result<(), String> {
        self.runtime
            .inner
            .store
            .log_step(job_id, path, record)
            .await
            .map_err(|error| error.to_string())
    }

    fn responded(&self, job_id: &str, response: &serde_json::Value) {
        let waiter = self
            .runtime
            .inner
            .waiting
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(job_id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(Answer::Responded(response.clone()));
        }
    }
}

/// The record of a job whose recipe cannot be loaded.
fn unrunnable(job: &ClaimedJob, message: String) -> JobRecord {
    let now = chrono::Utc::now();
    JobRecord {
        id: job.id.clone(),
        recipe: job.recipe_id.clone(),
        status: JobStatus::Failed,
        output: serde_json::Value::Null,
        trigger: job.trigger.clone(),
        error: Some(RecordError {
            step: None,
            message,
            kind: ErrorKind::Internal,
        }),
        started_at: now,
        finished_at: Some(now),
        steps: Vec::new(),
    }
}
