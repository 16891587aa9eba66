//! The workspace's dashboard figures: jobs per hour by outcome, the recipes failing most, and
//! the queue.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{Duration, DurationRound, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

/// How many recipes the "failing most" list names.
const FAILING_LISTED: i64 = 5;

#[derive(Deserialize)]
pub struct DashboardQuery {
    /// How many days back: 1 or 7.
    days: Option<i64>,
}

/// `GET /api/v1/dashboard?days=1|7`: the last day or week of the caller's workspace.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let days = query.days.unwrap_or(1);
    if !matches!(days, 1 | 7) {
        return Err(ApiError::bad_request(format!(
            "`days` is 1 or 7, not {days}"
        )));
    }
    // Whole hours, so that the first bar is as full as the others.
    let now = Utc::now();
    let since = (now - Duration::days(days))
        .duration_trunc(Duration::hours(1))
        .unwrap_or(now);
    let store = state.runtime.store();
    let workspace = &caller.workspace_id;
    let hours = store.jobs_per_hour(workspace, since).await?;
    let failing = store
        .failing_recipes(workspace, since, FAILING_LISTED)
        .await?;
    let unfinished = store.unfinished_jobs_in(workspace).await?;
    let (total, failed) = hours.iter().fold((0, 0), |(total, failed), hour| {
        (
            total + hour.succeeded + hour.failed + hour.unfinished,
            failed + hour.failed,
        )
    });
    Ok(Json(json!({
        "since": since,
        "until": now,
        "hours": hours,
        "totals": { "jobs": total, "failed": failed },
        "failing": failing,
        "queue": {
            "queued": unfinished.queued,
            "running": unfinished.running,
            "waiting": unfinished.waiting,
            "held": unfinished.held,
            "oldest_queued": unfinished.oldest_queued,
        },
    })))
}
