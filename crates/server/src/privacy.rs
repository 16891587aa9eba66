//! Privacy over the API: what job history the workspace holds, for how long, and its rules.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use std::time::Duration;
use weft_recipe::model::RecordLevel;
use weft_runtime::retention::keep_for;
use weft_store::RetentionSettings;

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody};

fn record_name(level: RecordLevel) -> &'static str {
    match level {
        RecordLevel::Full => "full",
        RecordLevel::Masked => "masked",
        RecordLevel::Metadata => "metadata",
    }
}

fn settings_json(settings: &RetentionSettings) -> Value {
    json!({
        "keep_seconds": settings.keep.map(|keep| keep.as_secs()),
        "max_history_bytes": settings.max_history_bytes,
    })
}

/// `GET /api/v1/privacy/retention`: the workspace's rules, and for each recipe how many
/// jobs it holds, since when, how long they are kept and what of them is stored.
pub async fn report(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let store = state.runtime.store();
    let settings = store.retention_settings(&caller.workspace_id).await?;
    let recipes = store.recipes_in(&caller.workspace_id).await?;
    let mut listed = Vec::new();
    for held in store.history_held(&caller.workspace_id).await? {
        let stored = recipes.iter().find(|recipe| recipe.id == held.recipe_id);
        let compiled = match stored {
            Some(stored) => state.compiled(stored).await.ok(),
            None => None,
        };
        let rule = compiled
            .as_ref()
            .and_then(|recipe| recipe.retention.clone());
        let keep = keep_for(
            rule.as_ref().and_then(|rule| rule.keep),
            &settings,
            state.settings.history_keep,
        );
        let record = rule.map_or(RecordLevel::Masked, |rule| rule.record);
        let goes_at = held.oldest.and_then(|oldest| {
            chrono::Duration::from_std(keep)
                .ok()
                .and_then(|keep| oldest.checked_add_signed(keep))
        });
        listed.push(json!({
            "recipe_id": held.recipe_id,
            "recipe": held.recipe_name,
            "deleted_recipe": stored.is_none(),
            "jobs": held.jobs,
            "oldest_job_at": held.oldest,
            "keep_seconds": keep.as_secs(),
            "record": compiled.map(|_| record_name(record)),
            "oldest_goes_at": goes_at,
        }));
    }
    Ok(Json(json!({
        "workspace": caller.workspace_id,
        "server_keep_seconds": state.settings.history_keep.as_secs(),
        "settings": settings_json(&settings),
        "history_bytes": store.history_bytes(&caller.workspace_id).await?,
        "as_of": Utc::now(),
        "recipes": listed,
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionRequest {
    /// How long history is kept, such as `90d`; null: the server's default.
    keep: Option<String>,
    /// Most bytes of history the workspace holds; null: no cap.
    max_history_bytes: Option<i64>,
}

/// `PUT /api/v1/privacy/retention`: the workspace's rules (a recipe's own `retention.keep`
/// still wins for its jobs).
pub async fn save(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let request: RetentionRequest = serde_json::from_str(&body).map_err(|error| {
        ApiError::bad_request(format!(
            "the body must be {{\"keep\", \"max_history_bytes\"}}: {error}"
        ))
    })?;
    let keep = match request.keep.as_deref() {
        None => None,
        Some(text) => Some(
            weft_recipe::duration::parse_duration(text)
                .ok()
                .filter(|keep| *keep >= Duration::from_secs(1))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`keep` must be a duration such as 90d or 12h, not `{text}`"
                    ))
                })?,
        ),
    };
    if request.max_history_bytes.is_some_and(|bytes| bytes < 1) {
        return Err(ApiError::bad_request(
            "`max_history_bytes` must be at least 1, or null for no cap",
        ));
    }
    let store = state.runtime.store();
    let before = store.retention_settings(&caller.workspace_id).await?;
    let after = RetentionSettings {
        keep,
        max_history_bytes: request.max_history_bytes,
    };
    store
        .set_retention_settings(&caller.workspace_id, &after)
        .await?;
    Ok((
        AuditNote::changed(settings_json(&before), settings_json(&after)),
        Json(settings_json(&after)),
    ))
}
