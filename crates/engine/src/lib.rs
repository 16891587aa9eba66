//! The engine runs one job: a recipe's steps against one trigger event, with control flow,
//! retries, timeouts and error handlers, and writes the job record of what happened.
//!
//! It reaches connectors, connections and other recipes only through traits, so that the same
//! engine serves `weft run` (files on disk) and `weft serve` (the store).

mod jq_runner;
pub mod mask;
mod poll;
mod rate_limit;
pub use poll::Polled;
mod retry;
pub use retry::delay_before as retry_delay;
mod run;
mod scope;

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use weft_connectors::{Connection, Registry};
use weft_recipe::Recipe;
use weft_store::{JobRecord, StepRecord};

pub use jq_runner::{JqRunner, serve_jq_worker};

/// Finds connections by the name recipes use, in the recipe's workspace.
#[async_trait::async_trait]
pub trait Connections: Send + Sync {
    /// The workspace's connection with this name, ready to use; the error says why there is
    /// none.
    async fn get(&self, workspace: &str, name: &str) -> Result<Connection, String>;

    /// The connection with fresh credentials, after the remote end refused its current ones
    /// (an OAuth 2 access token revoked or expired early). By default, the same connection.
    async fn refreshed(&self, workspace: &str, name: &str) -> Result<Connection, String> {
        self.get(workspace, name).await
    }
}

/// Finds recipes by name, for `call` steps, in the calling recipe's workspace.
#[async_trait::async_trait]
pub trait RecipeLibrary: Send + Sync {
    /// The workspace's recipe with this name; the error says why there is none.
    async fn find(&self, workspace: &str, name: &str) -> Result<Arc<Recipe>, String>;
}

/// No recipes to call.
pub struct NoRecipes;

#[async_trait::async_trait]
impl RecipeLibrary for NoRecipes {
    async fn find(&self, _workspace: &str, name: &str) -> Result<Arc<Recipe>, String> {
        Err(format!("no recipe named `{name}`"))
    }
}

/// No connections at all.
pub struct NoConnections;

#[async_trait::async_trait]
impl Connections for NoConnections {
    async fn get(&self, _workspace: &str, name: &str) -> Result<Connection, String> {
        Err(format!("no connection named `{name}`"))
    }
}

/// Bounds on what one job may do, so that no recipe can take the process down.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most items one `for_each` may loop over.
    pub max_loop_items: usize,
    /// Most step runs in one job, loop iterations and retries of a step counted once.
    pub max_step_runs: usize,
    /// Deepest chain of `call` steps.
    pub max_call_depth: usize,
    /// Longest a jq program may run when its step sets no shorter timeout.
    pub jq_time: Duration,
    /// Largest value a record keeps (the trigger, the output, a step's input or output), as
    /// JSON; a larger one is cut, with a marker that says so.
    pub max_stored_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_loop_items: 10_000,
            max_step_runs: 100_000,
            max_call_depth: 8,
            jq_time: Duration::from_secs(10),
            max_stored_value_bytes: mask::MAX_STORED_VALUE_BYTES,
        }
    }
}

/// What a job produced: its record, and the response of its first `respond` step.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub record: JobRecord,
    pub response: Option<Value>,
    /// Set when the job sleeps in a durable `wait` (status `waiting`) until then.
    pub resume_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a job's finished steps are written as they finish, masked, so that a job taken up
/// again after a crash or a durable wait resumes after its last finished step.
#[async_trait::async_trait]
pub trait StepLog: Send + Sync {
    async fn step_finished(
        &self,
        job_id: &str,
        path: &str,
        record: &StepRecord,
    ) -> Result<(), String>;

    /// The job's first `respond` step ran: a caller waiting for the job may have its answer.
    fn responded(&self, _job_id: &str, _response: &Value) {}

    /// The job is about to wait or reach outside (an action, a call): whatever it has not
    /// yet made durable must be, before anything outside can see it. An error fails the step.
    async fn before_effect(&self, _job_id: &str) -> Result<(), String> {
        Ok(())
    }

    /// A job run by this job's `call` step ended: `record` is its record (masked), to keep
    /// as a job of `recipe` of its own.
    async fn child_finished(
        &self,
        _recipe: &Arc<Recipe>,
        _record: &JobRecord,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Why the job was cancelled while it runs, if it was: asked before each step.
    fn cancelled(&self, _job_id: &str) -> Option<String> {
        None
    }
}

/// Runs jobs. Cheap to share: clone the `Arc` it lives in.
pub struct Engine {
    connectors: Registry,
    connections: Arc<dyn Connections>,
    recipes: Arc<dyn RecipeLibrary>,
    limits: Limits,
    jq: JqRunner,
    /// Each connection's budget of calls, shared by every job of this engine.
    gates: rate_limit::Gates,
    /// Each workspace's masking rules.
    masks: mask::MaskBook,
}

impl Engine {
    pub fn new(
        connectors: Registry,
        connections: Arc<dyn Connections>,
        recipes: Arc<dyn RecipeLibrary>,
        limits: Limits,
    ) -> Engine {
        Engine {
            connectors,
            connections,
            recipes,
            limits,
            jq: JqRunner::default(),
            gates: rate_limit::Gates::default(),
            masks: mask::MaskBook::default(),
        }
    }

    /// Where jq programs run; threads of this process unless told otherwise.
    pub fn with_jq_runner(mut self, runner: JqRunner) -> Engine {
        self.jq = runner;
        self
    }

    /// Tells the engine how many processes of the platform share the connections' budgets;
    /// each keeps to its share.
    pub fn share_budgets_among(&self, processes: usize) {
        self.gates.share_among(processes);
    }

    /// Each workspace's masking rules, applied to every record this engine writes.
    pub fn masks(&self) -> &mask::MaskBook {
        &self.masks
    }

    /// The connectors of this engine.
    pub fn connectors(&self) -> &Registry {
        &self.connectors
    }

    /// A workspace's connection by name, ready for its connector.
    pub async fn connection(&self, workspace: &str, name: &str) -> Result<Connection, String> {
        self.connections.get(workspace, name).await
    }

    /// Runs one job of `recipe` with `trigger` as its event, to the end.
    pub async fn run_job(&self, recipe: Arc<Recipe>, trigger: Value) -> JobOutcome {
        run::JobRun::new(self, recipe, 0).run(trigger).await
    }

    /// Runs a job that the store knows by its id (`attempt` counts from 1), writing each
    /// finished step to `log`; steps in `finished` (by path) were done by an earlier run and
    /// are not run again.
    pub async fn run_stored_job(
        &self,
        recipe: Arc<Recipe>,
        trigger: Value,
        job_id: &str,
        attempt: u32,
        log: Arc<dyn StepLog>,
        finished: HashMap<String, StepRecord>,
    ) -> JobOutcome {
        let mut run = run::JobRun::new(self, recipe, 0);
        run.identify(job_id, attempt);
        run.make_durable(log, finished);
        run.run(trigger).await
    }
}
