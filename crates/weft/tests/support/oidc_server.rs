//! A small OpenID Connect provider for the tests: discovery, an authorization endpoint that
//! signs in whoever the test says, a token endpoint that checks the client and PKCE and
//! answers with an RS256 ID token, and the JWKS. It can be told to sign with a key it does
//! not publish, or for another audience, to see Weft refuse the token.

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    Audience, EmptyAdditionalClaims, EndUserEmail, IssuerUrl, JsonWebKeyId, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use serde_json::json;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "weft-sso-client";
pub const CLIENT_SECRET: &str = "sso-secret-5e81b2";

/// Who the next sign-in is, and how its ID token is made.
#[derive(Clone)]
pub struct NextLogin {
    pub email: String,
    pub email_verified: bool,
    /// Sign with a key the JWKS does not hold.
    pub forged: bool,
    /// The token's audience, when not the client.
    pub audience: Option<String>,
}

struct Provider {
    base: String,
    key: CoreRsaPrivateSigningKey,
    impostor: CoreRsaPrivateSigningKey,
    next: NextLogin,
    /// Codes handed out: the PKCE challenge, redirect URI, nonce and login of each.
    codes: HashMap<String, (String, String, String, NextLogin)>,
    count: usize,
}

type Shared = Arc<Mutex<Provider>>;

pub struct OidcServer {
    pub base: String,
    provider: Shared,
}

/// An RSA key in PKCS#1 PEM, made with `openssl`; `None` (the reason printed) without it.
fn rsa_key() -> Option<String> {
    match std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
    {
        Ok(made) if made.status.success() => {
            Some(String::from_utf8_lossy(&made.stdout).into_owned())
        }
        _ => {
            assert!(
                std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "openssl is required (WEFT_REQUIRE_SERVICES=1) to make the provider's keys"
            );
            eprintln!("skipped: no openssl to make the identity provider's keys");
            None
        }
    }
}

impl OidcServer {
    pub fn start() -> Option<OidcServer> {
        let key = |pem: String| {
            CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new("k1".to_owned())))
                .expect("an RSA key")
        };
        let provider: Shared = Arc::new(Mutex::new(Provider {
            base: String::new(),
            key: key(rsa_key()?),
            impostor: key(rsa_key()?),
            next: NextLogin {
                email: "ann@example.com".to_owned(),
                email_verified: true,
                forged: false,
                audience: None,
            },
            codes: HashMap::new(),
            count: 0,
        }));
        let routes = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&provider));
        let base = super::serve_routes(routes);
        provider
            .lock()
            .expect("the provider lock")
            .base
            .clone_from(&base);
        Some(OidcServer { base, provider })
    }

    /// Sets who the next sign-in is.
    pub fn next_login(&self, next: NextLogin) {
        self.provider.lock().expect("the provider lock").next = next;
    }
}

async fn discovery(State(provider): State<Shared>) -> Response {
    let base = provider.lock().expect("the provider lock").base.clone();
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
    .into_response()
}

async fn jwks(State(provider): State<Shared>) -> Response {
    let provider = provider.lock().expect("the provider lock");
    let set = CoreJsonWebKeySet::new(vec![provider.key.as_verification_key()]);
    axum::Json(serde_json::to_value(&set).expect("a key set")).into_response()
}

async fn authorize(
    State(provider): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let get = |key: &str| query.get(key).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || !get("scope").split(' ').any(|scope| scope == "openid")
    {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let mut provider = provider.lock().expect("the provider lock");
    provider.count += 1;
    let code = format!("code-{}", provider.count);
    let login = provider.next.clone();
    provider.codes.insert(
        code.clone(),
        (
            get("code_challenge"),
            get("redirect_uri"),
            get("nonce"),
            login,
        ),
    );
    Redirect::to(&format!(
        "{}?code={code}&state={}",
        get("redirect_uri"),
        get("state")
    ))
    .into_response()
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
    let Some((challenge, redirect_uri, nonce, login)) = provider.codes.remove(&get("code")) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant" })),
        )
            .into_response();
    };
    let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
    if hashed != challenge || redirect_uri != get("redirect_uri") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant" })),
        )
            .into_response();
    }
    let now = chrono::Utc::now();
    let standard = StandardClaims::new(SubjectIdentifier::new(format!("sub-{}", login.email)))
        .set_email(Some(EndUserEmail::new(login.email.clone())))
        .set_email_verified(Some(login.email_verified));
    let audience = login
        .audience
        .clone()
        .unwrap_or_else(|| CLIENT_ID.to_owned());
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(provider.base.clone()).expect("an issuer"),
        vec![Audience::new(audience)],
        now + chrono::Duration::minutes(5),
        now,
        standard,
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let key = if login.forged {
        &provider.impostor
    } else {
        &provider.key
    };
    let id_token = CoreIdToken::new(
        claims,
        key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .expect("a signed ID token");
    axum::Json(json!({
        "access_token": format!("at-{}", provider.count),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": serde_json::to_value(&id_token).expect("a token"),
    }))
    .into_response()
}
