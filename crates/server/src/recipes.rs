//! Recipes over the API: saved with every version kept, enabled and disabled, run by hand.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use weft_recipe::model::Trigger;
use weft_recipe::{Recipe, compile_recipe};
use weft_store::StoredRecipe;

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody};
use weft_runtime::plans::Measure;

/// Compiles a recipe's text off the async threads (a large recipe takes a while).
async fn compiled_text(
    state: &AppState,
    body: String,
) -> Result<Result<Recipe, weft_recipe::Problems>, ApiError> {
    let registry = state.runtime.recipes().registry().clone();
    tokio::task::spawn_blocking(move || compile_recipe(&body, &registry))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the recipe compiler failed",
            )
        })
}

/// Compiles a recipe's text for saving; every problem goes back to the caller.
async fn compile(state: &AppState, body: String) -> Result<(Recipe, String), ApiError> {
    compiled_text(state, body.clone())
        .await?
        .map(|recipe| (recipe, body))
        .map_err(ApiError::invalid_recipe)
}

/// `POST /api/v1/recipes/check`: what saving this text would say, without saving it: every
/// problem at its line and column, or the flow of the valid recipe. The editor calls it as
/// people type, so a recipe with problems is an answer, not an error.
pub async fn check(
    State(state): State<AppState>,
    _caller: CurrentUser,
    TextBody(body): TextBody,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(match compiled_text(&state, body).await? {
        Ok(recipe) => {
            json!({ "valid": true, "problems": [], "flow": crate::flow::outline(&recipe) })
        }
        Err(problems) => json!({
            "valid": false,
            "problems": crate::error::problems_json(&problems),
            "flow": null,
        }),
    }))
}

/// A recipe of the caller's workspace, or a 404: another workspace's recipes are not there.
pub(crate) async fn recipe_in(
    state: &AppState,
    workspace: &str,
    id: &str,
) -> Result<StoredRecipe, ApiError> {
    state
        .runtime
        .store()
        .recipe(id)
        .await?
        .filter(|stored| stored.workspace_id == workspace)
        .ok_or_else(|| ApiError::not_found("recipe with this id"))
}

fn recipe_json(stored: &StoredRecipe, with_source: bool) -> Value {
    let mut value = json!({
        "id": stored.id,
        "name": stored.name,
        "enabled": stored.enabled,
        "version": stored.version,
        "webhook_path": stored.webhook_path,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    });
    if with_source {
        value["source"] = Value::String(stored.source.clone());
    }
    value
}

pub async fn create(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<Response, ApiError> {
    create_in(&state, &caller, body).await
}

/// Makes a recipe of the caller's workspace from its text.
pub(crate) async fn create_in(
    state: &AppState,
    caller: &weft_store::Caller,
    body: String,
) -> Result<Response, ApiError> {
    crate::workspaces::refuse_if_closing(state, &caller.workspace_id).await?;
    let (recipe, source) = compile(state, body).await?;
    // A new recipe is on.
    crate::usage::check_room(state, &caller.workspace_id, Measure::ActiveRecipes, 1).await?;
    let stored = state
        .runtime
        .store()
        .create_recipe(
            &caller.workspace_id,
            &recipe.name,
            &source,
            recipe.webhook_path(),
        )
        .await?;
    save_concurrency(state, &stored, &recipe).await?;
    state.runtime.poll_soon(&stored.id);
    Ok((
        StatusCode::CREATED,
        AuditNote::created(&stored.id, audited(&stored)),
        Json(recipe_json(&stored, true)),
    )
        .into_response())
}

/// What the audit log keeps of a recipe's version: not its text, which the versions keep.
fn audited(stored: &StoredRecipe) -> Value {
    json!({
        "name": stored.name,
        "version": stored.version,
        "enabled": stored.enabled,
        "webhook_path": stored.webhook_path,
    })
}

pub async fn replace(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let (recipe, source) = compile(&state, body).await?;
    let store = state.runtime.store();
    let before = recipe_in(&state, &caller.workspace_id, &id).await?;
    let stored = store
        .update_recipe(&id, &recipe.name, &source, recipe.webhook_path())
        .await?
        .ok_or_else(|| ApiError::not_found("recipe with this id"))?;
    save_concurrency(&state, &stored, &recipe).await?;
    state.runtime.poll_soon(&stored.id);
    Ok((
        AuditNote::changed(audited(&before), audited(&stored)),
        Json(recipe_json(&stored, true)),
    ))
}

/// The recipe's `concurrency`, bounded by its workspace's plan, where the queue can see it.
async fn save_concurrency(
    state: &AppState,
    stored: &weft_store::StoredRecipe,
    recipe: &Recipe,
) -> Result<(), ApiError> {
    // The text was compiled outside any workspace: the stored recipe says whose it is.
    let max_running = state
        .runtime
        .plan_of(&stored.workspace_id)
        .concurrency_for(recipe.concurrency)
        .map(i64::from);
    Ok(state
        .runtime
        .store()
        .set_recipe_concurrency(&stored.id, max_running)
        .await?)
}

pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let store = state.runtime.store();
    let recipes = store.recipes_in(&caller.workspace_id).await?;
    let mut last_jobs: std::collections::HashMap<String, weft_store::LastJob> = store
        .last_jobs(&caller.workspace_id)
        .await?
        .into_iter()
        .map(|last| (last.recipe_id.clone(), last))
        .collect();
    let listed: Vec<Value> = recipes
        .iter()
        .map(|recipe| {
            let mut value = recipe_json(recipe, false);
            value["last_job"] = last_jobs.remove(&recipe.id).map_or(Value::Null, |last| {
                json!({ "id": last.job_id, "status": last.status, "created_at": last.created_at })
            });
            value
        })
        .collect();
    Ok(Json(json!({ "recipes": listed })))
}

pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = recipe_in(&state, &caller.workspace_id, &id).await?;
    Ok(Json(recipe_json(&stored, true)))
}

pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<(Extension<AuditNote>, StatusCode), ApiError> {
    let store = state.runtime.store();
    let before = recipe_in(&state, &caller.workspace_id, &id).await?;
    match before {
        before if store.delete_recipe(&id).await? => Ok((
            AuditNote::details(json!({ "before": audited(&before) })),
            StatusCode::NO_CONTENT,
        )),
        _ => Err(ApiError::not_found("recipe with this id")),
    }
}

async fn set_enabled(
    state: &AppState,
    caller: &weft_store::Caller,
    id: &str,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    let stored = recipe_in(state, &caller.workspace_id, id).await?;
    if enabled {
        crate::workspaces::refuse_if_closing(state, &caller.workspace_id).await?;
        if !stored.enabled {
            crate::usage::check_room(state, &caller.workspace_id, Measure::ActiveRecipes, 1)
                .await?;
        }
    }
    let store = state.runtime.store();
    if !store.set_recipe_enabled(id, enabled).await? {
        return Err(ApiError::not_found("recipe with this id"));
    }
    // A schedule that comes back starts from now: the ticks while it was off do not run.
    store.reset_schedule(id, None).await?;
    // A poll that comes back looks at once, from where it stopped: nothing is fired twice.
    state.runtime.poll_soon(id);
    let stored = store
        .recipe(id)
        .await?
        .ok_or_else(|| ApiError::not_found("recipe with this id"))?;
    Ok(Json(recipe_json(&stored, false)))
}

pub async fn enable(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &caller, &id, true).await
}

pub async fn disable(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &caller, &id, false).await
}

/// Forgets a poll trigger's cursor and seen keys: items seen before make jobs again.
pub async fn reset_poll(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = recipe_in(&state, &caller.workspace_id, &id).await?;
    let recipe = state.compiled(&stored).await?;
    if !matches!(recipe.trigger, Trigger::Poll(_)) {
        return Err(ApiError::bad_request(format!(
            "recipe `{}` has a {} trigger, not a poll",
            stored.name,
            recipe.trigger.kind()
        )));
    }
    let had_state = state
        .runtime
        .reset_poll(&stored.id, &caller.user.email)
        .await?;
    Ok(Json(json!({ "reset": had_state })))
}

pub async fn versions(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.runtime.store();
    recipe_in(&state, &caller.workspace_id, &id).await?;
    let versions = store.recipe_versions(&id).await?;
    let listed: Vec<Value> = versions
        .iter()
        .map(|version| json!({ "version": version.version, "created_at": version.created_at, "source": version.source }))
        .collect();
    Ok(Json(json!({ "versions": listed })))
}

/// Runs a recipe by hand with a JSON input, checked against a manual trigger's input schema.
pub async fn run(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
    TextBody(body): TextBody,
) -> Result<Response, ApiError> {
    let input: Value = if body.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&body)
            .map_err(|error| ApiError::bad_request(format!("the input is not JSON: {error}")))?
    };
    let stored = recipe_in(&state, &caller.workspace_id, &id).await?;
    let recipe = state.compiled(&stored).await?;
    if let Trigger::Manual(manual) = &recipe.trigger
        && let Some(schema) = &manual.input_schema
    {
        schema.check(&input).map_err(|message| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
        })?;
    }
    let job_id = weft_store::new_id();
    let accepted = state
        .runtime
        .accept(
            &job_id,
            &std::sync::Arc::new(stored),
            &recipe,
            input,
            weft_runtime::Acceptance::Committed,
        )
        .await?;
    weft_runtime::event_accepted("manual");
    if accepted == weft_runtime::Accepted::Held {
        return Ok(crate::hooks::held_answer(&job_id));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "job_id": job_id }))).into_response())
}
