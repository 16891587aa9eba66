//! API tokens over the API: made (shown once), listed (never shown again) and revoked. A
//! token acts for the person who made it, in one workspace, with a role no higher than
//! theirs. Admins and owners see and revoke every token of the workspace; others their own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use weft_store::{NewToken, Role, TokenInfo};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::{CurrentUser, new_token, token_hash};
use crate::error::{ApiError, TextBody, parse_body};

/// Longest name of a token.
const MAX_NAME_CHARS: usize = 100;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
    /// The token's role; the caller's own by default, and never above it.
    role: Option<String>,
    /// How long the token lasts, such as `90d`; for ever by default.
    expires_in: Option<String>,
}

fn token_json(token: &TokenInfo) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "user": token.user_email,
        "role": token.role.as_str(),
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
    })
}

/// Who the token is: its person, workspace and role.
pub async fn whoami(CurrentUser(caller): CurrentUser) -> Json<Value> {
    Json(json!({
        "user": { "id": caller.user.id, "email": caller.user.email, "name": caller.user.name },
        "workspace": caller.workspace_id,
        "role": caller.role.as_str(),
        "credential_id": caller.credential_id(),
        "via": match caller.credential { weft_store::Credential::Token { .. } => "token", weft_store::Credential::Session { .. } => "session" },
    }))
}

pub async fn create(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Extension<AuditNote>, Json<Value>), ApiError> {
    let request: TokenRequest = parse_body(&body, "{\"name\", \"role\"?, \"expires_in\"?}")?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "`name` must have 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    let role = match request.role.as_deref() {
        None => caller.role,
        Some(text) => Role::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`role` must be viewer, operator, builder, admin or owner, not `{text}`"
            ))
        })?,
    };
    if role > caller.role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a token cannot have a higher role ({role}) than yours ({})",
                caller.role
            ),
        ));
    }
    let expires_at = match request.expires_in.as_deref() {
        None => None,
        Some(text) => {
            let lasts = weft_recipe::duration::parse_duration(text)
                .ok()
                .and_then(|lasts| chrono::Duration::from_std(lasts).ok())
                .filter(|lasts| *lasts > chrono::Duration::zero())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`expires_in` must be a duration such as 30d or 12h, not `{text}`"
                    ))
                })?;
            Some(Utc::now().checked_add_signed(lasts).ok_or_else(|| {
                ApiError::bad_request(format!("`expires_in` {text} ends after the calendar does"))
            })?)
        }
    };
    let token = new_token();
    let id = state
        .runtime
        .store()
        .create_scoped_token(
            &token_hash(&token),
            &NewToken {
                user_id: &caller.user.id,
                workspace_id: &caller.workspace_id,
                role,
                name,
                expires_at,
            },
        )
        .await?;
    let audited = json!({ "name": name, "role": role.as_str(), "expires_at": expires_at });
    Ok((
        StatusCode::CREATED,
        AuditNote::created(&id, audited),
        Json(json!({
            "id": id,
            "token": token,
            "name": name,
            "role": role.as_str(),
            "expires_at": expires_at,
        })),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let only = (caller.role < Role::Admin).then_some(caller.user.id.as_str());
    let tokens = state
        .runtime
        .store()
        .tokens(&caller.workspace_id, only)
        .await?;
    Ok(Json(
        json!({ "tokens": tokens.iter().map(token_json).collect::<Vec<_>>() }),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let store = state.runtime.store();
    if caller.role < Role::Admin {
        let own = store
            .tokens(&caller.workspace_id, Some(&caller.user.id))
            .await?;
        if !own.iter().any(|token| token.id == id) {
            return Err(ApiError::not_found("token with this id among yours"));
        }
    }
    if !store.revoke_token(&caller.workspace_id, &id).await? {
        return Err(ApiError::not_found("token with this id"));
    }
    Ok(StatusCode::NO_CONTENT)
}
