//! Failure notices. A job that ends failed leaves a notice in the store (in the same write as
//! its record); every `--notify-every` the notices waiting are mailed as digests: one mail per
//! address, listing every failure it should hear of since the last digest, so that a storm of
//! failures sends one mail, not thousands. The recipe's `on_failure.notify` addresses hear of
//! its failures; the workspace's owners (at their notification addresses) hear of all.
//! A digest names recipes, times and job ids, never the jobs' data.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::watch;
use weft_store::FailureNotice;

use crate::AppState;
use crate::error::ApiError;

/// Most failures one digest lists; it counts the rest.
const LISTED: usize = 50;
/// Most notices read at once; more wait for the next round.
const READ_AT_ONCE: i64 = 10_000;

/// Mails the waiting notices every `every` while this process leads the platform, until
/// `stopping` turns true.
pub fn spawn_failure_notices(
    state: AppState,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // One process of a platform mails them: the one that leads, so that none goes twice.
    let leading = state.runtime.leading();
    tokio::spawn(async move {
        while !*stopping.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopping.changed() => {}
            }
            if !*leading.borrow() {
                continue;
            }
            if let Err(error) = send_failure_notices(&state).await {
                tracing::warn!(error = %error.message(), "cannot send failure notices; trying again");
            }
            if let Err(error) = crate::usage::send_usage_notices(&state).await {
                tracing::warn!(error = %error.message(), "cannot send usage warnings; trying again");
            }
        }
    })
}

/// Sends the waiting notices, one digest per address of each workspace; how many notices went.
pub async fn send_failure_notices(state: &AppState) -> Result<usize, ApiError> {
    let store = state.runtime.store();
    let pending = store.pending_failure_notices(READ_AT_ONCE).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    if state.settings.mail_connection.is_none() {
        tracing::warn!(
            notices = pending.len(),
            "no --mail-connection: failure notices are not sent"
        );
        let ids: Vec<String> = pending.into_iter().map(|notice| notice.job_id).collect();
        store.forget_failure_notices(&ids).await?;
        return Ok(0);
    }
    let mut by_workspace: BTreeMap<String, Vec<FailureNotice>> = BTreeMap::new();
    for notice in pending {
        by_workspace
            .entry(notice.workspace_id.clone())
            .or_default()
            .push(notice);
    }
    let mut sent = 0;
    for (workspace, notices) in by_workspace {
        let digests = digests_of(state, &workspace, &notices).await?;
        for (to, listed) in &digests {
            let (subject, text) = digest_text(state, &workspace, listed);
            crate::accounts::send_mail(state, to, &subject, &text).await?;
        }
        let ids: Vec<String> = notices.iter().map(|notice| notice.job_id.clone()).collect();
        store.forget_failure_notices(&ids).await?;
        sent += ids.len();
    }
    Ok(sent)
}

/// For each address, the failures it hears of.
async fn digests_of<'n>(
    state: &AppState,
    workspace: &str,
    notices: &'n [FailureNotice],
) -> Result<BTreeMap<String, Vec<&'n FailureNotice>>, ApiError> {
    let store = state.runtime.store();
    let owners = store.owner_notice_addresses(workspace).await?;
    let mut notify_of: HashMap<&str, Vec<String>> = HashMap::new();
    let mut digests: BTreeMap<String, Vec<&FailureNotice>> = BTreeMap::new();
    for notice in notices {
        if !notify_of.contains_key(notice.recipe_id.as_str()) {
            let notify = recipe_notify(state, &notice.recipe_id).await;
            notify_of.insert(&notice.recipe_id, notify);
        }
        let mut addresses: Vec<String> = owners
            .iter()
            .chain(
                notify_of
                    .get(notice.recipe_id.as_str())
                    .into_iter()
                    .flatten(),
            )
            .map(|address| address.trim().to_lowercase())
            .collect();
        addresses.sort();
        addresses.dedup();
        for address in addresses {
            digests.entry(address).or_default().push(notice);
        }
    }
    Ok(digests)
}

/// The recipe's `on_failure.notify` addresses (none when it was deleted since).
async fn recipe_notify(state: &AppState, recipe_id: &str) -> Vec<String> {
    let Ok(Some(stored)) = state.runtime.store().recipe(recipe_id).await else {
        return Vec::new();
    };
    match state.compiled(&stored).await {
        Ok(recipe) => recipe
            .on_failure
            .as_ref()
            .map(|on_failure| on_failure.notify.clone())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn digest_text(state: &AppState, workspace: &str, listed: &[&FailureNotice]) -> (String, String) {
    let subject = match listed {
        [one] => format!("Weft: {} failed in workspace {workspace}", one.recipe_name),
        _ => format!(
            "Weft: {} jobs failed in workspace {workspace}",
            listed.len()
        ),
    };
    let mut text = format!(
        "{} job(s) of workspace {workspace} failed since the last notice:\n\n",
        listed.len()
    );
    for notice in listed.iter().take(LISTED) {
        text.push_str(&format!(
            "- {} {}: {}/api/v1/jobs/{}\n",
            notice.failed_at.format("%Y-%m-%d %H:%M:%S UTC"),
            notice.recipe_name,
            state.settings.public_url,
            notice.job_id
        ));
    }
    if listed.len() > LISTED {
        text.push_str(&format!("- and {} more\n", listed.len() - LISTED));
    }
    text.push_str("\nYou get this notice as an owner of the workspace or as an address in the recipe's on_failure.notify.\n");
    (subject, text)
}
