//! Subscribe triggers: one long-lived consumer per enabled recipe with a `subscribe` trigger.
//! Each message becomes a queued job, and the connector acknowledges it to its broker only
//! after that job is committed. A consumer whose connection fails is started again after a
//! pause that doubles up to a minute; saving, disabling or deleting the recipe stops it.
//!
//! On a platform of several processes, a subscription is consumed by one of them at a time:
//! the process that holds the store's lease `subscribe RECIPE_ID`. It renews the lease while
//! its consumer runs and stops the consumer when it can no longer renew it; when the process
//! dies, another takes the lease over once it has run out. Brokers that hand each message to
//! one consumer would not need this, but those that fan messages out (Redis channels, MQTT
//! topics, NATS subjects, PostgreSQL notifications) would make a job per process.
//!
//! The subscriptions are spread over the processes that run jobs: each takes at most its
//! share (the subscriptions divided by the live processes, rounded up), and a process holding
//! more than its share, as when another joins, gives the rest up for the others to take.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_connectors::MessageSink;
use weft_recipe::model::{SubscribeTrigger, Trigger};
use weft_store::StoredRecipe;

use crate::Runtime;

/// How often the set of consumers is matched to the enabled recipes.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// First pause before a failed consumer starts again.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between two starts of a failing consumer.
const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// A consumer that ran this long before it failed starts again after the first pause.
const STEADY: Duration = Duration::from_secs(30);

/// Where a subscription's messages go: a queued job of the recipe each.
struct JobSink {
    runtime: Runtime,
    recipe: StoredRecipe,
}

#[async_trait::async_trait]
impl MessageSink for JobSink {
    fn subscriber(&self) -> &str {
        &self.recipe.id
    }

    async fn deliver(&self, message: Value) -> Result<(), String> {
        self.runtime
            .store()
            .enqueue_job(&self.recipe, &message)
            .await
            .map_err(|error| error.to_string())?;
        crate::event_accepted("subscribe");
        self.runtime.job_queued();
        Ok(())
    }
}

/// A consumer this process runs, and when it last renewed its lease.
struct Consumer {
    version: i64,
    task: JoinHandle<()>,
    renewed: Instant,
}

/// Keeps one consumer running per enabled subscribe recipe (and version), for the recipes
/// whose lease this process holds, until `shutdown`.
pub async fn run_subscriptions(runtime: Runtime, mut shutdown: watch::Receiver<bool>) {
    let mut running: HashMap<String, Consumer> = HashMap::new();
    while !*shutdown.borrow() {
        match wanted(&runtime).await {
            Ok(wanted) => {
                for (id, consumer) in running.extract_if(|id, consumer| {
                    wanted
                        .get(id)
                        .is_none_or(|(recipe, _)| recipe.version != consumer.version)
                }) {
                    stop(&runtime, &id, consumer).await;
                }
                let share = wanted.len().div_ceil(runtime.processes().max(1));
                while running.len() > share {
                    let Some(id) = running.keys().max().cloned() else {
                        break;
                    };
                    if let Some(consumer) = running.remove(&id) {
                        tracing::info!(recipe = %id, "another process takes this subscription over, to spread them");
                        stop(&runtime, &id, consumer).await;
                    }
                }
                for (id, (recipe, trigger)) in wanted {
                    if running.len() >= share && !running.contains_key(&id) {
                        continue;
                    }
                    hold(&runtime, &mut running, id, recipe, trigger).await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot look at the subscribe triggers; trying again");
                let (_, period) = runtime.lease_holder();
                for (id, consumer) in
                    running.extract_if(|_, consumer| consumer.renewed.elapsed() >= period)
                {
                    stop(&runtime, &id, consumer).await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
    // A message whose job was not committed was not acknowledged: its broker sends it again.
    for (id, consumer) in running {
        stop(&runtime, &id, consumer).await;
    }
}

fn lease_name(recipe_id: &str) -> String {
    format!("subscribe {recipe_id}")
}

/// Renews or takes the lease of one wanted subscription, and starts or stops its consumer to
/// match: it runs here while this process holds the lease.
async fn hold(
    runtime: &Runtime,
    running: &mut HashMap<String, Consumer>,
    id: String,
    recipe: StoredRecipe,
    trigger: SubscribeTrigger,
) {
    let (holder, period) = runtime.lease_holder();
    match runtime
        .store()
        .take_lease(&lease_name(&id), holder, period)
        .await
    {
        Ok(true) => match running.get_mut(&id) {
            Some(consumer) => consumer.renewed = Instant::now(),
            None => {
                let consumer = Consumer {
                    version: recipe.version,
                    task: tokio::spawn(consume(runtime.clone(), recipe, trigger)),
                    renewed: Instant::now(),
                };
                running.insert(id, consumer);
            }
        },
        Ok(false) => {
            // Another process holds it (it took it over while this one could not renew).
            if let Some(consumer) = running.remove(&id) {
                tracing::warn!(recipe = %recipe.name, "another process consumes this subscription now");
                consumer.task.abort();
            }
        }
        Err(error) => {
            tracing::warn!(recipe = %recipe.name, %error, "cannot renew a subscription's lease");
            if running
                .get(&id)
                .is_some_and(|consumer| consumer.renewed.elapsed() >= period)
                && let Some(consumer) = running.remove(&id)
            {
                consumer.task.abort();
            }
        }
    }
}

/// Stops a consumer and gives its lease up, so that another process may take it at once.
async fn stop(runtime: &Runtime, recipe_id: &str, consumer: Consumer) {
    consumer.task.abort();
    let (holder, _) = runtime.lease_holder();
    if let Err(error) = runtime
        .store()
        .release_lease(&lease_name(recipe_id), holder)
        .await
    {
        tracing::warn!(%error, "cannot give a subscription's lease up; it runs out by itself");
    }
}

/// The enabled recipes with a subscribe trigger, by id.
async fn wanted(
    runtime: &Runtime,
) -> Result<HashMap<String, (StoredRecipe, SubscribeTrigger)>, String> {
    let mut wanted = HashMap::new();
    for (stored, recipe) in runtime.enabled_recipes().await? {
        if let Trigger::Subscribe(trigger) = &recipe.trigger {
            wanted.insert(stored.id.clone(), (stored, trigger.clone()));
        }
    }
    Ok(wanted)
}

/// Runs one recipe's consumer, starting it again whenever it fails.
async fn consume(runtime: Runtime, recipe: StoredRecipe, trigger: SubscribeTrigger) {
    let sink = Arc::new(JobSink {
        runtime: runtime.clone(),
        recipe: recipe.clone(),
    });
    let mut pause = FIRST_PAUSE;
    loop {
        let started = Instant::now();
        let outcome = subscribe_once(&runtime, &trigger, sink.as_ref()).await;
        if started.elapsed() >= STEADY {
            pause = FIRST_PAUSE;
        }
        let reason = match outcome {
            Ok(()) => "the broker ended the subscription".to_owned(),
            Err(error) => error,
        };
        metrics::counter!("weft_subscription_restarts_total").increment(1);
        let reason = runtime.loggable(&recipe.workspace_id, &reason);
        tracing::warn!(recipe = %recipe.name, error = %reason, pause_s = pause.as_secs(), "a subscription stopped; it starts again after a pause");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

async fn subscribe_once(
    runtime: &Runtime,
    trigger: &SubscribeTrigger,
    sink: &JobSink,
) -> Result<(), String> {
    let engine = runtime.engine();
    let connector = engine
        .connectors()
        .get(&trigger.connector)
        .ok_or_else(|| format!("no connector named `{}`", trigger.connector))?;
    let connection = match &trigger.connection {
        Some(name) => Some(engine.connection(&sink.recipe.workspace_id, name).await?),
        None => None,
    };
    tracing::info!(connector = %trigger.connector, recipe = %sink.recipe.name, "subscribing");
    connector
        .subscribe(connection.as_ref(), &trigger.options, sink)
        .await
        .map_err(|error| error.message)
}
