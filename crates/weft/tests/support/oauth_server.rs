//! A stand-in OAuth 2 provider for the tests: an authorization endpoint that checks PKCE, a
//! token endpoint for the authorization code, refresh token and client credentials grants,
//! and an API that takes only the newest unexpired, unrevoked access tokens.

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "weft-client";
pub const CLIENT_SECRET: &str = "client-secret-3f9a1c";

pub struct OAuthServer {
    pub base: String,
}

#[derive(Default)]
struct Provider {
    /// Codes handed out: the challenge and redirect URI each was asked with.
    codes: HashMap<String, (String, String)>,
    /// Access tokens that the API takes, with when each expires (seconds since 1970).
    valid: HashMap<String, i64>,
    refresh_token: Option<String>,
    /// Lifetime of the next tokens, in seconds.
    expires_in: i64,
    /// Every grant served, in order, and every token issued.
    grants: Vec<String>,
    issued: Vec<String>,
    refused_calls: usize,
    next: usize,
}

type Shared = Arc<Mutex<Provider>>;

impl OAuthServer {
    pub fn start() -> OAuthServer {
        let provider: Shared = Arc::new(Mutex::new(Provider {
            expires_in: 3600,
            ..Provider::default()
        }));
        let routes = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/api", get(api))
            .route("/revoke", post(revoke))
            .route("/expire-next-in/{seconds}", post(expire_next_in))
            .route("/seen", get(seen))
            .with_state(provider);
        OAuthServer {
            base: super::serve_routes(routes),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.as_secs() as i64)
        .unwrap_or_default()
}

fn refuse(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn authorize(
    State(provider): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let get = |key: &str| query.get(key).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
    {
        return refuse("invalid_request");
    }
    let mut provider = provider.lock().expect("the provider lock");
    provider.next += 1;
    let code = format!("code-{}", provider.next);
    provider
        .codes
        .insert(code.clone(), (get("code_challenge"), get("redirect_uri")));
    let target = format!("{}?code={code}&state={}", get("redirect_uri"), get("state"));
    Redirect::to(&target).into_response()
}

async fn token(
    State(provider): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |key: &str| form.get(key).cloned().unwrap_or_default();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let by_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str());
    let by_form = get("client_id") == CLIENT_ID && get("client_secret") == CLIENT_SECRET;
    if !by_header && !by_form {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let mut provider = provider.lock().expect("the provider lock");
    let grant = get("grant_type");
    match grant.as_str() {
        "authorization_code" => {
            let Some((challenge, redirect_uri)) = provider.codes.remove(&get("code")) else {
                return refuse("invalid_grant");
            };
            let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
            if hashed != challenge || redirect_uri != get("redirect_uri") {
                return refuse("invalid_grant");
            }
        }
        "refresh_token" => {
            if provider.refresh_token.as_deref() != Some(get("refresh_token").as_str()) {
                return refuse("invalid_grant");
            }
        }
        "client_credentials" => {}
        _ => return refuse("unsupported_grant_type"),
    }
    provider.next += 1;
    let access = format!("access-{}-{}", provider.next, now());
    let expires_in = provider.expires_in;
    provider.valid.insert(access.clone(), now() + expires_in);
    provider.grants.push(grant.clone());
    provider.issued.push(access.clone());
    let mut answer =
        json!({ "access_token": access, "token_type": "Bearer", "expires_in": expires_in });
    if grant == "authorization_code" {
        let refresh = format!("refresh-{}-{}", provider.next, now());
        provider.refresh_token = Some(refresh.clone());
        provider.issued.push(refresh.clone());
        answer["refresh_token"] = json!(refresh);
    }
    axum::Json(answer).into_response()
}

async fn api(State(provider): State<Shared>, headers: HeaderMap) -> Response {
    let mut provider = provider.lock().expect("the provider lock");
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    match provider.valid.get(&token) {
        Some(expires) if *expires > now() => axum::Json(json!({ "ok": true })).into_response(),
        _ => {
            provider.refused_calls += 1;
            (StatusCode::UNAUTHORIZED, "token refused").into_response()
        }
    }
}

/// Revokes every access token issued so far (the refresh token stays good).
async fn revoke(State(provider): State<Shared>) -> Response {
    provider.lock().expect("the provider lock").valid.clear();
    axum::Json(json!({ "revoked": true })).into_response()
}

async fn expire_next_in(
    State(provider): State<Shared>,
    axum::extract::Path(seconds): axum::extract::Path<i64>,
) -> Response {
    provider.lock().expect("the provider lock").expires_in = seconds;
    axum::Json(json!({ "expires_in": seconds })).into_response()
}

/// The grants served, the tokens issued and the calls refused so far.
async fn seen(State(provider): State<Shared>) -> Response {
    let provider = provider.lock().expect("the provider lock");
    let seen: Value = json!({
        "grants": provider.grants,
        "issued": provider.issued,
        "refused_calls": provider.refused_calls,
    });
    axum::Json(seen).into_response()
}
