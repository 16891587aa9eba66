//! Poll triggers: each enabled recipe with a `poll` trigger is polled every `every`. A poll
//! calls the trigger's action from the stored cursor; the items whose keys were not seen
//! before become jobs, committed with their keys and the new cursor in one transaction. The
//! state is keyed by the recipe, so that an item makes one job once across restarts, edits
//! of the recipe and disable/enable; `reset` (an explicit, logged request) forgets it.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_recipe::Recipe;
use weft_recipe::model::{PollTrigger, Trigger};
use weft_store::StoredRecipe;

use crate::Runtime;

/// When each poll trigger of this process is next due, which are polling now, and which were
/// made due while they polled (they poll again as soon as that poll ends).
#[derive(Default)]
pub struct PollClock {
    next: Mutex<HashMap<String, Instant>>,
    polling: Mutex<HashSet<String>>,
    again: Mutex<HashSet<String>>,
}

impl PollClock {
    /// Makes a trigger due at once (after a save or a reset); one polling now polls again
    /// when it ends, since what it read may be from before the change.
    pub fn due_now(&self, recipe_id: &str) {
        // Under the `polling` lock, as in `done`: a poll cannot end in between.
        let Ok(polling) = self.polling.lock() else {
            return;
        };
        if let Ok(mut next) = self.next.lock() {
            next.remove(recipe_id);
        }
        if polling.contains(recipe_id)
            && let Ok(mut again) = self.again.lock()
        {
            again.insert(recipe_id.to_owned());
        }
    }

    fn is_due(&self, recipe_id: &str) -> bool {
        let not_yet = self
            .next
            .lock()
            .ok()
            .and_then(|next| next.get(recipe_id).copied())
            .is_some_and(|at| at > Instant::now());
        let polling = self
            .polling
            .lock()
            .is_ok_and(|polling| polling.contains(recipe_id));
        !not_yet && !polling
    }

    fn start(&self, recipe_id: &str) {
        if let Ok(mut polling) = self.polling.lock() {
            polling.insert(recipe_id.to_owned());
        }
    }

    fn done(&self, recipe_id: &str, every: Duration) {
        let Ok(mut polling) = self.polling.lock() else {
            return;
        };
        let again = self
            .again
            .lock()
            .is_ok_and(|mut again| again.remove(recipe_id));
        if !again && let Ok(mut next) = self.next.lock() {
            next.insert(recipe_id.to_owned(), Instant::now() + every);
        }
        polling.remove(recipe_id);
    }
}

/// Starts a poll of every enabled poll trigger that is due; each runs in a task of its own,
/// so that a slow remote end holds up no other trigger.
pub fn poll_due(runtime: &Runtime, recipes: &[(StoredRecipe, Arc<Recipe>)]) {
    for (stored, recipe) in recipes {
        let Trigger::Poll(poll) = &recipe.trigger else {
            continue;
        };
        let clock = runtime.poll_clock();
        if !clock.is_due(&stored.id) {
            continue;
        }
        clock.start(&stored.id);
        let (stored, poll, runtime) = (stored.clone(), poll.clone(), runtime.clone());
        tokio::spawn(async move {
            if let Err(error) = poll_once(&runtime, &stored, &poll).await {
                metrics::counter!("weft_poll_failures_total").increment(1);
                let error = runtime.loggable(&stored.workspace_id, &error.to_string());
                tracing::warn!(recipe = %stored.name, %error, "a poll failed; it is tried again at its next interval");
            }
            runtime.poll_clock().done(&stored.id, poll.every);
        });
    }
}

/// One poll of one recipe: call, then commit the new items' jobs with the new cursor.
async fn poll_once(
    runtime: &Runtime,
    stored: &StoredRecipe,
    poll: &PollTrigger,
) -> Result<(), String> {
    let store = runtime.store();
    let state = store
        .poll_state(&stored.id)
        .await
        .map_err(|error| error.to_string())?;
    let cursor = state
        .as_ref()
        .and_then(|state| state.cursor.clone())
        .or_else(|| poll.cursor.as_ref().map(|rule| rule.initial.clone()))
        .unwrap_or(Value::Null);
    let polled = runtime
        .engine()
        .poll(&stored.workspace_id, poll, &cursor)
        .await?;
    let committed = store
        .commit_poll(
            stored,
            state.map(|state| state.polls),
            &polled.cursor,
            &polled.items,
        )
        .await
        .map_err(|error| error.to_string())?;
    match committed {
        Some(jobs) => {
            for _ in &jobs {
                crate::event_accepted("poll");
                runtime.job_queued();
            }
            if !jobs.is_empty() {
                tracing::info!(recipe = %stored.name, jobs = jobs.len(), "a poll found new items");
            }
        }
        None => {
            tracing::info!(recipe = %stored.name, "another process committed this poll first; its result is dropped");
        }
    }
    Ok(())
}
