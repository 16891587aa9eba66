//! Metering and plan limits at run time.
//!
//! A *task* is one run of an action step (each loop iteration is one); triggers, transforms,
//! sets and control steps are not tasks, and neither are the steps a rerun takes over from the
//! job it reruns. Each write of a job's steps charges the tasks its record holds that were not
//! charged yet, in the same transaction (see the store), so a task is counted once whatever
//! crashes, retries and resumes come between.
//!
//! The process that leads folds the counts every couple of seconds, and then holds the new
//! jobs of a workspace over its monthly task limit (they wait as `held`) or releases them
//! (a new month, a larger plan); every process reads the holds and plans as often, so that a
//! job it would run at once is held instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::watch;
use weft_recipe::Recipe;
use weft_recipe::model::StepKind;
use weft_store::{StepRecord, StepStatus, StoreError, UsageNotice, period_of};

use crate::Runtime;
use crate::plans::{Measure, Plan, Plans};

/// How often counts are folded and holds and plans read.
pub const FOLD_EVERY: Duration = Duration::from_secs(2);
/// How often what workspaces hold (recipes, connections, members, history) is measured.
const MEASURE_EVERY: Duration = Duration::from_secs(300);
/// The shares of a limit at which owners are warned.
pub const WARN_AT: [i64; 2] = [80, 100];

/// The action steps among a job's step records, as tasks: skipped ones did not run.
pub fn tasks_in(recipe: &Recipe, steps: &[StepRecord]) -> i64 {
    let actions: BTreeSet<&str> = recipe
        .all_steps()
        .into_iter()
        .filter(|step| matches!(step.kind, StepKind::Action { .. }))
        .map(|step| step.id.as_str())
        .collect();
    steps
        .iter()
        .filter(|step| step.status != StepStatus::Skipped && actions.contains(step.id.as_str()))
        .count() as i64
}

/// What every process knows of plans: the platform's plans, each workspace's plan and the
/// workspaces whose new jobs are held, as last read.
#[derive(Default)]
pub(crate) struct PlanBook {
    plans: Plans,
    set: RwLock<BTreeMap<String, String>>,
    held: RwLock<BTreeSet<String>>,
}

impl PlanBook {
    pub(crate) fn new(plans: Plans) -> PlanBook {
        PlanBook {
            plans,
            ..PlanBook::default()
        }
    }
}

impl Runtime {
    /// The platform's plans.
    pub fn plans(&self) -> &Plans {
        &self.inner.plans.plans
    }

    /// The plan a workspace has now.
    pub fn plan_of(&self, workspace_id: &str) -> Plan {
        let set = self.inner.plans.set.read().ok();
        let name = set.as_ref().and_then(|set| set.get(workspace_id).cloned());
        self.plans().plan_for(name.as_deref()).clone()
    }

    /// True when a workspace's new jobs are held (it is over its task limit this month).
    pub fn is_held(&self, workspace_id: &str) -> bool {
        self.inner
            .plans
            .held
            .read()
            .is_ok_and(|held| held.contains(workspace_id))
    }

    /// Reads the workspaces' plans and holds again.
    pub async fn refresh_plans(&self) -> Result<(), StoreError> {
        let store = self.store();
        let (set, held) = (store.workspace_plans().await?, store.quota_holds().await?);
        if let Ok(mut known) = self.inner.plans.set.write() {
            *known = set;
        }
        if let Ok(mut known) = self.inner.plans.held.write() {
            *known = held.into_keys().collect();
        }
        Ok(())
    }

    /// Folds the counts, reads plans and holds, and (in the process that leads) enforces the
    /// task limits, every [`FOLD_EVERY`] until `shutdown`; what workspaces hold is measured
    /// every few minutes.
    pub fn spawn_metering(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            let mut measured: Option<tokio::time::Instant> = None;
            let mut bounds_of: HashMap<String, String> = HashMap::new();
            while !*shutdown.borrow() {
                if let Err(error) = runtime.refresh_plans().await {
                    tracing::warn!(%error, "cannot read the workspaces' plans; trying again");
                }
                if *runtime.inner.leading.borrow() {
                    if let Err(error) = runtime.meter_once(&mut bounds_of).await {
                        tracing::warn!(%error, "cannot count usage; trying again");
                    }
                    if measured.is_none_or(|at| at.elapsed() >= MEASURE_EVERY) {
                        measured = Some(tokio::time::Instant::now());
                        if let Err(error) = runtime.measure_holdings().await {
                            tracing::warn!(%error, "cannot measure the workspaces' holdings; trying again");
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLD_EVERY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }

    /// One round of the leader: folds the counts, holds or releases each workspace by its task
    /// limit, notes the warnings due, and bounds recipes by a plan's concurrency when a
    /// workspace's plan changed.
    pub async fn meter_once(
        &self,
        bounds_of: &mut HashMap<String, String>,
    ) -> Result<(), StoreError> {
        let store = self.store();
        store.fold_usage().await?;
        let period = period_of(chrono::Utc::now());
        let tasks = store.tasks_in(&period).await?;
        let holds = store.quota_holds().await?;
        for workspace in store.workspace_ids().await? {
            let plan = self.plan_of(&workspace);
            let used = tasks.get(&workspace).copied().unwrap_or(0);
            let over = plan.tasks.is_some_and(|limit| used >= limit);
            match (over, holds.get(&workspace)) {
                (true, Some(held_in)) if *held_in == period => {}
                (true, _) => {
                    let held = store.hold_workspace(&workspace, &period).await?;
                    tracing::info!(%workspace, plan = %plan.name, used, held, "over the plan's tasks: new jobs are held");
                }
                (false, Some(_)) => {
                    let released = store.end_hold(&workspace).await?;
                    tracing::info!(%workspace, plan = %plan.name, released, "under the plan's tasks again: held jobs released");
                }
                (false, None) => {}
            }
            if let Some(limit) = plan.tasks {
                self.warn_if_due(&workspace, &period, Measure::Tasks, used, limit)
                    .await?;
            }
            if bounds_of.get(&workspace) != Some(&plan.name) {
                self.bound_recipes(&workspace, &plan).await?;
                bounds_of.insert(workspace, plan.name.clone());
            }
        }
        Ok(())
    }

    /// Notes, once a month each, that a workspace used 80 % or all of a limit.
    async fn warn_if_due(
        &self,
        workspace: &str,
        period: &str,
        measure: Measure,
        used: i64,
        limit: i64,
    ) -> Result<(), StoreError> {
        for level in WARN_AT {
            // used / limit >= level %, in whole numbers; a limit of 0 is reached at once.
            if used * 100 >= limit * level {
                let notice = UsageNotice {
                    workspace_id: workspace.to_owned(),
                    period: period.to_owned(),
                    measure: measure.as_str().to_owned(),
                    level,
                    used,
                    quota: limit,
                };
                if self.store().note_usage_notice(&notice).await? {
                    tracing::info!(%workspace, measure = measure.as_str(), level, used, limit, "a plan's limit is near or reached");
                }
            }
        }
        Ok(())
    }

    /// Writes each recipe's `concurrency`, bounded by its workspace's plan, where the queue
    /// reads it.
    pub async fn bound_recipes(&self, workspace: &str, plan: &Plan) -> Result<(), StoreError> {
        let store = self.store();
        for stored in store.recipes_in(workspace).await? {
            let declared = match self.recipes().version(&stored.id, stored.version).await {
                Ok(recipe) => recipe.concurrency,
                Err(_) => continue,
            };
            let bound = plan.concurrency_for(declared).map(i64::from);
            store.set_recipe_concurrency(&stored.id, bound).await?;
        }
        Ok(())
    }

    /// The `concurrency` a recipe of a workspace runs with under its plan.
    pub fn concurrency_of(&self, recipe: &Recipe) -> Option<u32> {
        self.plan_of(&recipe.workspace)
            .concurrency_for(recipe.concurrency)
    }

    /// Measures what each workspace holds and the size of its history into this month's
    /// counters, and warns of structural limits neared.
    async fn measure_holdings(&self) -> Result<(), StoreError> {
        let store = self.store();
        let period = period_of(chrono::Utc::now());
        for workspace in store.workspace_ids().await? {
            let holdings = store.workspace_holdings(&workspace).await?;
            let bytes = store.history_bytes(&workspace).await?;
            store
                .note_holdings(&workspace, &period, holdings, bytes)
                .await?;
            let plan = self.plan_of(&workspace);
            for (measure, held) in [
                (Measure::ActiveRecipes, holdings.active_recipes),
                (Measure::Connections, holdings.connections),
                (Measure::Members, holdings.members),
            ] {
                if let Some(limit) = plan.limit(measure) {
                    self.warn_if_due(&workspace, &period, measure, held, limit)
                        .await?;
                }
            }
        }
        Ok(())
    }
}
