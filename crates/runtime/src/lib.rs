//! Weft's runtime: the workers that claim queued jobs from the store, run them with the engine
//! and write their records back; compiled recipes cached per version; and the hand-back of a
//! finished job to a caller waiting for it (sync webhooks).

pub mod connections;
pub mod masking;
pub mod plans;
mod poll;
mod recipes;
pub mod retention;
mod schedule;
pub mod subjects;
mod subscriptions;
pub mod tables;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use weft_engine::{Engine, JobOutcome, StepLog};
use weft_recipe::Recipe;
use weft_store::{
    ClaimedJob, ErrorKind, JobRecord, JobStatus, PlatformEvent, RecordError, StepRecord, Store,
    StoredRecipe,
};

pub use connections::{ConnectionBook, ConnectionError, ConnectionInput};
pub use recipes::{RecipeCache, StoreLibrary};

/// How long a claimed job is a worker's before another may take it over, by default; renewed
/// while the job runs, so it only runs out when the worker is gone.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a process renews its membership and counts the live processes.
const MEMBERSHIP_EVERY: Duration = Duration::from_secs(1);
/// The work one process at a time does: schedules, polls, and the platform's housekeeping.
const SCHEDULER: &str = "scheduler";
/// How often the process that leads deletes the answers nobody took.
const FORGET_ANSWERS_EVERY: Duration = Duration::from_secs(60);
/// How often a process whose callers wait looks for their answers, beside notifications.
const ANSWER_LOOK_EVERY: Duration = Duration::from_secs(1);
/// An answer left for a waiting caller is taken within a second; one this old has nobody
/// waiting for it.
const ANSWER_KEPT: Duration = Duration::from_secs(60);
/// How often an idle worker looks at the queue when nothing woke it.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long a caller that waits for its job's answer waits for a free slot before its job
/// goes to the queue.
const SLOT_WAIT: Duration = Duration::from_millis(50);

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
    /// How far back the scheduler fires ticks it missed while the process was down.
    catch_up: Duration,
    wake: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// True once this process takes jobs from the queue (its role runs jobs).
    runs_jobs: AtomicBool,
    /// Whether this process leads: runs the schedules, polls and housekeeping.
    leading: watch::Sender<bool>,
    /// The live processes of the platform that run jobs, this one included.
    processes: AtomicUsize,
    /// One permit per job this process may run at once; none until workers are started.
    slots: Arc<Semaphore>,
    /// The jobs running in this process, from the moment they are accepted or claimed.
    running: Mutex<HashMap<String, RunningJob>>,
    polls: poll::PollClock,
    /// The platform's plans, each workspace's, and the workspaces whose jobs are held.
    plans: usage::PlanBook,
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
                catch_up: schedule::CATCH_UP,
                wake: Notify::new(),
                waiting: Mutex::new(HashMap::new()),
                runs_jobs: AtomicBool::new(false),
                leading: watch::Sender::new(false),
                processes: AtomicUsize::new(1),
                slots: Arc::new(Semaphore::new(0)),
                running: Mutex::new(HashMap::new()),
                polls: poll::PollClock::default(),
                plans: usage::PlanBook::default(),
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

    /// Sets the platform's plans (by default one, unlimited). Call before spawning anything.
    pub fn with_plans(mut self, plans: plans::Plans) -> Runtime {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.plans = usage::PlanBook::new(plans);
        }
        self
    }

    /// Sets how far back the scheduler fires the ticks it missed while the process was down.
    /// Call before `spawn_scheduler`.
    pub fn with_catch_up(mut self, window: Duration) -> Runtime {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.catch_up = window;
        }
        self
    }

    /// The live processes of the platform that run jobs, this one included.
    pub(crate) fn processes(&self) -> usize {
        self.inner.processes.load(Ordering::Relaxed)
    }

    pub(crate) fn catch_up(&self) -> Duration {
        self.inner.catch_up
    }

    /// Who this process is in the store's leases, and how long one lasts without renewal.
    pub(crate) fn lease_holder(&self) -> (&str, Duration) {
        (&self.inner.owner, self.inner.lease)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn recipes(&self) -> &RecipeCache {
        &self.inner.recipes
    }

    /// The enabled recipes, each with its compiled current version (those that no longer
    /// compile are left out): what the scheduler, the pollers and the subscriptions look at.
    pub(crate) async fn enabled_recipes(
        &self,
    ) -> Result<Vec<(weft_store::StoredRecipe, Arc<weft_recipe::Recipe>)>, String> {
        let stored = self
            .inner
            .store
            .recipes()
            .await
            .map_err(|error| error.to_string())?;
        let mut enabled = Vec::new();
        for recipe in stored.into_iter().filter(|recipe| recipe.enabled) {
            if let Ok(compiled) = self.inner.recipes.version(&recipe.id, recipe.version).await {
                enabled.push((recipe, compiled));
            }
        }
        Ok(enabled)
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn poll_clock(&self) -> &poll::PollClock {
        &self.inner.polls
    }

    /// Polls a recipe's poll trigger at the next look, after the recipe was saved or enabled:
    /// whoever changed it sees it work at once.
    pub fn poll_soon(&self, recipe_id: &str) {
        self.inner.polls.due_now(recipe_id);
        if self.inner.store.is_shared() {
            // The process that leads may be another.
            let store = self.inner.store.clone();
            let recipe_id = recipe_id.to_owned();
            tokio::spawn(async move {
                if let Err(error) = store.announce_poll_due(&recipe_id).await {
                    tracing::debug!(%error, "cannot tell the leader to poll; it polls at the poll's next time");
                }
            });
        }
    }

    /// Forgets a poll trigger's cursor and seen keys, and polls it again at once: items seen
    /// before make jobs again. Logged with who asked, as it can repeat work.
    pub async fn reset_poll(&self, recipe_id: &str, by: &str) -> weft_store::Result<bool> {
        let had = self.inner.store.reset_poll(recipe_id).await?;
        self.poll_soon(recipe_id);
        tracing::warn!(
            recipe = recipe_id,
            by,
            had_state = had,
            "poll state reset: items seen before will make jobs again"
        );
        Ok(had)
    }

    /// Tells an idle worker, here or in another process, that a job was queued.
    pub fn job_queued(&self) {
        self.inner.wake.notify_one();
        self.inner.store.announce_jobs();
    }

    /// Registers interest in a job before it is queued: the receiver gets its answer (its
    /// first `respond` step, or how it ended) when it has one, whichever process runs it.
    pub fn wait_for(&self, job_id: &str) -> oneshot::Receiver<Reply> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiting) = self.inner.waiting.lock() {
            waiting.insert(job_id.to_owned(), sender);
        }
        receiver
    }

    /// Asks a running job to stop before its next step. True when it is running (here, where
    /// it stops at once, or in another process, which sees the request when it next renews
    /// its leases).
    pub async fn cancel_running(&self, job_id: &str, reason: &str) -> weft_store::Result<bool> {
        if !self.inner.store.request_cancel(job_id, reason).await? {
            return Ok(false);
        }
        self.note_cancel(job_id, reason);
        Ok(true)
    }

    /// Why a job running in this process was asked to stop, if it was.
    fn cancel_reason_here(&self, job_id: &str) -> Option<String> {
        self.inner
            .running
            .lock()
            .ok()
            .and_then(|running| running.get(job_id)?.cancel_reason.clone())
    }

    /// Hands a job's answer to the caller waiting for it: here, or in another process that
    /// took the job's event (a sync webhook) and is told through the store. The reply is made
    /// only when someone waits for it: most jobs have no caller waiting.
    fn answer(&self, job_id: &str, reply: impl FnOnce() -> Reply) {
        if let Some(waiter) = self.waiter(job_id) {
            let _ = waiter.send(reply());
            return;
        }
        let post = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|mut running| {
                let job = running.get_mut(job_id)?;
                // One answer per run: a `respond` step's, or else the job's end.
                Some(std::mem::take(&mut job.answers_elsewhere))
            })
            .unwrap_or(false);
        if post {
            let reply = reply();
            let store = self.inner.store.clone();
            let job_id = job_id.to_owned();
            tokio::spawn(async move {
                let posted = until_store_is_back(Patience::For(ANSWER_KEPT), || {
                    store.post_answer(&job_id, &reply)
                })
                .await;
                if let Err(error) = posted {
                    tracing::warn!(%error, job = %job_id, "cannot leave a job's answer for its caller, who gets a 202 instead");
                }
            });
        }
    }

    /// Notes that a job's caller may wait in another process: a sync webhook's job that a
    /// worker of a platform on PostgreSQL took from the queue.
    fn note_caller_elsewhere(&self, job_id: &str, recipe: &Recipe) {
        let sync_webhook = matches!(
            &recipe.trigger,
            weft_recipe::model::Trigger::Webhook(webhook)
                if matches!(webhook.mode, weft_recipe::model::WebhookMode::Sync)
        );
        if !sync_webhook || !self.inner.store.is_shared() {
            return;
        }
        let waits_here = self
            .inner
            .waiting
            .lock()
            .is_ok_and(|waiting| waiting.contains_key(job_id));
        if let Ok(mut running) = self.inner.running.lock()
            && let Some(job) = running.get_mut(job_id)
        {
            job.answers_elsewhere = !waits_here;
        }
    }

    /// The caller waiting here for a job's answer, taken from those waiting.
    fn waiter(&self, job_id: &str) -> Option<oneshot::Sender<Reply>> {
        self.inner
            .waiting
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(job_id))
    }

    /// Hands an answer to a caller waiting here, if one is.
    fn hand_over(&self, job_id: &str, reply: Reply) {
        if let Some(waiter) = self.waiter(job_id) {
            let _ = waiter.send(reply);
        }
    }

    /// Takes the answer another process left for a caller waiting here.
    async fn take_answer(&self, job_id: &str) {
        let waits_here = self
            .inner
            .waiting
            .lock()
            .is_ok_and(|waiting| waiting.contains_key(job_id));
        if !waits_here {
            return;
        }
        match self.inner.store.take_answer(job_id).await {
            Ok(Some(reply)) => {
                self.hand_over(job_id, reply);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, job = %job_id, "cannot read a job's answer"),
        }
    }

    /// Looks for the answers of every caller waiting here, in one statement, in case a
    /// notification was missed.
    async fn take_all_answers(&self) {
        let waiting: Vec<String> = self
            .inner
            .waiting
            .lock()
            .map(|waiting| waiting.keys().cloned().collect())
            .unwrap_or_default();
        if waiting.is_empty() {
            return;
        }
        match self.inner.store.take_answers(&waiting).await {
            Ok(answers) => {
                for (job_id, reply) in answers {
                    self.hand_over(&job_id, reply);
                }
            }
            Err(error) => tracing::debug!(%error, "cannot look for the answers of waiting callers"),
        }
    }

    fn note_cancel(&self, job_id: &str, reason: &str) {
        if let Ok(mut running) = self.inner.running.lock()
            && let Some(job) = running.get_mut(job_id)
        {
            job.cancel_reason = Some(reason.to_owned());
        }
    }

    /// Drops interest in a job, when the caller stopped waiting.
    pub fn stop_waiting(&self, job_id: &str) {
        if let Ok(mut waiting) = self.inner.waiting.lock() {
            waiting.remove(job_id);
        }
    }

    /// Accepts an event as a job of `stored` (compiled as `recipe`). It runs in this process
    /// at once when a slot is free and the recipe has no `concurrency` bound to check against
    /// other jobs; otherwise it waits in the queue for a worker. With
    /// [`Acceptance::Committed`] the job is committed when this returns; with
    /// [`Acceptance::BeforeEffects`] (a caller that waits for the job's answer), a job that
    /// runs at once is written before its first step that waits or reaches outside, before
    /// its answer is handed over, and at the latest with its record: a job that only computes
    /// costs one write.
    pub async fn accept(
        &self,
        job_id: &str,
        stored: &Arc<StoredRecipe>,
        recipe: &Recipe,
        trigger: Value,
        acceptance: Acceptance,
    ) -> weft_store::Result<Accepted> {
        let store = &self.inner.store;
        if self.is_held(&stored.workspace_id) {
            // Over its plan's tasks: queued, where the store holds it.
            store.enqueue_job_as(job_id, stored, &trigger).await?;
            return Ok(Accepted::Held);
        }
        let slot = match self.concurrency_of(recipe) {
            None => self.free_slot(acceptance).await,
            Some(_) => None,
        };
        let Some(slot) = slot else {
            store.enqueue_job_as(job_id, stored, &trigger).await?;
            self.job_queued();
            return Ok(Accepted::Queued);
        };
        let unwritten = match acceptance {
            Acceptance::Committed => {
                store
                    .start_job(
                        job_id,
                        stored,
                        &trigger,
                        &self.inner.owner,
                        self.inner.lease,
                    )
                    .await?;
                None
            }
            Acceptance::BeforeEffects => Some(Unwritten {
                stored: Arc::clone(stored),
                trigger: trigger.clone(),
            }),
        };
        let job = ClaimedJob {
            id: job_id.to_owned(),
            recipe_id: stored.id.clone(),
            recipe_version: stored.version,
            trigger,
            attempt: 1,
        };
        let log = self.register(&job.id, unwritten);
        let runtime = self.clone();
        tokio::spawn(async move {
            runtime.run(job, Progress::None, log).await;
            drop(slot);
        });
        Ok(Accepted::Running)
    }

    /// Makes sure a job accepted for a caller that stopped waiting is written, so that it is
    /// committed before the caller is told it was accepted: a job that only computes is
    /// otherwise written only when it ends.
    pub async fn write_before_answering(&self, job_id: &str) -> Result<(), String> {
        let log = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|running| Some(running.get(job_id)?.log.clone()));
        match log {
            Some(log) => log.before_effect(job_id).await,
            // Not running here any more: it ended, and its record is written.
            None => Ok(()),
        }
    }

    /// A slot to run a job in at once, if one is free. A caller that waits for the job's
    /// answer waits a moment for one: under steady load a slot frees within milliseconds,
    /// and the queue would make the job wait for one all the same, after two more writes.
    async fn free_slot(&self, acceptance: Acceptance) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if !self.inner.runs_jobs.load(Ordering::Acquire) {
            // A process that runs no jobs (`--role web`) queues every event for the workers.
            return None;
        }
        let slots = Arc::clone(&self.inner.slots);
        match acceptance {
            Acceptance::Committed => slots.try_acquire_owned().ok(),
            Acceptance::BeforeEffects => tokio::time::timeout(SLOT_WAIT, slots.acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        }
    }

    /// Starts taking jobs from the queue, `count` at most at once (webhook jobs run at once
    /// share the same slots). After `shutdown` turns true no job is taken; the task ends when
    /// the running jobs have.
    pub fn spawn_workers(
        &self,
        count: usize,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.inner.slots.add_permits(count);
        self.inner.runs_jobs.store(true, Ordering::Release);
        let runtime = self.clone();
        tokio::spawn(async move {
            let renewing = runtime.keep_leases();
            runtime.dispatch(shutdown).await;
            let all = u32::try_from(count).unwrap_or(u32::MAX);
            let _ = runtime.inner.slots.acquire_many(all).await;
            renewing.abort();
        })
    }

    /// Hands the jobs still running here back to the queue, for a process that stops before
    /// they are done: the next worker takes each over at once, after its last noted step.
    pub async fn release_running(&self) -> weft_store::Result<u64> {
        self.inner.store.release_leases(&self.inner.owner).await
    }

    /// Starts the scheduler: it fires schedule triggers and polls poll triggers until
    /// `shutdown` turns true. On a platform of several processes, one process at a time does
    /// this: the one that leads (on PostgreSQL, the holder of an advisory lock, which
    /// PostgreSQL lets go the moment its process dies; on SQLite, the holder of the store's
    /// lease `scheduler`). The others try for the lead at every look and take over within a
    /// look once it is free. Each tick and each poll would make its jobs once anyway; the
    /// lead spares the other processes the work and the remote ends the extra calls.
    /// [`Runtime::leading`] tells the platform's other once-only work when this process leads.
    pub fn spawn_scheduler(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            let (holder, lease) = runtime.lease_holder();
            let mut leadership = runtime.store().leadership(SCHEDULER, holder, lease);
            let mut answers_forgotten = tokio::time::Instant::now();
            while !*shutdown.borrow() {
                let leads = match leadership.hold().await {
                    Ok(leads) => leads,
                    Err(error) => {
                        tracing::warn!(%error, "the scheduler cannot reach the store; trying again");
                        false
                    }
                };
                runtime.inner.leading.send_if_modified(|leading| {
                    let changed = *leading != leads;
                    if changed && leads {
                        tracing::info!(
                            "this process runs the schedules, polls and housekeeping now"
                        );
                    } else if changed {
                        tracing::info!(
                            "another process runs the schedules, polls and housekeeping now"
                        );
                    }
                    *leading = leads;
                    changed
                });
                if leads {
                    runtime.look_at_triggers().await;
                    if runtime.store().is_shared()
                        && answers_forgotten.elapsed() >= FORGET_ANSWERS_EVERY
                    {
                        answers_forgotten = tokio::time::Instant::now();
                        if let Err(error) =
                            runtime.store().forget_answers_older_than(ANSWER_KEPT).await
                        {
                            tracing::warn!(%error, "cannot delete the answers nobody took");
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(schedule::LOOK_EVERY) => {}
                    _ = shutdown.changed() => {}
                }
            }
            runtime.inner.leading.send_replace(false);
            leadership.give_up().await;
        })
    }

    /// Whether this process leads the platform's once-only work (schedules, polls, retention,
    /// housekeeping, mailing notices), as it changes.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.inner.leading.subscribe()
    }

    /// Listens to the other processes of a platform on PostgreSQL until `shutdown`: wakes
    /// this process's workers when jobs are queued elsewhere (when it runs jobs), hands over
    /// the answers left for callers waiting here (when it takes events), and polls at once the
    /// poll triggers saved or reset elsewhere (when it may lead). Nothing to
    /// listen to on SQLite; workers look at the queue on a timer all the same.
    pub fn spawn_listener(
        &self,
        listening: weft_store::Listening,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let mut events = self.inner.store.platform_events(listening)?;
        let runtime = self.clone();
        Some(tokio::spawn(async move {
            // A connection dropped silently (by a firewall) may hear nothing for long: the
            // answers of waiting callers are also looked for every second.
            let mut look = tokio::time::interval(ANSWER_LOOK_EVERY);
            look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    _ = look.tick(), if listening.answers => {
                        runtime.take_all_answers().await;
                        continue;
                    }
                    _ = shutdown.changed() => return,
                };
                match event {
                    PlatformEvent::JobsQueued => runtime.inner.wake.notify_one(),
                    PlatformEvent::Answered(job_id) => runtime.take_answer(&job_id).await,
                    PlatformEvent::PollDue(recipe_id) => runtime.inner.polls.due_now(&recipe_id),
                    PlatformEvent::Resumed => {
                        runtime.inner.wake.notify_one();
                        runtime.take_all_answers().await;
                    }
                }
            }
        }))
    }

    /// One look of the scheduler: fires due schedule ticks and starts due polls.
    async fn look_at_triggers(&self) {
        // One read of the recipes serves the schedules and the polls of this look.
        match self.enabled_recipes().await {
            Ok(recipes) => {
                if let Err(error) = schedule::fire_due(self, &recipes).await {
                    tracing::warn!(%error, "the scheduler could not look at the schedules; trying again");
                }
                poll::poll_due(self, &recipes);
            }
            Err(error) => {
                tracing::warn!(%error, "the scheduler could not read the recipes; trying again");
            }
        }
    }

    /// Keeps this process counted among the live processes of the platform, so that the
    /// connections' budgets are shared among them, until `shutdown` turns true.
    pub fn spawn_membership(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            let (holder, lease) = runtime.lease_holder();
            let holder = holder.to_owned();
            let mut counted = 1;
            while !*shutdown.borrow() {
                match runtime.store().processes_alive(&holder, lease).await {
                    Ok(processes) => {
                        if processes != counted {
                            tracing::info!(
                                processes,
                                "the connections' budgets are shared by this many processes"
                            );
                            counted = processes;
                        }
                        runtime.engine().share_budgets_among(processes);
                        runtime.inner.processes.store(processes, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot count the live processes; trying again");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(MEMBERSHIP_EVERY) => {}
                    _ = shutdown.changed() => {}
                }
            }
            let _ = runtime.store().process_stopped(&holder).await;
        })
    }

    /// Starts the consumers of the subscribe triggers; they stop when `shutdown` turns true.
    pub fn spawn_subscriptions(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(subscriptions::run_subscriptions(self.clone(), shutdown))
    }

    /// Claims queued jobs while a slot is free, and runs each in a task of its own.
    async fn dispatch(&self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let slot = tokio::select! {
                slot = Arc::clone(&self.inner.slots).acquire_owned() => slot,
                _ = shutdown.changed() => continue,
            };
            let Ok(slot) = slot else { return };
            match self
                .inner
                .store
                .claim_job(&self.inner.owner, self.inner.lease)
                .await
            {
                Ok(Some(job)) if self.runs_here(&job.id) => {
                    // Its lease ran out while the store was out of reach, and the task that
                    // runs it waits for the store: the claim renewed the lease; one run is
                    // enough.
                    drop(slot);
                }
                Ok(Some(job)) => {
                    let log = self.register(&job.id, None);
                    let runtime = self.clone();
                    tokio::spawn(async move {
                        runtime.run(job, Progress::Stored, log).await;
                        drop(slot);
                    });
                }
                Ok(None) => {
                    drop(slot);
                    tokio::select! {
                        _ = self.inner.wake.notified() => {}
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    drop(slot);
                    tracing::warn!(%error, "cannot claim a job; trying again shortly");
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        }
    }

    /// True when a task of this process runs the job.
    fn runs_here(&self, job_id: &str) -> bool {
        self.inner
            .running
            .lock()
            .is_ok_and(|running| running.contains_key(job_id))
    }

    /// Notes a job as running here, with the log its steps write through.
    fn register(&self, job_id: &str, unwritten: Option<Unwritten>) -> Arc<StoreStepLog> {
        let log = Arc::new(StoreStepLog {
            runtime: self.clone(),
            written: std::sync::atomic::AtomicBool::new(unwritten.is_none()),
            unwritten: tokio::sync::Mutex::new(unwritten),
            held_answer: Mutex::new(None),
        });
        if let Ok(mut running) = self.inner.running.lock() {
            let job = RunningJob {
                cancel_reason: None,
                log: log.clone(),
                answers_elsewhere: false,
            };
            running.insert(job_id.to_owned(), job);
        }
        log
    }

    async fn run(&self, job: ClaimedJob, progress: Progress, log: Arc<StoreStepLog>) {
        let job_id = job.id.clone();
        self.run_claimed(job, progress, log).await;
        if let Ok(mut running) = self.inner.running.lock() {
            running.remove(&job_id);
        }
    }

    async fn run_claimed(&self, job: ClaimedJob, progress: Progress, log: Arc<StoreStepLog>) {
        let store = &self.inner.store;
        let mut ran: Option<Arc<Recipe>> = None;
        let mut outcome = match self.prepare(&job, progress).await {
            Ok((recipe, finished)) => {
                self.note_caller_elsewhere(&job.id, &recipe);
                ran = Some(Arc::clone(&recipe));
                let log: Arc<dyn StepLog> = log.clone();
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
        // Going to sleep or to another attempt needs the job's row: write it first.
        if (outcome.resume_at.is_some() || outcome.record.status == JobStatus::Failed)
            && let Err(error) = log.write_now(&job.id, Patience::UntilBack).await
        {
            tracing::error!(%error, job = %job.id, "cannot write a job; its outcome is lost");
            return;
        }
        let unwritten = log.unwritten.lock().await.take();
        let tasks = ran
            .as_deref()
            .map_or(0, |recipe| usage::tasks_in(recipe, &outcome.record.steps));
        if let Some(until) = outcome.resume_at {
            let Some(reason) = self.sleep_or_stop(&job.id, until, &outcome, tasks).await else {
                return;
            };
            // Asked to stop while it went to sleep: it ends here instead.
            stop(&mut outcome, reason);
        }
        if let Some(run_after) = self.retry_at(&job, &outcome).await {
            let owner = &self.inner.owner;
            match until_store_is_back(Patience::UntilBack, || {
                store.retry_job(&job.id, owner, run_after)
            })
            .await
            {
                Ok(_) => return,
                Err(error) => {
                    tracing::error!(%error, job = %job.id, "cannot queue a job's next attempt; recording its failure")
                }
            }
        }
        // The outcome is known: it is kept until the store takes it, through an outage.
        let written = match &unwritten {
            Some(unwritten) if outcome.record.status != JobStatus::Failed => {
                until_store_is_back(Patience::UntilBack, || {
                    store.record_job(unwritten.stored.as_ref().into(), &outcome.record, tasks)
                })
                .await
                .map(|()| true)
            }
            _ => {
                until_store_is_back(Patience::UntilBack, || {
                    store.finish_job(&outcome.record, &self.inner.owner, tasks)
                })
                .await
            }
        };
        match written {
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
        self.answer(&job.id, || finished_reply(&outcome));
    }

    /// Puts a job to sleep in the store; or, when it was asked to stop meanwhile (here, or
    /// through another process), returns why, so that it ends instead.
    async fn sleep_or_stop(
        &self,
        job_id: &str,
        until: chrono::DateTime<chrono::Utc>,
        outcome: &JobOutcome,
        tasks: i64,
    ) -> Option<String> {
        if let Some(reason) = self.cancel_reason_here(job_id) {
            return Some(reason);
        }
        let store = &self.inner.store;
        let owner = &self.inner.owner;
        match until_store_is_back(Patience::UntilBack, || {
            store.suspend_job(job_id, owner, until, &outcome.record.steps, tasks)
        })
        .await
        {
            Ok(true) => None,
            Ok(false) => match store.cancel_reason(job_id, owner).await {
                Ok(Some(reason)) => Some(reason),
                _ => {
                    tracing::warn!(job = %job_id, "another worker took this job over before it could sleep");
                    None
                }
            },
            Err(error) => {
                tracing::error!(%error, job = %job_id, "cannot put a waiting job to sleep; it will be taken up again when its lease runs out");
                None
            }
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
        progress: Progress,
    ) -> Result<(Arc<weft_recipe::Recipe>, HashMap<String, StepRecord>), String> {
        let recipe = self
            .inner
            .recipes
            .version(&job.recipe_id, job.recipe_version)
            .await?;
        let finished = match progress {
            Progress::None => HashMap::new(),
            Progress::Stored => self
                .inner
                .store
                .job_progress(&job.id)
                .await
                .map_err(|error| error.to_string())?,
        };
        Ok((recipe, finished))
    }

    /// Renews the leases of every job this process runs, a third of a lease apart (one
    /// statement for all of them), and picks up requests to stop them made elsewhere.
    fn keep_leases(&self) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            let (store, owner, lease) = (
                &runtime.inner.store,
                &runtime.inner.owner,
                runtime.inner.lease,
            );
            let mut renewed = true;
            loop {
                // After a failed renewal, again within a second: the leases must not run out
                // while the store is briefly out of reach.
                let pause = if renewed {
                    lease / 3
                } else {
                    (lease / 3).min(Duration::from_secs(1))
                };
                tokio::time::sleep(pause).await;
                renewed = match store.renew_leases(owner, lease).await {
                    Ok(_) => true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot renew the leases of running jobs");
                        false
                    }
                };
                match store.cancel_requests(owner).await {
                    Ok(requests) => {
                        for (job_id, reason) in requests {
                            runtime.note_cancel(&job_id, &reason);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot look for jobs asked to stop"),
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

/// When an accepted job is first written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Before `accept` returns: the caller is told the event is accepted (an async webhook's
    /// `202`, a manual run).
    Committed,
    /// Before the job's first step that waits or reaches outside, before its answer is
    /// handed to the caller, and at the latest with its record: the caller waits for the
    /// answer (a sync webhook), and learns of a crash before then by the connection closing.
    BeforeEffects,
}

/// What became of an accepted event's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// It runs in this process now.
    Running,
    /// It waits in the queue for a worker.
    Queued,
    /// It is kept but held: its workspace is over its plan's tasks for the month.
    Held,
}

/// A job that runs without having been written yet, and what writing it takes.
struct Unwritten {
    stored: Arc<StoredRecipe>,
    trigger: Value,
}

/// Where a job's earlier progress is: a job accepted a moment ago has none to read.
#[derive(Clone, Copy)]
enum Progress {
    None,
    Stored,
}

/// What a caller waiting for a job gets, in the shape of a `respond` step's value:
/// `{status, body, headers}`. The job's first `respond` step, or else how it ended (see
/// [`finished_reply`]). One shape, so that it crosses from the process that ran the job to the
/// one whose caller waits.
pub type Reply = Value;

/// The reply of a job that ended without a `respond` step: its output (`200`), or its failure
/// (`500`, with the job's id to look it up).
pub fn finished_reply(outcome: &JobOutcome) -> Reply {
    if let Some(response) = &outcome.response {
        return response.clone();
    }
    match outcome.record.status {
        // The output is sent as JSON whatever it is (a string too, or null), as it always was.
        JobStatus::Succeeded => {
            json!({ "status": 200, "body": outcome.record.output, "body_is_json": true })
        }
        _ => {
            let message = outcome
                .record
                .error
                .as_ref()
                .map_or("the job failed", |error| error.message.as_str());
            json!({
                "status": 500,
                "body": { "error": { "code": "job_failed", "message": message, "job_id": outcome.record.id } },
            })
        }
    }
}

/// A job running in this process.
struct RunningJob {
    /// Why it was asked to stop, once it was.
    cancel_reason: Option<String>,
    log: Arc<StoreStepLog>,
    /// True while its answer is still to be left in the store for a caller waiting in
    /// another process (a sync webhook's).
    answers_elsewhere: bool,
}

/// How long a write of a job waits for a store that is out of reach.
#[derive(Clone, Copy)]
enum Patience {
    /// Until the store is back: what the write keeps is known only here.
    UntilBack,
    /// At most this long: a caller waits for the write.
    For(Duration),
}

/// The longest pause between two tries of a write while the store is out of reach.
const LONGEST_STORE_PAUSE: Duration = Duration::from_secs(2);
/// How long a job accepted for a waiting caller waits for the store to write it.
const WRITE_FOR_CALLER: Duration = Duration::from_secs(10);

/// Runs a store write, and again while the store is out of reach (restarting, cut off, no
/// connection free), pausing longer each time: a database restart delays a job instead of
/// losing what it did. Any other failure is returned at once.
async fn until_store_is_back<T, F, W>(patience: Patience, mut write: W) -> weft_store::Result<T>
where
    W: FnMut() -> F,
    F: std::future::Future<Output = weft_store::Result<T>>,
{
    let began = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match write().await {
            Err(error) if error.is_unavailable() => {
                if let Patience::For(longest) = patience
                    && began.elapsed() + pause > longest
                {
                    return Err(error);
                }
                if !warned {
                    warned = true;
                    tracing::warn!(%error, "the store is out of reach; the write waits for it");
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_STORE_PAUSE);
            }
            done => return done,
        }
    }
}

/// Writes finished steps to the store and hands responses to waiting callers; writes a job
/// accepted with [`Acceptance::BeforeEffects`] when it first has to be.
struct StoreStepLog {
    runtime: Runtime,
    /// Held across the write, so that concurrent steps of one job all wait for it.
    unwritten: tokio::sync::Mutex<Option<Unwritten>>,
    written: std::sync::atomic::AtomicBool,
    /// The answer of a `respond` step given before the job was written.
    held_answer: Mutex<Option<serde_json::Value>>,
}

#[async_trait::async_trait]
impl StepLog for StoreStepLog {
    async fn step_finished(
        &self,
        job_id: &str,
        path: &str,
        record: &StepRecord,
    ) -> Result<(), String> {
        let inner = &self.runtime.inner;
        // The next step waits for this one's record: steps not noted would run again.
        match until_store_is_back(Patience::UntilBack, || {
            inner.store.log_step(job_id, path, record, &inner.owner)
        })
        .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Another worker runs this job now: stop before the next step, and leave the
                // record to it.
                let reason = "this process lost the job's lease; another worker took it over";
                self.runtime.note_cancel(job_id, reason);
                Err(reason.to_owned())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    fn cancelled(&self, job_id: &str) -> Option<String> {
        self.runtime.cancel_reason_here(job_id)
    }

    fn responded(&self, job_id: &str, response: &serde_json::Value) {
        if self.written.load(std::sync::atomic::Ordering::Acquire) {
            self.runtime.answer(job_id, || response.clone());
        } else if let Ok(mut held) = self.held_answer.lock() {
            // Handed over once the job is written: at its next step that waits or reaches
            // outside, or with its record.
            *held = Some(response.clone());
        }
    }

    async fn child_finished(&self, recipe: &Arc<Recipe>, record: &JobRecord) -> Result<(), String> {
        let (id, version) = self
            .runtime
            .inner
            .recipes
            .origin_of(recipe)
            .ok_or_else(|| "the called recipe is not among the compiled ones".to_owned())?;
        let origin = weft_store::RecipeRef {
            workspace_id: &recipe.workspace,
            id: &id,
            name: &record.recipe,
            version,
        };
        let store = &self.runtime.inner.store;
        let tasks = usage::tasks_in(recipe, &record.steps);
        until_store_is_back(Patience::UntilBack, || {
            store.record_job(origin, record, tasks)
        })
        .await
        .map_err(|error| error.to_string())
    }

    async fn before_effect(&self, job_id: &str) -> Result<(), String> {
        self.write_now(job_id, Patience::For(WRITE_FOR_CALLER))
            .await
    }
}

impl StoreStepLog {
    /// Writes a job accepted with [`Acceptance::BeforeEffects`], if it is not written yet.
    async fn write_now(&self, job_id: &str, patience: Patience) -> Result<(), String> {
        let mut unwritten = self.unwritten.lock().await;
        if let Some(pending) = unwritten.take() {
            let inner = &self.runtime.inner;
            let written = until_store_is_back(patience, || {
                inner.store.start_job(
                    job_id,
                    &pending.stored,
                    &pending.trigger,
                    &inner.owner,
                    inner.lease,
                )
            })
            .await;
            if let Err(error) = written {
                *unwritten = Some(pending);
                return Err(error.to_string());
            }
            self.written
                .store(true, std::sync::atomic::Ordering::Release);
            let held = self
                .held_answer
                .lock()
                .ok()
                .and_then(|mut held| held.take());
            if let Some(response) = held {
                self.runtime.answer(job_id, || response);
            }
        }
        Ok(())
    }
}

/// Ends a job that was going to sleep as stopped, with the steps it finished.
fn stop(outcome: &mut JobOutcome, reason: String) {
    outcome.resume_at = None;
    outcome.record.status = JobStatus::Failed;
    outcome.record.finished_at = Some(weft_store::record::now());
    outcome.record.error = Some(RecordError {
        step: None,
        message: reason,
        kind: ErrorKind::Stopped,
    });
}

/// The record of a job whose recipe cannot be loaded.
fn unrunnable(job: &ClaimedJob, message: String) -> JobRecord {
    let now = weft_store::record::now();
    JobRecord {
        id: job.id.clone(),
        recipe: job.recipe_id.clone(),
        recipe_version: None,
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
        rerun_of: None,
        called_by: None,
        held: None,
        tasks: None,
    }
}
