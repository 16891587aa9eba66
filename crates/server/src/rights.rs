//! A person's rights over what Weft holds about them, over the API: an export of all of it,
//! what they agree to be mailed about, and the deletion of their account after a grace period.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Value, json};
use weft_store::Consent;

use crate::AppState;
use crate::access::AuditNote;
use crate::audit::event_json;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};
use crate::sessions::check_current_password;

/// Most audit events an export carries, newest first.
const EXPORTED_AUDIT_EVENTS: i64 = 100_000;

fn consent_json(consent: &Consent) -> Value {
    json!({
        "marketing": { "given": consent.marketing.is_some(), "since": consent.marketing },
        "product_news": { "given": consent.product_news.is_some(), "since": consent.product_news },
    })
}

/// `GET /api/v1/me/export`: everything Weft holds about the person asking, as one JSON
/// document to keep.
pub async fn export(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<(Extension<AuditNote>, Response), ApiError> {
    let store = state.runtime.store();
    let user = &caller.user;
    let photo = store.photo(&user.id).await?.map(|(bytes, content_type)| {
        json!({
            "content_type": content_type,
            "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    });
    let profile = store.profile(&user.id).await?;
    let memberships: Vec<Value> = store
        .workspaces_of(&user.id)
        .await?
        .iter()
        .map(|workspace| {
            json!({
                "workspace_id": workspace.id,
                "workspace": workspace.name,
                "role": workspace.role.as_str(),
            })
        })
        .collect();
    let tokens: Vec<Value> = store
        .tokens_of(&user.id)
        .await?
        .iter()
        .map(|token| {
            json!({
                "id": token.id, "name": token.name, "workspace_id": token.workspace_id,
                "role": token.role.as_str(), "created_at": token.created_at,
                "expires_at": token.expires_at, "last_used_at": token.last_used_at,
            })
        })
        .collect();
    let sessions: Vec<Value> = store
        .sessions_of(&user.id)
        .await?
        .iter()
        .map(|session| {
            json!({
                "id": session.id, "workspace_id": session.workspace_id,
                "created_at": session.created_at, "last_seen_at": session.last_seen_at,
                "ip": session.ip, "user_agent": session.user_agent,
            })
        })
        .collect();
    let audit: Vec<Value> = store
        .audit_events_about(&user.id, &user.email, EXPORTED_AUDIT_EVENTS)
        .await?
        .iter()
        .map(event_json)
        .collect();
    let document = json!({
        "format": "weft-account-export/1",
        "exported_at": Utc::now(),
        "account": {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "created_at": user.created_at,
            "email_verified_at": store.email_verified_at(user).await?,
            "profile": profile,
            "photo": photo,
            "deletion_due_at": store.deletion_due(&user.id).await?,
        },
        "notification_addresses": profile.notification_emails,
        "consent": consent_json(&store.consent(&user.id).await?),
        "memberships": memberships,
        "api_tokens": tokens,
        "sessions": sessions,
        "audit_events": audit,
    });
    let note = AuditNote::details(json!({
        "audit_events": audit.len(),
        "api_tokens": tokens.len(),
        "sessions": sessions.len(),
    }));
    let response = (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"weft-account-export.json\"",
            ),
        ],
        document.to_string(),
    )
        .into_response();
    Ok((note, response))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentRequest {
    marketing: bool,
    product_news: bool,
}

/// `GET /api/v1/me/consent`: what the person agreed to be mailed about besides service notices.
pub async fn consent(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let consent = state.runtime.store().consent(&caller.user.id).await?;
    Ok(Json(consent_json(&consent)))
}

/// `PUT /api/v1/me/consent`: what the person agrees to now. Service notices (security,
/// account, failure notices) are not consent: they are sent whatever this says.
pub async fn set_consent(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let request: ConsentRequest = parse_body(
        &body,
        "{\"marketing\": true or false, \"product_news\": true or false}",
    )?;
    let store = state.runtime.store();
    let before = consent_json(&store.consent(&caller.user.id).await?);
    let after = consent_json(
        &store
            .set_consent(&caller.user.id, request.marketing, request.product_news)
            .await?,
    );
    Ok((AuditNote::changed(before, after.clone()), Json(after)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletionRequest {
    password: String,
}

/// `DELETE /api/v1/me`: deletes the person's account after the grace period, with their
/// password. Their API tokens are revoked and their other sessions ended at once; signing in
/// again before the end lets them cancel.
pub async fn request_deletion(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, (StatusCode, Json<Value>)), ApiError> {
    let request: DeletionRequest = parse_body(&body, "{\"password\": \"your password\"}")?;
    check_current_password(&state, &caller, request.password).await?;
    let store = state.runtime.store();
    let blocking = store.workspaces_needing(&caller.user.id).await?;
    if !blocking.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_owner",
            format!(
                "you are the only owner of {}: make another member an owner, or close the workspace, first",
                blocking
                    .iter()
                    .map(|workspace| format!("workspace `{workspace}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let grace = chrono::Duration::from_std(state.settings.account_deletion_grace)
        .unwrap_or(chrono::Duration::days(30));
    let due = Utc::now() + grace;
    store.schedule_deletion(&caller.user.id, Some(due)).await?;
    let revoked = store.revoke_tokens_of(&caller.user.id).await?;
    let this_session = match &caller.credential {
        weft_store::Credential::Session { id, .. } => Some(id.as_str()),
        weft_store::Credential::Token { .. } => None,
    };
    let ended = store
        .end_other_sessions(&caller.user.id, this_session)
        .await?;
    let text = format!(
        "You asked for your Weft account ({}) to be deleted. It will be deleted, with everything \
         Weft holds about you, on {} (UTC). Until then you can sign in and cancel this at {}.\n\n\
         Your API tokens were revoked and your other sessions ended.",
        caller.user.email,
        due.format("%Y-%m-%d %H:%M"),
        state.settings.public_url
    );
    if let Err(error) = crate::accounts::send_mail(
        &state,
        &caller.user.email,
        "Your Weft account will be deleted",
        &text,
    )
    .await
    {
        tracing::warn!(error = %error.message(), "cannot mail an account's deletion notice");
    }
    let answer = json!({
        "deletion_due_at": due,
        "grace_seconds": state.settings.account_deletion_grace.as_secs(),
        "api_tokens_revoked": revoked,
        "other_sessions_ended": ended,
    });
    Ok((
        AuditNote::details(answer.clone()),
        (StatusCode::ACCEPTED, Json(answer)),
    ))
}

/// `POST /api/v1/me/deletion/cancel`: keeps the account.
pub async fn cancel_deletion(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let store = state.runtime.store();
    let was = store.deletion_due(&caller.user.id).await?;
    store.schedule_deletion(&caller.user.id, None).await?;
    Ok((
        AuditNote::details(json!({ "deletion_due_at_was": was })),
        Json(json!({ "deletion_due_at": null })),
    ))
}
