//! People's accounts beyond signing in: the first owner's setup, invitations into the
//! workspace, password resets and email checks, each through a single-use link that expires.
//! Weft mails the links through a stored `email` connection (`--mail-connection`); without
//! one, an invitation's link goes back to the admin who made it, and the other mails are not
//! sent (the server logs that).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use std::time::Duration;
use weft_connectors::CallContext;
use weft_engine::Connections as _;
use weft_store::{AccountLink, AuditEvent, DEFAULT_WORKSPACE, LinkPurpose, Role, User};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::{ClientMeta, CurrentUser, hash_password, new_secret, token_hash};
use crate::error::{ApiError, TextBody, parse_body};
use crate::sessions::password_problem;
use weft_runtime::plans::Measure;

/// How long each kind of link lasts.
const RESET_LASTS: chrono::Duration = chrono::Duration::hours(1);
const EMAIL_CHECK_LASTS: chrono::Duration = chrono::Duration::days(2);
const INVITATION_LASTS: chrono::Duration = chrono::Duration::days(7);
pub const SETUP_LASTS: chrono::Duration = chrono::Duration::hours(24);
/// Password-reset requests for one account within the window before more are refused.
const RESETS_PER_ACCOUNT: usize = 3;
/// Password-reset requests from one address within the window.
const RESETS_PER_ADDRESS: usize = 20;
/// Longest a mail may take to send.
const MAIL_TIME: Duration = Duration::from_secs(30);

fn link_refused() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "link_expired",
        "this link is unknown, used already or expired: ask for a new one",
    )
}

/// Makes a link of `purpose`, kept by its hash; its URL under the public address.
async fn new_link(state: &AppState, page: &str, link: &AccountLink) -> Result<String, ApiError> {
    let secret = new_secret();
    state
        .runtime
        .store()
        .save_account_link(&token_hash(&secret), link)
        .await?;
    Ok(format!(
        "{}/{page}?token={secret}",
        state.settings.public_url
    ))
}

/// Mails `text` through the mail connection; false when there is none.
pub(crate) async fn send_mail(
    state: &AppState,
    to: &str,
    subject: &str,
    text: &str,
) -> Result<bool, ApiError> {
    let Some(name) = &state.settings.mail_connection else {
        tracing::warn!(subject, "no --mail-connection: this mail is not sent");
        return Ok(false);
    };
    let failed = |message: String| {
        tracing::error!(subject, %message, "cannot send mail");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "mail_failed",
            "the mail could not be sent; see the server's log",
        )
    };
    // The operator's mail connection is one of the default workspace.
    let connection = state
        .connections
        .get(weft_store::DEFAULT_WORKSPACE, name)
        .await
        .map_err(failed)?;
    let registry = state.runtime.recipes().registry();
    let mailer = registry
        .get("email")
        .ok_or_else(|| failed("no email connector".to_owned()))?;
    let context = CallContext::outside_jobs(MAIL_TIME);
    let input = json!({ "to": to, "subject": subject, "text": text });
    mailer
        .call("send", Some(&connection), input, &context)
        .await
        .map_err(|error| failed(error.message))?;
    Ok(true)
}

async fn record(state: &AppState, event: AuditEvent) -> Result<(), ApiError> {
    Ok(state.runtime.store().record_audit(&event).await?)
}

/// Records what happened to a person's account in the audit log of each of their workspaces.
async fn record_for_person(
    state: &AppState,
    user: &User,
    action: &str,
    client: &ClientMeta,
) -> Result<(), ApiError> {
    for workspace in state.runtime.store().workspaces_of(&user.id).await? {
        record(state, event_by(user, &workspace.id, action, client)).await?;
    }
    Ok(())
}

fn event_by(user: &User, workspace: &str, action: &str, client: &ClientMeta) -> AuditEvent {
    let mut event = AuditEvent::new(workspace, Some(&user.id), &user.email, action);
    event.target_id = Some(user.id.clone());
    event.ip.clone_from(&client.ip);
    event.user_agent.clone_from(&client.user_agent);
    event
}

async fn hashed(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::bad_request("cannot hash the password"))?
        .map_err(ApiError::bad_request)
}

/// A new person with a confirmed email (the link they came with proves it), in `workspace`
/// with `role`.
async fn make_person(
    state: &AppState,
    workspace: &str,
    email: &str,
    name: &str,
    password: String,
    role: Role,
) -> Result<User, ApiError> {
    if let Some(problem) = password_problem(&password, email) {
        return Err(ApiError::bad_request(problem));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "`name` must have 1 to 100 characters",
        ));
    }
    let store = state.runtime.store();
    let user = store
        .create_user(email, name, &hashed(password).await?)
        .await?;
    store.set_membership(workspace, &user.id, role).await?;
    store.email_verified(&user.id).await?;
    Ok(user)
}

fn person_json(user: &User, workspace: &str, role: Role) -> Value {
    json!({
        "user": { "id": user.id, "email": user.email, "name": user.name },
        "workspace": workspace,
        "role": role.as_str(),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    token: String,
    email: String,
    name: String,
    password: String,
}

/// `POST /api/v1/setup`: makes the first owner with the link `weft serve` printed at its
/// first start; refused once anybody exists.
pub async fn setup(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: Setup = parse_body(&body, "{\"token\", \"email\", \"name\", \"password\"}")?;
    let store = state.runtime.store();
    if store.user_count().await? > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "set_up_already",
            "this server has its owner already",
        ));
    }
    store
        .take_account_link(&token_hash(&request.token), LinkPurpose::Setup)
        .await?
        .ok_or_else(link_refused)?;
    let email = request.email.trim().to_lowercase();
    if !email.contains('@') {
        return Err(ApiError::bad_request(format!(
            "`{email}` is not an email address"
        )));
    }
    let user = make_person(
        &state,
        DEFAULT_WORKSPACE,
        &email,
        &request.name,
        request.password,
        Role::Owner,
    )
    .await?;
    record(
        &state,
        event_by(&user, DEFAULT_WORKSPACE, "member.setup", &client),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(person_json(&user, DEFAULT_WORKSPACE, Role::Owner)),
    ))
}

/// The setup link of a server nobody can sign in to yet: made (and to be printed) at start.
pub async fn setup_link(
    store: &weft_store::Store,
    public_url: &str,
) -> Result<Option<String>, weft_store::StoreError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let secret = new_secret();
    let link = AccountLink {
        purpose: LinkPurpose::Setup,
        email: String::new(),
        workspace_id: None,
        role: Some(Role::Owner),
        created_by: None,
        expires_at: Utc::now() + SETUP_LASTS,
    };
    store.save_account_link(&token_hash(&secret), &link).await?;
    Ok(Some(format!("{public_url}/setup?token={secret}")))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    email: String,
    role: String,
}

/// `POST /api/v1/invitations`: invites someone into the workspace with a role no higher
/// than the caller's; the link is mailed, or given back when there is no mail connection.
pub async fn invite(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Extension<AuditNote>, Json<Value>), ApiError> {
    let request: Invite = parse_body(&body, "{\"email\", \"role\"}")?;
    let email = request.email.trim().to_lowercase();
    if !email.contains('@') {
        return Err(ApiError::bad_request(format!(
            "`{email}` is not an email address"
        )));
    }
    let role = Role::parse(&request.role).ok_or_else(|| {
        ApiError::bad_request("`role` must be viewer, operator, builder, admin or owner")
    })?;
    crate::usage::check_room(&state, &caller.workspace_id, Measure::Members, 1).await?;
    if role > caller.role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "you cannot invite with a higher role ({role}) than yours ({})",
                caller.role
            ),
        ));
    }
    let expires_at = Utc::now() + INVITATION_LASTS;
    let link = AccountLink {
        purpose: LinkPurpose::Invitation,
        email: email.clone(),
        workspace_id: Some(caller.workspace_id.clone()),
        role: Some(role),
        created_by: Some(caller.user.id.clone()),
        expires_at,
    };
    let url = new_link(&state, "join", &link).await?;
    let text = format!(
        "{} invites you to their Weft workspace as {role}.\n\nJoin within 7 days: {url}\n\nIf you did not expect this, ignore this mail.",
        caller.user.name
    );
    let mailed = send_mail(&state, &email, "You are invited to Weft", &text).await?;
    let mut answer = json!({ "email": email, "role": role.as_str(), "expires_at": expires_at, "mailed": mailed });
    if !mailed {
        answer["link"] = json!(url);
    }
    let note =
        AuditNote::details(json!({ "email": email, "role": role.as_str(), "mailed": mailed }));
    Ok((StatusCode::CREATED, note, Json(answer)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    token: String,
    name: Option<String>,
    password: String,
}

/// Refuses a new member past the plan's limit and gives the invitation's link back, so the
/// invitee can accept it once the workspace has room.
async fn room_for_member(
    state: &AppState,
    workspace: &str,
    hash: &str,
    link: &AccountLink,
) -> Result<(), ApiError> {
    if let Err(refused) = crate::usage::check_room(state, workspace, Measure::Members, 1).await {
        state.runtime.store().save_account_link(hash, link).await?;
        return Err(refused);
    }
    Ok(())
}

/// `POST /api/v1/invitations/accept`: joins the workspace with an invitation's link. A new
/// person gives a name and a password; someone with an account gives their password.
pub async fn accept(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<Json<Value>, ApiError> {
    let request: Accept = parse_body(&body, "{\"token\", \"name\"?, \"password\"}")?;
    let store = state.runtime.store();
    let hash = token_hash(&request.token);
    let link = store
        .take_account_link(&hash, LinkPurpose::Invitation)
        .await?
        .ok_or_else(link_refused)?;
    let role = link.role.unwrap_or(Role::Viewer);
    let workspace = link
        .workspace_id
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_owned());
    // An invitation is only as good as its sender is now: one who left, or lost the role
    // they invited with, can no longer let anyone in.
    let inviter_role = match &link.created_by {
        Some(inviter) => store.membership(&workspace, inviter).await?,
        None => None,
    };
    if inviter_role.is_none_or(|inviter_role| inviter_role < role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invitation_withdrawn",
            "whoever sent this invitation can no longer invite with this role; ask for a new one",
        ));
    }
    let user = match store.user_by_email(&link.email).await? {
        Some(user) => {
            let (password, stored) = (request.password, user.password_hash.clone());
            let matches = tokio::task::spawn_blocking(move || {
                crate::auth::verify_password(&password, &stored)
            })
            .await
            .unwrap_or(false);
            if !matches {
                // The link is spent: a wrong password must not leave it open to guessing.
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_password",
                    "the password of this account is wrong; ask for a new invitation",
                ));
            }
            let had = store.membership(&workspace, &user.id).await?;
            if had.is_none() {
                room_for_member(&state, &workspace, &hash, &link).await?;
            }
            store
                .set_membership(&workspace, &user.id, had.map_or(role, |had| had.max(role)))
                .await?;
            store.email_verified(&user.id).await?;
            user
        }
        None => {
            room_for_member(&state, &workspace, &hash, &link).await?;
            let name = request.name.unwrap_or_default();
            make_person(
                &state,
                &workspace,
                &link.email,
                &name,
                request.password,
                role,
            )
            .await?
        }
    };
    let mut event = event_by(&user, &workspace, "member.join", &client);
    event.details = Some(json!({ "role": role.as_str(), "invited_by": link.created_by }));
    record(&state, event).await?;
    Ok(Json(person_json(&user, &workspace, role)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

/// `POST /api/v1/password-reset`: mails a reset link when the account exists; the answer
/// is the same either way, so it tells nobody which emails have accounts.
pub async fn request_reset(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let request: ResetRequest = parse_body(&body, "{\"email\"}")?;
    let email = request.email.trim().to_lowercase();
    if email.len() > crate::sessions::MAX_EMAIL_BYTES || !email.contains('@') {
        return Err(ApiError::bad_request(format!(
            "`email` must be an email address of at most {} characters",
            crate::sessions::MAX_EMAIL_BYTES
        )));
    }
    let account_key = format!("reset account {email}");
    let address_key = format!(
        "reset address {}",
        client.ip.as_deref().unwrap_or("unknown")
    );
    let limits = [
        (account_key.as_str(), RESETS_PER_ACCOUNT),
        (address_key.as_str(), RESETS_PER_ADDRESS),
    ];
    if let Err(wait) = state.sign_in_failures.attempt(&limits) {
        return Ok(crate::sessions::too_many(wait));
    }
    // The answer comes at once, and the same, whether the account exists or the mail can be
    // sent: neither its time nor its status tells who has an account.
    tokio::spawn(async move {
        if let Err(error) = mail_reset_link(&state, &email, &client).await {
            tracing::warn!(error = %error.message(), "cannot send a password reset link");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message": "if this email has an account, a link to reset its password is on its way" })),
    )
        .into_response())
}

/// Mails a password reset link to the account with this email, if there is one.
async fn mail_reset_link(
    state: &AppState,
    email: &str,
    client: &ClientMeta,
) -> Result<(), ApiError> {
    let store = state.runtime.store();
    let Some(user) = store.user_by_email(email).await? else {
        return Ok(());
    };
    let link = AccountLink {
        purpose: LinkPurpose::PasswordReset,
        email: email.to_owned(),
        workspace_id: None,
        role: None,
        created_by: None,
        expires_at: Utc::now() + RESET_LASTS,
    };
    let url = new_link(state, "reset-password", &link).await?;
    let text = format!(
        "Someone asked to reset the password of your Weft account.\n\nSet a new one within an hour: {url}\n\nIf it was not you, ignore this mail: your password stays as it is."
    );
    send_mail(state, email, "Reset your Weft password", &text).await?;
    record_for_person(state, &user, "account.password_reset_asked", client).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    token: String,
    new_password: String,
}

/// `POST /api/v1/password-reset/confirm`: sets a new password with a reset link; every
/// session of the person ends.
pub async fn confirm_reset(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<StatusCode, ApiError> {
    let request: Reset = parse_body(&body, "{\"token\", \"new_password\"}")?;
    // A password refused for its length spends no link.
    if let Some(problem) = password_problem(&request.new_password, "") {
        return Err(ApiError::bad_request(problem));
    }
    let store = state.runtime.store();
    let link = store
        .take_account_link(&token_hash(&request.token), LinkPurpose::PasswordReset)
        .await?
        .ok_or_else(link_refused)?;
    let user = store
        .user_by_email(&link.email)
        .await?
        .ok_or_else(link_refused)?;
    if let Some(problem) = password_problem(&request.new_password, &user.email) {
        return Err(ApiError::bad_request(problem));
    }
    store
        .set_password_hash(&user.id, &hashed(request.new_password).await?)
        .await?;
    store.end_sessions_of(&user.id).await?;
    // The link came by mail: the address works.
    store.email_verified(&user.id).await?;
    record_for_person(&state, &user, "account.password_reset", &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/me/email/check`: mails the caller a link that confirms their address.
pub async fn check_email(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let link = AccountLink {
        purpose: LinkPurpose::EmailCheck,
        email: caller.user.email.clone(),
        workspace_id: None,
        role: None,
        created_by: Some(caller.user.id.clone()),
        expires_at: Utc::now() + EMAIL_CHECK_LASTS,
    };
    let url = new_link(&state, "confirm-email", &link).await?;
    let text = format!("Confirm that this address is yours, within 2 days: {url}");
    let mailed = send_mail(
        &state,
        &caller.user.email,
        "Confirm your email for Weft",
        &text,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "mailed": mailed }))))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirm {
    token: String,
}

/// `POST /api/v1/email/confirm`: confirms an address with the mailed link.
pub async fn confirm_email(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<StatusCode, ApiError> {
    let request: Confirm = parse_body(&body, "{\"token\"}")?;
    let store = state.runtime.store();
    let link = store
        .take_account_link(&token_hash(&request.token), LinkPurpose::EmailCheck)
        .await?
        .ok_or_else(link_refused)?;
    let user = store
        .user_by_email(&link.email)
        .await?
        .ok_or_else(link_refused)?;
    store.email_verified(&user.id).await?;
    record_for_person(&state, &user, "account.email_confirmed", &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    email: String,
    name: String,
    password: String,
    workspace: crate::workspaces::NewWorkspace,
}

/// Sign-ups from one address within the failure window.
const SIGN_UPS_PER_ADDRESS: usize = 5;

/// `POST /api/v1/sign-up` (when the operator lets anyone sign up): a new person with a
/// workspace of their own, and a mail that confirms their address. The answer is the same
/// whether the email had an account or not; its owner is mailed instead.
pub async fn sign_up(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    if !state.settings.sign_up {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sign_up_closed",
            "this server takes new people by invitation only",
        ));
    }
    let request: SignUp = parse_body(
        &body,
        "{\"email\", \"name\", \"password\", \"workspace\": {\"id\", \"name\"}}",
    )?;
    let email = request.email.trim().to_lowercase();
    if email.len() > crate::sessions::MAX_EMAIL_BYTES || !email.contains('@') {
        return Err(ApiError::bad_request(format!(
            "`email` must be an email address of at most {} characters",
            crate::sessions::MAX_EMAIL_BYTES
        )));
    }
    let workspace_name = request.workspace.checked()?;
    if let Some(problem) = password_problem(&request.password, &email) {
        return Err(ApiError::bad_request(problem));
    }
    let address_key = format!(
        "sign-up address {}",
        client.ip.as_deref().unwrap_or("unknown")
    );
    if let Err(wait) = state
        .sign_in_failures
        .attempt(&[(address_key.as_str(), SIGN_UPS_PER_ADDRESS)])
    {
        return Ok(crate::sessions::too_many(wait));
    }
    let store = state.runtime.store();
    if store.workspace_name(&request.workspace.id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the workspace id `{}` is taken", request.workspace.id),
        ));
    }
    let answer = (
        StatusCode::ACCEPTED,
        Json(json!({ "message": "check your mail to confirm your address, then sign in" })),
    );
    if store.user_by_email(&email).await?.is_some() {
        let text = "Someone tried to sign up to Weft with this address, which has an account already.\n\nIf it was you, sign in, or reset your password if you forgot it. If not, ignore this mail.";
        tokio::spawn(async move {
            if let Err(error) =
                send_mail(&state, &email, "You have a Weft account already", text).await
            {
                tracing::warn!(error = %error.message(), "cannot mail an existing account about a sign-up");
            }
        });
        return Ok(answer.into_response());
    }
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "`name` must have 1 to 100 characters",
        ));
    }
    let user = store
        .create_user(&email, name, &hashed(request.password).await?)
        .await?;
    store
        .create_workspace(&request.workspace.id, workspace_name, &user.id)
        .await?;
    let mut event = event_by(&user, &request.workspace.id, "member.sign_up", &client);
    event.details = Some(json!({ "workspace": request.workspace.id }));
    record(&state, event).await?;
    let link = AccountLink {
        purpose: LinkPurpose::EmailCheck,
        email: email.clone(),
        workspace_id: None,
        role: None,
        created_by: Some(user.id.clone()),
        expires_at: Utc::now() + EMAIL_CHECK_LASTS,
    };
    let url = new_link(&state, "confirm-email", &link).await?;
    tokio::spawn(async move {
        let text =
            format!("Welcome to Weft. Confirm that this address is yours, within 2 days: {url}");
        if let Err(error) = send_mail(&state, &email, "Confirm your email for Weft", &text).await {
            tracing::warn!(error = %error.message(), "cannot mail a sign-up's confirmation link");
        }
    });
    Ok(answer.into_response())
}
