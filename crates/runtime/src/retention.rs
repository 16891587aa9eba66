//! Retention: deletes the job history past each recipe's `retention.keep` (else its
//! workspace's, else the server's default), and a workspace's oldest history beyond its size
//! cap, in small batches with pauses between them, so that the server goes on serving.

use chrono::{DateTime, Utc};
use std::time::Duration;

use weft_store::{RetentionSettings, StoreError};

use crate::Runtime;

/// Jobs deleted in one statement.
const BATCH: i64 = 500;
/// The pause between two batches, in which the server's own work goes first.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Jobs older than their keep.
    pub expired: u64,
    /// Jobs over their workspace's size cap.
    pub over_cap: u64,
}

/// How long a recipe's history is kept: its own `retention.keep`, else its workspace's,
/// else the server's.
pub fn keep_for(
    recipe_keep: Option<Duration>,
    workspace: &RetentionSettings,
    default_keep: Duration,
) -> Duration {
    recipe_keep.or(workspace.keep).unwrap_or(default_keep)
}

/// The creation time before which history kept for `keep` is deleted (the dawn of time for
/// a keep longer than the calendar).
fn cutoff(keep: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(keep)
        .ok()
        .and_then(|keep| Utc::now().checked_sub_signed(keep))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes whatever history has passed its time or its workspace's cap, everywhere.
pub async fn apply_retention(
    runtime: &Runtime,
    default_keep: Duration,
) -> Result<RetentionPass, StoreError> {
    let store = runtime.store();
    let workspaces = store.workspaces_with_retention().await?;
    let settings_of = |workspace: &str| {
        workspaces
            .iter()
            .find(|(id, _)| id == workspace)
            .map(|(_, settings)| settings.clone())
            .unwrap_or_default()
    };
    let mut pass = RetentionPass::default();
    for stored in store.recipes().await? {
        // A recipe that no longer compiles keeps to its workspace's rule.
        let recipe_keep = runtime
            .recipes()
            .version(&stored.id, stored.version)
            .await
            .ok()
            .and_then(|recipe| recipe.retention.as_ref().and_then(|rule| rule.keep));
        // A plan's ceiling bounds whatever the recipe or the workspace asks.
        let keep = runtime.plan_of(&stored.workspace_id).keep_for(keep_for(
            recipe_keep,
            &settings_of(&stored.workspace_id),
            default_keep,
        ));
        let before = cutoff(keep);
        loop {
            let deleted = store
                .delete_jobs_of_recipe_before(&stored.id, before, BATCH)
                .await?;
            pass.expired += deleted;
            if deleted < BATCH as u64 {
                break;
            }
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
    }
    for (workspace, settings) in &workspaces {
        let keep = runtime
            .plan_of(workspace)
            .keep_for(settings.keep.unwrap_or(default_keep));
        let before = cutoff(keep);
        loop {
            let deleted = store
                .delete_orphan_jobs_before(workspace, before, BATCH)
                .await?;
            pass.expired += deleted;
            if deleted < BATCH as u64 {
                break;
            }
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
        if let Some(cap) = settings.max_history_bytes {
            let mut excess = store.history_bytes(workspace).await? - cap;
            while excess > 0 {
                let (deleted, freed) = store.delete_oldest_jobs(workspace, excess, BATCH).await?;
                pass.over_cap += deleted;
                excess -= freed;
                if deleted == 0 {
                    break;
                }
                tokio::time::sleep(BETWEEN_BATCHES).await;
            }
        }
    }
    // Also when nothing was deleted: the raw events of the jobs that ended since the last
    // pass, replaced by their masked records, may still be in SQLite's write-ahead log.
    store.reclaim_space().await?;
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_keeps_to_its_own_rule_then_its_workspaces_then_the_servers() {
        let day = Duration::from_secs(86_400);
        let workspace = RetentionSettings {
            keep: Some(7 * day),
            max_history_bytes: None,
        };
        assert_eq!(keep_for(Some(day), &workspace, 30 * day), day);
        assert_eq!(keep_for(None, &workspace, 30 * day), 7 * day);
        assert_eq!(
            keep_for(None, &RetentionSettings::default(), 30 * day),
            30 * day
        );
    }
}
