//! The scheduler: fires each tick of each enabled schedule trigger once.
//!
//! The store keeps when each schedule last fired; a tick is fired by moving that clock and
//! queueing the job in one transaction, conditional on the clock not having moved, so that no
//! tick fires twice (also with several processes) and none is missed across a restart, as long
//! as it is at most the runtime's catch-up window old ([`CATCH_UP`] by default). Older ticks
//! are skipped, not fired late in a burst.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use weft_recipe::Recipe;
use weft_recipe::model::Trigger;
use weft_store::StoredRecipe;

use crate::Runtime;

/// How far back missed ticks are still fired after a stop, by default.
pub const CATCH_UP: Duration = Duration::from_secs(3600);
/// How often the scheduler looks for due ticks.
pub const LOOK_EVERY: Duration = Duration::from_millis(500);
/// Most ticks fired for one schedule in one look, so that one busy schedule cannot hold up
/// the others; the rest are fired on the next look.
const MOST_PER_LOOK: usize = 100;

pub async fn fire_due(
    runtime: &Runtime,
    recipes: &[(StoredRecipe, Arc<Recipe>)],
) -> Result<(), String> {
    let store = runtime.store();
    for (stored, recipe) in recipes {
        let Trigger::Schedule(schedule) = &recipe.trigger else {
            continue;
        };
        let now = Utc::now();
        let Some(mut previous) = store
            .schedule_fired_at(&stored.id)
            .await
            .map_err(|error| error.to_string())?
        else {
            // A new or re-enabled schedule starts from now: no runs for the time before.
            store
                .reset_schedule(&stored.id, Some(now.trunc_subsecs(0)))
                .await
                .map_err(|error| error.to_string())?;
            continue;
        };
        let window =
            chrono::Duration::from_std(runtime.catch_up()).unwrap_or(chrono::Duration::hours(1));
        let mut tick = schedule.next_after(previous);
        if tick.is_some_and(|at| now - at > window) {
            let resume = now - window - chrono::Duration::milliseconds(1);
            tracing::warn!(recipe = %stored.name, since = %previous, "schedule ticks older than the catch-up window are skipped");
            tick = schedule.next_after(resume);
        }
        let mut fired = 0;
        while let Some(at) = tick.filter(|at| *at <= now && fired < MOST_PER_LOOK) {
            let trigger = json!({ "scheduled_at": rfc3339(at) });
            let moved = store
                .fire_schedule(stored, previous, at, &trigger)
                .await
                .map_err(|error| error.to_string())?;
            if !moved {
                break;
            }
            runtime.job_queued();
            crate::event_accepted("schedule");
            previous = at;
            fired += 1;
            tick = schedule.next_after(at);
        }
    }
    Ok(())
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
