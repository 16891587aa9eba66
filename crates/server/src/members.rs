//! People over the API: one's own profile and photo, and the members of the workspace with
//! their roles (changed by admins, never above their own; the last owner stays).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use weft_store::{Member, MembershipChange, Profile, Role};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};

/// Largest profile photo accepted.
pub const MAX_PHOTO_BYTES: usize = 512 * 1024;
/// The company sizes a profile may name.
const COMPANY_SIZES: &[&str] = &["1-10", "11-50", "51-200", "201-1000", "1001+"];
/// Most extra notification addresses.
const MAX_NOTIFICATION_EMAILS: usize = 5;

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

fn member_json(member: &Member) -> Value {
    json!({
        "user_id": member.user_id,
        "email": member.email,
        "name": member.name,
        "role": member.role.as_str(),
        "since": member.since,
    })
}

/// `GET /api/v1/me`: the caller's account and profile.
pub async fn me(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let store = state.runtime.store();
    let verified = store.email_verified_at(&caller.user).await?;
    let profile = store.profile(&caller.user.id).await?;
    let has_photo = store.photo(&caller.user.id).await?.is_some();
    let consent = store.consent(&caller.user.id).await?;
    Ok(Json(json!({
        "id": caller.user.id,
        "email": caller.user.email,
        "name": caller.user.name,
        "email_verified_at": verified,
        "workspace": caller.workspace_id,
        "role": caller.role.as_str(),
        "profile": profile,
        "photo": has_photo.then(|| format!("/api/v1/users/{}/photo", caller.user.id)),
        "consent": {
            "marketing": consent.marketing.is_some(),
            "product_news": consent.product_news.is_some(),
        },
        "deletion_due_at": store.deletion_due(&caller.user.id).await?,
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileChange {
    name: Option<String>,
    phone: Option<Option<String>>,
    title: Option<Option<String>>,
    company: Option<Option<String>>,
    company_size: Option<Option<String>>,
    username: Option<Option<String>>,
    notification_emails: Option<Vec<String>>,
}

/// What is wrong with a profile, if anything.
fn profile_problem(name: &str, profile: &Profile) -> Option<String> {
    let short = |text: &Option<String>, most: usize| {
        text.as_ref()
            .is_some_and(|text| text.chars().count() > most)
    };
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Some("`name` must have 1 to 100 characters".to_owned());
    }
    if let Some(phone) = &profile.phone
        && (phone.len() > 32
            || !phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c)))
    {
        return Some("`phone` holds digits, spaces and + - ( ) . only, at most 32".to_owned());
    }
    if short(&profile.title, 100) || short(&profile.company, 100) {
        return Some("`title` and `company` have at most 100 characters".to_owned());
    }
    if let Some(size) = &profile.company_size
        && !COMPANY_SIZES.contains(&size.as_str())
    {
        return Some(format!(
            "`company_size` is one of {}",
            COMPANY_SIZES.join(", ")
        ));
    }
    if let Some(username) = &profile.username
        && (username.len() < 3
            || username.len() > 32
            || !username
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)))
    {
        return Some("`username` has 3 to 32 of a-z, 0-9, _ . -".to_owned());
    }
    if profile.notification_emails.len() > MAX_NOTIFICATION_EMAILS
        || profile
            .notification_emails
            .iter()
            .any(|email| !email.contains('@') || email.len() > 254)
    {
        return Some(format!(
            "`notification_emails` holds at most {MAX_NOTIFICATION_EMAILS} email addresses"
        ));
    }
    None
}

/// `PATCH /api/v1/me`: changes the caller's name and profile fields (`null` clears one).
pub async fn change_profile(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let change: ProfileChange = parse_body(&body, "an object of profile fields")?;
    let store = state.runtime.store();
    let before = store.profile(&caller.user.id).await?;
    let mut after = before.clone();
    let tidy = |text: Option<String>| {
        text.map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    if let Some(phone) = change.phone {
        after.phone = tidy(phone);
    }
    if let Some(title) = change.title {
        after.title = tidy(title);
    }
    if let Some(company) = change.company {
        after.company = tidy(company);
    }
    if let Some(size) = change.company_size {
        after.company_size = tidy(size);
    }
    if let Some(username) = change.username {
        after.username = tidy(username).map(|username| username.to_lowercase());
    }
    if let Some(emails) = change.notification_emails {
        after.notification_emails = emails
            .into_iter()
            .map(|email| email.trim().to_lowercase())
            .collect();
    }
    let name = change
        .name
        .map_or(caller.user.name.clone(), |name| name.trim().to_owned());
    if let Some(problem) = profile_problem(&name, &after) {
        return Err(ApiError::bad_request(problem));
    }
    if !store.save_profile(&caller.user.id, &name, &after).await? {
        return Err(conflict("this username is someone else's"));
    }
    let note = AuditNote::changed(
        json!({ "name": caller.user.name, "profile": before }),
        json!({ "name": name, "profile": after }),
    );
    Ok((note, Json(json!({ "name": name, "profile": after }))))
}

/// The media type of an image, told from its first bytes: PNG, JPEG, GIF or WebP.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() > 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// `PUT /api/v1/me/photo`: the body is the image (PNG, JPEG, GIF or WebP, at most 512 KiB).
pub async fn set_photo(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    body: Bytes,
) -> Result<(Extension<AuditNote>, StatusCode), ApiError> {
    if body.len() > MAX_PHOTO_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "photo_too_large",
            format!("a photo has at most {} KiB", MAX_PHOTO_BYTES / 1024),
        ));
    }
    let kind = image_type(&body).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_photo",
            "a photo is a PNG, JPEG, GIF or WebP image",
        )
    })?;
    state
        .runtime
        .store()
        .set_photo(&caller.user.id, Some((&body, kind)))
        .await?;
    let note = AuditNote::details(json!({ "type": kind, "bytes": body.len() }));
    Ok((note, StatusCode::NO_CONTENT))
}

/// `DELETE /api/v1/me/photo`.
pub async fn remove_photo(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .store()
        .set_photo(&caller.user.id, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users/{id}/photo`: a member's photo, for the members of the same workspace.
pub async fn photo(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(user_id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.runtime.store();
    let not_found = || ApiError::not_found("photo of a member with this id");
    store
        .membership(&caller.workspace_id, &user_id)
        .await?
        .ok_or_else(not_found)?;
    let (bytes, kind) = store.photo(&user_id).await?.ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/v1/members`: the workspace's people and roles.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let members = state.runtime.store().members(&caller.workspace_id).await?;
    Ok(Json(
        json!({ "members": members.iter().map(member_json).collect::<Vec<_>>() }),
    ))
}

/// A member of the caller's workspace, or 404.
async fn member(state: &AppState, workspace_id: &str, user_id: &str) -> Result<Member, ApiError> {
    state
        .runtime
        .store()
        .members(workspace_id)
        .await?
        .into_iter()
        .find(|member| member.user_id == user_id)
        .ok_or_else(|| ApiError::not_found("member with this id"))
}

/// Refuses to leave the workspace without an owner.
/// Applies a membership change, which leaves the workspace an owner or is refused.
async fn change_membership(
    state: &AppState,
    workspace_id: &str,
    user_id: &str,
    role: Option<Role>,
) -> Result<(), ApiError> {
    match state
        .runtime
        .store()
        .change_membership(workspace_id, user_id, role)
        .await?
    {
        MembershipChange::Done => Ok(()),
        MembershipChange::NotMember => Err(ApiError::not_found("member with this id")),
        MembershipChange::LastOwner => Err(conflict(
            "the workspace's last owner stays: make another owner first",
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: String,
}

/// `PUT /api/v1/members/{id}`: changes a member's role (admins; never above their own, and
/// an owner's only by an owner).
pub async fn change_role(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(user_id): Path<String>,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let change: RoleChange = parse_body(&body, "{\"role\"}")?;
    let role = Role::parse(&change.role).ok_or_else(|| {
        ApiError::bad_request("`role` must be viewer, operator, builder, admin or owner")
    })?;
    let member = member(&state, &caller.workspace_id, &user_id).await?;
    if role > caller.role || member.role > caller.role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "your role ({}) cannot give or take the role of {}",
                caller.role,
                role.max(member.role)
            ),
        ));
    }
    change_membership(&state, &caller.workspace_id, &user_id, Some(role)).await?;
    let note = AuditNote::changed(
        json!({ "role": member.role.as_str() }),
        json!({ "role": role.as_str() }),
    );
    Ok((
        note,
        Json(json!({ "user_id": user_id, "role": role.as_str() })),
    ))
}

/// `DELETE /api/v1/members/{id}`: takes a member out (admins; an owner only by an owner), or
/// the caller leaves (their own id). The last owner stays.
pub async fn remove(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(user_id): Path<String>,
) -> Result<(Extension<AuditNote>, StatusCode), ApiError> {
    let member = member(&state, &caller.workspace_id, &user_id).await?;
    let leaving = user_id == caller.user.id;
    if !leaving && (caller.role < Role::Admin || member.role > caller.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "your role ({}) cannot remove a member who is {}",
                caller.role, member.role
            ),
        ));
    }
    change_membership(&state, &caller.workspace_id, &user_id, None).await?;
    let note = AuditNote::details(json!({ "before": member_json(&member), "left": leaving }));
    Ok((note, StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_told_by_their_first_bytes() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(
            image_type(b"<svg xmlns="),
            None,
            "no SVG: it can hold scripts"
        );
        assert_eq!(image_type(b"<html>"), None);
    }
}
