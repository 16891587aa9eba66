//! Signing in with a password: browser sessions held by an HttpOnly cookie, their changes
//! guarded by a CSRF token, ended by signing out (here or everywhere), by idling or at their
//! absolute end. Failed sign-ins are limited per account and per address, and every sign-in,
//! failed or not, is written to the audit log.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use weft_store::{AuditEvent, Caller, Credential, DEFAULT_WORKSPACE, NewSession, Role, User};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::{
    ClientMeta, CurrentUser, hash_password, new_secret, token_hash, verify_password,
};
use crate::error::{ApiError, TextBody, parse_body};

/// The cookie that holds a session.
pub const SESSION_COOKIE: &str = "weft_session";
/// The header a session's changes carry its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The window failed sign-ins are counted over.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins to one account within the window before more are refused.
const FAILURES_PER_ACCOUNT: usize = 5;
/// Failed sign-ins from one address within the window before more are refused.
const FAILURES_PER_ADDRESS: usize = 20;
/// Shortest and longest passwords accepted (NIST SP 800-63B: at least 8, at least 64 allowed,
/// no rules on what characters they hold).
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Longest email address (RFC 5321's path limit, less its brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Attempts (failed sign-ins, password-reset requests) of the last [`FAILURE_WINDOW`], by
/// key (an account or an address). Kept by each process.
#[derive(Default)]
pub struct FailureCounter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Keys kept before the ones whose attempts are all old are dropped.
const MOST_KEYS: usize = 100_000;

impl FailureCounter {
    /// Counts an attempt against every key at once, unless one of them is at its limit: then
    /// how long until it may try again. An attempt counts before its work (the password
    /// hashing), so that attempts made in parallel cannot slip past the limit; a success
    /// takes its count back with [`FailureCounter::succeeded`].
    pub(crate) fn attempt(&self, limits: &[(&str, usize)]) -> Result<(), Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return Ok(());
        };
        if failures.len() > MOST_KEYS {
            failures
                .retain(|_, times| times.back().is_some_and(|at| at.elapsed() < FAILURE_WINDOW));
        }
        let mut wait = None;
        for (key, limit) in limits {
            let Some(times) = failures.get_mut(*key) else {
                continue;
            };
            while times
                .front()
                .is_some_and(|at| at.elapsed() >= FAILURE_WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= *limit {
                let left = times.front().map_or(FAILURE_WINDOW, |at| {
                    FAILURE_WINDOW.saturating_sub(at.elapsed())
                });
                wait = wait.max(Some(left));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        let now = Instant::now();
        for (key, _) in limits {
            failures
                .entry((*key).to_owned())
                .or_default()
                .push_back(now);
        }
        Ok(())
    }

    /// An attempt succeeded: the account's count starts again, and the address's attempt is
    /// taken back.
    pub(crate) fn succeeded(&self, account_key: &str, address_key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(account_key);
            if let Some(times) = failures.get_mut(address_key) {
                times.pop_back();
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
    /// The workspace to sign in to; by default `default` when the person is a member there,
    /// else the first of theirs.
    workspace: Option<String>,
}

pub(crate) fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed sign-ins; try again in {seconds} seconds"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn audit_event(
    action: &str,
    actor_id: Option<&str>,
    actor: &str,
    client: &ClientMeta,
) -> AuditEvent {
    let mut event = AuditEvent::new(DEFAULT_WORKSPACE, actor_id, actor, action);
    event.ip.clone_from(&client.ip);
    event.user_agent.clone_from(&client.user_agent);
    event
}

/// `POST /api/v1/session`: signs in with email and password; sets the session cookie and
/// answers who signed in and the session's CSRF token.
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientMeta,
    TextBody(body): TextBody,
) -> Result<Response, ApiError> {
    let request: SignIn = parse_body(&body, "{\"email\", \"password\"}")?;
    let email = request.email.trim().to_lowercase();
    let address_key = format!("address {}", client.ip.as_deref().unwrap_or("unknown"));
    let account_key = format!("account {email}");
    if email.len() > MAX_EMAIL_BYTES {
        return Err(ApiError::bad_request(format!(
            "an email address has at most {MAX_EMAIL_BYTES} characters"
        )));
    }
    let limits = [
        (account_key.as_str(), FAILURES_PER_ACCOUNT),
        (address_key.as_str(), FAILURES_PER_ADDRESS),
    ];
    if let Err(wait) = state.sign_in_failures.attempt(&limits) {
        return Ok(too_many(wait));
    }
    let store = state.runtime.store();
    let user = store.user_by_email(&email).await?;
    // A made-up account costs the same hashing as a real one: the time tells nothing.
    let password_hash = user
        .as_ref()
        .map_or_else(dummy_hash, |user| user.password_hash.clone());
    let password = request.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &password_hash))
        .await
        .unwrap_or(false);
    let member = match (&user, matches) {
        (Some(user), true) => {
            workspace_to_enter(&state, &user.id, request.workspace.as_deref()).await?
        }
        _ => None,
    };
    let (Some(user), Some((workspace, role))) = (user, member) else {
        let event = audit_event("session.sign_in_failed", None, &email, &client);
        store.record_audit(&event).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            "the email or the password is wrong",
        ));
    };
    state.sign_in_failures.succeeded(&account_key, &address_key);
    if role < Role::Owner && crate::sso::required(&state, &workspace).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "sso_required",
            format!(
                "this workspace signs in through its identity provider: /api/v1/sso/start?workspace={workspace}"
            ),
        ));
    }
    start_session(&state, &user, &workspace, role, &client, None).await
}

/// The workspace a person signs in to, with their role there: the one asked for, or else
/// `default` when they belong to it, or else the first of theirs. `None` when they belong
/// to none (or not to the one asked for).
async fn workspace_to_enter(
    state: &AppState,
    user_id: &str,
    asked: Option<&str>,
) -> Result<Option<(String, Role)>, ApiError> {
    let theirs = state.runtime.store().workspaces_of(user_id).await?;
    let wanted = asked.unwrap_or(DEFAULT_WORKSPACE);
    let found = theirs
        .iter()
        .find(|workspace| workspace.id == wanted)
        .or(if asked.is_none() {
            theirs.first()
        } else {
            None
        });
    Ok(found.map(|workspace| (workspace.id.clone(), workspace.role)))
}

/// Starts a session for a person who proved who they are (by password, or through the
/// identity provider `sso`): the cookie, who it is and the CSRF token, and the audit event.
pub(crate) async fn start_session(
    state: &AppState,
    user: &User,
    workspace: &str,
    role: Role,
    client: &ClientMeta,
    sso: Option<&str>,
) -> Result<Response, ApiError> {
    let store = state.runtime.store();
    let secret = new_secret();
    let csrf_token = new_secret();
    let lasts =
        chrono::Duration::from_std(state.settings.session_max).unwrap_or(chrono::Duration::days(7));
    let expires_at = Utc::now() + lasts;
    let session_id = store
        .create_session(&NewSession {
            token_hash: &token_hash(&secret),
            user_id: &user.id,
            workspace_id: workspace,
            csrf_token: &csrf_token,
            expires_at,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        })
        .await?;
    let mut event = audit_event("session.sign_in", Some(&user.id), &user.email, client);
    event.workspace_id = workspace.to_owned();
    event.target_id = Some(session_id);
    event.details = sso.map(|provider| json!({ "sso": provider }));
    store.record_audit(&event).await?;
    let mut response = Json(json!({
        "user": { "id": user.id, "email": user.email, "name": user.name },
        "workspace": workspace,
        "role": role.as_str(),
        "csrf_token": csrf_token,
        "expires_at": expires_at,
    }))
    .into_response();
    let cookie = session_cookie(state, &secret, state.settings.session_max.as_secs());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The session cookie: HttpOnly, SameSite=Lax, and Secure when the server is reached over
/// https; an empty value with no lifetime removes it.
fn session_cookie(state: &AppState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
}

/// A hash to check a password against when there is no account: as slow as a real one.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_password("not anybody's password").unwrap_or_default())
        .clone()
}

/// The session a request signed in with, or a refusal for a token.
fn session_of(caller: &weft_store::Caller) -> Result<(&str, &str), ApiError> {
    match &caller.credential {
        Credential::Session { id, csrf_token, .. } => Ok((id, csrf_token)),
        Credential::Token { .. } => Err(ApiError::bad_request(
            "this request came with an API token, not a browser session",
        )),
    }
}

/// `GET /api/v1/session`: who is signed in, and the session's CSRF token.
pub async fn current(CurrentUser(caller): CurrentUser) -> Result<Json<Value>, ApiError> {
    let (_, csrf_token) = session_of(&caller)?;
    Ok(Json(json!({
        "user": { "id": caller.user.id, "email": caller.user.email, "name": caller.user.name },
        "workspace": caller.workspace_id,
        "role": caller.role.as_str(),
        "csrf_token": csrf_token,
    })))
}

/// `DELETE /api/v1/session`: signs this session out.
pub async fn sign_out(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Response, ApiError> {
    let (id, _) = session_of(&caller)?;
    state.runtime.store().end_session(id).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

/// `DELETE /api/v1/sessions`: signs every session of the caller out, this one included.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Response, ApiError> {
    let ended = state
        .runtime
        .store()
        .end_sessions_of(&caller.user.id)
        .await?;
    let mut response = (
        AuditNote::details(json!({ "sessions_ended": ended })),
        StatusCode::NO_CONTENT,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Checks a new password: long enough and not too long, and not the email (NIST SP 800-63B
/// rules; no rules on what characters it holds).
pub fn password_problem(password: &str, email: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Some(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        return Some(format!(
            "the password must have at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    if password.eq_ignore_ascii_case(email) || password.chars().all(|c| password.starts_with(c)) {
        return Some("the password is too easy to guess".to_owned());
    }
    None
}

/// `POST /api/v1/me/password`: changes the caller's password, given the current one; every
/// other session of theirs ends.
/// Checks the caller's current password, before a change that must be theirs (a new password,
/// the deletion of the account). Guessing it from a stolen session or token is limited as
/// signing in is.
pub(crate) async fn check_current_password(
    state: &AppState,
    caller: &Caller,
    password: String,
) -> Result<(), ApiError> {
    let account_key = format!("account {}", caller.user.email);
    let limits = [(account_key.as_str(), FAILURES_PER_ACCOUNT)];
    if let Err(wait) = state.sign_in_failures.attempt(&limits) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many wrong passwords; try again in {} seconds",
                wait.as_secs().max(1)
            ),
        ));
    }
    let stored = caller.user.password_hash.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    if !matches {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    state.sign_in_failures.succeeded(&account_key, "");
    Ok(())
}

pub async fn change_password(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, StatusCode), ApiError> {
    let request: PasswordChange = parse_body(&body, "{\"current_password\", \"new_password\"}")?;
    check_current_password(&state, &caller, request.current_password).await?;
    if let Some(problem) = password_problem(&request.new_password, &caller.user.email) {
        return Err(ApiError::bad_request(problem));
    }
    let new = request.new_password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .map_err(|_| ApiError::bad_request("cannot hash the password"))?
        .map_err(ApiError::bad_request)?;
    let store = state.runtime.store();
    store.set_password_hash(&caller.user.id, &hash).await?;
    let this_session = match &caller.credential {
        Credential::Session { id, .. } => Some(id.clone()),
        Credential::Token { .. } => None,
    };
    let ended = store
        .end_other_sessions(&caller.user.id, this_session.as_deref())
        .await?;
    Ok((
        AuditNote::details(json!({ "other_sessions_ended": ended })),
        StatusCode::NO_CONTENT,
    ))
}

/// `GET /api/v1/sign-in/options`: what the sign-in page offers: first-run setup (nobody can
/// sign in yet), signing up, and single sign-on into the default workspace (other
/// workspaces' people name their workspace).
pub async fn sign_in_options(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.runtime.store();
    let needs_setup = store.user_count().await? == 0;
    let default_sso = store.sso(weft_store::DEFAULT_WORKSPACE).await?.is_some();
    Ok(Json(json!({
        "needs_setup": needs_setup,
        "sign_up": state.settings.sign_up,
        "default_sso": default_sso,
    })))
}
