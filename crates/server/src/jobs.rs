//! Job history over the API.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_store::{JobFilter, parse_status};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

#[derive(Deserialize)]
pub struct ListQuery {
    recipe: Option<String>,
    status: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<String>,
    limit: Option<i64>,
}

/// Jobs, newest first. `next` is the cursor of the following page, if there is one.
pub async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = match query.status.as_deref() {
        Some(text) => Some(parse_status(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{text}` is not a job status (queued, running, waiting, succeeded, failed)"
            ))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let filter = JobFilter {
        recipe_id: query.recipe,
        status,
        since: query.since,
        until: query.until,
        before: query.before,
        limit,
    };
    let jobs = state.runtime.store().jobs(&filter).await?;
    let next = (jobs.len() as i64 == limit)
        .then(|| jobs.last().map(|job| job.id.clone()))
        .flatten();
    Ok(Json(json!({ "jobs": jobs, "next": next })))
}

pub async fn show(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state
        .runtime
        .store()
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("job with this id"))?;
    Ok(Json(serde_json::to_value(record).unwrap_or(Value::Null)))
}
