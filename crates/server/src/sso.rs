//! Single sign-on with OpenID Connect: a workspace names its identity provider (a preset for
//! Google, Microsoft, Slack or Salesforce needs only the client's id and secret), people
//! sign in there (authorization code with PKCE, found through discovery), and the ID token
//! is checked (issuer, audience, expiry, nonce, signature by the provider's JWKS) before a
//! session starts for the member with that verified email.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use serde_json::{Value, json};
use std::time::Duration;
use weft_store::vault::Vault;
use weft_store::{AuditEvent, DEFAULT_WORKSPACE, SsoSettings, sso_row, sso_sign_in_row};

use crate::AppState;
use crate::access::AuditNote;
use crate::auth::{ClientMeta, CurrentUser};
use crate::error::{ApiError, TextBody, parse_body};

/// How long a person has to sign in at the provider.
const SIGN_IN_LASTS: Duration = Duration::from_secs(600);
/// The cookie that ties a sign-in to the browser that started it, so that nobody can send
/// another person's browser to the callback with a sign-in of their own.
const STARTED_HERE_COOKIE: &str = "weft_sso_started";
/// Longest a call to the provider may take.
const PROVIDER_TIME: Duration = Duration::from_secs(15);

/// The issuer of a preset provider; `None` for `custom`, which names its own.
fn preset_issuer(provider: &str, tenant: Option<&str>) -> Result<Option<String>, ApiError> {
    Ok(Some(match provider {
        "google" => "https://accounts.google.com".to_owned(),
        "microsoft" => {
            let tenant = tenant.filter(|tenant| !tenant.is_empty()).ok_or_else(|| {
                ApiError::bad_request("`microsoft` needs `tenant`: your directory (tenant) id")
            })?;
            format!("https://login.microsoftonline.com/{tenant}/v2.0")
        }
        "slack" => "https://slack.com".to_owned(),
        "salesforce" => "https://login.salesforce.com".to_owned(),
        "custom" => return Ok(None),
        other => {
            return Err(ApiError::bad_request(format!(
                "`provider` must be google, microsoft, slack, salesforce or custom, not `{other}`"
            )));
        }
    }))
}

/// The HTTP client the library calls the provider with: no redirects followed (the
/// library's advice against SSRF), bounded in time.
struct ProviderHttp(reqwest::Client);

impl ProviderHttp {
    fn new() -> Result<ProviderHttp, ApiError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIME)
            .build()
            .map(ProviderHttp)
            .map_err(|error| ApiError::bad_request(format!("cannot make an HTTP client: {error}")))
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = reqwest::Error;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Carries one of the library's requests over our reqwest.
async fn send(
    client: &reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    let mut answer = openidconnect::HttpResponse::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

fn provider_failed(what: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "sso_provider",
        format!("the identity provider {what}: {error}"),
    )
}

/// The provider's metadata, found through discovery.
async fn discover(issuer: &str) -> Result<CoreProviderMetadata, ApiError> {
    let http = ProviderHttp::new()?;
    let issuer = IssuerUrl::new(issuer.to_owned())
        .map_err(|error| ApiError::bad_request(format!("`issuer` is not a URL: {error}")))?;
    CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .map_err(|error| provider_failed("cannot be discovered", error))
}

fn redirect_uri(state: &AppState) -> Result<RedirectUrl, ApiError> {
    RedirectUrl::new(format!("{}/sso/callback", state.settings.public_url))
        .map_err(|error| ApiError::bad_request(format!("--public-url is not a URL: {error}")))
}

async fn client_secret(vault: &Vault, settings: &SsoSettings) -> Result<String, ApiError> {
    let opened = vault
        .open_sealed(&sso_row(&settings.workspace_id), &settings.client_secret)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot open the single sign-on client secret");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "secrets_unavailable",
                "the client secret cannot be opened; see the server's log",
            )
        })?;
    Ok(String::from_utf8_lossy(&opened).into_owned())
}

fn settings_json(settings: &SsoSettings) -> Value {
    json!({
        "provider": settings.provider,
        "issuer": settings.issuer,
        "client_id": settings.client_id,
        "client_secret": "********",
        "required": settings.required,
        "updated_at": settings.updated_at,
    })
}

/// `GET /api/v1/sso`: the workspace's identity provider, its secret hidden.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let settings = state
        .runtime
        .store()
        .sso(&caller.workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found("single sign-on set up in this workspace"))?;
    Ok(Json(settings_json(&settings)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SsoRequest {
    provider: String,
    issuer: Option<String>,
    tenant: Option<String>,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    required: bool,
}

/// `PUT /api/v1/sso`: sets the workspace's identity provider, once its discovery answers.
pub async fn save(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(Extension<AuditNote>, Json<Value>), ApiError> {
    let request: SsoRequest = parse_body(
        &body,
        "{\"provider\", \"client_id\", \"client_secret\", \"issuer\"?, \"tenant\"?, \"required\"?}",
    )?;
    let issuer = match preset_issuer(&request.provider, request.tenant.as_deref())? {
        Some(issuer) => issuer,
        None => request
            .issuer
            .clone()
            .ok_or_else(|| ApiError::bad_request("`custom` needs `issuer`"))?,
    };
    if request.client_id.trim().is_empty() || request.client_secret.is_empty() {
        return Err(ApiError::bad_request(
            "`client_id` and `client_secret` are needed",
        ));
    }
    discover(&issuer).await?;
    let store = state.runtime.store();
    let before = store
        .sso(&caller.workspace_id)
        .await?
        .map(|settings| settings_json(&settings));
    let sealed = state
        .vault
        .seal(
            &sso_row(&caller.workspace_id),
            request.client_secret.as_bytes(),
        )
        .await
        .map_err(|error| ApiError::bad_request(format!("cannot seal the secret: {error}")))?;
    let settings = SsoSettings {
        workspace_id: caller.workspace_id.clone(),
        provider: request.provider,
        issuer,
        client_id: request.client_id.trim().to_owned(),
        client_secret: sealed,
        required: request.required,
        updated_at: Utc::now(),
    };
    store.save_sso(&settings).await?;
    let after = settings_json(&settings);
    Ok((
        AuditNote::changed(before.unwrap_or(Value::Null), after.clone()),
        Json(after),
    ))
}

/// `DELETE /api/v1/sso`: removes the workspace's identity provider.
pub async fn remove(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<StatusCode, ApiError> {
    if state
        .runtime
        .store()
        .delete_sso(&caller.workspace_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "single sign-on set up in this workspace",
        ))
    }
}

/// Whether members of the workspace must sign in through its identity provider.
pub async fn required(state: &AppState, workspace_id: &str) -> Result<bool, ApiError> {
    Ok(state
        .runtime
        .store()
        .sso(workspace_id)
        .await?
        .is_some_and(|settings| settings.required))
}

#[derive(serde::Deserialize)]
pub struct StartQuery {
    workspace: Option<String>,
}

/// `GET /api/v1/sso/start`: sends the browser to the workspace's identity provider.
pub async fn start(
    State(state): State<AppState>,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let workspace = query
        .workspace
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_owned());
    let settings = state
        .runtime
        .store()
        .sso(&workspace)
        .await?
        .ok_or_else(|| ApiError::not_found("single sign-on set up in this workspace"))?;
    let secret = client_secret(&state.vault, &settings).await?;
    let metadata = discover(&settings.issuer).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(redirect_uri(&state)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let kept = json!({ "nonce": nonce.secret(), "verifier": verifier.secret() }).to_string();
    let sealed = state
        .vault
        .seal(&sso_sign_in_row(csrf.secret()), kept.as_bytes())
        .await
        .map_err(|error| ApiError::bad_request(format!("cannot seal the sign-in: {error}")))?;
    state
        .runtime
        .store()
        .save_sso_sign_in(csrf.secret(), &workspace, &sealed, SIGN_IN_LASTS)
        .await?;
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let started_here = format!(
        "{STARTED_HERE_COOKIE}={}; Path=/sso/callback; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        csrf.secret(),
        SIGN_IN_LASTS.as_secs()
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.to_string()),
            (header::SET_COOKIE, started_here),
        ],
    )
        .into_response())
}

/// Whether the request carries the cookie of the sign-in `state` (compared in constant time).
fn started_here(headers: &axum::http::HeaderMap, state: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .any(|(name, value)| {
            name == STARTED_HERE_COOKIE && bool::from(value.as_bytes().ct_eq(state.as_bytes()))
        })
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "sso_refused", message)
}

/// `GET /sso/callback`: where the provider sends the browser back. Checks the ID token and
/// starts a session for the member with its verified email.
pub async fn callback(
    State(state): State<AppState>,
    client_meta: ClientMeta,
    headers: axum::http::HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    if let Some(error) = query.error {
        return Err(refused(format!("the identity provider refused: {error}")));
    }
    let (Some(code), Some(csrf)) = (query.code, query.state) else {
        return Err(ApiError::bad_request(
            "the callback needs `code` and `state`",
        ));
    };
    if !started_here(&headers, &csrf) {
        return Err(refused(
            "this sign-in was started in another browser: start again here",
        ));
    }
    let store = state.runtime.store();
    let (workspace, sealed) = store
        .take_sso_sign_in(&csrf)
        .await?
        .ok_or_else(|| refused("this sign-in is unknown or expired: start again"))?;
    let kept = state
        .vault
        .open_sealed(&sso_sign_in_row(&csrf), &sealed)
        .await
        .map_err(|_| refused("this sign-in cannot be read: start again"))?;
    let kept: Value = serde_json::from_slice(&kept).unwrap_or(Value::Null);
    let (Some(nonce), Some(verifier)) = (kept["nonce"].as_str(), kept["verifier"].as_str()) else {
        return Err(refused("this sign-in cannot be read: start again"));
    };
    let settings = store
        .sso(&workspace)
        .await?
        .ok_or_else(|| refused("single sign-on is no longer set up in this workspace"))?;
    let secret = client_secret(&state.vault, &settings).await?;
    let metadata = discover(&settings.issuer).await?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(redirect_uri(&state)?);
    let http = ProviderHttp::new()?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|error| provider_failed("has no token endpoint", error))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(&http)
        .await
        .map_err(|error| provider_failed("refused the code", error))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| refused("the identity provider sent no ID token"))?;
    let nonce = Nonce::new(nonce.to_owned());
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .map_err(|error| refused(format!("the ID token does not hold: {error}")))?;
    let email = claims
        .email()
        .map(|email| email.as_str().to_lowercase())
        .ok_or_else(|| refused("the ID token holds no email"))?;
    let fail = |reason: &str| {
        let mut event = AuditEvent::new(&workspace, None, &email, "session.sign_in_failed");
        event.ip.clone_from(&client_meta.ip);
        event.user_agent.clone_from(&client_meta.user_agent);
        event.details = Some(json!({ "sso": settings.provider, "reason": reason }));
        event
    };
    if claims.email_verified() != Some(true) {
        store.record_audit(&fail("email not verified")).await?;
        return Err(refused("the identity provider has not verified this email"));
    }
    let user = store.user_by_email(&email).await?;
    let role = match &user {
        Some(user) => store.membership(&workspace, &user.id).await?,
        None => None,
    };
    let (Some(user), Some(role)) = (user, role) else {
        store.record_audit(&fail("not a member")).await?;
        return Err(refused(format!(
            "{email} is not a member of this workspace: ask for an invitation"
        )));
    };
    let mut response = crate::sessions::start_session(
        &state,
        &user,
        &workspace,
        role,
        &client_meta,
        Some(&settings.provider),
    )
    .await?;
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(header::LOCATION, axum::http::HeaderValue::from_static("/"));
    Ok(response)
}
