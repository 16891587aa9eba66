//! Job history over the API.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_store::{JobFilter, JobStatus, StepStatus, parse_status};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody};

#[derive(Deserialize)]
pub struct ListQuery {
    recipe: Option<String>,
    status: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<String>,
    limit: Option<i64>,
}

/// The caller's workspace's jobs that a query selects.
fn job_filter(workspace: &str, query: ListQuery) -> Result<JobFilter, ApiError> {
    let status = match query.status.as_deref() {
        Some(text) => Some(parse_status(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{text}` is not a job status (queued, running, waiting, succeeded, failed)"
            ))
        })?),
        None => None,
    };
    Ok(JobFilter {
        workspace_id: Some(workspace.to_owned()),
        recipe_id: query.recipe,
        status,
        since: query.since,
        until: query.until,
        before: query.before,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    })
}

/// A job of the caller's workspace, or a 404: another workspace's jobs are not there.
async fn check_job_in(state: &AppState, workspace: &str, id: &str) -> Result<(), ApiError> {
    match state.runtime.store().job_workspace(id).await? {
        Some(found) if found == workspace => Ok(()),
        _ => Err(ApiError::not_found("job with this id")),
    }
}

/// Jobs, newest first. `next` is the cursor of the following page, if there is one.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let filter = job_filter(&caller.workspace_id, query)?;
    let jobs = state.runtime.store().jobs(&filter).await?;
    let next = (jobs.len() as i64 == filter.limit)
        .then(|| jobs.last().map(|job| job.id.clone()))
        .flatten();
    Ok(Json(json!({ "jobs": jobs, "next": next })))
}

pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_job_in(&state, &caller.workspace_id, &id).await?;
    let store = state.runtime.store();
    let mut record = store
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("job with this id"))?;
    if !record.status.is_final() {
        // Until the job ends, its stored event is the raw one it runs on: show it as its
        // record will hold it.
        let recipe = match store.job_origin(&id).await? {
            Some((recipe_id, version)) => state
                .runtime
                .recipes()
                .version(&recipe_id, version)
                .await
                .ok(),
            None => None,
        };
        let workspace = state
            .runtime
            .engine()
            .masks()
            .for_workspace(&caller.workspace_id);
        let rules = weft_engine::mask::MaskRules {
            paths: recipe.as_ref().map_or(&[], |recipe| &recipe.mask),
            workspace: &workspace,
            level: recipe
                .as_ref()
                .and_then(|recipe| recipe.retention.as_ref())
                .map_or(weft_recipe::model::RecordLevel::Masked, |retention| {
                    retention.record
                }),
        };
        weft_engine::mask::protect_trigger(&rules, &mut record.trigger);
    }
    Ok(Json(serde_json::to_value(record).unwrap_or(Value::Null)))
}

/// Where a rerun starts and on which version of the recipe.
#[derive(Deserialize, Default)]
pub struct RerunRequest {
    /// `start`, `failed` (the first failed step; the default for a failed job) or a step id.
    from: Option<String>,
    /// `original` (the version that ran; the default) or `current`.
    version: Option<String>,
}

/// Reruns a job as a new job; steps before the starting point are taken from the record.
pub async fn rerun(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Extension<AuditNote>, Json<Value>), ApiError> {
    let request = parse_rerun(&body)?;
    let job_id = rerun_one(&state, &caller.workspace_id, &id, &request).await?;
    Ok((
        StatusCode::ACCEPTED,
        AuditNote::details(json!({ "job_id": job_id, "from": request.from })),
        Json(json!({ "job_id": job_id, "rerun_of": id })),
    ))
}

/// Reruns every job a filter selects (at most 1,000 at a time).
pub async fn rerun_many(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Extension<AuditNote>, Json<Value>), ApiError> {
    #[derive(Deserialize)]
    struct Bulk {
        #[serde(flatten)]
        filter: ListQuery,
        from: Option<String>,
        version: Option<String>,
    }
    // A misspelt filter key must not widen the selection to every job.
    const KEYS: &[&str] = &[
        "recipe", "status", "since", "until", "before", "limit", "from", "version",
    ];
    let keys: serde_json::Map<String, Value> = serde_json::from_str(&body).map_err(|error| {
        ApiError::bad_request(format!("the request is not a JSON object: {error}"))
    })?;
    if let Some(unknown) = keys.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown key `{unknown}` (known: {})",
            KEYS.join(", ")
        )));
    }
    if !["recipe", "status", "since", "until"]
        .iter()
        .any(|key| keys.contains_key(*key))
    {
        return Err(ApiError::bad_request(
            "a bulk rerun needs a filter: recipe, status, since or until",
        ));
    }
    let bulk: Bulk = if body.trim().is_empty() {
        return Err(ApiError::bad_request(
            "a bulk rerun needs a filter, such as {\"status\": \"failed\"}",
        ));
    } else {
        serde_json::from_str(&body)
            .map_err(|error| ApiError::bad_request(format!("the request is not valid: {error}")))?
    };
    let request = RerunRequest {
        from: bulk.from,
        version: bulk.version,
    };
    let filter = job_filter(&caller.workspace_id, bulk.filter)?;
    let selected = state.runtime.store().jobs(&filter).await?;
    let mut started = Vec::new();
    let mut skipped = Vec::new();
    for job in selected {
        match rerun_one(&state, &caller.workspace_id, &job.id, &request).await {
            Ok(new_id) => started.push(json!({ "rerun_of": job.id, "job_id": new_id })),
            Err(error) => skipped.push(json!({ "job_id": job.id, "reason": error.message() })),
        }
    }
    // The filter, and how many jobs it started: not the jobs' data.
    let audited = json!({ "filter": keys, "started": started.len(), "skipped": skipped.len() });
    Ok((
        StatusCode::ACCEPTED,
        AuditNote::details(audited),
        Json(json!({ "started": started, "skipped": skipped })),
    ))
}

fn parse_rerun(body: &str) -> Result<RerunRequest, ApiError> {
    if body.trim().is_empty() {
        return Ok(RerunRequest::default());
    }
    serde_json::from_str(body)
        .map_err(|error| ApiError::bad_request(format!("the rerun request is not valid: {error}")))
}

async fn rerun_one(
    state: &AppState,
    workspace: &str,
    id: &str,
    request: &RerunRequest,
) -> Result<String, ApiError> {
    check_job_in(state, workspace, id).await?;
    let store = state.runtime.store();
    let original = store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job with this id"))?;
    if !original.status.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_not_over",
            "only a job that has ended can be rerun",
        ));
    }
    let (recipe_id, version) = store
        .job_origin(id)
        .await?
        .ok_or_else(|| ApiError::not_found("job with this id"))?;
    let current = store.recipe(&recipe_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "recipe_gone",
            "the job's recipe was deleted",
        )
    })?;
    let recipe = match request.version.as_deref().unwrap_or("original") {
        "original" => {
            let stored = store
                .recipe_version(&recipe_id, version)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "version_gone",
                        "the version that ran is gone",
                    )
                })?;
            weft_store::StoredRecipe {
                version: stored.version,
                source: stored.source,
                ..current
            }
        }
        "current" => current,
        other => {
            return Err(ApiError::bad_request(format!(
                "version must be `original` or `current`, not `{other}`"
            )));
        }
    };
    let from = request.from.clone().unwrap_or_else(|| {
        if original.status == JobStatus::Failed {
            "failed".to_owned()
        } else {
            "start".to_owned()
        }
    });
    let cut = match from.as_str() {
        "start" => 0,
        "failed" => original
            .steps
            .iter()
            .position(|step| {
                // The step that failed the job, not one that failed and was let go.
                let failed_job = original
                    .error
                    .as_ref()
                    .and_then(|error| error.step.as_deref());
                step.status == StepStatus::Failed && failed_job.is_none_or(|id| id == step.id)
            })
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "no_failed_step",
                    "the job has no failed step to rerun from",
                )
            })?,
        step => original
            .steps
            .iter()
            .position(|record| record.id == step)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_step",
                    format!("step `{step}` did not run in this job"),
                )
            })?,
    };
    let reused: Vec<_> = original.steps[..cut]
        .iter()
        .filter(|step| step.status == StepStatus::Succeeded)
        .cloned()
        .collect();
    // The steps taken over are not run again, and not charged again.
    let reused_tasks = match state.compiled(&recipe).await {
        Ok(compiled) => weft_runtime::usage::tasks_in(&compiled, &reused),
        Err(_) => 0,
    };
    let job_id = store
        .rerun_job(&original, &recipe, &reused, reused_tasks)
        .await?;
    state.runtime.job_queued();
    Ok(job_id)
}

/// Cancels a job that is queued or waiting.
pub async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_job_in(&state, &user.0.workspace_id, &id).await?;
    let store = state.runtime.store();
    let reason = format!("cancelled by {}", user.0.user.email);
    if store.cancel_job(&id, &reason).await? {
        return Ok(Json(
            json!({ "job_id": id, "status": "failed", "message": reason }),
        ));
    }
    if state.runtime.cancel_running(&id, &reason).await? {
        return Ok(Json(json!({
            "job_id": id,
            "status": "running",
            "message": format!("{reason}: the job stops before its next step"),
        })));
    }
    match store.job(&id).await? {
        None => Err(ApiError::not_found("job with this id")),
        Some(job) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_cancellable",
            format!(
                "the job has already ended ({})",
                weft_store::status_text(job.status)
            ),
        )),
    }
}
