//! The recipe library over the API: a workspace publishes a recipe in its shared form (see
//! [`weft_recipe::share`]), every workspace of the platform lists and reads what was published,
//! and imports a recipe with its placeholders filled in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use weft_store::LibraryEntry;

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};
use crate::recipes::{create_in, recipe_in};

fn entry_json(entry: &LibraryEntry, with_source: bool) -> Value {
    let mut listed = json!({
        "id": entry.id,
        "name": entry.name,
        "description": entry.description,
        "workspace": entry.workspace_id,
        "published_at": entry.published_at,
        "placeholders": entry.placeholders,
    });
    if with_source {
        listed["source"] = json!(entry.source);
    }
    listed
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    /// The id of a recipe of the caller's workspace.
    recipe: String,
    #[serde(default)]
    description: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    /// The id of a recipe of the caller's workspace.
    recipe: String,
}

/// `POST /api/v1/library/check`: what publishing a recipe would share, without publishing
/// it: the shared text, its placeholders and the values taken out, for the publisher to read
/// first. Nothing is stored.
pub async fn check(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<Json<Value>, ApiError> {
    let request: CheckRequest = parse_body(&body, "{\"recipe\": \"its id\"}")?;
    let stored = recipe_in(&state, &caller.workspace_id, &request.recipe).await?;
    let shared = weft_recipe::share::share(&stored.source).map_err(ApiError::bad_request)?;
    Ok(Json(json!({
        "name": stored.name,
        "source": shared.source,
        "placeholders": shared.placeholders(),
        "removed": removed_json(&shared),
    })))
}

/// What the sharing check took out, values included: for the publisher's eyes only.
fn removed_json(shared: &weft_recipe::share::Shared) -> Vec<Value> {
    shared
        .findings
        .iter()
        .map(|finding| {
            json!({
                "placeholder": finding.placeholder,
                "kind": finding.kind.as_str(),
                "value": finding.value,
                "lines": finding.lines,
            })
        })
        .collect()
}

/// `POST /api/v1/library`: publishes a recipe of the workspace in its shared form. The answer
/// shows the publisher what was taken out (the values, this once); the library keeps only the
/// placeholders.
pub async fn publish(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, (StatusCode, Json<Value>)), ApiError> {
    let request: PublishRequest =
        parse_body(&body, "{\"recipe\": \"its id\", \"description\": \"…\"}")?;
    if request.description.chars().count() > 2_000 {
        return Err(ApiError::bad_request(
            "`description` must be at most 2,000 characters",
        ));
    }
    let stored = recipe_in(&state, &caller.workspace_id, &request.recipe).await?;
    let shared = weft_recipe::share::share(&stored.source).map_err(ApiError::bad_request)?;
    let entry = LibraryEntry {
        id: weft_store::new_id(),
        workspace_id: caller.workspace_id.clone(),
        name: stored.name.clone(),
        description: request.description,
        source: shared.source.clone(),
        placeholders: serde_json::to_value(shared.placeholders()).unwrap_or(Value::Null),
        published_at: Utc::now(),
    };
    state
        .runtime
        .store()
        .publish_recipe(&entry, &caller.user.id)
        .await?;
    let mut answer = entry_json(&entry, true);
    answer["removed"] = json!(removed_json(&shared));
    let note = AuditNote::created(
        &entry.id,
        json!({
            "name": entry.name,
            "recipe": stored.id,
            "removed": shared.findings.iter()
                .map(|finding| json!({ "placeholder": finding.placeholder, "kind": finding.kind.as_str() }))
                .collect::<Vec<_>>(),
        }),
    );
    Ok((note, (StatusCode::CREATED, Json(answer))))
}

/// `GET /api/v1/library`: every recipe published on this platform, newest first.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(_caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let entries = state.runtime.store().library().await?;
    let listed: Vec<Value> = entries
        .iter()
        .map(|entry| entry_json(entry, false))
        .collect();
    Ok(Json(json!({ "recipes": listed })))
}

/// `GET /api/v1/library/{id}`: a published recipe with its shared text.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(_caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = state
        .runtime
        .store()
        .library_entry(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("library recipe with this id"))?;
    Ok(Json(entry_json(&entry, true)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// A value for each placeholder, such as `{"__share_connection_1__": "my-crm"}`.
    #[serde(default)]
    values: BTreeMap<String, String>,
}

/// `POST /api/v1/library/{id}/import`: makes a recipe of the caller's workspace from a
/// published one, its placeholders filled with the values given.
pub async fn import(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
    TextBody(body): TextBody,
) -> Result<Response, ApiError> {
    let request: ImportRequest = parse_body(&body, "{\"values\": {\"__share_…__\": \"value\"}}")?;
    let entry = state
        .runtime
        .store()
        .library_entry(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("library recipe with this id"))?;
    let filled =
        weft_recipe::share::fill(&entry.source, &request.values).map_err(ApiError::bad_request)?;
    create_in(&state, &caller, filled).await
}

/// `DELETE /api/v1/library/{id}`: takes a recipe the workspace published out of the library.
pub async fn unpublish(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .runtime
        .store()
        .unpublish_recipe(&caller.workspace_id, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "library recipe of this workspace with this id",
        ))
    }
}
