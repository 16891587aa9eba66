//! Workspaces over the API: the caller's list, a new one (its maker its first owner), and a
//! browser session moved from one to another.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use weft_store::{Credential, Role};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};

/// `GET /api/v1/workspaces`: the workspaces the caller belongs to, with their role in each.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let theirs = state.runtime.store().workspaces_of(&caller.user.id).await?;
    let listed: Vec<Value> = theirs
        .iter()
        .map(|workspace| {
            json!({
                "id": workspace.id,
                "name": workspace.name,
                "role": workspace.role.as_str(),
                "created_at": workspace.created_at,
                "current": workspace.id == caller.workspace_id,
            })
        })
        .collect();
    Ok(Json(json!({ "workspaces": listed })))
}

/// A workspace as its maker asks for it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWorkspace {
    pub id: String,
    pub name: String,
}

impl NewWorkspace {
    /// Its name, trimmed, when the id and the name are fit; else the problem.
    pub fn checked(&self) -> Result<&str, ApiError> {
        if let Some(problem) = id_problem(&self.id) {
            return Err(ApiError::bad_request(problem));
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_request(
                "`workspace.name` must have 1 to 100 characters",
            ));
        }
        Ok(name)
    }
}

/// A workspace's id is part of its webhook URLs (`/w/{id}/hooks/...`): 3 to 40 lower-case
/// letters, digits and inner dashes.
fn id_problem(id: &str) -> Option<&'static str> {
    let fits = (3..=40).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    (!fits)
        .then_some("`id` must be 3 to 40 lower-case letters, digits and dashes (not at its ends)")
}

/// `POST /api/v1/workspaces`: makes a workspace with the caller as its owner.
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Extension<AuditNote>, Json<Value>), ApiError> {
    let request: NewWorkspace = parse_body(&body, "{\"id\", \"name\"}")?;
    let name = request.checked()?;
    state
        .runtime
        .store()
        .create_workspace(&request.id, name, &caller.user.id)
        .await?;
    let made = json!({ "id": request.id, "name": name, "role": Role::Owner.as_str() });
    Ok((
        StatusCode::CREATED,
        AuditNote::created(&request.id, made.clone()),
        Json(made),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    workspace: String,
}

/// `PUT /api/v1/session/workspace`: moves the browser session to another workspace of the
/// caller. A token stays in the workspace it was made for.
pub async fn switch(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let request: Switch = parse_body(&body, "{\"workspace\"}")?;
    let Credential::Session { id, .. } = &caller.credential else {
        return Err(ApiError::bad_request(
            "an API token belongs to the workspace it was made in: make one in the other workspace",
        ));
    };
    let store = state.runtime.store();
    let role = store
        .membership(&request.workspace, &caller.user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace of yours with this id"))?;
    if role < Role::Owner && crate::sso::required(&state, &request.workspace).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sso_required",
            format!(
                "this workspace signs in through its identity provider: /api/v1/sso/start?workspace={}",
                request.workspace
            ),
        ));
    }
    if !store.switch_session(id, &request.workspace).await? {
        return Err(ApiError::not_found("workspace of yours with this id"));
    }
    Ok((
        AuditNote::details(json!({ "from": caller.workspace_id, "to": request.workspace })),
        Json(json!({ "workspace": request.workspace, "role": role.as_str() })),
    ))
}

/// Refuses what would make a closing workspace run again.
pub(crate) async fn refuse_if_closing(
    state: &AppState,
    workspace_id: &str,
) -> Result<(), ApiError> {
    match state
        .runtime
        .store()
        .workspace_close_due(workspace_id)
        .await?
    {
        Some(due) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspace_closing",
            format!(
                "this workspace is closing and will be deleted at {due}; an owner can reopen it (POST /api/v1/workspace/reopen)"
            ),
        )),
        None => Ok(()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    /// The workspace's id, typed again: closing deletes everything in it.
    confirm: String,
}

/// `POST /api/v1/workspace/close`: closes the caller's workspace. Its recipes are disabled at
/// once; after `--workspace-close-grace` everything of it is deleted and a final report kept.
pub async fn close(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, (StatusCode, Json<Value>)), ApiError> {
    let request: CloseRequest = parse_body(&body, "{\"confirm\": \"the workspace's id\"}")?;
    if request.confirm != caller.workspace_id {
        return Err(ApiError::bad_request(format!(
            "`confirm` must be this workspace's id, `{}`",
            caller.workspace_id
        )));
    }
    if caller.workspace_id == weft_store::DEFAULT_WORKSPACE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "default_workspace",
            "the default workspace cannot be closed: it is where webhooks without /w/{workspace} arrive",
        ));
    }
    refuse_if_closing(&state, &caller.workspace_id).await?;
    let grace = chrono::Duration::from_std(state.settings.workspace_close_grace)
        .unwrap_or(chrono::Duration::days(30));
    let due = chrono::Utc::now() + grace;
    let disabled = state
        .runtime
        .store()
        .set_workspace_close(&caller.workspace_id, Some(due))
        .await?;
    let answer = json!({
        "workspace": caller.workspace_id,
        "close_due_at": due,
        "grace_seconds": state.settings.workspace_close_grace.as_secs(),
        "recipes_disabled": disabled,
    });
    Ok((
        AuditNote::details(answer.clone()),
        (StatusCode::ACCEPTED, Json(answer)),
    ))
}

/// `POST /api/v1/workspace/reopen`: keeps a closing workspace. Its recipes stay disabled
/// until someone enables them.
pub async fn reopen(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let store = state.runtime.store();
    let was = store.workspace_close_due(&caller.workspace_id).await?;
    store
        .set_workspace_close(&caller.workspace_id, None)
        .await?;
    Ok((
        AuditNote::details(json!({ "close_due_at_was": was })),
        Json(json!({ "workspace": caller.workspace_id, "close_due_at": null })),
    ))
}
