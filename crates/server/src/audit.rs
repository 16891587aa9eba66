//! The audit log over the API: a workspace's events, newest first, paged and filtered.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_store::{AuditEvent, AuditFilter};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    before: Option<String>,
    limit: Option<i64>,
}

pub(crate) fn event_json(event: &AuditEvent) -> Value {
    json!({
        "id": event.id,
        "at": event.at,
        "actor": event.actor,
        "actor_id": event.actor_id,
        "action": event.action,
        "target": event.target_id,
        "details": event.details,
        "ip": event.ip,
        "user_agent": event.user_agent,
    })
}

/// Events, newest first. `next` is the cursor of the following page, if there is one.
/// `GET /api/v1/audit/actions`: the actions the workspace's log holds, for a filter to
/// offer.
pub async fn actions(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let actions = state
        .runtime
        .store()
        .audit_actions(&caller.workspace_id)
        .await?;
    Ok(Json(json!({ "actions": actions })))
}

pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let filter = AuditFilter {
        action: query.action,
        actor: query.actor,
        target_id: query.target,
        since: query.since,
        until: query.until,
        before: query.before,
        limit: query.limit.unwrap_or(50).clamp(1, 500),
    };
    let events = state
        .runtime
        .store()
        .audit_events(&caller.workspace_id, &filter)
        .await?;
    let next = (events.len() as i64 == filter.limit)
        .then(|| events.last().map(|event| event.id.clone()))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "next": next,
    })))
}
