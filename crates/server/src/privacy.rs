//! Privacy over the API: what job history the workspace holds, for how long, and its rules.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use weft_recipe::model::RecordLevel;
use weft_runtime::retention::keep_for;
use weft_runtime::subjects::MIN_IDENTIFIER_CHARS;
use weft_store::{MaskSettings, RetentionSettings};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};

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
    let request: RetentionRequest = parse_body(&body, "{\"keep\", \"max_history_bytes\"}")?;
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

fn masking_json(settings: &MaskSettings) -> Value {
    let masks = weft_runtime::masking::workspace_masks(settings);
    json!({
        "fields": masks.fields(),
        "default_fields": settings.fields.is_none(),
        "detect": masks.detects(),
    })
}

/// `GET /api/v1/privacy/masking`: the field names masked in every record of the workspace,
/// and whether card numbers and credentials are found and masked.
pub async fn masking(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let settings = state
        .runtime
        .store()
        .mask_settings_of(&caller.workspace_id)
        .await?;
    Ok(Json(masking_json(&settings)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskingRequest {
    /// Field names masked wherever they appear; null: the built-in list.
    fields: Option<Vec<String>>,
    /// Whether values that look like card numbers or credentials are masked.
    detect: bool,
}

/// Most field names a workspace masks, and the longest: the list is compared with every key
/// of every record.
const MAX_MASKED_FIELDS: usize = 200;
const MAX_FIELD_NAME_CHARS: usize = 100;

/// `PUT /api/v1/privacy/masking`: the workspace's masking rules, applied to every record
/// written from now on (records already written keep the rules they were written with).
pub async fn save_masking(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let request: MaskingRequest = parse_body(
        &body,
        "{\"fields\": [names] or null, \"detect\": true or false}",
    )?;
    if let Some(fields) = &request.fields {
        if fields.len() > MAX_MASKED_FIELDS {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_MASKED_FIELDS} field names, not {}",
                fields.len()
            )));
        }
        if let Some(bad) = fields
            .iter()
            .find(|field| field.trim().is_empty() || field.chars().count() > MAX_FIELD_NAME_CHARS)
        {
            return Err(ApiError::bad_request(format!(
                "a field name must be 1 to {MAX_FIELD_NAME_CHARS} characters, not `{bad}`"
            )));
        }
    }
    let before = state
        .runtime
        .store()
        .mask_settings_of(&caller.workspace_id)
        .await?;
    let after = MaskSettings {
        fields: request.fields,
        detect: request.detect,
    };
    state
        .runtime
        .set_mask_settings(&caller.workspace_id, &after)
        .await?;
    Ok((
        AuditNote::changed(masking_json(&before), masking_json(&after)),
        Json(masking_json(&after)),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectRequest {
    /// An email, a phone number or any text, as the jobs hold it.
    identifier: String,
    /// Erasure only: erase at most this many jobs in this call, so that a caller can show
    /// how far a long erasure is by calling again until none are left.
    max_jobs: Option<u64>,
}

const MAX_IDENTIFIER_CHARS: usize = 1000;
/// Most jobs a search lists; it counts them all.
const LISTED_JOBS: usize = 1000;

/// A search's identifier; `max_jobs` belongs to erasure alone.
fn subject_identifier(body: &str) -> Result<String, ApiError> {
    match subject_request(body)? {
        (identifier, None) => Ok(identifier),
        (_, Some(_)) => Err(ApiError::bad_request(
            "`max_jobs` is for erasure: a search finds every job",
        )),
    }
}

fn subject_request(body: &str) -> Result<(String, Option<u64>), ApiError> {
    let request: SubjectRequest = parse_body(
        body,
        "{\"identifier\": \"an email, a phone number or any text\"}",
    )?;
    let identifier = request.identifier.trim().to_owned();
    let length = identifier.chars().count();
    if !(MIN_IDENTIFIER_CHARS..=MAX_IDENTIFIER_CHARS).contains(&length) {
        return Err(ApiError::bad_request(format!(
            "`identifier` must be {MIN_IDENTIFIER_CHARS} to {MAX_IDENTIFIER_CHARS} characters, not {length}"
        )));
    }
    if request.max_jobs == Some(0) {
        return Err(ApiError::bad_request("`max_jobs` must be 1 or more"));
    }
    Ok((identifier, request.max_jobs))
}

/// What the audit log and the answers say of an identifier: its kind and length, never it.
fn described(identifier: &str) -> Value {
    let digits = identifier.chars().filter(char::is_ascii_digit).count();
    let phone_like = identifier
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    let kind = if identifier.contains('@') {
        "email"
    } else if phone_like && digits >= 7 {
        "phone"
    } else {
        "text"
    };
    json!({ "kind": kind, "characters": identifier.chars().count() })
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `POST /api/v1/privacy/subjects/search`: every job of the workspace whose stored data holds
/// the identifier, and where.
pub async fn search_subject(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let identifier = subject_identifier(&body)?;
    let started = Instant::now();
    let jobs = state
        .runtime
        .search_subject(&caller.workspace_id, &identifier)
        .await?;
    let unfinished = jobs.iter().filter(|job| !job.ended()).count();
    let listed: Vec<Value> = jobs
        .iter()
        .take(LISTED_JOBS)
        .map(|job| {
            json!({
                "id": job.id,
                "recipe": job.recipe,
                "status": job.status,
                "created_at": job.created_at,
                "places": job.places,
            })
        })
        .collect();
    Ok((
        AuditNote::details(json!({
            "identifier": described(&identifier),
            "jobs_found": jobs.len(),
        })),
        Json(json!({
            "identifier": described(&identifier),
            "jobs_found": jobs.len(),
            "unfinished": unfinished,
            "listed": listed.len(),
            "jobs": listed,
            "took_ms": elapsed_ms(started),
        })),
    ))
}

/// `POST /api/v1/privacy/subjects/erase`: replaces the identifier with `[erased]` in every
/// ended job of the workspace that holds it, then searches again to prove it is gone.
pub async fn erase_subject(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let (identifier, max_jobs) = subject_request(&body)?;
    let started = Instant::now();
    let erasure = state
        .runtime
        .erase_subject(&caller.workspace_id, &identifier, max_jobs)
        .await?;
    let took_ms = elapsed_ms(started);
    // The proof is searched for once, when nothing more is left to erase: a long erasure in
    // parts does not search the whole history at each part.
    let still_held = if erasure.more {
        None
    } else {
        Some(
            state
                .runtime
                .search_subject(&caller.workspace_id, &identifier)
                .await?
                .iter()
                .filter(|job| job.ended())
                .count(),
        )
    };
    let answer = json!({
        "identifier": described(&identifier),
        "jobs_erased": erasure.jobs,
        "values_erased": erasure.values,
        "unfinished": erasure.unfinished,
        "more": erasure.more,
        "ended_jobs_still_holding": still_held,
        "took_ms": took_ms,
    });
    Ok((AuditNote::details(answer.clone()), Json(answer)))
}
