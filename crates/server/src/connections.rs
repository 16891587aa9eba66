//! Connections over the API. Secret fields are write-only: every answer shows them as
//! `"********"`, and sending that value back keeps the stored secret.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};
use weft_runtime::{ConnectionError, ConnectionInput};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};
use weft_runtime::plans::Measure;

impl From<ConnectionError> for ApiError {
    fn from(error: ConnectionError) -> ApiError {
        match error {
            ConnectionError::Invalid(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_connection",
                message,
            ),
            ConnectionError::NotFound => ApiError::not_found("connection with this id or name"),
            ConnectionError::Refused(message) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "refused_upstream", message)
            }
            ConnectionError::Store(error) => error.into(),
            ConnectionError::Vault(error) => {
                tracing::error!(%error, "cannot seal or open a connection's secrets");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "secrets_unavailable",
                    "the connection's secrets cannot be sealed or opened; see the server's log",
                )
            }
        }
    }
}

/// The body of a create or replace: `{name, connector, fields}`.
fn parse_input(body: &str) -> Result<ConnectionInput, ApiError> {
    // serde's message names the field and position, never the values.
    parse_body(body, "a JSON object with `name`, `connector` and `fields`")
}

pub async fn create(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Extension<AuditNote>, Json<Value>), ApiError> {
    let input = parse_input(&body)?;
    crate::usage::check_room(&state, &caller.workspace_id, Measure::Connections, 1).await?;
    let created = state
        .connections
        .create(&caller.workspace_id, input)
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    // The answer shows secret fields as `********`: so does the audit log.
    Ok((
        StatusCode::CREATED,
        AuditNote::created(&id, created.clone()),
        Json(created),
    ))
}

pub async fn replace(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let input = parse_input(&body)?;
    let before = state.connections.show(&caller.workspace_id, &id).await?;
    let after = state
        .connections
        .update(&caller.workspace_id, &id, input)
        .await?;
    Ok((AuditNote::changed(before, after.clone()), Json(after)))
}

pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "connections": state.connections.list(&caller.workspace_id).await? }),
    ))
}

/// `GET /api/v1/connectors`: every connector with its connection fields, actions and
/// triggers and their schemas: what the web app builds its forms from.
pub async fn connectors(State(state): State<AppState>, _caller: CurrentUser) -> Json<Value> {
    let registry = state.runtime.recipes().registry();
    let described: Vec<Value> = registry
        .iter()
        .map(|connector| weft_connectors::docs::describe(connector.as_ref()))
        .collect();
    Json(json!({ "connectors": described }))
}

pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        state.connections.show(&caller.workspace_id, &id).await?,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<(Extension<AuditNote>, StatusCode), ApiError> {
    let before = state.connections.show(&caller.workspace_id, &id).await?;
    state.connections.delete(&caller.workspace_id, &id).await?;
    Ok((
        AuditNote::details(json!({ "before": before })),
        StatusCode::NO_CONTENT,
    ))
}

/// Runs the connector's connection test: `{"ok": true}`, or `{"ok": false, "message"}` with
/// the connection's secrets hidden in the message.
pub async fn test(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        match state.connections.test(&caller.workspace_id, &id).await? {
            Ok(()) => json!({ "ok": true }),
            Err(message) => json!({ "ok": false, "message": message }),
        },
    ))
}

/// Starts connecting an `oauth2_code` connection to its account: `{"authorize_url"}`, where
/// the person signs in; the provider sends them back to `/oauth/callback`.
pub async fn oauth_start(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let redirect_uri = format!("{}/oauth/callback", state.settings.public_url);
    let url = state
        .connections
        .oauth_start(&caller.workspace_id, &id, &redirect_uri)
        .await?;
    Ok(Json(
        json!({ "authorize_url": url, "redirect_uri": redirect_uri }),
    ))
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the person back. No token: the single-use `state` made by
/// `oauth_start` is the proof, and the page says what happened.
pub async fn oauth_callback(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<CallbackQuery>,
) -> Result<axum::response::Html<String>, ApiError> {
    if let Some(error) = query.error {
        return Err(ApiError::bad_request(format!(
            "the provider did not connect the account: {error} {}",
            query.error_description.unwrap_or_default()
        )));
    }
    let (Some(code), Some(pending)) = (query.code, query.state) else {
        return Err(ApiError::bad_request(
            "the callback needs `code` and `state` from the provider",
        ));
    };
    // A stale or replayed state, or a code the provider will not trade, is a bad request.
    let name = match state.connections.oauth_callback(&pending, &code).await {
        Err(ConnectionError::Invalid(message)) => return Err(ApiError::bad_request(message)),
        outcome => outcome?,
    };
    Ok(axum::response::Html(format!(
        "<!doctype html><title>Connected</title><p>The connection <b>{}</b> is connected to its account.</p><p><a href=\"/connections\">Back to the connections</a></p>",
        html_escape(&name)
    )))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
